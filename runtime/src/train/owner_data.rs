//! What one party of a training plan reads and gives: which file (MNIST IDX files of a split,
//! or a NumPy `.npy`/`.npz` file), which of its examples (digits, rows), which part of every
//! batch (its rows of the step, its columns of the images), under which input names, and
//! whether it first runs frozen feature layers on them in plaintext. A party reads only its own
//! [`OwnerData`] from its own data directory ([`OwnerData::load`]), so no party sees another's
//! file.

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array4, ArrayD, Axis, Ix4};
use serde::{Deserialize, Serialize};
use shareflow_graphs::transfer::Transfer;

use crate::data::npy::read_npy;
use crate::data::{Mnist, Split, Weights};
use crate::plain::train::one_hot_of;
use crate::{Result, RuntimeError};

/// The file a party's examples come from, in its data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFile {
    /// The MNIST IDX files of a split (`train` or `test`).
    Mnist {
        /// `train` or `test`.
        split: String,
    },
    /// A NumPy file (relative to the data directory, or absolute): an `.npz` with float32
    /// arrays `images` `[n, h, w, c]` (or `[n, h, w]`) and `labels` `[n]` (the class of each
    /// example), or an `.npy` of the images alone (a party that gives no labels).
    Numpy {
        /// The file's path.
        file: String,
    },
}

/// Frozen feature layers a party runs on its examples in plaintext before it shares them (the
/// transfer network of `model` with `classes` classes; the weights are the party's own
/// `--weights` file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureLayers {
    /// The zoo network whose feature layers run (`A` to `D`).
    pub model: String,
    /// The classes of the transfer network.
    pub classes: usize,
}

/// One party's data in a training plan and what it gives in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerData {
    /// The party that reads the data.
    pub party: String,
    /// The file the examples come from.
    pub file: DataFile,
    /// Only the examples of the `count` digits from `first` (relabelled from 0), in order.
    pub digits: Option<(u8, u8)>,
    /// The examples `start..end` (after `digits`) the party holds: the schedule's index `i`
    /// is the `i`-th example of the file.
    pub examples: (usize, usize),
    /// The party's part of every batch: positions `start..end` of the step's examples (`None`:
    /// all of them).
    pub rows: Option<(usize, usize)>,
    /// The party's columns of the images: `start..end` along the width (`None`: all).
    pub columns: Option<(usize, usize)>,
    /// The input name of its examples (or of their features).
    pub input: String,
    /// The input name of its one-hot labels and the number of classes (`None`: it gives none).
    pub labels: Option<(String, usize)>,
    /// Frozen layers it runs on the examples first, in plaintext.
    pub features: Option<FeatureLayers>,
}

/// A party's examples as it loaded them.
#[derive(Debug, Clone)]
pub struct OwnerExamples {
    /// `[n, h, w, c]`: the examples `0..end` of the file (those before `start` are zero).
    pub images: Array4<f32>,
    /// One label per example (empty if the file has none).
    pub labels: Vec<u8>,
}

fn err(d: &OwnerData, message: String) -> RuntimeError {
    RuntimeError::Node {
        node: format!("data of {}", d.party),
        message,
    }
}

impl OwnerData {
    /// The whole training set of the zoo's data owner: the first `n` MNIST training images with
    /// their labels as `input` and `labels` (10 classes).
    pub fn mnist(party: &str, split: Split, n: usize, input: &str, labels: Option<&str>) -> Self {
        OwnerData {
            party: party.to_string(),
            file: DataFile::Mnist {
                split: match split {
                    Split::Train => "train".into(),
                    Split::Test => "test".into(),
                },
            },
            digits: None,
            examples: (0, n),
            rows: None,
            columns: None,
            input: input.to_string(),
            labels: labels.map(|l| (l.to_string(), 10)),
            features: None,
        }
    }

    /// Reads the party's examples from `dir` (the party's data directory): only the examples
    /// up to [`OwnerData::examples`]' end are kept, and those before its start are zeroed.
    pub fn load(&self, dir: &Path) -> Result<OwnerExamples> {
        let (start, end) = self.examples;
        let mut m = match &self.file {
            DataFile::Mnist { split } => {
                let split = match split.as_str() {
                    "train" => Split::Train,
                    "test" => Split::Test,
                    other => {
                        return Err(err(self, format!("split {other:?}: train or test")));
                    }
                };
                // with digits, the kept examples are spread over the whole file
                let limit = self.digits.is_none().then_some(end);
                let m = Mnist::load(dir, split, limit)?;
                let m = match self.digits {
                    Some((first, count)) => m.digits(first, count),
                    None => m,
                };
                OwnerExamples {
                    images: m.images,
                    labels: m.labels,
                }
            }
            DataFile::Numpy { file } => self.load_numpy(&dir.join(file))?,
        };
        if m.images.shape()[0] < end || start > end {
            return Err(err(
                self,
                format!(
                    "the plan uses its examples {start}..{end}; the file has {}",
                    m.images.shape()[0]
                ),
            ));
        }
        m.images = m.images.slice_axis(Axis(0), (0..end).into()).to_owned();
        m.images
            .slice_axis_mut(Axis(0), (0..start).into())
            .fill(0.0);
        m.labels.truncate(end);
        Ok(m)
    }

    fn load_numpy(&self, path: &Path) -> Result<OwnerExamples> {
        let file_err = |message: String| RuntimeError::File {
            path: path.display().to_string(),
            message,
        };
        let npz = path.extension().is_some_and(|e| e == "npz");
        let (images, labels) = if npz {
            let mut w = Weights::load(path)?;
            let images = w
                .arrays
                .remove("images")
                .ok_or_else(|| file_err("no array \"images\"".into()))?;
            (images, w.arrays.remove("labels"))
        } else {
            (read_npy(path)?, None)
        };
        let images = match images.ndim() {
            3 => images.insert_axis(Axis(3)),
            _ => images,
        };
        let images = images
            .into_dimensionality::<Ix4>()
            .map_err(|e| file_err(format!("images: expected [n, h, w, c]: {e}")))?;
        let labels = match labels {
            Some(l) => l
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if v.fract() == 0.0 && (0.0..=255.0).contains(&v) {
                        Ok(v as u8)
                    } else {
                        Err(file_err(format!("label {v} of example {i} is not a class")))
                    }
                })
                .collect::<Result<Vec<u8>>>()?,
            None => Vec::new(),
        };
        let mut m = OwnerExamples { images, labels };
        if let Some((first, count)) = self.digits {
            let keep: Vec<usize> = (0..m.labels.len())
                .filter(|&i| (first..first.saturating_add(count)).contains(&m.labels[i]))
                .collect();
            m = OwnerExamples {
                images: m.images.select(Axis(0), &keep),
                labels: keep.iter().map(|&i| m.labels[i] - first).collect(),
            };
        }
        Ok(m)
    }

    /// What the party gives for the batch of `indices` (the step's examples, or the test
    /// examples of a prediction): its rows' (and columns') examples, through its frozen
    /// layers (with `weights`) if it has them, and their one-hot labels.
    pub fn inputs(
        &self,
        data: &OwnerExamples,
        weights: Option<&Weights>,
        indices: &[usize],
    ) -> Result<HashMap<String, ArrayD<f32>>> {
        let rows = match self.rows {
            Some((a, b)) => indices.get(a..b).ok_or_else(|| {
                err(
                    self,
                    format!("its rows {a}..{b} of a batch of {}", indices.len()),
                )
            })?,
            None => indices,
        };
        let (start, end) = self.examples;
        if let Some(&i) = rows.iter().find(|&&i| i < start || i >= end) {
            return Err(err(
                self,
                format!("example {i} is not one of its examples {start}..{end}"),
            ));
        }
        let mut x = data.images.select(Axis(0), rows).into_dyn();
        if let Some((a, b)) = self.columns {
            if b > x.shape().get(2).copied().unwrap_or(0) || a > b {
                return Err(err(self, format!("columns {a}..{b} of {:?}", x.shape())));
            }
            x = x.slice_axis(Axis(2), (a..b).into()).to_owned();
        }
        if let Some(f) = &self.features {
            let kind = f
                .model
                .parse()
                .map_err(|e| err(self, format!("feature layers of {:?}: {e}", f.model)))?;
            let t = Transfer {
                kind,
                classes: f.classes,
            };
            let w = weights.ok_or_else(|| {
                err(
                    self,
                    "its frozen layers need their weights (--weights FILE.npz)".into(),
                )
            })?;
            x = super::transfer::features(t, w, &x, rows.len())?;
        }
        let mut out = HashMap::from([(self.input.clone(), x)]);
        if let Some((name, classes)) = &self.labels {
            let labels = rows
                .iter()
                .map(|&i| {
                    data.labels
                        .get(i)
                        .copied()
                        .ok_or_else(|| err(self, format!("example {i} has no label")))
                })
                .collect::<Result<Vec<u8>>>()?;
            out.insert(name.clone(), one_hot_of(&labels, *classes)?);
        }
        Ok(out)
    }
}

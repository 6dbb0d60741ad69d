//! The network a command runs: a network of the zoo (`--model A|B|C|D|P`), a model imported
//! from ONNX (`--onnx FILE`) or a user's logical graph (`--graph FILE --weights FILE.npz`, see
//! [`super::user_graph`]). All are graphs with the zoo's parties and names: the model owner's
//! weights, the client's `image`, the client's `logits`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::{Array2, ArrayD, Axis, Ix2, IxDyn};
use shareflow_compiler::CompileOptions;
use shareflow_graphs::zoo::{ModelKind, ZooModel, IMAGE};
use shareflow_graphs::{Graph, NodeId};
use shareflow_onnx::OnnxModel;
use shareflow_runtime::data::Weights;
use shareflow_runtime::plain::train::predict_observed;
use shareflow_runtime::plain::{forward, Evaluation};

use super::user_graph::UserGraph;
use super::{load_weights, weights_path, Options};
use crate::{Result, ToolError};

/// A zoo network, an imported ONNX model or a user's graph.
#[derive(Clone)]
pub enum Network {
    /// A network of the zoo, with its committed weights by default.
    Zoo(ModelKind),
    /// An ONNX model: its initializers are the weights.
    Onnx(Arc<OnnxModel>),
    /// A logical graph from JSON, for the batch size it was written for; its weights come
    /// from `--weights`.
    Graph(Arc<UserGraph>),
}

/// A network's graph for one batch size.
pub struct BuiltNetwork {
    /// The logical graph.
    pub graph: Graph,
    /// The client's input node.
    pub image: NodeId,
    /// The logits before they are revealed.
    pub logits: NodeId,
    /// The shape of the client's input, batch first.
    pub input_shape: Vec<usize>,
}

impl From<ModelKind> for Network {
    fn from(kind: ModelKind) -> Self {
        Network::Zoo(kind)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Network::Zoo(kind) => write!(f, "{kind}"),
            Network::Onnx(m) => f.write_str(m.source()),
            Network::Graph(g) => write!(f, "{}", g.path.display()),
        }
    }
}

impl Network {
    /// `--model`, `--onnx` or `--graph`, exactly one of them.
    pub fn from_args(
        model: Option<ModelKind>,
        onnx: Option<&Path>,
        graph: Option<&Path>,
    ) -> Result<Network> {
        match (model, onnx, graph) {
            (Some(kind), None, None) => Ok(Network::Zoo(kind)),
            (None, Some(path), None) => Ok(Network::Onnx(Arc::new(OnnxModel::load(path)?))),
            (None, None, Some(path)) => Ok(Network::Graph(Arc::new(UserGraph::load(path)?))),
            _ => Err(ToolError::Usage(
                "give one of --model A|B|C|D|P, --onnx FILE and --graph FILE".into(),
            )),
        }
    }

    /// The zoo network, if it is one.
    pub fn kind(&self) -> Option<ModelKind> {
        match self {
            Network::Zoo(kind) => Some(*kind),
            Network::Onnx(_) | Network::Graph(_) => None,
        }
    }

    /// The one batch size the network runs at (a user's graph), `None` if it builds for any.
    pub fn fixed_batch(&self) -> Option<usize> {
        match self {
            Network::Graph(g) => Some(g.batch()),
            Network::Zoo(_) | Network::Onnx(_) => None,
        }
    }

    /// Checks that `n` inputs predicted in batches of at most `batch` give only batches the
    /// network runs at (for a user's graph: `batch` is its batch and divides `n`).
    pub fn check_batches(&self, n: usize, batch: usize) -> Result<()> {
        let Some(b) = self.fixed_batch() else {
            return Ok(());
        };
        let wrong = if batch != b {
            format!("not {batch}: run with --batch {b}")
        } else if !n.is_multiple_of(b) {
            format!("and {n} is no multiple of {b}: give --limit a multiple of {b}")
        } else {
            return Ok(());
        };
        Err(ToolError::Usage(format!(
            "{self} takes batches of exactly {b} inputs (the first dimension of its input \
             `{IMAGE}`), {wrong}, or write the graph for another batch (`shareflow import \
             --batch N`)"
        )))
    }

    /// The graph for batches of `batch` inputs.
    pub fn build(&self, batch: usize) -> Result<BuiltNetwork> {
        Ok(match self {
            Network::Zoo(kind) => {
                let zoo = ZooModel::build(*kind, batch)?;
                BuiltNetwork {
                    image: zoo.image,
                    logits: zoo.logits,
                    input_shape: vec![batch, 28, 28, 1],
                    graph: zoo.graph,
                }
            }
            Network::Onnx(model) => {
                let m = model.import(batch)?;
                BuiltNetwork {
                    image: m.image,
                    logits: m.logits,
                    input_shape: m.input_shape,
                    graph: m.graph,
                }
            }
            Network::Graph(g) => {
                if batch != g.batch() {
                    return Err(ToolError::Usage(format!(
                        "{self} takes batches of exactly {} inputs (the first dimension of its \
                         input `{IMAGE}`), not {batch}: write the graph for batches of {batch} \
                         (`shareflow import --batch {batch}`)",
                        g.batch()
                    )));
                }
                BuiltNetwork {
                    graph: g.graph.clone(),
                    image: g.image,
                    logits: g.logits,
                    input_shape: g.input_shape.clone(),
                }
            }
        })
    }

    /// The model owner's weights: `explicit` or the committed ones for a zoo network, the
    /// initializers for an ONNX model (which takes no `--weights`), `explicit` (required,
    /// checked against the graph) for a user's graph.
    pub fn weights(&self, explicit: Option<PathBuf>) -> Result<Weights> {
        match self {
            Network::Zoo(kind) => load_weights(*kind, explicit),
            Network::Onnx(model) => {
                if explicit.is_some() {
                    return Err(ToolError::Usage(
                        "--weights is for zoo networks and --graph: an ONNX model carries its \
                         weights"
                            .into(),
                    ));
                }
                Ok(Weights {
                    arrays: model.import(1)?.weights,
                })
            }
            Network::Graph(g) => match explicit {
                Some(path) => g.weights(&path),
                None => Err(ToolError::Usage(format!(
                    "--graph {self} needs --weights FILE.npz: the model owner's inputs \
                     (`shareflow import --weights-out` writes them)"
                ))),
            },
        }
    }

    /// The `.npz` a model owner's party process reads: the given or committed file of a zoo
    /// network, the file of a user's graph, an ONNX model's initializers (`weights`) written
    /// to `dir`.
    pub fn weights_file(
        &self,
        explicit: Option<&Path>,
        weights: &Weights,
        dir: &Path,
    ) -> Result<PathBuf> {
        match (self, explicit) {
            (Network::Zoo(kind), _) => Ok(weights_path(*kind, explicit.map(Path::to_path_buf))),
            (Network::Graph(_), Some(path)) => Ok(path.to_path_buf()),
            (Network::Onnx(_), _) | (Network::Graph(_), None) => {
                let path = dir.join("weights.npz");
                weights.save(&path)?;
                Ok(path)
            }
        }
    }

    /// The compile options: the zoo network's ReLU polynomial unless the user chose one.
    pub fn options(&self, options: &Options) -> CompileOptions {
        match self {
            Network::Zoo(kind) => options.for_model(*kind),
            Network::Onnx(_) | Network::Graph(_) => options.base,
        }
    }

    /// `images` `[n, 28, 28, 1]` in the shape of the network's input (`[n, 784]` for a model
    /// that takes flat vectors).
    pub fn inputs(&self, images: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        let n = images.shape().first().copied().unwrap_or(0);
        let per_image = match self {
            Network::Graph(g) => g.input_shape.clone(),
            Network::Zoo(_) | Network::Onnx(_) => self.build(1)?.input_shape,
        };
        let mut shape = vec![n];
        shape.extend_from_slice(&per_image[1..]);
        if shape.iter().product::<usize>() != images.len() {
            return Err(ToolError::Usage(format!(
                "{self}: the input `{IMAGE}` has shape {:?} per input, MNIST images have 784 \
                 values",
                &per_image[1..]
            )));
        }
        images
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(IxDyn(&shape))
            .map_err(|e| ToolError::Usage(format!("{self}: {e}")))
    }

    /// Plaintext logits `[n, classes]` for `images` (in the network's input shape), in
    /// batches of at most `batch`, showing `observe` every batch's graph and values.
    pub fn predict_plain(
        &self,
        weights: &Weights,
        images: &ArrayD<f32>,
        batch: usize,
        observe: &mut dyn FnMut(&Graph, &Evaluation),
    ) -> Result<Array2<f32>> {
        if let Network::Zoo(kind) = self {
            return Ok(predict_observed(*kind, weights, images, batch, observe)?);
        }
        let n = images.shape().first().copied().unwrap_or(0);
        self.check_batches(n, batch)?;
        let mut built: HashMap<usize, BuiltNetwork> = HashMap::new();
        let mut rows: Vec<Array2<f32>> = Vec::new();
        let mut start = 0;
        while start < n {
            let size = batch.max(1).min(n - start);
            let net = match built.entry(size) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(self.build(size)?),
            };
            let mut inputs: HashMap<String, ArrayD<f32>> =
                weights.arrays.clone().into_iter().collect();
            inputs.insert(
                IMAGE.to_string(),
                images
                    .slice_axis(Axis(0), (start..start + size).into())
                    .to_owned(),
            );
            let eval = forward(&net.graph, &inputs)?;
            observe(&net.graph, &eval);
            let logits = eval
                .value(&net.graph, net.logits)?
                .clone()
                .into_dimensionality::<Ix2>()
                .map_err(|e| ToolError::Usage(format!("{self}: logits: {e}")))?;
            rows.push(logits);
            start += size;
        }
        let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
        if views.is_empty() {
            return Ok(Array2::zeros((0, 0)));
        }
        ndarray::concatenate(Axis(0), &views).map_err(|e| ToolError::Usage(e.to_string()))
    }
}

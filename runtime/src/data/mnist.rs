//! MNIST in the IDX format (big-endian header), optionally gzip-compressed.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use ndarray::{s, Array4, ArrayD, Axis};

use crate::{Result, RuntimeError};

/// Which part of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The 60,000 training images (`train-*` files).
    Train,
    /// The 10,000 test images (`t10k-*` files).
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Images as `[n, 28, 28, 1]` in `[0, 1]` (pixel / 255) and their labels.
#[derive(Debug, Clone)]
pub struct Mnist {
    /// The images, `[n, 28, 28, 1]`, pixel values in `[0, 1]`.
    pub images: Array4<f32>,
    /// The label (digit 0-9) of each image.
    pub labels: Vec<u8>,
}

impl Mnist {
    /// Loads a split from `dir` (`train-images-idx3-ubyte[.gz]` and so on), at most `limit`
    /// images.
    pub fn load(dir: &Path, split: Split, limit: Option<usize>) -> Result<Mnist> {
        let images = read_idx(&find(
            dir,
            &format!("{}-images-idx3-ubyte", split.prefix()),
        )?)?;
        let labels = read_idx(&find(
            dir,
            &format!("{}-labels-idx1-ubyte", split.prefix()),
        )?)?;
        Mnist::from_idx(images, labels, limit)
    }

    /// A split from the bytes of its two IDX files (`.gz` files if `gzip`), at most `limit`
    /// images.
    pub fn from_bytes(
        images: &[u8],
        labels: &[u8],
        gzip: bool,
        limit: Option<usize>,
    ) -> Result<Mnist> {
        Mnist::from_idx(
            parse_idx("images", images, gzip)?,
            parse_idx("labels", labels, gzip)?,
            limit,
        )
    }

    fn from_idx(images: Idx, labels: Idx, limit: Option<usize>) -> Result<Mnist> {
        let bad = |message: String| RuntimeError::File {
            path: images.path.clone(),
            message,
        };
        if images.dims.len() != 3 || labels.dims.len() != 1 {
            return Err(bad(format!(
                "expected images of rank 3 and labels of rank 1, got {:?} and {:?}",
                images.dims, labels.dims
            )));
        }
        if images.dims[0] != labels.dims[0] {
            return Err(bad(format!(
                "{} images but {} labels in {}",
                images.dims[0], labels.dims[0], labels.path
            )));
        }
        let n = limit.map_or(images.dims[0], |l| l.min(images.dims[0]));
        let (h, w) = (images.dims[1], images.dims[2]);
        let pixels: Vec<f32> = images.data[..n * h * w]
            .iter()
            .map(|&p| p as f32 / 255.0)
            .collect();
        let images = Array4::from_shape_vec((n, h, w, 1), pixels)
            .map_err(|e| bad(format!("image data: {e}")))?;
        let labels = labels.data[..n].to_vec();
        if let Some(l) = labels.iter().find(|&&l| l > 9) {
            return Err(RuntimeError::File {
                path: "labels".into(),
                message: format!("label {l} is not a digit"),
            });
        }
        Ok(Mnist { images, labels })
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Images `start..end` as a dynamic-rank array.
    pub fn batch(&self, start: usize, end: usize) -> ArrayD<f32> {
        self.images
            .slice(s![start..end, .., .., ..])
            .to_owned()
            .into_dyn()
    }

    /// The images at `indices`, in that order.
    pub fn gather(&self, indices: &[usize]) -> ArrayD<f32> {
        self.images.select(Axis(0), indices).into_dyn()
    }

    /// The examples whose label is one of the `count` digits from `first`, in order, with
    /// their labels counted from `first` (digits 5-9 become the classes 0-4).
    pub fn digits(&self, first: u8, count: u8) -> Mnist {
        let keep: Vec<usize> = (0..self.len())
            .filter(|&i| (first..first.saturating_add(count)).contains(&self.labels[i]))
            .collect();
        Mnist {
            images: self.images.select(Axis(0), &keep),
            labels: keep.iter().map(|&i| self.labels[i] - first).collect(),
        }
    }
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    let plain = dir.join(stem);
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        Ok(gz)
    } else if plain.is_file() {
        Ok(plain)
    } else {
        Err(RuntimeError::File {
            path: gz.display().to_string(),
            message: format!(
                "not found (nor {}); pass --data DIR or set {}",
                plain.display(),
                super::DATA_ENV
            ),
        })
    }
}

struct Idx {
    path: String,
    dims: Vec<usize>,
    data: Vec<u8>,
}

/// The most bytes an IDX file may hold once unpacked (the MNIST training images take 47 MB).
pub const MAX_IDX_BYTES: u64 = 1 << 30;

/// Reads an IDX file of unsigned bytes (type code 0x08).
fn read_idx(path: &Path) -> Result<Idx> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| RuntimeError::File {
        path: name.clone(),
        message: e.to_string(),
    })?;
    let gzip = path.extension().is_some_and(|e| e == "gz");
    parse_idx(&name, file, gzip)
}

/// An IDX file of unsigned bytes from `reader` (gzip-compressed if `gzip`), at most
/// [`MAX_IDX_BYTES`] of it; its declared dimensions must match the bytes present.
fn parse_idx(name: &str, reader: impl Read, gzip: bool) -> Result<Idx> {
    let err = |message: String| RuntimeError::File {
        path: name.to_string(),
        message,
    };
    let mut bytes = Vec::new();
    let read = if gzip {
        GzDecoder::new(reader)
            .take(MAX_IDX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| err(format!("gzip: {e}")))?
    } else {
        reader
            .take(MAX_IDX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| err(e.to_string()))?
    };
    if read as u64 > MAX_IDX_BYTES {
        return Err(err(format!("more than {MAX_IDX_BYTES} bytes")));
    }
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(err("not an IDX file (bad magic)".into()));
    }
    if bytes[2] != 0x08 {
        return Err(err(format!(
            "element type 0x{:02x} is not unsigned byte (0x08)",
            bytes[2]
        )));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(err("truncated header".into()));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            let b = &bytes[4 + 4 * i..8 + 4 * i];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| err(format!("dimensions {dims:?} overflow")))?;
    if header.checked_add(count) != Some(bytes.len()) {
        return Err(err(format!(
            "{} data bytes for dimensions {dims:?} ({count} expected)",
            bytes.len() - header
        )));
    }
    bytes.drain(..header);
    Ok(Idx {
        path: name.to_string(),
        dims,
        data: bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(path: &Path, bytes: &[u8]) {
        File::create(path).unwrap().write_all(bytes).unwrap();
    }

    #[test]
    fn reads_a_tiny_idx_pair_and_rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut img = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        img.extend([0, 255, 51, 102, 1, 2, 3, 4]);
        write(&dir.path().join("t10k-images-idx3-ubyte"), &img);
        write(
            &dir.path().join("t10k-labels-idx1-ubyte"),
            &[0, 0, 8, 1, 0, 0, 0, 2, 7, 3],
        );
        let m = Mnist::load(dir.path(), Split::Test, None).unwrap();
        assert_eq!(m.images.shape(), &[2, 2, 2, 1]);
        assert_eq!(m.labels, vec![7, 3]);
        assert_eq!(m.images[[0, 0, 1, 0]], 1.0);
        assert_eq!(m.images[[0, 1, 0, 0]], 0.2);
        // Truncated data is an error that names the file.
        write(&dir.path().join("t10k-images-idx3-ubyte"), &img[..20]);
        let e = Mnist::load(dir.path(), Split::Test, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("t10k-images-idx3-ubyte"), "{e}");
        // A missing split names the file it looked for.
        let e = Mnist::load(dir.path(), Split::Train, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("train-images-idx3-ubyte"), "{e}");
    }

    #[test]
    fn loads_the_shared_test_set() {
        let dir = crate::data::data_dir(None);
        let m = Mnist::load(&dir, Split::Test, Some(100)).unwrap();
        assert_eq!(m.len(), 100);
        assert_eq!(m.images.shape(), &[100, 28, 28, 1]);
        // The first test digits of MNIST are 7, 2, 1, 0, 4.
        assert_eq!(&m.labels[..5], &[7, 2, 1, 0, 4]);
        let max = m.images.iter().cloned().fold(0.0f32, f32::max);
        assert_eq!(max, 1.0);
    }
}

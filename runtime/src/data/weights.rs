//! Model weights as NumPy `.npz` archives.
//!
//! One array per parameter, named as the parameter input of the graph: `<layer>/kernel`
//! (dense: `[inputs, units]`; conv2d: HWIO `[kh, kw, in, out]`) and `<layer>/bias` (`[units]`
//! or `[out]`), all `float32`. In NumPy: `np.load("models/c.npz")["conv1/kernel"]`. Archives
//! of `np.savez` and of `np.savez_compressed` (deflate) are both read; they are written
//! uncompressed.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::{NpzReader, NpzWriter};

use crate::{Result, RuntimeError};

/// Named f32 arrays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    pub arrays: BTreeMap<String, ArrayD<f32>>,
}

impl Weights {
    /// Reads every array of an `.npz` file.
    pub fn load(path: &Path) -> Result<Weights> {
        let name = path.display().to_string();
        let err = |message: String| RuntimeError::File {
            path: name.clone(),
            message,
        };
        let file = File::open(path).map_err(|e| err(e.to_string()))?;
        let mut npz = NpzReader::new(file).map_err(|e| err(e.to_string()))?;
        let names = npz.names().map_err(|e| err(e.to_string()))?;
        let mut arrays = BTreeMap::new();
        for entry in names {
            let array: ArrayD<f32> = npz
                .by_name(&entry)
                .map_err(|e| err(format!("array {entry}: {e}")))?;
            let key = entry.strip_suffix(".npy").unwrap_or(&entry).to_string();
            arrays.insert(key, array);
        }
        Ok(Weights { arrays })
    }

    /// Writes every array to an `.npz` file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let name = path.display().to_string();
        let err = |message: String| RuntimeError::File {
            path: name.clone(),
            message,
        };
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
            }
        }
        let file = File::create(path).map_err(|e| err(e.to_string()))?;
        let mut npz = NpzWriter::new(file);
        for (key, array) in &self.arrays {
            npz.add_array(key.as_str(), array)
                .map_err(|e| err(format!("array {key}: {e}")))?;
        }
        npz.finish().map_err(|e| err(e.to_string()))?;
        Ok(())
    }

    /// One array, or an error naming it and the shape expected.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&ArrayD<f32>> {
        let array = self.arrays.get(name).ok_or_else(|| RuntimeError::File {
            path: name.into(),
            message: "no such array in the weights".into(),
        })?;
        if array.shape() != shape {
            return Err(RuntimeError::File {
                path: name.into(),
                message: format!("shape {:?}, the graph expects {shape:?}", array.shape()),
            });
        }
        Ok(array)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_named_arrays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.npz");
        let mut w = Weights::default();
        w.arrays.insert(
            "conv1/kernel".into(),
            ArrayD::from_shape_vec(vec![2, 1, 1, 3], (0..6).map(|i| i as f32 * 0.5).collect())
                .unwrap(),
        );
        w.arrays.insert("conv1/bias".into(), ArrayD::zeros(vec![3]));
        w.save(&path).unwrap();
        let back = Weights::load(&path).unwrap();
        assert_eq!(back, w);
        assert!(back.get("conv1/bias", &[3]).is_ok());
        let e = back.get("conv1/bias", &[4]).unwrap_err().to_string();
        assert!(e.contains("conv1/bias") && e.contains("[4]"), "{e}");
        assert!(back.get("dense9/kernel", &[1]).is_err());
    }

    #[test]
    fn reads_numpy_savez_compressed() {
        // Made by NumPy: np.savez_compressed(path, **{"conv1/kernel": (np.arange(6,
        // dtype=np.float32) * 0.5).reshape(2, 1, 1, 3), "conv1/bias": np.array([-1, 0, 1.5],
        // np.float32)}); both entries are deflated.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compressed.npz");
        let w = Weights::load(&path).unwrap();
        assert_eq!(
            w.get("conv1/kernel", &[2, 1, 1, 3])
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
        );
        assert_eq!(
            w.get("conv1/bias", &[3])
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            [-1.0, 0.0, 1.5]
        );
        assert_eq!(w.arrays.len(), 2);
    }
}

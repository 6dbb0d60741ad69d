//! Model weights as NumPy `.npz` archives.
//!
//! One array per parameter, named as the parameter input of the graph: `<layer>/kernel`
//! (dense: `[inputs, units]`; conv2d: HWIO `[kh, kw, in, out]`) and `<layer>/bias` (`[units]`
//! or `[out]`), all `float32`. In NumPy: `np.load("models/c.npz")["conv1/kernel"]`. Archives
//! of `np.savez` and of `np.savez_compressed` (deflate) are both read; they are written
//! uncompressed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::NpzWriter;

use crate::{Result, RuntimeError};

/// The most bytes the arrays of one archive may unpack to (4 GiB).
pub const MAX_NPZ_BYTES: u64 = 1 << 32;

/// Named f32 arrays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    /// The arrays by name (e.g. a layer's `w` or `b`).
    pub arrays: BTreeMap<String, ArrayD<f32>>,
}

impl Weights {
    /// Reads every array of an `.npz` file.
    pub fn load(path: &Path) -> Result<Weights> {
        let bytes = std::fs::read(path).map_err(|e| RuntimeError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Weights::parse_npz(&path.display().to_string(), &bytes)
    }

    /// Every array of the bytes of an `.npz` file (`name` names it in errors). An entry is
    /// read up to the size its archive declares, the declared sizes add up to at most
    /// [`MAX_NPZ_BYTES`], and each array is parsed as [`crate::data::npy::parse_npy`] does.
    pub fn parse_npz(name: &str, bytes: &[u8]) -> Result<Weights> {
        let err = |message: String| RuntimeError::File {
            path: name.to_string(),
            message,
        };
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| err(format!("not an .npz archive: {e}")))?;
        let mut arrays = BTreeMap::new();
        let mut total = 0u64;
        for index in 0..zip.len() {
            let mut file = zip
                .by_index(index)
                .map_err(|e| err(format!("entry {index}: {e}")))?;
            let (entry, size) = (file.name().to_string(), file.size());
            total = total.saturating_add(size);
            if total > MAX_NPZ_BYTES {
                return Err(err(format!(
                    "array {entry}: the arrays unpack to more than {MAX_NPZ_BYTES} bytes"
                )));
            }
            let mut data = Vec::new();
            (&mut file)
                .take(size)
                .read_to_end(&mut data)
                .map_err(|e| err(format!("array {entry}: {e}")))?;
            let key = entry.strip_suffix(".npy").unwrap_or(&entry).to_string();
            let array = super::npy::parse_npy(&format!("{name}: array {entry}"), &data)?;
            if arrays.insert(key, array).is_some() {
                return Err(err(format!("array {entry} appears twice")));
            }
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

//! Single tensors as NumPy `.npy` files (float32).

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

use crate::{Result, RuntimeError};

/// Reads a float32 `.npy` file.
pub fn read_npy(path: &Path) -> Result<ArrayD<f32>> {
    let err = |message: String| RuntimeError::File {
        path: path.display().to_string(),
        message,
    };
    let file = File::open(path).map_err(|e| err(e.to_string()))?;
    ArrayD::<f32>::read_npy(file).map_err(|e| err(format!("not a float32 .npy array: {e}")))
}

/// Writes a float32 `.npy` file.
pub fn write_npy(path: &Path, array: &ArrayD<f32>) -> Result<()> {
    let err = |message: String| RuntimeError::File {
        path: path.display().to_string(),
        message,
    };
    let file = File::create(path).map_err(|e| err(e.to_string()))?;
    array
        .write_npy(BufWriter::new(file))
        .map_err(|e| err(e.to_string()))
}

/// Writes `array` to `path` atomically: into a temporary file beside it, flushed to disk, then
/// renamed over `path`. A reader (or a crash) never sees a partly written file.
pub fn write_npy_atomic(path: &Path, array: &ArrayD<f32>) -> Result<()> {
    let err = |message: String| RuntimeError::File {
        path: path.display().to_string(),
        message,
    };
    let name = path
        .file_name()
        .ok_or_else(|| err("not a file name".into()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(".tmp");
    let temp = path.with_file_name(temp_name);
    let written = (|| {
        let mut out = BufWriter::new(File::create(&temp).map_err(|e| err(e.to_string()))?);
        array.write_npy(&mut out).map_err(|e| err(e.to_string()))?;
        let file = out.into_inner().map_err(|e| err(e.to_string()))?;
        file.sync_all().map_err(|e| err(e.to_string()))?;
        std::fs::rename(&temp, path).map_err(|e| err(e.to_string()))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        let a = ArrayD::from_shape_vec(vec![2, 3], vec![1.0, -2.0, 3.5, 0.0, 1e-3, 7.0]).unwrap();
        write_npy(&p, &a).unwrap();
        assert_eq!(read_npy(&p).unwrap(), a);
        let q = dir.path().join("y.npy");
        write_npy_atomic(&q, &a).unwrap();
        assert_eq!(read_npy(&q).unwrap(), a);
        assert!(!dir.path().join(".y.npy.tmp").exists());
        std::fs::write(&p, b"garbage").unwrap();
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("x.npy"), "{e}");
    }
}

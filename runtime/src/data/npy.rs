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
        std::fs::write(&p, b"garbage").unwrap();
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("x.npy"), "{e}");
    }
}

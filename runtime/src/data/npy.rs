//! Single tensors as NumPy `.npy` files (float32).

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::npy::header::Header;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

use crate::{Result, RuntimeError};

/// The longest `.npy` header read (NumPy's own default limit).
pub const MAX_HEADER_LEN: usize = 10_000;

/// Reads a float32 `.npy` file.
pub fn read_npy(path: &Path) -> Result<ArrayD<f32>> {
    let bytes = std::fs::read(path).map_err(|e| RuntimeError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    parse_npy(&path.display().to_string(), &bytes)
}

/// A float32 array from the bytes of a `.npy` file (`name` names it in errors). The header's
/// length and the data its shape declares are checked against the bytes present before
/// anything is allocated for them.
pub fn parse_npy(name: &str, bytes: &[u8]) -> Result<ArrayD<f32>> {
    let err = |message: String| RuntimeError::File {
        path: name.to_string(),
        message: format!("not a float32 .npy array: {message}"),
    };
    // magic (6 bytes), version (2), header length (u16 in version 1, u32 after)
    let (prelude, header_len) = match bytes.get(6) {
        Some(1) if bytes.len() >= 10 => (10, usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))),
        Some(2 | 3) if bytes.len() >= 12 => (
            12,
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
        ),
        _ => return Err(err("no .npy magic and version".into())),
    };
    if header_len > MAX_HEADER_LEN || header_len > bytes.len() - prelude {
        return Err(err(format!(
            "header of {header_len} bytes (at most {MAX_HEADER_LEN}, {} present)",
            bytes.len() - prelude
        )));
    }
    if nesting(&bytes[prelude..prelude + header_len]) > MAX_HEADER_NESTING {
        return Err(err(format!(
            "header nests deeper than {MAX_HEADER_NESTING} levels"
        )));
    }
    let mut reader = bytes;
    let header = Header::from_reader(&mut reader).map_err(|e| err(e.to_string()))?;
    let fits = header
        .shape
        .iter()
        .try_fold(4usize, |acc, &d| acc.checked_mul(d))
        .is_some_and(|n| n <= reader.len());
    if !fits {
        return Err(err(format!(
            "shape {:?} needs more than the {} data bytes present",
            header.shape,
            reader.len()
        )));
    }
    ArrayD::<f32>::read_npy(bytes).map_err(|e| err(e.to_string()))
}

/// How deeply brackets nest in a header (the header parser recurses once per level).
const MAX_HEADER_NESTING: usize = 16;

fn nesting(header: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for &b in header {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
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

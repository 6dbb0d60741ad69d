//! NumPy broadcasting of two shapes, shared by the f32 and the ring kernels.

use crate::{OpsError, Result};

/// The NumPy broadcast shape of `a` and `b`.
///
/// Errors: [`OpsError::ShapeMismatch`] naming `op` when two aligned axes differ and neither
/// is 1.
pub fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for (i, o) in out.iter_mut().enumerate() {
        // Axis i of the result, aligned on the trailing axes.
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        *o = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(OpsError::ShapeMismatch {
                    op,
                    left: a.to_vec(),
                    right: b.to_vec(),
                })
            }
        };
    }
    Ok(out)
}

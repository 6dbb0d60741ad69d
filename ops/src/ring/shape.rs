//! Shape helpers for tensors of any element type: reshape and axis permutation, always
//! returning an owned tensor in standard (row-major) layout.

use ndarray::{ArrayD, ArrayRefD, IxDyn};

use crate::{OpsError, Result};

/// The number of elements of `shape`, or an error naming `op` if it overflows `usize`.
pub fn checked_len(op: &'static str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| OpsError::InvalidArgument {
            op,
            message: format!("shape {shape:?} has more elements than fit in memory"),
        })
}

/// `x` with the same elements in row-major order and the new `shape`.
///
/// Errors: [`OpsError::ShapeMismatch`] if the element counts differ.
pub fn reshape<T: Clone>(x: &ArrayRefD<T>, shape: &[usize]) -> Result<ArrayD<T>> {
    let mismatch = || OpsError::ShapeMismatch {
        op: "reshape",
        left: x.shape().to_vec(),
        right: shape.to_vec(),
    };
    if checked_len("reshape", shape)? != x.len() {
        return Err(mismatch());
    }
    // A standard-layout tensor is copied as one slice; any other element by element.
    let data: Vec<T> = match x.as_slice() {
        Some(s) => s.to_vec(),
        None => x.iter().cloned().collect(),
    };
    ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|_| mismatch())
}

/// Permutes the axes: axis `i` of the result is axis `perm[i]` of `x` (as `numpy.transpose`).
///
/// Errors: [`OpsError::InvalidArgument`] if `perm` is not a permutation of `0..x.ndim()`.
pub fn transpose<T: Clone>(x: &ArrayRefD<T>, perm: &[usize]) -> Result<ArrayD<T>> {
    let mut seen = vec![false; x.ndim()];
    let valid = perm.len() == x.ndim()
        && perm
            .iter()
            .all(|&p| p < seen.len() && !std::mem::replace(&mut seen[p], true));
    if !valid {
        return Err(OpsError::InvalidArgument {
            op: "transpose",
            message: format!(
                "{perm:?} is not a permutation of the {} axes of shape {:?}",
                x.ndim(),
                x.shape()
            ),
        });
    }
    let view = x.view().permuted_axes(IxDyn(perm));
    Ok(view.as_standard_layout().into_owned())
}

/// The transpose of a 2-D tensor.
///
/// Errors: [`OpsError::InvalidArgument`] if `x` is not 2-D.
pub fn transpose_2d<T: Clone>(x: &ArrayRefD<T>) -> Result<ArrayD<T>> {
    if x.ndim() != 2 {
        return Err(OpsError::InvalidArgument {
            op: "transpose_2d",
            message: format!("expected a 2-D operand, got shape {:?}", x.shape()),
        });
    }
    transpose(x, &[1, 0])
}

//! Shape helpers for tensors of any element type: reshape and axis permutation, always
//! returning an owned tensor in standard (row-major) layout.

use std::mem::MaybeUninit;

use ndarray::{Array2, ArrayD, ArrayRefD, ArrayView2, CowArray, Ix2, IxDyn};
use rayon::prelude::*;

use crate::{OpsError, Result};

/// The side of the square tiles of [`transpose_tiled`].
const TILE: usize = 16;
/// The fewest elements transposed tile by tile: a smaller matrix (up to 2 MiB of words) stays
/// in the cache, and the element-by-element copy was as fast in isolation and faster within
/// the training steps of networks A and D (their `[128, 980]` and smaller weight and
/// activation transposes: 0.8 ms per step against 1.3-1.9 ms tiled).
const TILED_FROM: usize = 1 << 18;

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

/// [`reshape`] of a tensor that is not used again: a standard-layout one keeps its buffer (no
/// copy), any other is copied.
///
/// Errors: as [`reshape`].
pub fn reshape_owned<T: Clone>(x: ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>> {
    if checked_len("reshape", shape)? != x.len() || !x.is_standard_layout() {
        return reshape(&x, shape);
    }
    let from = x.shape().to_vec();
    x.into_shape_with_order(IxDyn(shape))
        .map_err(|_| OpsError::ShapeMismatch {
            op: "reshape",
            left: from,
            right: shape.to_vec(),
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
pub fn transpose<T: Copy + Send + Sync>(x: &ArrayRefD<T>, perm: &[usize]) -> Result<ArrayD<T>> {
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
    // A rotation of the axes of a standard-layout tensor is a transposed matrix: its rows
    // the first `k` axes, which go last.
    let k = perm.first().copied().unwrap_or(0);
    let rotation = perm
        .iter()
        .enumerate()
        .all(|(i, &p)| p == (k + i) % perm.len());
    if let (true, Some(src)) = (rotation && k > 0, x.as_slice()) {
        let rows: usize = x.shape()[..k].iter().product();
        let shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
        let invalid = |e: ndarray::ShapeError| OpsError::InvalidArgument {
            op: "transpose",
            message: e.to_string(),
        };
        let matrix = ArrayView2::from_shape((rows, x.len() / rows.max(1)), src).map_err(invalid)?;
        return standard_2d(matrix.t())
            .into_owned()
            .into_shape_with_order(IxDyn(&shape))
            .map_err(invalid);
    }
    let view = x.view().permuted_axes(IxDyn(perm));
    Ok(view.as_standard_layout().into_owned())
}

/// The row-major `rows x cols` matrix `src` (of `rows * cols` elements; it panics on fewer),
/// transposed (`cols x rows`, row-major), one square tile at a time: the tile's rows are read
/// and its columns written while both are in the cache. A strided view copied element by
/// element along the output reads one element per cache line: network B's first im2col
/// matrix in a batch-128 training step (73,728 x 25 words), whose transpose the filter's
/// gradient multiplies, took 9-10 ms so and takes 2.5 ms tiled. Wider matrices gain less,
/// both copies being bound by memory (8,192 x 400: 9-19 ms against 12-30).
pub(crate) fn transpose_tiled<T: Copy + Send + Sync>(
    src: &[T],
    rows: usize,
    cols: usize,
) -> Vec<T> {
    let n = rows * cols;
    let mut out = Vec::with_capacity(n);
    let dst = &mut out.spare_capacity_mut()[..n];
    // Output rows `c0..c0 + TILE` (the columns `c0..` of `src`), all of them written: tile
    // by tile through a buffer, so that each output row takes `TILE` contiguous elements at
    // once (the rows of a tall matrix's transpose are often a multiple of 4 KiB apart, and
    // writing them an element at a time evicts each other's cache lines).
    let band = |(t, dst): (usize, &mut [MaybeUninit<T>])| {
        let c0 = t * TILE;
        let width = dst.len() / rows;
        let mut tile = [src[0]; TILE * TILE];
        for r0 in (0..rows).step_by(TILE) {
            let height = TILE.min(rows - r0);
            for r in 0..height {
                let row = &src[(r0 + r) * cols + c0..][..width];
                for (c, &v) in row.iter().enumerate() {
                    tile[c * TILE + r] = v;
                }
            }
            for c in 0..width {
                let out = &mut dst[c * rows + r0..][..height];
                for (o, &v) in out.iter_mut().zip(&tile[c * TILE..][..height]) {
                    o.write(v);
                }
            }
        }
    };
    if rows > 0 && cols > 0 {
        let chunk = TILE * rows;
        if n >= crate::par::ELEMENTWISE && cols > TILE {
            dst.par_chunks_mut(chunk).enumerate().for_each(band);
        } else {
            dst.chunks_mut(chunk).enumerate().for_each(band);
        }
    }
    // SAFETY: the bands cover the `n` elements, and each band writes every element of its
    // rows: element `(c, r)` for each of its `width` columns `c` and every row `r`.
    unsafe { out.set_len(n) };
    out
}

/// `a` in standard layout: itself if it is, a tiled transpose if it is the transpose of a
/// large standard-layout matrix ([`transpose_tiled`]), else an element-by-element copy.
pub(crate) fn standard_2d<T: Copy + Send + Sync>(a: ArrayView2<'_, T>) -> CowArray<'_, T, Ix2> {
    if a.is_standard_layout() {
        return CowArray::from(a);
    }
    if let (true, Some(src)) = (a.len() >= TILED_FROM, a.t().to_slice()) {
        let data = transpose_tiled(src, a.ncols(), a.nrows());
        if let Ok(t) = Array2::from_shape_vec(a.raw_dim(), data) {
            return CowArray::from(t);
        }
    }
    // Not a view of contiguous memory in either order: copied element by element.
    CowArray::from(a.as_standard_layout().into_owned())
}

/// The transpose of a 2-D tensor.
///
/// Errors: [`OpsError::InvalidArgument`] if `x` is not 2-D.
pub fn transpose_2d<T: Copy + Send + Sync>(x: &ArrayRefD<T>) -> Result<ArrayD<T>> {
    if x.ndim() != 2 {
        return Err(OpsError::InvalidArgument {
            op: "transpose_2d",
            message: format!("expected a 2-D operand, got shape {:?}", x.shape()),
        });
    }
    transpose(x, &[1, 0])
}

/// The elements of `a` in logical order, as a slice: borrowed where `a` is in standard layout
/// (a pass over a slice vectorises; ndarray's iterator over a dynamic shape steps one index at
/// a time, which for a word's `r` and `beta` cost a tenth of PrivateCompare on one thread).
pub fn contiguous<T: Clone>(a: &ArrayRefD<T>) -> std::borrow::Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().cloned().collect()),
    }
}

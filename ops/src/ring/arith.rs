//! Elementwise arithmetic over Z_2^64 (wrapping `u64`), shifts and sums.
//!
//! Binary operations broadcast like NumPy: shapes are aligned on their trailing axes and an
//! axis of length 1 (or a missing leading axis) is repeated, so `[.., n] + [n]` adds a bias to
//! every row. Large operands are processed in parallel with rayon.

use ndarray::{ArrayD, ArrayRefD, Axis, IxDyn, Zip};

use super::repeat::{repeat_of, zip_repeat};
pub use crate::broadcast::broadcast_shape;
use crate::{OpsError, Result};

/// Operands with at least this many elements are processed in parallel (see [`crate::par`]).
pub const PAR_THRESHOLD: usize = crate::par::ELEMENTWISE;

/// Applies `f` elementwise to `a` and `b` broadcast together (see [`broadcast_shape`]).
pub fn zip_with<T, F>(
    op: &'static str,
    a: &ArrayRefD<T>,
    b: &ArrayRefD<T>,
    f: F,
) -> Result<ArrayD<T>>
where
    T: Copy + Send + Sync,
    F: Fn(T, T) -> T + Send + Sync,
{
    let shape = broadcast_shape(op, a.shape(), b.shape())?;
    // A scalar or an operand repeated over the leading axes: the fast paths.
    if a.shape() != b.shape() {
        let fast = if a.shape() == shape.as_slice() {
            repeat_of(b, &shape).and_then(|r| zip_repeat(a, r, &f))
        } else if b.shape() == shape.as_slice() {
            repeat_of(a, &shape).and_then(|r| zip_repeat(b, r, |y, x| f(x, y)))
        } else {
            None
        };
        if let Some(out) = fast {
            return Ok(out);
        }
    }
    let mismatch = || OpsError::ShapeMismatch {
        op,
        left: a.shape().to_vec(),
        right: b.shape().to_vec(),
    };
    let av = a.broadcast(IxDyn(&shape)).ok_or_else(mismatch)?;
    let bv = b.broadcast(IxDyn(&shape)).ok_or_else(mismatch)?;
    let zip = Zip::from(&av).and(&bv);
    Ok(if av.len() >= PAR_THRESHOLD {
        zip.par_map_collect(|&x, &y| f(x, y))
    } else {
        zip.map_collect(|&x, &y| f(x, y))
    })
}

/// Applies `f` to every element of `x`, in parallel when `x` is large.
pub fn map_with<T, U, F>(x: &ArrayRefD<T>, f: F) -> ArrayD<U>
where
    T: Copy + Send + Sync,
    U: Send,
    F: Fn(T) -> U + Send + Sync,
{
    let zip = Zip::from(x);
    if x.len() >= PAR_THRESHOLD {
        zip.par_map_collect(|&v| f(v))
    } else {
        zip.map_collect(|&v| f(v))
    }
}

/// `a + b` mod 2^64, broadcasting.
pub fn add(a: &ArrayRefD<u64>, b: &ArrayRefD<u64>) -> Result<ArrayD<u64>> {
    zip_with("ring add", a, b, u64::wrapping_add)
}

/// `a - b` mod 2^64, broadcasting.
pub fn sub(a: &ArrayRefD<u64>, b: &ArrayRefD<u64>) -> Result<ArrayD<u64>> {
    zip_with("ring sub", a, b, u64::wrapping_sub)
}

/// `a * b` mod 2^64 elementwise, broadcasting.
pub fn mul(a: &ArrayRefD<u64>, b: &ArrayRefD<u64>) -> Result<ArrayD<u64>> {
    zip_with("ring mul", a, b, u64::wrapping_mul)
}

/// `-x` mod 2^64.
pub fn neg(x: &ArrayRefD<u64>) -> ArrayD<u64> {
    map_with(x, u64::wrapping_neg)
}

/// `s * x` mod 2^64 for a public scalar `s` (e.g. an encoded fixed-point constant).
pub fn mul_scalar(x: &ArrayRefD<u64>, s: u64) -> ArrayD<u64> {
    map_with(x, move |v| v.wrapping_mul(s))
}

/// `x + s` mod 2^64 for a public scalar `s`.
pub fn add_scalar(x: &ArrayRefD<u64>, s: u64) -> ArrayD<u64> {
    map_with(x, move |v| v.wrapping_add(s))
}

pub(super) fn check_shift(op: &'static str, k: u32) -> Result<()> {
    if k >= 64 {
        return Err(OpsError::InvalidArgument {
            op,
            message: format!("shift by {k} bits, must be below 64"),
        });
    }
    Ok(())
}

/// Arithmetic shift right by `k` bits, reading each word as a two's-complement `i64`
/// (fixed-point truncation in the clear: rounds toward minus infinity).
///
/// Errors: [`OpsError::InvalidArgument`] if `k >= 64`.
pub fn shr_arith(x: &ArrayRefD<u64>, k: u32) -> Result<ArrayD<u64>> {
    check_shift("ring shr_arith", k)?;
    Ok(map_with(x, move |v| ((v as i64) >> k) as u64))
}

/// Logical shift right by `k` bits (zeros enter at the top).
///
/// Errors: [`OpsError::InvalidArgument`] if `k >= 64`.
pub fn shr_logical(x: &ArrayRefD<u64>, k: u32) -> Result<ArrayD<u64>> {
    check_shift("ring shr_logical", k)?;
    Ok(map_with(x, move |v| v >> k))
}

/// Shift left by `k` bits, i.e. multiplication by 2^k mod 2^64.
///
/// Errors: [`OpsError::InvalidArgument`] if `k >= 64`.
pub fn shl(x: &ArrayRefD<u64>, k: u32) -> Result<ArrayD<u64>> {
    check_shift("ring shl", k)?;
    Ok(map_with(x, move |v| v << k))
}

/// `floor((x - offset) s / 2^k)` modulo 2^64, broadcasting: each word of `x` read as an
/// unsigned integer, `s` as a two's-complement one, the product exact in 128 bits (a value
/// opened under a mask, or the mask, times a public fixed-point scalar, truncated without
/// wrapping around first).
///
/// Errors: [`OpsError::InvalidArgument`] if `k >= 128`; shapes that do not broadcast.
pub fn mul_wide_shr(
    x: &ArrayRefD<u64>,
    s: &ArrayRefD<u64>,
    offset: u64,
    k: u32,
) -> Result<ArrayD<u64>> {
    if k >= 128 {
        return Err(OpsError::InvalidArgument {
            op: "ring mul_wide_shr",
            message: format!("shift by {k} bits, must be below 128"),
        });
    }
    // |x - offset| < 2^64 and |s| <= 2^63: the product fits in an i128.
    zip_with("ring mul_wide_shr", x, s, move |v, l| {
        (((v as i128 - offset as i128) * (l as i64 as i128)) >> k) as u64
    })
}

/// The wrapping sum over `axis`, which is removed from the shape.
///
/// Errors: [`OpsError::InvalidArgument`] if `axis` is not an axis of `x`.
pub fn sum_axis(x: &ArrayRefD<u64>, axis: usize) -> Result<ArrayD<u64>> {
    if axis >= x.ndim() {
        return Err(OpsError::InvalidArgument {
            op: "ring sum_axis",
            message: format!("axis {axis} out of range for shape {:?}", x.shape()),
        });
    }
    Ok(x.fold_axis(Axis(axis), 0u64, |acc, v| acc.wrapping_add(*v)))
}

/// The wrapping sum of all elements.
pub fn sum_all(x: &ArrayRefD<u64>) -> u64 {
    x.iter().fold(0u64, |acc, v| acc.wrapping_add(*v))
}

/// Reinterprets two's-complement `i64` as ring elements.
pub fn from_i64(x: &ArrayRefD<i64>) -> ArrayD<u64> {
    map_with(x, |v| v as u64)
}

/// Reads ring elements as two's-complement `i64` (the signed representative in
/// `[-2^63, 2^63)`).
pub fn to_i64(x: &ArrayRefD<u64>) -> ArrayD<i64> {
    map_with(x, |v| v as i64)
}

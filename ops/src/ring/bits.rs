//! Bit decomposition of ring words, for SecureNN's PrivateCompare.

use ndarray::{ArrayD, ArrayRefD, Axis, IxDyn};
use rayon::prelude::*;

use super::arith::PAR_THRESHOLD;
use crate::{OpsError, Result};

/// Bits in a ring word.
pub const WORD_BITS: usize = 64;

/// The lowest `n` bits set (`n` from 0 to 64): the mask of a word's first `n` lanes.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const fn low_bits(n: usize) -> u64 {
    if n >= WORD_BITS {
        u64::MAX
    } else {
        (1 << n) - 1
    }
}

/// The bits of every word, as a new trailing axis of length 64, least significant bit first:
/// `out[.., i] = (x[..] >> i) & 1`.
pub fn bit_decompose(x: &ArrayRefD<u64>) -> ArrayD<u8> {
    bit_decompose_low(x, WORD_BITS)
}

/// The lowest `bits` bits of every word (`bits` at most 64, more are cut to 64), as a new
/// trailing axis of length `bits`, least significant bit first.
pub fn bit_decompose_low(x: &ArrayRefD<u64>, bits: usize) -> ArrayD<u8> {
    let bits = bits.min(WORD_BITS);
    // Standard layout, so a slice.
    let x = x.as_standard_layout();
    let words = x.as_slice().unwrap_or(&[]);
    let mut out = vec![0u8; words.len() * bits];
    let fill = |(dst, w): (&mut [u8], &u64)| {
        for (i, b) in dst.iter_mut().enumerate() {
            *b = ((w >> i) & 1) as u8;
        }
    };
    if bits > 0 {
        if words.len() * bits >= PAR_THRESHOLD {
            out.par_chunks_mut(bits).zip(words).for_each(fill);
        } else {
            out.chunks_mut(bits).zip(words).for_each(fill);
        }
    }
    let mut shape = x.shape().to_vec();
    shape.push(bits);
    ArrayD::from_shape_vec(IxDyn(&shape), out).unwrap_or_else(|_| {
        // Unreachable: the buffer has exactly `len * bits` elements.
        ArrayD::zeros(IxDyn(&shape))
    })
}

/// The inverse of [`bit_decompose`]: folds a trailing axis of 64 bits (LSB first) back into
/// words; only the lowest bit of each `u8` is read.
///
/// Errors: [`OpsError::InvalidArgument`] if the last axis is not of length 64.
pub fn bit_compose(bits: &ArrayRefD<u8>) -> Result<ArrayD<u64>> {
    let last = bits.ndim().checked_sub(1);
    match last {
        Some(ax) if bits.shape()[ax] == WORD_BITS => Ok(bits.map_axis(Axis(ax), |lane| {
            lane.iter()
                .enumerate()
                .fold(0u64, |acc, (i, &b)| acc | (u64::from(b & 1) << i))
        })),
        _ => Err(OpsError::InvalidArgument {
            op: "bit_compose",
            message: format!(
                "expected a trailing axis of {WORD_BITS} bits, got shape {:?}",
                bits.shape()
            ),
        }),
    }
}

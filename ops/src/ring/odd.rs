//! The odd ring Z_{2^64-1}, used by SecureNN's ShareConvert.
//!
//! Elements are `u64` in the canonical range `0..u64::MAX`; the word `u64::MAX` = 2^64-1 is
//! congruent to 0 and every function here maps it to 0, so it never appears in an output.
//! Because 2^64 ≡ 1 (mod 2^64-1), a carry out of a 64-bit addition is folded back in as +1,
//! and a 128-bit product `hi * 2^64 + lo` reduces to `hi + lo`.

use ndarray::{ArrayD, ArrayRefD};

use super::arith::{map_with, zip_with};
use crate::Result;

/// The modulus 2^64 - 1.
pub const ODD_MODULUS: u64 = u64::MAX;

/// The canonical representative of any word: `u64::MAX` becomes 0, all else is unchanged.
#[inline]
pub fn odd_reduce_word(x: u64) -> u64 {
    if x == ODD_MODULUS {
        0
    } else {
        x
    }
}

/// `a + b` mod 2^64-1 for any words (canonical or not); the result is canonical.
#[inline]
pub fn odd_add_words(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    // With a carry the true sum is 2^64 + s ≡ s + 1, and s <= 2^64 - 2, so no overflow.
    odd_reduce_word(s + u64::from(carry))
}

/// `-a` mod 2^64-1; the result is canonical.
#[inline]
pub fn odd_neg_word(a: u64) -> u64 {
    let a = odd_reduce_word(a);
    if a == 0 {
        0
    } else {
        ODD_MODULUS - a
    }
}

/// `a - b` mod 2^64-1; the result is canonical.
#[inline]
pub fn odd_sub_words(a: u64, b: u64) -> u64 {
    odd_add_words(a, odd_neg_word(b))
}

/// `a * b` mod 2^64-1 through a 128-bit product; the result is canonical.
#[inline]
pub fn odd_mul_words(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    odd_add_words((p >> 64) as u64, p as u64)
}

/// Reduces words of Z_2^64 (or any `u64`) into canonical elements of Z_{2^64-1}.
pub fn odd_reduce(x: &ArrayRefD<u64>) -> ArrayD<u64> {
    map_with(x, odd_reduce_word)
}

/// `a + b` mod 2^64-1, broadcasting as [`super::add`].
pub fn odd_add(a: &ArrayRefD<u64>, b: &ArrayRefD<u64>) -> Result<ArrayD<u64>> {
    zip_with("odd-ring add", a, b, odd_add_words)
}

/// `a - b` mod 2^64-1, broadcasting as [`super::add`].
pub fn odd_sub(a: &ArrayRefD<u64>, b: &ArrayRefD<u64>) -> Result<ArrayD<u64>> {
    zip_with("odd-ring sub", a, b, odd_sub_words)
}

/// `a * b` mod 2^64-1 elementwise, broadcasting as [`super::add`].
pub fn odd_mul(a: &ArrayRefD<u64>, b: &ArrayRefD<u64>) -> Result<ArrayD<u64>> {
    zip_with("odd-ring mul", a, b, odd_mul_words)
}

/// `-x` mod 2^64-1.
pub fn odd_neg(x: &ArrayRefD<u64>) -> ArrayD<u64> {
    map_with(x, odd_neg_word)
}

/// `s * x` mod 2^64-1 for a public scalar `s` (any `u64`; small ones are the common case).
pub fn odd_mul_scalar(x: &ArrayRefD<u64>, s: u64) -> ArrayD<u64> {
    map_with(x, move |v| odd_mul_words(v, s))
}

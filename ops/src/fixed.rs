//! Fixed-point encoding of reals into Z_2^64.
//!
//! A real `x` is encoded as the two's-complement word of `round(x * 2^f)`, where `f` is the
//! number of fractional bits ([`FixedPoint::frac_bits`], default 16). Decoding reads the word
//! as an `i64` and divides by 2^f.
//!
//! **Precision.** One unit in the last place is `2^-f` ([`FixedPoint::ulp`]; 1.5e-5 for
//! `f = 16`). Encoding rounds to nearest (ties away from zero), so a round trip is exact to
//! half an ulp plus the rounding of the float type; truncation after a product rounds toward
//! minus infinity and adds at most one more ulp of error.
//!
//! **Range.** [`FixedPoint::encode`] accepts `|x| < 2^(31 - f)` ([`FixedPoint::max_abs`]; 32768
//! for `f = 16`). Then every encoded word is below 2^31 in magnitude, so the product of two
//! encoded values is below 2^62 and fits a signed 64-bit word with a bit to spare: a product
//! followed by truncation by `f` bits (in the clear with [`FixedPoint::truncate`], or on
//! shares) is exact up to rounding. Values computed inside the ring may grow past this bound
//! as long as products stay below 2^63; the bound only guards inputs.

use ndarray::{ArrayD, ArrayRefD};

use crate::ring::{map_with, shr_arith};
use crate::{OpsError, Result};

/// Largest accepted number of fractional bits: it leaves at least one integer bit in range.
pub const MAX_FRAC_BITS: u32 = 30;

/// The default number of fractional bits.
pub const DEFAULT_FRAC_BITS: u32 = 16;

/// A real type that can be encoded: `f32` or `f64`.
pub trait Real: Copy + Send + Sync + private::Sealed {
    /// The value as `f64` (exact for both types).
    fn to_f64(self) -> f64;
}

impl Real for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Real for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}

mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// Whether `|x| < limit`; false for NaN.
fn encodable(x: f64, limit: f64) -> bool {
    x.abs() < limit
}

/// A fixed-point format with `frac_bits` fractional bits in Z_2^64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FixedPoint {
    /// Fractional bits `f`, at most [`MAX_FRAC_BITS`]; every method checks it.
    pub frac_bits: u32,
}

impl Default for FixedPoint {
    fn default() -> Self {
        FixedPoint {
            frac_bits: DEFAULT_FRAC_BITS,
        }
    }
}

impl FixedPoint {
    /// A format with `frac_bits` fractional bits.
    ///
    /// Errors: [`OpsError::InvalidArgument`] if `frac_bits > MAX_FRAC_BITS`.
    pub fn new(frac_bits: u32) -> Result<Self> {
        let fp = FixedPoint { frac_bits };
        fp.check()?;
        Ok(fp)
    }

    fn check(self) -> Result<()> {
        if self.frac_bits > MAX_FRAC_BITS {
            return Err(OpsError::InvalidArgument {
                op: "fixed point",
                message: format!(
                    "{} fractional bits, at most {MAX_FRAC_BITS} are supported",
                    self.frac_bits
                ),
            });
        }
        Ok(())
    }

    /// The scale 2^f.
    pub fn scale(self) -> f64 {
        (self.frac_bits.min(MAX_FRAC_BITS) as f64).exp2()
    }

    /// The resolution 2^-f: one unit in the last place.
    pub fn ulp(self) -> f64 {
        1.0 / self.scale()
    }

    /// The exclusive bound on `|x|` that [`encode`](Self::encode) accepts: 2^(31 - f)
    /// (see the module docs for why).
    pub fn max_abs(self) -> f64 {
        (31.0 - self.frac_bits.min(MAX_FRAC_BITS) as f64).exp2()
    }

    /// The encoding of one real, or `None` if it is not finite or `|x| >= max_abs()`.
    pub fn encode_scalar(self, x: f64) -> Option<u64> {
        if self.check().is_err() || !encodable(x, self.max_abs()) {
            return None;
        }
        Some(((x * self.scale()).round() as i64) as u64)
    }

    /// The real that a word encodes.
    pub fn decode_scalar(self, w: u64) -> f64 {
        (w as i64) as f64 / self.scale()
    }

    /// Encodes every element as `round(x * 2^f)` in two's complement.
    ///
    /// Errors: [`OpsError::OutOfRange`] naming the first element (in row-major order) that is
    /// not finite or has `|x| >= max_abs()`; [`OpsError::InvalidArgument`] if the format has
    /// too many fractional bits.
    pub fn encode<T: Real>(&self, x: &ArrayRefD<T>) -> Result<ArrayD<u64>> {
        self.check()?;
        let limit = self.max_abs();
        if let Some((index, v)) = x
            .iter()
            .map(|v| v.to_f64())
            .enumerate()
            .find(|(_, v)| !encodable(*v, limit))
        {
            return Err(OpsError::OutOfRange {
                value: v,
                index,
                limit,
                frac_bits: self.frac_bits,
            });
        }
        let scale = self.scale();
        Ok(map_with(x, move |v| {
            ((v.to_f64() * scale).round() as i64) as u64
        }))
    }

    /// Decodes every word (read as `i64`) into `f64`.
    pub fn decode(&self, x: &ArrayRefD<u64>) -> ArrayD<f64> {
        let fp = *self;
        map_with(x, move |w| fp.decode_scalar(w))
    }

    /// Decodes every word into `f32` (rounding the `f64` result).
    pub fn decode_f32(&self, x: &ArrayRefD<u64>) -> ArrayD<f32> {
        let fp = *self;
        map_with(x, move |w| fp.decode_scalar(w) as f32)
    }

    /// Truncation in the clear: the arithmetic shift right by `f` bits that brings a product
    /// (with `2f` fractional bits) back to `f` fractional bits, rounding toward minus infinity.
    ///
    /// Errors: [`OpsError::InvalidArgument`] if the format has too many fractional bits.
    pub fn truncate(&self, x: &ArrayRefD<u64>) -> Result<ArrayD<u64>> {
        self.check()?;
        shr_arith(x, self.frac_bits)
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{arr1, ArrayD, IxDyn};

    use super::*;
    use crate::ring;

    #[test]
    fn fixed_round_trip_within_half_ulp() {
        for f in [0u32, 8, 16, 20, 30] {
            let fp = FixedPoint::new(f).unwrap();
            let lim = fp.max_abs();
            let xs: Vec<f64> = (0..2001)
                .map(|i| (i as f64 - 1000.0) / 1000.0 * lim * 0.999)
                .chain([0.0, -0.0, fp.ulp(), -fp.ulp(), 1.0 / 3.0, -2.5])
                .filter(|x| x.abs() < lim)
                .collect();
            let x = ArrayD::from_shape_vec(IxDyn(&[xs.len()]), xs).unwrap();
            let back = fp.decode(&fp.encode(&x).unwrap());
            for (a, b) in x.iter().zip(back.iter()) {
                assert!((a - b).abs() <= fp.ulp() / 2.0 + 1e-12, "f={f} {a} -> {b}");
            }
        }
    }

    #[test]
    fn fixed_negative_numbers_are_twos_complement() {
        let fp = FixedPoint::default();
        assert_eq!(fp.frac_bits, 16);
        let x = arr1(&[-1.0f32, 1.0, -0.5, 0.0, -1.0 / 65536.0]).into_dyn();
        let e = fp.encode(&x).unwrap();
        assert_eq!(
            e,
            arr1(&[(-65536i64) as u64, 65536, (-32768i64) as u64, 0, u64::MAX]).into_dyn()
        );
        assert_eq!(fp.decode_f32(&e), x);
        // Round to nearest, ties away from zero.
        assert_eq!(fp.encode_scalar(1.5 / 65536.0), Some(2));
        assert_eq!(fp.encode_scalar(-1.5 / 65536.0), Some((-2i64) as u64));
        assert_eq!(fp.encode_scalar(1.4 / 65536.0), Some(1));
        assert_eq!(fp.decode_scalar(u64::MAX), -1.0 / 65536.0);
    }

    #[test]
    fn fixed_out_of_range_names_first_index() {
        let fp = FixedPoint::default();
        assert_eq!(fp.max_abs(), 32768.0);
        let x = arr1(&[1.0f64, 32767.9, -40000.0, 1e9]).into_dyn();
        match fp.encode(&x) {
            Err(OpsError::OutOfRange {
                value,
                index,
                limit,
                frac_bits,
            }) => {
                assert_eq!((value, index, limit, frac_bits), (-40000.0, 2, 32768.0, 16));
            }
            other => panic!("expected OutOfRange, got {other:?}"),
        }
        let edge = arr1(&[32768.0f32]).into_dyn();
        assert!(matches!(
            fp.encode(&edge),
            Err(OpsError::OutOfRange { index: 0, .. })
        ));
        let nan = arr1(&[0.0f32, f32::NAN]).into_dyn();
        assert!(matches!(
            fp.encode(&nan),
            Err(OpsError::OutOfRange { index: 1, .. })
        ));
        let inf = arr1(&[f64::NEG_INFINITY]).into_dyn();
        assert!(fp.encode(&inf).is_err());
        assert_eq!(fp.encode_scalar(f64::NAN), None);
        // Out-of-range message is readable.
        let msg = fp.encode(&x).unwrap_err().to_string();
        assert!(msg.contains("index 2"), "{msg}");
    }

    #[test]
    fn fixed_invalid_frac_bits() {
        assert!(FixedPoint::new(31).is_err());
        let bad = FixedPoint { frac_bits: 70 };
        let x = arr1(&[1.0f32]).into_dyn();
        assert!(matches!(
            bad.encode(&x),
            Err(OpsError::InvalidArgument { .. })
        ));
        assert!(bad.truncate(&arr1(&[1u64]).into_dyn()).is_err());
        assert_eq!(bad.encode_scalar(1.0), None);
        assert!(bad.scale().is_finite());
    }

    #[test]
    fn fixed_product_then_truncate() {
        let fp = FixedPoint::default();
        let a = arr1(&[1.5f64, -2.25, 100.0, -0.001, 181.0]).into_dyn();
        let b = arr1(&[2.0f64, 3.5, -0.5, 1000.0, -181.0]).into_dyn();
        let prod = ring::mul(&fp.encode(&a).unwrap(), &fp.encode(&b).unwrap()).unwrap();
        let t = fp.decode(&fp.truncate(&prod).unwrap());
        for i in 0..5 {
            let want = a[i] * b[i];
            // Encoding error of each factor times the other, plus one ulp for truncation.
            let tol = fp.ulp() * (1.0 + (a[i].abs() + b[i].abs()) / 2.0) + 1e-12;
            assert!((t[i] - want).abs() <= tol, "{} vs {want}", t[i]);
        }
        // Truncation rounds toward minus infinity.
        let w = arr1(&[(-1i64) as u64, 1]).into_dyn();
        assert_eq!(fp.truncate(&w).unwrap(), arr1(&[u64::MAX, 0]).into_dyn());
    }
}

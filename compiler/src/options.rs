//! Compile options, and the ranges in which each one is sound ([`CompileOptions::validate`],
//! called by every compile entry point).

use serde::{Deserialize, Serialize};
use shareflow_ops::fixed::DEFAULT_FRAC_BITS;

use crate::lower::poly::{Fit, Target};
use crate::CompileError;

/// The fewest fractional bits accepted. Every truncation adds an error of one ulp (`2^-f`),
/// which adds up over a network's layers, and below 12 bits Pond's polynomials on the
/// intervals networks need (8 and 16 for A-D) can no longer keep 8 significant bits of their
/// scale `1 / B` ([`INTERVAL_PRECISION_BITS`]).
pub const MIN_FRAC_BITS: u32 = 12;

/// The most fractional bits accepted. A product of two values carries `2f` fractional bits
/// and truncation is exact while it stays below `2^62` in magnitude (dealer truncation; the
/// paper's DReLU is exact to the same bound), so `|x y| < 2^(62 - 2f)`: at `f = 24`, products
/// up to `2^14` (values of a hundred times each other), about what ordinary networks reach
/// (A-D: below 51). Beyond it hidden products would wrap without an error.
pub const MAX_FRAC_BITS: u32 = 24;

/// The highest degree of a polynomial approximation: the least-squares fit solves the normal
/// equations of the monomials on `[-1, 1]`, whose conditioning grows quickly with the degree;
/// up to 20 the fit still improves with every even degree (`lower::poly` tests).
pub const MAX_DEGREE: usize = 20;

/// The relative precision (in bits) that the bounds of a polynomial's interval keep:
/// `[-B, B]` with `2^(PRECISION_BITS - f) <= B <= 2^(f - PRECISION_BITS)`, so that `B` spans at
/// least `2^8` ulps (the coefficients of a ReLU fit scale with `B`) and the scale `1 / B`
/// keeps 8 significant bits.
pub const INTERVAL_PRECISION_BITS: i32 = 8;

/// How products are scaled back to `f` fractional bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Truncation {
    /// Dealer truncation pairs `(r, r >> f, msb(r))`: one opening, exact to one ulp.
    Dealer,
    /// SecureML's local shift: no communication, one ulp, and a rare large error.
    Local,
}

/// A polynomial approximation (Pond's ReLU, both protocols' sigmoid): the least-squares
/// polynomial of `degree` on `[-interval, interval]`.
///
/// **Outside the interval the polynomial is not the function**: its error grows like the
/// highest power (ReLU(50) is about -1.4e9 with degree 10 on `[-8, 8]`), silently, as the
/// protocol cannot look at the values. Choose the interval to cover the values met; `shareflow
/// eval` counts the activations' inputs that fall outside it on the test set.
///
/// Accepted ([`CompileOptions::validate`]): `degree` from 1 to [`MAX_DEGREE`]; `interval`
/// finite, from `2^(8 - f)` to `2^(f - 8)` (1/256 to 256 at `f = 16`, see
/// [`INTERVAL_PRECISION_BITS`]), and every coefficient of the fit must encode in fixed point
/// (`|c| < 2^(31 - f)`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PolyApprox {
    /// Half-width of the interval fitted, `[-interval, interval]` (real values, not ring units).
    pub interval: f64,
    /// Degree of the polynomial.
    pub degree: usize,
}

/// How SecureNN takes the sign of a shared value (DReLU), for ReLU, max pooling and argmax.
/// Both are exact; they differ in cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum Comparison {
    /// The paper's DReLU: ShareConvert to Z_{2^64-1}, then ComputeMSB; two PrivateCompares
    /// over 64 bits and 8 rounds. Exact for `|a| < 2^62` ring units (reals `|x| < 2^46` at 16
    /// fractional bits); comparisons of two values (max pooling, argmax) for half that.
    Paper,
    /// The sign from one masked opening `c = a + r` and one PrivateCompare over the low 63
    /// bits of `c` and `r` (3 rounds, and ReLU and max pooling multiply by the bit in the same
    /// rounds). Exact for every word of Z_2^64; comparisons of two values for `|x| < 2^62`
    /// ring units. Narrower (fewer bytes) where a bound proves it ([`crate::bounds`]).
    #[default]
    Opened,
}

/// Options of [`crate::compile`] and [`crate::compile_serving`]. Every field has a range in
/// which the compiled program is sound; [`CompileOptions::validate`] refuses anything else
/// with [`CompileError::Option`], and every compile entry point calls it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompileOptions {
    /// Fractional bits of fixed point, from [`MIN_FRAC_BITS`] to [`MAX_FRAC_BITS`] (default
    /// 16). Inputs must satisfy `|x| < 2^(31 - f)`; the only place the precision is set.
    pub frac_bits: u32,
    /// How products are truncated back to `frac_bits` fractional bits.
    pub truncation: Truncation,
    /// Pond's ReLU (see [`PolyApprox`]: wrong outside its interval).
    pub relu: PolyApprox,
    /// Both protocols' sigmoid (see [`PolyApprox`]: wrong outside its interval).
    pub sigmoid: PolyApprox,
    /// SecureNN's comparisons.
    #[serde(default)]
    pub comparison: Comparison,
    /// SecureNN's opened comparisons of at least this many words at once take
    /// PrivateCompare's result from a carry circuit on bit planes
    /// ([`crate::lower::securenn::carry`]): about a third of the bytes, `ceil(log2 n) - 1`
    /// rounds more for `n` bits. Default [`CARRY_MIN_WORDS`]; 0: every comparison,
    /// `usize::MAX`: none.
    #[serde(default = "default_carry_min_words")]
    pub carry_min_words: usize,
}

/// The default [`CompileOptions::carry_min_words`]: a batch-128 training step's or
/// prediction's comparisons (B's first max pool compares 589,824 words, A's hidden ReLU
/// 16,384) take the circuit, a single image's (B: at most 4,608 words, C 5,760) the one round
/// of PrivateCompare, where the circuit's five round trips would cost more than its
/// bytes save. Measured on A's batch-128 step over QUIC (2 cores): 61-63 ms with its ReLU
/// by the circuit against 67-69 ms by PrivateCompare.
pub const CARRY_MIN_WORDS: usize = 16_384;

fn default_carry_min_words() -> usize {
    CARRY_MIN_WORDS
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            frac_bits: DEFAULT_FRAC_BITS,
            truncation: Truncation::Dealer,
            // Chosen on network A (agreement with plaintext over the test set): values of
            // its pre-activations rarely leave [-8, 8], and degree 10 keeps the error there
            // small; see `shareflow eval --relu-interval/--relu-degree`.
            relu: PolyApprox {
                interval: 8.0,
                degree: 10,
            },
            // Largest error 0.032 on [-8, 8]; beyond it the polynomial diverges.
            sigmoid: PolyApprox {
                interval: 8.0,
                degree: 7,
            },
            comparison: Comparison::default(),
            carry_min_words: CARRY_MIN_WORDS,
        }
    }
}

impl CompileOptions {
    /// Checks every option against its sound range (documented on each field); the error
    /// names the field, the value and the range.
    pub fn validate(&self) -> Result<(), CompileError> {
        let f = self.frac_bits;
        if !(MIN_FRAC_BITS..=MAX_FRAC_BITS).contains(&f) {
            return Err(CompileError::Option {
                field: "frac_bits",
                value: f.to_string(),
                allowed: format!("{MIN_FRAC_BITS} to {MAX_FRAC_BITS}"),
            });
        }
        check_poly(
            ["relu.degree", "relu.interval"],
            &self.relu,
            Target::Relu,
            f,
        )?;
        check_poly(
            ["sigmoid.degree", "sigmoid.interval"],
            &self.sigmoid,
            Target::Sigmoid,
            f,
        )
    }
}

/// The range of a polynomial's degree and interval at `f` fractional bits, and the fit's
/// coefficients encodable.
fn check_poly(
    [degree, field]: [&'static str; 2],
    p: &PolyApprox,
    target: Target,
    f: u32,
) -> Result<(), CompileError> {
    if !(1..=MAX_DEGREE).contains(&p.degree) {
        return Err(CompileError::Option {
            field: degree,
            value: p.degree.to_string(),
            allowed: format!("1 to {MAX_DEGREE}"),
        });
    }
    let lo = f64::from(INTERVAL_PRECISION_BITS - f as i32).exp2();
    let hi = f64::from(f as i32 - INTERVAL_PRECISION_BITS).exp2();
    if !(p.interval.is_finite() && (lo..=hi).contains(&p.interval)) {
        return Err(CompileError::Option {
            field,
            value: p.interval.to_string(),
            allowed: format!("{lo} to {hi} at {f} fractional bits"),
        });
    }
    let limit = f64::from(31 - f as i32).exp2();
    let fit = Fit::new(target, p);
    if let Some(c) = fit.coefficients.iter().find(|c| c.abs() >= limit) {
        return Err(CompileError::Option {
            field,
            value: format!("{} (degree {})", p.interval, p.degree),
            allowed: format!(
                "a fit whose coefficients encode at {f} fractional bits (|c| < {limit}; this \
                 one has {c:e}): a smaller interval or degree"
            ),
        });
    }
    Ok(())
}

//! Compile options.

use serde::{Deserialize, Serialize};

/// How products are scaled back to `f` fractional bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Truncation {
    /// Dealer truncation pairs `(r, r >> f, msb(r))`: one opening, exact to one ulp.
    Dealer,
    /// SecureML's local shift: no communication, one ulp, and a rare large error.
    Local,
}

/// A polynomial approximation: degree and the interval `[-interval, interval]` it is fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PolyApprox {
    pub interval: f64,
    pub degree: usize,
}

/// How SecureNN takes the sign of a shared value (DReLU), for ReLU, max pooling and argmax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum Comparison {
    /// The paper's DReLU: ShareConvert to Z_{2^64-1}, then ComputeMSB; two PrivateCompares
    /// over 64 bits and 8 rounds. Exact for `|a| < 2^62` ring units.
    Paper,
    /// The sign from one masked opening `c = a + r` and one PrivateCompare over the low
    /// `bits - 1` bits of `c` and `r` (3 rounds, and ReLU and max pooling multiply by the
    /// bit in the same rounds). Exact for `a` in `[-2^(bits-1), 2^(bits-1))` ring units:
    /// every word for `bits = 64`, `|x| < 2^15` reals at 16 fractional bits for `bits = 32`.
    Opened { bits: u32 },
}

impl Comparison {
    /// Exact on the whole ring.
    pub const EXACT: Comparison = Comparison::Opened { bits: 64 };
}

impl Default for Comparison {
    fn default() -> Self {
        Comparison::EXACT
    }
}

/// Options of [`crate::compile`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompileOptions {
    /// Fractional bits of fixed point.
    pub frac_bits: u32,
    pub truncation: Truncation,
    /// Pond's ReLU.
    pub relu: PolyApprox,
    /// Pond's sigmoid.
    pub sigmoid: PolyApprox,
    /// SecureNN's comparisons.
    #[serde(default)]
    pub comparison: Comparison,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            frac_bits: shareflow_graphs::graph::DEFAULT_FRAC_BITS,
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
        }
    }
}

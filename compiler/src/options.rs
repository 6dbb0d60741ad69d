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
        }
    }
}

//! Polynomial approximations of activations over an interval, fitted by least squares, and
//! their evaluation on shared values.
//!
//! A function `g` on `[-B, B]` is approximated as `q(x / B)` where `q` is the least-squares
//! polynomial of degree `d` on a grid of `[-1, 1]`: the scaled variable keeps every power in
//! `[-1, 1]` and the coefficients of moderate size, which fixed point needs. Outside the
//! interval the error grows without bound; choose `B` to cover the values met.

use ndarray::ArrayD;
use shareflow_graphs::Shape;

use super::{Lowerer, Shared, S0, S1};
use crate::ir::Kernel;
use crate::options::PolyApprox;
use crate::CompileError;

/// The function a polynomial approximates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `ln(x + (1 + k) / 2)`: the logarithm of a softmax's sum over `k` classes (in `[1, k]`)
    /// shifted to the symmetric interval `[-(k - 1) / 2, (k - 1) / 2]`.
    LnOfSum {
        /// The number of classes `k`.
        classes: u32,
    },
}

impl Target {
    /// The function's value at `x`.
    pub fn eval(self, x: f64) -> f64 {
        match self {
            Target::Relu => x.max(0.0),
            Target::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Target::LnOfSum { classes } => (x + (1.0 + f64::from(classes)) / 2.0).ln(),
        }
    }
}

/// A fitted polynomial in the scaled variable `u = x / interval`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// Half-width of the interval fitted, `[-interval, interval]`.
    pub interval: f64,
    /// Coefficients of `u^0 .. u^d`.
    pub coefficients: Vec<f64>,
    /// The largest absolute error on the interval (on a fine grid).
    pub max_error: f64,
}

impl Fit {
    /// The least-squares fit of `target` with `approx`'s degree and interval.
    pub fn new(target: Target, approx: &PolyApprox) -> Fit {
        let d = approx.degree;
        let b = approx.interval;
        let grid: Vec<f64> = (0..=4000).map(|i| -1.0 + i as f64 / 2000.0).collect();
        // Normal equations of the monomial basis on [-1, 1] (well conditioned for d <= 12).
        let n = d + 1;
        let mut m = vec![vec![0.0f64; n + 1]; n];
        for &u in &grid {
            let y = target.eval(u * b);
            let mut pi = 1.0;
            let powers: Vec<f64> = (0..n)
                .map(|_| {
                    let p = pi;
                    pi *= u;
                    p
                })
                .collect();
            for i in 0..n {
                for j in 0..n {
                    m[i][j] += powers[i] * powers[j];
                }
                m[i][n] += powers[i] * y;
            }
        }
        let coefficients = solve(m);
        let mut fit = Fit {
            interval: b,
            coefficients,
            max_error: 0.0,
        };
        fit.max_error = grid
            .iter()
            .map(|&u| (fit.eval(u * b) - target.eval(u * b)).abs())
            .fold(0.0, f64::max);
        fit
    }

    /// The polynomial at `x` (not scaled).
    pub fn eval(&self, x: f64) -> f64 {
        let u = x / self.interval;
        self.coefficients
            .iter()
            .rev()
            .fold(0.0, |acc, &c| acc * u + c)
    }
}

/// Gaussian elimination with partial pivoting of an augmented `n x (n+1)` system.
fn solve(mut m: Vec<Vec<f64>>) -> Vec<f64> {
    let n = m.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
            .unwrap_or(col);
        m.swap(col, pivot);
        let p = m[col][col];
        if p.abs() < 1e-300 {
            continue;
        }
        let pivot_row = m[col].clone();
        for (row, r) in m.iter_mut().enumerate() {
            if row != col {
                let factor = r[col] / p;
                for (x, &y) in r.iter_mut().zip(&pivot_row).skip(col) {
                    *x -= factor * y;
                }
            }
        }
    }
    (0..n)
        .map(|i| {
            if m[i][i].abs() < 1e-300 {
                0.0
            } else {
                m[i][n] / m[i][i]
            }
        })
        .collect()
}

impl Lowerer {
    /// Evaluates a fitted polynomial on a shared value: scale to `u = x / B`, the powers
    /// `u^k` by products of lower powers (depth `ceil(log2 d)` products, each opened once),
    /// then `sum c_k u^k` with one truncation.
    pub fn polynomial(
        &mut self,
        x: &Shared,
        fit: &Fit,
        shape: &Shape,
    ) -> Result<Shared, CompileError> {
        let dims = shape.dims();
        let inv = ArrayD::from_elem(vec![], (1.0 / fit.interval) as f32);
        let inv = [self.public_ring(S0, &inv)?, self.public_ring(S1, &inv)?];
        let u = self.mul_public(x, inv, dims);
        let d = fit.coefficients.len() - 1;
        let mut powers: Vec<Shared> = vec![u; d + 1];
        for k in 2..=d {
            let (a, b) = (powers[k / 2], powers[k - k / 2]);
            let f = self.frac_bits();
            powers[k] = self.product_truncated(&a, &b, Kernel::Mul, dims, f, None);
        }
        // sum_{k>=1} c_k u^k with c_k in fixed point: 2f fractional bits, one truncation.
        let mut acc: Option<Shared> = None;
        for (k, power) in powers.iter().enumerate().skip(1) {
            let c = ArrayD::from_elem(vec![], fit.coefficients[k] as f32);
            let c = [self.public_ring(S0, &c)?, self.public_ring(S1, &c)?];
            let a = self.emit(
                S0,
                Kernel::Mul,
                &[power.s[0], c[0]],
                shareflow_ops::ValueKind::Ring,
                dims,
            );
            let b = self.emit(
                S1,
                Kernel::Mul,
                &[power.s[1], c[1]],
                shareflow_ops::ValueKind::Ring,
                dims,
            );
            let term = Shared { s: [a, b] };
            acc = Some(match acc {
                None => term,
                Some(prev) => self.local2(Kernel::Add, &prev, &term, dims),
            });
        }
        let c0 = ArrayD::from_elem(vec![], fit.coefficients[0] as f32);
        let c0 = self.public_ring(S0, &c0)?;
        let sum = match acc {
            Some(s) => self.truncate(&s),
            None => {
                let zero = ArrayD::zeros(dims.to_vec());
                super::to_shared(self, &super::Operand::Public(zero))?
            }
        };
        Ok(self.add_public(&sum, c0, dims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_are_as_close_as_documented() {
        let sig = Fit::new(
            Target::Sigmoid,
            &PolyApprox {
                interval: 8.0,
                degree: 7,
            },
        );
        // Documented in `CompileOptions::default`: 0.032 on [-8, 8] at degree 7.
        assert!(sig.max_error < 0.035, "sigmoid error {}", sig.max_error);
        let relu = Fit::new(
            Target::Relu,
            &PolyApprox {
                interval: 1.0,
                degree: 2,
            },
        );
        // The best quadratic for relu on [-1, 1] is about 3/32 + x/2 + 15/32 x^2.
        assert!((relu.coefficients[1] - 0.5).abs() < 1e-6);
        assert!(
            (relu.coefficients[2] - 15.0 / 32.0).abs() < 1e-3,
            "{:?}",
            relu.coefficients
        );
        assert!(relu.max_error < 0.1);
        // ln s on [1, 10] (the softmax cross-entropy's): documented within 1e-3
        let ln = Fit::new(
            Target::LnOfSum { classes: 10 },
            &PolyApprox {
                interval: 4.5,
                degree: crate::lower::securenn::softmax::LN_DEGREE,
            },
        );
        assert!(ln.max_error < 1e-3, "ln error {}", ln.max_error);
    }

    #[test]
    fn fits_improve_up_to_the_highest_degree() {
        // The normal equations lose precision as the degree grows; up to MAX_DEGREE every
        // second degree must still lower the error (ReLU's error is even), so the range of
        // `CompileOptions::validate` only admits fits that are what they claim.
        for (target, interval) in [
            (Target::Relu, 8.0),
            (Target::Relu, 16.0),
            (Target::Sigmoid, 8.0),
        ] {
            let error = |degree| Fit::new(target, &PolyApprox { interval, degree }).max_error;
            for d in (4..=crate::options::MAX_DEGREE).step_by(2) {
                assert!(
                    error(d) < error(d - 2),
                    "{target:?} on {interval}, degree {d}"
                );
            }
        }
    }
}

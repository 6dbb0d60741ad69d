//! Test helpers: seeded random tensors and a central-difference gradient check, for the tests
//! of this crate and of the crates above (they panic on a failed check, as a test should).
//!
//! The check probes the scalar `L(x) = sum(f(x) * r)` for a fixed random `r`, whose gradient
//! is the backward op applied to `dy = r`. Differences use a step of `1e-2` in f32 with the
//! sums accumulated in f64, and compare with `|a - n| <= ATOL + RTOL * max(|a|, |n|)`.

use ndarray::{ArrayD, IxDyn, Zip};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Step of the central differences.
pub const EPS: f32 = 1e-2;
/// Absolute tolerance of the comparison.
pub const ATOL: f64 = 1e-3;
/// Relative tolerance of the comparison.
pub const RTOL: f64 = 2e-3;

/// A tensor of the given shape with entries uniform in `[-1, 1)`, from a fixed seed.
pub fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.random_range(-1.0f32..1.0))
}

/// A tensor of distinct entries `0.1` apart, at least `0.05` from zero, shuffled with a fixed
/// seed, so that a step of [`EPS`] never changes which entry of a window is the largest and
/// never crosses zero.
pub fn distinct(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let len: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..len)
        .map(|i| (i as f32 - (len / 2) as f32) * 0.1 + 0.05)
        .collect();
    v.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    ArrayD::from_shape_vec(IxDyn(shape), v).expect("length matches the shape")
}

/// `sum(y * r)` in f64.
pub fn weighted_sum(y: &ArrayD<f32>, r: &ArrayD<f32>) -> f64 {
    assert_eq!(y.shape(), r.shape(), "weights and output differ in shape");
    Zip::from(y)
        .and(r)
        .fold(0.0f64, |acc, &a, &b| acc + a as f64 * b as f64)
}

/// Central-difference gradient of the scalar `loss` at `x`.
pub fn numeric_grad(x: &ArrayD<f32>, loss: impl Fn(&ArrayD<f32>) -> f64) -> ArrayD<f32> {
    let mut probe = x.clone();
    let mut g = ArrayD::<f32>::zeros(x.raw_dim());
    for (i, gi) in g.iter_mut().enumerate() {
        let orig = x.as_slice().expect("contiguous test tensor")[i];
        let slot = &mut probe.as_slice_mut().expect("contiguous test tensor")[i];
        *slot = orig + EPS;
        let up = loss(&probe);
        probe.as_slice_mut().expect("contiguous test tensor")[i] = orig - EPS;
        let down = loss(&probe);
        probe.as_slice_mut().expect("contiguous test tensor")[i] = orig;
        *gi = ((up - down) / (2.0 * EPS as f64)) as f32;
    }
    g
}

/// Asserts that two gradients agree within the tolerances, naming the first bad entry.
pub fn assert_close(name: &str, analytic: &ArrayD<f32>, numeric: &ArrayD<f32>) {
    assert_eq!(analytic.shape(), numeric.shape(), "{name}: shapes differ");
    for (i, (&a, &n)) in analytic.iter().zip(numeric.iter()).enumerate() {
        let (a, n) = (a as f64, n as f64);
        let tol = ATOL + RTOL * a.abs().max(n.abs());
        assert!(
            (a - n).abs() <= tol,
            "{name}: entry {i}: analytic {a} vs numeric {n} (tolerance {tol})"
        );
    }
}

/// Checks `analytic` (the backward op applied to `dy = r`) against central differences of
/// `sum(f(x) * r)` with respect to `x`.
pub fn check_grad(
    name: &str,
    x: &ArrayD<f32>,
    analytic: &ArrayD<f32>,
    r: &ArrayD<f32>,
    f: impl Fn(&ArrayD<f32>) -> ArrayD<f32>,
) {
    let numeric = numeric_grad(x, |x| weighted_sum(&f(x), r));
    assert!(
        analytic.iter().any(|v| v.abs() > 1e-3),
        "{name}: the analytic gradient is all zero, the check would prove nothing"
    );
    assert_close(name, analytic, &numeric);
}

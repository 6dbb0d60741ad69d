//! Softmax along the last axis of `[N, K]` shares, with no logit ever revealed: the
//! probabilities of private training (the gradient of softmax cross-entropy is
//! `softmax(z) - y`) for a shared softmax that is not only an output to one party.
//!
//! 1. [`row_max`]: `m = max_k x` by the max-pool tree's exact comparisons, and
//!    `d = x - m <= 0` (`m` broadcast as `[N, 1]`).
//! 2. [`clamp_below`]: `d' = relu(d + T) - T = max(d, -T)` with the exact ReLU and
//!    `T = ` [`CLAMP`] ` = 16`: `exp(-16) < 2^-23` is below the ulp, and the clamp keeps the
//!    next step in its range.
//! 3. [`exp_limit`]: `exp(d') ~ (1 + y + y^2 / 2)^(2^n)` with `y = d' / 2^n` and
//!    `n = ` [`SQUARINGS`] ` = 5`: `y` is `d'`'s word at `f + n` fractional bits, `y^2 / 2`
//!    one dealer product, then `n` squarings (each truncated). The base is in affine form
//!    ([`crate::lower::affine`]: `y` is masked for `y^2`, `y^2 / 2` a truncation's output),
//!    and so is every square: a squaring opens nothing but its truncation.
//! 4. `s = sum_k exp(d')` (local), in `[1, K]` up to the approximation: the maximum's term
//!    is `exp(0) = 1` exactly.
//! 5. [`divide_goldschmidt`]: `e / s` by Goldschmidt's iteration from the public
//!    `y0 = 2 / (K + 1)`, for which `|1 - s y0| <= (K - 1) / (K + 1) < 1` on `[1, K]`: the
//!    error squares every iteration, [`division_plan`] takes as many as bring it below half
//!    an ulp (6 for K = 10, 13 for K = 1000 at 16 fractional bits), and the two products of
//!    an iteration are independent, so each takes one round.
//!
//! **Error.** Almost all of it is the limit's: `ln(1 + y + y^2 / 2) = y - y^3 / 6 + ..`, so
//! `(1 + y + y^2 / 2)^(2^5) = exp(d - d^3 / 6144 + ..)`: a term is off by a factor of about
//! `1 - d^3 / 6144`, and the probabilities, normalised, by up to `1.3e-3` (the worst of
//! 20,000 random rows of 10 logits uniform in `[-s, s]` for `s` = 2, 5, 10 and 30, computed in
//! `f64`; the first-order base `(1 + d / 2^8)^(2^8)`, with three more squarings, was off by
//! up to `3.7e-3`). Fixed point adds little at the default 16 fractional bits: the squarings
//! work at 21 bits, and the division's factors at 24 (8 bits more than the result, more for
//! many classes: [`division_plan`]), so the roundings that Goldschmidt's iteration does not
//! correct stay below a sixteenth of an ulp.
//! Measured by `tests/securesoftmax.rs` (`[8, 10]` logits in `[-10, 10]` with a row of
//! spread 60 and a row of equal values, and `[128, 10]`): at most `9.0e-4` from the
//! plaintext softmax (`2.9e-3` with the first-order base), and within `1e-4` of the same
//! approximation in `f64`; the test asserts `2e-3`, for the probabilities and for the rows'
//! sums. Logits must keep `|x| < 2^61` ring
//! units (the comparisons' range), which every encodable input does.
//!
//! **Cost** of `[128, 10]` with exact comparisons from an opening (the default): 29 rounds
//! and 1,173,208 bytes (measured by `tests/securesoftmax.rs`): the max tree 4 levels of 3
//! rounds, the clamp 3, the exponential 7 (`y^2 / 2` 2, then 5 squarings of 1), the division
//! 7 (`c_0` and `p_0` 1, then six iterations of 1). Newton's reciprocal and a product by it
//! took 12 rounds for the division (34 in all) and 277,957 bytes fewer: its iterations work
//! on `[128, 1]`, where Goldschmidt's products `p (1 + c)` are `[128, 10]`. The products in
//! affine form open nothing but their truncations: Beaver products, which open their
//! factors, would take a round more for each squaring and each iteration.

use ndarray::ArrayD;

use super::maxpool::maxpool;
use super::relu::relu;
use shareflow_graphs::Shape;
use shareflow_ops::ValueKind;

use crate::ir::Kernel;
use crate::lower::affine::Sign;
use crate::lower::poly::{Fit, Target};
use crate::lower::{to_shared, Lowerer, Operand, Shared, S0, S1};
use crate::options::{PolyApprox, Truncation};
use crate::CompileError;

/// The clamp `T`: differences from the row maximum below `-T` count as `-T`.
pub const CLAMP: u32 = 16;

/// The squarings `n` of the limit `(1 + y + y^2 / 2)^(2^n)`, `y = x / 2^n`.
pub const SQUARINGS: u32 = 5;

/// The most fractional bits the squarings of [`exp_limit`] work at: a square of a value in
/// `(0, 1]` is then below `2^60`, in the range of the truncations.
pub const EXP_BITS: u32 = 30;

/// Softmax of shares `x` (`[N, K]`) along the last axis: shares of the probabilities.
pub fn softmax(cx: &mut Lowerer, x: &Shared) -> Result<Shared, CompileError> {
    let shape = cx.shape(x.s[0]).to_vec();
    let &[n, k] = shape.as_slice() else {
        return Err(cx.error(format!(
            "softmax on shares is along the last axis of a rank-2 tensor [N, K]; got shape \
             {shape:?} (reshape to [N, K] first)"
        )));
    };
    if k == 0 {
        return Err(cx.error("softmax over an empty axis"));
    }
    // Step 1: d = x - max_k x.
    let m = row_max(cx, x, n);
    let d = cx.local2(Kernel::Sub, x, &m, &shape);
    // Step 2: d' = max(d, -T).
    let d = clamp_below(cx, &d, CLAMP);
    // Step 3: e = exp(d').
    let e = exp_limit(cx, &d, SQUARINGS)?;
    // Step 4: s = sum_k e, kept as [N, 1].
    let s = cx.local(Kernel::ReduceSum { axis: 1 }, &e, &[n]);
    let s = cx.local(Kernel::Reshape { shape: vec![n, 1] }, &s, &[n, 1]);
    // Step 5: e / s.
    divide_goldschmidt(cx, &e, &s, k)
}

/// The degree of the polynomial of `ln s` for `s` in `[1, K]` in
/// [`softmax_cross_entropy`].
pub const LN_DEGREE: usize = 12;

/// The mean softmax cross-entropy of logits `x` (`[N, K]` shares) against labels `y` (one-hot,
/// `[N, K]` shares) as shares of a scalar, with no logit revealed: the loss of a step that a
/// user asked to reveal. With `d = x - max_k x` and `s = sum_k exp(max(d, -T))` as in
/// [`softmax`], the loss of row `i` is `ln s_i - sum_k y_ik d_ik`; `ln s` on `[1, K]` is a
/// least-squares polynomial of degree [`LN_DEGREE`] (within 1e-3 of `ln` for `K = 10`), so
/// the mean is within about 2e-3 of the exact loss (the exponential's limit adds its own
/// small error). The row maximum's comparisons are this loss's own (the gradient's softmax
/// makes its own).
pub fn softmax_cross_entropy(
    cx: &mut Lowerer,
    x: &Shared,
    y: &Shared,
) -> Result<Shared, CompileError> {
    let shape = cx.shape(x.s[0]).to_vec();
    let &[n, k] = shape.as_slice() else {
        return Err(cx.error(format!(
            "softmax cross-entropy on shares takes logits [N, K]; got shape {shape:?}"
        )));
    };
    if k < 2 || n == 0 {
        return Err(cx.error(format!(
            "softmax cross-entropy of {n} rows over {k} classes: needs rows and at least two \
             classes"
        )));
    }
    let m = row_max(cx, x, n);
    let d = cx.local2(Kernel::Sub, x, &m, &shape);
    let clamped = clamp_below(cx, &d, CLAMP);
    let e = exp_limit(cx, &clamped, SQUARINGS)?;
    let s = cx.local(Kernel::ReduceSum { axis: 1 }, &e, &[n]);
    // ln s = q(s - (1 + K) / 2) on [-(K - 1) / 2, (K - 1) / 2]
    let center = ArrayD::from_elem(vec![], -((1.0 + k as f32) / 2.0));
    let center = cx.public_ring(S0, &center)?;
    let shifted = cx.add_public(&s, center, &[n]);
    let classes = u32::try_from(k).map_err(|_| cx.error(format!("{k} classes")))?;
    let fit = Fit::new(
        Target::LnOfSum { classes },
        &PolyApprox {
            interval: (k as f64 - 1.0) / 2.0,
            degree: LN_DEGREE,
        },
    );
    let ln_s = cx.polynomial(&shifted, &fit, &Shape::new(vec![n]))?;
    // sum_k y_ik d_ik
    let f = cx.frac_bits();
    let yd = cx.product_truncated(y, &d, Kernel::Mul, &shape, f, None);
    let yd = cx.local(Kernel::ReduceSum { axis: 1 }, &yd, &[n]);
    let rows = cx.local2(Kernel::Sub, &ln_s, &yd, &[n]);
    let total = cx.local(Kernel::ReduceSum { axis: 0 }, &rows, &[]);
    let inv = ArrayD::from_elem(vec![], 1.0 / n as f32);
    let inv = [cx.public_ring(S0, &inv)?, cx.public_ring(S1, &inv)?];
    Ok(cx.mul_public(&total, inv, &[]))
}

/// Shares of the maximum of each row of `x` (`[N, K]`) as `[N, 1]`, by the max-pool tree
/// ([`maxpool`]: `ceil(log2 K)` levels of exact comparisons).
pub fn row_max(cx: &mut Lowerer, x: &Shared, n: usize) -> Shared {
    let (m, _) = maxpool(cx, x, false, 1);
    cx.local(Kernel::Reshape { shape: vec![n, 1] }, &m, &[n, 1])
}

/// Shares of `max(d, -t)` as `relu(d + t) - t`, with SecureNN's exact ReLU.
pub fn clamp_below(cx: &mut Lowerer, d: &Shared, t: u32) -> Shared {
    let shape = cx.shape(d.s[0]).to_vec();
    let word = u64::from(t) << cx.frac_bits();
    let plus = cx.ring_words(S0, &[], vec![word]);
    let shifted = cx.add_public(d, plus, &shape);
    let r = relu(cx, &shifted);
    let minus = cx.ring_words(S0, &[], vec![word.wrapping_neg()]);
    cx.add_public(&r, minus, &shape)
}

/// Shares of `(1 + y + y^2 / 2)^(2^n)` with `y = d / 2^n`, close to `exp(d)` for `d` in
/// `[-T, 0]`: `y` is in `[-T / 2^n, 0]` and, for `2^n >= T`, the base in `[1/2, 1]`, so each
/// square stays in `(0, 1]`.
///
/// The base works at `F = f + n` fractional bits (at most [`EXP_BITS`]), where `y` is the
/// word of `d` itself: `y` is exact, with no rounding that the squarings would multiply by
/// `2^n`. `y^2` (`2F` bits) is truncated by `F + 1` to `y^2 / 2`, each square to `F` bits, the
/// last one to `f`.
pub fn exp_limit(cx: &mut Lowerer, d: &Shared, n: u32) -> Result<Shared, CompileError> {
    let shape = cx.shape(d.s[0]).to_vec();
    let f = cx.frac_bits();
    let work = (f + n).min(EXP_BITS);
    // y = d / 2^n with `work` fractional bits: d's word as is when work = f + n.
    let y = match f + n - work {
        0 => *d,
        extra => cx.truncate_by(d, extra),
    };
    // u = 1 + y + y^2 / 2.
    let half_square = cx.product_truncated_affine(&y, &y, &shape, work + 1);
    let plus = [(half_square, Sign::Plus)];
    let mut u = cx.affine_sum((y, Sign::Plus), &plus, Some(1u64 << work), &shape);
    // u <- u^2, n times: u is in affine form (y was masked for y^2, and y^2 / 2 is a
    // truncation's output), and so is each square, so the squares open nothing but their
    // truncations.
    for i in 0..n {
        let bits = if i + 1 == n { 2 * work - f } else { work };
        u = cx.product_truncated_affine(&u, &u, &shape, bits);
    }
    Ok(u)
}

/// How [`divide_goldschmidt`] divides by sums in `[1, k]` at `frac_bits`: the fractional bits
/// `g` of its factors and its iterations.
///
/// - `g`: the roundings of `c_0` and `p_0` (an ulp of `g` bits each) are divided by `s y0`,
///   as small as `2 / (k + 1)`, and no later iteration corrects them. With the dealer's
///   truncation `g` is `frac_bits + max(8, bits(k) + 4)`, so that they add less than about
///   `(k + 1) 2^-g`, a sixteenth of an ulp of the result, unless a cap applies: `g` is at
///   most 29 (a product of two factors below 2 stays below `2^60`) and `59 - frac_bits`
///   (`s y0 < 2` at `frac_bits + g` bits): for 10,000 classes at 24 fractional bits the
///   bound is `(k + 1) 2^-29`, about `2e-5`. With SecureML's local truncation, which fails
///   with a probability that grows with the value truncated, `g` is `frac_bits`, and the
///   bound `k + 1` ulps.
/// - The iterations: from `y0` as encoded at `g` bits, the relative error `c = 1 - s y0` is
///   at most `max(1 - y0, k y0 - 1)` and squares every iteration; the count brings it (and so
///   the absolute error `c / s <= c`) below `2^-(frac_bits + 1)`.
///
/// `None` when `g` would be below `frac_bits` or `y0` too coarse for the iteration to
/// converge.
pub fn division_plan(k: usize, frac_bits: u32, truncation: Truncation) -> Option<(u32, usize)> {
    let k_bits = usize::BITS - k.leading_zeros();
    let g = match truncation {
        Truncation::Dealer => (frac_bits + (k_bits + 4).max(8))
            .min(29)
            .min(59u32.checked_sub(frac_bits)?),
        Truncation::Local => frac_bits,
    };
    if g < frac_bits {
        return None;
    }
    let y0 = initial_guess(k, g) as f64 * 0.5f64.powi(g as i32);
    let mut c = (1.0 - y0).max(k as f64 * y0 - 1.0);
    if c >= 1.0 {
        return None;
    }
    let target = 0.5f64.powi(frac_bits as i32 + 1);
    let mut count = 0;
    while c > target {
        c *= c;
        count += 1;
    }
    Some((g, count))
}

/// The word of `2 / (k + 1)` at `bits` fractional bits (rounded to the nearest, at least
/// one ulp).
fn initial_guess(k: usize, bits: u32) -> u64 {
    let y0 = 2.0 / (k as f64 + 1.0) * 2f64.powi(bits as i32);
    (y0.round() as u64).max(1)
}

/// Shares of `e / s` (`e` of shape `[N, K]`, `s` of shape `[N, 1]` in `[1, k]`, broadcast
/// along the rows) by Goldschmidt's division from the public `y0 = 2 / (k + 1)`: with
/// `c_0 = 1 - s y0` and `p_0 = e y0`,
///
/// `p_(i+1) = p_i (1 + c_i)`, `c_(i+1) = c_i^2`,
///
/// so that `p_n = e y0 (1 + c_0) (1 + c_0^2) .. (1 + c_0^(2^(n-1))) = e (1 - c_0^(2^n)) / s`.
/// The two products of an iteration are independent: one round each, where Newton's
/// `y <- y (2 - s y)` takes two (`s y`, then `y (2 - s y)`), and the quotient comes out of
/// the last one, with no product by `1 / s` after it. `c_0` and `p_0` are products with the
/// public `y0` and one truncation each, in the same round; every later factor is a
/// truncation's output or one plus it (affine form, [`crate::lower::affine`]), so the
/// products open nothing but their truncations: `1 + n` rounds in all ([`division_plan`]:
/// 7 for `k = 10` at 16 fractional bits, against Newton's 11 and the product's 1).
///
/// Unlike Newton's, this iteration does not correct its own roundings: the factors work at
/// more fractional bits than the result ([`division_plan`]), and the last product is
/// truncated to the result's. With one class the softmax is 1, public.
pub fn divide_goldschmidt(
    cx: &mut Lowerer,
    e: &Shared,
    s: &Shared,
    k: usize,
) -> Result<Shared, CompileError> {
    let shape = cx.shape(e.s[0]).to_vec();
    let row = cx.shape(s.s[0]).to_vec();
    let f = cx.frac_bits();
    let Some((g, iterations)) = division_plan(k, f, cx.options.truncation) else {
        return Err(cx.error(format!(
            "softmax over {k} classes: the division by the sum needs fewer classes or fewer \
             than {f} fractional bits"
        )));
    };
    if iterations == 0 {
        // k = 1: y0 = 1 = 1 / s.
        let ones = ArrayD::from_elem(shape, 1.0f32);
        return to_shared(cx, &Operand::Public(ones));
    }
    let y0 = cx.servers_word(initial_guess(k, g));
    let ring = ValueKind::Ring;
    // c_0 = 1 - s y0 at g bits (s y0 at f + g bits).
    let sy = cx.on_servers(|_| Kernel::Mul, |j| vec![s.s[j], y0[j]], ring, &row);
    let sy = cx.truncate_by(&Shared { s: sy }, f);
    let mut c = cx.affine_sum((sy, Sign::Minus), &[], Some(1u64 << g), &row);
    // p_0 = e y0 at g bits.
    let ey = cx.on_servers(|_| Kernel::Mul, |j| vec![e.s[j], y0[j]], ring, &shape);
    let mut p = cx.truncate_by(&Shared { s: ey }, f);
    for i in 0..iterations {
        let last = i + 1 == iterations;
        let factor = cx.affine_sum((c, Sign::Plus), &[], Some(1u64 << g), &row);
        let bits = if last { 2 * g - f } else { g };
        p = cx.product_truncated_affine(&p, &factor, &shape, bits);
        if !last {
            c = cx.product_truncated_affine(&c, &c, &row, g);
        }
    }
    Ok(p)
}

//! Algorithms 2, 6 and 7 of SecureNN: SelectShare, DReLU and ReLU, and the comparisons with
//! zero built on DReLU. Bits are shared over Z_2^64 as integers 0 or 1 (not fixed point), so
//! products with them need no truncation.

use shareflow_ops::ValueKind;

use super::compute_msb::compute_msb;
use super::opened::{sign, sign_times};
use super::share_convert::share_convert;
use super::SERVERS;
use crate::ir::Kernel;
use crate::lower::{Lowerer, Shared};
use crate::options::Comparison;

/// SelectShare Π_SS({P0, P1}, P2): shares of `z = (1 - alpha) x + alpha y` for a shared bit
/// `alpha`, broadcast against `x` and `y` (trailing axes, as `Kernel::Mul`); `shape` is the
/// result's.
///
/// - Common randomness: P0, P1 hold shares of 0, `u_0`, `u_1`.
pub fn select_share(
    cx: &mut Lowerer,
    alpha: &Shared,
    x: &Shared,
    y: &Shared,
    shape: &[usize],
) -> Shared {
    let w_shape = cx.shape(y.s[0]).to_vec();
    // Step 2: <w>_j = <y>_j - <x>_j.
    let w = cx.local2(Kernel::Sub, y, x, &w_shape);
    // Step 3: <c>_j = <alpha>_j <w>_j, a product with the helper (Algorithm 1).
    let c = cx.beaver(alpha, &w, Kernel::Mul, shape);
    // Step 4: <z>_j = <x>_j + <c>_j + u_j.
    let z = cx.local2(Kernel::Add, &c, x, shape);
    cx.rerandomise(&z)
}

/// Shares over Z_2^64 of `DReLU(a)`, 1 where `a >= 0` and 0 where `a < 0`, by the configured
/// method ([`Comparison`]).
pub fn drelu(cx: &mut Lowerer, a: &Shared) -> Shared {
    match cx.options.comparison {
        Comparison::Paper => drelu_paper(cx, a),
        Comparison::Opened => sign(cx, a),
    }
}

/// DReLU Π_DReLU({P0, P1}, P2): shares over Z_2^64 of `DReLU(a)`, 1 where `a >= 0` (as a
/// two's-complement word) and 0 where `a < 0`, exact for `a` in `[-2^62, 2^62)`.
///
/// - Common randomness: P0, P1 hold shares of 0, `u_0`, `u_1`.
pub fn drelu_paper(cx: &mut Lowerer, a: &Shared) -> Shared {
    let shape = cx.shape(a.s[0]).to_vec();
    // Step 1: <c>_j = 2 <a>_j (even, so never L - 1 as ShareConvert needs; its MSB is the
    // sign of a in the range above).
    let c = cx.local(Kernel::Shl { bits: 1 }, a, &shape);
    // Step 2: ShareConvert: <y>_j over Z_{L-1}.
    let y = share_convert(cx, &c);
    // Step 3: ComputeMSB: <alpha>_j over Z_L.
    let alpha = compute_msb(cx, &y);
    // Step 4: <gamma>_j = j - <alpha>_j + u_j.
    let one = cx.servers_word(1);
    let gamma = cx.on_servers(
        |j| if j == 0 { Kernel::Neg } else { Kernel::Sub },
        |j| {
            if j == 0 {
                vec![alpha.s[0]]
            } else {
                vec![one[1], alpha.s[1]]
            }
        },
        ValueKind::Ring,
        &shape,
    );
    cx.rerandomise(&Shared { s: gamma })
}

/// Shares of `max(a, 0)` by the configured method ([`Comparison`]). The sign bits it takes
/// are kept for the backward pass ([`super::grads::drelu_of`]).
pub fn relu(cx: &mut Lowerer, a: &Shared) -> Shared {
    let (bit, out) = match cx.options.comparison {
        Comparison::Paper => {
            let alpha = drelu_paper(cx, a);
            (alpha, relu_paper_with(cx, a, &alpha))
        }
        Comparison::Opened => sign_times(cx, a),
    };
    cx.drelus.entry(a.s).or_insert(bit);
    out
}

/// ReLU Π_ReLU({P0, P1}, P2): shares of `max(a, 0)`, exact for `a` in `[-2^62, 2^62)`.
///
/// - Common randomness: P0, P1 hold shares of 0, `u_0`, `u_1`.
pub fn relu_paper(cx: &mut Lowerer, a: &Shared) -> Shared {
    // Step 1: DReLU: <alpha>_j.
    let alpha = drelu_paper(cx, a);
    relu_paper_with(cx, a, &alpha)
}

/// Steps 2-3 of ReLU, given step 1's `<alpha>_j`.
fn relu_paper_with(cx: &mut Lowerer, a: &Shared, alpha: &Shared) -> Shared {
    let shape = cx.shape(a.s[0]).to_vec();
    // Step 2: <c>_j = <alpha>_j <a>_j, a product with the helper (Algorithm 1).
    let c = cx.beaver(alpha, a, Kernel::Mul, &shape);
    // Step 3: P_j outputs <c>_j + u_j.
    cx.rerandomise(&c)
}

/// Shares of the bit `a < 0` (the MSB for `a` in range).
pub fn less_zero(cx: &mut Lowerer, a: &Shared) -> Shared {
    let d = drelu(cx, a);
    not(cx, &d)
}

/// Shares of the bit `a > 0`, as `NOT(-a >= 0)`; exact where the sign of `-a` is (for the
/// paper's DReLU, `a` in `(-2^62, 2^62]`).
pub fn greater_zero(cx: &mut Lowerer, a: &Shared) -> Shared {
    let shape = cx.shape(a.s[0]).to_vec();
    let neg = cx.local(Kernel::Neg, a, &shape);
    less_zero(cx, &neg)
}

/// Shares of the bit `a = 0`, as `(a >= 0) + (-a >= 0) - 1`: no product, and both DReLUs run
/// side by side. Exact where the signs of `a` and `-a` are (paper's DReLU: `(-2^62, 2^62)`).
pub fn equal_zero(cx: &mut Lowerer, a: &Shared) -> Shared {
    let shape = cx.shape(a.s[0]).to_vec();
    let neg = cx.local(Kernel::Neg, a, &shape);
    let (p, n) = (drelu(cx, a), drelu(cx, &neg));
    let sum = cx.local2(Kernel::Add, &p, &n, &shape);
    let one = cx.servers_word(1);
    let s0 = cx.emit(
        SERVERS[0],
        Kernel::Sub,
        &[sum.s[0], one[0]],
        ValueKind::Ring,
        &shape,
    );
    Shared { s: [s0, sum.s[1]] }
}

/// Shares of `1 - b` for a shared bit `b`.
pub fn not(cx: &mut Lowerer, b: &Shared) -> Shared {
    let shape = cx.shape(b.s[0]).to_vec();
    let one = cx.servers_word(1);
    let s0 = cx.emit(
        SERVERS[0],
        Kernel::Sub,
        &[one[0], b.s[0]],
        ValueKind::Ring,
        &shape,
    );
    let s1 = cx.emit(SERVERS[1], Kernel::Neg, &[b.s[1]], ValueKind::Ring, &shape);
    Shared { s: [s0, s1] }
}

//! Algorithm 5 of SecureNN: ComputeMSB.

use shareflow_ops::ValueKind;

use super::private_compare::private_compare;
use super::{OddShared, SERVERS, WORD_BITS};
use crate::ir::{Draw, Kernel};
use crate::lower::{Lowerer, Shared, HELPER, S0, S1};

/// ComputeMSB Π_MSB({P0, P1}, P2): from shares of `a` over Z_{L-1}, shares over Z_L of its
/// most significant bit (an integer 0 or 1, not fixed point).
///
/// - Common randomness: P0, P1 hold a random bit `beta` and shares of 0 over Z_L.
///
/// Why it works: Z_{L-1} has odd order, so `MSB(a) = LSB(y)` for `y = 2a` (doubling wraps,
/// and makes `y` odd, exactly when `a >= 2^63`). With `r = y + x` for the helper's random
/// `x`, `LSB(y) = r[0] XOR x[0] XOR (x > r)`, the last bit from PrivateCompare.
pub fn compute_msb(cx: &mut Lowerer, a: &OddShared) -> Shared {
    let shape = cx.shape(a.s[0]).to_vec();
    // Common randomness.
    let beta = cx.servers_random(Draw::Bits, &shape);
    // Step 1: P2 picks a random x in Z_{L-1} (both shares are seed expansions, so they cost
    // nothing to send) and sends shares of the bits of x over Z_p and of x[0] over Z_L.
    let (h0, x0) = cx.common_random(HELPER, S0, Draw::OddRing, &shape);
    let (h1, x1) = cx.common_random(HELPER, S1, Draw::OddRing, &shape);
    let x = cx.emit(
        HELPER,
        Kernel::OddAdd,
        &[h0, h1],
        ValueKind::OddRing,
        &shape,
    );
    let x_share = [x0, x1];
    let x_bits = cx.helper_share_bits(x, WORD_BITS);
    let x_lsb = cx.emit(HELPER, Kernel::Lsb, &[x], ValueKind::Small, &shape);
    let x_lsb = cx.helper_share_bit(x_lsb, ValueKind::Ring);
    // Step 2: <y>_j = 2 <a>_j and <r>_j = <y>_j + <x>_j over Z_{L-1}.
    let r = cx.on_servers(
        |_| Kernel::OddAdd,
        |j| vec![a.s[j], a.s[j]],
        ValueKind::OddRing,
        &shape,
    );
    let r = cx.on_servers(
        |_| Kernel::OddAdd,
        |j| vec![r[j], x_share[j]],
        ValueKind::OddRing,
        &shape,
    );
    // Step 3: P0, P1 reconstruct r.
    let r = cx.open_odd(&OddShared { s: r });
    // Step 4: PrivateCompare on (bits of x, r, beta): P2 learns beta'.
    let beta_p = private_compare(cx, &x_bits, r, beta);
    // Step 5: P2 sends shares of beta' over Z_L.
    let beta_p = cx.helper_share_bit(beta_p, ValueKind::Ring);
    let mut gamma = [r[0]; 2];
    let mut delta = [r[0]; 2];
    for (j, host) in SERVERS.into_iter().enumerate() {
        let xor = Kernel::XorPublicBit { add: j == 1 };
        // Step 7: <gamma>_j = <beta'>_j + j beta - 2 beta <beta'>_j.
        gamma[j] = cx.emit(
            host,
            xor.clone(),
            &[beta_p[j], beta[j]],
            ValueKind::Ring,
            &shape,
        );
        // Step 8: <delta>_j = <x[0]>_j + j r[0] - 2 r[0] <x[0]>_j.
        let r_lsb = cx.emit(host, Kernel::Lsb, &[r[j]], ValueKind::Small, &shape);
        delta[j] = cx.emit(host, xor, &[x_lsb[j], r_lsb], ValueKind::Ring, &shape);
    }
    let (gamma, delta) = (Shared { s: gamma }, Shared { s: delta });
    // Step 9: <theta>_j = <gamma>_j <delta>_j, a product with the helper (Algorithm 1);
    // integers, so no truncation.
    let theta = cx.beaver(&gamma, &delta, Kernel::Mul, &shape);
    // Step 10: <alpha>_j = <gamma>_j + <delta>_j - 2 <theta>_j + u_j.
    let sum = cx.local2(Kernel::Add, &gamma, &delta, &shape);
    let twice = cx.local(Kernel::Shl { bits: 1 }, &theta, &shape);
    let alpha = cx.local2(Kernel::Sub, &sum, &twice, &shape);
    cx.rerandomise(&alpha)
}

//! Algorithm 3 of SecureNN: PrivateCompare.

use shareflow_ops::ring::packed_small_len;
use shareflow_ops::ValueKind;

use super::{field_bits, BitShares, Public, SERVERS};
use crate::ir::{Exchange, Kernel, ValueId};
use crate::lower::{Lowerer, HELPER, S0, S1};

/// PrivateCompare Π_PC({P0, P1}, P2), for every word of a tensor at once.
///
/// - Input: P0, P1 hold shares over Z_p (`x_bits.p`) of the low `n` bits of `x` (`x_bits`, `[.., n]`, `n`
///   up to 64), a common word `r` (ring or odd ring, `[..]`, read mod `2^n`) and a common
///   random bit `beta` (`Small`, `[..]`).
/// - Output: P2 learns `beta' = beta XOR (x > r)` (a `Small` bit on the helper, `[..]`).
/// - Common randomness: P0, P1 hold nonzero `s_i` in Z_p, shares of zero `z_i`, a random
///   rotation `pi` of the `n` bit positions (all per word), and `u_i` in Z_p.
///
/// The nonzero multipliers and the rotation hide from P2 everything but whether some `d_i` is
/// 0; the shares of zero (not in the paper) keep each server's message uniform, as P2 knows
/// both servers' shares of `x`'s bits when it dealt them. Why a rotation hides as much as the
/// paper's permutation: [`shareflow_ops::ring::private_compare_masked`].
pub fn private_compare(cx: &mut Lowerer, x_bits: &BitShares, r: Public, beta: Public) -> ValueId {
    let shape = cx.shape(r[0]).to_vec();
    let lanes = cx.shape(x_bits.s[0]).to_vec();
    let n = lanes.last().copied().unwrap_or(0);
    let packed = packed_small_len(lanes.iter().product(), field_bits(x_bits.p));
    // Common randomness, drawn from the servers' pair seed by the kernel that uses it, when
    // it runs (as tensors drawn up front, s_i and pi would take 16 bytes per bit): s_i in
    // Z_p^*, pi, and the u_i in Z_p (only needed where beta = 1 and r = 2^n - 1).
    let seed = cx.pair_seed(S0, S1);
    let seed = [seed.0, seed.1];
    let stream = cx.stream();
    let mut d = [r[0]; 2];
    for (j, host) in SERVERS.into_iter().enumerate() {
        // Steps 1-13 (P_j): c_i from x[i], r or t = r + 1 (by beta), and u_i where beta = 1
        // and r = 2^n - 1; step 14: {d_i}_j = pi({s_i c_i}_j +- z_i), in one pass per word.
        let compare = Kernel::PrivateCompare {
            party: j as u8,
            p: x_bits.p,
            stream,
        };
        // The kernel packs d in the field's bits as it makes it (no unpacked tensor).
        let inputs = [x_bits.s[j], r[j], beta[j], seed[j]];
        let masked = cx.emit(host, compare, &inputs, ValueKind::Small, &[packed]);
        // Step 14: P_j sends {d_i}_j to P2.
        d[j] = cx.send(masked, HELPER, Exchange::MaskedOpening);
    }
    // Steps 15-16: P2 reconstructs every d_i and outputs beta' = 1 iff some d_i = 0, reading
    // the packed shares as they came.
    let kernel = Kernel::AnyZeroSum {
        p: x_bits.p,
        n: n as u8,
    };
    cx.emit(HELPER, kernel, &d, ValueKind::Small, &shape)
}

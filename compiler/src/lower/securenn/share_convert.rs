//! Algorithm 4 of SecureNN: ShareConvert, from Z_2^64 to Z_{2^64-1}.

use shareflow_ops::ValueKind;

use super::private_compare::private_compare;
use super::{OddShared, Public, SERVERS, WORD_BITS};
use crate::ir::{Draw, Exchange, Kernel};
use crate::lower::{Lowerer, Shared, HELPER};

/// ShareConvert Π_SC({P0, P1}, P2): shares over Z_L (L = 2^64) of `a != L - 1` become shares
/// over Z_{L-1} of the same `a`.
///
/// - Common randomness: P0, P1 hold a random bit `eta''`, a random `r` in Z_L with shares
///   `<r>_0`, `<r>_1` (both servers know both), `alpha = wrap(<r>_0, <r>_1, L)`, and shares
///   of 0 over Z_{L-1}.
///
/// Why it works: with `theta = wrap(<a>_0, <a>_1, L)`, reading both shares in Z_{L-1} adds
/// `theta` (as L = 1 there), so `y_j = <a>_j - <theta>_j` are shares of `a`; and
/// `theta = beta_0 + beta_1 - alpha + delta - wrap(a, r, L)` with
/// `wrap(a, r, L) = 1 - (x >= r)`, `x = a + r mod L`, which PrivateCompare gives as
/// `x > r - 1`.
///
/// The paper compares with `r - 1`, which wraps to `L - 1` when `r = 0` (probability
/// `2^-64`): then `x > L - 1` is false though `x >= 0` is true. Both servers know `r`, so they
/// flip `eta` where `r = 0` and the conversion is exact for every `r`.
pub fn share_convert(cx: &mut Lowerer, a: &Shared) -> OddShared {
    let shape = cx.shape(a.s[0]).to_vec();
    // Common randomness. r_share[k][j] is <r>_k as held by P_j.
    let eta_pp = cx.servers_random(Draw::Bits, &shape);
    let r_share = [
        cx.servers_random(Draw::Ring, &shape),
        cx.servers_random(Draw::Ring, &shape),
    ];
    share_convert_with(cx, a, r_share, eta_pp)
}

/// [`share_convert`] with given common randomness: `r_share[k][j]` is `<r>_k` on server `j`
/// (ring words), `eta_pp` the bit `eta''` (`Small`) on each server. For tests of every wrap.
pub fn share_convert_with(
    cx: &mut Lowerer,
    a: &Shared,
    r_share: [Public; 2],
    eta_pp: Public,
) -> OddShared {
    let shape = cx.shape(a.s[0]).to_vec();
    let ring = |cx: &mut Lowerer, k: Kernel, inputs: &[_], j: usize| {
        cx.emit(SERVERS[j], k, inputs, ValueKind::Ring, &shape)
    };
    let one = cx.servers_word(1);
    let (mut r_minus_1, mut r_is_zero, mut alpha, mut beta) =
        ([one[0]; 2], [one[0]; 2], [one[0]; 2], [one[0]; 2]);
    let mut a_tilde = [one[0]; 2];
    for (j, host) in SERVERS.into_iter().enumerate() {
        let r = ring(cx, Kernel::Add, &[r_share[0][j], r_share[1][j]], j);
        r_minus_1[j] = ring(cx, Kernel::Sub, &[r, one[j]], j);
        r_is_zero[j] = cx.emit(host, Kernel::IsZero, &[r], ValueKind::Small, &shape);
        alpha[j] = cx.emit(
            host,
            Kernel::Wrap,
            &[r_share[0][j], r_share[1][j]],
            ValueKind::Small,
            &shape,
        );
        // Step 1: <a~>_j = <a>_j + <r>_j and beta_j = wrap(<a>_j, <r>_j, L).
        let at = ring(cx, Kernel::Add, &[a.s[j], r_share[j][j]], j);
        beta[j] = cx.emit(
            host,
            Kernel::Wrap,
            &[a.s[j], r_share[j][j]],
            ValueKind::Small,
            &shape,
        );
        // Step 2: P_j sends <a~>_j to P2.
        a_tilde[j] = cx.send(at, HELPER, Exchange::MaskedOpening);
    }
    // Step 3: P2 computes x = a~ and delta = wrap(<a~>_0, <a~>_1, L).
    let x = cx.emit(HELPER, Kernel::Add, &a_tilde, ValueKind::Ring, &shape);
    let delta = cx.emit(HELPER, Kernel::Wrap, &a_tilde, ValueKind::Small, &shape);
    // Step 4: P2 sends shares of the bits of x over Z_p and of delta over Z_{L-1}.
    let x_bits = cx.helper_share_bits(x, WORD_BITS);
    let delta = cx.helper_share_bit(delta, ValueKind::OddRing);
    // Step 5: PrivateCompare on (bits of x, r - 1, eta''): P2 learns eta'.
    let eta_p = private_compare(cx, &x_bits, r_minus_1, eta_pp);
    // Step 6: P2 sends shares of eta' over Z_{L-1}.
    let eta_p = cx.helper_share_bit(eta_p, ValueKind::OddRing);
    let one_odd = cx.on_servers(
        |_| Kernel::RingToOdd,
        |j| vec![one[j]],
        ValueKind::OddRing,
        &[],
    );
    let mut y = [one_odd[0]; 2];
    for (j, host) in SERVERS.into_iter().enumerate() {
        let odd = |cx: &mut Lowerer, k: Kernel, inputs: &[_]| {
            cx.emit(host, k, inputs, ValueKind::OddRing, &shape)
        };
        let first = j == 0;
        // Step 8: <eta>_j = <eta'>_j + (1 - j) eta'' - 2 eta'' <eta'>_j, and once more with
        // [r = 0] (see above).
        let eta = odd(
            cx,
            Kernel::XorPublicBit { add: first },
            &[eta_p[j], eta_pp[j]],
        );
        let eta = odd(
            cx,
            Kernel::XorPublicBit { add: first },
            &[eta, r_is_zero[j]],
        );
        // Step 9: <theta>_j = beta_j + (1 - j)(-alpha - 1) + <delta>_j + <eta>_j.
        let beta_j = odd(
            cx,
            Kernel::BitTo {
                kind: ValueKind::OddRing,
            },
            &[beta[j]],
        );
        let mut theta = odd(cx, Kernel::OddAdd, &[beta_j, delta[j]]);
        theta = odd(cx, Kernel::OddAdd, &[theta, eta]);
        if first {
            let alpha = odd(
                cx,
                Kernel::BitTo {
                    kind: ValueKind::OddRing,
                },
                &[alpha[j]],
            );
            theta = odd(cx, Kernel::OddSub, &[theta, alpha]);
            theta = odd(cx, Kernel::OddSub, &[theta, one_odd[j]]);
        }
        // Step 10: <y>_j = <a>_j - <theta>_j over Z_{L-1}.
        let a_odd = odd(cx, Kernel::RingToOdd, &[a.s[j]]);
        y[j] = odd(cx, Kernel::OddSub, &[a_odd, theta]);
    }
    // Step 11: P_j outputs <y>_j + u_j.
    cx.rerandomise_odd(&OddShared { s: y })
}

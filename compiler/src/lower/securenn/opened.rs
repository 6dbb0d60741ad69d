//! DReLU from one masked opening and one PrivateCompare: the sign of a shared value in three
//! rounds, without ShareConvert and ComputeMSB, and its product with the value in the same
//! three rounds.
//!
//! With the helper's random `r` in Z_2^64 and `c = a + r` opened to the servers, write
//! `c = c_top 2^63 + c_low` and `r = r_top 2^63 + r_low`. Subtracting `r` borrows from the
//! top bit exactly when `r_low > c_low`, so
//!
//! `msb(a) = c_top XOR r_top XOR (r_low > c_low)`,
//!
//! and the last bit is what PrivateCompare gives the helper (masked by the servers' `beta`).
//! The helper, who knows `r_top`, deals `s = beta' XOR r_top`; the servers know
//! `t = NOT(c_top XOR beta)`, and `DReLU(a) = t XOR s` is local. Where the value's product
//! with its DReLU is wanted (ReLU, the maximum of two candidates), the helper also learns
//! `a + m` (`m` the servers' common randomness, hidden from it) and deals `s (a + m)`; the
//! servers subtract `m s` and flip by `t`. For that, server 1 sends server 0 the whole word of
//! its share of `c`, and server 0 sends the helper `c + m` with the PrivateCompare round: the
//! helper subtracts its `r`. So one ReLU is 3 rounds (the paper: 8 for DReLU, 9 with the
//! product), and the bits compared are 63 instead of twice 64.
//!
//! What each party sees: the servers `c` (masked by `r`, which neither knows alone); the
//! helper the masked, rotated PrivateCompare shares (which tell it `beta'` only, uniform as
//! `beta` is) and `c + m` (uniform as `m` is). Every share they receive is a uniform
//! correction, as everywhere else.
//!
//! Exact for every word of Z_2^64 at the width 64, which values of unknown origin take.
//!
//! **Large tensors** (at least [`crate::options::CompileOptions::carry_min_words`] words)
//! take step 5's `beta'` from a carry circuit ([`super::carry::carry_compare`]) instead of
//! PrivateCompare, and the helper deals `r`'s bits as XOR shares of bit planes instead of
//! step 2's Z_p shares: 30 bytes per sign of 47 bits instead of 106, in five rounds more. The
//! rest is the same.
//!
//! **After a truncation** ([`Lowerer::sign_width`]). A dealer truncation by `2^f` is right
//! for inputs `|x| < 2^62` only, and its output is then at most `2^(62-f)` in magnitude: its
//! sign is exact over `k = 64 - f` bits (48 at `f = 16`) by default, with no bound to prove.
//! Where the truncation was folded into a product ([`crate::lower::Truncated`]), its opening
//! serves as `c` (the narrower widths below, and the same argument): the ReLU of a layer's
//! output takes 2 rounds and compares 47 bits over Z_53 (6 bits each on the wire) instead of
//! 63 over Z_67 (7 bits); after a truncation of its own, 3 rounds at 48 bits. A max pool of
//! such values pads with `-2^(k-1)` and compares differences over `k + 1` bits
//! ([`super::maxpool`]).
//!
//! **Narrower widths** ([`crate::bounds`]). Where a bound computed by the model owner proves
//! `|a| < 2^(k-1)` for every value a node compares (`Lowerer::sign_bits`, `k < 64`), the same
//! algorithm runs in Z_2^k: the sign of `a` is the top bit of `a mod 2^k`, and the low `k`
//! bits of `c = a + r` (the opening is still a ring word; its high bits are ignored) are
//! `(a mod 2^k) + (r mod 2^k) mod 2^k`, so
//!
//! `msb_k(a) = c_(k-1) XOR r_(k-1) XOR (r mod 2^(k-1) > c mod 2^(k-1))`,
//!
//! and the helper deals, and PrivateCompare compares, `k - 1` bits instead of 63, over the
//! smallest prime above `k` ([`super::prime_for`], packed on the wire in its bits: for
//! `k = 22`, 5 bits each over Z_23, 3 x 14 bytes per sign instead of 3 x 56 over Z_67 at 7
//! bits), and the opening sends the low `ceil(k / 8)` bytes of each share instead of 8 (the
//! servers use only `c mod 2^k`). The outputs (the DReLU bit, the
//! product) stay shares over Z_2^64. Security is unchanged: `c` is uniform in Z_2^64 given
//! `a`, as `r` is, so its low `k` bits are uniform in Z_2^k; PrivateCompare over `k - 1` bits
//! tells the helper `beta'` only, as over 63. What the width itself reveals (public, in the
//! program) is about `log2` of the bound, that is of the weights' norms: see
//! [`crate::bounds`]. Beyond the bound the sign would be wrong without an error, which is why
//! the bound is proven, and its assumptions checked by the inputs' owners at run time.

use shareflow_ops::ValueKind;

use super::carry::carry_compare;
use super::private_compare::private_compare;
use super::{Public, SERVERS, WORD_BITS};
use crate::ir::{Draw, Exchange, Kernel, ValueId};
use crate::lower::affine::Affine;
use crate::lower::{Lowerer, Shared, HELPER};

/// Shares over Z_2^64 of `DReLU(a)` (1 where `a >= 0`, integers), for every word `a`.
///
/// - Common randomness: P0, P1 hold a random bit `beta` and shares of 0 (`u_j`).
pub fn sign(cx: &mut Lowerer, a: &Shared) -> Shared {
    let dealt = steps_1_to_6(cx, a, false);
    drelu(cx, &dealt)
}

/// Shares of `DReLU(a)` as [`sign`] and of `a DReLU(a)`, in the same three rounds.
///
/// - Common randomness: P0, P1 hold a random bit `beta`, ring words `m` and `z`, and shares of
///   0 (`u_j`).
pub fn sign_times(cx: &mut Lowerer, a: &Shared) -> (Shared, Shared) {
    let shape = cx.shape(a.s[0]).to_vec();
    let dealt = steps_1_to_6(cx, a, true);
    // Step 4 (with step 5): server 0, which holds all of c, sends c + m to the helper, which
    // subtracts r: a + m.
    let m = cx.servers_random(Draw::Ring, &shape);
    let c_plus_m = cx.emit_like(Kernel::Add, &[dealt.c[0], m[0]]);
    let a_plus_m = match dealt.top {
        None => {
            let at_helper = cx.send(c_plus_m, HELPER, Exchange::MaskedOpening);
            cx.emit_like(Kernel::Sub, &[at_helper, dealt.r])
        }
        // After a truncation, a + r = c + 2^(64-f) T with T shared modulo 2^f: server 0 adds
        // its share of T (plus z) to c + m, and server 1 sends the low bytes of its share
        // (minus z).
        Some((top, f)) => {
            let z = cx.servers_random(Draw::Ring, &shape);
            let shift = Kernel::Shl { bits: 64 - f };
            let t0 = cx.emit_like(Kernel::Add, &[top.s[0], z[0]]);
            let t0 = cx.emit_like(shift.clone(), &[t0]);
            let u0 = cx.emit_like(Kernel::Add, &[c_plus_m, t0]);
            let t1 = cx.emit_like(Kernel::Sub, &[top.s[1], z[1]]);
            let bytes = f.div_ceil(8) as u8;
            let lanes = [shape.as_slice(), &[usize::from(bytes)]].concat();
            let low = Kernel::LowBytes { bytes };
            let u1 = cx.emit(SERVERS[1], low, &[t1], ValueKind::Small, &lanes);
            let at = [u0, u1].map(|u| cx.send(u, HELPER, Exchange::MaskedOpening));
            let u1 = cx.emit(
                HELPER,
                Kernel::FromLowBytes,
                &[at[1]],
                ValueKind::Ring,
                &shape,
            );
            let u1 = cx.emit_like(shift, &[u1]);
            let sum = cx.emit_like(Kernel::Add, &[at[0], u1]);
            cx.emit_like(Kernel::Sub, &[sum, dealt.r])
        }
    };
    // Step 6: the helper deals s (a + m).
    let prod = cx.emit_like(Kernel::Mul, &[dealt.s_word, a_plus_m]);
    let sam = cx.dealer_share(prod);
    // Step 7: <a DReLU(a)>_j = <s (a + m)>_j - m <s>_j, flipped by t, plus u_j.
    let ms = cx.local2(Kernel::Mul, &Shared { s: m }, &dealt.s, &shape);
    let w = cx.local2(Kernel::Sub, &sam, &ms, &shape);
    let flipped = cx.on_servers(
        |_| Kernel::XorPublicBitTimes,
        |j| vec![w.s[j], dealt.t[j], a.s[j]],
        ValueKind::Ring,
        &shape,
    );
    let times = cx.rerandomise(&Shared { s: flipped });
    (drelu(cx, &dealt), times)
}

/// What steps 1-6 leave: the helper's `s = beta' XOR r_top` (a ring word on the helper) and
/// its shares, and the servers' public bit `t = NOT(c_top XOR beta)`.
struct Dealt {
    s_word: ValueId,
    s: Shared,
    t: Public,
    /// The opened `c = a + r` (all of it on server 0 if asked for) and the helper's `r`.
    c: Public,
    r: ValueId,
    /// After a truncation: `a + r = c + 2^(64-f) T`, the shares of `T` (modulo `2^f`) and
    /// `f`.
    top: Option<(Shared, u32)>,
}

/// Step 7 for the sign: `<DReLU(a)>_j = <s>_j XOR t`, plus `u_j`.
///
/// The bit is recorded in affine form ([`crate::lower::affine`]): `t XOR s = t + (1 - 2t) s`,
/// `t` public to the servers and `s` the helper's, so that its product with a value in
/// affine form (the ReLU's gradient) opens neither.
fn drelu(cx: &mut Lowerer, dealt: &Dealt) -> Shared {
    let shape = cx.shape(dealt.s.s[0]).to_vec();
    let bits = cx.on_servers(
        |j| Kernel::XorPublicBit { add: j == 0 },
        |j| vec![dealt.s.s[j], dealt.t[j]],
        ValueKind::Ring,
        &shape,
    );
    let out = cx.rerandomise(&Shared { s: bits });
    let kind = ValueKind::Ring;
    let t = cx.on_servers(
        |_| Kernel::BitTo { kind },
        |j| vec![dealt.t[j]],
        kind,
        &shape,
    );
    let one = cx.servers_word(1);
    let twice = cx.on_servers(|_| Kernel::Shl { bits: 1 }, |j| vec![t[j]], kind, &shape);
    let sign = cx.on_servers(|_| Kernel::Sub, |j| vec![one[j], twice[j]], kind, &shape);
    let form = Affine {
        public: t,
        helper: dealt.s_word,
        tops: Vec::new(),
        sign: Some(sign),
    };
    cx.affines.insert(out.s, form);
    out
}

/// Opens the low `k` bits of `x` (at least; the words' higher bits are not the sum's): each
/// server sends the low `ceil(k / 8)` bytes of its share, which the other adds to its own.
/// The whole words where `k` needs all 8 bytes, or to server 0 if `whole_to_p0` (which then
/// holds all of `x`).
fn open_low(cx: &mut Lowerer, x: &Shared, k: usize, whole_to_p0: bool) -> Public {
    let bytes = k.div_ceil(8);
    if bytes >= 8 {
        return cx.open(x);
    }
    let shape = cx.shape(x.s[0]).to_vec();
    let lanes = [shape.as_slice(), &[bytes]].concat();
    let low = Kernel::LowBytes { bytes: bytes as u8 };
    let sent = cx.on_servers(|_| low.clone(), |j| vec![x.s[j]], ValueKind::Small, &lanes);
    let to_p0 = if whole_to_p0 {
        cx.send(x.s[1], SERVERS[0], Exchange::MaskedOpening)
    } else {
        let at = cx.send(sent[1], SERVERS[0], Exchange::MaskedOpening);
        cx.emit(
            SERVERS[0],
            Kernel::FromLowBytes,
            &[at],
            ValueKind::Ring,
            &shape,
        )
    };
    let at_p1 = cx.send(sent[0], SERVERS[1], Exchange::MaskedOpening);
    let other = [
        to_p0,
        cx.emit(
            SERVERS[1],
            Kernel::FromLowBytes,
            &[at_p1],
            ValueKind::Ring,
            &shape,
        ),
    ];
    cx.on_servers(
        |_| Kernel::Add,
        |j| vec![x.s[j], other[j]],
        ValueKind::Ring,
        &shape,
    )
}

/// Steps 1-3, 5 and 6 (without the product of step 4), in Z_2^k for `k = cx.sign_width(a)`;
/// server 0 gets all of `c` if `whole_to_p0`.
///
/// A value that a dealer truncation just made ([`crate::lower::Truncated`]: `a = P - R +
/// 2^(64-f) T`, `P` public) needs no opening of its own where `k <= 64 - f`: with `r = R`,
/// `a + r = P` modulo `2^k`, so the truncation's opening serves (one round and one
/// exchange fewer; `c` is a function of what the servers saw, and `R` is uniform).
fn steps_1_to_6(cx: &mut Lowerer, a: &Shared, whole_to_p0: bool) -> Dealt {
    let shape = cx.shape(a.s[0]).to_vec();
    let k = (cx.sign_width(a) as usize).clamp(2, WORD_BITS);
    let top = (k - 1) as u32;
    let low = u64::MAX >> (WORD_BITS - (k - 1));
    let beta = cx.servers_random(Draw::Bits, &shape);
    let truncated = cx
        .truncations
        .get(&a.s)
        .copied()
        .filter(|t| k + t.f as usize <= WORD_BITS);
    // Steps 1 and 3 (the helper's random r, both shares seed expansions; c = a + r opened)
    let (r, c, after) = match truncated {
        Some(t) => (t.r, t.p, Some((t.top, t.f))),
        None => {
            let (r, r_shared) = cx.dealer_random(&shape);
            // Step 3 (its low k bits: in ceil(k / 8) bytes per word).
            let masked = cx.local2(Kernel::Add, a, &r_shared, &shape);
            (r, open_low(cx, &masked, k, whole_to_p0), None)
        }
    };
    let r_top = cx.emit(
        HELPER,
        Kernel::BitAt { bit: top },
        &[r],
        ValueKind::Small,
        &shape,
    );
    let mut t = beta;
    for (j, host) in SERVERS.into_iter().enumerate() {
        let c_top = cx.emit(
            host,
            Kernel::BitAt { bit: top },
            &[c[j]],
            ValueKind::Small,
            &shape,
        );
        // t = NOT(c_top XOR beta).
        let not = Kernel::XorBits { not: true };
        t[j] = cx.emit(host, not, &[c_top, beta[j]], ValueKind::Small, &shape);
    }
    // Steps 2 and 5: the helper learns beta' = beta XOR (r_low > c_low).
    let words: usize = shape.iter().product();
    let beta_p = if words >= cx.options.carry_min_words {
        // By the carry circuit on bit planes (a third of the bytes, five rounds more).
        carry_compare(cx, r, k - 1, c, beta)
    } else {
        // Step 2: the helper deals the low k - 1 bits of r over Z_p. Step 5: PrivateCompare
        // on (bits of r_low, c_low, beta).
        let r_low = cx.emit_like(Kernel::AndConst { value: low }, &[r]);
        let r_bits = cx.helper_share_bits(r_low, k - 1);
        let c_low = c.map(|c| cx.emit_like(Kernel::AndConst { value: low }, &[c]));
        private_compare(cx, &r_bits, c_low, beta)
    };
    // Step 6: the helper deals s = beta' XOR r_top over Z_L.
    let xor = Kernel::XorBits { not: false };
    let s = cx.emit(HELPER, xor, &[beta_p, r_top], ValueKind::Small, &shape);
    let kind = ValueKind::Ring;
    let s_word = cx.emit(HELPER, Kernel::BitTo { kind }, &[s], kind, &shape);
    Dealt {
        s_word,
        s: cx.dealer_share(s_word),
        t,
        c,
        r,
        top: after,
    }
}

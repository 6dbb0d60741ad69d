//! The comparison `r > c` of a word `r` whose low `n` bits are XOR-shared between two servers
//! with a word `c` both know, by a carry circuit on bit planes, the helper dealing the masks
//! and their products (Beaver's AND triples over GF(2)). Where PrivateCompare sends each bit
//! as a Z_p element from each server and from the helper (18 bits per compared bit at 47 bits
//! over Z_53), the circuit sends 5.1 (each server 1.4 for the openings, the helper 1.5 for
//! `r`'s shares and its pairs' products and 0.9 for the triples), in `ceil(log2 n) - 1`
//! rounds instead of one.
//!
//! **Bit planes.** Values come in blocks of 64: plane `i` of a block is one word whose bit `v`
//! is bit `i` of the block's value `v` ([`bit_planes`]). Every gate is then a word operation
//! on 64 values at once, and every opening a whole word of 64 bits.
//!
//! **The circuit.** At bit `i`, `G_i = r_i AND NOT c_i` (`r` is larger here) and `P_i = NOT
//! (r_i XOR c_i)` (they are equal here); both are linear in `r`'s shares, as `c` is public
//! ([`carry_leaves`]). Two adjacent groups of bits, `hi` above `lo`, make one:
//!
//! `G = G_hi XOR (P_hi AND G_lo)`, `P = P_hi AND P_lo`
//!
//! (`G_hi` and `P_hi AND G_lo` exclude each other, so the XOR is the OR), a level halving the
//! groups ([`carry_levels`]) until one is left, whose `G` is `r > c`. The first level needs no
//! product of shares: the helper, who knows `r`, also deals the products of its pairs of bits,
//! and a pair's `G` and `P` are linear in those and in `r`'s bits ([`carry_pairs`],
//! [`carry_leaves`]); the levels start at `ceil(n / 2)` groups. The lowest group's `P`
//! is never used, so it is not computed: a level of `g` groups has `g / 2` combinations and
//! opens `3 (g / 2) - 1` planes per block ([`carry_opened`]): `P_hi` once for both of its
//! products (one mask `a` shared by the two triples), `G_lo` and `P_lo`.
//!
//! **A product** `x AND y` with the dealt triple `(a, b, a AND b)`: each server opens `x + a`
//! and `y + b` (XOR), and `<x y>_j = <a b>_j + e <b>_j + f <a>_j (+ e f on server 0)` with `e =
//! x + a`, `f = y + b` ([`carry_combine`]).
//!
//! What each party sees: a server the other's openings, each XOR a fresh mask from the
//! helper's seed with the other server (uniform); the helper nothing of the circuit (it deals
//! masks from seeds and the masks' products). Server 1 receives `r`'s planes XOR server 0's
//! (uniform) and the products XOR server 0's (uniform).

use rayon::prelude::*;

use super::arith::PAR_THRESHOLD;
use crate::OpsError;

/// Values per block of bit planes.
pub const BLOCK: usize = 64;

/// Blocks of planes for `words` values.
pub fn plane_blocks(words: usize) -> usize {
    words.div_ceil(BLOCK)
}

/// The groups that pairs of `n` bits or groups make, the top one alone for an odd `n`: the
/// first level's groups over `n` bits ([`carry_leaves`]), and the next level's after a level
/// of `n` groups ([`carry_combine`]).
pub fn carry_groups(n: usize) -> usize {
    n.div_ceil(2)
}

/// Planes per block the helper shares for the circuit over `n` bits ([`carry_pairs`]): the `n`
/// bits and the products of their `n / 2` pairs.
pub fn carry_dealt(n: usize) -> usize {
    n + n / 2
}

/// The groups at the start of each round of the circuit over `n` bits (after the first
/// level, which takes none): `ceil(n / 2)`, `ceil(n / 4)`, ..., 2 (empty for `n <= 2`, where
/// the first level's single `G` is the answer).
pub fn carry_levels(n: usize) -> Vec<usize> {
    let mut levels = Vec::new();
    let mut g = carry_groups(n);
    while g > 1 {
        levels.push(g);
        g = carry_groups(g);
    }
    levels
}

/// Planes a server opens per block at a level of `g >= 2` groups (and the masks dealt):
/// `P_hi` and `G_lo` of every combination, `P_lo` of all but the lowest.
pub fn carry_opened(g: usize) -> usize {
    Level::new(g).opened()
}

/// Products of masks dealt per block at a level of `g >= 2` groups.
pub fn carry_products(g: usize) -> usize {
    Level::new(g).products()
}

/// Where a level of `g` groups keeps the words of its `c = g / 2` combinations (combination
/// `m` joins group `2m + 1` above `2m`), per block: masks and openings `[P_hi (c); G_lo (c);
/// P_lo (c - 1, none for m = 0)]`, the triples' products `[a b1 (c); a b2 (c - 1)]`.
#[derive(Clone, Copy)]
struct Level {
    c: usize,
}

impl Level {
    fn new(g: usize) -> Level {
        Level { c: g / 2 }
    }

    /// `P_hi`'s word of combination `m` (also its mask `a`).
    fn p_hi(self, m: usize) -> usize {
        m
    }

    /// `G_lo`'s word of combination `m` (also its mask `b1`).
    fn g_lo(self, m: usize) -> usize {
        self.c + m
    }

    /// `P_lo`'s word of combination `m >= 1` (also its mask `b2`).
    fn p_lo(self, m: usize) -> usize {
        2 * self.c + m - 1
    }

    /// The product `a b1` of combination `m`.
    fn ab1(self, m: usize) -> usize {
        m
    }

    /// The product `a b2` of combination `m >= 1`.
    fn ab2(self, m: usize) -> usize {
        self.c + m - 1
    }

    /// Words opened (and masks) per block.
    fn opened(self) -> usize {
        3 * self.c - 1
    }

    /// Products per block.
    fn products(self) -> usize {
        2 * self.c - 1
    }
}

fn invalid(op: &'static str, message: String) -> OpsError {
    OpsError::InvalidArgument { op, message }
}

/// Fills `out` (`out.len()` words per block) from each block of `inputs` (each with its own
/// words per block), in parallel for large tensors.
fn per_block<const K: usize>(
    out: &mut [u64],
    width: usize,
    inputs: [(&[u64], usize); K],
    f: impl Fn(&mut [u64], [&[u64]; K]) + Sync + Send,
) {
    let blocks = out.len().checked_div(width).unwrap_or(0);
    each_block(out, width, blocks * BLOCK, |b, o| {
        f(o, inputs.map(|(x, w)| &x[b * w..(b + 1) * w]))
    });
}

/// Calls `f(b, block)` on each block of `width` words of `out` (`width > 0`), in parallel
/// where the tensor has at least [`PAR_THRESHOLD`] values.
fn each_block(
    out: &mut [u64],
    width: usize,
    values: usize,
    f: impl Fn(usize, &mut [u64]) + Sync + Send,
) {
    let one = |(b, o): (usize, &mut [u64])| f(b, o);
    if values >= PAR_THRESHOLD {
        out.par_chunks_mut(width).enumerate().for_each(one);
    } else {
        out.chunks_mut(width).enumerate().for_each(one);
    }
}

fn check_len(op: &'static str, what: &str, got: usize, want: usize) -> Result<(), OpsError> {
    if got == want {
        Ok(())
    } else {
        Err(invalid(
            op,
            format!("{what} has {got} words, expected {want}"),
        ))
    }
}

/// Transposes a 64 x 64 bit matrix in place: bit `c` of row `r` becomes bit `r` of row `c`
/// (Hacker's Delight, 7-3: swap the off-diagonal blocks of 32, then of 16, ... within each).
fn transpose64(a: &mut [u64; 64]) {
    let mut j = 32;
    let mut m: u64 = 0x0000_0000_ffff_ffff;
    while j != 0 {
        // Rows k (bit j of k clear) and k + j, j at a time (vectorised).
        for block in a.chunks_exact_mut(2 * j) {
            let (lo, hi) = block.split_at_mut(j);
            for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                let t = ((*x >> j) ^ *y) & m;
                *x ^= t << j;
                *y ^= t;
            }
        }
        j >>= 1;
        m ^= m << j;
    }
}

/// The low `n` bit planes (`n` up to 64) of `words`, `n` words per block of 64 values: word
/// `i` of block `b` has bit `v` set where bit `i` of `words[64 b + v]` is (values past the end
/// are 0).
pub fn bit_planes(words: &[u64], n: usize) -> Vec<u64> {
    let n = n.min(64);
    let mut out = vec![0u64; plane_blocks(words.len()) * n];
    if n == 0 {
        return out;
    }
    each_block(&mut out, n, words.len(), |b, o| {
        let mut m = [0u64; 64];
        let from = &words[b * BLOCK..words.len().min((b + 1) * BLOCK)];
        m[..from.len()].copy_from_slice(from);
        transpose64(&mut m);
        o.copy_from_slice(&m[..o.len()]);
    });
    out
}

/// The helper's planes of `r` for sharing: its `n` bit planes followed by the `n / 2` products
/// `r_(2m+1) AND r_(2m)` of its pairs of bits (`n + n / 2` words per block), from which the
/// servers make the first level's groups without opening anything ([`carry_leaves`]).
pub fn carry_pairs(planes: &[u64], n: usize) -> Result<Vec<u64>, OpsError> {
    if n == 0 || !planes.len().is_multiple_of(n) {
        return Err(invalid(
            "carry_pairs",
            format!("{} planes are not blocks of {n}", planes.len()),
        ));
    }
    let width = carry_dealt(n);
    let mut out = vec![0u64; planes.len() / n * width];
    per_block(&mut out, width, [(planes, n)], |o, [r]| {
        let (bits, pairs) = o.split_at_mut(n);
        bits.copy_from_slice(r);
        for (m, q) in pairs.iter_mut().enumerate() {
            *q = r[2 * m + 1] & r[2 * m];
        }
    });
    Ok(out)
}

/// The first level's `G` and `P` shares (`2 ceil(n / 2)` words per block: the `G`s, then the
/// `P`s) of server `party`, from the public planes of `c` (`n` per block) and its shares of
/// [`carry_pairs`] (`n + n / 2` per block): a group is a pair of bits, `hi = 2m + 1` above `lo
/// = 2m` (the top bit alone for an odd `n`). With `x`, `y` the pair's bits of `r`, `q = x y`
/// and `h`, `l` the complements of `c`'s (public), the leaves' `G = r AND NOT c` and `P = NOT
/// (r XOR c)` combine into
///
/// `G = x h + q l + y h l`, `P = q + x l + y h + h l`,
///
/// linear in the shares of `x`, `y` and `q` (server 0 adds the constant `h l`).
pub fn carry_leaves(party: u8, c: &[u64], r: &[u64], n: usize) -> Result<Vec<u64>, OpsError> {
    if n == 0 || !c.len().is_multiple_of(n) {
        return Err(invalid(
            "carry_leaves",
            format!("{} planes are not blocks of {n}", c.len()),
        ));
    }
    let blocks = c.len() / n;
    let width = carry_dealt(n);
    check_len(
        "carry_leaves",
        "the shares of r's planes",
        r.len(),
        blocks * width,
    )?;
    let g = carry_groups(n);
    let lead = if party == 0 { u64::MAX } else { 0 };
    let mut out = vec![0u64; blocks * 2 * g];
    per_block(&mut out, 2 * g, [(c, n), (r, width)], |o, [c, r]| {
        let (gs, ps) = o.split_at_mut(g);
        let (bits, pairs) = r.split_at(n);
        for (m, &q) in pairs.iter().enumerate() {
            let (x, y) = (bits[2 * m + 1], bits[2 * m]);
            let (h, l) = (!c[2 * m + 1], !c[2 * m]);
            gs[m] = (x & h) ^ (q & l) ^ (y & h & l);
            ps[m] = q ^ (x & l) ^ (y & h) ^ (h & l & lead);
        }
        if n % 2 == 1 {
            // The top bit alone: G = x h, P = x + h.
            let (x, h) = (bits[n - 1], !c[n - 1]);
            gs[g - 1] = x & h;
            ps[g - 1] = x ^ (h & lead);
        }
    });
    Ok(out)
}

/// Server `j`'s openings at a level of `g` groups: its shares of the operands XOR its masks
/// (`[P_hi ..; G_lo ..; P_lo .. (but the lowest)]`, [`carry_opened`] per block).
pub fn carry_open(state: &[u64], g: usize, masks: &[u64]) -> Result<Vec<u64>, OpsError> {
    let (blocks, k) = level_shape("carry_open", state, g)?;
    check_len("carry_open", "the masks", masks.len(), blocks * k)?;
    let at = Level::new(g);
    let mut out = vec![0u64; blocks * k];
    per_block(&mut out, k, [(state, 2 * g), (masks, k)], |o, [s, a]| {
        let (gs, ps) = s.split_at(g);
        for m in 0..at.c {
            let (p_hi, g_lo) = (at.p_hi(m), at.g_lo(m));
            o[p_hi] = ps[2 * m + 1] ^ a[p_hi];
            o[g_lo] = gs[2 * m] ^ a[g_lo];
            if m > 0 {
                let p_lo = at.p_lo(m);
                o[p_lo] = ps[2 * m] ^ a[p_lo];
            }
        }
    });
    Ok(out)
}

fn level_shape(op: &'static str, state: &[u64], g: usize) -> Result<(usize, usize), OpsError> {
    if g < 2 || !state.len().is_multiple_of(2 * g) {
        return Err(invalid(
            op,
            format!(
                "{} words are not blocks of {g} groups (at least 2)",
                state.len()
            ),
        ));
    }
    Ok((state.len() / (2 * g), carry_opened(g)))
}

/// The helper's products for server 1 at a level of `g` groups: from both servers' masks
/// (`masks0`, `masks1`, [`carry_opened`] per block) the products `a b1`, `a b2` of the
/// combined masks ([`carry_products`] per block), XOR server 0's (`products0`).
pub fn carry_deal(
    g: usize,
    masks0: &[u64],
    masks1: &[u64],
    products0: &[u64],
) -> Result<Vec<u64>, OpsError> {
    if g < 2 {
        return Err(invalid("carry_deal", format!("{g} groups (at least 2)")));
    }
    let (k, z) = (carry_opened(g), carry_products(g));
    if !masks0.len().is_multiple_of(k) {
        return Err(invalid(
            "carry_deal",
            format!("{} masks are not blocks of {k}", masks0.len()),
        ));
    }
    let blocks = masks0.len() / k;
    check_len("carry_deal", "server 1's masks", masks1.len(), blocks * k)?;
    check_len(
        "carry_deal",
        "server 0's products",
        products0.len(),
        blocks * z,
    )?;
    let at = Level::new(g);
    let mut out = vec![0u64; blocks * z];
    per_block(
        &mut out,
        z,
        [(masks0, k), (masks1, k), (products0, z)],
        |o, [a0, a1, z0]| {
            let mask = |i: usize| a0[i] ^ a1[i];
            for m in 0..at.c {
                let a = mask(at.p_hi(m));
                o[at.ab1(m)] = (a & mask(at.g_lo(m))) ^ z0[at.ab1(m)];
                if m > 0 {
                    o[at.ab2(m)] = (a & mask(at.p_lo(m))) ^ z0[at.ab2(m)];
                }
            }
        },
    );
    Ok(out)
}

/// Server `party`'s shares of the next level's groups (`2 ceil(g / 2)` words per block) from
/// its shares at a level of `g` groups, its masks and products, and both servers' openings.
pub fn carry_combine(
    party: u8,
    state: &[u64],
    g: usize,
    masks: &[u64],
    products: &[u64],
    mine: &[u64],
    theirs: &[u64],
) -> Result<Vec<u64>, OpsError> {
    let (blocks, k) = level_shape("carry_combine", state, g)?;
    let z = carry_products(g);
    check_len("carry_combine", "the masks", masks.len(), blocks * k)?;
    check_len("carry_combine", "the products", products.len(), blocks * z)?;
    check_len(
        "carry_combine",
        "this server's openings",
        mine.len(),
        blocks * k,
    )?;
    check_len(
        "carry_combine",
        "the other server's openings",
        theirs.len(),
        blocks * k,
    )?;
    let (at, next) = (Level::new(g), carry_groups(g));
    let lead = if party == 0 { u64::MAX } else { 0 };
    let mut out = vec![0u64; blocks * 2 * next];
    per_block(
        &mut out,
        2 * next,
        [
            (state, 2 * g),
            (masks, k),
            (products, z),
            (mine, k),
            (theirs, k),
        ],
        |o, [s, a, ab, x, y]| {
            let (gs, ps) = s.split_at(g);
            let (go, po) = o.split_at_mut(next);
            // <u v> from the opened e = u + a, f = v + b and the triple's shares.
            let and =
                |ab: u64, e: u64, f: u64, a: u64, b: u64| ab ^ (e & b) ^ (f & a) ^ (e & f & lead);
            let opened = |i: usize| x[i] ^ y[i];
            for m in 0..at.c {
                let (p_hi, g_lo) = (at.p_hi(m), at.g_lo(m));
                let e = opened(p_hi);
                let f = opened(g_lo);
                go[m] = gs[2 * m + 1] ^ and(ab[at.ab1(m)], e, f, a[p_hi], a[g_lo]);
                if m > 0 {
                    let p_lo = at.p_lo(m);
                    po[m] = and(ab[at.ab2(m)], e, opened(p_lo), a[p_hi], a[p_lo]);
                }
            }
            if g % 2 == 1 {
                go[at.c] = gs[g - 1];
                po[at.c] = ps[g - 1];
            }
        },
    );
    Ok(out)
}

/// Server `party`'s message to the helper from its share of the last group (`state`, 2 words
/// per block): its `G` XOR the servers' common `u` (a word per block), and on server 0 also
/// XOR the common bits `beta` (`Small` 0 or 1, one per value), so that the helper learns
/// `beta XOR (r > c)` alone.
pub fn carry_out(party: u8, state: &[u64], beta: &[u8], u: &[u64]) -> Result<Vec<u64>, OpsError> {
    let blocks = plane_blocks(beta.len());
    check_len("carry_out", "the last group", state.len(), 2 * blocks)?;
    check_len("carry_out", "the common words", u.len(), blocks)?;
    Ok((0..blocks)
        .map(|b| {
            let mut w = state[2 * b] ^ u[b];
            if party == 0 {
                for (v, &bit) in beta[b * BLOCK..beta.len().min((b + 1) * BLOCK)]
                    .iter()
                    .enumerate()
                {
                    w ^= u64::from(bit & 1) << v;
                }
            }
            w
        })
        .collect())
}

/// The `len` bits (`Small` 0 or 1) of the XOR of two planes, a word per block.
pub fn plane_bits(a: &[u64], b: &[u64], len: usize) -> Result<Vec<u8>, OpsError> {
    let blocks = plane_blocks(len);
    check_len("plane_bits", "the first plane", a.len(), blocks)?;
    check_len("plane_bits", "the second plane", b.len(), blocks)?;
    Ok((0..len)
        .map(|v| (((a[v / BLOCK] ^ b[v / BLOCK]) >> (v % BLOCK)) & 1) as u8)
        .collect())
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    use super::*;

    #[test]
    fn planes_transpose_the_bits() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for len in [0, 1, 63, 64, 65, 200] {
            let words: Vec<u64> = (0..len).map(|_| rng.random()).collect();
            for n in [1, 7, 47, 64] {
                let planes = bit_planes(&words, n);
                assert_eq!(planes.len(), plane_blocks(len) * n);
                for (v, w) in words.iter().enumerate() {
                    for i in 0..n {
                        let bit = (planes[(v / 64) * n + i] >> (v % 64)) & 1;
                        assert_eq!(bit, (w >> i) & 1, "len {len} n {n} value {v} bit {i}");
                    }
                }
                // Past the end: zeros.
                for v in len..plane_blocks(len) * 64 {
                    for i in 0..n {
                        assert_eq!((planes[(v / 64) * n + i] >> (v % 64)) & 1, 0);
                    }
                }
            }
        }
    }

    fn xor(a: &[u64], b: &[u64]) -> Vec<u64> {
        a.iter().zip(b).map(|(x, y)| x ^ y).collect()
    }

    /// Both servers and the helper, as the compiled programs run them.
    fn compare(r: &[u64], c: &[u64], beta: &[u8], n: usize, rng: &mut ChaCha20Rng) -> Vec<u8> {
        let len = r.len();
        let blocks = plane_blocks(len);
        let mut draw = |k: usize| -> Vec<u64> { (0..k).map(|_| rng.random()).collect() };
        let rho0 = draw(blocks * carry_dealt(n));
        let rho1 = xor(&carry_pairs(&bit_planes(r, n), n).unwrap(), &rho0);
        let cp = bit_planes(c, n);
        let mut s = [
            carry_leaves(0, &cp, &rho0, n).unwrap(),
            carry_leaves(1, &cp, &rho1, n).unwrap(),
        ];
        for g in carry_levels(n) {
            let (k, z) = (carry_opened(g), carry_products(g));
            let masks = [draw(blocks * k), draw(blocks * k)];
            let p0 = draw(blocks * z);
            let p1 = carry_deal(g, &masks[0], &masks[1], &p0).unwrap();
            let products = [p0, p1];
            let open = [0, 1].map(|j| carry_open(&s[j], g, &masks[j]).unwrap());
            s = [0, 1].map(|j| {
                carry_combine(
                    j as u8,
                    &s[j],
                    g,
                    &masks[j],
                    &products[j],
                    &open[j],
                    &open[1 - j],
                )
                .unwrap()
            });
        }
        let u = draw(blocks);
        let out = [0u8, 1].map(|j| carry_out(j, &s[usize::from(j)], beta, &u).unwrap());
        plane_bits(&out[0], &out[1], len).unwrap()
    }

    #[test]
    fn the_circuit_compares_every_width() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for n in 1..=64usize {
            let low = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            let len = 1 + (n * 37) % 150;
            let mut r: Vec<u64> = (0..len).map(|_| rng.random()).collect();
            let mut c: Vec<u64> = (0..len).map(|_| rng.random()).collect();
            // Equal low bits, and neighbours, in a few values.
            for v in (0..len).step_by(5) {
                c[v] = r[v] ^ (rng.random::<u64>() & !low);
            }
            for v in (2..len).step_by(7) {
                r[v] = c[v].wrapping_add(1);
            }
            let beta: Vec<u8> = (0..len).map(|_| rng.random::<u8>() & 1).collect();
            let got = compare(&r, &c, &beta, n, &mut rng);
            for v in 0..len {
                let want = u8::from(r[v] & low > c[v] & low) ^ beta[v];
                assert_eq!(got[v], want, "n {n} value {v}: r {:#x} c {:#x}", r[v], c[v]);
            }
        }
    }

    #[test]
    fn the_levels_count_the_rounds_and_planes() {
        assert_eq!(carry_levels(47), vec![24, 12, 6, 3, 2]);
        assert_eq!(carry_levels(2), Vec::<usize>::new());
        assert_eq!(carry_levels(1), Vec::<usize>::new());
        let opened: usize = carry_levels(47).into_iter().map(carry_opened).sum();
        let dealt: usize = carry_levels(47).into_iter().map(carry_products).sum();
        assert_eq!((opened, dealt), (64, 41));
    }

    #[test]
    fn wrong_lengths_are_refused() {
        assert!(carry_leaves(0, &[0; 4], &[0; 4], 2).is_err());
        assert!(carry_pairs(&[0; 5], 2).is_err());
        assert!(carry_open(&[0; 6], 3, &[0; 3]).is_err());
        assert!(carry_open(&[0; 6], 1, &[0; 3]).is_err());
        assert!(carry_deal(3, &[0; 2], &[0; 2], &[0; 2]).is_err());
        assert!(carry_combine(0, &[0; 6], 3, &[0; 2], &[0; 1], &[0; 2], &[0; 1]).is_err());
        assert!(carry_out(0, &[0; 2], &[0; 65], &[0; 2]).is_err());
        assert!(plane_bits(&[0; 1], &[0; 2], 64).is_err());
    }
}

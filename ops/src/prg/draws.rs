//! Rejection sampling of 16-bit draws into pairs of small field elements (the Z_p draws of
//! [`super::Prg::field`] and PrivateCompare's `(s, z)` pairs).
//!
//! A [`DrawRule`] maps an accepted draw `u < bound` to `(add + u mod d) | ((u div d) mod p) << 8`
//! and rejects the others. The portable path looks each draw up in a 64 Ki-entry table. On x86
//! [`accept_draws`] computes the same entries with vector arithmetic (the two divisions by
//! multiplication with a constant, checked exhaustively when the rule is built): with
//! AVX-512BW and VBMI2 32 draws at a time, the accepted ones packed by `vpcompressw`; with
//! AVX2 16 at a time, each half's accepted ones packed by a byte shuffle from a 4 KiB table.
//! Both are several times faster than the big table, whose 128 KiB do not fit the
//! first-level cache. Every path gives the same entries in the same order; the tests compare
//! them.

/// The entry that marks a rejected draw in [`DrawRule`]'s table.
pub(super) const REJECTED: u16 = u16::MAX;

/// A map from 16-bit draws to packed pairs: `u < bound` gives
/// `(add + u mod d) | ((u div d) mod p) << 8`; every other draw is rejected.
pub(super) struct DrawRule {
    table: Box<[u16; 1 << 16]>,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    arith: Option<Arith>,
}

/// The rule's constants for the vector path: `u div d = mulhi(u, m1) >> s1` for every
/// `u < bound`, and `q div p = mulhi(q, m2) >> s2` for every `q < bound div d + 1`.
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Arith {
    bound: u16,
    d: u16,
    m1: u16,
    s1: u16,
    p: u16,
    m2: u16,
    s2: u16,
    add: u16,
}

impl DrawRule {
    /// The rule accepting draws below `bound` (at most 2^16, and below it for the vector
    /// path; `d * p` divides it, and `add + d - 1` and `p - 1` fit a byte).
    pub(super) fn new(bound: u32, d: u32, p: u32, add: u32) -> DrawRule {
        let mut table = Box::new([REJECTED; 1 << 16]);
        for (u, e) in (0..bound).zip(table.iter_mut()) {
            *e = ((add + u % d) | (((u / d) % p) << 8)) as u16;
        }
        let arith = (|| {
            let bound16 = u16::try_from(bound).ok()?;
            let (m1, s1) = divide_by_multiply(d, bound)?;
            let (m2, s2) = divide_by_multiply(p, bound / d + 1)?;
            Some(Arith {
                bound: bound16,
                d: u16::try_from(d).ok()?,
                m1,
                s1,
                p: u16::try_from(p).ok()?,
                m2,
                s2,
                add: u16::try_from(add).ok()?,
            })
        })();
        DrawRule { table, arith }
    }

    /// The entry of draw `u` ([`REJECTED`] if rejected).
    #[cfg(test)]
    pub(super) fn entry(&self, u: u16) -> u16 {
        self.table[usize::from(u)]
    }
}

/// A 16-bit multiplier `m` and shift `s` such that `u div d = ((u m) >> 16) >> s` for every
/// `u < limit` (checked for each), if there is one. The field's `Reduce16` is the same idea
/// for `n mod p` over every 16-bit `n`; here the divisor may be `p - 1`, and only the draws
/// below the bound need the exact quotient, which leaves more divisors a multiplier.
fn divide_by_multiply(d: u32, limit: u32) -> Option<(u16, u16)> {
    if d == 0 || limit > 1 << 16 {
        return None;
    }
    (0..16u32).find_map(|s| {
        let m = (1u64 << (16 + s)).div_ceil(u64::from(d));
        let m = u16::try_from(m).ok()?;
        (0..limit)
            .all(|u| ((u * u32::from(m)) >> 16) >> s == u / d)
            .then_some((m, s as u16))
    })
}

/// Appends the entry of every accepted draw of `words` (four per word, least significant
/// first), in order.
pub(super) fn accept_draws(words: &[u64], rule: &DrawRule, out: &mut Vec<u16>) {
    #[cfg(target_arch = "x86_64")]
    if let Some(arith) = rule.arith {
        if x86::available() {
            // SAFETY: AVX-512F, BW and VBMI2 were detected at run time.
            let done = unsafe { x86::accept_draws(words, &arith, out) };
            return accept_draws_table(&words[done..], &rule.table, out);
        }
        if x86::has_avx2() {
            // SAFETY: AVX2 and POPCNT were detected at run time.
            let done = unsafe { x86::accept_draws_avx2(words, &arith, out) };
            return accept_draws_table(&words[done..], &rule.table, out);
        }
    }
    accept_draws_table(words, &rule.table, out)
}

/// [`accept_draws`] by table, in one branch-free pass.
fn accept_draws_table(words: &[u64], table: &[u16; 1 << 16], out: &mut Vec<u16>) {
    let start = out.len();
    // Room for every draw plus the one slot a rejected last draw writes past the end.
    out.resize(start + 4 * words.len() + 1, 0);
    let mut len = start;
    for &w in words {
        for k in 0..4 {
            let e = table[((w >> (16 * k)) & 0xffff) as usize];
            out[len] = e;
            len += usize::from(e != REJECTED);
        }
    }
    out.truncate(len);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Arith;
    use std::arch::x86_64::*;

    /// Words per vector: 32 draws.
    const WORDS: usize = 8;

    /// Whether this CPU runs [`accept_draws`].
    pub(super) fn available() -> bool {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vbmi2")
    }

    /// The vector path of [`super::accept_draws`] over the longest prefix of `words` that is
    /// a whole number of vectors; returns that prefix's length.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi2")]
    pub(super) fn accept_draws(words: &[u64], a: &Arith, out: &mut Vec<u16>) -> usize {
        let vectors = words.len() / WORDS;
        // Each vector stores 32 entries, of which the accepted ones are kept: room for all.
        out.reserve(32 * vectors);
        let splat = |v: u16| _mm512_set1_epi16(v as i16);
        let (bound, d, m1, p, m2, add) = (
            splat(a.bound),
            splat(a.d),
            splat(a.m1),
            splat(a.p),
            splat(a.m2),
            splat(a.add),
        );
        let (s1, s2) = (
            _mm_cvtsi32_si128(i32::from(a.s1)),
            _mm_cvtsi32_si128(i32::from(a.s2)),
        );
        let mut len = out.len();
        for chunk in words.chunks_exact(WORDS) {
            // SAFETY: `chunk` is 64 bytes; the store writes 32 entries at `len`, which is at
            // most the old length plus 32 per vector done, within the capacity reserved.
            // `set_len` below keeps only entries written here or before.
            unsafe {
                let u = _mm512_loadu_si512(chunk.as_ptr().cast());
                let ok = _mm512_cmplt_epu16_mask(u, bound);
                let q = _mm512_srl_epi16(_mm512_mulhi_epu16(u, m1), s1);
                let lo = _mm512_add_epi16(_mm512_sub_epi16(u, _mm512_mullo_epi16(q, d)), add);
                let qq = _mm512_srl_epi16(_mm512_mulhi_epu16(q, m2), s2);
                let hi = _mm512_sub_epi16(q, _mm512_mullo_epi16(qq, p));
                let e = _mm512_or_si512(lo, _mm512_slli_epi16::<8>(hi));
                let kept = _mm512_maskz_compress_epi16(ok, e);
                _mm512_storeu_si512(out.as_mut_ptr().add(len).cast(), kept);
                len += ok.count_ones() as usize;
            }
        }
        // SAFETY: every entry below `len` was written (see above), and `len <= capacity`.
        unsafe { out.set_len(len) };
        vectors * WORDS
    }

    /// Whether this CPU runs [`accept_draws_avx2`] (AVX2 and POPCNT, which every AVX2 CPU
    /// has but the feature detection does not imply).
    pub(super) fn has_avx2() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("popcnt")
    }

    /// Words per AVX2 vector: 16 draws.
    const WORDS_AVX2: usize = 4;

    /// For each 8-bit mask of kept 16-bit lanes, the byte shuffle that moves the kept lanes,
    /// in order, to the front of a 128-bit register.
    static KEEP: [[u8; 16]; 256] = {
        let mut table = [[0x80u8; 16]; 256];
        let mut m = 0;
        while m < 256 {
            let (mut lane, mut to) = (0, 0);
            while lane < 8 {
                if m >> lane & 1 == 1 {
                    table[m][2 * to] = 2 * lane as u8;
                    table[m][2 * to + 1] = 2 * lane as u8 + 1;
                    to += 1;
                }
                lane += 1;
            }
            m += 1;
        }
        table
    };

    /// The AVX2 path of [`super::accept_draws`], 16 draws at a time: the arithmetic of
    /// [`accept_draws`], and each 128-bit half's accepted entries moved to its front by a
    /// byte shuffle from [`KEEP`] and stored whole (the next store overwrites the rejected
    /// ones). Returns the length of the prefix of `words` done, a whole number of vectors.
    #[target_feature(enable = "avx2,popcnt")]
    pub(super) fn accept_draws_avx2(words: &[u64], a: &Arith, out: &mut Vec<u16>) -> usize {
        let vectors = words.len() / WORDS_AVX2;
        // Each half stores 8 entries at the current length, which grows by at most 8 per
        // half: the last store ends at most 16 per vector past the old length (the 8 more
        // reserved are slack).
        out.reserve(16 * vectors + 8);
        let splat = |v: u16| _mm256_set1_epi16(v as i16);
        let (last, d, m1, p, m2, add) = (
            splat(a.bound.wrapping_sub(1)),
            splat(a.d),
            splat(a.m1),
            splat(a.p),
            splat(a.m2),
            splat(a.add),
        );
        let (s1, s2) = (
            _mm_cvtsi32_si128(i32::from(a.s1)),
            _mm_cvtsi32_si128(i32::from(a.s2)),
        );
        let mut len = out.len();
        for chunk in words.chunks_exact(WORDS_AVX2) {
            // SAFETY: `chunk` is 32 bytes; each store writes 8 entries at `len`, which is at
            // most the old length plus 8 per half done, so it ends within 16 per vector done
            // (this one included) of the old length: within the capacity reserved.
            // `set_len` below keeps only entries written here or before.
            unsafe {
                let u = _mm256_loadu_si256(chunk.as_ptr().cast());
                // u < bound, as u == min(u, bound - 1) (bound >= 1).
                let ok = _mm256_cmpeq_epi16(_mm256_min_epu16(u, last), u);
                let q = _mm256_srl_epi16(_mm256_mulhi_epu16(u, m1), s1);
                let lo = _mm256_add_epi16(_mm256_sub_epi16(u, _mm256_mullo_epi16(q, d)), add);
                let qq = _mm256_srl_epi16(_mm256_mulhi_epu16(q, m2), s2);
                let hi = _mm256_sub_epi16(q, _mm256_mullo_epi16(qq, p));
                let e = _mm256_or_si256(lo, _mm256_slli_epi16::<8>(hi));
                // One byte per lane (the halves' lanes in bytes 0-7 and 16-23), one bit each.
                let bits = _mm256_movemask_epi8(_mm256_packs_epi16(ok, _mm256_setzero_si256()));
                let halves = [_mm256_castsi256_si128(e), _mm256_extracti128_si256::<1>(e)];
                for (half, m) in halves.into_iter().zip([bits & 0xff, (bits >> 16) & 0xff]) {
                    let keep = _mm_loadu_si128(KEEP[m as usize].as_ptr().cast());
                    let kept = _mm_shuffle_epi8(half, keep);
                    _mm_storeu_si128(out.as_mut_ptr().add(len).cast(), kept);
                    len += m.count_ones() as usize;
                }
            }
        }
        // SAFETY: every entry below `len` was written (see above), and `len <= capacity`.
        unsafe { out.set_len(len) };
        vectors * WORDS_AVX2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule of the fields up to 251, both kinds, against the table, on every draw.
    #[test]
    fn vector_draws_equal_the_table_for_every_draw() {
        let words: Vec<u64> = (0..1u64 << 14)
            .map(|i| (4 * i) | ((4 * i + 1) << 16) | ((4 * i + 2) << 32) | ((4 * i + 3) << 48))
            .chain([u64::MAX, 7, 0x1234_5678_9abc_def0])
            .collect();
        for p in [3u32, 5, 7, 67, 127, 131, 251] {
            for (d, add) in [(p, 0), (p - 1, 1)] {
                let bound = (1 << 16) / (d * p) * (d * p);
                let rule = DrawRule::new(bound, d, p, add);
                let mut by_table = vec![9];
                accept_draws_table(&words, &rule.table, &mut by_table);
                let mut fast = vec![9];
                accept_draws(&words, &rule, &mut fast);
                assert_eq!(fast, by_table, "p {p}, d {d}");
                #[cfg(target_arch = "x86_64")]
                if let (true, Some(arith)) = (x86::has_avx2(), rule.arith) {
                    let mut avx2 = vec![9];
                    // SAFETY: AVX2 was detected just above.
                    let done = unsafe { x86::accept_draws_avx2(&words, &arith, &mut avx2) };
                    accept_draws_table(&words[done..], &rule.table, &mut avx2);
                    assert_eq!(avx2, by_table, "AVX2: p {p}, d {d}");
                }
                assert!(by_table.len() > 1 << 15, "p {p}");
                assert_eq!(rule.entry(0), add as u16);
                assert_eq!(rule.entry(u16::MAX), REJECTED);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_zoo_rule_has_the_vector_path() {
        for (d, add) in [(67, 0), (66, 1)] {
            let bound = (1 << 16) / (d * 67) * (d * 67);
            assert!(DrawRule::new(bound, d, 67, add).arith.is_some(), "d {d}");
        }
    }
}

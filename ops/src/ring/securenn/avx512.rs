//! SecureNN's per-word comparison kernels on AVX-512 (F, BW and VBMI), a word of up to 64
//! bits at a time where the portable loops go bit by bit. They compute the same bytes as the
//! portable kernels; the tests compare the two.
//!
//! - [`masked_words`] (each server's PrivateCompare shares): a word in two registers of 32
//!   16-bit lanes; the sum of the `w_k` above each bit is a suffix scan in five shifts by
//!   `vpermw`, and the rotation one `vpermb`. The same wrapping 16-bit arithmetic as
//!   [`super::CompareArgs::masked_word`].
//! - [`bits_minus_words`] (the helper's bit shares): a word's bits from its mask register.
//! - [`any_zero_sum_words`] (the helper's search for a zero): a word's two shares added in
//!   bytes with saturation, which tells 0 and `p` apart from every other sum.

use std::arch::x86_64::*;

use super::{Words, OFFSET};
use crate::ring::bits::low_bits;
use crate::ring::field::Reduce16;

/// Whether this CPU runs the kernels of this module.
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vbmi")
}

/// The lane masks of the first `n` (0 to 64) of 64 lanes: of the low and the high register.
fn lanes(n: usize) -> (u32, u32) {
    let all = low_bits(n);
    (all as u32, (all >> 32) as u32)
}

/// The constants of every word: the field's reduction, the party's terms, the scan's
/// permutations.
struct Consts {
    p: __m512i,
    m: __m512i,
    l: __m128i,
    j: __m512i,
    j_offset: __m512i,
    low_byte: __m512i,
    /// `shift[d]`: lane `k` takes lane `k + 2^d`.
    shift: [__m512i; 5],
    iota8: __m512i,
}

impl Consts {
    #[target_feature(enable = "avx512f,avx512bw")]
    fn new(r: Reduce16, j: u16, p: u16) -> Consts {
        let offset = p * (OFFSET / p + 1);
        let shift = std::array::from_fn(|d| {
            let idx: [i16; 32] = std::array::from_fn(|k| ((k + (1 << d)) & 31) as i16);
            // SAFETY: 64 bytes read from a 64-byte array.
            unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) }
        });
        let iota: [u8; 64] = std::array::from_fn(|k| k as u8);
        Consts {
            p: _mm512_set1_epi16(r.p as i16),
            m: _mm512_set1_epi16(r.m as i16),
            l: _mm_cvtsi32_si128(r.l as i32),
            j: _mm512_set1_epi16(j as i16),
            j_offset: _mm512_set1_epi16(j.wrapping_add(offset) as i16),
            low_byte: _mm512_set1_epi16(0xff),
            shift,
            // SAFETY: 64 bytes read from a 64-byte array.
            iota8: unsafe { _mm512_loadu_si512(iota.as_ptr().cast()) },
        }
    }

    /// `v mod p` in each lane.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn reduce(&self, v: __m512i) -> __m512i {
        let q = _mm512_srl_epi16(_mm512_mulhi_epu16(v, self.m), self.l);
        _mm512_sub_epi16(v, _mm512_mullo_epi16(q, self.p))
    }

    /// The inclusive suffix sums of the 32 lanes of `v`: lane `k` gets `v[k] + .. + v[31]`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn suffix_sums(&self, mut v: __m512i) -> __m512i {
        for (d, idx) in self.shift.iter().enumerate() {
            let keep = u32::MAX >> (1 << d);
            v = _mm512_add_epi16(v, _mm512_maskz_permutexvar_epi16(keep, *idx, v));
        }
        v
    }
}

/// [`super::masked_words`] for the words of `chunk` with the field's 16-bit reduction `r`.
///
/// # Safety
/// The CPU must have AVX-512F, BW and VBMI ([`available`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub(super) unsafe fn masked_words(w: &Words<'_, '_>, r: Reduce16, chunk: &mut [u8]) {
    let args = w.args;
    let n = args.n;
    let p = u16::from(w.field.modulus());
    let c = Consts::new(r, u16::from(args.party), p);
    let (lo, hi) = lanes(n);
    let mask8 = low_bits(n);
    let neg = args.party == 1;
    let x_all = args.x.as_slice().unwrap_or(&[]);
    for (k, out) in chunk.chunks_mut(n).enumerate() {
        let i = w.first + k;
        // Indexed as the portable kernel does: the caller's shapes make every word whole.
        let (x, sz, out) = (
            &x_all[i * n..(i + 1) * n],
            &w.sz[k * n..(k + 1) * n],
            &mut out[..n],
        );
        let s = if args.beta[i] {
            args.r[i].wrapping_add(1)
        } else {
            args.r[i]
        };
        // SAFETY: the masked loads read the `n` bytes of `x` and the `n` entries of `sz`, and
        // the masked store writes the `n` bytes of `out` (slices of exactly `n`, above).
        unsafe {
            let x8 = _mm512_maskz_loadu_epi8(mask8, x.as_ptr().cast());
            let xs = [
                _mm512_cvtepu8_epi16(_mm512_castsi512_si256(x8)),
                _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64::<1>(x8)),
            ];
            let szs = [
                _mm512_maskz_loadu_epi16(lo, sz.as_ptr().cast()),
                _mm512_maskz_loadu_epi16(hi, sz.as_ptr().add(32.min(n)).cast()),
            ];
            let sbits = [s as u32, (s >> 32) as u32];
            let live = [lo, hi];
            // Pass 1 (steps 1, 5, 6, 8, 9): w_k = x_k + s_k (j - 2 x_k) on the live lanes,
            // t_k = +-(j s_k - x_k) + j + offset.
            let mut ws = [_mm512_setzero_si512(); 2];
            let mut ts = [_mm512_setzero_si512(); 2];
            for h in 0..2 {
                let x = xs[h];
                let two_x = _mm512_add_epi16(x, x);
                let w = _mm512_mask_add_epi16(x, sbits[h], x, _mm512_sub_epi16(c.j, two_x));
                ws[h] = _mm512_maskz_mov_epi16(live[h], w);
                let d = _mm512_sub_epi16(_mm512_maskz_mov_epi16(sbits[h], c.j), x);
                let d = if args.beta[i] {
                    _mm512_sub_epi16(_mm512_setzero_si512(), d)
                } else {
                    d
                };
                ts[h] = _mm512_add_epi16(d, c.j_offset);
            }
            // Pass 2: t_k += the sum of w over the bits above k (exclusive suffix sums, the
            // high register's total carried into the low one).
            let high = c.suffix_sums(ws[1]);
            let carry = _mm512_permutexvar_epi16(_mm512_setzero_si512(), high);
            let low = _mm512_add_epi16(c.suffix_sums(ws[0]), carry);
            ts[0] = _mm512_add_epi16(ts[0], _mm512_sub_epi16(low, ws[0]));
            ts[1] = _mm512_add_epi16(ts[1], _mm512_sub_epi16(high, ws[1]));
            // Pass 3: c_k = t_k mod p, then s_k c_k +- z_k mod p.
            let mut out16 = [_mm256_setzero_si256(); 2];
            for h in 0..2 {
                let ck = c.reduce(ts[h]);
                let e = szs[h];
                let z = _mm512_srli_epi16::<8>(e);
                let z = if neg { _mm512_sub_epi16(c.p, z) } else { z };
                let v =
                    _mm512_add_epi16(_mm512_mullo_epi16(ck, _mm512_and_si512(e, c.low_byte)), z);
                out16[h] = _mm512_cvtepi16_epi8(c.reduce(v));
            }
            let bytes = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(out16[0]), out16[1]);
            // Step 14: byte k goes to (k + rot) mod n, i.e. byte j takes (j - rot) mod n.
            let rot = ((u128::from(w.rot[i]) * n as u128) >> 64) as u8;
            let rot8 = _mm512_set1_epi8(rot as i8);
            let below = _mm512_cmplt_epu8_mask(c.iota8, rot8);
            let idx = _mm512_sub_epi8(c.iota8, rot8);
            let idx = _mm512_mask_add_epi8(idx, below, idx, _mm512_set1_epi8(n as i8));
            let rotated = _mm512_permutexvar_epi8(idx, bytes);
            _mm512_mask_storeu_epi8(out.as_mut_ptr().cast(), mask8, rotated);
        }
    }
}

/// [`super::bits_minus`] for whole words: `out` gets, lane by lane of `n` bits, word `w`'s
/// low `n` bits minus `r` mod `p` (a prime below 256, so at most 251: `bit + p - r` never
/// wraps a byte), the same bytes as the portable kernel for every byte of `r`.
///
/// # Safety
/// The CPU must have AVX-512F, BW and VBMI ([`available`]).
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn bits_minus_words(p: u8, n: usize, x: &[u64], r: &[u8], out: &mut [u8]) {
    let mask = low_bits(n);
    let pv = _mm512_set1_epi8(p as i8);
    let one = _mm512_set1_epi8(1);
    for ((o, r), &w) in out.chunks_exact_mut(n).zip(r.chunks_exact(n)).zip(x) {
        // SAFETY: the masked load and store touch the first `n` bytes of `r` and `o`, which
        // have `n` bytes each.
        unsafe {
            let rv = _mm512_maskz_loadu_epi8(mask, r.as_ptr().cast());
            let bits = _mm512_maskz_mov_epi8(w, one);
            // The portable kernel's `bit + p - r`, less `p` where that is at least `p`, in
            // bytes: the smaller of `v` and `v - p`, since below `p` the subtraction wraps
            // above `v` (and for `r > p + bit` both kernels give `bit - r` mod 256).
            let v = _mm512_sub_epi8(_mm512_add_epi8(bits, pv), rv);
            let v = _mm512_min_epu8(v, _mm512_sub_epi8(v, pv));
            _mm512_mask_storeu_epi8(o.as_mut_ptr().cast(), mask, v);
        }
    }
}

/// [`super::any_zero_sum`] for whole lanes of `n` (at most 64) shares: `out[i]` is 1 if some
/// `a_k + b_k` of lane `i` (as integers) is 0 or `p`. A sum saturated at 255 is 0 or `p`
/// (below 255) exactly when the integer sum is.
///
/// # Safety
/// The CPU must have AVX-512F, BW and VBMI ([`available`]).
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn any_zero_sum_words(p: u8, n: usize, a: &[u8], b: &[u8], out: &mut [u8]) {
    let mask = low_bits(n);
    let pv = _mm512_set1_epi8(p as i8);
    for ((o, a), b) in out.iter_mut().zip(a.chunks_exact(n)).zip(b.chunks_exact(n)) {
        // SAFETY: the masked loads read the first `n` bytes of `a` and `b`, which have `n`.
        let t = unsafe {
            _mm512_adds_epu8(
                _mm512_maskz_loadu_epi8(mask, a.as_ptr().cast()),
                _mm512_maskz_loadu_epi8(mask, b.as_ptr().cast()),
            )
        };
        let zero = _mm512_mask_cmpeq_epi8_mask(mask, t, _mm512_setzero_si512());
        let p_sum = _mm512_mask_cmpeq_epi8_mask(mask, t, pv);
        *o = u8::from(zero | p_sum != 0);
    }
}

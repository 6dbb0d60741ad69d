//! SecureNN's per-word comparison kernels on AVX2, for CPUs without AVX-512: a word of up to
//! 64 bits at a time where the portable loops go bit by bit, with the same bytes (the tests
//! compare them). Loads that would pass the end of the operands read a padded copy.
//!
//! - [`masked_words`] (each server's PrivateCompare shares): a word in four registers of 16
//!   16-bit lanes (bit `16 h + l` in lane `l` of register `h`), the wrapping 16-bit
//!   arithmetic of [`super::CompareArgs::masked_word`]. The sum of the `w_k` above each bit is
//!   a suffix scan: three byte shifts within each 128-bit half, the high half's total added
//!   to the low half, then the registers' totals carried from the highest register down. The
//!   rotation by `k` reads the word's bytes from a buffer that holds them twice, from offset
//!   `n - k`.
//! - [`bits_minus_words`] (the helper's bit shares) and [`any_zero_sum_words`] (its search
//!   for a zero): the AVX-512 kernels' byte arithmetic, 32 bytes per register.

use std::arch::x86_64::*;

use super::{Words, OFFSET};
use crate::ring::field::Reduce16;

/// Registers per word: 64 bits, 16 lanes each.
const REGS: usize = 4;

/// The constants of every word: the field's reduction and the party's terms.
struct Consts {
    p: __m256i,
    m: __m256i,
    l: __m128i,
    j: __m256i,
    j_offset: __m256i,
    low_byte: __m256i,
    /// Lane `l` holds `1 << l`: selects bit `l` of a 16-bit chunk.
    bit: __m256i,
}

impl Consts {
    #[target_feature(enable = "avx2")]
    fn new(r: Reduce16, j: u16, p: u16) -> Consts {
        let offset = p * (OFFSET / p + 1);
        let bits: [u16; 16] = std::array::from_fn(|l| 1 << l);
        Consts {
            p: _mm256_set1_epi16(r.p as i16),
            m: _mm256_set1_epi16(r.m as i16),
            l: _mm_cvtsi32_si128(r.l as i32),
            j: _mm256_set1_epi16(j as i16),
            j_offset: _mm256_set1_epi16(j.wrapping_add(offset) as i16),
            low_byte: _mm256_set1_epi16(0xff),
            // SAFETY: 32 bytes read from a 32-byte array.
            bit: unsafe { _mm256_loadu_si256(bits.as_ptr().cast()) },
        }
    }

    /// `v mod p` in each lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn reduce(&self, v: __m256i) -> __m256i {
        let q = _mm256_srl_epi16(_mm256_mulhi_epu16(v, self.m), self.l);
        _mm256_sub_epi16(v, _mm256_mullo_epi16(q, self.p))
    }
}

/// The inclusive suffix sums of the 16 lanes of `v`: lane `l` gets `v[l] + .. + v[15]`.
#[inline]
#[target_feature(enable = "avx2")]
fn suffix_sums(v: __m256i) -> __m256i {
    // Within each 128-bit half: lane l takes lanes l + 1, l + 2, l + 4 (zeros come in).
    let v = _mm256_add_epi16(v, _mm256_srli_si256::<2>(v));
    let v = _mm256_add_epi16(v, _mm256_srli_si256::<4>(v));
    let v = _mm256_add_epi16(v, _mm256_srli_si256::<8>(v));
    // The high half's total (its lane 0) to every lane of the low half.
    let high = _mm256_permute2x128_si256::<0x81>(v, v);
    let total = _mm256_unpacklo_epi64(
        _mm256_shufflelo_epi16::<0>(high),
        _mm256_shufflelo_epi16::<0>(high),
    );
    _mm256_add_epi16(v, total)
}

/// The lanes of the first `n` (0 to 64) bits, register by register: all ones where live.
#[target_feature(enable = "avx2")]
fn live_lanes(n: usize) -> [__m256i; REGS] {
    std::array::from_fn(|h| {
        let lanes: [i16; 16] = std::array::from_fn(|l| if 16 * h + l < n { -1 } else { 0 });
        // SAFETY: 32 bytes read from a 32-byte array.
        unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) }
    })
}

/// [`super::masked_words`] for the words of `chunk` with the field's 16-bit reduction `r`.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn masked_words(w: &Words<'_, '_>, r: Reduce16, chunk: &mut [u8]) {
    let args = w.args;
    let n = args.n;
    let regs = n.div_ceil(16);
    let p = u16::from(w.field.modulus());
    let c = Consts::new(r, u16::from(args.party), p);
    let live = live_lanes(n);
    let neg = args.party == 1;
    let x_all = args.x.as_slice().unwrap_or(&[]);
    let words = chunk.len() / n;
    // A word's bytes, and its masks, copied where a whole register's load would pass the end.
    let mut x_pad = [0u8; 16 * REGS];
    let mut sz_pad = [0u16; 16 * REGS];
    // The word's output bytes twice: at 0 and at n.
    let mut twice = [0u8; 2 * 16 * REGS];
    for k in 0..words {
        let i = w.first + k;
        let x: &[u8] = match x_all.get(i * n..i * n + 16 * regs) {
            Some(x) => x,
            None => {
                x_pad[..n].copy_from_slice(&x_all[i * n..(i + 1) * n]);
                &x_pad
            }
        };
        let sz: &[u16] = match w.sz.get(k * n..k * n + 16 * regs) {
            Some(sz) => sz,
            None => {
                sz_pad[..n].copy_from_slice(&w.sz[k * n..(k + 1) * n]);
                &sz_pad
            }
        };
        let beta = args.beta[i];
        let s = if beta {
            args.r[i].wrapping_add(1)
        } else {
            args.r[i]
        };
        let mut ws = [_mm256_setzero_si256(); REGS];
        let mut ts = [_mm256_setzero_si256(); REGS];
        for h in 0..regs {
            // SAFETY: `x` has at least 16 regs bytes and `sz` 16 regs entries (above); the
            // loads are unaligned.
            let x = unsafe { _mm256_cvtepu8_epi16(_mm_loadu_si128(x.as_ptr().add(16 * h).cast())) };
            // Pass 1 (steps 1, 5, 6, 8, 9): w_k = x_k + s_k (j - 2 x_k) on the live lanes,
            // t_k = +-(j s_k - x_k) + j + offset.
            let chunk16 = _mm256_set1_epi16((s >> (16 * h)) as u16 as i16);
            let sk = _mm256_cmpeq_epi16(_mm256_and_si256(chunk16, c.bit), c.bit);
            let two_x = _mm256_add_epi16(x, x);
            let wk = _mm256_add_epi16(x, _mm256_and_si256(sk, _mm256_sub_epi16(c.j, two_x)));
            ws[h] = _mm256_and_si256(wk, live[h]);
            let d = _mm256_sub_epi16(_mm256_and_si256(sk, c.j), x);
            let d = if beta {
                _mm256_sub_epi16(_mm256_setzero_si256(), d)
            } else {
                d
            };
            ts[h] = _mm256_add_epi16(d, c.j_offset);
        }
        // Pass 2: t_k += the sum of w over the bits above k (exclusive suffix sums, each
        // register's total carried into the registers below it).
        let mut carry = _mm256_setzero_si256();
        for h in (0..regs).rev() {
            let sums = _mm256_add_epi16(suffix_sums(ws[h]), carry);
            ts[h] = _mm256_add_epi16(ts[h], _mm256_sub_epi16(sums, ws[h]));
            // Lane 0 holds the sum of this register and those above: to every lane.
            let low = _mm256_castsi256_si128(sums);
            carry = _mm256_broadcastw_epi16(low);
        }
        // Pass 3: c_k = t_k mod p, then s_k c_k +- z_k mod p.
        let mut out16 = [_mm256_setzero_si256(); REGS];
        for h in 0..regs {
            let ck = c.reduce(ts[h]);
            // SAFETY: as for `x` above.
            let e = unsafe { _mm256_loadu_si256(sz.as_ptr().add(16 * h).cast()) };
            let z = _mm256_srli_epi16::<8>(e);
            let z = if neg { _mm256_sub_epi16(c.p, z) } else { z };
            let v = _mm256_add_epi16(_mm256_mullo_epi16(ck, _mm256_and_si256(e, c.low_byte)), z);
            out16[h] = c.reduce(v);
        }
        // Bytes 0..32 from registers 0 and 1, 32..64 from 2 and 3 (packus interleaves the
        // halves; the permutation puts them back in order).
        let bytes = [
            _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi16(out16[0], out16[1])),
            _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi16(out16[2], out16[3])),
        ];
        // Step 14: byte k goes to (k + rot) mod n, i.e. byte j takes byte (j - rot) mod n,
        // which is byte j + n - rot of the bytes written twice.
        let rot = ((u128::from(w.rot[i]) * n as u128) >> 64) as usize;
        // SAFETY: `twice` has 128 bytes; the stores write 64 at 0 and 64 at n <= 64.
        unsafe {
            for (at, v) in [0, 32, n, n + 32].into_iter().zip([0, 1, 0, 1]) {
                _mm256_storeu_si256(twice.as_mut_ptr().add(at).cast(), bytes[v]);
            }
        }
        let at = k * n;
        if at + 64 <= chunk.len() {
            // Two whole registers, not a call to `memcpy` of n bytes per word: the bytes past
            // this word's n belong to the words after it, which are written next.
            // SAFETY: `n - rot + 64 <= 128` bytes of `twice` are read, `at + 64 <= len` of
            // `chunk` written; both unaligned.
            unsafe {
                let from = twice.as_ptr().add(n - rot);
                let to = chunk.as_mut_ptr().add(at);
                let lo = _mm256_loadu_si256(from.cast());
                let hi = _mm256_loadu_si256(from.add(32).cast());
                _mm256_storeu_si256(to.cast(), lo);
                _mm256_storeu_si256(to.add(32).cast(), hi);
            }
        } else {
            chunk[at..at + n].copy_from_slice(&twice[n - rot..2 * n - rot]);
        }
    }
}

/// The bytes of word `k` (of `n`) of `all`, or, where loading `32 * regs` bytes from its
/// start would pass the end, a copy of them in `pad`.
#[inline(always)]
fn word_bytes<'a>(
    all: &'a [u8],
    k: usize,
    n: usize,
    regs: usize,
    pad: &'a mut [u8; 64],
) -> &'a [u8] {
    match all.get(k * n..k * n + 32 * regs) {
        Some(bytes) => bytes,
        None => {
            pad[..n].copy_from_slice(&all[k * n..(k + 1) * n]);
            &pad[..]
        }
    }
}

/// [`super::bits_minus`] for whole words: `out` gets, lane by lane of `n` bits, word `w`'s
/// low `n` bits minus `r` mod `p`, the bytes of the portable kernel for every byte of `r`
/// (the AVX-512 kernel's byte arithmetic, 32 bits per register: each byte of the word spread
/// over eight lanes by a byte shuffle, then its own bit selected).
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn bits_minus_words(p: u8, n: usize, x: &[u64], r: &[u8], out: &mut [u8]) {
    let regs = n.div_ceil(32);
    let pv = _mm256_set1_epi8(p as i8);
    let one = _mm256_set1_epi8(1);
    // Byte k of a register takes byte k / 8 of the 32-bit chunk (each 128-bit half holds the
    // chunk's four bytes at its start), then bit k mod 8 of it.
    let spread = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3,
        3, 3,
    );
    let select = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let mut r_pad = [0u8; 64];
    let mut o_pad = [0u8; 64];
    for (k, &w) in x.iter().enumerate().take(out.len() / n.max(1)) {
        let rw = word_bytes(r, k, n, regs, &mut r_pad);
        let mut v = [_mm256_setzero_si256(); 2];
        for (h, v) in v.iter_mut().enumerate().take(regs) {
            // SAFETY: `rw` has at least 32 regs bytes (`word_bytes`); the load is unaligned.
            let rv = unsafe { _mm256_loadu_si256(rw.as_ptr().add(32 * h).cast()) };
            let chunk = _mm256_set1_epi32((w >> (32 * h)) as u32 as i32);
            let bytes = _mm256_and_si256(_mm256_shuffle_epi8(chunk, spread), select);
            let bits = _mm256_and_si256(_mm256_cmpeq_epi8(bytes, select), one);
            // `bit + p - r`, less `p` where that is at least `p`: the smaller of `v` and
            // `v - p` in bytes (as the AVX-512 kernel).
            let d = _mm256_sub_epi8(_mm256_add_epi8(bits, pv), rv);
            *v = _mm256_min_epu8(d, _mm256_sub_epi8(d, pv));
        }
        // Whole registers straight into `out` where they fit (what passes the word's end,
        // the next word overwrites), else through `o_pad` and a copy.
        match out.get_mut(k * n..k * n + 32 * regs) {
            // SAFETY: `dst` has 32 regs bytes.
            Some(dst) => unsafe {
                for (h, v) in v.iter().enumerate().take(regs) {
                    _mm256_storeu_si256(dst.as_mut_ptr().add(32 * h).cast(), *v);
                }
            },
            None => {
                // SAFETY: `o_pad` has 64 bytes, two registers.
                unsafe {
                    _mm256_storeu_si256(o_pad.as_mut_ptr().cast(), v[0]);
                    _mm256_storeu_si256(o_pad.as_mut_ptr().add(32).cast(), v[1]);
                }
                out[k * n..(k + 1) * n].copy_from_slice(&o_pad[..n]);
            }
        }
    }
}

/// [`super::any_zero_sum`] for whole lanes of `n` (at most 64) shares: `out[i]` is 1 if some
/// `a_k + b_k` of lane `i` (as integers) is 0 or `p`. A sum saturated at 255 is 0 or `p`
/// (below 255) exactly when the integer sum is (as the AVX-512 kernel).
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn any_zero_sum_words(p: u8, n: usize, a: &[u8], b: &[u8], out: &mut [u8]) {
    let regs = n.div_ceil(32);
    let live = crate::ring::bits::low_bits(n);
    let pv = _mm256_set1_epi8(p as i8);
    let zero = _mm256_setzero_si256();
    let (mut a_pad, mut b_pad) = ([0u8; 64], [0u8; 64]);
    for (k, o) in out.iter_mut().enumerate() {
        let (aw, bw) = (
            word_bytes(a, k, n, regs, &mut a_pad),
            word_bytes(b, k, n, regs, &mut b_pad),
        );
        let mut hits = 0u64;
        for h in 0..regs {
            // SAFETY: `aw` and `bw` have at least 32 regs bytes; the loads are unaligned.
            let t = unsafe {
                _mm256_adds_epu8(
                    _mm256_loadu_si256(aw.as_ptr().add(32 * h).cast()),
                    _mm256_loadu_si256(bw.as_ptr().add(32 * h).cast()),
                )
            };
            let hit = _mm256_or_si256(_mm256_cmpeq_epi8(t, zero), _mm256_cmpeq_epi8(t, pv));
            hits |= u64::from(_mm256_movemask_epi8(hit) as u32) << (32 * h);
        }
        *o = u8::from(hits & live != 0);
    }
}

//! [`super::pack_small`] and [`super::unpack_small`] on AVX-512 (BW and VBMI), 64 values of
//! `b` bits (`8 b` bytes, eight groups) per step:
//!
//! - unpacking moves group `g`'s `b` bytes into 64-bit lane `g` (`vpermb`), takes the eight
//!   bytes that start at bits `0, b, .., 7 b` of each lane (`vpmultishiftqb`) and keeps their
//!   low `b` bits;
//! - packing merges neighbours three times (two values of `b` bits into `2 b` bits of a 16-bit
//!   lane, two of those into a 32-bit lane, two into a 64-bit lane) and keeps the low `b`
//!   bytes of each 64-bit lane (`vpermb`).
//!
//! The values past the last whole step take the portable path; the layout is the same.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use crate::ring::bits::low_bits;

/// Values per step.
const STEP: usize = 64;

/// Whether this CPU runs [`pack`] and [`unpack`].
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vbmi")
}

/// The bytes of `f(i)` for `i` in `0..64`, as a register.
fn bytes(f: impl Fn(usize) -> u8) -> __m512i {
    let b: [u8; 64] = std::array::from_fn(f);
    // SAFETY: 64 bytes read from a 64-byte array (unaligned loads are fine).
    unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
}

/// The whole steps of `values` packed `bits` (1 to 8) bits each into the start of `out`, as
/// many as it holds (`8 bits` bytes each, every one written); returns the values done.
///
/// # Safety
/// The CPU must have AVX-512F, BW and VBMI ([`available`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub(super) unsafe fn pack(values: &[u8], bits: u32, out: &mut [MaybeUninit<u8>]) -> usize {
    let b = bits as usize;
    let steps = (values.len() / STEP).min(out.len() / (8 * b));
    let low = _mm512_set1_epi8(((1u16 << bits) - 1) as u8 as i8);
    let (m16, m32, m64) = (
        _mm512_set1_epi16(0xff),
        _mm512_set1_epi32(0xffff),
        _mm512_set1_epi64(0xffff_ffff),
    );
    let (s16, s32, s64) = (
        _mm_cvtsi32_si128(8 - bits as i32),
        _mm_cvtsi32_si128(16 - 2 * bits as i32),
        _mm_cvtsi32_si128(32 - 4 * bits as i32),
    );
    // Output byte `b g + i` is byte `i` of 64-bit lane `g`.
    let compact = bytes(|k| {
        if k < 8 * b {
            (8 * (k / b) + k % b) as u8
        } else {
            0
        }
    });
    let store = low_bits(8 * b);
    for s in 0..steps {
        // SAFETY: the load reads values `64 s .. 64 s + 64` and the store writes bytes
        // `8 b s .. 8 b (s + 1)` of `out`, in bounds by `steps`.
        unsafe {
            let v = _mm512_and_si512(
                _mm512_loadu_si512(values.as_ptr().add(STEP * s).cast()),
                low,
            );
            // Each merge: the low half as it is, the high half shifted down next to it.
            let v = _mm512_or_si512(
                _mm512_and_si512(v, m16),
                _mm512_srl_epi16(_mm512_andnot_si512(m16, v), s16),
            );
            let v = _mm512_or_si512(
                _mm512_and_si512(v, m32),
                _mm512_srl_epi32(_mm512_andnot_si512(m32, v), s32),
            );
            let v = _mm512_or_si512(
                _mm512_and_si512(v, m64),
                _mm512_srl_epi64(_mm512_andnot_si512(m64, v), s64),
            );
            let packed = _mm512_permutexvar_epi8(compact, v);
            _mm512_mask_storeu_epi8(out.as_mut_ptr().add(8 * b * s).cast(), store, packed);
        }
    }
    steps * STEP
}

/// The whole steps of values unpacked from `packed` (`bits` from 1 to 8, `8 bits` bytes per
/// step) into the start of `out`, as many as it holds (64 bytes each, every one written);
/// returns the values done.
///
/// # Safety
/// The CPU must have AVX-512F, BW and VBMI ([`available`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub(super) unsafe fn unpack(packed: &[u8], bits: u32, out: &mut [MaybeUninit<u8>]) -> usize {
    let b = bits as usize;
    let steps = (out.len() / STEP).min(packed.len() / (8 * b));
    let low = _mm512_set1_epi8(((1u16 << bits) - 1) as u8 as i8);
    // Byte `i < b` of 64-bit lane `g` is input byte `b g + i`.
    let spread = bytes(|k| {
        if k % 8 < b {
            (b * (k / 8) + k % 8) as u8
        } else {
            0
        }
    });
    // Output byte `i` of each lane starts at bit `b i` of the lane.
    let starts = bytes(|k| (b * (k % 8)) as u8);
    let load = low_bits(8 * b);
    for s in 0..steps {
        // SAFETY: the load reads bytes `8 b s .. 8 b (s + 1)` of `packed` and the store
        // writes values `64 s .. 64 s + 64` of `out`, in bounds by `steps`.
        unsafe {
            let p = _mm512_maskz_loadu_epi8(load, packed.as_ptr().add(8 * b * s).cast());
            let lanes = _mm512_permutexvar_epi8(spread, p);
            let v = _mm512_and_si512(_mm512_multishift_epi64_epi8(starts, lanes), low);
            _mm512_storeu_si512(out.as_mut_ptr().add(STEP * s).cast(), v);
        }
    }
    steps * STEP
}

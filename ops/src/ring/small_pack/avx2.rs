//! [`super::pack_small`] and [`super::unpack_small`] on AVX2, 32 values of `b` bits (`4 b`
//! bytes, four groups) per step, each 128-bit half of a register holding two groups:
//!
//! - packing merges neighbours three times as the AVX-512 path does (two values of `b` bits
//!   into `2 b` bits of a 16-bit lane, two of those into a 32-bit lane, two into a 64-bit
//!   lane), gathers the low `b` bytes of each 64-bit lane at the start of its half
//!   (`vpshufb`) and stores the halves `2 b` bytes apart;
//! - unpacking loads the halves from `2 b` bytes apart, moves each group's `b` bytes into its
//!   64-bit lane (`vpshufb`) and undoes the merges by shifts to the left.
//!
//! The 16-byte stores and loads of a half reach `16 - 2 b` bytes past its groups, so a step
//! runs only where those bytes lie within the buffer (the next half's store overwrites what
//! a store wrote past its own bytes); the values after the last such step take the portable
//! path, whose layout is the same.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

/// Values per step.
const STEP: usize = 32;

/// Whether this CPU runs [`pack`] and [`unpack`].
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx2")
}

/// The bytes of `f(i)` for `i` in `0..16`, in both halves of a register.
fn halves(f: impl Fn(usize) -> u8) -> __m256i {
    let b: [u8; 32] = std::array::from_fn(|i| f(i % 16));
    // SAFETY: 32 bytes read from a 32-byte array (unaligned loads are fine).
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// Whole steps that fit a buffer of `len` bytes, `b` bits per value: step `s`'s second half
/// reaches byte `4 b s + 2 b + 16`.
fn steps_within(len: usize, b: usize) -> usize {
    match len.checked_sub(2 * b + 16) {
        Some(room) => room / (4 * b) + 1,
        None => 0,
    }
}

/// The whole steps of `values` packed `bits` (1 to 8) bits each into the start of `out`, as
/// many as it holds with room for the last store ([`steps_within`]); returns the values
/// done, whose `4 bits` bytes per step are written (and possibly bytes after them).
///
/// # Safety
/// The CPU must have AVX2 ([`available`]).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pack(values: &[u8], bits: u32, out: &mut [MaybeUninit<u8>]) -> usize {
    let b = bits as usize;
    let steps = (values.len() / STEP).min(steps_within(out.len(), b));
    let low = _mm256_set1_epi8(((1u16 << bits) - 1) as u8 as i8);
    let (m16, m32, m64) = (
        _mm256_set1_epi16(0xff),
        _mm256_set1_epi32(0xffff),
        _mm256_set1_epi64x(0xffff_ffff),
    );
    let (s16, s32, s64) = (
        _mm_cvtsi32_si128(8 - bits as i32),
        _mm_cvtsi32_si128(16 - 2 * bits as i32),
        _mm_cvtsi32_si128(32 - 4 * bits as i32),
    );
    // Byte `b g + i` of a half is byte `i` of its 64-bit lane `g`; the rest zero.
    let compact = halves(|k| {
        if k < 2 * b {
            (8 * (k / b) + k % b) as u8
        } else {
            0x80
        }
    });
    for s in 0..steps {
        // SAFETY: the load reads values `32 s .. 32 s + 32`; the stores write bytes
        // `4 b s .. 4 b s + 2 b + 16` of `out`, in bounds by `steps`.
        unsafe {
            let v = _mm256_and_si256(
                _mm256_loadu_si256(values.as_ptr().add(STEP * s).cast()),
                low,
            );
            // Each merge: the low half as it is, the high half shifted down next to it.
            let v = _mm256_or_si256(
                _mm256_and_si256(v, m16),
                _mm256_srl_epi16(_mm256_andnot_si256(m16, v), s16),
            );
            let v = _mm256_or_si256(
                _mm256_and_si256(v, m32),
                _mm256_srl_epi32(_mm256_andnot_si256(m32, v), s32),
            );
            let v = _mm256_or_si256(
                _mm256_and_si256(v, m64),
                _mm256_srl_epi64(_mm256_andnot_si256(m64, v), s64),
            );
            let packed = _mm256_shuffle_epi8(v, compact);
            let at = out.as_mut_ptr().add(4 * b * s);
            _mm_storeu_si128(at.cast(), _mm256_castsi256_si128(packed));
            _mm_storeu_si128(at.add(2 * b).cast(), _mm256_extracti128_si256(packed, 1));
        }
    }
    steps * STEP
}

/// The whole steps of values unpacked from `packed` (`bits` from 1 to 8, `4 bits` bytes per
/// step) into the start of `out`, as many as it holds ([`steps_within`] of `packed` for the
/// last load); returns the values done (32 bytes each, every one written).
///
/// # Safety
/// The CPU must have AVX2 ([`available`]).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn unpack(packed: &[u8], bits: u32, out: &mut [MaybeUninit<u8>]) -> usize {
    let b = bits as usize;
    let steps = (out.len() / STEP).min(steps_within(packed.len(), b));
    // Byte `i < b` of 64-bit lane `g` of a half is the half's byte `b g + i`; the rest zero.
    let spread = halves(|k| {
        if k % 8 < b {
            (b * (k / 8) + k % 8) as u8
        } else {
            0x80
        }
    });
    let m64 = _mm256_set1_epi64x(((1u64 << (4 * bits)) - 1) as i64);
    let m32 = _mm256_set1_epi32(((1u32 << (2 * bits)) - 1) as i32);
    let m16 = _mm256_set1_epi16(((1u16 << bits) - 1) as i16);
    let (s64, s32, s16) = (
        _mm_cvtsi32_si128(32 - 4 * bits as i32),
        _mm_cvtsi32_si128(16 - 2 * bits as i32),
        _mm_cvtsi32_si128(8 - bits as i32),
    );
    for s in 0..steps {
        // SAFETY: the loads read bytes `4 b s .. 4 b s + 2 b + 16` of `packed` and the store
        // writes values `32 s .. 32 s + 32` of `out`, in bounds by `steps`.
        unsafe {
            let at = packed.as_ptr().add(4 * b * s);
            let p = _mm256_set_m128i(
                _mm_loadu_si128(at.add(2 * b).cast()),
                _mm_loadu_si128(at.cast()),
            );
            let w = _mm256_shuffle_epi8(p, spread);
            // Each split: the low half as it is, the high half shifted up into the next lane.
            let w = _mm256_or_si256(
                _mm256_and_si256(w, m64),
                _mm256_and_si256(_mm256_sll_epi64(w, s64), _mm256_slli_epi64(m64, 32)),
            );
            let w = _mm256_or_si256(
                _mm256_and_si256(w, m32),
                _mm256_and_si256(_mm256_sll_epi32(w, s32), _mm256_slli_epi32(m32, 16)),
            );
            let w = _mm256_or_si256(
                _mm256_and_si256(w, m16),
                _mm256_and_si256(_mm256_sll_epi16(w, s16), _mm256_slli_epi16(m16, 8)),
            );
            _mm256_storeu_si256(out.as_mut_ptr().add(STEP * s).cast(), w);
        }
    }
    steps * STEP
}

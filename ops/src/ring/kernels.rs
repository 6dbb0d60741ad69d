//! The `MR x NR` register tiles of the ring GEMM, one per instruction set.
//!
//! Each takes a packed panel of `A` (`kc x MR`, `MR` consecutive words per step of `k`) and
//! one of `B` (`kc x NR`) and returns `sum_kk a[kk][r] * b[kk][c]` mod 2^64.
//!
//! - AVX-512DQ has a 64-bit lane multiply (`vpmullq`): one register holds a row of the tile.
//! - AVX2 has only the 32x32->64 multiply `vpmuludq` and the 32-bit `vpmulld`. With
//!   `a = a1 2^32 + a0` and `b = b1 2^32 + b0`, `a b mod 2^64 = a0 b0 + ((a1 b0 + a0 b1) mod
//!   2^32) 2^32`: `vpmuludq` gives `a0 b0`, one `vpmulld` of `a` with `b`'s halves swapped
//!   gives both cross terms mod 2^32; the parts are accumulated separately over `k` and
//!   combined once at the end. Where that is slower than the scalar multiply (some AMD
//!   cores), `Kernel::detect` takes the portable tile instead (it times both once).
//! - The portable tile is plain Rust, for other CPUs.

use super::matmul::{MR, NR};

/// An `MR x NR` tile of accumulators.
pub(crate) type Tile = [[u64; NR]; MR];

/// The portable tile (what the compiler makes of it on the baseline target).
#[inline(always)]
pub(crate) fn tile_portable(a: &[u64], b: &[u64]) -> Tile {
    let mut acc = [[0u64; NR]; MR];
    let (a_chunks, _) = a.as_chunks::<MR>();
    let (b_chunks, _) = b.as_chunks::<NR>();
    for (ap, bp) in a_chunks.iter().zip(b_chunks) {
        for r in 0..MR {
            let ar = ap[r];
            for c in 0..NR {
                acc[r][c] = acc[r][c].wrapping_add(ar.wrapping_mul(bp[c]));
            }
        }
    }
    acc
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{tile_avx2, tile_avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Tile, MR, NR};

    // The tiles below are written for these sizes.
    const _: () = assert!(MR == 4 && NR == 8);

    /// The AVX-512DQ tile: four `vpmullq` and four `vpaddq` per step of `k`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(crate) fn tile_avx512(a: &[u64], b: &[u64]) -> Tile {
        let mut acc = [_mm512_setzero_si512(); MR];
        let (a_chunks, _) = a.as_chunks::<MR>();
        let (b_chunks, _) = b.as_chunks::<NR>();
        for (ap, bp) in a_chunks.iter().zip(b_chunks) {
            // SAFETY: `bp` is a `[u64; 8]`, 64 readable bytes; the load is unaligned.
            let bv = unsafe { _mm512_loadu_si512(bp.as_ptr().cast()) };
            for r in 0..MR {
                let av = _mm512_set1_epi64(ap[r] as i64);
                acc[r] = _mm512_add_epi64(acc[r], _mm512_mullo_epi64(av, bv));
            }
        }
        let mut out = [[0u64; NR]; MR];
        for (o, v) in out.iter_mut().zip(acc) {
            // SAFETY: `o` is a `[u64; 8]`, 64 writable bytes; the store is unaligned.
            unsafe { _mm512_storeu_si512(o.as_mut_ptr().cast(), v) };
        }
        out
    }

    /// The AVX2 tile, as two `4 x 4` halves with split products (see the module docs).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn tile_avx2(a: &[u64], b: &[u64]) -> Tile {
        let mut out = [[0u64; NR]; MR];
        for half in 0..2 {
            // `lo[r]` accumulates a0 b0; `cross[r]` accumulates, mod 2^32 in each 32-bit
            // half of a lane, a0 b1 (low half) and a1 b0 (high half): one `vpmulld` of `a`
            // and `b` with its halves swapped.
            let mut lo = [_mm256_setzero_si256(); MR];
            let mut cross = [_mm256_setzero_si256(); MR];
            let (a_chunks, _) = a.as_chunks::<MR>();
            let (b_chunks, _) = b.as_chunks::<NR>();
            for (ap, bp) in a_chunks.iter().zip(b_chunks) {
                let bq = &bp[half * 4..half * 4 + 4];
                // SAFETY: `bq` has 4 words, 32 readable bytes; the load is unaligned.
                let bv = unsafe { _mm256_loadu_si256(bq.as_ptr().cast()) };
                let swapped = _mm256_shuffle_epi32::<0b10_11_00_01>(bv);
                for r in 0..MR {
                    let av = _mm256_set1_epi64x(ap[r] as i64);
                    lo[r] = _mm256_add_epi64(lo[r], _mm256_mul_epu32(av, bv));
                    cross[r] = _mm256_add_epi32(cross[r], _mm256_mullo_epi32(av, swapped));
                }
            }
            for r in 0..MR {
                // (a0 b1 + a1 b0) mod 2^32, moved to the high half of each lane.
                let sum = _mm256_add_epi32(cross[r], _mm256_srli_epi64::<32>(cross[r]));
                let v = _mm256_add_epi64(lo[r], _mm256_slli_epi64::<32>(sum));
                let dst = &mut out[r][half * 4..half * 4 + 4];
                // SAFETY: `dst` has 4 words, 32 writable bytes; the store is unaligned.
                unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), v) };
            }
        }
        out
    }
}

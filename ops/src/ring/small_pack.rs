//! Small values (elements of a small field Z_p) packed in the bits of `p - 1` each, for the
//! wire: least significant first, element `i` in bits `b i .. b (i + 1)` of the bytes.
//! On AVX-512 (BW and VBMI) 64 values at a time ([`avx512`]), on AVX2 32 ([`avx2`]).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(target_arch = "x86_64")]
use std::mem::MaybeUninit;

/// Bytes of `len` values packed `bits` bits each.
pub const fn packed_small_len(len: usize, bits: u32) -> usize {
    (len * bits as usize).div_ceil(8)
}

/// Values per group: eight values of `bits` bits fill exactly `bits` bytes.
const GROUP: usize = 8;

/// Packs the low `bits` bits (1 to 8) of each value, least significant first; the bits after
/// the last value are zero.
pub fn pack_small(values: &[u8], bits: u32) -> Vec<u8> {
    let bits = bits.clamp(1, 8);
    #[cfg(target_arch = "x86_64")]
    if let Some((fast, _)) = simd_kernels() {
        let mut out = Vec::with_capacity(packed_small_len(values.len(), bits));
        // SAFETY: `simd_kernels` returns kernels only where the CPU has their instructions.
        let done = unsafe { fast(values, bits, out.spare_capacity_mut()) };
        // SAFETY: `fast` wrote the bytes of the values done.
        unsafe { out.set_len(packed_small_len(done, bits)) };
        // Whole steps end on whole bytes: the rest packs on its own.
        out.extend_from_slice(&pack_portable(&values[done..], bits));
        return out;
    }
    pack_portable(values, bits)
}

/// A kernel of whole steps: values (or packed bytes), the width, the output; returns the
/// values done.
#[cfg(target_arch = "x86_64")]
type Steps = unsafe fn(&[u8], u32, &mut [MaybeUninit<u8>]) -> usize;

/// The fastest packing and unpacking kernels this CPU runs, if any: AVX-512, else AVX2.
#[cfg(target_arch = "x86_64")]
fn simd_kernels() -> Option<(Steps, Steps)> {
    if avx512::available() {
        Some((avx512::pack, avx512::unpack))
    } else if avx2::available() {
        Some((avx2::pack, avx2::unpack))
    } else {
        None
    }
}

/// [`pack_small`] by shifts (`bits` from 1 to 8).
fn pack_portable(values: &[u8], bits: u32) -> Vec<u8> {
    let mut out = vec![0u8; packed_small_len(values.len(), bits)];
    pack_portable_into(values, bits, &mut out);
    out
}

/// [`pack_portable`] into `out`, [`packed_small_len`] bytes long (every byte written).
fn pack_portable_into(values: &[u8], bits: u32, out: &mut [u8]) {
    // A width known at compile time turns each group's shifts into constants.
    match bits {
        1 => pack_width::<1>(values, out),
        2 => pack_width::<2>(values, out),
        3 => pack_width::<3>(values, out),
        4 => pack_width::<4>(values, out),
        5 => pack_width::<5>(values, out),
        6 => pack_width::<6>(values, out),
        7 => pack_width::<7>(values, out),
        _ => pack_width::<8>(values, out),
    }
}

/// [`pack_portable_into`] for a width of `BITS`.
fn pack_width<const BITS: u32>(values: &[u8], out: &mut [u8]) {
    let width = BITS as usize;
    let len = out.len();
    let whole = values.chunks_exact(GROUP);
    let rest = whole.remainder();
    // Whole groups, eight bytes read as one word, then the last values.
    let words = whole
        .map(|group| pack_word::<BITS>(u64::from_le_bytes(group.try_into().unwrap_or_default())))
        .chain((!rest.is_empty()).then(|| pack_group(rest, BITS)));
    for (g, word) in words.enumerate() {
        let word = word.to_le_bytes();
        let at = g * width;
        if at + 8 <= len {
            // A whole word: its bytes past `width` are zero, and the next group's overwrite
            // them.
            out[at..at + 8].copy_from_slice(&word);
        } else {
            out[at..].copy_from_slice(&word[..len - at]);
        }
    }
}

/// Eight values, a byte each in `word` (least significant first), packed `BITS` bits each
/// into its low `8 BITS` bits: adjacent pairs, then fours, then the eight joined by shifts
/// within the word, three steps instead of eight.
#[inline(always)]
fn pack_word<const BITS: u32>(word: u64) -> u64 {
    let b = BITS;
    let x = word & (0x0101_0101_0101_0101 * ((1u64 << b) - 1));
    let x = (x & 0x00ff_00ff_00ff_00ff) | (x & 0xff00_ff00_ff00_ff00) >> (8 - b);
    let x = (x & 0x0000_ffff_0000_ffff) | (x & 0xffff_0000_ffff_0000) >> (16 - 2 * b);
    (x & 0x0000_0000_ffff_ffff) | (x & 0xffff_ffff_0000_0000) >> (32 - 4 * b)
}

/// [`pack_word`]'s inverse: the eight values of the low `8 BITS` bits of `word` (the bits
/// above are ignored), a byte each.
#[inline(always)]
fn unpack_word<const BITS: u32>(word: u64) -> u64 {
    let b = BITS;
    let four = (1u64 << (4 * b)) - 1;
    let x = (word & four) | (word >> (4 * b) & four) << 32;
    let two = 0x0000_0001_0000_0001 * ((1u64 << (2 * b)) - 1);
    let x = (x & two) | (x >> (2 * b) & two) << 16;
    let one = 0x0001_0001_0001_0001 * ((1u64 << b) - 1);
    (x & one) | (x >> b & one) << 8
}

/// Up to eight values, `bits` bits each, least significant first, in one word.
#[inline(always)]
fn pack_group(group: &[u8], bits: u32) -> u64 {
    let mask = (1u64 << bits) - 1;
    group.iter().enumerate().fold(0, |acc, (j, &v)| {
        acc | (u64::from(v) & mask) << (bits * j as u32)
    })
}

/// [`pack_small`]'s inverse: `len` values of `bits` bits from exactly
/// [`packed_small_len`]`(len, bits)` bytes; `None` for any other number of bytes.
pub fn unpack_small(packed: &[u8], bits: u32, len: usize) -> Option<Vec<u8>> {
    let bits = bits.clamp(1, 8);
    if packed.len() != packed_small_len(len, bits) {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some((_, fast)) = simd_kernels() {
        let mut out = Vec::with_capacity(len);
        // SAFETY: `simd_kernels` returns kernels only where the CPU has their instructions.
        let done = unsafe { fast(packed, bits, &mut out.spare_capacity_mut()[..len]) };
        // SAFETY: `fast` wrote the values done.
        unsafe { out.set_len(done) };
        let at = packed_small_len(done, bits);
        out.extend_from_slice(&unpack_portable(&packed[at..], bits, len - done));
        return Some(out);
    }
    Some(unpack_portable(packed, bits, len))
}

/// [`pack_small`] into `out`, which must be exactly [`packed_small_len`]`(values.len(), bits)`
/// bytes long (else `false`, nothing written): for a caller that packs blocks of a larger
/// buffer in place (whole bytes per block where each block's values times `bits` is a
/// multiple of 8).
pub fn pack_small_into(values: &[u8], bits: u32, out: &mut [u8]) -> bool {
    let bits = bits.clamp(1, 8);
    if out.len() != packed_small_len(values.len(), bits) {
        return false;
    }
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if let Some((fast, _)) = simd_kernels() {
        // SAFETY: `simd_kernels` returns kernels only where the CPU has their instructions;
        // initialised bytes are valid `MaybeUninit<u8>`, and the kernel stores only bytes.
        done = unsafe { fast(values, bits, as_uninit(out)) };
    }
    let at = packed_small_len(done, bits);
    pack_portable_into(&values[done..], bits, &mut out[at..]);
    true
}

/// [`unpack_small`] into `out` (its length is the number of values), from exactly
/// [`packed_small_len`]`(out.len(), bits)` bytes (else `false`, nothing written).
pub fn unpack_small_into(packed: &[u8], bits: u32, out: &mut [u8]) -> bool {
    let bits = bits.clamp(1, 8);
    if packed.len() != packed_small_len(out.len(), bits) {
        return false;
    }
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if let Some((_, fast)) = simd_kernels() {
        // SAFETY: as in `pack_small_into`.
        done = unsafe { fast(packed, bits, as_uninit(out)) };
    }
    let at = packed_small_len(done, bits);
    unpack_portable_into(&packed[at..], bits, &mut out[done..]);
    true
}

/// Initialised bytes as the `MaybeUninit` bytes the SIMD kernels write.
#[cfg(target_arch = "x86_64")]
fn as_uninit(out: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has `u8`'s layout, and the kernels store only initialised
    // bytes, so the slice stays initialised.
    unsafe { &mut *(out as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// [`unpack_small`] by shifts, on exactly [`packed_small_len`] bytes (`bits` from 1 to 8).
fn unpack_portable(packed: &[u8], bits: u32, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    unpack_portable_into(packed, bits, &mut out);
    out
}

/// [`unpack_portable`] into `out` (every byte written).
fn unpack_portable_into(packed: &[u8], bits: u32, out: &mut [u8]) {
    // A width known at compile time turns each group's shifts into constants.
    match bits {
        1 => unpack_width::<1>(packed, out),
        2 => unpack_width::<2>(packed, out),
        3 => unpack_width::<3>(packed, out),
        4 => unpack_width::<4>(packed, out),
        5 => unpack_width::<5>(packed, out),
        6 => unpack_width::<6>(packed, out),
        7 => unpack_width::<7>(packed, out),
        _ => unpack_width::<8>(packed, out),
    }
}

/// [`unpack_portable_into`] for a width of `BITS`, from exactly [`packed_small_len`] bytes.
fn unpack_width<const BITS: u32>(packed: &[u8], out: &mut [u8]) {
    let width = BITS as usize;
    let len = out.len();
    let mask = (1u64 << BITS) - 1;
    let unpack = |group: &mut [u8], word: u64| {
        for (j, v) in group.iter_mut().enumerate() {
            *v = (word >> (BITS * j as u32) & mask) as u8;
        }
    };
    let mut whole = out.chunks_exact_mut(GROUP);
    // Whole groups, eight values from one word, then the last values.
    for (g, group) in whole.by_ref().enumerate() {
        let at = g * width;
        let word = match packed.get(at..at + 8) {
            Some(w) => u64::from_le_bytes(w.try_into().unwrap_or_default()),
            None => tail_word(&packed[at..]),
        };
        group.copy_from_slice(&unpack_word::<BITS>(word).to_le_bytes());
    }
    let rest = whole.into_remainder();
    if !rest.is_empty() {
        unpack(rest, tail_word(&packed[(len / GROUP) * width..]));
    }
}

/// The last bytes of a packed buffer (at most eight), as a word.
fn tail_word(tail: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    let n = tail.len().min(8);
    w[..n].copy_from_slice(&tail[..n]);
    u64::from_le_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_width_and_length_round_trips_in_the_fewest_bytes() {
        for bits in 1..=8u32 {
            for len in 0..70usize {
                let values: Vec<u8> = (0..len)
                    .map(|i| ((i * 37 + 11) % (1 << bits)) as u8)
                    .collect();
                let packed = pack_small(&values, bits);
                assert_eq!(packed.len(), (len * bits as usize).div_ceil(8));
                // Into a slice of a larger buffer: the same bytes, nothing past the slice.
                let mut room = vec![0xa5u8; packed.len() + 40];
                assert!(pack_small_into(&values, bits, &mut room[..packed.len()]));
                assert_eq!(&room[..packed.len()], &packed[..], "bits={bits} len={len}");
                assert!(room[packed.len()..].iter().all(|&b| b == 0xa5));
                let mut back = vec![0x5au8; len + 40];
                assert!(unpack_small_into(&packed, bits, &mut back[..len]));
                assert_eq!(&back[..len], &values[..], "bits={bits} len={len}");
                assert!(back[len..].iter().all(|&b| b == 0x5a));
                assert!(!pack_small_into(
                    &values,
                    bits,
                    &mut room[..packed.len() + 1]
                ));
                assert!(!unpack_small_into(&packed, bits, &mut back[..len + 8]));
                assert_eq!(unpack_small(&packed, bits, len), Some(values));
            }
        }
        for bits in 1..=8u32 {
            for len in [200usize, 1000, 4096] {
                let values: Vec<u8> = (0..len).map(|i| ((i * 59) % (1 << bits)) as u8).collect();
                let packed = pack_small(&values, bits);
                let mut into = vec![0u8; packed.len()];
                assert!(pack_small_into(&values, bits, &mut into));
                assert_eq!(into, packed, "bits={bits} len={len}");
                let mut back = vec![0u8; len];
                assert!(unpack_small_into(&packed, bits, &mut back));
                assert_eq!(back, values, "bits={bits} len={len}");
            }
        }
        assert_eq!(packed_small_len(63, 7), 56);
        assert_eq!(unpack_small(&[0; 3], 7, 2), None);
    }

    /// Each SIMD kernel the CPU runs (AVX-512, AVX2) gives the portable path's bytes and
    /// values, with the rest packed by the portable path as `pack_small` does, for every
    /// width and lengths around whole steps and the room for their last loads and stores,
    /// whatever the values' high bits.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_simd_and_the_portable_paths_agree() {
        let kernels: [(&str, bool, Steps, Steps); 2] = [
            ("AVX-512", avx512::available(), avx512::pack, avx512::unpack),
            ("AVX2", avx2::available(), avx2::pack, avx2::unpack),
        ];
        for (name, _, pack, unpack) in kernels.into_iter().filter(|k| k.1) {
            for bits in 1..=8u32 {
                for len in [0usize, 1, 31, 32, 33, 63, 64, 65, 96, 127, 128, 200, 1000] {
                    let values: Vec<u8> = (0..len).map(|i| (i * 151 + 7 * len) as u8).collect();
                    let portable = pack_portable(&values, bits);
                    let mut out = Vec::with_capacity(portable.len());
                    // SAFETY: `available` was checked above.
                    let done = unsafe { pack(&values, bits, out.spare_capacity_mut()) };
                    assert_eq!(done % 8, 0, "{name} bits={bits} len={len}");
                    // SAFETY: `pack` wrote the bytes of the values done.
                    unsafe { out.set_len(packed_small_len(done, bits)) };
                    out.extend_from_slice(&pack_portable(&values[done..], bits));
                    assert_eq!(out, portable, "{name} bits={bits} len={len}");
                    let mut back = Vec::with_capacity(len);
                    // SAFETY: as above.
                    let done =
                        unsafe { unpack(&portable, bits, &mut back.spare_capacity_mut()[..len]) };
                    // SAFETY: `unpack` wrote the values done.
                    unsafe { back.set_len(done) };
                    let at = packed_small_len(done, bits);
                    back.extend_from_slice(&unpack_portable(&portable[at..], bits, len - done));
                    let low = ((1u16 << bits) - 1) as u8;
                    let want: Vec<u8> = values.iter().map(|v| v & low).collect();
                    assert_eq!(back, want, "{name} bits={bits} len={len}");
                    if len >= 200 {
                        assert!(done > 0, "{name} bits={bits} len={len}: no whole step");
                    }
                }
            }
        }
        for bits in 1..=8u32 {
            let values: Vec<u8> = (0..1000).map(|i| (i * 97) as u8).collect();
            let packed = pack_small(&values, bits);
            assert_eq!(packed, pack_portable(&values, bits), "bits={bits}");
            let back = unpack_small(&packed, bits, values.len());
            assert_eq!(back, Some(unpack_portable(&packed, bits, values.len())));
        }
    }

    /// The word steps of whole groups give the bits of packing one value at a time.
    #[test]
    fn whole_groups_pack_as_values_one_at_a_time() {
        fn check<const BITS: u32>() {
            for seed in 0..200u64 {
                let word = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (seed << 7);
                let group = word.to_le_bytes();
                let packed = pack_word::<BITS>(word);
                assert_eq!(packed, pack_group(&group, BITS), "bits {BITS}, {word:#x}");
                let mask = 0x0101_0101_0101_0101 * ((1u64 << BITS) - 1);
                // High bits above the group's are ignored.
                let noisy = packed | u64::MAX.checked_shl(8 * BITS).unwrap_or(0);
                assert_eq!(unpack_word::<BITS>(noisy), word & mask, "bits {BITS}");
            }
        }
        check::<1>();
        check::<2>();
        check::<3>();
        check::<4>();
        check::<5>();
        check::<6>();
        check::<7>();
        check::<8>();
    }

    #[test]
    fn the_layout_is_least_significant_first() {
        assert_eq!(pack_small(&[1, 2, 3], 5), vec![0b0100_0001, 0b0000_1100]);
        // the high bits of a value beyond `bits` are dropped
        assert_eq!(pack_small(&[0xff], 2), vec![0b11]);
    }
}

//! Small values (elements of a small field Z_p) packed in the bits of `p - 1` each, for the
//! wire: least significant first, element `i` in bits `b i .. b (i + 1)` of the bytes.

/// Bytes of `len` values packed `bits` bits each.
pub const fn packed_small_len(len: usize, bits: u32) -> usize {
    (len * bits as usize).div_ceil(8)
}

/// Packs the low `bits` bits (1 to 8) of each value, least significant first; the bits after
/// the last value are zero.
pub fn pack_small(values: &[u8], bits: u32) -> Vec<u8> {
    let bits = bits.clamp(1, 8);
    let mask = (1u64 << bits) - 1;
    let mut out = Vec::with_capacity(packed_small_len(values.len(), bits));
    let mut acc: u64 = 0;
    let mut filled = 0u32;
    for &v in values {
        acc |= (u64::from(v) & mask) << filled;
        filled += bits;
        if filled >= 32 {
            out.extend_from_slice(&(acc as u32).to_le_bytes());
            acc >>= 32;
            filled -= 32;
        }
    }
    let tail = filled.div_ceil(8) as usize;
    out.extend_from_slice(&acc.to_le_bytes()[..tail]);
    out
}

/// [`pack_small`]'s inverse: `len` values of `bits` bits from exactly
/// [`packed_small_len`]`(len, bits)` bytes; `None` for any other number of bytes.
pub fn unpack_small(packed: &[u8], bits: u32, len: usize) -> Option<Vec<u8>> {
    let bits = bits.clamp(1, 8);
    if packed.len() != packed_small_len(len, bits) {
        return None;
    }
    let mask = (1u64 << bits) - 1;
    let mut out = Vec::with_capacity(len);
    let mut acc: u64 = 0;
    let mut filled = 0u32;
    let mut bytes = packed.iter();
    for _ in 0..len {
        if filled < bits {
            // four more bytes (fewer at the end): at most 7 + 32 bits held
            for _ in 0..4 {
                if let Some(&b) = bytes.next() {
                    acc |= u64::from(b) << filled;
                    filled += 8;
                }
            }
        }
        out.push((acc & mask) as u8);
        acc >>= bits;
        filled -= bits;
    }
    Some(out)
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
                assert_eq!(unpack_small(&packed, bits, len), Some(values));
            }
        }
        assert_eq!(packed_small_len(63, 7), 56);
        assert_eq!(unpack_small(&[0; 3], 7, 2), None);
    }

    #[test]
    fn the_layout_is_least_significant_first() {
        assert_eq!(pack_small(&[1, 2, 3], 5), vec![0b0100_0001, 0b0000_1100]);
        // the high bits of a value beyond `bits` are dropped
        assert_eq!(pack_small(&[0xff], 2), vec![0b11]);
    }
}

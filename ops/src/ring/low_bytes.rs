//! Ring words cut to their low bytes for the wire, and back: a word mod `2^(8 b)` in `b`
//! bytes, little-endian. Each width has its own monomorphised loop, so that no element pays
//! for a copy of run-time length.

/// The low `b` bytes (1 to 8, clamped) of each word, least significant first.
pub fn low_bytes(words: &[u64], b: usize) -> Vec<u8> {
    match b.clamp(1, 8) {
        1 => low::<1>(words),
        2 => low::<2>(words),
        3 => low::<3>(words),
        4 => low::<4>(words),
        5 => low::<5>(words),
        6 => low::<6>(words),
        7 => low::<7>(words),
        _ => low::<8>(words),
    }
}

/// The words whose low `b` bytes (1 to 8) are the consecutive `b`-byte groups of `bytes` (the
/// high bytes zero); `None` if `b` is out of range or does not divide the length.
pub fn from_low_bytes(bytes: &[u8], b: usize) -> Option<Vec<u64>> {
    if !(1..=8).contains(&b) || !bytes.len().is_multiple_of(b) {
        return None;
    }
    Some(match b {
        1 => from_low::<1>(bytes),
        2 => from_low::<2>(bytes),
        3 => from_low::<3>(bytes),
        4 => from_low::<4>(bytes),
        5 => from_low::<5>(bytes),
        6 => from_low::<6>(bytes),
        7 => from_low::<7>(bytes),
        _ => from_low::<8>(bytes),
    })
}

fn low<const B: usize>(words: &[u64]) -> Vec<u8> {
    let mut out = vec![0u8; words.len() * B];
    for (chunk, w) in out.chunks_exact_mut(B).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes()[..B]);
    }
    out
}

fn from_low<const B: usize>(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(B)
        .map(|c| {
            let mut le = [0u8; 8];
            le[..B].copy_from_slice(c);
            u64::from_le_bytes(le)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_width_round_trips_mod_its_bytes() {
        let words: Vec<u64> = (0..37u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        for b in 1..=8 {
            let cut = low_bytes(&words, b);
            assert_eq!(cut.len(), words.len() * b);
            let back = from_low_bytes(&cut, b).unwrap();
            let mask = if b == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * b)) - 1
            };
            let want: Vec<u64> = words.iter().map(|w| w & mask).collect();
            assert_eq!(back, want, "{b} bytes");
        }
        assert_eq!(low_bytes(&[0x0102_0304], 2), vec![4, 3]);
        assert_eq!(from_low_bytes(&[1, 2, 3], 2), None);
        assert_eq!(from_low_bytes(&[1], 9), None);
    }
}

//! Tests of the PRG: known answers, determinism, domain separation, uniformity.

use super::*;

const SEED: Seed = [7u8; 32];

fn dom(session: u128, node: u64, purpose: u32) -> Domain {
    Domain::new(session, node, purpose)
}

#[test]
fn prg_key_derivation_is_standard_chacha20() {
    // The ChaCha20 keystream of the all-zero key and nonce (djb's test vector).
    let want = [
        0x76, 0xb8, 0xe0, 0xad, 0xa0, 0xf1, 0x3d, 0x90, 0x40, 0x5d, 0x6a, 0xe5, 0x53, 0x86, 0xbd,
        0x28, 0xbd, 0xd2, 0x19, 0xb8, 0xa0, 0x8d, 0xed, 0x1a, 0xa8, 0x36, 0xef, 0xcc, 0x8b, 0x77,
        0x0d, 0xc7,
    ];
    assert_eq!(derive_key(&[0u8; 32], 0, 0), want);
    // Nonce and block counter both select other blocks.
    assert_ne!(derive_key(&[0u8; 32], 1, 0), want);
    assert_ne!(derive_key(&[0u8; 32], 0, 1), want);
    assert_ne!(derive_key(&[0u8; 32], 1, 0), derive_key(&[0u8; 32], 0, 1));
}

#[test]
fn prg_same_seed_and_domain_give_same_tensor() {
    let d = dom(0xdead_beef_u128 << 70 | 5, 42, 3);
    let a = expand_ring(&SEED, d, &[3, 5, 7]).unwrap();
    let b = expand_ring(&SEED, d, &[3, 5, 7]).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.shape(), &[3, 5, 7]);
    // Successive draws continue one stream: two draws equal one longer draw.
    let mut p = Prg::new(&SEED, d);
    let first = p.ring(&[10]).unwrap();
    let second = p.ring(&[95]).unwrap();
    let whole = expand_ring(&SEED, d, &[105]).unwrap();
    let joined: Vec<u64> = first.iter().chain(second.iter()).copied().collect();
    assert_eq!(joined, whole.iter().copied().collect::<Vec<_>>());
}

#[test]
fn prg_domains_and_seeds_separate() {
    let base = dom(1, 2, 3);
    let shape = [64];
    let a = expand_ring(&SEED, base, &shape).unwrap();
    let others = [
        (SEED, dom(2, 2, 3)),
        (SEED, dom(1 | 1 << 64, 2, 3)),
        (SEED, dom(1, 3, 3)),
        (SEED, dom(1, 2, 4)),
        // Swapping parts of the domain must not collide either.
        (SEED, dom(1, 3, 2)),
        ([8u8; 32], base),
    ];
    for (seed, d) in others {
        let b = expand_ring(&seed, d, &shape).unwrap();
        assert_ne!(a, b, "{d:?}");
        // Not even one word in common position.
        assert!(a.iter().zip(b.iter()).all(|(x, y)| x != y), "{d:?}");
    }
    let mut p = Prg::new(&SEED, base);
    let (s1, s2) = (p.seed(), p.seed());
    assert_ne!(s1, s2);
}

#[test]
fn prg_parallel_fill_equals_sequential_stream() {
    let d = dom(9, 9, 9);
    let n = crate::par::PRG_WORDS + 5 * CHUNK_WORDS + 123;
    // Small buffers take the sequential path.
    let mut small = [0u64; 300];
    Prg::new(&SEED, d).fill_u64(&mut small);
    let mut r = Prg::new(&SEED, d);
    assert!(small.iter().all(|&w| w == r.next_u64()));
    let mut p = Prg::new(&SEED, d);
    let _skip = p.next_u64(); // start inside an AES block
    let mut bulk = vec![0u64; n];
    p.fill_u64(&mut bulk);
    let after = p.next_u64();
    let mut q = Prg::new(&SEED, d);
    let _ = q.next_u64();
    let seq: Vec<u64> = (0..n).map(|_| q.next_u64()).collect();
    assert_eq!(bulk, seq);
    assert_eq!(after, q.next_u64());
}

#[test]
fn prg_top_byte_chi_square() {
    let x = expand_ring(&SEED, dom(11, 0, 0), &[10_000]).unwrap();
    let mut counts = [0u32; 256];
    for w in x.iter() {
        counts[(w >> 56) as usize] += 1;
    }
    let expected = 10_000.0 / 256.0;
    let chi2: f64 = counts
        .iter()
        .map(|&c| (f64::from(c) - expected).powi(2) / expected)
        .sum();
    // 255 degrees of freedom: mean 255, sd 22.6; accept within about 3.3 sd.
    assert!((180.0..330.0).contains(&chi2), "chi2 = {chi2}");
}

#[test]
fn prg_field_elements_unbiased() {
    for p in [3u8, 67, 251] {
        let f = PrimeField::new(p).unwrap();
        let n = 200 * usize::from(p);
        let x = Prg::new(&SEED, dom(12, 1, u32::from(p)))
            .field(f, &[n])
            .unwrap();
        assert!(x.iter().all(|&v| v < p));
        let mut counts = vec![0u32; usize::from(p)];
        x.iter().for_each(|&v| counts[usize::from(v)] += 1);
        let chi2: f64 = counts
            .iter()
            .map(|&c| (f64::from(c) - 200.0).powi(2) / 200.0)
            .sum();
        let dof = f64::from(p) - 1.0;
        // Within about 4 sd of the mean `dof` (sd = sqrt(2 dof)).
        assert!(chi2 < dof + 4.0 * (2.0 * dof).sqrt(), "p={p} chi2={chi2}");
        let sz = Prg::new(&SEED, dom(12, 2, 0)).nonzero_and_uniform(f, n);
        let (nz, z): (Vec<u8>, Vec<u8>) = sz.iter().map(|&e| (e as u8, (e >> 8) as u8)).unzip();
        assert!(nz.iter().all(|&v| v >= 1 && v < p));
        assert!(nz.iter().any(|&v| v == p - 1));
        assert!(z.iter().all(|&v| v < p));
        assert!(z.contains(&0) && z.contains(&(p - 1)));
    }
}

/// The first `count` 16-bit draws below `bound`, one at a time: least significant first in
/// each word, the stream left after the word of the last one (what the bulk samplers do).
fn draws_one_at_a_time(prg: &mut Prg, bound: u32, count: usize) -> Vec<u32> {
    let mut v = Vec::new();
    while v.len() < count {
        let w = prg.next_u64();
        for k in 0..4 {
            let u = ((w >> (16 * k)) & 0xffff) as u32;
            if u < bound && v.len() < count {
                v.push(u);
            }
        }
    }
    v
}

/// What [`Prg::field`] draws in bulk, one draw at a time: draws below the largest multiple of
/// p^2, each two elements (`u mod p`, then `(u div p) mod p`).
fn field_one_draw_at_a_time(prg: &mut Prg, f: PrimeField, n: usize) -> Vec<u8> {
    let p = u32::from(f.modulus());
    let bound = (1 << 16) / (p * p) * (p * p);
    let mut v: Vec<u8> = draws_one_at_a_time(prg, bound, n.div_ceil(2))
        .into_iter()
        .flat_map(|u| [(u % p) as u8, ((u / p) % p) as u8])
        .collect();
    v.truncate(n);
    v
}

#[test]
fn prg_bulk_field_equals_draw_at_a_time_and_is_uniform() {
    let f = PrimeField::new(67).unwrap();
    // Sizes around a word, a larger one, and one for the parallel fill and the parallel scan
    // of the draws (at least `par::PRG_WORDS` words of about 8 elements each).
    for n in [
        0usize,
        1,
        7,
        8,
        9,
        1000,
        100_003,
        9 * crate::par::PRG_WORDS + 1,
    ] {
        let mut bulk = Prg::new(&SEED, dom(14, n as u64, 1));
        let mut slow = bulk.clone();
        let x = bulk.field(f, &[n]).unwrap();
        assert_eq!(
            x.as_slice().unwrap(),
            field_one_draw_at_a_time(&mut slow, f, n)
        );
        // The stream goes on from the same place.
        assert_eq!(bulk.next_u64(), slow.next_u64(), "n={n}");
    }
    // Uniformity of the bulk method over 67 * 3000 draws: chi-square with 66 degrees of
    // freedom (mean 66, sd 11.5), accepted below mean + 4 sd; and the pairs of consecutive
    // draws are independent (chi-square of the 67 x 67 table, 4488 dof, sd 94.7).
    let n = 67 * 3000;
    let x = Prg::new(&SEED, dom(15, 0, 0)).field(f, &[n]).unwrap();
    let mut counts = [0f64; 67];
    let mut pairs = vec![0f64; 67 * 67];
    x.iter().for_each(|&v| counts[usize::from(v)] += 1.0);
    for w in x.as_slice().unwrap().chunks_exact(2) {
        pairs[usize::from(w[0]) * 67 + usize::from(w[1])] += 1.0;
    }
    let chi2: f64 = counts.iter().map(|c| (c - 3000.0).powi(2) / 3000.0).sum();
    assert!(chi2 < 66.0 + 4.0 * 11.5, "chi2 = {chi2}");
    let e = (n / 2) as f64 / (67.0 * 67.0);
    let chi2: f64 = pairs.iter().map(|c| (c - e).powi(2) / e).sum();
    assert!(chi2 < 4488.0 + 4.0 * 94.7, "pairs chi2 = {chi2}");
    // The odd ring in bulk: the first words of the stream but `u64::MAX`.
    let mut bulk = Prg::new(&SEED, dom(16, 0, 0));
    let mut slow = bulk.clone();
    let o = bulk.odd_ring(&[70_000]).unwrap();
    assert!(o.iter().all(|&w| w == slow.next_u64()));
}

/// PrivateCompare's pairs drawn one at a time: a draw `u` below the largest multiple of
/// `(p - 1) p` gives `1 + u mod (p - 1)` and `(u div (p - 1)) mod p`, packed low, high.
fn pairs_one_draw_at_a_time(prg: &mut Prg, f: PrimeField, n: usize) -> Vec<u16> {
    let p = u32::from(f.modulus());
    let d = p - 1;
    let bound = (1 << 16) / (d * p) * (d * p);
    draws_one_at_a_time(prg, bound, n)
        .into_iter()
        .map(|u| ((1 + u % d) | (((u / d) % p) << 8)) as u16)
        .collect()
}

#[test]
fn prg_bulk_pairs_equal_draw_at_a_time() {
    let f = PrimeField::new(53).unwrap();
    // Around a word, across the scan's buffers of 2^11 words and chunks of 2^14, and large
    // enough for the parallel scan (`par::PRG_WORDS` words).
    for n in [
        0usize,
        1,
        3,
        4,
        5,
        4 * 2048 + 3,
        3 * 4 * 16384 + 1,
        4 * crate::par::PRG_WORDS + 5,
    ] {
        let mut bulk = Prg::new(&SEED, dom(17, n as u64, 1));
        let mut slow = bulk.clone();
        assert_eq!(
            bulk.nonzero_and_uniform(f, n),
            pairs_one_draw_at_a_time(&mut slow, f, n),
            "n={n}"
        );
        // The stream goes on from the same place.
        assert_eq!(bulk.next_u64(), slow.next_u64(), "n={n}");
    }
}

#[test]
fn prg_odd_ring_and_bits() {
    let mut p = Prg::new(&SEED, dom(13, 0, 0));
    let o = p.odd_ring(&[1000]).unwrap();
    assert!(o.iter().all(|&v| v != u64::MAX));
    let b = p.bits(&[10, 100]).unwrap();
    assert!(b.iter().all(|&v| v <= 1));
    let ones: u32 = b.iter().map(|&v| u32::from(v)).sum();
    // Mean 500, sd 15.8.
    assert!((420..580).contains(&ones), "{ones}");
    assert!(p.ring(&[usize::MAX, 2]).is_err());
    assert_eq!(p.ring(&[0, 4]).unwrap().len(), 0);
}

#[test]
fn prg_fresh_seeds_differ() {
    let a = fresh_seed().unwrap();
    let b = fresh_seed().unwrap();
    assert_ne!(a, b);
    assert_ne!(a, [0u8; 32]);
}

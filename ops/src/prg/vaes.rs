//! The keystream of [`super::ctr::CtrStream`] with VAES: AES-128 on four blocks per AVX-512
//! instruction, eight registers in flight (32 blocks, 64 words, per step), where AES-NI
//! encrypts one block per instruction. The words are the same, in the same order (the tests
//! compare the two paths); the caller uses this one only on a CPU with VAES and AVX-512F.

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::Vaes;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// Registers encrypted side by side (enough to hide the latency of `vaesenc`).
    const REGS: usize = 8;
    /// Words per step: four blocks per register, two words per block.
    pub(crate) const STEP_WORDS: usize = REGS * 4 * 2;

    /// The round keys of one AES-128 key.
    #[derive(Clone, Copy)]
    pub(crate) struct Vaes {
        round_keys: [__m128i; 11],
    }

    impl Vaes {
        /// The round keys of `key`, if this CPU has VAES, AVX-512F and AES-NI.
        pub(crate) fn new(key: [u8; 16]) -> Option<Vaes> {
            let fast = is_x86_feature_detected!("vaes")
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("aes");
            // SAFETY: AES-NI is present (checked just above).
            fast.then(|| Vaes {
                round_keys: unsafe { expand_key(key) },
            })
        }

        /// Writes the words of blocks `block, block + 1, ..` (two words per block, the first
        /// eight bytes of the counter block being `nonce`) into the longest prefix of `out`
        /// that is a whole number of steps, and returns its length.
        pub(crate) fn words(&self, nonce: u64, block: u64, out: &mut [MaybeUninit<u64>]) -> usize {
            if out.len() < STEP_WORDS {
                return 0;
            }
            // SAFETY: `new` checked the CPU's features.
            unsafe { fill(&self.round_keys, nonce, block, out) }
        }
    }

    /// One step of the AES-128 key schedule (FIPS-197 5.2), with round constant `RCON`.
    #[target_feature(enable = "aes")]
    fn schedule_step<const RCON: i32>(k: __m128i) -> __m128i {
        let t = _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<RCON>(k));
        let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        _mm_xor_si128(k, t)
    }

    /// The eleven round keys of AES-128.
    #[target_feature(enable = "aes")]
    fn expand_key(key: [u8; 16]) -> [__m128i; 11] {
        // SAFETY: `key` is 16 readable bytes; the load is unaligned.
        let k0 = unsafe { _mm_loadu_si128(key.as_ptr().cast()) };
        let k1 = schedule_step::<0x01>(k0);
        let k2 = schedule_step::<0x02>(k1);
        let k3 = schedule_step::<0x04>(k2);
        let k4 = schedule_step::<0x08>(k3);
        let k5 = schedule_step::<0x10>(k4);
        let k6 = schedule_step::<0x20>(k5);
        let k7 = schedule_step::<0x40>(k6);
        let k8 = schedule_step::<0x80>(k7);
        let k9 = schedule_step::<0x1b>(k8);
        let k10 = schedule_step::<0x36>(k9);
        [k0, k1, k2, k3, k4, k5, k6, k7, k8, k9, k10]
    }

    /// See [`Vaes::words`].
    #[target_feature(enable = "avx512f,vaes,aes")]
    fn fill(
        round_keys: &[__m128i; 11],
        nonce: u64,
        block: u64,
        out: &mut [MaybeUninit<u64>],
    ) -> usize {
        let keys = round_keys.map(|k| _mm512_broadcast_i32x4(k));
        let n = nonce as i64;
        let mut next = block;
        let mut chunks = out.chunks_exact_mut(STEP_WORDS);
        let mut written = 0;
        for chunk in &mut chunks {
            let mut x = [_mm512_setzero_si512(); REGS];
            for (r, x) in x.iter_mut().enumerate() {
                let b = next.wrapping_add(4 * r as u64);
                // counter blocks b .. b + 3, each the nonce then the block number (little-endian)
                let ctr = _mm512_set_epi64(
                    b.wrapping_add(3) as i64,
                    n,
                    b.wrapping_add(2) as i64,
                    n,
                    b.wrapping_add(1) as i64,
                    n,
                    b as i64,
                    n,
                );
                *x = _mm512_xor_si512(ctr, keys[0]);
            }
            for key in &keys[1..10] {
                for x in &mut x {
                    *x = _mm512_aesenc_epi128(*x, *key);
                }
            }
            for (r, x) in x.iter().enumerate() {
                let v = _mm512_aesenclast_epi128(*x, keys[10]);
                let dst = &mut chunk[r * 8..r * 8 + 8];
                // SAFETY: `dst` is 8 words, 64 writable bytes; the store is unaligned.
                unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), v) };
            }
            next = next.wrapping_add((REGS * 4) as u64);
            written += STEP_WORDS;
        }
        written
    }
}

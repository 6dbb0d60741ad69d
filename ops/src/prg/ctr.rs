//! AES-128 in counter mode as the stream of [`super::Prg`]: any position of the stream
//! reachable at once (the block counter), so large fills split across threads. On x86 the
//! runs of whole steps come from AES-NI (8 blocks in flight) or VAES (16 or 32 blocks, two
//! or four per instruction) directly (`aes_x86.rs`); the `aes` crate does the rest, and everything on
//! other CPUs.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use std::mem::MaybeUninit;

/// Blocks encrypted per call (the AES-NI back end pipelines eight).
const BATCH: usize = 8;
/// Words per block.
const WORDS: usize = 2;

/// Eight bytes as a little-endian word.
fn word(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    u64::from_le_bytes(w)
}

/// The keystream `AES_k(nonce || i)` for `i = 0, 1, ..`, read as little-endian 64-bit words
/// (two per block).
#[derive(Clone)]
pub struct CtrStream {
    cipher: Aes128,
    /// The same key for the x86 AES instructions, on a CPU that has them.
    #[cfg(target_arch = "x86_64")]
    fast: Option<super::aes_x86::FastAes>,
    nonce: u64,
    /// The next word's position in the stream.
    pos: u64,
}

impl std::fmt::Debug for CtrStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("CtrStream").field("pos", &self.pos).finish()
    }
}

impl CtrStream {
    /// The stream of a 16-byte key and a nonce, from word 0.
    pub fn new(key: [u8; 16], nonce: u64) -> Self {
        CtrStream {
            cipher: Aes128::new(&GenericArray::from(key)),
            #[cfg(target_arch = "x86_64")]
            fast: super::aes_x86::FastAes::new(key),
            nonce,
            pos: 0,
        }
    }

    /// The position of the next word.
    pub fn word_pos(&self) -> u64 {
        self.pos
    }

    /// Moves to word `pos`.
    pub fn set_word_pos(&mut self, pos: u64) {
        self.pos = pos;
    }

    /// Writes the words from position `pos` on into `out` (does not move the stream).
    #[cfg(test)]
    pub fn words_at(&self, pos: u64, out: &mut [u64]) {
        self.words_into(pos, super::as_uninit(out));
    }

    /// Writes the words from position `pos` on into `out`, memory that need not be
    /// initialised: every word of it is written (does not move the stream).
    pub fn words_into(&self, pos: u64, out: &mut [MaybeUninit<u64>]) {
        if out.is_empty() {
            return;
        }
        let mut block = pos / WORDS as u64;
        let mut rest = out;
        // A start in the middle of a block: its second word.
        if pos % WORDS as u64 == 1 {
            let [_, second] = self.encrypt(block);
            rest[0].write(second);
            rest = &mut rest[1..];
            block += 1;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(fast) = &self.fast {
            let done = fast.words(self.nonce, block, rest);
            block += (done / WORDS) as u64;
            rest = &mut rest[done..];
        }
        let mut blocks = [GenericArray::from([0u8; 16]); BATCH];
        let mut chunks = rest.chunks_exact_mut(BATCH * WORDS);
        for chunk in &mut chunks {
            for (i, b) in blocks.iter_mut().enumerate() {
                self.counter(b, block + i as u64);
            }
            self.cipher.encrypt_blocks(&mut blocks);
            for (pair, b) in chunk.chunks_exact_mut(WORDS).zip(&blocks) {
                pair[0].write(word(&b[..8]));
                pair[1].write(word(&b[8..]));
            }
            block += BATCH as u64;
        }
        for pair in chunks.into_remainder().chunks_mut(WORDS) {
            for (out, w) in pair.iter_mut().zip(self.encrypt(block)) {
                out.write(w);
            }
            block += 1;
        }
    }

    /// Counter block `i`: the nonce, then `i`, little-endian.
    fn counter(&self, b: &mut GenericArray<u8, aes::cipher::consts::U16>, i: u64) {
        b[..8].copy_from_slice(&self.nonce.to_le_bytes());
        b[8..].copy_from_slice(&i.to_le_bytes());
    }

    /// The two words of block `i`.
    fn encrypt(&self, i: u64) -> [u64; 2] {
        let mut b = GenericArray::from([0u8; 16]);
        self.counter(&mut b, i);
        self.cipher.encrypt_block(&mut b);
        [word(&b[..8]), word(&b[8..])]
    }

    /// Fills `out` with the next words and moves past them.
    pub fn fill(&mut self, out: &mut [u64]) {
        self.fill_into(super::as_uninit(out));
    }

    /// [`fill`](Self::fill) into memory that need not be initialised.
    pub fn fill_into(&mut self, out: &mut [MaybeUninit<u64>]) {
        self.words_into(self.pos, out);
        self.pos += out.len() as u64;
    }

    /// The next word.
    pub fn next_u64(&mut self) -> u64 {
        let mut w = [0u64; 1];
        self.fill(&mut w);
        w[0]
    }

    /// Fills `out` with the next bytes (whole words are consumed).
    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        let mut words = vec![0u64; out.len().div_ceil(8)];
        self.fill(&mut words);
        for (chunk, w) in out.chunks_mut(8).zip(&words) {
            chunk.copy_from_slice(&w.to_le_bytes()[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_known_answer() {
        // FIPS-197 appendix C.1: AES-128 of 00112233..ff under key 000102..0f.
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let cipher = Aes128::new(&GenericArray::from(key));
        let mut block = GenericArray::from(std::array::from_fn::<u8, 16, _>(|i| (i * 0x11) as u8));
        cipher.encrypt_block(&mut block);
        let want = [
            0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
            0xc5, 0x5a,
        ];
        assert_eq!(block.as_slice(), &want);
    }

    /// Every x86 path this CPU runs writes the words of the `aes` crate's.
    #[test]
    fn the_fast_and_the_portable_paths_agree() {
        for nonce in [0u64, 3, u64::MAX] {
            let fast = CtrStream::new([9; 16], nonce);
            let portable = CtrStream {
                #[cfg(target_arch = "x86_64")]
                fast: None,
                ..fast.clone()
            };
            #[cfg(target_arch = "x86_64")]
            let paths: Vec<(String, CtrStream)> = {
                use super::super::aes_x86::Path;
                [Path::Vaes512, Path::Vaes256, Path::AesNi]
                    .into_iter()
                    .filter_map(|p| {
                        let on = fast.fast?.on(p)?;
                        Some((
                            format!("{p:?}"),
                            CtrStream {
                                fast: Some(on),
                                ..fast.clone()
                            },
                        ))
                    })
                    .collect()
            };
            #[cfg(not(target_arch = "x86_64"))]
            let paths = vec![("default".to_string(), fast.clone())];
            for (pos, len) in [(0u64, 1000usize), (1, 999), (5, 64), (64, 63), (7, 130)] {
                let mut want = vec![1u64; len];
                portable.words_at(pos, &mut want);
                for (name, stream) in &paths {
                    let mut got = vec![0u64; len];
                    stream.words_at(pos, &mut got);
                    assert_eq!(got, want, "{name}: nonce {nonce}, from {pos}, {len} words");
                }
            }
        }
    }

    #[test]
    fn any_split_of_the_stream_reads_the_same_words() {
        let s = CtrStream::new([7; 16], 3);
        let mut whole = vec![0u64; 100];
        s.words_at(0, &mut whole);
        for start in [0u64, 1, 2, 15, 16, 17, 33] {
            let mut part = vec![0u64; 40];
            s.words_at(start, &mut part);
            assert_eq!(
                part,
                whole[start as usize..start as usize + 40],
                "from {start}"
            );
        }
        let mut t = CtrStream::new([7; 16], 3);
        assert_eq!(t.next_u64(), whole[0]);
        let mut three = [0u64; 3];
        t.fill(&mut three);
        assert_eq!(three, whole[1..4]);
        assert_eq!(t.word_pos(), 4);
        let mut bytes = [0u8; 5];
        t.fill_bytes(&mut bytes);
        assert_eq!(bytes, whole[4].to_le_bytes()[..5]);
        assert_eq!(t.word_pos(), 5);
        // Another nonce, another stream.
        assert_ne!(CtrStream::new([7; 16], 4).next_u64(), whole[0]);
    }
}

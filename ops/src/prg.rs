//! A pseudo-random generator that expands a 32-byte seed into ring tensors: AES-128 in counter
//! mode, keyed per domain by ChaCha20.
//!
//! **Domain separation.** Every stream is named by a [`Domain`] `(session, node, purpose)`:
//! the session id of a run (128 bits), the graph node that consumes the randomness, and a
//! purpose tag within the node (e.g. "mask of input 0", "triple a"). The generator's key is
//! derived from the seed in two ChaCha20 steps, with no hash function and an injective
//! packing of the domain into ChaCha's 64-bit nonce and 64-bit block counter:
//!
//! 1. `k1` = the first 32 bytes of ChaCha20 keyed by the seed, nonce = low 64 bits of the
//!    session, block counter = high 64 bits of the session;
//! 2. `k2` = the first 32 bytes of ChaCha20 keyed by `k1`, nonce = node, block counter =
//!    purpose;
//! 3. the output stream is AES-128 in counter mode keyed by the first 16 bytes of `k2`, the
//!    next 8 bytes the first 8 bytes of every counter block (the block number the last 8,
//!    little-endian), from block 0 (AES-NI makes it about five times as fast as ChaCha20 on
//!    one core; see `prg/ctr.rs`).
//!
//! Distinct domains select distinct (nonce, counter) blocks of a PRF, so their keys are
//! independent; the seed and `k1` are only ever used for derivation, never for output.
//!
//! **Sampling.** Ring words are raw 64-bit outputs (uniform in Z_2^64). Z_{2^64-1} rejects the
//! single word `u64::MAX`; Z_p takes two elements from each 16-bit draw below the largest
//! multiple of `p^2` (no modulo bias), and PrivateCompare's pairs in Z_p^* x Z_p one from each
//! draw below the largest multiple of `(p - 1) p`; bits take 64 per word. Large ring tensors
//! are filled in parallel: each chunk seeks its own position of the same stream, so the output does not depend on the thread count.

use ndarray::{ArrayD, IxDyn};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng, TryRngCore};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::OnceLock;

mod aes_x86;
mod ctr;
mod draws;
use ctr::CtrStream;
use draws::{accept_draws, DrawRule};

use crate::ring::{checked_len, PrimeField};
use crate::{OpsError, Result, Seed};

/// Where a pseudo-random stream is used: its key is derived from the seed and all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Domain {
    /// The session (run) identifier, fresh for every run.
    pub session: u128,
    /// The graph node that consumes the stream.
    pub node: u64,
    /// The purpose of the stream within the node.
    pub purpose: u32,
}

impl Domain {
    /// A domain from its three parts.
    pub fn new(session: u128, node: u64, purpose: u32) -> Self {
        Domain {
            session,
            node,
            purpose,
        }
    }
}

/// log2 of the words of each [`Prg::substream`].
const SUBSTREAM_BITS: u32 = 40;

/// Words per parallel chunk of [`Prg::fill_u64`] and of the rejection sampler's scan.
const CHUNK_WORDS: usize = 1 << 14;

/// Words that the rejection sampler makes and scans at a time (16 KiB, in the first-level
/// cache).
const DRAW_CHUNK_WORDS: usize = 1 << 11;

/// Takes 32 bytes of ChaCha20 keyed by `key` at (nonce, block).
fn derive_key(key: &Seed, nonce: u64, block: u64) -> Seed {
    let mut rng = ChaCha20Rng::from_seed(*key);
    rng.set_stream(nonce);
    rng.set_word_pos(u128::from(block) * 16);
    let mut out = [0u8; 32];
    rng.fill_bytes(&mut out);
    out
}

/// A 32-byte seed from the operating system's generator.
///
/// Errors: [`OpsError::Entropy`] if the OS cannot provide randomness.
pub fn fresh_seed() -> Result<Seed> {
    let mut seed = [0u8; 32];
    rand_core::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| OpsError::Entropy(e.to_string()))?;
    Ok(seed)
}

/// The generator of one [`Domain`]: AES-128 in counter mode under a key derived with
/// ChaCha20; successive draws continue the same stream.
#[derive(Debug, Clone)]
pub struct Prg {
    rng: CtrStream,
}

impl Prg {
    /// The generator of `seed` in `domain` (see the module docs for the derivation).
    pub fn new(seed: &Seed, domain: Domain) -> Self {
        let k1 = derive_key(seed, domain.session as u64, (domain.session >> 64) as u64);
        let k2 = derive_key(&k1, domain.node, u64::from(domain.purpose));
        let (key, rest) = k2.split_at(16);
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&rest[..8]);
        let key: [u8; 16] = std::array::from_fn(|i| key[i]);
        Prg {
            rng: CtrStream::new(key, u64::from_le_bytes(nonce)),
        }
    }

    /// An independent stream for part `index` of a computation split into parts (one per
    /// block of a parallel kernel): the same key from word `(index + 1) 2^40` on, so its
    /// words are disjoint from this stream's first 2^40 and from every other part's, as long
    /// as each uses fewer than 2^40 words (8 TiB) and `index` is below `2^24 - 1`. The parts
    /// of a kernel draw the same whichever thread runs them, and each part's draws are made
    /// where they are used instead of in one buffer for all parts.
    pub fn substream(&self, index: u64) -> Prg {
        let mut rng = self.rng.clone();
        rng.set_word_pos(index.saturating_add(1) << SUBSTREAM_BITS);
        Prg { rng }
    }

    /// The next 64-bit word.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A fresh seed drawn from this stream (e.g. a share the dealer sends as a seed).
    pub fn seed(&mut self) -> Seed {
        let mut s = [0u8; 32];
        self.rng.fill_bytes(&mut s);
        s
    }

    /// Fills `buf` with the next `buf.len()` words of the stream, in parallel for large
    /// buffers; the result is the same as calling [`next_u64`](Self::next_u64) in a loop.
    pub fn fill_u64(&mut self, buf: &mut [u64]) {
        self.fill_into(as_uninit(buf));
    }

    /// [`fill_u64`](Self::fill_u64) into memory that need not be initialised: every word of
    /// `buf` is written.
    fn fill_into(&mut self, buf: &mut [MaybeUninit<u64>]) {
        if buf.len() < crate::par::PRG_WORDS {
            self.rng.fill_into(buf);
            return;
        }
        let start = self.rng.word_pos();
        let base = &self.rng;
        buf.par_chunks_mut(CHUNK_WORDS)
            .enumerate()
            .for_each(|(i, chunk)| base.words_into(start + (i * CHUNK_WORDS) as u64, chunk));
        self.rng.set_word_pos(start + buf.len() as u64);
    }

    /// The next `n` words of the stream in a new vector, written once (not zeroed first).
    fn words(&mut self, n: usize) -> Vec<u64> {
        let mut v = Vec::with_capacity(n);
        self.fill_into(&mut v.spare_capacity_mut()[..n]);
        // SAFETY: `fill_into` wrote the first `n` words.
        unsafe { v.set_len(n) };
        v
    }

    /// A tensor of `shape` uniform in Z_2^64.
    ///
    /// Errors: [`OpsError::InvalidArgument`] if the element count overflows.
    pub fn ring(&mut self, shape: &[usize]) -> Result<ArrayD<u64>> {
        let v = self.words(checked_len("prg ring", shape)?);
        to_array(shape, v)
    }

    /// A tensor of `shape` uniform in Z_{2^64-1} (values in `0..u64::MAX`).
    ///
    /// Errors: as [`ring`](Self::ring).
    pub fn odd_ring(&mut self, shape: &[usize]) -> Result<ArrayD<u64>> {
        let n = checked_len("prg odd ring", shape)?;
        let mut v = self.words(n);
        // Rejects `u64::MAX` (probability 2^-64 per word): the result is the first `n` other
        // words of the stream, as if drawn one at a time.
        v.retain(|&w| w != u64::MAX);
        while v.len() < n {
            let w = self.rng.next_u64();
            if w != u64::MAX {
                v.push(w);
            }
        }
        to_array(shape, v)
    }

    /// A tensor of `shape` uniform in the field Z_p, two elements from each accepted 16-bit
    /// draw (rejection sampling: `prg/draws.rs`).
    ///
    /// Errors: as [`ring`](Self::ring).
    pub fn field(&mut self, field: PrimeField, shape: &[usize]) -> Result<ArrayD<u8>> {
        let n = checked_len("prg field", shape)?;
        let mut v: Vec<u8> = Vec::with_capacity(n + 1);
        // Each draw's two elements, low one first.
        self.rule_draws(n.div_ceil(2), pair_rule(field), |draws| {
            v.extend(draws.iter().flat_map(|d| d.to_le_bytes()))
        });
        v.truncate(n);
        to_array(shape, v)
    }

    /// Hands `join` the entries of the first `count` draws that `rule` accepts, in order and
    /// a chunk at a time (four 16-bit draws per word, least significant first), in a buffer
    /// that `join` may take (swap with an empty one) rather than copy. Each pass
    /// takes the fewest words that could complete it (all draws accepted), which a
    /// draw-at-a-time loop would take too, so the stream goes on from the same place. A
    /// chunk's words are made and scanned a few kilobytes at a time, in the cache (a pass's
    /// words in one buffer, then its draws in another, took about twice as long for tens of
    /// millions of draws: `cargo bench --bench kernels -- securenn_c_batch128`); a large
    /// pass's chunks are scanned in parallel and handed over in order: the same entries as
    /// one scan.
    fn rule_draws(&mut self, count: usize, rule: &DrawRule, mut join: impl FnMut(&mut Vec<u16>)) {
        let mut got = 0;
        // The accepted draws of one chunk, reused by the chunks scanned on this thread.
        let mut part = Vec::new();
        while got < count {
            let words = (count - got).div_ceil(4);
            let start = self.rng.word_pos();
            let base = &self.rng;
            let scan = |i: usize, out: &mut Vec<u16>| {
                let (from, to) = (i * CHUNK_WORDS, words.min((i + 1) * CHUNK_WORDS));
                let mut buf = [MaybeUninit::<u64>::uninit(); DRAW_CHUNK_WORDS];
                for at in (from..to).step_by(DRAW_CHUNK_WORDS) {
                    let piece = &mut buf[..DRAW_CHUNK_WORDS.min(to - at)];
                    base.words_into(start + at as u64, piece);
                    // SAFETY: `words_into` wrote every word of `piece`.
                    let piece = unsafe { &*(piece as *const [MaybeUninit<u64>] as *const [u64]) };
                    accept_draws(piece, rule, out);
                }
            };
            let mut hand = |entries: &mut Vec<u16>| {
                entries.truncate(count - got);
                got += entries.len();
                join(entries);
            };
            let chunks = words.div_ceil(CHUNK_WORDS);
            if words < crate::par::PRG_WORDS {
                for i in 0..chunks {
                    part.clear();
                    scan(i, &mut part);
                    hand(&mut part);
                }
            } else {
                let mut parts: Vec<Vec<u16>> = (0..chunks)
                    .into_par_iter()
                    .map(|i| {
                        let mut part = Vec::with_capacity(4 * CHUNK_WORDS + 1);
                        scan(i, &mut part);
                        part
                    })
                    .collect();
                for part in &mut parts {
                    hand(part);
                }
            }
            self.rng.set_word_pos(start + words as u64);
        }
    }

    /// `len` independent uniform pairs `(s, z)` in `Z_p^* x Z_p`, packed as `s + 256 z`
    /// (PrivateCompare's multipliers and shares of zero), from 16-bit draws: `u` below the
    /// largest multiple of `(p - 1) p` under 2^16 gives `s = 1 + u mod (p - 1)` and
    /// `z = (u div (p - 1)) mod p`, both exactly uniform and independent.
    pub fn nonzero_and_uniform(&mut self, field: PrimeField, len: usize) -> Vec<u16> {
        static RULES: RuleCache = [const { OnceLock::new() }; 256];
        let p = u32::from(field.modulus());
        let mut v = Vec::new();
        // A single pass's entries (the usual case: a few thousand draws) are taken, not
        // copied.
        self.rule_draws(len, cached_rule(&RULES, field, p - 1, 1), |draws| {
            if v.is_empty() {
                std::mem::swap(&mut v, draws);
            } else {
                v.extend_from_slice(draws);
            }
        });
        v
    }

    /// A tensor of `shape` of uniform bits (0 or 1).
    ///
    /// Errors: as [`ring`](Self::ring).
    pub fn bits(&mut self, shape: &[usize]) -> Result<ArrayD<u8>> {
        let n = checked_len("prg bits", shape)?;
        let mut v = vec![0u8; n];
        let words = self.words(n.div_ceil(64));
        for (chunk, &w) in v.chunks_mut(64).zip(&words) {
            for (i, b) in chunk.iter_mut().enumerate() {
                *b = ((w >> i) & 1) as u8;
            }
        }
        to_array(shape, v)
    }
}

/// `out` as memory to write words into (each stays initialised: only words are written).
fn as_uninit(out: &mut [u64]) -> &mut [MaybeUninit<u64>] {
    // SAFETY: `MaybeUninit<u64>` has the layout of `u64`, and every caller writes only
    // initialised words through the result, so `out` stays initialised.
    unsafe { &mut *(out as *mut [u64] as *mut [MaybeUninit<u64>]) }
}

/// Draw rules, built on first use: one per prime.
type RuleCache = [OnceLock<DrawRule>; 256];

/// The rule of `cache` for `field`: a draw `u` below the largest multiple of `d p` under
/// 2^16 gives `add + u mod d` and `(u div d) mod p`, both exactly uniform and independent;
/// any other draw is rejected.
fn cached_rule(
    cache: &'static RuleCache,
    field: PrimeField,
    d: u32,
    add: u32,
) -> &'static DrawRule {
    cache[usize::from(field.modulus())].get_or_init(|| {
        let p = u32::from(field.modulus());
        DrawRule::new((1 << 16) / (d * p) * (d * p), d, p, add)
    })
}

/// The 16-bit draws of [`Prg::field`] for Z_p: two elements `u mod p` and `(u div p) mod p`
/// (packed low, high) from each draw below the largest multiple of `p^2`. For p = 67, 96% of
/// draws are accepted: about 1.04 random bytes per element.
fn pair_rule(field: PrimeField) -> &'static DrawRule {
    static RULES: RuleCache = [const { OnceLock::new() }; 256];
    cached_rule(&RULES, field, u32::from(field.modulus()), 0)
}

fn to_array<T>(shape: &[usize], v: Vec<T>) -> Result<ArrayD<T>> {
    ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| OpsError::InvalidArgument {
        op: "prg",
        message: e.to_string(),
    })
}

/// One-shot: a tensor of `shape` uniform in Z_2^64 from `seed` in `domain` (the first draw of
/// [`Prg::new`]`(seed, domain)`).
///
/// Errors: as [`Prg::ring`].
pub fn expand_ring(seed: &Seed, domain: Domain, shape: &[usize]) -> Result<ArrayD<u64>> {
    Prg::new(seed, domain).ring(shape)
}

#[cfg(test)]
mod tests;

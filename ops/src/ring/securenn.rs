//! Local kernels of SecureNN's comparison protocols (Wagh, Gupta, Chandran, PoPETs 2019):
//! wraps and bits of words, one server's masked and rotated shares of PrivateCompare, and the
//! helper's search for a zero.
//!
//! Words are `u64` of Z_2^64 or canonical elements of Z_{2^64-1} (the same functions serve
//! both); bits and Z_p elements are `u8`. Bit axes are trailing, of length 64, least
//! significant bit first, as [`super::bit_decompose`].

use ndarray::{ArrayD, ArrayRefD, CowArray, IxDyn, Zip};
use rayon::prelude::*;

use super::arith::{map_with, zip_with, PAR_THRESHOLD};
use super::bits::WORD_BITS;
use super::field::{PrimeField, Reduce16};
use super::odd::odd_sub_words;
use super::shape::contiguous;
use crate::prg::Prg;
use crate::{OpsError, Result};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

fn invalid(op: &'static str, message: String) -> OpsError {
    OpsError::InvalidArgument { op, message }
}

fn same_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<()> {
    if a != b {
        return Err(OpsError::ShapeMismatch {
            op,
            left: a.to_vec(),
            right: b.to_vec(),
        });
    }
    Ok(())
}

/// `wrap(a, b)`: 1 where `a + b >= 2^64` as natural numbers (the carry of the 64-bit sum),
/// else 0; broadcasting as [`super::add`].
pub fn wrap(a: &ArrayRefD<u64>, b: &ArrayRefD<u64>) -> Result<ArrayD<u8>> {
    let carries = zip_with("wrap", a, b, |x, y| u64::from(x.overflowing_add(y).1))?;
    Ok(carries.mapv(|c| c as u8))
}

/// The least significant bit of every word.
pub fn lsb(x: &ArrayRefD<u64>) -> ArrayD<u8> {
    map_with(x, |w| (w & 1) as u8)
}

/// 1 where the word is 0, else 0.
pub fn is_zero(x: &ArrayRefD<u64>) -> ArrayD<u8> {
    map_with(x, |w| u8::from(w == 0))
}

/// Bits (the lowest bit of every `u8`) as words 0 or 1.
pub fn bits_to_words(bits: &ArrayRefD<u8>) -> ArrayD<u64> {
    map_with(bits, |b| u64::from(b & 1))
}

/// Shares of `x XOR b` from a share `s` of a bit `x` and a public bit `b` known to both
/// servers: `s + add * b - 2 b s`, i.e. `s` where `b = 0` and `add - s` where `b = 1`. Exactly
/// one server passes `add = true`. In Z_{2^64-1} when `odd` (shares canonical), else Z_2^64.
///
/// Errors: [`OpsError::ShapeMismatch`] if the shapes differ.
pub fn xor_public_bit(
    share: &ArrayRefD<u64>,
    bit: &ArrayRefD<u8>,
    add: bool,
    odd: bool,
) -> Result<ArrayD<u64>> {
    same_shape("xor_public_bit", share.shape(), bit.shape())?;
    let one = u64::from(add);
    let flip = move |s: u64| match odd {
        true => odd_sub_words(one, s),
        false => one.wrapping_sub(s),
    };
    Ok(Zip::from(share)
        .and(bit)
        .map_collect(|&s, &b| if b & 1 == 1 { flip(s) } else { s }))
}

/// Shares of `(b XOR bit) * v` from a share `w` of `bit * v`, a public bit `b` and a share of
/// `v`: `w` where `b = 0` and `v - w` where `b = 1` (Z_2^64, same shapes). With `v` shares of
/// 1 this is [`xor_public_bit`].
///
/// Errors: [`OpsError::ShapeMismatch`] if the shapes differ.
pub fn xor_public_bit_times(
    w: &ArrayRefD<u64>,
    bit: &ArrayRefD<u8>,
    v: &ArrayRefD<u64>,
) -> Result<ArrayD<u64>> {
    same_shape("xor_public_bit_times", w.shape(), bit.shape())?;
    same_shape("xor_public_bit_times", w.shape(), v.shape())?;
    Ok(Zip::from(w)
        .and(bit)
        .and(v)
        .map_collect(|&w, &b, &v| if b & 1 == 1 { v.wrapping_sub(w) } else { w }))
}

/// Steps 1-14 of PrivateCompare (Algorithm 3) for server `party` (the paper's `j`) in one pass
/// over each word, comparing the lowest `n` bits of the words: its shares `c_i` over Z_p of
/// the `n` values whose reconstruction has a zero exactly when `beta XOR (x > r)` is 1, each
/// times a uniform nonzero `s_i` of Z_p, plus `z_i` (server 0) or minus `z_i` (server 1) for
/// uniform `z_i`, the word's lane rotated by a uniform `k`: `{d_i}_j = rot_k({s_i c_i}_j +-
/// z_i)`, what it sends P2.
///
/// - `x_bits` `[.., n]` (`n` from 1 to 64): this server's shares over Z_p of the bits of `x`;
/// - `r` `[..]`: the public word (known to both servers), read mod `2^n`;
/// - `beta` `[..]`: the public random bit;
/// - `common`: the servers' common generator, so both servers draw the same: every `k` from
///   it, then per block of whole words (about `4096 / n` of them, a multiple of 8: the unit
///   of parallel work, [`block_words`]) from
///   the block's [`Prg::substream`], the block's `(s_i, z_i)` and then, in word order, the
///   `u_i` in Z_p of its words where `beta = 1` and `r = 2^n - 1`. Drawn per block, the
///   masks stay in the cache of the thread that uses them (drawn for the whole tensor first,
///   they were 2 bytes per lane written to memory, copied once and read back).
///
/// Why these masks: P2 dealt the shares of `x`'s bits, so without the `z_i` the ratio of the
/// two servers' `s_i c_i` would tell it `c_i`'s parts that depend on `r`. With them each
/// server's `d` is uniform and only the sum means something. In the sum, at most one `c_i` is
/// 0 and the others become independent uniform nonzero elements once multiplied by the
/// `s_i`, so all a permutation has to hide is where the zero is, which a uniform rotation
/// does as well as the paper's uniform permutation (at one random word per word instead of
/// one per bit).
///
/// Errors: [`OpsError::ShapeMismatch`] if the shapes do not fit; [`OpsError::InvalidArgument`]
/// if `party` is not 0 or 1 or the last axis is not 1 to 64 long.
pub fn private_compare_masked(
    field: PrimeField,
    party: u8,
    x_bits: &ArrayRefD<u8>,
    r: &ArrayRefD<u64>,
    beta: &ArrayRefD<u8>,
    common: &mut Prg,
) -> Result<ArrayD<u8>> {
    let args = CompareArgs::new("private_compare_masked", party, x_bits, r, beta)?;
    let out = masked_blocks(field, &args, common, None)?;
    args.into_array("private_compare_masked", out)
}

/// [`private_compare_masked`]'s elements packed in the field's bits ([`PrimeField::bits`]),
/// least significant first, as [`super::pack_small`] packs them: what the server sends,
/// written block by block from the cache without the unpacked tensor. The same draws, so the
/// same elements.
///
/// Errors: as [`private_compare_masked`].
pub fn private_compare_packed(
    field: PrimeField,
    party: u8,
    x_bits: &ArrayRefD<u8>,
    r: &ArrayRefD<u64>,
    beta: &ArrayRefD<u8>,
    common: &mut Prg,
) -> Result<Vec<u8>> {
    let args = CompareArgs::new("private_compare_packed", party, x_bits, r, beta)?;
    masked_blocks(field, &args, common, Some(field.bits()))
}

/// Words per block of [`private_compare_masked`] (the unit of parallel work and of the
/// draws): about 4096 lanes, a multiple of 8 words so that a block of lanes packed in any
/// width is whole bytes.
fn block_words(n: usize) -> usize {
    (4096 / n.max(1) / 8 * 8).max(8)
}

/// The masked, rotated shares of every word of `args`, unpacked (`bits` `None`) or packed.
fn masked_blocks(
    field: PrimeField,
    args: &CompareArgs<'_>,
    common: &mut Prg,
    bits: Option<u32>,
) -> Result<Vec<u8>> {
    let n = args.n;
    let party = args.party;
    let mut rot = vec![0u64; args.r.len()];
    common.fill_u64(&mut rot);
    let common = &*common;
    // Blocks of whole words, so that word `b * words + w` has lane `w` of block `b`.
    let words = block_words(n);
    let avx2 = has_avx2();
    let reduce16 = field.reduce16();
    #[cfg(target_arch = "x86_64")]
    let avx512 = reduce16.filter(|_| avx512::available());
    #[cfg(not(target_arch = "x86_64"))]
    let avx512 = None;
    let fill = |b: usize, chunk: &mut [u8]| -> Result<()> {
        let mut draws = common.substream(b as u64);
        // (s_i, z_i) packed as s + 256 z; server 1 subtracts z_i (in `masked_word`).
        let sz = draws.nonzero_and_uniform(field, chunk.len());
        let w = Words {
            args,
            field,
            reduce16,
            first: b * words,
            sz: &sz,
            rot: &rot,
        };
        run_masked_words(&w, chunk, avx2, avx512);
        // Steps 10-11 for the rare words where beta = 1 and r = 2^n - 1, over what the
        // kernel wrote.
        for (k, out) in chunk.chunks_mut(n).enumerate() {
            let i = w.first + k;
            if !args.all_ones(i) {
                continue;
            }
            let u = draws.field(field, &[n])?;
            let sz = &sz[k * n..(k + 1) * n];
            let mut c = [0u8; WORD_BITS];
            args.all_ones_word(field, u.iter().copied(), |j, cj| {
                c[j] = masked_elem(field, party, cj, sz[j]);
            });
            rotate_into(out, &c[..n], rot[i]);
        }
        Ok(())
    };
    let lanes = words * n;
    let (out_len, per_block) = match bits {
        None => (args.len(), lanes),
        Some(bits) => (
            super::packed_small_len(args.len(), bits),
            super::packed_small_len(lanes, bits),
        ),
    };
    let block = |(b, out): (usize, &mut [u8])| -> Result<()> {
        let Some(bits) = bits else {
            return fill(b, out);
        };
        // The block's lanes in the cache, then packed into its whole bytes.
        let mut unpacked = [0u8; 4096];
        let len = lanes.min(args.len() - b * lanes);
        let unpacked = &mut unpacked[..len];
        fill(b, unpacked)?;
        if !super::pack_small_into(unpacked, bits, out) {
            return Err(invalid(
                "private_compare_packed",
                format!("{len} lanes do not pack into {} bytes", out.len()),
            ));
        }
        Ok(())
    };
    let mut out = vec![0u8; out_len];
    if args.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(per_block)
            .enumerate()
            .try_for_each(block)?;
    } else {
        out.chunks_mut(per_block).enumerate().try_for_each(block)?;
    }
    Ok(out)
}

/// `s c + z` (server 0) or `s c - z` (server 1) mod p, with `(s, z)` packed in `e` as
/// `s + 256 z`.
fn masked_elem(field: PrimeField, party: u8, c: u8, e: u16) -> u8 {
    let z = (e >> 8) as u8;
    let z = if party == 1 { field.neg_elem(z) } else { z };
    field.reduce_u16(u16::from(c) * (e & 0xff) + u16::from(z))
}

/// [`masked_words`] on the fastest path the CPU has: AVX-512 (`avx512`: the field's 16-bit
/// reduction, `Some` only where `avx512::available()`), AVX2 (`avx2`: only where
/// [`has_avx2`]; the word-at-a-time kernel of `avx2.rs` for a field with a 16-bit reduction,
/// else the portable loops compiled for AVX2), or portable.
#[inline(always)]
fn run_masked_words(w: &Words<'_, '_>, chunk: &mut [u8], avx2: bool, avx512: Option<Reduce16>) {
    #[cfg(target_arch = "x86_64")]
    if let Some(r) = avx512 {
        // SAFETY: AVX-512F, BW and VBMI were detected at run time.
        return unsafe { avx512::masked_words(w, r, chunk) };
    }
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        if let Some(r) = w.reduce16 {
            // SAFETY: AVX2 was detected at run time.
            return unsafe { avx2::masked_words(w, r, chunk) };
        }
        // SAFETY: AVX2 was detected at run time.
        return unsafe { masked_words_avx2(w, chunk) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (avx2, avx512);
    masked_words(w, chunk)
}

/// Consecutive words of [`private_compare_masked`] from `first`, with their masks (`sz`,
/// from the first of them) and the rotations of all words.
struct Words<'a, 'b> {
    args: &'a CompareArgs<'b>,
    field: PrimeField,
    /// The field's 16-bit reduction, if it has one.
    reduce16: Option<Reduce16>,
    first: usize,
    sz: &'a [u16],
    rot: &'a [u64],
}

/// [`CompareArgs::masked_word`] for the words of `chunk` (whole lanes), from `w.first`.
#[inline(always)]
fn masked_words(w: &Words<'_, '_>, chunk: &mut [u8]) {
    let n = w.args.n;
    for (k, out) in chunk.chunks_mut(n).enumerate() {
        let i = w.first + k;
        let (sz, rot) = (&w.sz[k * n..(k + 1) * n], w.rot[i]);
        match w.reduce16 {
            Some(r) => w
                .args
                .masked_word(w.field, i, sz, rot, out, |v| r.reduce(v)),
            None => w
                .args
                .masked_word(w.field, i, sz, rot, out, |v| w.field.reduce_u16(v)),
        }
    }
}

/// [`masked_words`] compiled for AVX2 (16 bits per lane of a 256-bit register).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn masked_words_avx2(w: &Words<'_, '_>, chunk: &mut [u8]) {
    masked_words(w, chunk)
}

/// Whether the CPU runs the AVX2 kernels (those of `avx2.rs`, [`masked_words_avx2`]).
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Writes `c` rotated by `k` (uniform in `[0, n)` from the random word `rot`, within 2^-58 of
/// uniform) into `out`: `c[i]` goes to `(i + k) mod n`.
fn rotate_into(out: &mut [u8], c: &[u8], rot: u64) {
    let n = c.len();
    let k = ((u128::from(rot) * n as u128) >> 64) as usize;
    out[k..].copy_from_slice(&c[..n - k]);
    out[..k].copy_from_slice(&c[n - k..]);
}

/// The checked operands of [`private_compare_masked`].
struct CompareArgs<'a> {
    party: u8,
    /// Bits per word.
    n: usize,
    /// All ones in the low `n` bits.
    mask: u64,
    lanes: Vec<usize>,
    /// The bit shares, contiguous.
    x: CowArray<'a, u8, IxDyn>,
    /// The public words, mod `2^n`.
    r: Vec<u64>,
    beta: Vec<bool>,
}

impl<'a> CompareArgs<'a> {
    fn new(
        op: &'static str,
        party: u8,
        x_bits: &'a ArrayRefD<u8>,
        r: &ArrayRefD<u64>,
        beta: &ArrayRefD<u8>,
    ) -> Result<Self> {
        if party > 1 {
            return Err(invalid(op, format!("party {party} is not 0 or 1")));
        }
        let n = x_bits.shape().last().copied().unwrap_or(0);
        if !(1..=WORD_BITS).contains(&n) {
            return Err(invalid(
                op,
                format!("a last axis of {n} bits (1 to {WORD_BITS} expected)"),
            ));
        }
        let mask = u64::MAX >> (WORD_BITS - n);
        let mut lanes = r.shape().to_vec();
        lanes.push(n);
        same_shape(op, x_bits.shape(), &lanes)?;
        same_shape(op, beta.shape(), r.shape())?;
        Ok(CompareArgs {
            party,
            n,
            mask,
            lanes,
            x: x_bits.as_standard_layout(),
            r: contiguous(r).iter().map(|w| w & mask).collect(),
            beta: contiguous(beta).iter().map(|b| b & 1 == 1).collect(),
        })
    }

    /// Elements of the bit shares.
    fn len(&self) -> usize {
        self.x.len()
    }

    /// Steps 1-9 for word `i`, which does not take steps 10-11 (`r + 1 < 2^n` where
    /// `beta = 1`): `emit(i, c_i)` for every bit `i`. The paper's bit `i` in `1..=l` is index
    /// `i - 1` here; its loop runs from the most significant bit down.
    ///
    /// In plain integers, reduced once per output: with `x[i]` any byte and `j`, `s[i]` bits,
    /// `|w_i| < 256` and `|sum| < 64 * 256`, so adding [`OFFSET`] (a multiple of p) keeps
    /// every `c_i` positive and below 2^16, the range of [`PrimeField::reduce_u16`].
    ///
    /// One bit at a time: the tests' oracle of [`masked_word`](Self::masked_word).
    #[cfg(test)]
    fn compare(&self, f: PrimeField, i: usize, mut emit: impl FnMut(usize, u8)) {
        let n = self.n;
        // Standard layout, so a slice: an empty one cannot happen.
        let x = self
            .x
            .as_slice()
            .map_or(&[][..], |x| &x[i * n..(i + 1) * n]);
        let offset = i32::from(f.modulus()) * (i32::from(OFFSET) / i32::from(f.modulus()) + 1);
        let j = i32::from(self.party);
        let beta = self.beta[i];
        // Step 6 subtracts x[i] (beta = 0), step 9 adds it (beta = 1).
        let sign = if beta { -1 } else { 1 };
        // Step 1: t = r + 1 mod 2^l. Step 4 (beta = 0) compares with r, step 7 (beta = 1)
        // with t.
        let s = if beta {
            self.r[i].wrapping_add(1)
        } else {
            self.r[i]
        };
        let mut w_sum = 0i32; // sum over k > i of w_k
        for (k, &xk) in x.iter().enumerate().rev() {
            let xk = i32::from(xk);
            let sk = ((s >> k) & 1) as i32;
            // Steps 5 and 8: w_i = x[i] + j s[i] - 2 s[i] x[i] (shares of x[i] XOR s[i]).
            let w = xk + sk * (j - 2 * xk);
            // Step 6: c_i = j r[i] - x[i] + j + sum; step 9: c_i = -j t[i] + x[i] + j + sum.
            let diff = sign * (j * sk - xk);
            emit(k, f.reduce_u16((diff + j + w_sum + offset) as u16));
            w_sum += w;
        }
    }

    /// Steps 1-9 and 14 of word `i` (see [`private_compare_masked`]) into its lane `out`: the
    /// `c_k` of [`compare`](Self::compare) masked as `s_k c_k + z_k` (server 0) or
    /// `s_k c_k - z_k` (server 1) with `(s_k, z_k)` packed in `sz[k]` as `s + 256 z`, then
    /// rotated by `rot`. The same values as `compare` and the mask one bit at a time, in
    /// passes over the bits that vectorise but one: the sum of the `w_k` above each bit, a
    /// running sum (one add per bit). `compare`'s integers lie in `0..2^16`, so wrapping
    /// 16-bit arithmetic gives them exactly; `reduce` is `n mod p` of a 16-bit `n` (the
    /// field's [`Reduce16`] where it has one, which vectorises on 16-bit lanes).
    #[inline(always)]
    fn masked_word(
        &self,
        f: PrimeField,
        i: usize,
        sz: &[u16],
        rot: u64,
        out: &mut [u8],
        reduce: impl Fn(u16) -> u8,
    ) {
        let n = self.n;
        let x = self
            .x
            .as_slice()
            .map_or(&[][..], |x| &x[i * n..(i + 1) * n]);
        let (x, sz) = (&x[..n], &sz[..n]);
        let p = u16::from(f.modulus());
        let offset = p * (OFFSET / p + 1);
        let j = u16::from(self.party);
        let beta = self.beta[i];
        let s = if beta {
            self.r[i].wrapping_add(1)
        } else {
            self.r[i]
        };
        // Pass 1: the bits of s (step 1: t = r + 1 where beta = 1), then per bit
        // w_k = x_k + s_k (j - 2 x_k) (steps 5 and 8) and c_k + offset without the sum:
        // j s_k - x_k + j (step 6, beta = 0) or x_k - j s_k + j (step 9, beta = 1).
        let mut sb = [0u16; WORD_BITS];
        for (k, b) in sb[..n].iter_mut().enumerate() {
            *b = ((s >> k) & 1) as u16;
        }
        let mut w = [0u16; WORD_BITS];
        let mut t = [0u16; WORD_BITS];
        for (((&xk, &sk), wk), tk) in x.iter().zip(&sb[..n]).zip(&mut w[..n]).zip(&mut t[..n]) {
            let xk = u16::from(xk);
            *wk = xk.wrapping_add(sk.wrapping_mul(j.wrapping_sub(2 * xk)));
            let d = (j * sk).wrapping_sub(xk);
            let d = if beta { d.wrapping_neg() } else { d };
            *tk = d.wrapping_add(j + offset);
        }
        // Pass 2, from the most significant bit down: add the sum of w over the higher bits.
        let mut above = 0u16;
        for (tk, &wk) in t[..n].iter_mut().zip(&w[..n]).rev() {
            *tk = tk.wrapping_add(above);
            above = above.wrapping_add(wk);
        }
        // Pass 3: c_k = t_k mod p, then s_k c_k +- z_k mod p (server 1 adds p - z_k, which is
        // -z_k mod p: z_k < p). Every sum stays below 2^16.
        let neg = self.party == 1;
        let mut c = [0u8; WORD_BITS];
        for ((ck, &tk), &e) in c[..n].iter_mut().zip(&t[..n]).zip(sz) {
            let z = e >> 8;
            let z = if neg { p - z } else { z };
            *ck = reduce(u16::from(reduce(tk)) * (e & 0xff) + z);
        }
        rotate_into(out, &c[..n], rot);
    }

    /// Whether word `i` takes steps 10-11 (`beta = 1` and `r = 2^n - 1`).
    fn all_ones(&self, i: usize) -> bool {
        self.beta[i] && self.r[i] == self.mask
    }

    /// Steps 10-11, where beta = 1 and r = 2^n - 1: shares of 1 for every bit but the lowest
    /// and of 0 for the lowest (exactly one zero, as `x > 2^n - 1` is false for every x):
    /// P0 holds u_i + 1 (u_1 for the lowest), P1 holds -u_i; `emit(i, c_i)`.
    fn all_ones_word(
        &self,
        field: PrimeField,
        u: impl Iterator<Item = u8>,
        mut emit: impl FnMut(usize, u8),
    ) {
        for (k, uk) in u.take(self.n).enumerate() {
            emit(
                k,
                match (k, self.party) {
                    (0, 0) => uk,
                    (_, 0) => field.add_elems(uk, 1),
                    _ => field.neg_elem(uk),
                },
            );
        }
    }

    fn into_array(self, op: &'static str, c: Vec<u8>) -> Result<ArrayD<u8>> {
        ArrayD::from_shape_vec(IxDyn(&self.lanes), c).map_err(|e| invalid(op, e.to_string()))
    }
}

/// A bound on `-(c_i - offset)` in [`CompareArgs::compare`]: `|diff| + |sum| <= 255 + 64 * 255`.
const OFFSET: u16 = 255 + 64 * 255;

/// 1 for every lane of the last axis that holds a 0, else 0; the last axis is removed.
///
/// Errors: [`OpsError::InvalidArgument`] for a scalar.
pub fn any_zero(x: &ArrayRefD<u8>) -> Result<ArrayD<u8>> {
    let Some(last) = x.ndim().checked_sub(1) else {
        return Err(invalid("any_zero", "a scalar has no last axis".into()));
    };
    Ok(x.map_axis(ndarray::Axis(last), |lane| {
        u8::from(lane.iter().any(|&v| v == 0))
    }))
}

/// For every lane of the last axis of two servers' shares over Z_p: 1 if some
/// `a_i + b_i = 0 mod p`, else 0 (PrivateCompare's steps 15-16 in one pass); the axis is
/// removed.
///
/// Errors: [`OpsError::ShapeMismatch`] if the shapes differ, [`OpsError::InvalidArgument`] for
/// scalars.
pub fn any_zero_sum(field: PrimeField, a: &ArrayRefD<u8>, b: &ArrayRefD<u8>) -> Result<ArrayD<u8>> {
    same_shape("any_zero_sum", a.shape(), b.shape())?;
    let Some((&n, outer)) = a.shape().split_last() else {
        return Err(invalid("any_zero_sum", "a scalar has no last axis".into()));
    };
    let (a, b) = (a.as_standard_layout(), b.as_standard_layout());
    let (Some(a), Some(b)) = (a.as_slice(), b.as_slice()) else {
        return Err(invalid(
            "any_zero_sum",
            "operands are not contiguous".into(),
        ));
    };
    let mut out = vec![0u8; outer.iter().product()];
    // Blocks of whole lanes (none where the last axis is empty).
    if let Some(words) = 4096usize.checked_div(n) {
        let words = words.max(1);
        let block =
            |(o, (a, b)): (&mut [u8], (&[u8], &[u8]))| any_zero_sum_block(field, n, a, b, o);
        if a.len() >= PAR_THRESHOLD {
            out.par_chunks_mut(words)
                .zip(a.par_chunks(words * n).zip(b.par_chunks(words * n)))
                .for_each(block);
        } else {
            out.chunks_mut(words)
                .zip(a.chunks(words * n).zip(b.chunks(words * n)))
                .for_each(block);
        }
    }
    ArrayD::from_shape_vec(IxDyn(outer), out).map_err(|e| invalid("any_zero_sum", e.to_string()))
}

/// [`any_zero_sum`] of `words` words of `n` lanes (`n` from 1 to 64) whose shares come packed
/// in the field's bits ([`private_compare_packed`]), as the servers send them: each block's
/// lanes are unpacked in the cache, never as whole tensors.
///
/// Errors: [`OpsError::InvalidArgument`] if `n` is out of range, or if either operand is not
/// exactly the packed length of `words * n` lanes.
pub fn any_zero_sum_packed(
    field: PrimeField,
    n: usize,
    a: &[u8],
    b: &[u8],
    words: usize,
) -> Result<Vec<u8>> {
    let op = "any_zero_sum_packed";
    let bits = field.bits();
    if !(1..=WORD_BITS).contains(&n) {
        return Err(invalid(
            op,
            format!("{n} lanes per word (1 to {WORD_BITS})"),
        ));
    }
    let lanes = words
        .checked_mul(n)
        .ok_or_else(|| invalid(op, format!("{words} words of {n} lanes")))?;
    let want = super::packed_small_len(lanes, bits);
    if a.len() != want || b.len() != want {
        return Err(invalid(
            op,
            format!(
                "{} and {} bytes for {words} words of {n} lanes of {bits} bits ({want} expected)",
                a.len(),
                b.len()
            ),
        ));
    }
    // Blocks of a multiple of 8 words: whole bytes packed.
    let per_block = block_words(n);
    let packed = super::packed_small_len(per_block * n, bits);
    let block = |(o, (a, b)): (&mut [u8], (&[u8], &[u8]))| -> Result<()> {
        let (mut ua, mut ub) = ([0u8; 4096], [0u8; 4096]);
        let len = o.len() * n;
        let (ua, ub) = (&mut ua[..len], &mut ub[..len]);
        if !(super::unpack_small_into(a, bits, ua) && super::unpack_small_into(b, bits, ub)) {
            return Err(invalid(op, format!("a block of {len} lanes is not whole")));
        }
        any_zero_sum_block(field, n, ua, ub, o);
        Ok(())
    };
    let mut out = vec![0u8; words];
    if lanes >= PAR_THRESHOLD {
        out.par_chunks_mut(per_block)
            .zip(a.par_chunks(packed).zip(b.par_chunks(packed)))
            .try_for_each(block)?;
    } else {
        out.chunks_mut(per_block)
            .zip(a.chunks(packed).zip(b.chunks(packed)))
            .try_for_each(block)?;
    }
    Ok(out)
}

/// One block of [`any_zero_sum`]: `out[k]` for the `n` lanes of word `k` of `a` and `b` (on
/// AVX-512 or AVX2 a word at a time).
fn any_zero_sum_block(field: PrimeField, n: usize, a: &[u8], b: &[u8], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if n <= WORD_BITS && avx512::available() {
        // SAFETY: AVX-512 was detected at run time.
        return unsafe { avx512::any_zero_sum_words(field.modulus(), n, a, b, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if n <= WORD_BITS && has_avx2() {
        // SAFETY: AVX2 was detected at run time.
        return unsafe { avx2::any_zero_sum_words(field.modulus(), n, a, b, out) };
    }
    // Canonical shares: a sum of 0 mod p is 0 or p.
    let p = u16::from(field.modulus());
    for (o, (x, y)) in out.iter_mut().zip(a.chunks(n).zip(b.chunks(n))) {
        *o = u8::from(x.iter().zip(y).any(|(&u, &v)| {
            let t = u16::from(u) + u16::from(v);
            t == 0 || t == p
        }));
    }
}

/// The bits of every byte value, least significant first, a byte each.
const BYTE_BITS: [[u8; 8]; 256] = {
    let mut table = [[0u8; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let mut i = 0;
        while i < 8 {
            table[b][i] = ((b >> i) & 1) as u8;
            i += 1;
        }
        b += 1;
    }
    table
};

/// The lowest `n` bits of every word (`r` has shape `[.., n]`) minus `r` mod p: the share of
/// those bits that the helper sends when the other share is `r` (bit decomposition and
/// subtraction in one pass).
///
/// Errors: [`OpsError::ShapeMismatch`] if `r` is not `x`'s shape plus a last axis of at most
/// 64.
pub fn bits_minus(field: PrimeField, x: &ArrayRefD<u64>, r: &ArrayRefD<u8>) -> Result<ArrayD<u8>> {
    let n = r.shape().last().copied().unwrap_or(0);
    let mut lanes = x.shape().to_vec();
    lanes.push(n);
    if n > WORD_BITS {
        return Err(invalid("bits_minus", format!("{n} bits in a word")));
    }
    same_shape("bits_minus", r.shape(), &lanes)?;
    let x = x.as_standard_layout();
    let r = r.as_standard_layout();
    let (Some(x), Some(r)) = (x.as_slice(), r.as_slice()) else {
        return Err(invalid("bits_minus", "operands are not contiguous".into()));
    };
    let mut out = vec![0u8; r.len()];
    let p = u16::from(field.modulus());
    let lane = |((o, r), &w): ((&mut [u8], &[u8]), &u64)| {
        // The word's bits a byte each, eight at a time from a table, then one pass that
        // vectorises: `bit + p - r` is at most `p + 1`, so one subtraction reduces it.
        let mut bits = [0u8; 64];
        for (k, eight) in bits.chunks_exact_mut(8).enumerate() {
            eight.copy_from_slice(&BYTE_BITS[usize::from((w >> (8 * k)) as u8)]);
        }
        for ((o, &ri), &bit) in o.iter_mut().zip(r).zip(&bits) {
            let v = u16::from(bit) + p - u16::from(ri);
            *o = if v >= p { (v - p) as u8 } else { v as u8 };
        }
    };
    #[cfg(target_arch = "x86_64")]
    let avx512 = avx512::available();
    #[cfg(target_arch = "x86_64")]
    let avx2 = has_avx2();
    // Blocks of whole words, on AVX-512 or AVX2 a word at a time.
    let words = (4096 / n.max(1)).max(1);
    let block = |((o, r), x): ((&mut [u8], &[u8]), &[u64])| {
        #[cfg(target_arch = "x86_64")]
        if avx512 {
            // SAFETY: AVX-512 was detected at run time.
            return unsafe { avx512::bits_minus_words(p as u8, n, x, r, o) };
        }
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: AVX2 was detected at run time.
            return unsafe { avx2::bits_minus_words(p as u8, n, x, r, o) };
        }
        o.chunks_mut(n).zip(r.chunks(n)).zip(x).for_each(lane);
    };
    if n > 0 {
        if out.len() >= PAR_THRESHOLD {
            out.par_chunks_mut(words * n)
                .zip(r.par_chunks(words * n))
                .zip(x.par_chunks(words))
                .for_each(block);
        } else {
            out.chunks_mut(words * n)
                .zip(r.chunks(words * n))
                .zip(x.chunks(words))
                .for_each(block);
        }
    }
    ArrayD::from_shape_vec(IxDyn(&lanes), out).map_err(|e| invalid("bits_minus", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prg::Domain;
    use crate::ring::bit_decompose;
    use ndarray::{arr1, arr2};

    /// Steps 1-13 of PrivateCompare for server `party` without the masks: its shares `c_i`
    /// (the oracle of the masked kernel).
    fn compare_bits(
        field: PrimeField,
        party: u8,
        x_bits: &ArrayRefD<u8>,
        r: &ArrayRefD<u64>,
        beta: &ArrayRefD<u8>,
        common: &mut Prg,
    ) -> Result<ArrayD<u8>> {
        let args = CompareArgs::new("compare_bits", party, x_bits, r, beta)?;
        let n = args.n;
        let mut c = vec![0u8; args.len()];
        for (i, out) in c.chunks_mut(n).enumerate() {
            if args.all_ones(i) {
                let u = common.field(field, &[n])?;
                args.all_ones_word(field, u.iter().copied(), |k, ck| out[k] = ck);
            } else {
                args.compare(field, i, |k, ck| out[k] = ck);
            }
        }
        args.into_array("compare_bits", c)
    }

    /// The masked kernel equals the one-bit-at-a-time oracle, masked and rotated: the same
    /// draws of the common generator, the same output bytes, for both servers, any byte as a
    /// share (not only canonical ones), the all-ones words of steps 10-11 included, on both
    /// the serial and the parallel path.
    #[test]
    fn masked_words_equal_the_oracle_bit_for_bit() {
        let f = PrimeField::new(67).unwrap();
        for (n, words) in [(1usize, 40usize), (17, 300), (63, 700), (64, 900)] {
            let mask = u64::MAX >> (64 - n);
            let mut g = Prg::new(&[7; 32], Domain::new(1, n as u64, 0));
            let x = ArrayD::from_shape_fn(IxDyn(&[words, n]), |_| g.next_u64() as u8);
            let r = ArrayD::from_shape_fn(IxDyn(&[words]), |i| match i[0] % 5 {
                0 => mask,
                _ => g.next_u64(),
            });
            let beta = ArrayD::from_shape_fn(IxDyn(&[words]), |_| (g.next_u64() & 1) as u8);
            for party in [0u8, 1] {
                let common = || Prg::new(&[8; 32], Domain::new(1, 2, 3));
                let got = private_compare_masked(f, party, &x, &r, &beta, &mut common()).unwrap();
                // The oracle: every rotation, then per block of `block_words(n)` words from the
                // block's substream every (s, z) and the all-ones words' draws.
                let mut g = common();
                let mut rot = vec![0u64; words];
                g.fill_u64(&mut rot);
                let per_block = block_words(n);
                let mut blocks: Vec<Prg> = (0..words.div_ceil(per_block))
                    .map(|b| g.substream(b as u64))
                    .collect();
                let sz: Vec<u16> = (0..words)
                    .step_by(per_block)
                    .zip(&mut blocks)
                    .flat_map(|(first, d)| {
                        d.nonzero_and_uniform(f, (words - first).min(per_block) * n)
                    })
                    .collect();
                let args = CompareArgs::new("oracle", party, &x, &r, &beta).unwrap();
                let mut want = vec![0u8; words * n];
                for (i, out) in want.chunks_mut(n).enumerate() {
                    let mut c = [0u8; WORD_BITS];
                    if args.all_ones(i) {
                        let u = blocks[i / per_block].field(f, &[n]).unwrap();
                        args.all_ones_word(f, u.iter().copied(), |k, ck| c[k] = ck);
                    } else {
                        args.compare(f, i, |k, ck| c[k] = ck);
                    }
                    for (k, ck) in c[..n].iter_mut().enumerate() {
                        let (s, z) = ((sz[i * n + k] & 0xff) as u8, (sz[i * n + k] >> 8) as u8);
                        let z = if party == 1 { f.neg_elem(z) } else { z };
                        *ck = f.add_elems(f.mul_elems(*ck, s), z);
                    }
                    rotate_into(out, &c[..n], rot[i]);
                }
                assert_eq!(got.as_slice().unwrap(), &want[..], "n={n} party={party}");
            }
        }
    }

    /// The helper's kernels equal their definitions one bit at a time, for every width, any
    /// bytes as shares (not only canonical ones), fields below and above 128, on the serial
    /// and the parallel path (and so on AVX-512 where the CPU has it).
    /// The packed kernels are the unpacked ones followed by `pack_small` (the server's) and
    /// preceded by `unpack_small` (the helper's), for widths 1 to 64, both servers, on the
    /// serial and the parallel path, word counts that are not whole blocks, and fields of 2
    /// to 8 bits; wrong lengths are refused.
    #[test]
    fn the_packed_kernels_equal_pack_and_unpack() {
        for p in [3u8, 53, 67, 131] {
            let f = PrimeField::new(p).unwrap();
            let bits = f.bits();
            for (n, words) in [
                (1usize, 9usize),
                (7, 1001),
                (47, 3000),
                (48, 23),
                (63, 5000),
                (64, 70),
            ] {
                let mut g = Prg::new(&[9; 32], Domain::new(4, n as u64, u32::from(p)));
                let x = g.field(f, &[words, n]).unwrap();
                let r = ArrayD::from_shape_fn(IxDyn(&[words]), |i| match i[0] % 7 {
                    0 => u64::MAX,
                    _ => g.next_u64(),
                });
                let beta = ArrayD::from_shape_fn(IxDyn(&[words]), |_| (g.next_u64() & 1) as u8);
                let mut sent = Vec::new();
                for party in [0u8, 1] {
                    let common = || Prg::new(&[2; 32], Domain::new(5, 6, 7));
                    let plain =
                        private_compare_masked(f, party, &x, &r, &beta, &mut common()).unwrap();
                    let packed =
                        private_compare_packed(f, party, &x, &r, &beta, &mut common()).unwrap();
                    let want = crate::ring::pack_small(plain.as_slice().unwrap(), bits);
                    assert_eq!(packed, want, "p={p} n={n} words={words} party={party}");
                    sent.push((plain, packed));
                }
                let (a, b) = (&sent[0], &sent[1]);
                let got = any_zero_sum_packed(f, n, &a.1, &b.1, words).unwrap();
                let want = any_zero_sum(f, &a.0, &b.0).unwrap();
                assert_eq!(
                    &got[..],
                    want.as_slice().unwrap(),
                    "p={p} n={n} words={words}"
                );
                assert!(any_zero_sum_packed(f, n, &a.1[1..], &b.1, words).is_err());
                assert!(any_zero_sum_packed(f, n, &a.1, &b.1, words + 8).is_err());
            }
            assert_eq!(
                bits,
                [2, 6, 7, 8][[3, 53, 67, 131].iter().position(|&q| q == p).unwrap()]
            );
        }
    }

    #[test]
    fn bits_minus_and_any_zero_sum_equal_their_definitions() {
        for p in [67u8, 131, 251] {
            let f = PrimeField::new(p).unwrap();
            let pw = u16::from(p);
            for (n, words) in [(1usize, 9usize), (17, 50), (63, 5000), (64, 70)] {
                let mut g = Prg::new(&[4; 32], Domain::new(3, n as u64, u32::from(p)));
                let x = ArrayD::from_shape_fn(IxDyn(&[words]), |_| g.next_u64());
                let bytes = |g: &mut Prg, k: usize| match k % 4 {
                    0 => g.next_u64() as u8,
                    _ => (g.next_u64() % u64::from(p)) as u8,
                };
                let r = ArrayD::from_shape_fn(IxDyn(&[words, n]), |i| bytes(&mut g, i[1]));
                let got = bits_minus(f, &x, &r).unwrap();
                for ((i, k), &v) in (0..words)
                    .flat_map(|i| (0..n).map(move |k| (i, k)))
                    .zip(got.iter())
                {
                    let bit = ((x[i] >> k) & 1) as u16;
                    let t = (bit + pw).wrapping_sub(u16::from(r[[i, k]]));
                    let want = if t >= pw { (t - pw) as u8 } else { t as u8 };
                    assert_eq!(v, want, "bits_minus p={p} n={n} word {i} bit {k}");
                }
                let a = ArrayD::from_shape_fn(IxDyn(&[words, n]), |i| bytes(&mut g, i[1]));
                // Lanes whose sums hit 0 or p now and then.
                let b = ArrayD::from_shape_fn(IxDyn(&[words, n]), |i| match g.next_u64() % 97 {
                    0 => 0u8.wrapping_sub(a[[i[0], i[1]]]),
                    1 => p.wrapping_sub(a[[i[0], i[1]]]),
                    _ => bytes(&mut g, i[1]),
                });
                let got = any_zero_sum(f, &a, &b).unwrap();
                for (i, &v) in got.iter().enumerate() {
                    let want = (0..n).any(|k| {
                        let t = u16::from(a[[i, k]]) + u16::from(b[[i, k]]);
                        t == 0 || t == pw
                    });
                    assert_eq!(v, u8::from(want), "any_zero_sum p={p} n={n} lane {i}");
                }
                assert!(n < 17 || got.iter().any(|&v| v == 1), "p={p} n={n}");
                assert!(got.iter().any(|&v| v == 0), "p={p} n={n}");
            }
        }
    }

    /// The AVX-512 masked words are the portable kernel's bytes (which the oracle test
    /// above does not reach on a CPU that has AVX-512).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx512_and_the_portable_kernels_agree() {
        if !avx512::available() {
            return;
        }
        // SAFETY: `available` was checked above.
        masked_words_agree("AVX-512", |w, r16, out| unsafe {
            avx512::masked_words(w, r16, out)
        });
    }

    /// The AVX2 bit shares and zero search equal their definitions for widths around whole
    /// registers, on blocks whose last word ends the operands (padded loads), for every byte
    /// of `r` and lanes whose sums hit 0 or `p`.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_bit_kernels_equal_their_definitions() {
        if !has_avx2() {
            return;
        }
        for p in [3u8, 67, 251] {
            let pw = u16::from(p);
            for n in [1usize, 7, 8, 17, 31, 32, 33, 48, 63, 64] {
                let words = 37;
                let mut g = Prg::new(&[7; 32], Domain::new(4, n as u64, u32::from(p)));
                let x: Vec<u64> = (0..words).map(|_| g.next_u64()).collect();
                let r: Vec<u8> = (0..words * n).map(|_| g.next_u64() as u8).collect();
                let mut got = vec![0u8; words * n];
                // SAFETY: `has_avx2` was checked above.
                unsafe { avx2::bits_minus_words(p, n, &x, &r, &mut got) };
                for (j, &v) in got.iter().enumerate() {
                    let (i, k) = (j / n, j % n);
                    let bit = ((x[i] >> k) & 1) as u16;
                    let t = (bit + pw).wrapping_sub(u16::from(r[j]));
                    let want = if t >= pw { (t - pw) as u8 } else { t as u8 };
                    assert_eq!(v, want, "bits_minus p={p} n={n} word {i} bit {k}");
                }
                // Shares in Z_p but every fourth any byte.
                let a: Vec<u8> = (0..words * n)
                    .map(|j| match j % 4 {
                        0 => g.next_u64() as u8,
                        _ => (g.next_u64() % u64::from(p)) as u8,
                    })
                    .collect();
                let b: Vec<u8> = (0..words * n)
                    .map(|j| match g.next_u64() % (2 * n as u64) {
                        0 => 0u8.wrapping_sub(a[j]),
                        1 => p.wrapping_sub(a[j]),
                        _ => g.next_u64() as u8,
                    })
                    .collect();
                let mut got = vec![9u8; words];
                // SAFETY: as above.
                unsafe { avx2::any_zero_sum_words(p, n, &a, &b, &mut got) };
                for (i, &v) in got.iter().enumerate() {
                    let want = (0..n).any(|k| {
                        let t = u16::from(a[i * n + k]) + u16::from(b[i * n + k]);
                        t == 0 || t == pw
                    });
                    assert_eq!(v, u8::from(want), "any_zero_sum p={p} n={n} lane {i}");
                }
                if n >= 7 {
                    assert!(got.contains(&0) && got.contains(&1), "p={p} n={n}");
                }
            }
        }
    }

    /// The AVX2 masked words are the portable kernel's bytes.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_and_the_portable_kernels_agree() {
        if !has_avx2() {
            return;
        }
        // SAFETY: `has_avx2` was checked above.
        masked_words_agree("AVX2", |w, r16, out| unsafe {
            avx2::masked_words(w, r16, out)
        });
    }

    /// `fast`'s masked words are the portable kernel's bytes for every width from 1 to 64,
    /// both servers, p = 3, 67 and 251 (the range of the 16-bit reduction), and both the
    /// whole tensor as one block and its last 5 words as a block of their own (whose loads
    /// reach the operands' end).
    #[cfg(target_arch = "x86_64")]
    fn masked_words_agree(kernel: &str, fast: impl Fn(&Words<'_, '_>, Reduce16, &mut [u8])) {
        for p in [3u8, 67, 251] {
            let f = PrimeField::new(p).unwrap();
            let r16 = f.reduce16().unwrap();
            for n in 1..=64usize {
                let words = 37;
                let mut g = Prg::new(&[6; 32], Domain::new(3, n as u64, u32::from(p)));
                let x = ArrayD::from_shape_fn(IxDyn(&[words, n]), |_| g.next_u64() as u8);
                let r = ArrayD::from_shape_fn(IxDyn(&[words]), |_| g.next_u64());
                let beta = ArrayD::from_shape_fn(IxDyn(&[words]), |_| (g.next_u64() & 1) as u8);
                let sz = g.nonzero_and_uniform(f, words * n);
                let rot: Vec<u64> = (0..words).map(|_| g.next_u64()).collect();
                for party in [0u8, 1] {
                    let args = CompareArgs::new("test", party, &x, &r, &beta).unwrap();
                    for first in [0, words - 5] {
                        let w = Words {
                            args: &args,
                            field: f,
                            reduce16: Some(r16),
                            first,
                            sz: &sz[first * n..],
                            rot: &rot,
                        };
                        let len = (words - first) * n;
                        let mut portable = vec![0u8; len];
                        masked_words(&w, &mut portable);
                        let mut out = vec![0u8; len];
                        fast(&w, r16, &mut out);
                        assert_eq!(
                            out, portable,
                            "{kernel} p={p} n={n} party={party} first={first}"
                        );
                    }
                }
            }
        }
    }

    /// Runs steps 1-15 of PrivateCompare in the clear (both servers, reconstruction, zero test,
    /// no masks) for words `x` against `r`.
    fn compare(x: u64, r: u64, beta: u8) -> u8 {
        let f = PrimeField::new(67).unwrap();
        let bits = bit_decompose(&arr1(&[x]).into_dyn());
        // Split the bits into two shares with a fixed pseudo-random first share.
        let s0 = bits.mapv(|b| b.wrapping_mul(37).wrapping_add(11) % 67);
        let s1 = f.sub(&bits, &s0).unwrap();
        let rr = arr1(&[r]).into_dyn();
        let bb = arr1(&[beta]).into_dyn();
        let common = || Prg::new(&[3; 32], Domain::new(1, 2, 3));
        let c0 = compare_bits(f, 0, &s0, &rr, &bb, &mut common()).unwrap();
        let c1 = compare_bits(f, 1, &s1, &rr, &bb, &mut common()).unwrap();
        any_zero(&f.add(&c0, &c1).unwrap()).unwrap()[[0]]
    }

    #[test]
    fn private_compare_is_beta_xor_greater_at_every_edge() {
        let words = [
            0,
            1,
            2,
            3,
            1 << 63,
            (1 << 63) - 1,
            u64::MAX - 1,
            u64::MAX,
            0x1234_5678_9abc_def0,
        ];
        for &x in &words {
            for &r in &words {
                for beta in [0u8, 1] {
                    let expected = beta ^ u8::from(x > r);
                    assert_eq!(
                        compare(x, r, beta),
                        expected,
                        "x={x:#x} r={r:#x} beta={beta}"
                    );
                }
            }
        }
    }

    /// The masked PrivateCompare of both servers, reconstructed: a zero exactly where
    /// `beta XOR (x > r)` over the low `n` bits.
    fn compare_masked(x: u64, r: u64, beta: u8, n: usize) -> u8 {
        let f = PrimeField::new(67).unwrap();
        let bits = crate::ring::bit_decompose_low(&arr1(&[x]).into_dyn(), n);
        let s0 = bits.mapv(|b| b.wrapping_mul(29).wrapping_add(5) % 67);
        let s1 = f.sub(&bits, &s0).unwrap();
        let rr = arr1(&[r]).into_dyn();
        let bb = arr1(&[beta]).into_dyn();
        let common = || Prg::new(&[9; 32], Domain::new(1, 2, 3));
        let d0 = private_compare_masked(f, 0, &s0, &rr, &bb, &mut common()).unwrap();
        let d1 = private_compare_masked(f, 1, &s1, &rr, &bb, &mut common()).unwrap();
        any_zero(&f.add(&d0, &d1).unwrap()).unwrap()[[0]]
    }

    #[test]
    fn masked_private_compare_on_low_bits() {
        for n in [1usize, 2, 31, 63, 64] {
            let mask = u64::MAX >> (64 - n);
            let words = [
                0,
                1,
                2,
                mask >> 1,
                (mask >> 1) + 1,
                mask - 1,
                mask,
                0x5a5a_5a5a_5a5a_5a5a,
            ];
            for &x in &words {
                for &r in &words {
                    for beta in [0u8, 1] {
                        let expected = beta ^ u8::from(x & mask > r & mask);
                        assert_eq!(
                            compare_masked(x, r, beta, n),
                            expected,
                            "n={n} x={x:#x} r={r:#x} beta={beta}"
                        );
                    }
                }
            }
        }
        // Many words at once (the parallel path) agree with one at a time.
        let f = PrimeField::new(67).unwrap();
        let words = PAR_THRESHOLD / 63 + 11;
        let x = ArrayD::from_shape_fn(IxDyn(&[words]), |i| (i[0] as u64).wrapping_mul(0x9e37_79b9));
        let r = ArrayD::from_shape_fn(IxDyn(&[words]), |i| (i[0] as u64 * 7919) & 0xffff_ffff);
        let beta = ArrayD::from_shape_fn(IxDyn(&[words]), |i| (i[0] % 2) as u8);
        let bits = crate::ring::bit_decompose_low(&x, 40);
        let zero = bits.mapv(|_| 0u8);
        let common = || Prg::new(&[4; 32], Domain::new(1, 2, 3));
        let d0 = private_compare_masked(f, 0, &bits, &r, &beta, &mut common()).unwrap();
        let d1 = private_compare_masked(f, 1, &zero, &r, &beta, &mut common()).unwrap();
        let found = any_zero(&f.add(&d0, &d1).unwrap()).unwrap();
        for i in 0..words {
            let mask = (1u64 << 40) - 1;
            let expected = beta[[i]] ^ u8::from(x[[i]] & mask > r[[i]] & mask);
            assert_eq!(found[[i]], expected, "word {i}");
        }
        let bad = ArrayD::<u8>::zeros(IxDyn(&[2, 65]));
        let r2 = ArrayD::<u64>::zeros(IxDyn(&[2]));
        let b2 = ArrayD::<u8>::zeros(IxDyn(&[2]));
        assert!(private_compare_masked(f, 0, &bad, &r2, &b2, &mut common()).is_err());
        assert!(private_compare_masked(f, 2, &zero, &r, &beta, &mut common()).is_err());
    }

    #[test]
    fn masked_shares_hide_the_zero_and_each_share_is_uniform() {
        // 4000 copies of one comparison with a zero (x = 5 > r = 3, beta = 0).
        let f = PrimeField::new(67).unwrap();
        let words = 4000;
        let n = 16;
        let x = ArrayD::from_elem(IxDyn(&[words]), 5u64);
        let r = ArrayD::from_elem(IxDyn(&[words]), 3u64);
        let beta = ArrayD::from_elem(IxDyn(&[words]), 0u8);
        let bits = crate::ring::bit_decompose_low(&x, n);
        let zero = bits.mapv(|_| 0u8);
        let common = || Prg::new(&[6; 32], Domain::new(1, 2, 3));
        let d0 = private_compare_masked(f, 0, &bits, &r, &beta, &mut common()).unwrap();
        let d1 = private_compare_masked(f, 1, &zero, &r, &beta, &mut common()).unwrap();
        let sum = f.add(&d0, &d1).unwrap();
        let mut at = [0usize; 16];
        for lane in sum.outer_iter() {
            let zeros: Vec<usize> = (0..n).filter(|&i| lane[i] == 0).collect();
            assert_eq!(zeros.len(), 1);
            at[zeros[0]] += 1;
        }
        // The zero lands everywhere about equally (expected 250 per position).
        assert!(at.iter().all(|&c| (170..330).contains(&c)), "{at:?}");
        // Each server's own share is uniform over Z_p, zero included.
        for d in [&d0, &d1] {
            let mut counts = [0usize; 67];
            d.iter().for_each(|&v| counts[usize::from(v)] += 1);
            // 64000 draws: about 955 each.
            assert!(
                counts.iter().all(|&c| (800..1110).contains(&c)),
                "{counts:?}"
            );
        }
    }

    #[test]
    fn fused_helper_kernels() {
        let f = PrimeField::new(67).unwrap();
        let a = arr2(&[[1u8, 66, 5], [3, 4, 0]]).into_dyn();
        let b = arr2(&[[2u8, 1, 9], [5, 6, 0]]).into_dyn();
        assert_eq!(any_zero_sum(f, &a, &b).unwrap(), arr1(&[1u8, 1]).into_dyn());
        let b = arr2(&[[2u8, 2, 9], [5, 6, 1]]).into_dyn();
        assert_eq!(any_zero_sum(f, &a, &b).unwrap(), arr1(&[0u8, 0]).into_dyn());
        assert!(any_zero_sum(f, &a, &arr1(&[1u8]).into_dyn()).is_err());
        let x = arr1(&[0b101u64, u64::MAX]).into_dyn();
        let r = arr2(&[[1u8, 1, 0], [66, 0, 2]]).into_dyn();
        let got = bits_minus(f, &x, &r).unwrap();
        assert_eq!(got, arr2(&[[0u8, 66, 1], [2, 1, 66]]).into_dyn());
        assert_eq!(
            f.add(&got, &r).unwrap(),
            crate::ring::bit_decompose_low(&x, 3)
        );
        // Every lane count up to 64, several fields, and the parallel path, against the
        // definition.
        for (p, words, n) in [
            (67u8, 50, 63),
            (67, 7, 64),
            (29, 9, 20),
            (251, 5, 1),
            (67, 5000, 63),
        ] {
            let f = PrimeField::new(p).unwrap();
            let x = ArrayD::from_shape_fn(IxDyn(&[words]), |i| {
                (i[0] as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            });
            let r = ArrayD::from_shape_fn(IxDyn(&[words, n]), |i| {
                ((i[0] * 31 + i[1] * 7) % p as usize) as u8
            });
            let want = ArrayD::from_shape_fn(IxDyn(&[words, n]), |i| {
                let bit = (x[[i[0]]] >> i[1]) & 1;
                ((bit + u64::from(p) - u64::from(r[[i[0], i[1]]])) % u64::from(p)) as u8
            });
            assert_eq!(bits_minus(f, &x, &r).unwrap(), want, "p {p}, {n} lanes");
        }
    }

    #[test]
    fn xor_public_bit_times_flips_the_product() {
        let w = arr1(&[3u64, 3]).into_dyn();
        let b = arr1(&[0u8, 1]).into_dyn();
        let v = arr1(&[10u64, 10]).into_dyn();
        assert_eq!(
            xor_public_bit_times(&w, &b, &v).unwrap(),
            arr1(&[3u64, 7]).into_dyn()
        );
        assert!(xor_public_bit_times(&w, &b, &arr1(&[1u64]).into_dyn()).is_err());
    }

    #[test]
    fn wraps_bits_and_xor() {
        let a = arr1(&[u64::MAX, 1 << 63, 5]).into_dyn();
        let b = arr1(&[1, 1 << 63, 7]).into_dyn();
        assert_eq!(wrap(&a, &b).unwrap(), arr1(&[1u8, 1, 0]).into_dyn());
        assert_eq!(lsb(&a), arr1(&[1u8, 0, 1]).into_dyn());
        assert_eq!(
            is_zero(&arr1(&[0u64, 3]).into_dyn()),
            arr1(&[1u8, 0]).into_dyn()
        );
        let s = arr1(&[10u64, 10]).into_dyn();
        let bit = arr1(&[0u8, 1]).into_dyn();
        assert_eq!(
            xor_public_bit(&s, &bit, true, false).unwrap(),
            arr1(&[10, 1u64.wrapping_sub(10)]).into_dyn()
        );
        assert_eq!(
            xor_public_bit(&s, &bit, false, true).unwrap(),
            arr1(&[10, u64::MAX - 10]).into_dyn()
        );
    }
}

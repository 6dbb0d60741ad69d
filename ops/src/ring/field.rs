//! Small prime fields Z_p (p < 256) on `u8` elements, for SecureNN's PrivateCompare (p = 67).
//!
//! Every operation accepts any `u8` (not only canonical `0..p`) and returns canonical
//! elements. Reduction uses Lemire's direct remainder (a multiply and a shift, no division):
//! with `M = floor((2^32 - 1) / p) + 1`, `n mod p = ((M * n mod 2^32) * p) >> 32` for every
//! 16-bit `n`, since 32 >= 16 + log2(p).

use ndarray::{ArrayD, ArrayRefD};

use super::arith::{map_with, zip_with};
use crate::{OpsError, Result};

/// A prime field Z_p with `p < 256`, checked to be prime at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrimeField {
    p: u8,
    /// Lemire's magic constant for `p`.
    magic: u32,
}

/// `n mod p` for 16-bit `n` by a multiply-high with a 16-bit constant and a shift
/// (`q = ((n m) >> 16) >> l`, `n - q p`), exact for every 16-bit `n`; made by
/// [`PrimeField::reduce16`]. Unlike [`PrimeField::reduce_u16`] it needs no 32- or 64-bit
/// lanes, so a loop of it vectorises 16 lanes per 256-bit register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reduce16 {
    pub(crate) p: u16,
    pub(crate) m: u16,
    pub(crate) l: u32,
}

impl Reduce16 {
    /// `n mod p`.
    #[inline(always)]
    pub fn reduce(self, n: u16) -> u8 {
        let q = (((u32::from(n) * u32::from(self.m)) >> 16) as u16) >> self.l;
        n.wrapping_sub(q.wrapping_mul(self.p)) as u8
    }
}

/// Bits of an element of Z_p: those of `p - 1` (the compiler sizes the packed messages with
/// it, the kernels that pack by themselves through [`PrimeField::bits`]).
pub const fn field_bits(p: u8) -> u32 {
    8 - p.saturating_sub(1).leading_zeros()
}

impl PrimeField {
    /// The field Z_p.
    ///
    /// Errors: [`OpsError::InvalidArgument`] if `p` is not prime.
    pub fn new(p: u8) -> Result<Self> {
        let n = u16::from(p);
        let is_prime = n >= 2
            && (2..n)
                .take_while(|d| d * d <= n)
                .all(|d| !n.is_multiple_of(d));
        if !is_prime {
            return Err(OpsError::InvalidArgument {
                op: "prime field",
                message: format!("modulus {p} is not prime"),
            });
        }
        Ok(PrimeField {
            p,
            magic: u32::MAX / u32::from(p) + 1,
        })
    }

    /// The modulus `p`.
    pub fn modulus(self) -> u8 {
        self.p
    }

    /// Bits of an element ([`field_bits`]): how [`super::pack_small`] packs the field's
    /// elements for the wire.
    pub fn bits(self) -> u32 {
        field_bits(self.p)
    }

    /// `n mod p` for any 16-bit `n`.
    #[inline]
    pub fn reduce_u16(self, n: u16) -> u8 {
        let low = self.magic.wrapping_mul(u32::from(n));
        ((u64::from(low) * u64::from(self.p)) >> 32) as u8
    }

    /// `n mod p` for every 16-bit `n` in 16-bit arithmetic, if `p` has such a divisor (see
    /// [`Reduce16`]): the same values as [`reduce_u16`](Self::reduce_u16), in a form that
    /// vectorises on 16-bit lanes. `None` for the primes without one.
    pub fn reduce16(self) -> Option<Reduce16> {
        let p = u32::from(self.p);
        // Granlund and Montgomery: with 2^(16+l) <= m p <= 2^(16+l) + 2^l, floor(m n /
        // 2^(16+l)) = floor(n / p) for every n < 2^16; m must fit 16 bits.
        (0..8u32).find_map(|l| {
            let m = (1u32 << (16 + l)).div_ceil(p);
            (m < 1 << 16 && m * p - (1 << (16 + l)) <= 1 << l).then_some(Reduce16 {
                p: p as u16,
                m: m as u16,
                l,
            })
        })
    }

    /// `a + b` mod p.
    #[inline]
    pub fn add_elems(self, a: u8, b: u8) -> u8 {
        self.reduce_u16(u16::from(a) + u16::from(b))
    }

    /// `a - b` mod p.
    #[inline]
    pub fn sub_elems(self, a: u8, b: u8) -> u8 {
        // a + (p - b mod p) < 256 + 256.
        let nb = u16::from(self.p) - u16::from(self.reduce_u16(u16::from(b)));
        self.reduce_u16(u16::from(a) + nb)
    }

    /// `a * b` mod p.
    #[inline]
    pub fn mul_elems(self, a: u8, b: u8) -> u8 {
        self.reduce_u16(u16::from(a) * u16::from(b))
    }

    /// `-a` mod p.
    #[inline]
    pub fn neg_elem(self, a: u8) -> u8 {
        self.sub_elems(0, a)
    }

    /// Canonical representatives of any `u8` tensor.
    pub fn reduce(self, x: &ArrayRefD<u8>) -> ArrayD<u8> {
        map_with(x, move |v| self.reduce_u16(u16::from(v)))
    }

    /// `x mod p` of ring words (e.g. bits or small public integers).
    pub fn from_u64(self, x: &ArrayRefD<u64>) -> ArrayD<u8> {
        let p = u64::from(self.p);
        map_with(x, move |v| (v % p) as u8)
    }

    /// `a + b` mod p, broadcasting as [`super::add`].
    pub fn add(self, a: &ArrayRefD<u8>, b: &ArrayRefD<u8>) -> Result<ArrayD<u8>> {
        zip_with("field add", a, b, move |x, y| self.add_elems(x, y))
    }

    /// `a - b` mod p, broadcasting as [`super::add`].
    pub fn sub(self, a: &ArrayRefD<u8>, b: &ArrayRefD<u8>) -> Result<ArrayD<u8>> {
        zip_with("field sub", a, b, move |x, y| self.sub_elems(x, y))
    }

    /// `a * b` mod p elementwise, broadcasting as [`super::add`].
    pub fn mul(self, a: &ArrayRefD<u8>, b: &ArrayRefD<u8>) -> Result<ArrayD<u8>> {
        zip_with("field mul", a, b, move |x, y| self.mul_elems(x, y))
    }

    /// `-x` mod p.
    pub fn neg(self, x: &ArrayRefD<u8>) -> ArrayD<u8> {
        map_with(x, move |v| self.neg_elem(v))
    }

    /// `s * x` mod p for a public scalar `s`.
    pub fn mul_scalar(self, x: &ArrayRefD<u8>, s: u8) -> ArrayD<u8> {
        map_with(x, move |v| self.mul_elems(v, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 16-bit reduction is exact for every 16-bit input of every prime that has one, and
    /// PrivateCompare's 67 has one.
    #[test]
    fn reduce16_is_exact_for_every_16_bit_input() {
        let mut with = 0;
        for p in 2..=255u8 {
            let Ok(f) = PrimeField::new(p) else { continue };
            let Some(r) = f.reduce16() else { continue };
            with += 1;
            for n in 0..=u16::MAX {
                assert_eq!(r.reduce(n), (n % u16::from(p)) as u8, "p={p} n={n}");
                assert_eq!(r.reduce(n), f.reduce_u16(n), "p={p} n={n}");
            }
        }
        assert!(PrimeField::new(67).unwrap().reduce16().is_some());
        assert!(with >= 10, "{with} primes");
    }
}

//! Products that open nothing: a shared value whose shares the servers and the helper know
//! in the *affine form*
//!
//! `x = P + A + sum_j 2^(64 - f_j) (G_j - m_j H_j)`,
//!
//! with `P` public to both servers, `A`, `G_j` and `H_j` known to the helper, and the bits
//! `m_j` public to both servers, is "already masked": the product of two such values is a
//! sum of public products and of products of the helper's values, which it deals. These
//! values have the form:
//!
//! - a **masked** value ([`super::Masked`]): `x = e + a`, no `j` terms;
//! - a **dealer truncation's output** ([`super::Truncated`], [`Lowerer::truncate_dealer`]):
//!   `x = P - R + 2^(64-f) (G - msb(c) H)`, with `P` from the opened `c`, `R` the helper's
//!   mask, `G` and `H` its pair (see [`Lowerer::product_truncated`]);
//! - a **sum** of such values and a public constant ([`Lowerer::affine_sum`]);
//! - a **DReLU bit** `t XOR s = t + (1 - 2t) s` (`t` public, `s` the helper's: the form's
//!   helper part under a public sign);
//! - a **reshape**, transpose or broadcast of any of these (each part reshaped alike).
//!
//! **The product** ([`Lowerer::affine_product`]). With `T_j = G_j - m_j H_j`,
//!
//! `x y = P_x y + (x - P_x) P_y + A_x A_y + sum_j 2^(64-g_j) A_x T'_j
//!        + sum_i 2^(64-f_i) T_i A_y + sum_ij 2^(128-f_i-g_j) T_i T'_j`.
//!
//! The first two terms are local (public times shares). The helper deals `A_x A_y` (a full
//! word) and, for each `j`, `A_x G'_j` and `A_x H'_j` modulo `2^(g_j)` (they are multiplied by
//! `2^(64-g_j)`: `ceil(g_j / 8)` bytes each); each server then forms `A_x T'_j` with the
//! public `m'_j`, and likewise `T_i A_y`. The last sum vanishes modulo `2^64` when every
//! `f_i + g_j <= 64` ([`Lowerer::affine_factors`] checks it). So the product takes no round,
//! and its truncation the one round of its opening: where a Beaver product opens the factor
//! that is not yet masked (16 bytes per element and a round), this one deals the cross terms
//! (2 `ceil(g / 8)` bytes per term and element).
//!
//! It costs more local work per element than a Beaver product (on each server, four more
//! operations for each term of the factors' forms; on the helper, two more products and dealt
//! shares for each), and each product deals its own terms where a mask, once opened, serves
//! every product of its value. So it is asked for where it saves openings that nothing else
//! would reuse:
//!
//! - the softmax on shares ([`Lowerer::product_truncated_affine`]), whose exponential and
//!   division are chains of products of small `[N, K]` and `[N, 1]` values, each factor
//!   the output of the product before it: none is opened before its product;
//! - the ReLU's gradient `DReLU(x) dy` ([`Lowerer::product_affine`]) where `dy` is a
//!   truncation's output: the bit and `dy` are not opened (32 bytes per element) and the
//!   helper deals 12 bytes per element instead of 8.
//!
//! Pond's polynomials, whose powers are each masked once for several products, were 5-10%
//! slower with it on network P's step (12 rounds fewer, 6% fewer bytes).
//!
//! **Security.** The servers receive only fresh shares from the helper; the helper receives
//! nothing. The truncation that follows opens its input masked by fresh randomness, as it
//! would after a Beaver product.

use shareflow_ops::ValueKind;

use super::{Lowerer, Shared, HELPER, S0, S1};
use crate::ir::{Kernel, ValueId};

/// One term `2^(64 - bits) (G - m H)` of an affine form.
#[derive(Debug, Clone, Copy)]
pub struct Top {
    /// The bits truncated: the term is a multiple of `2^(64 - bits)`.
    pub bits: u32,
    /// `G` on the helper.
    pub g: ValueId,
    /// `H` on the helper.
    pub h: ValueId,
    /// The public bit `m` (a 0/1 word) on server 0 and server 1.
    pub m: [ValueId; 2],
}

/// What the parties know of a shared value's shares (see the module).
#[derive(Debug, Clone)]
pub struct Affine {
    /// `P` on server 0 and server 1.
    pub public: [ValueId; 2],
    /// `A` on the helper.
    pub helper: ValueId,
    /// The terms `2^(64 - f_j) (G_j - m_j H_j)`.
    pub tops: Vec<Top>,
    /// A public sign `sigma` (words 1 or -1, on server 0 and server 1) by which `A` enters,
    /// elementwise: `x = P + sigma A + ..`. A DReLU bit `t XOR s` is `t + (1 - 2t) s`, with
    /// `t` public and `s` the helper's ([`super::securenn::opened`]).
    pub sign: Option<[ValueId; 2]>,
}

/// How a term enters [`Lowerer::affine_sum`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// Added.
    Plus,
    /// Subtracted.
    Minus,
}

impl Lowerer {
    /// The affine form of `x`, if the lowering knows one (see the module).
    pub fn affine(&mut self, x: &Shared) -> Option<Affine> {
        if let Some(a) = self.affines.get(&x.s) {
            return Some(a.clone());
        }
        if let Some(m) = self.masked.get(&x.s) {
            return Some(Affine {
                public: m.e,
                helper: m.a,
                tops: Vec::new(),
                sign: None,
            });
        }
        if let Some((kernel, source)) = self.reshaped.get(&x.s).cloned() {
            return self.affine_reshaped(x, kernel, &source);
        }
        let t = self.truncations.get(&x.s).copied()?;
        // y = P - R + 2^(64-f) (G - msb(c) H).
        let helper = self.emit_like(Kernel::Neg, &[t.r]);
        let form = Affine {
            public: t.p,
            helper,
            tops: vec![Top {
                bits: t.f,
                g: t.g,
                h: t.h,
                m: t.msb,
            }],
            sign: None,
        };
        self.affines.insert(x.s, form.clone());
        Some(form)
    }

    /// The affine form of `x = L(source)` for a local shape kernel `L` (reshape, transpose,
    /// broadcast): `L` applied to every part of the source's form, each on its own party.
    fn affine_reshaped(&mut self, x: &Shared, kernel: Kernel, source: &Shared) -> Option<Affine> {
        let f = self.affine(source)?;
        let shape = self.shape(x.s[0]).to_vec();
        let mut apply = |v: ValueId| {
            let host = self.host(v);
            self.emit(host, kernel.clone(), &[v], ValueKind::Ring, &shape)
        };
        let form = Affine {
            public: f.public.map(&mut apply),
            helper: apply(f.helper),
            tops: f
                .tops
                .iter()
                .map(|t| Top {
                    bits: t.bits,
                    g: apply(t.g),
                    h: apply(t.h),
                    m: t.m.map(&mut apply),
                })
                .collect(),
            sign: f.sign.map(|s| s.map(&mut apply)),
        };
        self.affines.insert(x.s, form.clone());
        Some(form)
    }

    /// The affine forms of `x` and `y` when their product can open nothing: both have one,
    /// at least one is not masked yet (else a Beaver product costs the same), and every
    /// product of their terms vanishes (`f_i + g_j <= 64`).
    pub fn affine_factors(&mut self, x: &Shared, y: &Shared) -> Option<(Affine, Affine)> {
        if self.masked.contains_key(&x.s) && self.masked.contains_key(&y.s) {
            return None;
        }
        let (fx, fy) = (self.affine(x)?, self.affine(y)?);
        let vanish = fx
            .tops
            .iter()
            .all(|t| fy.tops.iter().all(|u| t.bits + u.bits <= 64));
        vanish.then_some((fx, fy))
    }

    /// Shares of `x y + plus` (elementwise, broadcast to `shape`; `plus` a ring tensor on
    /// the helper) from the affine forms of [`Lowerer::affine_factors`]: local products and
    /// the helper's dealt terms, no opening (see the module).
    pub fn affine_product(
        &mut self,
        (x, fx): (&Shared, &Affine),
        (y, fy): (&Shared, &Affine),
        shape: &[usize],
        plus: Option<ValueId>,
    ) -> Shared {
        let ring = ValueKind::Ring;
        // The helper's A_x A_y (+ plus), a full word; plus apart where a sign multiplies
        // A_x A_y.
        let signed = fx.sign.is_some() || fy.sign.is_some();
        let mut c = self.emit(HELPER, Kernel::Mul, &[fx.helper, fy.helper], ring, shape);
        let mut apart = None;
        if let Some(p) = plus {
            if signed {
                apart = Some(self.dealer_share(p));
            } else {
                c = self.emit_like(Kernel::Add, &[c, p]);
            }
        }
        let c = self.dealer_share(c);
        // The cross terms A_x T'_j (under x's sign) and T_i A_y (under y's); a square's two
        // are one, doubled.
        let square = x.s == y.s;
        let mut cross: Vec<(ValueId, Top, bool, Option<[ValueId; 2]>)> = fy
            .tops
            .iter()
            .map(|&t| (fx.helper, t, square, fx.sign))
            .collect();
        if !square {
            cross.extend(fx.tops.iter().map(|&t| (fy.helper, t, false, fy.sign)));
        }
        let mut terms = Vec::with_capacity(cross.len());
        for (a, top, double, sign) in cross {
            let low = top.bits.div_ceil(8) as u8;
            let [g, h] = [top.g, top.h].map(|v| {
                let mut d = self.emit(HELPER, Kernel::Mul, &[a, v], ring, shape);
                if double {
                    d = self.emit_like(Kernel::Shl { bits: 1 }, &[d]);
                }
                self.dealer_share_low(d, low)
            });
            terms.push((g, h, top, sign));
        }
        let mut z = c.s;
        for (i, host) in [(0, S0), (1, S1)] {
            let mut emit =
                |kernel: Kernel, inputs: &[ValueId]| self.emit(host, kernel, inputs, ring, shape);
            // sigma_x sigma_y D[A_x A_y] (+ D[plus]).
            let mut acc = z[i];
            for sign in [fx.sign, fy.sign].into_iter().flatten() {
                acc = emit(Kernel::Mul, &[acc, sign[i]]);
            }
            if let Some(p) = apart {
                acc = emit(Kernel::Add, &[acc, p.s[i]]);
            }
            // P_x y + (x - P_x) P_y: server 0 subtracts P_x from its share.
            let px_y = emit(Kernel::Mul, &[fx.public[i], y.s[i]]);
            let rest = if i == 0 {
                emit(Kernel::Sub, &[x.s[0], fx.public[0]])
            } else {
                x.s[1]
            };
            let rest_py = emit(Kernel::Mul, &[rest, fy.public[i]]);
            acc = emit(Kernel::Add, &[acc, px_y]);
            acc = emit(Kernel::Add, &[acc, rest_py]);
            for (g, h, top, sign) in &terms {
                // sigma 2^(64 - bits) (D[A G] - m D[A H]).
                let mh = emit(Kernel::Mul, &[top.m[i], h.s[i]]);
                let mut t = emit(Kernel::Sub, &[g.s[i], mh]);
                if let Some(sign) = sign {
                    t = emit(Kernel::Mul, &[t, sign[i]]);
                }
                let shift = Kernel::Shl {
                    bits: 64 - top.bits,
                };
                let t = emit(shift, &[t]);
                acc = emit(Kernel::Add, &[acc, t]);
            }
            z[i] = acc;
        }
        Shared { s: z }
    }

    /// Shares of `k(x, y)` for an elementwise `k = Mul` whose factors are in affine form
    /// ([`Lowerer::affine_product`], nothing opened), else a Beaver product. Exact, with no
    /// truncation: for a factor that is an integer, such as a DReLU bit.
    pub fn product_affine(&mut self, x: &Shared, y: &Shared, shape: &[usize]) -> Shared {
        match self.affine_factors(x, y) {
            Some((fx, fy)) => self.affine_product((x, &fx), (y, &fy), shape, None),
            None => self.beaver(x, y, Kernel::Mul, shape),
        }
    }

    /// Shares of `+-x_0 +- x_1 .. (+ constant)` (local; the constant a ring word that server
    /// 0 adds), recorded in affine form when every term has one, so that a product that
    /// takes the sum opens nothing ([`Lowerer::product_truncated_affine`]).
    pub fn affine_sum(
        &mut self,
        first: (Shared, Sign),
        rest: &[(Shared, Sign)],
        constant: Option<u64>,
        shape: &[usize],
    ) -> Shared {
        let mut acc = match first.1 {
            Sign::Plus => first.0,
            Sign::Minus => self.local(Kernel::Neg, &first.0, shape),
        };
        for (t, sign) in rest {
            acc = self.local2(sign.kernel(), &acc, t, shape);
        }
        if let Some(w) = constant {
            let word = self.ring_words(S0, &[], vec![w]);
            acc = self.add_public(&acc, word, shape);
        }
        let forms: Option<Vec<(Affine, Sign)>> = std::iter::once(&first)
            .chain(rest)
            .map(|(t, sign)| self.affine(t).map(|f| (f, *sign)))
            .collect();
        if let Some(form) = forms.and_then(|f| self.affine_combination(&f, constant, shape)) {
            self.affines.insert(acc.s, form);
        }
        acc
    }

    /// The affine form of a signed sum of affine forms and a public constant (`None` for no
    /// term): the same sum of the `P`s (on both servers) and of the `A`s (on the helper), and
    /// the terms, negated where subtracted (`-2^(64-f) (G - m H) = 2^(64-f) (-G - m (-H))`).
    fn affine_combination(
        &mut self,
        forms: &[(Affine, Sign)],
        constant: Option<u64>,
        shape: &[usize],
    ) -> Option<Affine> {
        let ring = ValueKind::Ring;
        if forms.iter().any(|(f, _)| f.sign.is_some()) {
            // Helper parts under different public signs do not add up to one.
            return None;
        }
        let ((head, head_sign), rest) = forms.split_first()?;
        let negate = |cx: &mut Self, v: ValueId| cx.emit_like(Kernel::Neg, &[v]);
        let mut sum = match head_sign {
            Sign::Plus => Affine {
                tops: Vec::new(),
                ..head.clone()
            },
            Sign::Minus => Affine {
                public: head.public.map(|p| negate(self, p)),
                helper: negate(self, head.helper),
                tops: Vec::new(),
                sign: None,
            },
        };
        for (form, sign) in rest {
            sum.public = [S0, S1].map(|h| {
                let inputs = [sum.public[h], form.public[h]];
                self.emit(h, sign.kernel(), &inputs, ring, shape)
            });
            let inputs = [sum.helper, form.helper];
            sum.helper = self.emit(HELPER, sign.kernel(), &inputs, ring, shape);
        }
        for (form, sign) in forms {
            for top in &form.tops {
                sum.tops.push(match sign {
                    Sign::Plus => *top,
                    Sign::Minus => Top {
                        g: negate(self, top.g),
                        h: negate(self, top.h),
                        ..*top
                    },
                });
            }
        }
        if let Some(w) = constant {
            sum.public = [S0, S1].map(|h| {
                let c = self.ring_words(h, &[], vec![w]);
                self.emit(h, Kernel::Add, &[sum.public[h], c], ring, shape)
            });
        }
        Some(sum)
    }
}

impl Sign {
    /// The share-wise kernel that applies it to an accumulator.
    fn kernel(self) -> Kernel {
        match self {
            Sign::Plus => Kernel::Add,
            Sign::Minus => Kernel::Sub,
        }
    }
}

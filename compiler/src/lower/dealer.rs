//! Products with the helper as dealer (crypto producer): Beaver-style triples for elementwise
//! products, matmul and conv2d triples whose traffic is proportional to the operands rather
//! than to the products, and truncation pairs.
//!
//! Every share the helper hands server 0 is the expansion of their pair seed, so the helper
//! only sends server 1 the correction that makes the shares add up.

use shareflow_ops::ValueKind;

use super::affine::{Affine, Top};
use super::{Lowerer, Masked, Shared, HELPER, S0, S1};

/// The helper's pair of a truncation folded into a product ([`Lowerer::truncation_pair`]).
struct TruncationPair {
    /// The bits truncated.
    f: u32,
    /// `R` on the helper.
    big_r: ValueId,
    /// Shares of `R`.
    rho: Shared,
    /// `lambda < 2^f` on the helper, for the dealt product.
    lambda: ValueId,
    /// `G` on the helper and its shares (modulo `2^f`).
    g: (ValueId, Shared),
    /// `H = msb(r)` on the helper and its shares (modulo `2^f`).
    h: (ValueId, Shared),
}
use crate::ir::{Draw, Exchange, Kernel, ValueId};
use crate::options::Truncation;

impl Lowerer {
    /// A uniformly random ring tensor known to the helper, and its shares: both shares are
    /// seed expansions, so this costs no traffic.
    pub fn dealer_random(&mut self, shape: &[usize]) -> (ValueId, Shared) {
        let (h0, r0) = self.common_random(HELPER, S0, Draw::Ring, shape);
        let (h1, r1) = self.common_random(HELPER, S1, Draw::Ring, shape);
        let sum = self.emit_like(Kernel::Add, &[h0, h1]);
        (sum, Shared { s: [r0, r1] })
    }

    /// Shares a ring value the helper computed: server 0's share is a seed expansion, server 1
    /// receives the difference (`|value|` words).
    pub fn dealer_share(&mut self, value: ValueId) -> Shared {
        self.dealer_share_low(value, 8)
    }

    /// Shares a ring value the helper computed modulo `2^(8 bytes)` only (`bytes` from 1 to 8;
    /// 8 is [`Lowerer::dealer_share`]): server 1 receives the low `bytes` bytes of the
    /// difference (its share's high bytes are zero), so the shares add up to `value` in their
    /// low `8 bytes` bits alone. Sound for a share that is only multiplied by multiples of
    /// `2^(64 - 8 bytes)`, whose products ignore the high bits.
    pub fn dealer_share_low(&mut self, value: ValueId, bytes: u8) -> Shared {
        let setup = self.all_setup(&[value]);
        self.setup_if(setup, |cx| {
            let shape = cx.shape(value).to_vec();
            let (h0, r0) = cx.common_random(HELPER, S0, Draw::Ring, &shape);
            let diff = cx.emit_like(Kernel::Sub, &[value, h0]);
            if bytes >= 8 {
                let r1 = cx.send(diff, S1, Exchange::Share);
                return Shared { s: [r0, r1] };
            }
            let lanes = [shape.as_slice(), &[usize::from(bytes)]].concat();
            let low = cx.emit(
                HELPER,
                Kernel::LowBytes { bytes },
                &[diff],
                ValueKind::Small,
                &lanes,
            );
            let sent = cx.send(low, S1, Exchange::Share);
            let r1 = cx.emit(S1, Kernel::FromLowBytes, &[sent], ValueKind::Ring, &shape);
            Shared { s: [r0, r1] }
        })
    }

    /// Shares a float value of an input owner (the client's image, the model owner's weights)
    /// that a product is about to mask, already masked: the owner sends `e = x - a` to both
    /// servers, where `a = a_0 + a_1` and the owner draws `a_i` from a seed it shares with
    /// server i and the helper. The shares are `(e + a_0, a_1)` and the mask is the dealer's
    /// own (the helper holds `a`), so the product opens nothing more: one message of `|x|`
    /// words fewer than sharing then opening (the rounds are the same: the helper learns `a`
    /// a round later, while the servers would have opened `e`). Each server lacks the other's
    /// `a_i`. A value of a computing party, or one already shared, is shared as usual.
    pub fn share_masked(&mut self, value: ValueId) -> Shared {
        let owner = self.host(value);
        if let Some(&s) = self.shared.get(&value) {
            return s;
        }
        if owner < super::COMPUTE_PARTIES.len() {
            return self.share(value);
        }
        let encoded = self.encoded(value);
        let setup = self.all_setup(&[encoded]);
        let x = self.setup_if(setup, |cx| {
            let shape = cx.shape(encoded).to_vec();
            // One draw on each of the owner, server i and the helper.
            let m0 = cx.group_random(&[owner, S0, HELPER], Draw::Ring, &shape);
            let m1 = cx.group_random(&[owner, S1, HELPER], Draw::Ring, &shape);
            let (p0, a0, h0) = (m0[0], m0[1], m0[2]);
            let (p1, a1, h1) = (m1[0], m1[1], m1[2]);
            let half = cx.emit_like(Kernel::Sub, &[encoded, p0]);
            let e = cx.emit_like(Kernel::Sub, &[half, p1]);
            let e = [
                cx.send(e, S0, Exchange::MaskedOpening),
                cx.send(e, S1, Exchange::MaskedOpening),
            ];
            let a = cx.emit_like(Kernel::Add, &[h0, h1]);
            let x0 = cx.emit_like(Kernel::Add, &[e[0], a0]);
            let x = Shared { s: [x0, a1] };
            let a_shared = Shared { s: [a0, a1] };
            cx.masked.insert(x.s, Masked { a, a_shared, e });
            x
        });
        self.shared.insert(value, x);
        x
    }

    /// Masks `x` with dealer randomness and opens `x - a` to both servers, once per value
    /// (and, when serving, once per session if `x` is a setup value such as a weight).
    ///
    /// A value made by a local shape kernel `L` (reshape, transpose) from shares `y` is not
    /// opened again: its mask is `L` applied to the mask of `y` (`L(a)` on the helper, `L(a_i)`
    /// on server i, and the opened `L(e) = L(y) - L(a)`), all local. So in a training step
    /// `x`, `W` and `dy` are each opened once for `x.W`, `x^T.dy` and `dy.W^T` (the
    /// generalised triples), whichever of `y` and `L(y)` is masked first.
    pub fn mask(&mut self, x: &Shared) -> Masked {
        if let Some(m) = self.masked.get(&x.s) {
            return *m;
        }
        if let Some((kernel, source)) = self.reshaped.get(&x.s).cloned() {
            let m = self.mask(&source);
            let shape = self.shape(x.s[0]).to_vec();
            let a = self.emit(HELPER, kernel.clone(), &[m.a], ValueKind::Ring, &shape);
            let a_shared = self.local(kernel.clone(), &m.a_shared, &shape);
            let e = [S0, S1].map(|host| {
                let e = m.e[host];
                self.emit(host, kernel.clone(), &[e], ValueKind::Ring, &shape)
            });
            let derived = Masked { a, a_shared, e };
            self.masked.insert(x.s, derived);
            return derived;
        }
        let setup = self.all_setup(&x.s);
        let m = self.setup_if(setup, |cx| {
            let shape = cx.shape(x.s[0]).to_vec();
            let (a, a_shared) = cx.dealer_random(&shape);
            let e_shared = cx.local2(Kernel::Sub, x, &a_shared, &shape);
            let e = cx.open(&e_shared);
            Masked { a, a_shared, e }
        });
        self.masked.insert(x.s, m);
        m
    }

    /// `k(x, y)` for a bilinear kernel `k` (elementwise mul, matmul, conv2d) of shape `shape`,
    /// with a dealer triple `(a, b, k(a, b))`:
    /// `z_i = c_i + k(e, b_i) + k(a_i, f) + [i = 0] k(e, f)` with `e = x - a`, `f = y - b`
    /// (server 0 computes `k(e, b_0 + f)`, one product fewer).
    /// The result has `2f` fractional bits: truncate it.
    pub fn beaver(&mut self, x: &Shared, y: &Shared, k: Kernel, shape: &[usize]) -> Shared {
        self.beaver_plus(x, y, k, shape, None)
    }

    /// [`Lowerer::beaver`] with `plus` (a ring tensor on the helper) added to the dealt
    /// `k(a, b)`: the shares add up to `k(x, y) + plus`, for no more traffic.
    fn beaver_plus(
        &mut self,
        x: &Shared,
        y: &Shared,
        k: Kernel,
        shape: &[usize],
        plus: Option<ValueId>,
    ) -> Shared {
        let mx = self.mask(x);
        let my = self.mask(y);
        let mut c = self.emit(HELPER, k.clone(), &[mx.a, my.a], ValueKind::Ring, shape);
        if let Some(plus) = plus {
            c = self.emit_like(Kernel::Add, &[c, plus]);
        }
        let c = self.dealer_share(c);
        let mut z = [c.s[0]; 2];
        for (i, host) in [(0, S0), (1, S1)] {
            // Server 0 folds `k(e, f)` into `k(e, b_0 + f)`: two products per server, not three.
            let b = if i == 0 {
                self.folded_mask(&my)
            } else {
                my.a_shared.s[1]
            };
            let terms = [[mx.e[i], b], [mx.a_shared.s[i], my.e[i]]];
            z[i] = match self.joint_terms(host, &k, terms, shape) {
                Some(both) => self.emit(host, Kernel::Add, &[c.s[i], both], ValueKind::Ring, shape),
                None => {
                    let [eb, af] =
                        terms.map(|t| self.emit(host, k.clone(), &t, ValueKind::Ring, shape));
                    let acc = self.emit(host, Kernel::Add, &[c.s[i], eb], ValueKind::Ring, shape);
                    self.emit(host, Kernel::Add, &[acc, af], ValueKind::Ring, shape)
                }
            };
        }
        Shared { s: z }
    }

    /// A server's two terms `k(e, b) + k(a, f)` of a Beaver product as one product of the
    /// operands concatenated along the axis that `k` sums over: for a convolution, the inputs
    /// along their channels and the filters along their input channels. Where the output is
    /// at least twice the operands (a first convolution: one or three input channels, tens of
    /// output channels), copying the operands costs less than writing a second output and
    /// adding the two (network B's first convolution at batch 128: 19 against 30 ms). `None`
    /// where `k` is another kernel or the output is smaller; the filters are concatenated
    /// once per session when both are setup values.
    fn joint_terms(
        &mut self,
        host: super::Host,
        k: &Kernel,
        terms: [[ValueId; 2]; 2],
        shape: &[usize],
    ) -> Option<ValueId> {
        let Kernel::Conv2d { .. } = k else {
            return None;
        };
        let [[e, b], [a, f]] = terms;
        let operands: usize = [e, b, a, f]
            .iter()
            .map(|&v| self.shape(v).iter().product::<usize>())
            .sum();
        if operands.saturating_mul(2) > shape.iter().product::<usize>() {
            return None;
        }
        let joined = |cx: &mut Self, axis: usize, parts: [ValueId; 2]| {
            let mut joint = cx.shape(parts[0]).to_vec();
            joint[axis] += cx.shape(parts[1])[axis];
            cx.emit(
                host,
                Kernel::Concat { axis },
                &parts,
                ValueKind::Ring,
                &joint,
            )
        };
        // NHWC inputs along C, HWIO filters along I.
        let inputs = joined(self, 3, [e, a]);
        let setup = self.all_setup(&[b, f]);
        let filters = self.setup_if(setup, |cx| joined(cx, 2, [b, f]));
        Some(self.emit(host, k.clone(), &[inputs, filters], ValueKind::Ring, shape))
    }

    /// Server 0's `b_0 + f` of a masked `y` (`f = y - b`), once per masked value (at setup if
    /// both are setup values).
    fn folded_mask(&mut self, my: &Masked) -> ValueId {
        if let Some(&v) = self.folded.get(&my.e[0]) {
            return v;
        }
        let terms = [my.a_shared.s[0], my.e[0]];
        let setup = self.all_setup(&terms);
        let v = self.setup_if(setup, |cx| cx.emit_like(Kernel::Add, &terms));
        self.folded.insert(my.e[0], v);
        v
    }

    /// `(k(x, y) + plus) / 2^bits` (`0 < bits < 64`; `plus` shares broadcast to the product):
    /// a dealer triple's product, truncated with the configured method. By the dealer, the
    /// truncation is folded into the triple ([`Lowerer::truncation_pair`]).
    pub fn product_truncated(
        &mut self,
        x: &Shared,
        y: &Shared,
        k: Kernel,
        shape: &[usize],
        bits: u32,
        plus: Option<&Shared>,
    ) -> Shared {
        if self.options.truncation == Truncation::Local {
            let mut z = self.beaver(x, y, k, shape);
            if let Some(p) = plus {
                z = self.local2(Kernel::Add, &z, p, shape);
            }
            return self.truncate_by(&z, bits);
        }
        let mut subjects = vec![x.s[0], x.s[1], y.s[0], y.s[1]];
        subjects.extend(plus.iter().flat_map(|p| p.s));
        let setup = self.all_setup(&subjects);
        self.setup_if(setup, |cx| {
            let pair = cx.truncation_pair(shape, bits);
            let mut z = cx.beaver_plus(x, y, k, shape, Some(pair.lambda));
            if let Some(p) = plus {
                z = cx.local2(Kernel::Add, &z, p, shape);
            }
            cx.truncate_with_pair(&z, &pair, shape)
        })
    }

    /// `x y / 2^bits` (elementwise, broadcast to `shape`) as [`Lowerer::product_truncated`],
    /// except that where both factors are in affine form neither is opened
    /// ([`Lowerer::affine_product`]): a round fewer for each factor not yet masked, for
    /// more local work and dealt terms per element. For small tensors on a path of rounds
    /// (the softmax on shares); on large ones the work costs more than the round (Pond's
    /// polynomials on network P's step: 12 rounds fewer, 5-10% slower on two cores).
    pub fn product_truncated_affine(
        &mut self,
        x: &Shared,
        y: &Shared,
        shape: &[usize],
        bits: u32,
    ) -> Shared {
        let dealer = self.options.truncation == Truncation::Dealer;
        let Some((fx, fy)) = self.affine_factors(x, y).filter(|_| dealer) else {
            return self.product_truncated(x, y, Kernel::Mul, shape, bits, None);
        };
        let setup = self.all_setup(&[x.s[0], x.s[1], y.s[0], y.s[1]]);
        self.setup_if(setup, |cx| {
            let pair = cx.truncation_pair(shape, bits);
            let z = cx.affine_product((x, &fx), (y, &fy), shape, Some(pair.lambda));
            cx.truncate_with_pair(&z, &pair, shape)
        })
    }

    /// The helper's pair for a truncation by `2^f` folded into a product: 12 bytes per
    /// element from the helper instead of [`Lowerer::truncate_dealer`]'s 18. The mask is
    /// `r = R 2^f + lambda`, with `R` from the helper's seeds with each server (free) and
    /// `lambda < 2^f` the helper's own, which it adds to the dealt product (free too). Then
    /// `r >> f = R - 2^(64-f) (R >> (64-f))` and `msb(r)` is bit `63 - f` of `R`, so
    ///
    /// `x' >> f = (c >> f) - R + 2^(64-f) (G - H msb(c))`, with `G = (R >> (64-f)) + msb(r)`
    /// and `H = msb(r)`, whose shares matter mod `2^f` only (the steps as in
    /// [`Lowerer::truncate_dealer`]; [`Lowerer::truncate_with_pair`] takes them).
    fn truncation_pair(&mut self, shape: &[usize], f: u32) -> TruncationPair {
        let (big_r, rho) = self.dealer_random(shape);
        let own = self.group_random(&[HELPER], Draw::Ring, shape)[0];
        let lambda = self.emit_like(
            Kernel::AndConst {
                value: (1u64 << f) - 1,
            },
            &[own],
        );
        let r_high = self.emit_like(Kernel::ShrLogical { bits: 64 - f }, &[big_r]);
        let r_bit = self.emit_like(Kernel::ShrLogical { bits: 63 - f }, &[big_r]);
        let r_msb = self.emit_like(Kernel::AndConst { value: 1 }, &[r_bit]);
        let g_value = self.emit_like(Kernel::Add, &[r_high, r_msb]);
        let low = f.div_ceil(8) as u8;
        TruncationPair {
            f,
            big_r,
            rho,
            lambda,
            g: (g_value, self.dealer_share_low(g_value, low)),
            h: (r_msb, self.dealer_share_low(r_msb, low)),
        }
    }

    /// Steps 1-3 of a truncation folded into a product, on `z = k(x, y) + lambda` (+ an
    /// addend) with `pair`'s mask ([`Lowerer::truncation_pair`]).
    ///
    /// The output is recorded ([`super::Truncated`]) for a sign or a product that follows:
    /// `y + R` is public modulo `2^(64-f)`, and `y` is in affine form.
    fn truncate_with_pair(&mut self, z: &Shared, pair: &TruncationPair, shape: &[usize]) -> Shared {
        let f = pair.f;
        let (g, h, rho) = (pair.g.1, pair.h.1, pair.rho);
        // Step 1: c = x + 2^62 + r, opened (lambda is in z, R 2^f in the shares rho_i 2^f).
        let bias = self.ring_words(S0, &[], vec![1u64 << 62]);
        let biased = self.add_public(z, bias, shape);
        let rho_hi = self.local(Kernel::Shl { bits: f }, &rho, shape);
        let masked = self.local2(Kernel::Add, &biased, &rho_hi, shape);
        let c = self.open(&masked);
        let mut out = [c[0]; 2];
        let mut top = [c[0]; 2];
        let mut p = [c[0]; 2];
        let mut msbs = [c[0]; 2];
        for (i, host) in [(0, S0), (1, S1)] {
            // Steps 2 and 3: 2^(64-f) (G - H msb(c)) - R, and P = (c >> f) - 2^(62-f) on
            // server 0 (server 1's P serves a sign or a product that follows, if any).
            let emit = |cx: &mut Self, kernel: Kernel, inputs: &[ValueId]| {
                cx.emit(host, kernel, inputs, ValueKind::Ring, shape)
            };
            let c_hi = emit(self, Kernel::ShrLogical { bits: f }, &[c[i]]);
            let unbias = self.ring_words(host, &[], vec![(1u64 << 62) >> f]);
            p[i] = emit(self, Kernel::Sub, &[c_hi, unbias]);
            let msb = emit(self, Kernel::ShrLogical { bits: 63 }, &[c[i]]);
            msbs[i] = msb;
            let hm = emit(self, Kernel::Mul, &[msb, h.s[i]]);
            let gm = emit(self, Kernel::Sub, &[g.s[i], hm]);
            top[i] = gm;
            let w = emit(self, Kernel::Shl { bits: 64 - f }, &[gm]);
            let mut t = emit(self, Kernel::Sub, &[w, rho.s[i]]);
            if i == 0 {
                t = emit(self, Kernel::Add, &[t, p[0]]);
            }
            out[i] = t;
        }
        let truncated = super::Truncated {
            p,
            f,
            r: pair.big_r,
            lambda: pair.lambda,
            c,
            top: Shared { s: top },
            g: pair.g.0,
            h: pair.h.0,
            msb: msbs,
        };
        self.truncations.insert(out, truncated);
        self.sign_widths.insert(out, 64 - f);
        Shared { s: out }
    }

    /// Divides by `2^f` after a product, with the configured method.
    pub fn truncate(&mut self, z: &Shared) -> Shared {
        let f = self.frac_bits();
        self.truncate_by(z, f)
    }

    /// Divides by `2^bits` (`0 < bits < 64`) with the configured method: [`Lowerer::truncate`]
    /// for a product whose factors do not both have `f` fractional bits.
    pub fn truncate_by(&mut self, z: &Shared, bits: u32) -> Shared {
        let setup = self.all_setup(&z.s);
        self.setup_if(setup, |cx| match cx.options.truncation {
            Truncation::Dealer => cx.truncate_dealer(z, bits),
            Truncation::Local => cx.truncate_local(z, bits),
        })
    }

    /// SecureML's local truncation by `2^f`: server 0 shifts its share, server 1 shifts the negation of
    /// its share. Off by one ulp at most, except with probability about `|x| / 2^63`, when the
    /// result is wrong by about `2^(64-f)`.
    pub fn truncate_local(&mut self, z: &Shared, f: u32) -> Shared {
        let a = self.emit_like(Kernel::ShrArith { bits: f }, &[z.s[0]]);
        let neg = self.emit_like(Kernel::Neg, &[z.s[1]]);
        let shifted = self.emit_like(Kernel::ShrArith { bits: f }, &[neg]);
        let b = self.emit_like(Kernel::Neg, &[shifted]);
        Shared { s: [a, b] }
    }

    /// Truncation by `2^f` with a dealer pair `(r, r >> f, msb(r))`, exact up to one ulp for every
    /// `|x| < 2^62` (no probabilistic wrap error):
    ///
    /// 1. the servers add a bias `2^62` (so `x' = x + 2^62` lies in `[0, 2^63)`) and the mask
    ///    `r`, and open `c = x' + r`;
    /// 2. `x' + r` wrapped around `2^64` exactly when `msb(r) = 1` and `msb(c) = 0`, so the
    ///    wrap is `(1 - msb(c)) * msb(r)`, linear in the shared `msb(r)`;
    /// 3. `x' >> f = (c >> f) - (r >> f) + wrap * 2^(64-f)` (+1 ulp from the low bits), and the
    ///    bias `2^(62-f)` is subtracted again.
    pub fn truncate_dealer(&mut self, z: &Shared, f: u32) -> Shared {
        let shape = self.shape(z.s[0]).to_vec();
        // The helper's pair: r, r >> f and msb(r), each shared.
        let (r, r_shared) = self.dealer_random(&shape);
        let r_hi_value = self.emit_like(Kernel::ShrLogical { bits: f }, &[r]);
        let r_hi = self.dealer_share(r_hi_value);
        let r_msb_value = self.emit_like(Kernel::ShrLogical { bits: 63 }, &[r]);
        // Step 2 multiplies msb(r) by a multiple of 2^(64-f): its shares matter mod 2^f only.
        let r_msb = self.dealer_share_low(r_msb_value, f.div_ceil(8) as u8);
        // Step 1: c = x + 2^62 + r, opened.
        let bias = self.ring_words(S0, &[], vec![1u64 << 62]);
        let biased = self.add_public(z, bias, &shape);
        let masked = self.local2(Kernel::Add, &biased, &r_shared, &shape);
        let c = self.open(&masked);
        let mut out = [c[0]; 2];
        let mut p = [c[0]; 2];
        let mut msbs = [c[0]; 2];
        for (i, host) in [(0, S0), (1, S1)] {
            let emit = |cx: &mut Self, kernel: Kernel, inputs: &[ValueId]| {
                cx.emit(host, kernel, inputs, ValueKind::Ring, &shape)
            };
            // Step 2: w = (1 - msb(c)) << (64 - f), public.
            msbs[i] = emit(self, Kernel::ShrLogical { bits: 63 }, &[c[i]]);
            let not_msb = emit(self, Kernel::XorConst { value: 1 }, &[msbs[i]]);
            let w = emit(self, Kernel::Shl { bits: 64 - f }, &[not_msb]);
            let wrap = emit(self, Kernel::Mul, &[w, r_msb.s[i]]);
            // Step 3, with P = (c >> f) - 2^(62-f) (server 1's serves a product that
            // follows, if any).
            let mut t = emit(self, Kernel::Sub, &[wrap, r_hi.s[i]]);
            let c_hi = emit(self, Kernel::ShrLogical { bits: f }, &[c[i]]);
            let unbias = self.ring_words(host, &[], vec![(1u64 << 62) >> f]);
            p[i] = emit(self, Kernel::Sub, &[c_hi, unbias]);
            if i == 0 {
                t = emit(self, Kernel::Add, &[t, p[0]]);
            }
            out[i] = t;
        }
        // The output in affine form: P - (r >> f) + 2^(64-f) (msb(r) - msb(c) msb(r)).
        let helper = self.emit_like(Kernel::Neg, &[r_hi_value]);
        let top = Top {
            bits: f,
            g: r_msb_value,
            h: r_msb_value,
            m: msbs,
        };
        let form = Affine {
            public: p,
            helper,
            tops: vec![top],
            sign: None,
        };
        self.affines.insert(out, form);
        self.sign_widths.insert(out, 64 - f);
        Shared { s: out }
    }

    /// `x * public` for a public ring tensor of the same or trailing shape (on both servers),
    /// truncated.
    pub fn mul_public(&mut self, x: &Shared, public: [ValueId; 2], shape: &[usize]) -> Shared {
        let a = self.emit(
            S0,
            Kernel::Mul,
            &[x.s[0], public[0]],
            ValueKind::Ring,
            shape,
        );
        let b = self.emit(
            S1,
            Kernel::Mul,
            &[x.s[1], public[1]],
            ValueKind::Ring,
            shape,
        );
        self.truncate(&Shared { s: [a, b] })
    }
}

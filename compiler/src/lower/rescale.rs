//! A truncation's output times a public scalar, truncated by reusing the truncation's opening:
//! SGD's `lr * step` of a gradient that a product just truncated (`momentum`'s
//! `v <- mu v + grad`, fused with its product, then `var <- var - lr v`).
//!
//! The truncation ([`super::Truncated`]) opened `c = z' + r` with `z' = z + 2^62` in
//! `[0, 2^63)` and the helper's mask `r = R 2^f + lambda`, and gave `x = z / 2^f`. For a public
//! scalar `l` and `b = f + g` (`g` the fixed-point bits of `x l`), in integers,
//! `z l = (c - 2^62) l - r l + w l 2^64` with the wrap `w = msb(r) (1 - msb(c))`, so
//!
//! `floor(z l / 2^b) = floor((c - 2^62) l / 2^b) - floor(r l / 2^b) + w l 2^(64-b) - e`,
//! `e` in `{0, 1}`:
//!
//! 1. server 0 computes `Q = floor((c - 2^62) l / 2^b)` from the opened `c`;
//! 2. the helper, who knows `r` and `l`, deals `D = floor(r l / 2^b)` and `msb(r)` modulo
//!    `2^b` (it is only multiplied by multiples of `2^(64-b)`);
//! 3. server `i` takes `[i = 0] Q - D_i + (1 - msb(c)) l 2^(64-b) msb(r)_i`.
//!
//! The result is `x l` truncated to one ulp, more precise than `x` truncated and then the
//! product truncated again, under the same condition (`|z| < 2^62`), with no opening of its
//! own: a round fewer, and `8 + ceil(b / 8)` bytes per element from the helper instead of an
//! opening and a truncation pair (26 bytes).

use shareflow_ops::ValueKind;

use super::affine::{Affine, Top};
use super::{Lowerer, Shared, HELPER, S0, S1};
use crate::ir::{Kernel, ValueId};
use crate::options::Truncation;

/// The bias a dealer truncation adds before opening (`2^62`).
const BIAS: u64 = 1 << 62;

impl Lowerer {
    /// `x l / 2^frac_bits` for `x` a dealer truncation's output ([`super::Truncated`]) and `l`
    /// a public scalar in fixed point on server 0 and server 1 (`public`) and on the helper
    /// (`on_helper`), from the truncation's opening (see the module); `None` where `x` is not
    /// such an output or the bits do not fit a word.
    ///
    /// The result is recorded in affine form (`Q - D + 2^(64-b) (G - msb(c) G)` with
    /// `G = l msb(r)`, for a product that follows), and, if `at_most_one` (`|l| <= 1`), as
    /// no wider than `x`: its sign is exact over `64 - f` bits, as a truncation's output.
    pub fn rescaled_truncation(
        &mut self,
        x: &Shared,
        (public, on_helper): ([ValueId; 2], ValueId),
        at_most_one: bool,
        shape: &[usize],
    ) -> Option<Shared> {
        if self.options.truncation != Truncation::Dealer || !self.shape(public[0]).is_empty() {
            return None;
        }
        let t = self.truncations.get(&x.s).copied()?;
        let b = t.f + self.frac_bits();
        if b >= 64 {
            return None;
        }
        // Step 2: the helper's r = R 2^f + lambda, D and msb(r) (H) dealt.
        let r_high = self.emit_like(Kernel::Shl { bits: t.f }, &[t.r]);
        let r = self.emit_like(Kernel::Add, &[r_high, t.lambda]);
        let wide = |offset| Kernel::MulWideShr { offset, bits: b };
        let d_value = self.emit(HELPER, wide(0), &[r, on_helper], ValueKind::Ring, shape);
        let d = self.dealer_share(d_value);
        let h = self.dealer_share_low(t.h, b.div_ceil(8) as u8);
        let mut out = [t.c[0]; 2];
        let mut q = [t.c[0]; 2];
        for (i, host) in [(0, S0), (1, S1)] {
            let emit = |cx: &mut Self, kernel: Kernel, inputs: &[ValueId], dims: &[usize]| {
                cx.emit(host, kernel, inputs, ValueKind::Ring, dims)
            };
            // Step 1 (server 1's Q serves the affine form only, if a product uses it).
            q[i] = emit(self, wide(BIAS), &[t.c[i], public[i]], shape);
            // Step 3: (1 - msb(c)) l 2^(64-b) msb(r)_i - D_i (+ Q on server 0).
            let not_msb = emit(self, Kernel::XorConst { value: 1 }, &[t.msb[i]], shape);
            let l_high = emit(self, Kernel::Shl { bits: 64 - b }, &[public[i]], &[]);
            let scaled = emit(self, Kernel::Mul, &[not_msb, l_high], shape);
            let wrap = emit(self, Kernel::Mul, &[scaled, h.s[i]], shape);
            out[i] = emit(self, Kernel::Sub, &[wrap, d.s[i]], shape);
            if i == 0 {
                out[0] = emit(self, Kernel::Add, &[out[0], q[0]], shape);
            }
        }
        // The affine form, and the width that a truncation's output has, where it holds:
        // |x l| <= |x| < 2^(62 - f).
        let minus_d = self.emit_like(Kernel::Neg, &[d_value]);
        let g = self.emit(
            HELPER,
            Kernel::Mul,
            &[t.h, on_helper],
            ValueKind::Ring,
            shape,
        );
        let form = Affine {
            public: q,
            helper: minus_d,
            tops: vec![Top {
                bits: b,
                g,
                h: g,
                m: t.msb,
            }],
            sign: None,
        };
        self.affines.insert(out, form);
        if at_most_one {
            self.sign_widths.insert(out, 64 - t.f);
        }
        Some(Shared { s: out })
    }
}

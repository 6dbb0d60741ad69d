//! The share types of SecureNN besides ring shares, and the moves every algorithm makes with
//! them: the servers' common randomness, the helper dealing a value it computed, opening,
//! re-randomising with shares of zero.

use shareflow_ops::ValueKind;

use super::{field_bits, prime_for, SERVERS};
use crate::ir::{Draw, Exchange, Kernel, ValueId};
use crate::lower::{Lowerer, Shared, HELPER, S0, S1};

/// A value additively shared over Z_{2^64-1}: `s[j]` on server `j`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OddShared {
    /// Server 0's share and server 1's share.
    pub s: [ValueId; 2],
}

/// The bits of words, each shared additively over Z_p (`p`: [`PRIME`], or smaller for fewer
/// bits, [`prime_for`]): `s[j]` on server `j`, a `Small` tensor with a trailing axis of the
/// bits, least significant first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BitShares {
    /// Server 0's shares and server 1's shares.
    pub s: [ValueId; 2],
    /// The prime.
    pub p: u8,
}

/// A value both servers hold in the clear (their common randomness, or an opening): `[on
/// server 0, on server 1]`.
pub type Public = [ValueId; 2];

impl Lowerer {
    /// The same pseudo-random tensor on both servers, from their pair seed.
    pub(crate) fn servers_random(&mut self, draw: Draw, shape: &[usize]) -> Public {
        let (a, b) = self.common_random(S0, S1, draw, shape);
        [a, b]
    }

    /// A kernel on each server: `kernel(j)` with `inputs(j)`, of `kind` and `shape`.
    pub(crate) fn on_servers(
        &mut self,
        kernel: impl Fn(usize) -> Kernel,
        inputs: impl Fn(usize) -> Vec<ValueId>,
        kind: ValueKind,
        shape: &[usize],
    ) -> [ValueId; 2] {
        SERVERS.map(|host| {
            let j = usize::from(host != S0);
            self.emit(host, kernel(j), &inputs(j), kind, shape)
        })
    }

    /// A public ring word on both servers (a scalar, broadcast by the kernels).
    pub(crate) fn servers_word(&mut self, word: u64) -> Public {
        SERVERS.map(|host| self.ring_words(host, &[], vec![word]))
    }

    /// Shares over Z_{2^64-1} of an odd-ring value the helper computed (as
    /// [`Lowerer::dealer_share`] over Z_2^64): server 0's share is the expansion of its seed
    /// with the helper, server 1 receives the difference.
    pub(crate) fn helper_share_odd(&mut self, value: ValueId) -> [ValueId; 2] {
        let shape = self.shape(value).to_vec();
        let (h0, r0) = self.common_random(HELPER, S0, Draw::OddRing, &shape);
        let diff = self.emit_like(Kernel::OddSub, &[value, h0]);
        let r1 = self.send(diff, S1, Exchange::Share);
        [r0, r1]
    }

    /// The helper's shares over Z_p of the lowest `n` bits of its ring or odd-ring words `x`
    /// (`n` up to 64): server 0's is the expansion of their pair seed, server 1 receives the
    /// bits minus it.
    pub fn helper_share_bits(&mut self, x: ValueId, n: usize) -> BitShares {
        let mut lanes = self.shape(x).to_vec();
        lanes.push(n);
        let p = prime_for(n);
        let draw = Draw::Field { p };
        let (h0, r0) = self.common_random(HELPER, S0, draw, &lanes);
        let kernel = Kernel::BitsMinus { p };
        let diff = self.emit(HELPER, kernel, &[x, h0], ValueKind::Small, &lanes);
        let r1 = self.send_field(diff, S1, Exchange::Share, p);
        BitShares { s: [r0, r1], p }
    }

    /// Sends Z_p elements (a `Small` tensor) to `to`, packed in [`field_bits`]`(p)` bits each
    /// (7 for [`super::PRIME`], fewer for the primes of narrowed comparisons).
    pub fn send_field(
        &mut self,
        x: ValueId,
        to: crate::ir::Host,
        exchange: Exchange,
        p: u8,
    ) -> ValueId {
        let bits = field_bits(p) as u8;
        let shape = self.shape(x).to_vec();
        let len = shape.iter().product::<usize>();
        let from = self.low.node(x).host;
        let packed_len = (len * usize::from(bits)).div_ceil(8);
        let packed = self.emit(
            from,
            Kernel::PackSmall { bits },
            &[x],
            ValueKind::Small,
            &[packed_len],
        );
        let at = self.send(packed, to, exchange);
        self.emit(
            to,
            Kernel::UnpackSmall { bits },
            &[at],
            ValueKind::Small,
            &shape,
        )
    }

    /// The helper's shares over `kind` (ring or odd ring) of its bits `b`.
    pub(crate) fn helper_share_bit(&mut self, b: ValueId, kind: ValueKind) -> [ValueId; 2] {
        let shape = self.shape(b).to_vec();
        let word = self.emit(HELPER, Kernel::BitTo { kind }, &[b], kind, &shape);
        match kind {
            ValueKind::OddRing => self.helper_share_odd(word),
            _ => self.dealer_share(word).s,
        }
    }

    /// Opens odd-ring shares to both servers (the value must be masked).
    pub(crate) fn open_odd(&mut self, x: &OddShared) -> Public {
        let at1 = self.send(x.s[0], S1, Exchange::MaskedOpening);
        let at0 = self.send(x.s[1], S0, Exchange::MaskedOpening);
        [
            self.emit_like(Kernel::OddAdd, &[x.s[0], at0]),
            self.emit_like(Kernel::OddAdd, &[at1, x.s[1]]),
        ]
    }

    /// The paper's `+ u_j` with `u_0 + u_1 = 0`: fresh ring shares of the same value.
    pub(crate) fn rerandomise(&mut self, x: &Shared) -> Shared {
        let shape = self.shape(x.s[0]).to_vec();
        let u = self.servers_random(Draw::Ring, &shape);
        let a = self.emit(S0, Kernel::Add, &[x.s[0], u[0]], ValueKind::Ring, &shape);
        let b = self.emit(S1, Kernel::Sub, &[x.s[1], u[1]], ValueKind::Ring, &shape);
        Shared { s: [a, b] }
    }

    /// The paper's `+ u_j` over Z_{2^64-1}.
    pub(crate) fn rerandomise_odd(&mut self, x: &OddShared) -> OddShared {
        let shape = self.shape(x.s[0]).to_vec();
        let u = self.servers_random(Draw::OddRing, &shape);
        let a = self.emit(
            S0,
            Kernel::OddAdd,
            &[x.s[0], u[0]],
            ValueKind::OddRing,
            &shape,
        );
        let b = self.emit(
            S1,
            Kernel::OddSub,
            &[x.s[1], u[1]],
            ValueKind::OddRing,
            &shape,
        );
        OddShared { s: [a, b] }
    }
}

//! The comparison of PrivateCompare by a carry circuit on bit planes, for large tensors:
//! under a third of the bytes, `ceil(log2 n) - 1` rounds more (the module
//! [`shareflow_ops::ring::carry_leaves`] is in says how and why it is secure).
//!
//! Same contract as [`super::private_compare::private_compare`]: the helper holds `r`, the
//! servers hold a public `c` and a common random bit `beta`; the helper learns `beta' = beta
//! XOR (r mod 2^n > c mod 2^n)` and nothing else. Per word compared at `n = 47`: server 1
//! receives 47 bits of `r`'s planes, 23 of its pairs' products and 41 of the triples' products
//! from the helper, each server sends the other 64 bits of openings over 5 rounds and the
//! helper one bit, 30 bytes in all where PrivateCompare sends 106 (3 x 47 elements of Z_53 at
//! 6 bits) in one round.

use shareflow_ops::ring::{
    carry_dealt, carry_groups, carry_levels, carry_opened, carry_products, plane_blocks,
};
use shareflow_ops::ValueKind;

use super::Public;
use crate::ir::{Draw, Exchange, Kernel, ValueId};
use crate::lower::{Lowerer, HELPER, S0, S1};

/// `beta XOR (r > c)` on the helper (a `Small` bit per word of `c`'s shape), comparing the
/// low `n` bits (1 to 64) of the helper's ring words `r` and the servers' public words `c`.
pub fn carry_compare(cx: &mut Lowerer, r: ValueId, n: usize, c: Public, beta: Public) -> ValueId {
    let shape = cx.shape(c[0]).to_vec();
    let blocks = plane_blocks(shape.iter().product());
    let ring = ValueKind::Ring;
    let planes = [blocks, n];
    let bits = Kernel::BitPlanes { n: n as u8 };
    // The helper's planes of r, XOR-shared: server 0's the expansion of their pair seed,
    // server 1 receives the rest.
    let r_planes = cx.emit(HELPER, bits.clone(), &[r], ring, &planes);
    let dealt = [blocks, carry_dealt(n)];
    let r_pairs = cx.emit(HELPER, Kernel::CarryPairs, &[r_planes], ring, &dealt);
    let (h0, rho0) = cx.common_random(HELPER, S0, Draw::Ring, &dealt);
    let rest = cx.emit_like(Kernel::Xor, &[r_pairs, h0]);
    let rho = [rho0, cx.send(rest, S1, Exchange::Share)];
    // The first level (pairs of bits), linear in the shares of r's bits and their pairs'
    // products: no opening.
    let c_planes = cx.on_servers(|_| bits.clone(), |j| vec![c[j]], ring, &planes);
    let mut state = cx.on_servers(
        |j| Kernel::CarryLeaves { party: j as u8 },
        |j| vec![c_planes[j], rho[j]],
        ring,
        &[blocks, 2 * carry_groups(n)],
    );
    // One round per level: the servers open their operands under the helper's masks and
    // combine the groups in pairs.
    for g in carry_levels(n) {
        let groups = g as u8;
        let (k, z) = (carry_opened(g), carry_products(g));
        let (h0, m0) = cx.common_random(HELPER, S0, Draw::Ring, &[blocks, k]);
        let (h1, m1) = cx.common_random(HELPER, S1, Draw::Ring, &[blocks, k]);
        let (hz, z0) = cx.common_random(HELPER, S0, Draw::Ring, &[blocks, z]);
        let deal = Kernel::CarryDeal { groups };
        let z1 = cx.emit(HELPER, deal, &[h0, h1, hz], ring, &[blocks, z]);
        let products = [z0, cx.send(z1, S1, Exchange::Share)];
        let masks = [m0, m1];
        let open = cx.on_servers(
            |_| Kernel::CarryOpen { groups },
            |j| vec![state[j], masks[j]],
            ring,
            &[blocks, k],
        );
        let theirs = [
            cx.send(open[1], S0, Exchange::MaskedOpening),
            cx.send(open[0], S1, Exchange::MaskedOpening),
        ];
        let next = [blocks, 2 * carry_groups(g)];
        state = cx.on_servers(
            |j| Kernel::CarryCombine {
                party: j as u8,
                groups,
            },
            |j| vec![state[j], masks[j], products[j], open[j], theirs[j]],
            ring,
            &next,
        );
    }
    // The last group's G to the helper, under the servers' common u and beta.
    let u = cx.servers_random(Draw::Ring, &[blocks]);
    let out = cx.on_servers(
        |j| Kernel::CarryOut { party: j as u8 },
        |j| vec![state[j], beta[j], u[j]],
        ring,
        &[blocks],
    );
    let at = out.map(|o| cx.send(o, HELPER, Exchange::MaskedOpening));
    cx.emit(HELPER, Kernel::PlaneBits, &at, ValueKind::Small, &shape)
}

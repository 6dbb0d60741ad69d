//! Round scheduling: every exchange goes in the earliest round its data allows, except a batch
//! that would hold a cheap value back behind heavy work.
//!
//! A local node is ready in the latest round of its inputs; a send leaves in the round its
//! input is ready; its receive is ready one round later. All messages from one party to
//! another in one round then travel as one batch, so the number of rounds equals the
//! communication depth of the graph.
//!
//! **Cheap values first.** A party runs, in each round, the local work that the round's sends
//! need, then sends its batches, then the rest of the round's work (the runtime's plan). When
//! one batch holds values of very different cost (the backward pass of a convolution under
//! SecureNN: a server's share of an opening that the peer needs to start its own
//! convolutions, and the share of a value that needs this server's convolutions first), the
//! cheap value would wait for the heavy work, and the two servers would compute one after the
//! other. Such a batch is split: the values that need the heavy work leave one round later,
//! the heavy work runs after the round's sends, and the peer, once the cheap values arrive,
//! computes at the same time.
//!
//! A split is made only where the work it lets the sender defer and the work it lets the
//! receiver start with the cheap values are each at least [`MIN_OVERLAP_WORK`], and the cheap
//! values wait for at most a quarter as much (their own work and that of the sender's other
//! batches of the round, which all run before any batch leaves). It is kept only if the graph
//! needs no more rounds with it: on a slow network a round costs more than any overlap gains.
//! Each split is tried alone, in round order, at most [`MAX_TRIALS`] of them. No batch of the
//! zoo's single predictions qualifies (a test checks that their programs are scheduled at the
//! earliest rounds).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::ir::{Host, Kernel, LowGraph, LowNode, ValueId};

/// The least work (multiply-adds of a product, or elements of any other kernel) a batch's
/// later values must need beyond its cheap ones for the batch to be split, and that the
/// receiver must be able to start with the cheap ones alone: 1-2 ms of a ring product on one
/// core.
pub(crate) const MIN_OVERLAP_WORK: u64 = 1 << 22;

/// How many times cheaper the values that leave first must be than the work they no longer
/// wait for.
const CHEAP_RATIO: u64 = 4;

/// Splits tried at most (kept or not); the batches after the last one tried stay whole.
const MAX_TRIALS: usize = 256;

/// The round of every node: for a local node the round it runs in, for a send and its receive
/// the round the message travels in. Dead nodes get 0.
pub fn schedule(low: &LowGraph) -> Vec<u32> {
    let links = Links::of(low);
    let mut delayed = vec![false; low.nodes.len()];
    let mut rounds = earliest(low, &delayed);
    let mut count = round_count(low, &rounds);
    // Delays only move nodes to later rounds: the batches before a split stay as they were,
    // and the search goes on after it (a batch is split once: the values that leave first
    // stay together). Each split is tried alone and kept if the rounds do not grow.
    let mut batches = batches_of(low, &rounds);
    let mut after = None;
    for _ in 0..MAX_TRIALS {
        let Some((key, later)) = next_split(low, &links, &rounds, &batches, after) else {
            break;
        };
        after = Some(key);
        let mut trial = delayed.clone();
        for s in later {
            trial[s.0 as usize] = true;
        }
        let split = earliest(low, &trial);
        let split_count = round_count(low, &split);
        if split_count <= count {
            (delayed, rounds, count) = (trial, split, split_count);
            batches = batches_of(low, &rounds);
        }
    }
    rounds
}

/// A batch's key: (round, sender, receiver).
type BatchKey = (u32, Host, Host);

/// The users of every node, the receive of every send, and every node's [`work`].
struct Links {
    users: Vec<Vec<ValueId>>,
    recv_of: HashMap<ValueId, ValueId>,
    work: Vec<u64>,
}

impl Links {
    fn of(low: &LowGraph) -> Links {
        let mut users = vec![Vec::new(); low.nodes.len()];
        let mut recv_of = HashMap::new();
        let mut node_work = vec![0; low.nodes.len()];
        for id in low.live() {
            let node = low.node(id);
            for v in &node.inputs {
                users[v.0 as usize].push(id);
            }
            if let Kernel::Recv { send, .. } = node.kernel {
                recv_of.insert(send, id);
            }
            node_work[id.0 as usize] = work(low, node);
        }
        Links {
            users,
            recv_of,
            work: node_work,
        }
    }

    /// The work of a set of nodes.
    fn work_of<'a>(&self, nodes: impl IntoIterator<Item = &'a ValueId>) -> u64 {
        nodes
            .into_iter()
            .map(|v| self.work[v.0 as usize])
            .fold(0, u64::saturating_add)
    }
}

/// The earliest rounds, with each send in `delayed` one round after its input is ready.
fn earliest(low: &LowGraph, delayed: &[bool]) -> Vec<u32> {
    let n = low.nodes.len();
    // `ready[i]`: the first round in which node i's value can be used locally.
    let mut ready = vec![0u32; n];
    let mut round = vec![0u32; n];
    for i in 0..n {
        if low.dead[i] {
            continue;
        }
        let node = &low.nodes[i];
        let inputs_ready = node
            .inputs
            .iter()
            .map(|v| ready[v.0 as usize])
            .max()
            .unwrap_or(0);
        match node.kernel {
            Kernel::Recv { send, .. } => {
                round[i] = round[send.0 as usize];
                ready[i] = round[i] + 1;
            }
            Kernel::Send { .. } => {
                round[i] = inputs_ready + u32::from(delayed[i]);
                ready[i] = round[i];
            }
            _ => {
                round[i] = inputs_ready;
                ready[i] = inputs_ready;
            }
        }
    }
    round
}

/// The sends of every batch under `rounds`.
fn batches_of(low: &LowGraph, rounds: &[u32]) -> BTreeMap<BatchKey, Vec<ValueId>> {
    let mut batches: BTreeMap<BatchKey, Vec<ValueId>> = BTreeMap::new();
    for id in low.live() {
        let node = low.node(id);
        if let Kernel::Send { to, .. } = node.kernel {
            batches
                .entry((rounds[id.0 as usize], node.host, to))
                .or_default()
                .push(id);
        }
    }
    batches
}

/// The first of `batches` after `after` (in round, sender, receiver order) worth splitting,
/// and the sends that would leave a round later; `None` if there is none.
fn next_split(
    low: &LowGraph,
    links: &Links,
    rounds: &[u32],
    batches: &BTreeMap<BatchKey, Vec<ValueId>>,
    after: Option<BatchKey>,
) -> Option<(BatchKey, Vec<ValueId>)> {
    for (&key, sends) in batches {
        if after.is_some_and(|a| key <= a) || sends.len() < 2 {
            continue;
        }
        let (round, host, to) = key;
        // What the sender's other batches of the round need runs before any batch leaves.
        let others: HashSet<ValueId> = batches
            .range((round, host, 0)..=(round, host, Host::MAX))
            .filter(|(k, _)| k.2 != to)
            .flat_map(|(_, s)| s.iter())
            .flat_map(|&s| round_dependencies(low, rounds, round, host, s))
            .collect();
        let batch = Batch {
            round,
            host,
            to,
            sends,
        };
        if let Some(later) = batch.later_values(low, links, rounds, &others) {
            return Some((key, later));
        }
    }
    None
}

/// The sends of one party to another in one round.
struct Batch<'a> {
    round: u32,
    host: Host,
    to: Host,
    sends: &'a [ValueId],
}

impl Batch<'_> {
    /// The sends that should leave a round later: those whose local work in the round is the
    /// heavy part, if the others (with the work of `others`, the sender's other batches of the
    /// round) are cheap beside it and let the receiver start heavy work of its own. The most
    /// values that can leave first are taken.
    fn later_values(
        &self,
        low: &LowGraph,
        links: &Links,
        rounds: &[u32],
        others: &HashSet<ValueId>,
    ) -> Option<Vec<ValueId>> {
        let mut needs: Vec<(u64, ValueId, HashSet<ValueId>)> = self
            .sends
            .iter()
            .map(|&s| {
                let deps = round_dependencies(low, rounds, self.round, self.host, s);
                (links.work_of(&deps), s, deps)
            })
            .collect();
        needs.sort_by_key(|&(w, s, _)| (w, s));
        let (order, deps): (Vec<ValueId>, Vec<HashSet<ValueId>>) =
            needs.into_iter().map(|(_, s, d)| (s, d)).unzip();
        split_points(links, &deps, others)
            .into_iter()
            .rev()
            .find(|&k| {
                let (early, later) = order.split_at(k);
                self.receiver_work(low, links, rounds, early, later) >= MIN_OVERLAP_WORK
            })
            .map(|k| order[k..].to_vec())
    }

    /// The work the receiver can do in the next round with the values of `early` alone.
    fn receiver_work(
        &self,
        low: &LowGraph,
        links: &Links,
        rounds: &[u32],
        early: &[ValueId],
        later: &[ValueId],
    ) -> u64 {
        let reach = |sends: &[ValueId]| {
            let mut seen = HashSet::new();
            let mut stack: Vec<ValueId> = sends
                .iter()
                .filter_map(|s| links.recv_of.get(s).copied())
                .collect();
            while let Some(v) = stack.pop() {
                for &u in &links.users[v.0 as usize] {
                    let node = low.node(u);
                    if !node.kernel.is_exchange()
                        && node.host == self.to
                        && rounds[u.0 as usize] == self.round + 1
                        && seen.insert(u)
                    {
                        stack.push(u);
                    }
                }
            }
            seen
        };
        let waits = reach(later);
        links.work_of(reach(early).difference(&waits))
    }
}

/// The split points `k` (the first `k` sends leave first) where the work only the later
/// sends need is at least [`MIN_OVERLAP_WORK`] and [`CHEAP_RATIO`] times the work the first
/// ones wait for (theirs and `others`), for sends whose round dependencies are `deps`, in
/// increasing order. Linear in the dependencies: a node outside what the first sends wait
/// for is needed by a later one, so moving a send into the first moves its new nodes' work
/// from one sum to the other.
fn split_points(links: &Links, deps: &[HashSet<ValueId>], others: &HashSet<ValueId>) -> Vec<usize> {
    let mut first: HashSet<ValueId> = others.clone();
    let mut cheap = links.work_of(&first);
    let all: HashSet<ValueId> = deps.iter().flatten().copied().collect();
    let mut extra = links.work_of(all.difference(&first));
    let mut points = Vec::new();
    if extra < MIN_OVERLAP_WORK {
        // the later sends' work only shrinks as the split point moves
        return points;
    }
    for k in 1..deps.len() {
        for &v in &deps[k - 1] {
            if first.insert(v) {
                let w = links.work[v.0 as usize];
                cheap = cheap.saturating_add(w);
                extra = extra.saturating_sub(w);
            }
        }
        if extra >= MIN_OVERLAP_WORK && cheap.saturating_mul(CHEAP_RATIO) <= extra {
            points.push(k);
        }
    }
    points
}

/// The local nodes of `host` in `round` that `send` needs, directly or through each other.
fn round_dependencies(
    low: &LowGraph,
    rounds: &[u32],
    round: u32,
    host: Host,
    send: ValueId,
) -> HashSet<ValueId> {
    let mut seen = HashSet::new();
    let mut stack: Vec<ValueId> = low.node(send).inputs.clone();
    while let Some(v) = stack.pop() {
        let node = low.node(v);
        if !node.kernel.is_exchange()
            && node.host == host
            && rounds[v.0 as usize] == round
            && seen.insert(v)
        {
            stack.extend(node.inputs.iter().copied());
        }
    }
    seen
}

/// A node's work: multiply-adds for the products (matrix products and convolutions, their
/// gradients included), elements of its value for any other kernel (saturating: shapes are
/// checked against the limits only after scheduling).
pub(crate) fn work(low: &LowGraph, node: &LowNode) -> u64 {
    let elements = |shape: &[usize]| shape.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64));
    let input_shape = |i: usize| {
        node.inputs
            .get(i)
            .map_or(&[][..], |v| low.node(*v).shape.as_slice())
    };
    // multiply-adds per element of a convolution's output: the filter's elements per output
    // channel
    let per_output = |filter: &[usize]| match filter {
        [h, w, i, _] => elements(&[*h, *w, *i]),
        _ => 1,
    };
    let inner = || input_shape(0).get(1).map_or(1, |&k| k as u64);
    match &node.kernel {
        Kernel::MatMul => elements(&node.shape).saturating_mul(inner()),
        Kernel::Conv2d { .. } => elements(&node.shape).saturating_mul(per_output(input_shape(1))),
        Kernel::Conv2dBackpropInput { .. } => {
            elements(input_shape(0)).saturating_mul(per_output(input_shape(1)))
        }
        Kernel::Conv2dBackpropFilter { filter_shape, .. } => {
            elements(input_shape(1)).saturating_mul(per_output(filter_shape))
        }
        k if k.is_exchange() => 0,
        _ => elements(&node.shape),
    }
}

/// The number of communication rounds: one more than the last round any message travels in.
pub fn round_count(low: &LowGraph, rounds: &[u32]) -> u32 {
    low.live()
        .filter(|v| matches!(low.node(*v).kernel, Kernel::Send { .. }))
        .map(|v| rounds[v.0 as usize] + 1)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Exchange, LowNode};
    use shareflow_ops::ValueKind;

    /// A graph builder for the tests: ring nodes of given shapes.
    #[derive(Default)]
    struct Build(LowGraph);

    impl Build {
        fn node(
            &mut self,
            host: Host,
            kernel: Kernel,
            inputs: &[ValueId],
            shape: &[usize],
        ) -> ValueId {
            self.0.push(LowNode {
                host,
                kernel,
                inputs: inputs.to_vec(),
                kind: ValueKind::Ring,
                shape: shape.to_vec(),
                origin: None,
            })
        }

        fn input(&mut self, host: Host, shape: &[usize]) -> ValueId {
            let name = format!("x{}", self.0.nodes.len());
            self.node(host, Kernel::Input { name }, &[], shape)
        }

        /// Sends `v` from `host` to `to`; returns (send, receive).
        fn send(&mut self, host: Host, to: Host, v: ValueId) -> (ValueId, ValueId) {
            let shape = self.0.node(v).shape.clone();
            let exchange = Exchange::MaskedOpening;
            let send = self.node(host, Kernel::Send { to, exchange }, &[v], &shape);
            let recv = self.node(to, Kernel::Recv { from: host, send }, &[], &shape);
            (send, recv)
        }

        /// A `[n, n] x [n, n]` product of `a` and a fresh input of `host` (n^3 multiply-adds).
        fn product(&mut self, host: Host, a: ValueId, n: usize) -> ValueId {
            let b = self.input(host, &[n, n]);
            self.node(host, Kernel::MatMul, &[a, b], &[n, n])
        }
    }

    /// The graph of [`cheap_and_heavy`].
    #[derive(Clone, Copy)]
    struct Case {
        /// Party 1 computes a large product from `x` (else a cheap kernel).
        peer_works: bool,
        /// `x` is sent before `y` in program order.
        cheap_first: bool,
        /// Party 1 needs `y` only two rounds later (else at once).
        y_waits: bool,
        /// Party 0 also sends `y` to party 2 in the same round.
        y_to_third: bool,
    }

    /// Party 0 sends party 1 a cheap value `x` and a value `y` that needs a large product
    /// (round 0); party 1 computes `z` from `x` and sends it back (round 1); party 0 answers
    /// with `u` (round 2), and party 1 adds `u` and `y`. Returns the rounds of the sends of
    /// `x` and `y` to party 1 and the round count.
    fn cheap_and_heavy(case: Case) -> (u32, u32, u32) {
        let mut b = Build::default();
        let x0 = b.input(0, &[256, 256]);
        let x = b.node(0, Kernel::Neg, &[x0], &[256, 256]);
        let y = b.product(0, x0, 256);
        let (first, second) = if case.cheap_first { (x, y) } else { (y, x) };
        let (s1, r1) = b.send(0, 1, first);
        let (s2, r2) = b.send(0, 1, second);
        let (send_x, recv_x, send_y, recv_y) = if case.cheap_first {
            (s1, r1, s2, r2)
        } else {
            (s2, r2, s1, r1)
        };
        if case.y_to_third {
            let (_, at_third) = b.send(0, 2, y);
            b.node(2, Kernel::Neg, &[at_third], &[256, 256]);
        }
        let z = if case.peer_works {
            b.product(1, recv_x, 256)
        } else {
            b.node(1, Kernel::Neg, &[recv_x], &[256, 256])
        };
        if case.y_waits {
            let (_, recv_z) = b.send(1, 0, z);
            let u = b.node(0, Kernel::Neg, &[recv_z], &[256, 256]);
            let (_, recv_u) = b.send(0, 1, u);
            b.node(1, Kernel::Add, &[recv_u, recv_y], &[256, 256]);
        } else {
            b.node(1, Kernel::Add, &[z, recv_y], &[256, 256]);
        }
        let rounds = schedule(&b.0);
        let at = |v: ValueId| rounds[v.0 as usize];
        (at(send_x), at(send_y), round_count(&b.0, &rounds))
    }

    /// `x` leaves alone, a round before `y`, whatever the order of the sends, where party 1 can
    /// start a large product with `x` alone and `y` is not needed before: the graph keeps its
    /// three rounds. The batch stays whole if party 1 has nothing heavy to do with `x` alone,
    /// if it needs `y` at once (a split would add a round), or if party 0's batch to party 2
    /// needs the product too (it runs before any batch leaves).
    #[test]
    fn a_cheap_value_leaves_before_heavy_work_the_peer_can_overlap() {
        for cheap_first in [true, false] {
            let split = Case {
                peer_works: true,
                cheap_first,
                y_waits: true,
                y_to_third: false,
            };
            assert_eq!(cheap_and_heavy(split), (0, 1, 3));
            let idle_peer = Case {
                peer_works: false,
                ..split
            };
            assert_eq!(cheap_and_heavy(idle_peer), (0, 0, 3));
            let y_at_once = Case {
                y_waits: false,
                ..split
            };
            assert_eq!(cheap_and_heavy(y_at_once), (0, 0, 1));
            let y_to_third = Case {
                y_to_third: true,
                ..split
            };
            assert_eq!(cheap_and_heavy(y_to_third), (0, 0, 3));
        }
    }

    /// A batch whose work is below [`MIN_OVERLAP_WORK`] (a single prediction's products) is never
    /// split.
    #[test]
    fn small_work_keeps_the_batch_whole() {
        let mut b = Build::default();
        let x0 = b.input(0, &[128, 128]);
        let x = b.node(0, Kernel::Neg, &[x0], &[128, 128]);
        let y = b.product(0, x0, 128);
        let (send_x, recv_x) = b.send(0, 1, x);
        let (send_y, recv_y) = b.send(0, 1, y);
        let z = b.product(1, recv_x, 128);
        b.node(1, Kernel::Add, &[z, recv_y], &[128, 128]);
        assert!(work(&b.0, b.0.node(y)) < MIN_OVERLAP_WORK);
        let rounds = schedule(&b.0);
        assert_eq!(
            (rounds[send_x.0 as usize], rounds[send_y.0 as usize]),
            (0, 0)
        );
    }
}

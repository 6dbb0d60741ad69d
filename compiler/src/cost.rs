//! The static cost report: rounds and bytes per ordered party pair, in total and per layer,
//! computed from the programs without running them. Byte counts are those of the wire format
//! exactly (frame header, entry headers, payload), so they equal what the runtime measures.

use std::collections::BTreeMap;

use serde::Serialize;
use shareflow_ops::ValueKind;

use crate::ir::Kernel;
use crate::program::CompiledGraph;

/// Bytes of a frame header on the wire (magic, version, session tag, round, parties, count).
pub const FRAME_HEADER_BYTES: usize = 16;
/// Bytes of an entry header (key, kind, rank), before its dimensions and payload.
pub const ENTRY_HEADER_BYTES: usize = 6;

/// Payload bytes of a value of `kind` and `shape`.
pub fn payload_bytes(kind: ValueKind, shape: &[usize]) -> usize {
    let n: usize = shape.iter().product();
    match kind {
        ValueKind::Ring | ValueKind::OddRing => 8 * n,
        ValueKind::Small => n,
        ValueKind::Float => 4 * n,
        ValueKind::Seed => 32,
    }
}

/// Bytes of one entry on the wire: its header, its dimensions (varints: 7 bits a byte) and
/// its payload.
pub fn entry_bytes(kind: ValueKind, shape: &[usize]) -> usize {
    let dims: usize = shape
        .iter()
        .map(|&d| (usize::BITS - d.leading_zeros()).div_ceil(7).max(1) as usize)
        .sum();
    ENTRY_HEADER_BYTES + dims + payload_bytes(kind, shape)
}

/// Traffic from one party to another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Link {
    /// The sending party.
    pub from: String,
    /// The receiving party.
    pub to: String,
    /// Bytes on the link, frame headers included.
    pub bytes: u64,
    /// Batches on the link (one per round in which it carries anything).
    pub messages: u64,
}

/// A layer's traffic from one party to another: its entries (payload and entry headers) in
/// the batches on that link; the batches' frame headers are the link's, no layer's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LayerLink {
    /// The sending party.
    pub from: String,
    /// The receiving party.
    pub to: String,
    /// Bytes of the layer's entries on the link (payload and entry headers).
    pub bytes: u64,
    /// The layer's entries (tensors) on the link.
    pub entries: u64,
}

/// Traffic that one logical node (layer) causes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LayerCost {
    /// The logical node's name.
    pub layer: String,
    /// Its entries' bytes on every link (frame headers excluded).
    pub bytes: u64,
    /// Distinct rounds in which this layer's messages travel.
    pub rounds: u32,
    /// Per ordered pair of parties.
    pub links: Vec<LayerLink>,
}

/// A value that one run of a program opens to a party: an output of the graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reveal {
    /// The output's name (`logits`, `loss`, a parameter's name).
    pub name: String,
    /// The party that receives it in the clear.
    pub to: String,
    /// Its shape.
    pub shape: Vec<usize>,
}

impl std::fmt::Display for Reveal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} to {}", self.name, self.shape, self.to)
    }
}

/// Rounds and bytes of a compiled graph.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CostReport {
    /// The protocol's name (`pond` or `securenn`).
    pub protocol: String,
    /// Rounds of communication of the whole program.
    pub rounds: u32,
    /// Bytes sent by all parties, frame headers included.
    pub bytes: u64,
    /// Batches sent by all parties.
    pub messages: u64,
    /// Per ordered pair of parties that exchange anything.
    pub links: Vec<Link>,
    /// Bytes sent by each party.
    pub sent: BTreeMap<String, u64>,
    /// Per logical node, in the order of the graph (pair seeds, which belong to no node, as
    /// `(seeds)`).
    pub layers: Vec<LayerCost>,
    /// Per round: the largest number of bytes on one link (the round's transfer time).
    pub busiest_link_per_round: Vec<u64>,
    /// Per round: the bytes on every link, frame headers included.
    pub bytes_per_round: Vec<u64>,
    /// Per round: the messages (one per ordered party pair that exchanges anything).
    pub messages_per_round: Vec<u64>,
    /// What every run opens, and to whom: the graph's outputs (a prediction's logits; a
    /// training step's loss or logits when the user asked to reveal them). Empty: nothing
    /// leaves a run.
    pub reveals: Vec<Reveal>,
    /// The width of every comparison node's signs, where the program narrows them
    /// ([`crate::bounds`]); empty: every comparison over 64 bits.
    pub comparisons: Vec<crate::bounds::ComparisonWidth>,
    /// What the narrowed widths assume, one line per input (its owner checks it before
    /// sharing it).
    pub assumptions: Vec<String>,
}

impl CostReport {
    /// The report of `g`.
    pub fn of(g: &CompiledGraph) -> CostReport {
        let rounds = g.rounds as usize;
        // bytes[round][(from, to)], entries only; a non-empty batch adds a frame header.
        // Sparse: only the pairs that exchange anything (not rounds x parties^2 words).
        let mut entries: Vec<BTreeMap<(usize, usize), u64>> = vec![BTreeMap::new(); rounds];
        let mut layers: Vec<LayerCost> = Vec::new();
        let mut layer_rounds: Vec<std::collections::BTreeSet<u32>> = Vec::new();
        // The first send of each layer: ids follow the order in which the graph was lowered.
        let mut layer_first: Vec<crate::ir::ValueId> = Vec::new();
        let mut layer_links: Vec<BTreeMap<(usize, usize), (u64, u64)>> = Vec::new();
        for p in &g.programs {
            for i in &p.instrs {
                let Kernel::Send { to, .. } = i.kernel else {
                    continue;
                };
                let b = entry_bytes(i.kind, &i.shape) as u64;
                if let Some(slot) = entries.get_mut(i.round as usize) {
                    *slot.entry((p.host, to)).or_default() += b;
                }
                let name = i.origin.clone().unwrap_or_else(|| "(seeds)".into());
                let idx = match layers.iter().position(|l| l.layer == name) {
                    Some(idx) => idx,
                    None => {
                        layers.push(LayerCost {
                            layer: name,
                            ..Default::default()
                        });
                        layer_rounds.push(Default::default());
                        layer_first.push(i.id);
                        layer_links.push(BTreeMap::new());
                        layers.len() - 1
                    }
                };
                layer_first[idx] = layer_first[idx].min(i.id);
                layers[idx].bytes += b;
                let pair = layer_links[idx].entry((p.host, to)).or_default();
                *pair = (pair.0 + b, pair.1 + 1);
                layer_rounds[idx].insert(i.round);
            }
        }
        let mut links: BTreeMap<(usize, usize), Link> = BTreeMap::new();
        let mut busiest = vec![0u64; rounds];
        let mut round_bytes = vec![0u64; rounds];
        let mut round_messages = vec![0u64; rounds];
        for (r, round) in entries.iter().enumerate() {
            for (&pair, &e) in round {
                if e == 0 {
                    continue;
                }
                let frame = e + FRAME_HEADER_BYTES as u64;
                let link = links.entry(pair).or_default();
                link.bytes += frame;
                link.messages += 1;
                busiest[r] = busiest[r].max(frame);
                round_bytes[r] += frame;
                round_messages[r] += 1;
            }
        }
        // Header bytes belong to the link; spread them over no layer.
        for ((l, r), pairs) in layers.iter_mut().zip(layer_rounds).zip(layer_links) {
            l.rounds = r.len() as u32;
            l.links = pairs
                .into_iter()
                .map(|((from, to), (bytes, entries))| LayerLink {
                    from: g.parties.get(from).cloned().unwrap_or_default(),
                    to: g.parties.get(to).cloned().unwrap_or_default(),
                    bytes,
                    entries,
                })
                .collect();
        }
        let mut order: Vec<usize> = (0..layers.len()).collect();
        order.sort_by_key(|&i| layer_first[i]);
        let layers = order.into_iter().map(|i| layers[i].clone()).collect();
        let mut report = CostReport {
            protocol: g.protocol.clone(),
            rounds: g.rounds,
            layers,
            busiest_link_per_round: busiest,
            bytes_per_round: round_bytes,
            messages_per_round: round_messages,
            reveals: g
                .outputs
                .iter()
                .map(|o| Reveal {
                    name: o.name.clone(),
                    to: o.party.clone(),
                    shape: o.shape.clone(),
                })
                .collect(),
            comparisons: g
                .narrowing
                .as_ref()
                .map(|n| n.comparisons.clone())
                .unwrap_or_default(),
            assumptions: g
                .narrowing
                .as_ref()
                .map(|n| n.assumptions.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            ..Default::default()
        };
        for ((from, to), mut link) in links {
            link.from = g.parties.get(from).cloned().unwrap_or_default();
            link.to = g.parties.get(to).cloned().unwrap_or_default();
            report.bytes += link.bytes;
            report.messages += link.messages;
            *report.sent.entry(link.from.clone()).or_default() += link.bytes;
            report.links.push(link);
        }
        report
    }

    /// An estimate of the latency on a network with this round-trip time and bandwidth: every
    /// round costs half a round trip plus the transfer of its busiest link.
    pub fn latency_ms(&self, rtt_ms: f64, mbps: f64) -> f64 {
        let transfer: f64 = self
            .busiest_link_per_round
            .iter()
            .map(|&b| b as f64 * 8.0 / (mbps * 1e6) * 1e3)
            .sum();
        self.rounds as f64 * rtt_ms / 2.0 + transfer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compile, CompileOptions, ProtocolKind};
    use shareflow_graphs::GraphBuilder;

    #[test]
    fn layers_and_frame_headers_add_up_to_the_links() {
        let g = GraphBuilder::new();
        let owner = g.party("model-owner");
        let client = g.party("client");
        let x = g.input(client, "x", [2, 3]);
        let w = g.input(owner, "w", [3, 4]);
        let b = g.input(owner, "b", [4]);
        (&x.matmul(&w) + &b).output_to(client, "y");
        let c = compile(
            &g.build().unwrap(),
            ProtocolKind::Pond,
            CompileOptions::default(),
        )
        .unwrap();
        let r = c.cost();
        let layers: u64 = r.layers.iter().map(|l| l.bytes).sum();
        assert_eq!(layers + r.messages * FRAME_HEADER_BYTES as u64, r.bytes);
        for l in &r.layers {
            assert_eq!(
                l.links.iter().map(|p| p.bytes).sum::<u64>(),
                l.bytes,
                "{}",
                l.layer
            );
        }
        for link in &r.links {
            let entries: u64 = r
                .layers
                .iter()
                .flat_map(|l| &l.links)
                .filter(|p| p.from == link.from && p.to == link.to)
                .map(|p| p.bytes)
                .sum();
            assert_eq!(
                entries + link.messages * FRAME_HEADER_BYTES as u64,
                link.bytes
            );
        }
        // In the graph's order: the matmul (sharing, masks, the bias added before the
        // truncation), the reveal.
        let names: Vec<&str> = r.layers.iter().map(|l| l.layer.as_str()).collect();
        let pos = |s: &str| names.iter().position(|n| n.contains(s));
        assert!(pos("matmul") < pos("y"), "{names:?}");
        assert_eq!(pos("add"), None, "{names:?}");
        assert_eq!(r.bytes_per_round.iter().sum::<u64>(), r.bytes);
        assert_eq!(r.messages_per_round.iter().sum::<u64>(), r.messages);
        // 2 rounds of traffic per product; latency: half a round trip per round at least.
        assert!(r.latency_ms(10.0, 1e3) >= r.rounds as f64 * 5.0);
    }
}

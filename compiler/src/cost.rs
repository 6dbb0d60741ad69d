//! The static cost report: rounds and bytes per ordered party pair, in total and per layer,
//! computed from the programs without running them. Byte counts are those of the wire format
//! exactly (frame header, entry headers, payload), so they equal what the runtime measures.

use std::collections::BTreeMap;

use serde::Serialize;
use shareflow_ops::ValueKind;

use crate::ir::Kernel;
use crate::program::CompiledGraph;

/// Bytes of a frame header on the wire (magic, version, session, round, parties, count).
pub const FRAME_HEADER_BYTES: usize = 36;
/// Bytes of an entry header (key, kind, rank), before its dimensions and payload.
pub const ENTRY_HEADER_BYTES: usize = 10;

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

/// Bytes of one entry on the wire.
pub fn entry_bytes(kind: ValueKind, shape: &[usize]) -> usize {
    ENTRY_HEADER_BYTES + 8 * shape.len() + payload_bytes(kind, shape)
}

/// Traffic from one party to another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Link {
    pub from: String,
    pub to: String,
    pub bytes: u64,
    pub messages: u64,
}

/// Traffic that one logical node (layer) causes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LayerCost {
    pub layer: String,
    pub bytes: u64,
    /// Distinct rounds in which this layer's messages travel.
    pub rounds: u32,
}

/// Rounds and bytes of a compiled graph.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CostReport {
    pub protocol: String,
    pub rounds: u32,
    pub bytes: u64,
    pub messages: u64,
    /// Per ordered pair of parties that exchange anything.
    pub links: Vec<Link>,
    /// Bytes sent by each party.
    pub sent: BTreeMap<String, u64>,
    /// Per logical node, in order of first appearance.
    pub layers: Vec<LayerCost>,
    /// Per round: the largest number of bytes on one link (the round's transfer time).
    pub busiest_link_per_round: Vec<u64>,
}

impl CostReport {
    /// The report of `g`.
    pub fn of(g: &CompiledGraph) -> CostReport {
        let n = g.parties.len();
        let rounds = g.rounds as usize;
        // bytes[round][from][to], entries only; a non-empty batch adds a frame header.
        let mut entries = vec![vec![vec![0u64; n]; n]; rounds];
        let mut layers: Vec<LayerCost> = Vec::new();
        let mut layer_rounds: Vec<std::collections::BTreeSet<u32>> = Vec::new();
        for p in &g.programs {
            for i in &p.instrs {
                let Kernel::Send { to, .. } = i.kernel else { continue };
                let b = entry_bytes(i.kind, &i.shape) as u64;
                if let Some(slot) = entries.get_mut(i.round as usize) {
                    slot[p.host][to] += b;
                }
                let name = i.origin.clone().unwrap_or_else(|| "(setup)".into());
                let idx = match layers.iter().position(|l| l.layer == name) {
                    Some(idx) => idx,
                    None => {
                        layers.push(LayerCost {
                            layer: name,
                            ..Default::default()
                        });
                        layer_rounds.push(Default::default());
                        layers.len() - 1
                    }
                };
                layers[idx].bytes += b;
                layer_rounds[idx].insert(i.round);
            }
        }
        let mut links = vec![vec![Link::default(); n]; n];
        let mut busiest = vec![0u64; rounds];
        for (r, round) in entries.iter().enumerate() {
            for from in 0..n {
                for to in 0..n {
                    let e = round[from][to];
                    if e == 0 {
                        continue;
                    }
                    let frame = e + FRAME_HEADER_BYTES as u64;
                    links[from][to].bytes += frame;
                    links[from][to].messages += 1;
                    busiest[r] = busiest[r].max(frame);
                }
            }
        }
        // Header bytes belong to the link; spread them over no layer.
        for (l, r) in layers.iter_mut().zip(layer_rounds) {
            l.rounds = r.len() as u32;
        }
        let mut report = CostReport {
            protocol: g.protocol.clone(),
            rounds: g.rounds,
            layers,
            busiest_link_per_round: busiest,
            ..Default::default()
        };
        for (from, row) in links.into_iter().enumerate() {
            for (to, mut link) in row.into_iter().enumerate() {
                if link.messages == 0 {
                    continue;
                }
                link.from = g.parties[from].clone();
                link.to = g.parties[to].clone();
                report.bytes += link.bytes;
                report.messages += link.messages;
                *report.sent.entry(link.from.clone()).or_default() += link.bytes;
                report.links.push(link);
            }
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

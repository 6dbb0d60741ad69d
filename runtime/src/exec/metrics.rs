//! What a party measures while it runs: wall time (total and per kernel), rounds, and bytes
//! and messages per peer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::transport::{Transport, TransportStats};

/// Traffic with one peer during a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerTraffic {
    /// The peer's party name.
    pub peer: String,
    /// Bytes of the encoded batches (frames) sent to the peer.
    pub bytes_sent: u64,
    /// Bytes of the batches received from the peer.
    pub bytes_received: u64,
    /// Batches sent to the peer (one per round with traffic).
    pub messages_sent: u64,
    /// Batches received from the peer.
    pub messages_received: u64,
}

/// Time spent in one kind of kernel.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KernelTime {
    /// How many kernels of this kind ran.
    pub count: u64,
    /// Their total wall time, in milliseconds.
    pub ms: f64,
}

/// One party's figures for one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PartyMetrics {
    /// The party's name.
    pub party: String,
    /// Wall time of the run, in milliseconds.
    pub wall_ms: f64,
    /// Rounds of the program (the last round's index plus one).
    pub rounds: u32,
    /// Bytes sent to all peers.
    pub bytes_sent: u64,
    /// Bytes received from all peers.
    pub bytes_received: u64,
    /// Batches sent to all peers.
    pub messages_sent: u64,
    /// Traffic per peer, for the peers exchanged with.
    pub peers: Vec<PeerTraffic>,
    /// Time per kernel kind, by kernel name.
    pub kernels: BTreeMap<String, KernelTime>,
}

impl PartyMetrics {
    /// Empty figures for `party`.
    pub fn new(party: &str) -> Self {
        PartyMetrics {
            party: party.into(),
            ..Default::default()
        }
    }

    /// Adds one run of the kernel `name` that took `t`.
    pub fn record_kernel(&mut self, name: &str, t: Duration) {
        // No key allocated for the kernels seen before (nearly every call).
        let k = match self.kernels.get_mut(name) {
            Some(k) => k,
            None => self.kernels.entry(name.to_owned()).or_default(),
        };
        k.count += 1;
        k.ms += t.as_secs_f64() * 1e3;
    }

    /// Fills in time, rounds and the traffic since `before`.
    pub fn finish(
        &mut self,
        wall: Duration,
        rounds: u32,
        before: &TransportStats,
        t: &dyn Transport,
    ) {
        self.wall_ms = wall.as_secs_f64() * 1e3;
        self.rounds = rounds;
        let now = t.stats();
        for (i, p) in now.peers.iter().enumerate() {
            let b = before.peers.get(i).copied().unwrap_or_default();
            let traffic = PeerTraffic {
                peer: t.party_name(i).to_string(),
                bytes_sent: p.bytes_sent - b.bytes_sent,
                bytes_received: p.bytes_received - b.bytes_received,
                messages_sent: p.messages_sent - b.messages_sent,
                messages_received: p.messages_received - b.messages_received,
            };
            if traffic.messages_sent + traffic.messages_received > 0 {
                self.bytes_sent += traffic.bytes_sent;
                self.bytes_received += traffic.bytes_received;
                self.messages_sent += traffic.messages_sent;
                self.peers.push(traffic);
            }
        }
    }
}

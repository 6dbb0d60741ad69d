//! What a party measures while it runs: wall time (total and per kernel), rounds, and bytes
//! and messages per peer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::transport::{Transport, TransportStats};

/// Traffic with one peer during a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerTraffic {
    pub peer: String,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
}

/// Time spent in one kind of kernel.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KernelTime {
    pub count: u64,
    pub ms: f64,
}

/// One party's figures for one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PartyMetrics {
    pub party: String,
    pub wall_ms: f64,
    /// Rounds of the program (the last round's index plus one).
    pub rounds: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub messages_sent: u64,
    pub peers: Vec<PeerTraffic>,
    pub kernels: BTreeMap<String, KernelTime>,
}

impl PartyMetrics {
    pub fn new(party: &str) -> Self {
        PartyMetrics {
            party: party.into(),
            ..Default::default()
        }
    }

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

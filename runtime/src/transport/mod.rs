//! How one party's batches reach the others.
//!
//! The executor sees only the [`Transport`] trait: at most one [`Batch`] per peer per round,
//! sent with [`Transport::send`] and received with [`Transport::recv`], which waits for the batch
//! of one round from one peer (buffering batches of other rounds that arrive early) up to a
//! timeout, and then fails naming the peer and the round.
//!
//! Two implementations: [`inproc::InProcNetwork`] (every party a thread, values moved through
//! channels without serialisation) and [`quic::QuicTransport`] (one process per party, QUIC with
//! mutual TLS). Both count bytes as [`crate::wire::encoded_len`], so measured bytes equal the
//! compiler's static cost report.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::round::Round;
use crate::wire::Batch;
use crate::{Result, RuntimeError};
use quic_frame::Held;

pub mod inproc;
pub mod quic;
mod quic_close;
mod quic_conn;
mod quic_drive;
mod quic_frame;
#[cfg(test)]
mod quic_fuzz;
mod quic_hello;
mod quic_socket;
mod quic_tls;

pub use inproc::{InProcNetwork, InProcTransport};
pub use quic::QuicTransport;

/// How long [`Transport::recv`] waits by default for a batch.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One party's end of the network.
pub trait Transport: Send {
    /// My party index.
    fn me(&self) -> usize;
    /// The number of parties, me included.
    fn num_parties(&self) -> usize;
    /// The name of party `index` (for error messages); `"?"` for an index out of range.
    fn party_name(&self, index: usize) -> &str;
    /// The session id of this run; every batch must carry it.
    fn session(&self) -> [u8; 16];
    /// Sends `batch` to party `to`. The batch's `from` must be [`Transport::me`], its `to` must be
    /// `to`, and at most one batch per peer per round may be sent.
    fn send(&mut self, to: usize, batch: Batch) -> Result<()>;
    /// Waits for the batch of `round` from party `from`, up to the transport's timeout.
    fn recv(&mut self, from: usize, round: u32) -> Result<Batch>;
    /// Bytes and messages per peer so far.
    fn stats(&self) -> &TransportStats;
    /// Lets the transport do its background work (read what peers sent, acknowledge it) if it
    /// has not for a while; called between kernels. Cheap when there is nothing to do.
    fn progress(&mut self) {}

    /// An empty batch of `round` for party `to`, with this transport's session and my index.
    fn batch(&self, to: usize, round: u32) -> Batch {
        Batch::new(self.session(), round, self.me() as u16, to as u16)
    }
}

/// Traffic with one peer. Bytes are [`crate::wire::encoded_len`] of the batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Bytes sent to the peer.
    pub bytes_sent: u64,
    /// Bytes received from the peer.
    pub bytes_received: u64,
    /// Batches sent to the peer.
    pub messages_sent: u64,
    /// Batches received from the peer.
    pub messages_received: u64,
}

/// Traffic per peer, indexed by party index (my own entry stays zero).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// One entry per party.
    pub peers: Vec<PeerStats>,
}

impl TransportStats {
    /// Zero counters for `parties` parties.
    pub fn new(parties: usize) -> TransportStats {
        TransportStats {
            peers: vec![PeerStats::default(); parties],
        }
    }

    /// Total bytes sent to all peers.
    pub fn bytes_sent(&self) -> u64 {
        self.peers.iter().map(|p| p.bytes_sent).sum()
    }

    /// Total bytes received from all peers.
    pub fn bytes_received(&self) -> u64 {
        self.peers.iter().map(|p| p.bytes_received).sum()
    }

    /// Total batches sent to all peers.
    pub fn messages_sent(&self) -> u64 {
        self.peers.iter().map(|p| p.messages_sent).sum()
    }

    /// Total batches received from all peers.
    pub fn messages_received(&self) -> u64 {
        self.peers.iter().map(|p| p.messages_received).sum()
    }

    pub(crate) fn count_sent(&mut self, to: usize, bytes: usize) {
        if let Some(p) = self.peers.get_mut(to) {
            p.bytes_sent += bytes as u64;
            p.messages_sent += 1;
        }
    }

    pub(crate) fn count_received(&mut self, from: usize, bytes: usize) {
        if let Some(p) = self.peers.get_mut(from) {
            p.bytes_received += bytes as u64;
            p.messages_received += 1;
        }
    }
}

/// How many rounds ahead of the one a party waits for a peer's batch may be (see
/// [`Book::check_ahead`]).
pub(crate) const AHEAD: u32 = 8;

/// Bookkeeping shared by the transports: names, session, sent rounds, early batches, stats.
#[derive(Debug)]
pub(crate) struct Book {
    pub names: Vec<String>,
    pub me: usize,
    pub session: [u8; 16],
    pub timeout: Duration,
    pub stats: TransportStats,
    /// Per peer: the last round sent, to refuse a second batch in one round.
    sent: Vec<Option<u32>>,
    /// Per peer: batches that arrived before they were asked for, by round, each with its
    /// claim on the peer's queue (QUIC: released when the batch is taken).
    early: Vec<BTreeMap<u32, (Batch, Option<Held>)>>,
}

impl Book {
    pub fn new(names: Vec<String>, me: usize, session: [u8; 16], timeout: Duration) -> Book {
        let n = names.len();
        Book {
            names,
            me,
            session,
            timeout,
            stats: TransportStats::new(n),
            sent: vec![None; n],
            early: (0..n).map(|_| BTreeMap::new()).collect(),
        }
    }

    pub fn name(&self, index: usize) -> &str {
        self.names.get(index).map_or("?", String::as_str)
    }

    pub fn peer_error(&self, index: usize, message: impl Into<String>) -> RuntimeError {
        RuntimeError::Transport {
            peer: self.name(index).to_string(),
            message: message.into(),
        }
    }

    fn check_peer(&self, peer: usize, what: &str) -> Result<()> {
        if peer >= self.names.len() || peer == self.me {
            return Err(RuntimeError::Transport {
                peer: format!("#{peer}"),
                message: format!(
                    "cannot {what} party #{peer}: {} has {} parties and is #{}",
                    self.name(self.me),
                    self.names.len(),
                    self.me
                ),
            });
        }
        Ok(())
    }

    /// Checks an outgoing batch and records its round; returns its encoded length.
    pub fn before_send(&mut self, to: usize, batch: &Batch) -> Result<usize> {
        self.check_peer(to, "send to")?;
        if usize::from(batch.from) != self.me || usize::from(batch.to) != to {
            return Err(self.peer_error(
                to,
                format!(
                    "batch of {} is addressed from #{} to #{}, but is sent from #{} to #{to}",
                    Round(batch.round),
                    batch.from,
                    batch.to,
                    self.me
                ),
            ));
        }
        if let Some(last) = self.sent[to] {
            if batch.round <= last {
                return Err(self.peer_error(
                    to,
                    format!(
                        "a batch of {} sent after one of {}: one batch per peer per round, in \
                         increasing rounds",
                        Round(batch.round),
                        Round(last)
                    ),
                ));
            }
        }
        crate::wire::check(batch)?;
        self.sent[to] = Some(batch.round);
        Ok(crate::wire::encoded_len(batch))
    }

    /// Checks the peer index of a receive; returns an early batch of that round if one is buffered.
    pub fn before_recv(&mut self, from: usize, round: u32) -> Result<Option<Batch>> {
        self.check_peer(from, "receive from")?;
        Ok(self.take_early(from, round))
    }

    /// Takes a batch that just arrived from `from`: checks session and addressing and counts it.
    /// Returns it if it is the batch of `round`, else buffers it for later and returns `None`.
    pub fn arrived(&mut self, from: usize, round: u32, batch: Batch) -> Result<Option<Batch>> {
        self.accept(from, batch, None)?;
        Ok(self.take_early(from, round))
    }

    /// Takes a batch that just arrived from `from`: checks session and addressing, counts it and
    /// buffers it (with its claim on the peer's queue, `held`) until it is asked for.
    pub fn accept(&mut self, from: usize, batch: Batch, held: Option<Held>) -> Result<()> {
        if batch.session != crate::wire::session_tag(&self.session) {
            return Err(self.peer_error(
                from,
                format!(
                    "batch of {} belongs to session {}…, not to this session {}",
                    Round(batch.round),
                    hex(&batch.session.to_le_bytes()),
                    hex(&self.session)
                ),
            ));
        }
        if usize::from(batch.from) != from || usize::from(batch.to) != self.me {
            return Err(self.peer_error(
                from,
                format!(
                    "batch of {} is addressed from #{} to #{}, expected from #{from} to #{}",
                    Round(batch.round),
                    batch.from,
                    batch.to,
                    self.me
                ),
            ));
        }
        let Some(early) = self.early.get_mut(from) else {
            return Err(self.peer_error(from, "is not a party of this session"));
        };
        if early.contains_key(&batch.round) {
            return Err(
                self.peer_error(from, format!("sent two batches of {}", Round(batch.round)))
            );
        }
        self.stats
            .count_received(from, crate::wire::encoded_len(&batch));
        early.insert(batch.round, (batch, held));
        Ok(())
    }

    /// Checks that a batch of round `arrived` from `from`, read while this party waits for
    /// the batches of round `waiting`, is one it may still ask for and not far ahead: of round
    /// `waiting` or up to [`AHEAD`] rounds later in the same run, or of the first [`AHEAD`]
    /// rounds of a later run of a serving session (a dealer that receives nothing runs
    /// through its predictions without waiting: it may be any number of runs ahead). A peer
    /// cannot make a party buffer batches of rounds it has passed or of far rounds of a run;
    /// how many batches of later runs it may make a party hold is bounded by the queue per
    /// peer of the transport (QUIC: `quic_frame::QUEUE_PER_PEER`).
    pub fn check_ahead(&self, from: usize, waiting: u32, arrived: u32) -> Result<()> {
        let (w, a) = (Round(waiting), Round(arrived));
        let same_run = a.run() == w.run() && a.within() <= w.within().saturating_add(AHEAD);
        let later_run = a.run() > w.run() && a.within() <= AHEAD;
        if a >= w && (same_run || later_run) {
            return Ok(());
        }
        let me = self.name(self.me);
        Err(self.peer_error(
            from,
            if a < w {
                format!("sent a batch of {a} while {me} waits for {w}: that round is past")
            } else {
                format!(
                    "sent a batch of {a} while {me} waits for {w}: at most {AHEAD} rounds ahead \
                     are taken"
                )
            },
        ))
    }

    /// The buffered batch of `round` from `from`, if it has arrived.
    pub fn take_early(&mut self, from: usize, round: u32) -> Option<Batch> {
        self.early
            .get_mut(from)?
            .remove(&round)
            .map(|(batch, _)| batch)
    }

    /// A buffered batch nobody asked for: (peer, round).
    pub fn first_early(&self) -> Option<(usize, u32)> {
        self.early
            .iter()
            .enumerate()
            .find_map(|(j, m)| m.keys().next().map(|&r| (j, r)))
    }

    pub fn timeout_error(&self, from: usize, round: u32) -> RuntimeError {
        RuntimeError::Timeout {
            peer: self.name(from).to_string(),
            round,
            after: self.timeout,
        }
    }
}

/// Lower-case hex of a byte string (session ids and digests in messages).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! In-process transport: every party a thread, batches moved through channels.
//!
//! Values move without serialisation; byte counters still count
//! [`crate::wire::encoded_len`], so they equal what QUIC would carry. A party whose transport is
//! dropped (its thread finished or died) is reported by name to the others, never a hang.

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::{Book, Transport, TransportStats};
use crate::wire::Batch;
use crate::Result;

/// Builds the in-process transports of a set of parties.
#[derive(Debug)]
pub struct InProcNetwork;

impl InProcNetwork {
    /// One transport per party, in the order of `party_names`; move each into its party's thread.
    /// `timeout` bounds every [`Transport::recv`].
    // the network is nothing but its ends: `new` hands them out instead of a network value
    #[allow(clippy::new_ret_no_self)]
    pub fn new(
        party_names: Vec<String>,
        session: [u8; 16],
        timeout: Duration,
    ) -> Vec<InProcTransport> {
        let n = party_names.len();
        // channel (from, to) carries batches from `from` to `to`
        let mut senders: Vec<Vec<Option<Sender<Batch>>>> =
            (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        let mut receivers: Vec<Vec<Option<Receiver<Batch>>>> =
            (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        for from in 0..n {
            for to in 0..n {
                if from != to {
                    let (tx, rx) = channel();
                    senders[from][to] = Some(tx);
                    receivers[to][from] = Some(rx);
                }
            }
        }
        senders
            .into_iter()
            .zip(receivers)
            .enumerate()
            .map(|(me, (tx, rx))| InProcTransport {
                book: Book::new(party_names.clone(), me, session, timeout),
                tx,
                rx,
            })
            .collect()
    }
}

/// One party's end of an [`InProcNetwork`].
#[derive(Debug)]
pub struct InProcTransport {
    book: Book,
    /// Indexed by destination party.
    tx: Vec<Option<Sender<Batch>>>,
    /// Indexed by source party.
    rx: Vec<Option<Receiver<Batch>>>,
}

impl Transport for InProcTransport {
    fn me(&self) -> usize {
        self.book.me
    }

    fn num_parties(&self) -> usize {
        self.book.names.len()
    }

    fn party_name(&self, index: usize) -> &str {
        self.book.name(index)
    }

    fn session(&self) -> [u8; 16] {
        self.book.session
    }

    fn send(&mut self, to: usize, batch: Batch) -> Result<()> {
        let len = self.book.before_send(to, &batch)?;
        let Some(tx) = self.tx.get(to).and_then(Option::as_ref) else {
            return Err(self.book.peer_error(to, "no channel to this party"));
        };
        if tx.send(batch).is_err() {
            return Err(self.book.peer_error(
                to,
                "has gone: its transport was dropped (thread ended or died)",
            ));
        }
        self.book.stats.count_sent(to, len);
        Ok(())
    }

    fn recv(&mut self, from: usize, round: u32) -> Result<Batch> {
        if let Some(batch) = self.book.before_recv(from, round)? {
            return Ok(batch);
        }
        let deadline = Instant::now() + self.book.timeout;
        loop {
            let Some(rx) = self.rx.get(from).and_then(Option::as_ref) else {
                return Err(self.book.peer_error(from, "no channel from this party"));
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let batch = match rx.recv_timeout(left) {
                Ok(batch) => batch,
                Err(RecvTimeoutError::Timeout) => return Err(self.book.timeout_error(from, round)),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.book.peer_error(
                        from,
                        format!(
                            "has gone before sending its batch of {}: its transport \
                             was dropped (thread ended or died)",
                            crate::round::Round(round)
                        ),
                    ))
                }
            };
            if let Some(batch) = self.book.arrived(from, round, batch)? {
                return Ok(batch);
            }
        }
    }

    fn stats(&self) -> &TransportStats {
        &self.book.stats
    }
}

//! QUIC transport: one process per party, mutual TLS, one connection per pair of parties.
//!
//! Every party binds one quinn endpoint to its cluster address and presents its certificate;
//! peers are verified against the cluster CA only and identified by the party name in their
//! certificate. On connect, parties run a handshake (`quic_hello`): every party sends
//! its name, its graph digest and a fresh random contribution, the session id is a hash of all
//! contributions, and every party confirms that it holds the same ones (its own included); a
//! peer started with another compiled graph is refused by both sides. The API is
//! synchronous over an internal single-threaded tokio runtime: do not call it from inside an
//! async context.
//! The party's own thread drives that runtime, and a pump thread when it does not
//! (`quic_drive`).
//!
//! Failures spread: a party waiting for one peer fails at once, naming the culprit, when any
//! other peer's connection is lost or closed by a failing party; a failing party closes its
//! connections ([`QuicTransport::abort`]) with the kind of its error and the party it is about
//! as the reason (never data: see `quic_close`), so that every peer names the root
//! cause. [`QuicTransport::finish`] ends a run only when every party has finished
//! its program: a session succeeds for all parties or for none.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{Endpoint, Runtime, TokioRuntime, VarInt};
use tokio::time::{timeout, timeout_at, Instant};

use super::quic_close::{close_with, peer_failure, Close};
use super::quic_conn::{establish, Plan};
use super::quic_drive::Driver;
#[cfg(test)]
use super::quic_frame::Gauge;
use super::quic_frame::{
    closed_as_done, describe, peer_err, write_error, End, Inbox, Limits, Link, CODE_DONE,
};
use super::quic_socket::OnePacket;
use super::{quic_tls, Book, Transport, TransportStats};
use crate::cluster::ClusterConfig;
use crate::round::Round;
use crate::wire::{self, Batch};
use crate::{Result, RuntimeError};

/// How long closing waits at most for the endpoint to become idle after the last frames are
/// acknowledged.
const CLOSE_IDLE_WAIT: Duration = Duration::from_secs(1);
/// How long closing waits at most for peers to acknowledge the last frames.
const MAX_CLOSE_WAIT: Duration = Duration::from_secs(10);
/// How long an abort waits at most for its close frames to leave.
const ABORT_WAIT: Duration = Duration::from_millis(500);

/// One party's end of a QUIC cluster. End a run with [`QuicTransport::finish`] (success: waits
/// until every party has finished) or [`QuicTransport::abort`] (failure: tells every peer why).
/// Dropping it (or [`QuicTransport::close`]) closes the connections as done once every peer has
/// acknowledged every frame sent to it (waiting up to the timeout), without waiting for peers.
pub struct QuicTransport {
    book: Book,
    links: Vec<Option<Link>>,
    /// Batches and stream ends of every peer.
    inbox: Inbox,
    /// The batches read but not yet taken (at most `QUEUE_PER_PEER` per peer).
    #[cfg(test)]
    held: Arc<Gauge>,
    /// Per peer: how its incoming stream ended, once it has.
    ended: Vec<Option<End>>,
    endpoint: Endpoint,
    local: Option<SocketAddr>,
    rt: Option<Driver>,
}

impl std::fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicTransport")
            .field("me", &self.book.name(self.book.me))
            .field("local", &self.local)
            .field("session", &super::hex(&self.book.session))
            .finish_non_exhaustive()
    }
}

fn config(field: impl Into<String>, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Config {
        field: field.into(),
        message: message.into(),
    }
}

/// Checks the party list of the program against `me` and the cluster; returns my index.
fn check_parties(cluster: &ClusterConfig, me: &str, parties: &[String]) -> Result<usize> {
    if parties.len() > usize::from(u16::MAX) {
        return Err(config("parties", "more than 65535 parties"));
    }
    for (i, p) in parties.iter().enumerate() {
        if parties[..i].contains(p) {
            return Err(config(
                format!("party '{p}'"),
                "appears twice in the party list",
            ));
        }
        cluster.party(p)?;
    }
    parties.iter().position(|p| p == me).ok_or_else(|| {
        config(
            format!("party '{me}'"),
            format!(
                "unknown party; the program's parties are: {}",
                parties.join(", ")
            ),
        )
    })
}

/// Socket buffers asked for (the kernel may grant less): bursts of a fast sender must not
/// overflow the receive buffer, which QUIC would take for congestion.
const SOCKET_BUFFER: usize = 8 << 20;

/// Best effort: larger UDP socket buffers. Returns the receive buffer the kernel granted (as
/// it reports it: Linux doubles the size for its bookkeeping), if it tells.
fn enlarge_buffers(socket: &std::net::UdpSocket) -> Option<usize> {
    let state = quinn::udp::UdpSocketState::new(socket.into()).ok()?;
    if let Err(e) = state.set_recv_buffer_size(socket.into(), SOCKET_BUFFER) {
        tracing::debug!(error = %e, "cannot enlarge the UDP receive buffer");
    }
    if let Err(e) = state.set_send_buffer_size(socket.into(), SOCKET_BUFFER) {
        tracing::debug!(error = %e, "cannot enlarge the UDP send buffer");
    }
    state.recv_buffer_size(socket.into()).ok()
}

/// The flow-control window per peer on loopback: what the socket's receive buffer holds from
/// all peers at once (half the reported size is data), so that a burst never overflows it
/// while the receiving process is busy computing. A dropped datagram costs a loss-recovery
/// timeout, far more than a flow-control update; the window never limits loopback
/// throughput (window / round trip is gigabytes per second).
fn loopback_window(reported: Option<usize>, peers: usize) -> u32 {
    let data = reported.unwrap_or(212_992) / 2;
    let per_peer = data / peers.max(1);
    per_peer.clamp(64 << 10, 16 << 20) as u32
}

impl QuicTransport {
    /// Starts party `me` of a program whose parties are `parties` (in the program's index
    /// order): binds its cluster address, connects to every other party (retrying while they
    /// start, until `timeout`), checks that all run the graph with digest `graph_digest`, and
    /// agrees with them on a fresh session id to which every party contributes. `timeout` also bounds every later receive; the QUIC
    /// idle timeout is half of it, so that a crashed peer is reported (by every party, whatever
    /// it waits for) within it. Every peer may send frames up to [`wire::MAX_MESSAGE_BYTES`];
    /// [`QuicTransport::connect_limited`] bounds them by what the program receives.
    pub fn connect(
        cluster: &ClusterConfig,
        me: &str,
        parties: &[String],
        graph_digest: [u8; 32],
        timeout: Duration,
    ) -> Result<QuicTransport> {
        let frames = vec![wire::MAX_MESSAGE_BYTES; parties.len()];
        Self::connect_limited(cluster, me, parties, graph_digest, timeout, &frames)
    }

    /// [`QuicTransport::connect`], where party `j` may send frames of at most `frames[j]`
    /// bytes (the largest batch this party's program receives from it:
    /// [`crate::exec::Plan::largest_batches`]; parties beyond `frames` may send none). A
    /// longer frame is refused as soon as its length arrives, before any of it is buffered,
    /// with an error naming the peer.
    pub fn connect_limited(
        cluster: &ClusterConfig,
        me: &str,
        parties: &[String],
        graph_digest: [u8; 32],
        timeout: Duration,
        frames: &[usize],
    ) -> Result<QuicTransport> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(config(
                "runtime",
                "QuicTransport is synchronous; call it outside an async context",
            ));
        }
        let my_index = check_parties(cluster, me, parties)?;
        let addrs = parties
            .iter()
            .map(|p| cluster.socket_addr(p))
            .collect::<Result<Vec<_>>>()?;
        let loopback = addrs.iter().all(|a| a.ip().is_loopback());
        let addr = addrs[my_index];
        let socket = std::net::UdpSocket::bind(addr).map_err(|source| RuntimeError::Io {
            context: format!("party {me}: cannot bind UDP {addr} (parties.{me}.address)"),
            source,
        })?;
        let granted = enlarge_buffers(&socket);
        let window = loopback.then(|| loopback_window(granted, parties.len() - 1));
        let configs = quic_tls::configs(cluster, me, timeout, window)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| RuntimeError::Io {
                context: format!("party {me}: starting the QUIC runtime"),
                source,
            })?;
        let endpoint = {
            let _guard = rt.enter();
            let io = |source| RuntimeError::Io {
                context: format!("party {me}: starting the QUIC endpoint on {addr}"),
                source,
            };
            let runtime = Arc::new(TokioRuntime);
            let mut socket = runtime.wrap_udp_socket(socket).map_err(io)?;
            if window.is_some_and(quic_tls::one_per_datagram) {
                socket = Arc::new(OnePacket(socket));
            }
            Endpoint::new_with_abstract_socket(
                configs.endpoint,
                Some(configs.server),
                socket,
                runtime,
            )
            .map_err(io)?
        };
        let local = endpoint.local_addr().ok();
        let limits: Limits = (0..parties.len())
            .map(|j| frames.get(j).map_or(0, |&m| m.min(wire::MAX_MESSAGE_BYTES)))
            .collect();
        let plan = Plan {
            names: parties.to_vec(),
            me: my_index,
            addrs,
            digest: graph_digest,
            client: configs.client,
            timeout,
            limits: limits.clone(),
        };
        #[cfg_attr(not(test), allow(unused_variables))]
        let (session, links, inbox, held) = match rt.block_on(establish(&endpoint, &plan)) {
            Ok(out) => out,
            Err(e) => {
                // let the refusals reach the peers before the runtime stops
                rt.block_on(async {
                    let idle = endpoint.wait_idle();
                    let _ = tokio::time::timeout(Duration::from_millis(500), idle).await;
                });
                rt.shutdown_timeout(Duration::from_millis(100));
                return Err(e);
            }
        };
        let n = parties.len();
        Ok(QuicTransport {
            book: Book::new(plan.names, my_index, session, timeout),
            links,
            inbox,
            #[cfg(test)]
            held,
            ended: vec![None; n],
            endpoint,
            local,
            rt: Some(Driver::new(rt, me)),
        })
    }

    /// The UDP address this party's endpoint is bound to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// Closes cleanly (as dropping does): finishes every outgoing stream, waits until peers have
    /// acknowledged all frames (bounded by the timeout), then closes the connections. It does
    /// not wait for the peers to finish; see [`QuicTransport::finish`].
    pub fn close(mut self) {
        self.shutdown();
    }

    /// Ends a successful run: finishes every outgoing stream, then waits until every peer has
    /// finished its own (it ran its program to the end) and acknowledged all our frames, and
    /// closes the connections as done. Fails naming the peer that failed, closed, crashed, sent
    /// a batch nobody asked for, or did not finish within the timeout (measured from the last
    /// peer that finished); the peers are then told why, as by [`QuicTransport::abort`].
    pub fn finish(mut self) -> Result<()> {
        let Some(rt) = self.rt.take() else {
            return Err(self.closed());
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            self.rt = Some(rt);
            return Err(config(
                "runtime",
                "QuicTransport is synchronous; call it outside an async context",
            ));
        }
        let result = rt.block_on(self.barrier());
        match &result {
            Ok(()) => rt.block_on(async {
                for link in self.links.iter().flatten() {
                    link.conn.close(VarInt::from_u32(CODE_DONE), b"done");
                }
                self.endpoint.close(VarInt::from_u32(CODE_DONE), b"done");
                let _ = timeout(CLOSE_IDLE_WAIT, self.endpoint.wait_idle()).await;
            }),
            Err(e) => self.close_failed(&rt, e),
        }
        rt.shutdown_timeout(Duration::from_millis(100));
        result
    }

    /// Ends a failed run: closes every connection at once with the kind of `why` as the reason
    /// (never its data), so that every peer stops and names the cause.
    pub fn abort(mut self, why: &RuntimeError) {
        if let Some(rt) = self.rt.take() {
            self.close_failed(&rt, why);
            rt.shutdown_timeout(Duration::from_millis(100));
        }
    }

    fn close_failed(&self, rt: &Driver, why: &RuntimeError) {
        let conns = self.links.iter().flatten().map(|l| &l.conn);
        let me = self.book.name(self.book.me);
        close_with(conns, Close::Failed, me, &self.book.names, why);
        if tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        rt.block_on(async {
            // the close frames leave while the endpoint drains
            let _ = timeout(ABORT_WAIT, self.endpoint.wait_idle()).await;
        });
    }

    /// The barrier of [`QuicTransport::finish`].
    async fn barrier(&mut self) -> Result<()> {
        let me = self.book.name(self.book.me).to_string();
        let timeout_ = self.book.timeout;
        if let Some((from, round)) = self.book.first_early() {
            return Err(self.book.peer_error(
                from,
                format!(
                    "sent a batch of {} that {me} never asked for (another program?)",
                    Round(round)
                ),
            ));
        }
        for link in self.links.iter_mut().flatten() {
            let _ = link.send.finish();
        }
        // every peer finishes its stream
        let mut deadline = Instant::now() + timeout_;
        loop {
            if let Some((j, End::Failed(why))) = self.first_failed() {
                return Err(self.failed(j, why.clone()));
            }
            let running: Vec<usize> = (0..self.links.len())
                .filter(|&j| self.links[j].is_some() && self.ended[j].is_none())
                .collect();
            if running.is_empty() {
                break;
            }
            match timeout_at(deadline, self.inbox.recv()).await {
                Err(_) => {
                    let names: Vec<&str> = running.iter().map(|&j| self.book.name(j)).collect();
                    return Err(peer_err(
                        &names.join(", "),
                        format!(
                            "did not finish within {timeout_:?} after {me} had (still running, or \
                             stuck?)"
                        ),
                    ));
                }
                Ok(None) => return Err(peer_err(self.book.name(running[0]), "its reader stopped")),
                Ok(Some((j, Ok((batch, _))))) => {
                    return Err(self.book.peer_error(
                        j,
                        format!(
                            "sent a batch of {} after {me} had finished its program (another \
                             program?)",
                            Round(batch.round)
                        ),
                    ))
                }
                Ok(Some((j, Err(end)))) => {
                    if end == End::Finished {
                        deadline = Instant::now() + timeout_;
                    }
                    if let Some(slot) = self.ended.get_mut(j) {
                        *slot = Some(end);
                    }
                }
            }
        }
        // and has received everything we sent
        let deadline = Instant::now() + timeout_.min(MAX_CLOSE_WAIT);
        for (j, link) in self.links.iter_mut().enumerate() {
            let Some(link) = link else { continue };
            let why = match timeout_at(deadline, link.send.stopped()).await {
                Ok(Ok(None)) => continue,
                // it had everything and closed as done first
                Ok(Err(_)) if closed_as_done(&link.conn) => continue,
                Ok(Ok(Some(code))) => format!("stopped reading our stream (code {code})"),
                Ok(Err(quinn::StoppedError::ConnectionLost(e))) => describe(&e),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("did not acknowledge our last batches within {timeout_:?}"),
            };
            if let Some(failure) = peer_failure(&link.conn) {
                let peer = self.book.name(j).to_string();
                return Err(RuntimeError::PeerFailed { peer, failure });
            }
            return Err(peer_err(self.book.name(j), why));
        }
        Ok(())
    }

    /// The error of peer `j`'s failed stream: the failure it announced when it closed the
    /// connection, else `why` in words.
    fn failed(&self, j: usize, why: String) -> RuntimeError {
        let link = self.links.get(j).and_then(Option::as_ref);
        match link.and_then(|l| peer_failure(&l.conn)) {
            Some(failure) => RuntimeError::PeerFailed {
                peer: self.book.name(j).to_string(),
                failure,
            },
            None => self.book.peer_error(j, why),
        }
    }

    /// The first peer whose stream failed.
    fn first_failed(&self) -> Option<(usize, &End)> {
        self.ended.iter().enumerate().find_map(|(j, e)| match e {
            Some(end @ End::Failed(_)) => Some((j, end)),
            _ => None,
        })
    }

    fn shutdown(&mut self) {
        let Some(rt) = self.rt.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // inside an async context we cannot block: close abruptly
            self.endpoint.close(VarInt::from_u32(CODE_DONE), b"done");
            rt.shutdown_background();
            return;
        }
        let grace = self.book.timeout.min(MAX_CLOSE_WAIT);
        let (links, endpoint) = (&mut self.links, &self.endpoint);
        rt.block_on(async {
            let deadline = Instant::now() + grace;
            for link in links.iter_mut().flatten() {
                let _ = link.send.finish();
            }
            for link in links.iter_mut().flatten() {
                // resolves once the peer acknowledged all our data, or the connection ended
                let _ = timeout_at(deadline, link.send.stopped()).await;
            }
            for link in links.iter().flatten() {
                link.conn.close(VarInt::from_u32(CODE_DONE), b"done");
            }
            endpoint.close(VarInt::from_u32(CODE_DONE), b"done");
            let _ = timeout(CLOSE_IDLE_WAIT, endpoint.wait_idle()).await;
        });
        rt.shutdown_timeout(Duration::from_millis(100));
    }

    fn closed(&self) -> RuntimeError {
        peer_err(self.book.name(self.book.me), "transport is closed")
    }

    /// Fails if `from` has ended (its batch of `round` cannot come) or another peer failed.
    fn check_ended(&self, from: usize, round: u32) -> Result<()> {
        let round = Round(round);
        match self.ended.get(from) {
            Some(Some(End::Finished)) => {
                return Err(self.book.peer_error(
                    from,
                    format!("has finished: it closed its stream; its batch of {round} never came"),
                ))
            }
            Some(Some(End::Failed(why))) => {
                return Err(self.failed(from, format!("{why}; its batch of {round} never came")))
            }
            _ => {}
        }
        if let Some((j, End::Failed(why))) = self.first_failed() {
            return Err(self.failed(
                j,
                format!(
                    "{why} (while {} waited for the batch of {round} from {})",
                    self.book.name(self.book.me),
                    self.book.name(from)
                ),
            ));
        }
        Ok(())
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Transport for QuicTransport {
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
        let round = Round(batch.round);
        // The frame as chunks that quinn sends from as they are (`write_all` would copy them
        // into a buffer of its own): the length, then the batch, its large payloads not
        // copied at all.
        let mut frame = wire::encode_chunks(batch, &(len as u64).to_le_bytes())?;
        let Some(rt) = self.rt.as_ref() else {
            return Err(self.closed());
        };
        let Some(link) = self.links.get_mut(to).and_then(Option::as_mut) else {
            return Err(self.book.peer_error(to, "no connection to this party"));
        };
        let write = link.send.write_all_chunks(&mut frame);
        let written = rt.block_on_write(async { timeout(self.book.timeout, write).await });
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let why = format!("cannot send the batch of {round}: {}", write_error(&e));
                return Err(self.failed(to, why));
            }
            Err(_) => {
                return Err(self.book.peer_error(
                    to,
                    format!(
                        "did not take the batch of {round} within {:?} (not reading?)",
                        self.book.timeout
                    ),
                ))
            }
        }
        self.book.stats.count_sent(to, len);
        Ok(())
    }

    fn recv(&mut self, from: usize, round: u32) -> Result<Batch> {
        if let Some(batch) = self.book.before_recv(from, round)? {
            return Ok(batch);
        }
        if self.links.get(from).is_none_or(Option::is_none) {
            return Err(self.book.peer_error(from, "no connection to this party"));
        }
        self.check_ended(from, round)?;
        let deadline = Instant::now() + self.book.timeout;
        loop {
            let Some(rt) = self.rt.as_ref() else {
                return Err(self.closed());
            };
            let inbox = &mut self.inbox;
            let got = rt.block_on(async { timeout_at(deadline, inbox.recv()).await });
            match got {
                Err(_) => return Err(self.book.timeout_error(from, round)),
                Ok(None) => return Err(self.book.peer_error(from, "its stream reader stopped")),
                Ok(Some((j, Ok((batch, held))))) => {
                    self.book.check_ahead(j, round, batch.round)?;
                    self.book.accept(j, batch, Some(held))?;
                    if j == from {
                        if let Some(batch) = self.book.take_early(from, round) {
                            return Ok(batch);
                        }
                    }
                }
                Ok(Some((j, Err(end)))) => {
                    if let Some(slot) = self.ended.get_mut(j) {
                        *slot = Some(end);
                    }
                    self.check_ended(from, round)?;
                }
            }
        }
    }

    fn stats(&self) -> &TransportStats {
        &self.book.stats
    }

    fn progress(&mut self) {
        if let Some(rt) = self.rt.as_ref() {
            rt.progress();
        }
    }
}

#[cfg(test)]
#[path = "quic_hostile_tests.rs"]
mod hostile_tests;

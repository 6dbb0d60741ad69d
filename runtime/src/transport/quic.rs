//! QUIC transport: one process per party, mutual TLS, one connection per pair of parties.
//!
//! Every party binds one quinn endpoint to its cluster address and presents its certificate;
//! peers are verified against the cluster CA only and identified by the party name in their
//! certificate. On connect, parties exchange a hello (name, graph digest, session id chosen by
//! party 0); a peer started with another compiled graph is refused by both sides. The API is
//! synchronous over an internal tokio runtime: do not call it from inside an async context.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{Endpoint, TokioRuntime, VarInt};
use tokio::time::{timeout, timeout_at, Instant};

use super::quic_conn::{establish, Plan};
use super::quic_frame::{describe, peer_err, write_error, Link, CODE_DONE};
use super::{quic_tls, Book, Transport, TransportStats};
use crate::cluster::ClusterConfig;
use crate::wire::{self, Batch};
use crate::{Result, RuntimeError};

/// How long closing waits at most for the endpoint to become idle after the last frames are
/// acknowledged.
const CLOSE_IDLE_WAIT: Duration = Duration::from_secs(1);
/// How long closing waits at most for peers to acknowledge the last frames.
const MAX_CLOSE_WAIT: Duration = Duration::from_secs(10);

/// One party's end of a QUIC cluster. Dropping it closes the connections cleanly: it first waits
/// (up to the timeout) until every peer has acknowledged every frame sent to it.
pub struct QuicTransport {
    book: Book,
    links: Vec<Option<Link>>,
    /// Per peer: why its incoming stream ended, once it has.
    dead: Vec<Option<String>>,
    /// A reused buffer for outgoing frames.
    frame: Vec<u8>,
    endpoint: Endpoint,
    local: Option<SocketAddr>,
    rt: Option<tokio::runtime::Runtime>,
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

/// Best effort: larger UDP socket buffers.
fn enlarge_buffers(socket: &std::net::UdpSocket) {
    let Ok(state) = quinn::udp::UdpSocketState::new(socket.into()) else {
        return;
    };
    if let Err(e) = state.set_recv_buffer_size(socket.into(), SOCKET_BUFFER) {
        tracing::debug!(error = %e, "cannot enlarge the UDP receive buffer");
    }
    if let Err(e) = state.set_send_buffer_size(socket.into(), SOCKET_BUFFER) {
        tracing::debug!(error = %e, "cannot enlarge the UDP send buffer");
    }
}

impl QuicTransport {
    /// Starts party `me` of a program whose parties are `parties` (in the program's index
    /// order): binds its cluster address, connects to every other party (retrying while they
    /// start, until `timeout`), checks that all run the graph with digest `graph_digest`, and
    /// adopts party 0's fresh session id. `timeout` also bounds every later receive and is the
    /// QUIC idle timeout, so a crashed peer is reported within it.
    pub fn connect(
        cluster: &ClusterConfig,
        me: &str,
        parties: &[String],
        graph_digest: [u8; 32],
        timeout: Duration,
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
        let configs = quic_tls::configs(cluster, me, timeout, loopback)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("quic-{me}"))
            .enable_all()
            .build()
            .map_err(|source| RuntimeError::Io {
                context: format!("party {me}: starting the QUIC runtime"),
                source,
            })?;
        let addr = addrs[my_index];
        let socket = std::net::UdpSocket::bind(addr).map_err(|source| RuntimeError::Io {
            context: format!("party {me}: cannot bind UDP {addr} (parties.{me}.address)"),
            source,
        })?;
        enlarge_buffers(&socket);
        let endpoint = {
            let _guard = rt.enter();
            Endpoint::new(
                configs.endpoint,
                Some(configs.server),
                socket,
                Arc::new(TokioRuntime),
            )
            .map_err(|source| RuntimeError::Io {
                context: format!("party {me}: starting the QUIC endpoint on {addr}"),
                source,
            })?
        };
        let local = endpoint.local_addr().ok();
        let plan = Plan {
            names: parties.to_vec(),
            me: my_index,
            addrs,
            digest: graph_digest,
            client: configs.client,
            timeout,
        };
        let (session, links) = match rt.block_on(establish(&endpoint, &plan)) {
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
            dead: vec![None; n],
            frame: Vec::new(),
            endpoint,
            local,
            rt: Some(rt),
        })
    }

    /// The UDP address this party's endpoint is bound to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// Closes cleanly (as dropping does): finishes every outgoing stream, waits until peers have
    /// acknowledged all frames (bounded by the timeout), then closes the connections.
    pub fn close(mut self) {
        self.shutdown();
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
        let round = batch.round;
        self.frame.clear();
        self.frame.extend_from_slice(&(len as u64).to_le_bytes());
        wire::encode_into(&batch, &mut self.frame)?;
        drop(batch);
        let Some(rt) = self.rt.as_ref() else {
            return Err(self.closed());
        };
        let Some(link) = self.links.get_mut(to).and_then(Option::as_mut) else {
            return Err(self.book.peer_error(to, "no connection to this party"));
        };
        let write = link.send.write_all(&self.frame);
        match rt.block_on(async { timeout(self.book.timeout, write).await }) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(self.book.peer_error(
                    to,
                    format!(
                        "cannot send the batch of round {round}: {}",
                        write_error(&e)
                    ),
                ))
            }
            Err(_) => {
                return Err(self.book.peer_error(
                    to,
                    format!(
                        "did not take the batch of round {round} within {:?} (not reading?)",
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
        if let Some(why) = &self.dead[from] {
            return Err(self.book.peer_error(
                from,
                format!("{why}; its batch of round {round} never came"),
            ));
        }
        let deadline = Instant::now() + self.book.timeout;
        loop {
            let Some(rt) = self.rt.as_ref() else {
                return Err(self.closed());
            };
            let Some(link) = self.links.get_mut(from).and_then(Option::as_mut) else {
                return Err(self.book.peer_error(from, "no connection to this party"));
            };
            let got = rt.block_on(async { timeout_at(deadline, link.inbox.recv()).await });
            let batch = match got {
                Err(_) => return Err(self.book.timeout_error(from, round)),
                Ok(Some(Ok(batch))) => batch,
                Ok(Some(Err(why))) => {
                    let err = self.book.peer_error(
                        from,
                        format!("{why}; its batch of round {round} never came"),
                    );
                    self.dead[from] = Some(why);
                    return Err(err);
                }
                Ok(None) => {
                    let why = link
                        .conn
                        .close_reason()
                        .map_or_else(|| "its stream reader stopped".into(), |e| describe(&e));
                    let err = self.book.peer_error(from, why.clone());
                    self.dead[from] = Some(why);
                    return Err(err);
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

//! Connection setup of the QUIC transport (async, on its internal runtime).
//!
//! Party `i` dials every party `j > i` (retrying while it starts) and accepts every party
//! `j < i`, identified by the party name in its certificate: one connection per pair. Then
//! hellos are exchanged ([`super::quic_hello`]) and a reader task per peer is started
//! ([`super::quic_frame`]).

use std::net::SocketAddr;
use std::time::Duration;

use quinn::{Connection, ConnectionError, Endpoint};
use std::sync::Arc;

use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::Semaphore;
use tokio::time::{timeout, timeout_at, Instant};

use super::quic_close::{close_with, Close};
use super::quic_frame::{describe, peer_err, reader, Gauge, Inbox, Limits, Link, QUEUE_PER_PEER};
use super::quic_hello::{hello_all, open_all};
use super::quic_tls::peer_leaf;
use crate::{keys, Result, RuntimeError};

/// How long setup goes on after a first failure, so that peers get a clear refusal.
const SETTLE: Duration = Duration::from_millis(700);

/// Who the parties are and what this party runs.
pub(crate) struct Plan {
    pub names: Vec<String>,
    pub me: usize,
    pub addrs: Vec<SocketAddr>,
    pub digest: [u8; 32],
    pub client: quinn::ClientConfig,
    pub timeout: Duration,
    /// The longest frame each peer may send.
    pub limits: Limits,
}

fn crypto(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

/// Whether a failed handshake means that a certificate was refused (by either side).
fn is_tls_refusal(e: &ConnectionError) -> bool {
    match e {
        ConnectionError::TransportError(t) => crypto(t.code),
        ConnectionError::ConnectionClosed(c) => crypto(c.error_code),
        _ => false,
    }
}

/// A failed handshake in words, saying whose certificate was refused.
fn handshake_failure(e: &ConnectionError) -> String {
    match e {
        ConnectionError::TransportError(t) if crypto(t.code) => format!(
            "we refuse its certificate ({t}): is it signed by this cluster's CA, for this party's \
             name?"
        ),
        ConnectionError::ConnectionClosed(c) if crypto(c.error_code) => {
            format!("it refuses our certificate ({c}): is ours signed by the CA that it trusts?")
        }
        ConnectionError::TransportError(t) => t.to_string(),
        other => describe(other),
    }
}

/// Dials `name` at `addr`, retrying while it is still starting, until `deadline`.
async fn dial(
    endpoint: Endpoint,
    plan: (quinn::ClientConfig, SocketAddr, String),
    deadline: Instant,
) -> Result<Connection> {
    let (client, addr, name) = plan;
    let mut attempt = Duration::from_millis(250);
    let mut last = String::from("no answer");
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(peer_err(
                &name,
                format!("could not connect to {addr} in time: {last}"),
            ));
        }
        let connecting = endpoint
            .connect_with(client.clone(), addr, &name)
            .map_err(|e| peer_err(&name, format!("cannot dial {addr}: {e}")))?;
        match timeout(attempt.min(deadline - now), connecting).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(
                e @ (ConnectionError::TimedOut
                | ConnectionError::Reset
                | ConnectionError::LocallyClosed),
            )) => {
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(Err(e)) if is_tls_refusal(&e) => {
                return Err(peer_err(
                    &name,
                    format!(
                        "TLS handshake with {addr} failed: {}",
                        handshake_failure(&e)
                    ),
                ))
            }
            Ok(Err(e @ ConnectionError::TransportError(_))) => {
                return Err(peer_err(
                    &name,
                    format!(
                        "QUIC handshake with {addr} failed: {}",
                        handshake_failure(&e)
                    ),
                ))
            }
            Ok(Err(e)) => return Err(peer_err(&name, format!("at {addr}: {}", describe(&e)))),
            Err(_) => attempt = (attempt * 2).min(Duration::from_secs(2)),
        }
    }
}

/// Completes an incoming handshake and identifies the peer by its certificate.
/// `Ok(None)`: a stranger (not a party at a known address) was turned away.
async fn identify(
    incoming: quinn::Incoming,
    names: &[String],
    me: usize,
    addrs: &[SocketAddr],
) -> Result<Option<(usize, Connection)>> {
    let remote = incoming.remote_address();
    let at = addrs.iter().position(|a| *a == remote);
    let conn = match incoming.await {
        Ok(conn) => conn,
        // one side refused the other's certificate: fatal, if we know who is at that address
        Err(e) if is_tls_refusal(&e) => match at {
            Some(j) => {
                return Err(peer_err(
                    &names[j],
                    format!(
                        "TLS handshake from {remote} failed: {}",
                        handshake_failure(&e)
                    ),
                ));
            }
            None => {
                tracing::warn!(%remote, error = %e, "refused a stranger's certificate");
                return Ok(None);
            }
        },
        // a dial attempt that its peer gave up (it retries), or a stranger
        Err(e) => {
            tracing::debug!(%remote, error = %e, "an incoming handshake failed");
            return Ok(None);
        }
    };
    let leaf = peer_leaf(&conn);
    let named = |j: &usize| {
        leaf.as_ref()
            .is_some_and(|c| keys::names_party(c, &names[*j]))
    };
    if let Some(j) = (0..me).find(named) {
        return Ok(Some((j, conn)));
    }
    let message = "its certificate names no party that dials this one";
    let refuse = |why: &RuntimeError| {
        close_with(
            std::iter::once(&conn),
            Close::Refused,
            &names[me],
            names,
            why,
        )
    };
    match (0..names.len()).find(named).or(at) {
        Some(j) => {
            let e = peer_err(
                &names[j],
                format!("{message} (from {remote}; do both run the same party list?)"),
            );
            refuse(&e);
            Err(e)
        }
        None => {
            // a stranger learns no party name
            refuse(&RuntimeError::Handshake {
                peer: String::new(),
                message: message.into(),
            });
            tracing::warn!(%remote, "{message}");
            Ok(None)
        }
    }
}

async fn accept_loop(
    endpoint: Endpoint,
    names: Vec<String>,
    me: usize,
    addrs: Vec<SocketAddr>,
    tx: UnboundedSender<Result<(usize, Connection)>>,
) {
    while let Some(incoming) = endpoint.accept().await {
        let (names, addrs, tx) = (names.clone(), addrs.clone(), tx.clone());
        tokio::spawn(async move {
            match identify(incoming, &names, me, &addrs).await {
                Ok(None) => {}
                Ok(Some(c)) => drop(tx.send(Ok(c))),
                Err(e) => drop(tx.send(Err(e))),
            }
        });
    }
}

/// Connects to every peer (dialing higher indices, accepting lower ones) until `deadline`.
async fn connect_all(
    endpoint: &Endpoint,
    plan: &Plan,
    deadline: Instant,
) -> Result<Vec<Option<Connection>>> {
    let n = plan.names.len();
    let (tx, mut rx) = unbounded_channel();
    let mut tasks = Vec::new();
    if plan.me > 0 {
        tasks.push(tokio::spawn(accept_loop(
            endpoint.clone(),
            plan.names.clone(),
            plan.me,
            plan.addrs.clone(),
            tx.clone(),
        )));
    }
    for j in plan.me + 1..n {
        let (endpoint, tx) = (endpoint.clone(), tx.clone());
        let target = (plan.client.clone(), plan.addrs[j], plan.names[j].clone());
        tasks.push(tokio::spawn(async move {
            drop(tx.send(dial(endpoint, target, deadline).await.map(|c| (j, c))));
        }));
    }
    drop(tx);
    let mut conns: Vec<Option<Connection>> = (0..n).map(|_| None).collect();
    let mut missing = n - 1;
    // a little later than the dialers, so that their more precise errors win
    let mut until = deadline + Duration::from_millis(200);
    let mut failed: Option<RuntimeError> = None;
    while missing > 0 {
        match timeout_at(until, rx.recv()).await {
            Ok(Some(Ok((j, conn)))) if conns[j].is_none() => {
                conns[j] = Some(conn);
                missing -= 1;
            }
            Ok(Some(Ok((j, conn)))) => {
                let why = peer_err(&plan.names[j], "a second connection");
                close_all(plan, std::iter::once(&conn), &why);
            }
            Ok(Some(Err(e))) => {
                missing -= 1;
                if failed.is_none() {
                    // keep going a moment, so that handshakes in flight are answered and the
                    // peers learn why, instead of finding nobody there
                    until = until.min(Instant::now() + SETTLE);
                    failed = Some(e);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    let result = match failed {
        Some(e) => Err(e),
        None if missing > 0 => {
            let waiting: Vec<&str> = (0..n)
                .filter(|&j| j != plan.me && conns[j].is_none())
                .map(|j| plan.names[j].as_str())
                .collect();
            Err(peer_err(
                &waiting.join(", "),
                format!(
                    "did not connect within {:?} (not started, or another cluster file?)",
                    plan.timeout
                ),
            ))
        }
        None => Ok(()),
    };
    for t in tasks {
        t.abort();
    }
    endpoint.set_server_config(None);
    match result {
        Ok(()) => Ok(conns),
        Err(e) => {
            close_all(plan, conns.iter().flatten(), &e);
            Err(e)
        }
    }
}

/// Closes connections as refused, telling the peers the kind of `why` (never its data).
fn close_all<'a>(plan: &Plan, conns: impl Iterator<Item = &'a Connection>, why: &RuntimeError) {
    close_with(
        conns,
        Close::Refused,
        &plan.names[plan.me],
        &plan.names,
        why,
    );
}

/// Connects to all peers and exchanges hellos, all before `plan.timeout` has passed; then
/// starts a reader per peer, each with a queue of [`QUEUE_PER_PEER`] batches, all counted in
/// the returned [`Gauge`].
pub(crate) async fn establish(
    endpoint: &Endpoint,
    plan: &Plan,
) -> Result<([u8; 16], Vec<Option<Link>>, Inbox, Arc<Gauge>)> {
    let deadline = Instant::now() + plan.timeout;
    let conns = connect_all(endpoint, plan, deadline).await?;
    let mut sends = match open_all(&conns, plan, deadline).await {
        Ok(s) => s,
        Err(e) => {
            close_all(plan, conns.iter().flatten(), &e);
            return Err(e);
        }
    };
    match hello_all(&conns, &mut sends, plan, deadline).await {
        Ok((session, recvs)) => {
            let (tx, inbox) = unbounded_channel();
            let gauge = Arc::new(Gauge::default());
            let links = conns
                .into_iter()
                .zip(sends)
                .zip(recvs)
                .enumerate()
                .map(|(j, ((c, s), r))| match (c, s, r) {
                    (Some(conn), Some(send), Some(recv)) => {
                        let queue = Arc::new(Semaphore::new(QUEUE_PER_PEER));
                        tokio::spawn(reader(
                            j,
                            conn.clone(),
                            recv,
                            tx.clone(),
                            (plan.limits.clone(), queue, Arc::clone(&gauge)),
                        ));
                        Some(Link { conn, send })
                    }
                    _ => None,
                })
                .collect();
            Ok((session, links, inbox, gauge))
        }
        Err(e) => {
            // let our hello reach the peers, so that each sees the mismatch for itself
            let grace = Instant::now() + Duration::from_millis(500);
            for s in sends.iter_mut().flatten() {
                let _ = s.finish();
            }
            for s in sends.iter_mut().flatten() {
                let _ = timeout_at(grace, s.stopped()).await;
            }
            close_all(plan, conns.iter().flatten(), &e);
            Err(e)
        }
    }
}

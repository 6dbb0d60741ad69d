//! Connection setup and frame I/O of the QUIC transport (async, on its internal runtime).
//!
//! Party `i` dials every party `j > i` and accepts every party `j < i`: one connection per pair,
//! then one unidirectional stream per direction carrying length-prefixed frames (u64 LE length,
//! then the bytes). The first frame of each stream is a hello (party name, graph digest,
//! session id); the session id is chosen by party 0 and adopted by all.

use std::net::SocketAddr;
use std::time::Duration;

use quinn::{Connection, ConnectionError, Endpoint, ReadError, ReadExactError, RecvStream};
use quinn::{SendStream, VarInt, WriteError};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::time::{timeout, timeout_at, Instant};

use super::hex;
use super::quic_tls::peer_leaf;
use crate::wire::{self, Batch};
use crate::{keys, Result, RuntimeError};

/// Application close code of a party that finished normally.
pub(crate) const CODE_DONE: u32 = 0;
/// Application close code of a party that refuses a peer (hello mismatch, setup failure).
pub(crate) const CODE_REFUSED: u32 = 1;
const HELLO_MAGIC: [u8; 4] = *b"SFHI";
const HELLO_VERSION: u16 = 1;
const MAX_HELLO: usize = 4096;
/// How long setup goes on after a first failure, so that peers get a clear refusal.
const SETTLE: Duration = Duration::from_millis(700);

/// What arrives from a peer's reader task: a batch, or why the stream ended.
pub(crate) type Arrival = std::result::Result<Batch, String>;

/// An established link to one peer.
pub(crate) struct Link {
    pub conn: Connection,
    pub send: SendStream,
    pub inbox: UnboundedReceiver<Arrival>,
}

/// Who the parties are and what this party runs.
pub(crate) struct Plan {
    pub names: Vec<String>,
    pub me: usize,
    pub addrs: Vec<SocketAddr>,
    pub digest: [u8; 32],
    pub client: quinn::ClientConfig,
    pub timeout: Duration,
}

pub(crate) fn peer_err(peer: &str, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Transport {
        peer: peer.to_string(),
        message: message.into(),
    }
}

/// A connection error in words.
pub(crate) fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ApplicationClosed(c) if c.error_code == VarInt::from_u32(CODE_DONE) => {
            "has finished and closed the connection".into()
        }
        ConnectionError::ApplicationClosed(c) => format!(
            "closed the connection: {}",
            String::from_utf8_lossy(&c.reason)
        ),
        ConnectionError::ConnectionClosed(c) => format!("aborted the connection: {c}"),
        ConnectionError::TimedOut => {
            "connection lost: no packets within the idle timeout (crashed, or network down)".into()
        }
        ConnectionError::Reset => "connection reset (the peer restarted?)".into(),
        other => format!("connection failed: {other}"),
    }
}

fn read_error(e: &ReadError) -> String {
    match e {
        ReadError::ConnectionLost(c) => describe(c),
        ReadError::Reset(code) => format!("reset its stream (code {code})"),
        other => format!("read failed: {other}"),
    }
}

pub(crate) fn write_error(e: &WriteError) -> String {
    match e {
        WriteError::ConnectionLost(c) => describe(c),
        WriteError::Stopped(code) => format!("stopped reading our stream (code {code})"),
        other => format!("write failed: {other}"),
    }
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
async fn read_frame(
    recv: &mut RecvStream,
    max: usize,
) -> std::result::Result<Option<Vec<u8>>, String> {
    let mut len = [0u8; 8];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(ReadExactError::FinishedEarly(n)) => {
            return Err(format!(
                "stream ended inside a frame length ({n} of 8 bytes)"
            ))
        }
        Err(ReadExactError::ReadError(e)) => return Err(read_error(&e)),
    }
    let len = u64::from_le_bytes(len);
    if len > max as u64 {
        return Err(format!("announced a frame of {len} bytes (at most {max})"));
    }
    let len = len as usize;
    let mut buf = Vec::with_capacity(len.min(256 << 20));
    while buf.len() < len {
        match recv.read_chunk(len - buf.len(), true).await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) => {
                return Err(format!(
                    "stream ended inside a frame ({} of {len} bytes)",
                    buf.len()
                ))
            }
            Err(e) => return Err(read_error(&e)),
        }
    }
    Ok(Some(buf))
}

/// A frame: u64 LE length, then `body`.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads batches from a peer's stream until it ends, forwarding them (or why it ended).
async fn reader(mut recv: RecvStream, tx: UnboundedSender<Arrival>) {
    loop {
        let arrival = match read_frame(&mut recv, wire::MAX_MESSAGE_BYTES).await {
            Ok(Some(bytes)) => {
                wire::decode(&bytes).map_err(|e| format!("sent an invalid batch: {e}"))
            }
            Ok(None) => Err("has finished: it closed its stream".into()),
            Err(message) => Err(message),
        };
        let last = arrival.is_err();
        if tx.send(arrival).is_err() || last {
            return;
        }
    }
}

fn fresh_session() -> [u8; 16] {
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    let mut session = [0u8; 16];
    rand_chacha::ChaCha20Rng::from_os_rng().fill_bytes(&mut session);
    session
}

struct Hello {
    name: String,
    digest: [u8; 32],
    session: [u8; 16],
}

fn hello_bytes(name: &str, digest: &[u8; 32], session: &[u8; 16]) -> Vec<u8> {
    let mut body = Vec::with_capacity(56 + name.len());
    body.extend_from_slice(&HELLO_MAGIC);
    body.extend_from_slice(&HELLO_VERSION.to_le_bytes());
    body.extend_from_slice(session);
    body.extend_from_slice(digest);
    body.extend_from_slice(&(name.len() as u16).to_le_bytes());
    body.extend_from_slice(name.as_bytes());
    frame(&body)
}

fn parse_hello(b: &[u8]) -> std::result::Result<Hello, String> {
    if b.len() < 56 || b[..4] != HELLO_MAGIC {
        return Err("sent something that is not a shareflow hello".into());
    }
    let version = u16::from_le_bytes([b[4], b[5]]);
    if version != HELLO_VERSION {
        return Err(format!(
            "speaks hello version {version}, we speak {HELLO_VERSION}"
        ));
    }
    let mut session = [0u8; 16];
    session.copy_from_slice(&b[6..22]);
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&b[22..54]);
    let len = usize::from(u16::from_le_bytes([b[54], b[55]]));
    let name = b
        .get(56..56 + len)
        .filter(|_| b.len() == 56 + len)
        .and_then(|n| std::str::from_utf8(n).ok())
        .ok_or("sent a hello with a malformed party name")?;
    Ok(Hello {
        name: name.to_string(),
        digest,
        session,
    })
}

/// Whether a failed handshake means that a certificate was refused (by either side).
fn is_tls_refusal(e: &ConnectionError) -> bool {
    let crypto = |code: quinn::TransportErrorCode| (0x100..0x200).contains(&u64::from(code));
    match e {
        ConnectionError::TransportError(t) => crypto(t.code),
        ConnectionError::ConnectionClosed(c) => crypto(c.error_code),
        _ => false,
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
            Ok(Err(ConnectionError::TransportError(e))) => {
                return Err(peer_err(
                    &name,
                    format!("TLS/QUIC handshake with {addr} failed: {e}"),
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
        Err(e) if is_tls_refusal(&e) && at.is_some() => {
            let j = at.unwrap_or_default();
            let message = match &e {
                ConnectionError::TransportError(t) => t.to_string(),
                other => describe(other),
            };
            return Err(peer_err(
                &names[j],
                format!("TLS handshake from {remote} failed: {message}"),
            ));
        }
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
    conn.close(VarInt::from_u32(CODE_REFUSED), message.as_bytes());
    match (0..names.len()).find(named).or(at) {
        Some(j) => Err(peer_err(
            &names[j],
            format!("{message} (from {remote}; do both run the same party list?)"),
        )),
        None => {
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
            Ok(Some(Ok((_, conn)))) => {
                conn.close(VarInt::from_u32(CODE_REFUSED), b"duplicate connection")
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
            close_all(&plan.names[plan.me], conns.iter().flatten(), &e);
            Err(e)
        }
    }
}

/// Closes connections as refused, telling the peers why.
pub(crate) fn close_all<'a>(
    me: &str,
    conns: impl Iterator<Item = &'a Connection>,
    why: &RuntimeError,
) {
    let mut reason = format!("{me} refuses: {why}");
    let mut cut = reason.len().min(400);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    reason.truncate(cut);
    for c in conns {
        c.close(VarInt::from_u32(CODE_REFUSED), reason.as_bytes());
    }
}

/// Accepts the peer's stream and reads its hello.
async fn read_hello(
    conn: &Connection,
    name: &str,
    deadline: Instant,
) -> Result<(RecvStream, Hello)> {
    let late = || peer_err(name, "sent no hello in time");
    let mut recv = match timeout_at(deadline, conn.accept_uni()).await {
        Err(_) => return Err(late()),
        Ok(Err(e)) => return Err(peer_err(name, describe(&e))),
        Ok(Ok(r)) => r,
    };
    let bytes = match timeout_at(deadline, read_frame(&mut recv, MAX_HELLO)).await {
        Err(_) => return Err(late()),
        Ok(Err(m)) => return Err(peer_err(name, m)),
        Ok(Ok(None)) => return Err(peer_err(name, "closed its stream before its hello")),
        Ok(Ok(Some(b))) => b,
    };
    let hello = parse_hello(&bytes).map_err(|m| peer_err(name, m))?;
    Ok((recv, hello))
}

fn check_hello(hello: &Hello, name: &str, plan: &Plan, session: &[u8; 16]) -> Result<()> {
    if hello.name != name {
        return Err(peer_err(
            name,
            format!("introduced itself as '{}'", hello.name),
        ));
    }
    if hello.digest != plan.digest {
        return Err(peer_err(name, format!(
            "runs another compiled graph (its digest {}, ours {}): start every party with the same compiled graph",
            hex(&hello.digest), hex(&plan.digest)
        )));
    }
    if &hello.session != session {
        return Err(peer_err(
            name,
            format!(
                "is in session {}, we are in session {} (a party from another run?)",
                hex(&hello.session),
                hex(session)
            ),
        ));
    }
    Ok(())
}

/// Opens my stream to every peer.
async fn open_all(
    conns: &[Option<Connection>],
    plan: &Plan,
    deadline: Instant,
) -> Result<Vec<Option<SendStream>>> {
    let mut sends = Vec::with_capacity(conns.len());
    for (j, conn) in conns.iter().enumerate() {
        sends.push(match conn {
            Some(conn) => Some(
                timeout_at(deadline, conn.open_uni())
                    .await
                    .map_err(|_| peer_err(&plan.names[j], "no stream credit in time"))?
                    .map_err(|e| peer_err(&plan.names[j], describe(&e)))?,
            ),
            None => None,
        });
    }
    Ok(sends)
}

/// Exchanges hellos over established connections; returns the session and the peers' streams.
async fn hello_all(
    conns: &[Option<Connection>],
    sends: &mut [Option<SendStream>],
    plan: &Plan,
    deadline: Instant,
) -> Result<([u8; 16], Vec<Option<RecvStream>>)> {
    let n = conns.len();
    let mut recvs: Vec<Option<RecvStream>> = (0..n).map(|_| None).collect();
    let mut first = None;
    let session = match &conns[0] {
        Some(c0) if plan.me > 0 => {
            let (recv, hello) = read_hello(c0, &plan.names[0], deadline).await?;
            recvs[0] = Some(recv);
            let session = hello.session;
            first = Some(hello);
            session
        }
        _ => fresh_session(),
    };
    let me_hello = hello_bytes(&plan.names[plan.me], &plan.digest, &session);
    for (j, s) in sends.iter_mut().enumerate() {
        if let Some(s) = s {
            match timeout_at(deadline, s.write_all(&me_hello)).await {
                Err(_) => return Err(peer_err(&plan.names[j], "did not take our hello in time")),
                Ok(Err(e)) => return Err(peer_err(&plan.names[j], write_error(&e))),
                Ok(Ok(())) => {}
            }
        }
    }
    if let Some(hello) = &first {
        check_hello(hello, &plan.names[0], plan, &session)?;
    }
    let rest: Vec<usize> = (0..n)
        .filter(|&j| j != plan.me && recvs[j].is_none())
        .collect();
    for j in rest {
        if let Some(c) = &conns[j] {
            let (recv, hello) = read_hello(c, &plan.names[j], deadline).await?;
            check_hello(&hello, &plan.names[j], plan, &session)?;
            recvs[j] = Some(recv);
        }
    }
    Ok((session, recvs))
}

/// Connects to all peers and exchanges hellos, all before `plan.timeout` has passed.
pub(crate) async fn establish(
    endpoint: &Endpoint,
    plan: &Plan,
) -> Result<([u8; 16], Vec<Option<Link>>)> {
    let deadline = Instant::now() + plan.timeout;
    let me = plan.names[plan.me].as_str();
    let conns = connect_all(endpoint, plan, deadline).await?;
    let mut sends = match open_all(&conns, plan, deadline).await {
        Ok(s) => s,
        Err(e) => {
            close_all(me, conns.iter().flatten(), &e);
            return Err(e);
        }
    };
    match hello_all(&conns, &mut sends, plan, deadline).await {
        Ok((session, recvs)) => {
            let links = conns
                .into_iter()
                .zip(sends)
                .zip(recvs)
                .map(|((c, s), r)| match (c, s, r) {
                    (Some(conn), Some(send), Some(recv)) => {
                        let (tx, inbox) = unbounded_channel();
                        tokio::spawn(reader(recv, tx));
                        Some(Link { conn, send, inbox })
                    }
                    _ => None,
                })
                .collect();
            Ok((session, links))
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
            close_all(me, conns.iter().flatten(), &e);
            Err(e)
        }
    }
}

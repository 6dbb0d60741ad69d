//! The hello exchange of the QUIC transport: on every new stream, the first frame names the
//! party, the digest of the compiled graph it runs and the session id. Party 0 chooses a fresh
//! session id; every other party adopts it from party 0's hello before sending its own.

use quinn::{Connection, RecvStream, SendStream};
use tokio::time::{timeout_at, Instant};

use super::hex;
use super::quic_conn::Plan;
use super::quic_frame::{describe, frame, peer_err, read_frame, write_error};
use crate::Result;

pub(super) const HELLO_MAGIC: [u8; 4] = *b"SFHI";
const HELLO_VERSION: u16 = 1;
pub(super) const MAX_HELLO: usize = 4096;

fn fresh_session() -> [u8; 16] {
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    let mut session = [0u8; 16];
    rand_chacha::ChaCha20Rng::from_os_rng().fill_bytes(&mut session);
    session
}

pub(super) struct Hello {
    pub name: String,
    pub digest: [u8; 32],
    pub session: [u8; 16],
}

pub(super) fn hello_bytes(name: &str, digest: &[u8; 32], session: &[u8; 16]) -> Vec<u8> {
    let mut body = Vec::with_capacity(56 + name.len());
    body.extend_from_slice(&HELLO_MAGIC);
    body.extend_from_slice(&HELLO_VERSION.to_le_bytes());
    body.extend_from_slice(session);
    body.extend_from_slice(digest);
    body.extend_from_slice(&(name.len() as u16).to_le_bytes());
    body.extend_from_slice(name.as_bytes());
    frame(&body)
}

pub(super) fn parse_hello(b: &[u8]) -> std::result::Result<Hello, String> {
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
    let mut bytes = Vec::new();
    match timeout_at(deadline, read_frame(&mut recv, MAX_HELLO, &mut bytes)).await {
        Err(_) => return Err(late()),
        Ok(Err(m)) => return Err(peer_err(name, m)),
        Ok(Ok(false)) => return Err(peer_err(name, "closed its stream before its hello")),
        Ok(Ok(true)) => {}
    }
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
pub(crate) async fn open_all(
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
pub(crate) async fn hello_all(
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

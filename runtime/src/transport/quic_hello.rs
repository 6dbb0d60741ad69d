//! The handshake of the QUIC transport, on the one stream per direction, before any batch:
//!
//! 1. **Hello.** Every party sends every peer a hello: its name, the digest of the compiled
//!    graph it runs, and a fresh 32-byte random contribution (from the OS, new for every
//!    connection). It reads every peer's hello and checks the name (the one in the peer's
//!    certificate) and the digest.
//! 2. **Session.** The session id is the first 16 bytes of SHA-256 over a label, the graph
//!    digest and every party's contribution in party order ([`session_id`]): it is fresh as
//!    long as any one party is honest, whoever replays old hellos.
//! 3. **Confirm.** Every party sends every peer the contributions it used, in party order, and
//!    checks each peer's list against its own: a peer that saw our contribution altered or
//!    missing, or another party's contribution differently (a party that sent different hellos
//!    to different peers), is refused. Only then does the run start.
//!
//! Sending does not wait for reading, so no party waits for another to speak first.

use quinn::{Connection, RecvStream, SendStream};
use tokio::time::{timeout_at, Instant};

use super::hex;
use super::quic_conn::Plan;
use super::quic_frame::{describe, frame, peer_err, read_frame, write_error};
use crate::{Result, RuntimeError};

pub(super) const HELLO_MAGIC: [u8; 4] = *b"SFHI";
const CONFIRM_MAGIC: [u8; 4] = *b"SFOK";
const HELLO_VERSION: u16 = 2;
pub(super) const MAX_HELLO: usize = 4096;
/// Bytes of a hello before the party name: magic, version, contribution, digest, name length.
const HELLO_HEAD: usize = 4 + 2 + 32 + 32 + 2;
/// The label of the session hash.
const SESSION_LABEL: &[u8] = b"shareflow session v2";

/// A party's random share of the session id.
pub(crate) type Contribution = [u8; 32];

fn refused(peer: &str, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Handshake {
        peer: peer.to_string(),
        message: message.into(),
    }
}

fn fresh_contribution() -> Contribution {
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    let mut c = [0u8; 32];
    rand_chacha::ChaCha20Rng::from_os_rng().fill_bytes(&mut c);
    c
}

/// The session id of a run of the graph with digest `digest` whose parties contributed
/// `contributions` (in party order).
pub(crate) fn session_id(digest: &[u8; 32], contributions: &[Contribution]) -> [u8; 16] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(SESSION_LABEL);
    ctx.update(digest);
    ctx.update(&(contributions.len() as u64).to_le_bytes());
    for c in contributions {
        ctx.update(c);
    }
    let mut session = [0u8; 16];
    session.copy_from_slice(&ctx.finish().as_ref()[..16]);
    session
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hello {
    pub name: String,
    pub digest: [u8; 32],
    pub contribution: Contribution,
}

pub(super) fn hello_bytes(name: &str, digest: &[u8; 32], contribution: &Contribution) -> Vec<u8> {
    let mut body = Vec::with_capacity(HELLO_HEAD + name.len());
    body.extend_from_slice(&HELLO_MAGIC);
    body.extend_from_slice(&HELLO_VERSION.to_le_bytes());
    body.extend_from_slice(contribution);
    body.extend_from_slice(digest);
    body.extend_from_slice(&(name.len() as u16).to_le_bytes());
    body.extend_from_slice(name.as_bytes());
    frame(&body)
}

fn check_version(b: &[u8], magic: [u8; 4], what: &str) -> std::result::Result<(), String> {
    if b.len() < 6 || b[..4] != magic {
        return Err(format!("sent something that is not a shareflow {what}"));
    }
    let version = u16::from_le_bytes([b[4], b[5]]);
    if version != HELLO_VERSION {
        return Err(format!(
            "speaks handshake version {version}, we speak {HELLO_VERSION}"
        ));
    }
    Ok(())
}

pub(super) fn parse_hello(b: &[u8]) -> std::result::Result<Hello, String> {
    check_version(b, HELLO_MAGIC, "hello")?;
    if b.len() < HELLO_HEAD {
        return Err("sent a truncated hello".into());
    }
    let mut contribution = [0u8; 32];
    contribution.copy_from_slice(&b[6..38]);
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&b[38..70]);
    let len = usize::from(u16::from_le_bytes([b[70], b[71]]));
    let name = b
        .get(HELLO_HEAD..HELLO_HEAD + len)
        .filter(|_| b.len() == HELLO_HEAD + len)
        .and_then(|n| std::str::from_utf8(n).ok())
        .ok_or("sent a hello with a malformed party name")?;
    Ok(Hello {
        name: name.to_string(),
        digest,
        contribution,
    })
}

fn confirm_bytes(contributions: &[Contribution]) -> Vec<u8> {
    let mut body = Vec::with_capacity(8 + 32 * contributions.len());
    body.extend_from_slice(&CONFIRM_MAGIC);
    body.extend_from_slice(&HELLO_VERSION.to_le_bytes());
    body.extend_from_slice(&(contributions.len() as u16).to_le_bytes());
    for c in contributions {
        body.extend_from_slice(c);
    }
    frame(&body)
}

/// The handshake of one party, without the network: what it sends and what it checks.
pub(crate) struct Handshake<'a> {
    names: &'a [String],
    me: usize,
    digest: [u8; 32],
    /// Per party, its contribution once known (mine from the start).
    contributions: Vec<Option<Contribution>>,
}

impl<'a> Handshake<'a> {
    /// Party `me` of `names`, running the graph with digest `digest`, with a fresh contribution.
    pub fn new(names: &'a [String], me: usize, digest: [u8; 32]) -> Handshake<'a> {
        Handshake::with_contribution(names, me, digest, fresh_contribution())
    }

    fn with_contribution(
        names: &'a [String],
        me: usize,
        digest: [u8; 32],
        mine: Contribution,
    ) -> Handshake<'a> {
        let mut contributions = vec![None; names.len()];
        contributions[me] = Some(mine);
        Handshake {
            names,
            me,
            digest,
            contributions,
        }
    }

    fn name(&self, j: usize) -> &str {
        self.names.get(j).map_or("?", String::as_str)
    }

    /// My hello frame (the same for every peer).
    pub fn hello(&self) -> Vec<u8> {
        let mine = self.contributions[self.me].unwrap_or_default();
        hello_bytes(self.name(self.me), &self.digest, &mine)
    }

    /// Takes peer `j`'s hello frame: checks its name and graph, records its contribution.
    pub fn on_hello(&mut self, j: usize, bytes: &[u8]) -> Result<()> {
        let name = self.name(j).to_string();
        let hello = parse_hello(bytes).map_err(|m| refused(&name, m))?;
        if hello.name != name {
            return Err(refused(
                &name,
                format!("introduced itself as '{}'", hello.name),
            ));
        }
        if hello.digest != self.digest {
            return Err(refused(&name, format!(
                "runs another compiled graph (its digest {}, ours {}): start every party with the same compiled graph",
                hex(&hello.digest), hex(&self.digest)
            )));
        }
        match self.contributions.get_mut(j) {
            Some(slot @ None) if j != self.me => *slot = Some(hello.contribution),
            _ => return Err(refused(&name, "sent a second hello")),
        }
        Ok(())
    }

    /// Every party's contribution, once every hello has arrived.
    fn all(&self) -> Result<Vec<Contribution>> {
        self.contributions
            .iter()
            .enumerate()
            .map(|(j, c)| c.ok_or_else(|| refused(self.name(j), "sent no hello")))
            .collect()
    }

    /// The session id, once every hello has arrived.
    pub fn session(&self) -> Result<[u8; 16]> {
        Ok(session_id(&self.digest, &self.all()?))
    }

    /// My confirm frame: every contribution I use, in party order.
    pub fn confirm(&self) -> Result<Vec<u8>> {
        Ok(confirm_bytes(&self.all()?))
    }

    /// Takes peer `j`'s confirm frame: its contributions must be mine, my own included.
    pub fn on_confirm(&self, j: usize, b: &[u8]) -> Result<()> {
        let name = self.name(j);
        check_version(b, CONFIRM_MAGIC, "handshake confirmation").map_err(|m| refused(name, m))?;
        let ours = self.all()?;
        let n = b
            .get(6..8)
            .map(|n| usize::from(u16::from_le_bytes([n[0], n[1]])));
        if n != Some(ours.len()) || b.len() != 8 + 32 * ours.len() {
            return Err(refused(
                name,
                format!(
                    "confirmed a session of {} parties, ours has {}",
                    n.map_or("?".into(), |n| n.to_string()),
                    ours.len()
                ),
            ));
        }
        let theirs: Vec<&[u8]> = b[8..].chunks_exact(32).collect();
        if theirs[self.me] != ours[self.me] {
            return Err(refused(
                name,
                format!(
                    "confirmed a session without our contribution (ours {}, it has {}): a hello \
                     of ours was altered or replaced on the way",
                    hex(&ours[self.me]),
                    hex(theirs[self.me])
                ),
            ));
        }
        if let Some(k) = (0..ours.len()).find(|&k| theirs[k] != ours[k]) {
            return Err(refused(
                name,
                format!(
                    "saw another contribution of {} than we did: {} sent different hellos to \
                     different parties?",
                    self.name(k),
                    self.name(k)
                ),
            ));
        }
        Ok(())
    }
}

/// Accepts the peer's stream.
async fn accept(conn: &Connection, name: &str, deadline: Instant) -> Result<RecvStream> {
    match timeout_at(deadline, conn.accept_uni()).await {
        Err(_) => Err(peer_err(name, "sent no hello in time")),
        Ok(Err(e)) => Err(peer_err(name, describe(&e))),
        Ok(Ok(r)) => Ok(r),
    }
}

/// Reads one handshake frame (`what`) from the peer's stream.
async fn read(recv: &mut RecvStream, name: &str, what: &str, deadline: Instant) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match timeout_at(deadline, read_frame(recv, MAX_HELLO, &mut bytes)).await {
        Err(_) => Err(peer_err(name, format!("sent no {what} in time"))),
        Ok(Err(m)) => Err(peer_err(name, m)),
        Ok(Ok(false)) => Err(peer_err(
            name,
            format!("closed its stream before its {what}"),
        )),
        Ok(Ok(true)) => Ok(bytes),
    }
}

/// Writes `bytes` to every peer's stream.
async fn write_all(
    sends: &mut [Option<SendStream>],
    plan: &Plan,
    bytes: &[u8],
    deadline: Instant,
) -> Result<()> {
    for (j, s) in sends.iter_mut().enumerate() {
        if let Some(s) = s {
            match timeout_at(deadline, s.write_all(bytes)).await {
                Err(_) => {
                    return Err(peer_err(
                        &plan.names[j],
                        "did not take our handshake in time",
                    ))
                }
                Ok(Err(e)) => return Err(peer_err(&plan.names[j], write_error(&e))),
                Ok(Ok(())) => {}
            }
        }
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

/// Runs the handshake over established connections; returns the session and the peers' streams.
pub(crate) async fn hello_all(
    conns: &[Option<Connection>],
    sends: &mut [Option<SendStream>],
    plan: &Plan,
    deadline: Instant,
) -> Result<([u8; 16], Vec<Option<RecvStream>>)> {
    let mut handshake = Handshake::new(&plan.names, plan.me, plan.digest);
    write_all(sends, plan, &handshake.hello(), deadline).await?;
    let mut recvs: Vec<Option<RecvStream>> = conns.iter().map(|_| None).collect();
    for (j, conn) in conns.iter().enumerate() {
        if let Some(c) = conn {
            let name = &plan.names[j];
            let mut recv = accept(c, name, deadline).await?;
            let hello = read(&mut recv, name, "hello", deadline).await?;
            handshake.on_hello(j, &hello)?;
            recvs[j] = Some(recv);
        }
    }
    write_all(sends, plan, &handshake.confirm()?, deadline).await?;
    for (j, recv) in recvs.iter_mut().enumerate() {
        if let Some(recv) = recv {
            let confirm = read(recv, &plan.names[j], "confirmation", deadline).await?;
            handshake.on_confirm(j, &confirm)?;
        }
    }
    Ok((handshake.session()?, recvs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["server0", "server1", "helper"].map(String::from).to_vec()
    }

    const DIGEST: [u8; 32] = [7; 32];

    /// Every party's handshake, each having read every other's hello (`hellos[j]` is what
    /// party `j` sent).
    fn exchange<'a>(
        names: &'a [String],
        mine: &[Contribution],
        hellos: &[Vec<u8>],
    ) -> Vec<Handshake<'a>> {
        (0..names.len())
            .map(|i| {
                let mut h = Handshake::with_contribution(names, i, DIGEST, mine[i]);
                for (j, hello) in hellos.iter().enumerate().filter(|(j, _)| *j != i) {
                    h.on_hello(j, &hello[8..]).unwrap();
                }
                h
            })
            .collect()
    }

    fn hellos(names: &[String], mine: &[Contribution]) -> Vec<Vec<u8>> {
        (0..names.len())
            .map(|j| Handshake::with_contribution(names, j, DIGEST, mine[j]).hello())
            .collect()
    }

    #[test]
    fn the_session_depends_on_every_partys_contribution() {
        let names = names();
        let mine = [[1u8; 32], [2; 32], [3; 32]];
        let parties = exchange(&names, &mine, &hellos(&names, &mine));
        let session = parties[0].session().unwrap();
        for p in &parties {
            assert_eq!(p.session().unwrap(), session);
        }
        for j in 0..3 {
            let mut other = mine;
            other[j][5] ^= 1;
            assert_ne!(session_id(&DIGEST, &other), session, "party {j}");
        }
        assert_ne!(session_id(&[8; 32], &mine), session);

        // server1 replays its old hello bytes in a new session: the others' fresh
        // contributions still make a new session
        let old = hellos(&names, &mine);
        let fresh = [fresh_contribution(), [2; 32], fresh_contribution()];
        let mut replayed = hellos(&names, &fresh);
        replayed[1] = old[1].clone();
        let again = exchange(&names, &fresh, &replayed);
        let new_session = again[0].session().unwrap();
        assert_ne!(new_session, session);
        assert_eq!(again[2].session().unwrap(), new_session);
        // and with fresh randomness, two handshakes never agree
        let a = Handshake::new(&names, 0, DIGEST).hello();
        let b = Handshake::new(&names, 0, DIGEST).hello();
        assert_ne!(parse_hello(&a[8..]).unwrap(), parse_hello(&b[8..]).unwrap());
    }

    #[test]
    fn a_party_whose_contribution_is_altered_or_missing_refuses() {
        let names = names();
        let mine = [[1u8; 32], [2; 32], [3; 32]];
        let sent = hellos(&names, &mine);
        let parties = exchange(&names, &mine, &sent);
        let confirms: Vec<Vec<u8>> = parties.iter().map(|p| p.confirm().unwrap()).collect();
        for (i, p) in parties.iter().enumerate() {
            for (j, c) in confirms.iter().enumerate().filter(|(j, _)| *j != i) {
                p.on_confirm(j, &c[8..]).unwrap();
            }
        }

        // the helper got server0's hello with another contribution (altered on the way, or
        // server0 sent different hellos): server0 sees its own contribution altered
        let mut forged = sent.clone();
        forged[0] = Handshake::with_contribution(&names, 0, DIGEST, [9; 32]).hello();
        let helper = &exchange(&names, &mine, &forged)[2];
        let e = parties[0]
            .on_confirm(2, &helper.confirm().unwrap()[8..])
            .unwrap_err();
        assert!(matches!(e, RuntimeError::Handshake { .. }), "{e}");
        let e = e.to_string();
        assert!(
            e.contains("helper") && e.contains("without our contribution"),
            "{e}"
        );
        // server1 sees that the helper and it disagree on server0's contribution
        let e = parties[1]
            .on_confirm(2, &helper.confirm().unwrap()[8..])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("helper") && e.contains("contribution of server0"),
            "{e}"
        );
        // and their sessions differ, so no batch of one is taken by the other
        assert_ne!(helper.session().unwrap(), parties[0].session().unwrap());

        // a confirmation that leaves a party out
        let short = confirm_bytes(&mine[..2]);
        let e = parties[0]
            .on_confirm(1, &short[8..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("server1") && e.contains("2 parties"), "{e}");
        // a hello of another graph, a second hello, and no hello at all
        let mut h = Handshake::with_contribution(&names, 0, DIGEST, mine[0]);
        let other = Handshake::with_contribution(&names, 1, [8; 32], mine[1]).hello();
        let e = h.on_hello(1, &other[8..]).unwrap_err().to_string();
        assert!(e.contains("server1") && e.contains("graph"), "{e}");
        h.on_hello(1, &sent[1][8..]).unwrap();
        assert!(h.on_hello(1, &sent[1][8..]).is_err());
        let e = h.session().unwrap_err().to_string();
        assert!(e.contains("helper"), "{e}");
    }
}

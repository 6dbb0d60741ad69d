//! Frames of the QUIC transport: length-prefixed (u64 LE length, then the bytes) on one
//! unidirectional stream per direction; a reader task per peer decodes batches as they arrive.
//!
//! What a peer can make a party hold is bounded: a frame longer than the largest batch the
//! party's program receives from that peer ([`Limits`]) is refused as soon as its length is
//! read; the buffer of a frame grows with the bytes that arrive, never with the length a peer
//! announces; and the batches read but not yet taken wait in a bounded queue (when it is full
//! the reader stops reading, and QUIC's flow control holds the peer back).

use quinn::{Connection, ConnectionError, ReadError, ReadExactError, RecvStream};
use quinn::{SendStream, VarInt, WriteError};
use std::sync::Arc;

use tokio::sync::mpsc::{Receiver, Sender};

use crate::wire::{self, Batch};
use crate::RuntimeError;

/// Application close code of a party that finished normally (refusals and failures:
/// [`super::quic_close`]).
pub(crate) const CODE_DONE: u32 = 0;
/// The largest receive buffer kept for the next frame.
const KEEP_BUFFER: usize = 256 << 20;
/// Batches read from one peer that may wait to be taken (times the number of peers: the
/// capacity of the inbox).
pub(crate) const QUEUE_PER_PEER: usize = 4;

/// Per peer: the longest frame it may send, in bytes (from the program; at most
/// [`wire::MAX_MESSAGE_BYTES`]).
pub(crate) type Limits = Arc<[usize]>;

/// How a peer's stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// The peer finished its stream (or closed the connection as done): it sends no more.
    Finished,
    /// The stream or connection failed; why, in words.
    Failed(String),
}

/// What arrives from a peer's reader task: a batch, or how its stream ended (the last arrival).
pub(crate) type Arrival = std::result::Result<Batch, End>;

/// Arrivals of every peer, tagged with the peer's index, on one bounded channel: a party
/// waiting for one peer learns at once that another one failed.
pub(crate) type Inbox = Receiver<(usize, Arrival)>;

/// An established link to one peer.
pub(crate) struct Link {
    pub conn: Connection,
    pub send: SendStream,
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
        // the words come from the code; the peer's reason bytes are never shown as they are
        ConnectionError::ApplicationClosed(c) => match super::quic_close::decode(c) {
            Some(failure) => failure.to_string(),
            None => format!("closed the connection (code {})", c.error_code),
        },
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

/// Reads one frame into `buf` (cleared first; its capacity is reused); `Ok(false)` at a clean
/// end of stream.
pub(crate) async fn read_frame(
    recv: &mut RecvStream,
    max: usize,
    buf: &mut Vec<u8>,
) -> std::result::Result<bool, String> {
    let mut len = [0u8; 8];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(false),
        Err(ReadExactError::FinishedEarly(n)) => {
            return Err(format!(
                "stream ended inside a frame length ({n} of 8 bytes)"
            ))
        }
        Err(ReadExactError::ReadError(e)) => return Err(read_error(&e)),
    }
    let len = frame_len(len, max)?;
    buf.clear();
    // the buffer grows with what arrives (doubling, as a Vec does), not with what is announced
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
    Ok(true)
}

/// The length a frame's prefix announces, if at most `max`.
pub(crate) fn frame_len(prefix: [u8; 8], max: usize) -> std::result::Result<usize, String> {
    let len = u64::from_le_bytes(prefix);
    match usize::try_from(len) {
        Ok(len) if len <= max => Ok(len),
        _ => Err(format!("announced a frame of {len} bytes (at most {max})")),
    }
}

/// A frame: u64 LE length, then `body`.
pub(crate) fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Whether the connection was closed by a peer that finished normally.
pub(crate) fn closed_as_done(conn: &Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(ConnectionError::ApplicationClosed(c)) if c.error_code == VarInt::from_u32(CODE_DONE)
    )
}

/// Reads batches from peer `peer`'s stream until it ends, forwarding them (and then how it
/// ended) tagged with `peer`; a frame longer than `limits[peer]` ends the stream as failed.
pub(crate) async fn reader(
    peer: usize,
    conn: Connection,
    mut recv: RecvStream,
    tx: Sender<(usize, Arrival)>,
    limits: Limits,
) {
    // reused between frames: fresh pages for every large message cost more than the copy
    let mut buf = Vec::new();
    loop {
        let max = limits.get(peer).copied().unwrap_or(0);
        let arrival = match read_frame(&mut recv, max, &mut buf).await {
            Ok(true) => {
                wire::decode(&buf).map_err(|e| End::Failed(format!("sent an invalid batch: {e}")))
            }
            Ok(false) => Err(End::Finished),
            // all its data was read: a peer that closes as done has finished
            Err(_) if closed_as_done(&conn) => Err(End::Finished),
            Err(message) => Err(End::Failed(message)),
        };
        if buf.capacity() > KEEP_BUFFER {
            buf = Vec::new();
        }
        let last = arrival.is_err();
        if tx.send((peer, arrival)).await.is_err() || last {
            return;
        }
    }
}

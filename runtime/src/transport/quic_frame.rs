//! Frames of the QUIC transport: length-prefixed (u64 LE length, then the bytes) on one
//! unidirectional stream per direction; a reader task per peer decodes batches as they arrive.
//!
//! What a peer can make a party hold is bounded: a frame longer than the largest batch the
//! party's program receives from that peer ([`Limits`]) is refused as soon as its length is
//! read; a batch is decoded as its bytes arrive ([`wire::Decoder`]), each payload written
//! straight into its tensor, whose memory is reserved at the size its header announces
//! (within the frame, so within the limit) and filled, page by page, only by the bytes that
//! arrive; and at most [`QUEUE_PER_PEER`] batches of one peer are held read but not yet
//! taken by the program, whatever their rounds or predictions: each holds a permit of the
//! peer's queue ([`Held`]) until it is taken, and the reader reads the next frame only once it
//! has a permit, so the peer's frames wait unread and QUIC's flow control holds it back. A
//! stream's end comes without a permit: a party waiting for one peer learns at once that
//! another one failed, even one whose queue is full.

use quinn::{Connection, ConnectionError, ReadError, ReadExactError, RecvStream};
use quinn::{SendStream, VarInt, WriteError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::wire::{self, Batch};
use crate::RuntimeError;

/// Application close code of a party that finished normally (refusals and failures:
/// [`super::quic_close`]).
pub(crate) const CODE_DONE: u32 = 0;
/// Batches read from one peer that may wait to be taken (in the inbox or buffered as early),
/// whatever their rounds: past that, the peer's frames stay unread.
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

/// What arrives from a peer's reader task: a batch with its permit, or how its stream ended
/// (the last arrival).
pub(crate) type Arrival = std::result::Result<(Batch, Held), End>;

/// Arrivals of every peer, tagged with the peer's index, on one channel: a party waiting for
/// one peer learns at once that another one failed. Its length is bounded per peer by the
/// permits of the peer's queue (plus one stream end).
pub(crate) type Inbox = UnboundedReceiver<(usize, Arrival)>;

/// What the batches read from the peers but not yet taken by the program weigh, now and at
/// most so far (all peers together).
#[derive(Debug, Default)]
pub(crate) struct Gauge {
    batches: AtomicUsize,
    bytes: AtomicUsize,
    peak_batches: AtomicUsize,
    peak_bytes: AtomicUsize,
}

impl Gauge {
    fn add(&self, bytes: usize) {
        let batches = self.batches.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak_batches.fetch_max(batches, Ordering::Relaxed);
        self.peak_bytes.fetch_max(now, Ordering::Relaxed);
    }

    /// The most batches and frame bytes held at once so far.
    #[cfg(test)]
    pub(crate) fn peak(&self) -> (usize, usize) {
        (
            self.peak_batches.load(Ordering::Relaxed),
            self.peak_bytes.load(Ordering::Relaxed),
        )
    }
}

/// A batch's claim on its peer's queue: it holds one permit of the queue until it is taken
/// (dropped), and counts its frame in the [`Gauge`] meanwhile.
#[derive(Debug)]
pub(crate) struct Held {
    _permit: OwnedSemaphorePermit,
    bytes: usize,
    gauge: Arc<Gauge>,
}

impl Held {
    fn new(permit: OwnedSemaphorePermit, bytes: usize, gauge: &Arc<Gauge>) -> Held {
        gauge.add(bytes);
        Held {
            _permit: permit,
            bytes,
            gauge: Arc::clone(gauge),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.gauge.batches.fetch_sub(1, Ordering::Relaxed);
        self.gauge.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

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
    let Some(len) = read_len(recv, max).await? else {
        return Ok(false);
    };
    buf.clear();
    // the buffer grows with what arrives (doubling, as a Vec does), not with what is announced
    read_pieces(recv, len, |piece| {
        buf.extend_from_slice(piece);
        Ok::<_, String>(())
    })
    .await?;
    Ok(true)
}

/// Why [`read_batch`] did not read a batch.
enum Failure {
    /// The stream failed or ended inside a frame.
    Stream(String),
    /// The frame is not a valid batch.
    Batch(RuntimeError),
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Stream(message)
    }
}

/// Reads one frame and decodes its batch as the bytes arrive, without a buffer of the whole
/// frame; `Ok(None)` at a clean end of stream, else the batch and the frame's length.
async fn read_batch(
    recv: &mut RecvStream,
    max: usize,
) -> std::result::Result<Option<(Batch, usize)>, Failure> {
    let Some(len) = read_len(recv, max).await? else {
        return Ok(None);
    };
    let mut decoder = wire::Decoder::new(len).map_err(Failure::Batch)?;
    read_pieces(recv, len, |piece| {
        decoder.feed(piece).map_err(Failure::Batch)
    })
    .await?;
    let batch = decoder.finish().map_err(Failure::Batch)?;
    Ok(Some((batch, len)))
}

/// Reads a frame's length prefix, refused above `max`; `Ok(None)` at a clean end of stream.
async fn read_len(recv: &mut RecvStream, max: usize) -> std::result::Result<Option<usize>, String> {
    let mut len = [0u8; 8];
    match recv.read_exact(&mut len).await {
        Ok(()) => frame_len(len, max).map(Some),
        Err(ReadExactError::FinishedEarly(0)) => Ok(None),
        Err(ReadExactError::FinishedEarly(n)) => Err(format!(
            "stream ended inside a frame length ({n} of 8 bytes)"
        )),
        Err(ReadExactError::ReadError(e)) => Err(read_error(&e)),
    }
}

/// Reads the `len` bytes of a frame, handing `take` each piece as it arrives (quinn's own
/// buffers: nothing is copied on the way).
async fn read_pieces<E: From<String>>(
    recv: &mut RecvStream,
    len: usize,
    mut take: impl FnMut(&[u8]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut got = 0;
    while got < len {
        match recv.read_chunk(len - got, true).await {
            Ok(Some(chunk)) => {
                take(&chunk.bytes)?;
                got += chunk.bytes.len();
            }
            Ok(None) => {
                return Err(E::from(format!(
                    "stream ended inside a frame ({got} of {len} bytes)"
                )))
            }
            Err(e) => return Err(E::from(read_error(&e))),
        }
    }
    Ok(())
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

/// How a connection that closed ended the stream of its peer.
fn ended_by(conn: &Connection, e: &ConnectionError) -> End {
    if closed_as_done(conn) {
        End::Finished
    } else {
        End::Failed(describe(e))
    }
}

/// Reads batches from peer `peer`'s stream until it ends, forwarding them (and then how it
/// ended) tagged with `peer`; a frame longer than `limits[peer]` ends the stream as failed.
/// A frame is read only with a permit of `queue` (the peer's, of [`QUEUE_PER_PEER`]), which
/// its batch holds until the program takes it; meanwhile a lost connection is still reported.
pub(crate) async fn reader(
    peer: usize,
    conn: Connection,
    mut recv: RecvStream,
    tx: UnboundedSender<(usize, Arrival)>,
    (limits, queue, gauge): (Limits, Arc<Semaphore>, Arc<Gauge>),
) {
    loop {
        // A free permit wins over the close: a peer that sends its last batch and closes at
        // once must have that batch read before its end is reported.
        let permit = tokio::select! {
            biased;
            permit = Arc::clone(&queue).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            e = conn.closed() => {
                let _ = tx.send((peer, Err(ended_by(&conn, &e))));
                return;
            }
        };
        let max = limits.get(peer).copied().unwrap_or(0);
        let arrival = match read_batch(&mut recv, max).await {
            Ok(Some((batch, len))) => Ok((batch, Held::new(permit, len, &gauge))),
            Ok(None) => Err(End::Finished),
            // all its data was read: a peer that closes as done has finished
            Err(Failure::Stream(_)) if closed_as_done(&conn) => Err(End::Finished),
            Err(Failure::Stream(message)) => Err(End::Failed(message)),
            Err(Failure::Batch(e)) => Err(End::Failed(format!("sent an invalid batch: {e}"))),
        };
        let last = arrival.is_err();
        if tx.send((peer, arrival)).is_err() || last {
            return;
        }
    }
}

//! The frame format of one batch: all messages from one party to another in one round.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! header (16 bytes): magic "SF" | version u8 | flags u8 (0) | session tag u32
//!                    | round u32 | from u8 | to u8 | entry count u16
//! entry:             key u32 | kind u8 | ndim u8 | dims varint * ndim | payload
//! payload:           ring / odd-ring: u64 words; small: u8; float: f32; seed: 32 bytes (ndim 0)
//! ```
//!
//! A varint is LEB128: seven bits per byte, low first, the high bit set on all bytes but the
//! last. The session tag is the first four bytes of the session id (a stale batch of another
//! session is refused; the connection itself belongs to one session). Keys are the senders'
//! instruction ids. Headers are kept small because a prediction of a small network is a few
//! dozen small batches: the 36-byte header and fixed-width entries of version 1 were 5% of
//! network A's bytes.
//!
//! [`encoded_len`] is computed from shapes alone and equals `encode(batch)?.len()` exactly, so
//! byte counters and the compiler's static cost report agree with what is measured.
//! [`decode`] never panics: every length is bounds-checked and every shape product
//! overflow-checked before anything is allocated.
//!
//! The QUIC transport copies a payload once each way: [`encode_chunks`] hands the sender's
//! large tensors to the stream as they lie in memory, and [`Decoder`] (`wire/decode.rs`)
//! writes each received piece straight into the tensor it belongs to.

use bytes::Bytes;
use ndarray::ArrayD;
use shareflow_ops::{Value, ValueKind};

use crate::{Result, RuntimeError};

mod decode;
pub use decode::{decode, Decoder};

/// The first two bytes of every batch.
pub const MAGIC: [u8; 2] = *b"SF";
/// The version of this format.
pub const VERSION: u8 = 2;
/// Bytes of the fixed header (the compiler's cost model counts the same constant).
pub const HEADER_LEN: usize = shareflow_compiler::cost::FRAME_HEADER_BYTES;
/// Bytes of an entry header without its dims: key u32, kind u8, ndim u8 (the compiler's cost
/// model counts the same constant).
pub const ENTRY_HEADER_LEN: usize = shareflow_compiler::cost::ENTRY_HEADER_BYTES;
/// The most dimensions a tensor may have on the wire.
pub const MAX_NDIM: usize = 32;
/// The largest batch that may be encoded or decoded (1 GiB).
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// All values one party sends another in one round, each under its stable key.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The tag of the run's session id ([`session_tag`]; the id is chosen fresh per run).
    pub session: u32,
    /// The communication round.
    pub round: u32,
    /// The sending party's index.
    pub from: u16,
    /// The receiving party's index.
    pub to: u16,
    /// The values, each under the key of its send/receive pair.
    pub entries: Vec<(u64, Value)>,
}

impl Batch {
    /// An empty batch with the given header.
    pub fn new(session: [u8; 16], round: u32, from: u16, to: u16) -> Batch {
        Batch {
            session: session_tag(&session),
            round,
            from,
            to,
            entries: Vec::new(),
        }
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: u64) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// The tag of a session id that batches carry: its first four bytes.
pub fn session_tag(session: &[u8; 16]) -> u32 {
    u32::from_le_bytes([session[0], session[1], session[2], session[3]])
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn kind_tag(kind: ValueKind) -> u8 {
    match kind {
        ValueKind::Ring => 1,
        ValueKind::OddRing => 2,
        ValueKind::Small => 3,
        ValueKind::Float => 4,
        ValueKind::Seed => 5,
    }
}

fn wire_err(field: impl Into<String>, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Wire {
        field: field.into(),
        message: message.into(),
    }
}

/// Bytes one entry takes on the wire.
pub fn entry_len(value: &Value) -> usize {
    shareflow_compiler::cost::entry_bytes(value.kind(), value.shape())
}

/// Bytes `batch` takes on the wire, computed without encoding it.
pub fn encoded_len(batch: &Batch) -> usize {
    HEADER_LEN
        + batch
            .entries
            .iter()
            .map(|(_, v)| entry_len(v))
            .sum::<usize>()
}

/// Checks that `batch` can be encoded: parties, entry count, keys, ndim, total size.
pub fn check(batch: &Batch) -> Result<()> {
    for (field, party) in [("from", batch.from), ("to", batch.to)] {
        if u8::try_from(party).is_err() {
            return Err(wire_err(field, format!("party #{party} (at most #255)")));
        }
    }
    if u16::try_from(batch.entries.len()).is_err() {
        return Err(wire_err(
            "entry count",
            format!("{} entries (at most {})", batch.entries.len(), u16::MAX),
        ));
    }
    for (key, value) in &batch.entries {
        if u32::try_from(*key).is_err() {
            return Err(wire_err(
                format!("entry {key}: key"),
                "does not fit 32 bits",
            ));
        }
        if value.shape().len() > MAX_NDIM {
            return Err(wire_err(
                format!("entry {key}: ndim"),
                format!("{} dimensions (at most {MAX_NDIM})", value.shape().len()),
            ));
        }
    }
    let len = encoded_len(batch);
    if len > MAX_MESSAGE_BYTES {
        return Err(wire_err(
            "length",
            format!("batch of {len} bytes exceeds the maximum of {MAX_MESSAGE_BYTES}"),
        ));
    }
    Ok(())
}

/// Encodes `batch` into a new buffer of exactly [`encoded_len`] bytes.
pub fn encode(batch: &Batch) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(batch, &mut out)?;
    Ok(out)
}

/// Appends the encoding of `batch` to `out` (a reused buffer; not cleared).
pub fn encode_into(batch: &Batch, out: &mut Vec<u8>) -> Result<()> {
    check(batch)?;
    let start = out.len();
    let total = encoded_len(batch);
    out.reserve(total);
    put_header(batch, out);
    for (key, value) in &batch.entries {
        put_entry(*key, value, out);
    }
    debug_assert_eq!(out.len() - start, total);
    Ok(())
}

/// Payloads from this size on go into [`encode_chunks`]'s chunks as they lie in memory.
const OWN_CHUNK_BYTES: usize = 16 << 10;

/// `prefix`, then the encoding of `batch`, as chunks to send one after the other: the payload
/// of every contiguous ring or small tensor of at least 16 KiB is a chunk of its own that
/// holds the tensor and reads its memory as it lies (no copy); headers and the other
/// payloads are copied into the chunks between them.
pub fn encode_chunks(batch: Batch, prefix: &[u8]) -> Result<Vec<Bytes>> {
    check(&batch)?;
    let mut chunks = Vec::new();
    let mut head = Vec::with_capacity(prefix.len() + HEADER_LEN);
    head.extend_from_slice(prefix);
    put_header(&batch, &mut head);
    for (key, value) in batch.entries {
        if value.payload_bytes() < OWN_CHUNK_BYTES || contiguous_le_bytes(&value).is_none() {
            put_entry(key, &value, &mut head);
            continue;
        }
        put_entry_header(key, &value, &mut head);
        chunks.push(Bytes::from(std::mem::take(&mut head)));
        chunks.push(Bytes::from_owner(Payload(value)));
    }
    if !head.is_empty() {
        chunks.push(Bytes::from(head));
    }
    Ok(chunks)
}

/// A tensor whose bytes are its wire payload ([`contiguous_le_bytes`] is `Some`).
struct Payload(Value);

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        contiguous_le_bytes(&self.0).unwrap_or_default()
    }
}

/// The fixed header of `batch` (checked by [`check`]).
fn put_header(batch: &Batch, out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(0);
    out.extend_from_slice(&batch.session.to_le_bytes());
    out.extend_from_slice(&batch.round.to_le_bytes());
    // `check` bounded the parties, the count and the keys.
    out.push(batch.from as u8);
    out.push(batch.to as u8);
    out.extend_from_slice(&(batch.entries.len() as u16).to_le_bytes());
}

/// An entry's header: key, kind, ndim and dims (the key checked by [`check`]).
fn put_entry_header(key: u64, value: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(&(key as u32).to_le_bytes());
    out.push(kind_tag(value.kind()));
    out.push(value.shape().len() as u8);
    for &d in value.shape() {
        put_varint(out, d as u64);
    }
}

/// An entry: its header, then its payload.
fn put_entry(key: u64, value: &Value, out: &mut Vec<u8>) {
    put_entry_header(key, value, out);
    if let Some(bytes) = contiguous_le_bytes(value) {
        // The payload as it lies in memory: one copy, no zeroing first.
        out.extend_from_slice(bytes);
        return;
    }
    let at = out.len();
    out.resize(at + value.payload_bytes(), 0);
    let dst = &mut out[at..];
    match value {
        Value::Ring(a) | Value::OddRing(a) => put_words(dst, a, u64::to_le_bytes),
        Value::Small(a) => put_words(dst, a, |x: u8| [x]),
        Value::Float(a) => put_words(dst, a, f32::to_le_bytes),
        Value::Seed(s) => dst.copy_from_slice(s),
    }
}

/// The payload of a contiguous ring or small tensor in row-major order, as its bytes lie in
/// memory, where that is the wire's little-endian layout.
fn contiguous_le_bytes(value: &Value) -> Option<&[u8]> {
    if cfg!(target_endian = "big") {
        return None;
    }
    match value {
        Value::Ring(a) | Value::OddRing(a) => {
            let words = a.as_slice()?;
            // SAFETY: the bytes of initialised `u64`s, within their slice.
            Some(unsafe { std::slice::from_raw_parts(words.as_ptr().cast(), 8 * words.len()) })
        }
        Value::Small(a) => a.as_slice(),
        _ => None,
    }
}

/// Writes the elements of `a` in logical (row-major) order into `dst`.
fn put_words<T: Copy, const N: usize>(dst: &mut [u8], a: &ArrayD<T>, le: impl Fn(T) -> [u8; N]) {
    match a.as_slice() {
        Some(words) => {
            for (d, &w) in dst.chunks_exact_mut(N).zip(words) {
                d.copy_from_slice(&le(w));
            }
        }
        None => {
            for (d, &w) in dst.chunks_exact_mut(N).zip(a.iter()) {
                d.copy_from_slice(&le(w));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decode::Reader;
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn header_len_matches_encoding_of_empty_batch() {
        let b = Batch::new([7; 16], 3, 1, 2);
        let bytes = encode(&b).unwrap();
        assert_eq!(bytes.len(), HEADER_LEN);
        assert_eq!(decode(&bytes).unwrap(), b);
    }

    /// The chunks are the prefix and the encoding, whichever entries own a chunk.
    #[test]
    fn chunks_concatenate_to_the_encoding() {
        let big = 3 * OWN_CHUNK_BYTES / 8;
        let ring = ArrayD::from_shape_vec(IxDyn(&[big]), (0..big as u64).collect()).unwrap();
        let square = ArrayD::from_shape_fn(IxDyn(&[128, 64]), |i| (i[0] * 64 + i[1]) as u64);
        let mut b = Batch::new([4; 16], 9, 2, 0);
        b.entries
            .push((1, Value::Small(ArrayD::from_elem(IxDyn(&[5]), 3u8))));
        b.entries.push((2, Value::Ring(ring)));
        // non-contiguous (transposed): copied, in logical order
        b.entries.push((3, Value::Ring(square.reversed_axes())));
        b.entries.push((
            4,
            Value::Small(ArrayD::from_elem(IxDyn(&[OWN_CHUNK_BYTES]), 7u8)),
        ));
        b.entries.push((5, Value::Seed([1; 32])));
        let want = [&b"prefix"[..], &encode(&b).unwrap()].concat();
        let chunks = encode_chunks(b.clone(), b"prefix").unwrap();
        assert_eq!(
            chunks.len(),
            5,
            "two payloads of their own and the three runs around them"
        );
        assert_eq!(chunks.concat(), want);
        assert_eq!(decode(&want[6..]).unwrap(), b);
        // nothing large: one chunk
        let mut small = Batch::new([4; 16], 9, 2, 0);
        small
            .entries
            .push((1, Value::Ring(ArrayD::zeros(IxDyn(&[3])))));
        let chunks = encode_chunks(small.clone(), &[]).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0], encode(&small).unwrap());
    }

    #[test]
    fn non_contiguous_arrays_encode_in_logical_order() {
        let a = ArrayD::from_shape_vec(IxDyn(&[2, 3]), (0u64..6).collect()).unwrap();
        let t = a.t().to_owned(); // standard layout copy
        let view_t = a.clone().reversed_axes(); // non-standard layout
        let mut b = Batch::new([0; 16], 0, 0, 1);
        b.entries.push((1, Value::Ring(view_t)));
        let back = decode(&encode(&b).unwrap()).unwrap();
        assert_eq!(back.entries[0].1, Value::Ring(t));
    }

    #[test]
    fn dims_overflow_is_an_error() {
        let mut b = Batch::new([0; 16], 0, 0, 1);
        b.entries
            .push((9, Value::Ring(ArrayD::zeros(IxDyn(&[1, 1])))));
        let mut bytes = encode(&b).unwrap();
        // dims start after header + key + kind + ndim: two dims of 2^63 each
        let d0 = HEADER_LEN + ENTRY_HEADER_LEN;
        let mut big = vec![0x80u8; 9];
        big.push(1);
        bytes.splice(d0..d0 + 2, big.iter().chain(&big).copied());
        let err = decode(&bytes).unwrap_err().to_string();
        assert!(err.contains("entry 9"), "{err}");
    }

    #[test]
    fn varints_round_trip_in_their_shortest_form_only() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            if let Ok(d) = usize::try_from(v) {
                // the cost model counts the same bytes for a dimension
                let len = shareflow_compiler::cost::entry_bytes(ValueKind::Small, &[d, 0]);
                assert_eq!(len, ENTRY_HEADER_LEN + out.len() + 1);
            }
            let mut r = Reader {
                bytes: &out,
                pos: 0,
            };
            assert_eq!(r.varint(&|| "v".into()).unwrap(), v);
            assert_eq!(r.pos, out.len());
        }
        let long = [0x81u8, 0x00];
        let mut r = Reader {
            bytes: &long,
            pos: 0,
        };
        assert!(r.varint(&|| "v".into()).is_err());
        let huge = [0xffu8; 11];
        let mut r = Reader {
            bytes: &huge,
            pos: 0,
        };
        assert!(r.varint(&|| "v".into()).is_err());
    }
}

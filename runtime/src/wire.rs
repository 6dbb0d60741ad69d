//! The frame format of one batch: all messages from one party to another in one round.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! header (36 bytes): magic "SFLW" | version u16 | flags u16 (0) | session [u8; 16]
//!                    | round u32 | from u16 | to u16 | entry count u32
//! entry:             key u64 | kind u8 | ndim u8 | dims u64 * ndim | payload
//! payload:           ring / odd-ring: u64 words; small: u8; float: f32; seed: 32 bytes (ndim 0)
//! ```
//!
//! [`encoded_len`] is computed from shapes alone and equals `encode(batch)?.len()` exactly, so
//! byte counters and the compiler's static cost report agree with what is measured.
//! [`decode`] never panics: every length is bounds-checked and every shape product
//! overflow-checked before anything is allocated.

use ndarray::{ArrayD, IxDyn};
use shareflow_ops::{Value, ValueKind};

use crate::{Result, RuntimeError};

/// The first four bytes of every batch.
pub const MAGIC: [u8; 4] = *b"SFLW";
/// The version of this format.
pub const VERSION: u16 = 1;
/// Bytes of the fixed header (the compiler's cost model counts the same constant).
pub const HEADER_LEN: usize = shareflow_compiler::cost::FRAME_HEADER_BYTES;
/// Bytes of an entry header without its dims: key u64, kind u8, ndim u8 (the compiler's cost
/// model counts the same constant).
pub const ENTRY_HEADER_LEN: usize = shareflow_compiler::cost::ENTRY_HEADER_BYTES;
/// The most dimensions a tensor may have on the wire.
pub const MAX_NDIM: usize = 32;
/// The largest batch that may be encoded or decoded (1 GiB).
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// All values one party sends another in one round, each under its stable key.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The session id of the run (chosen fresh per run).
    pub session: [u8; 16],
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
            session,
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
    ENTRY_HEADER_LEN + 8 * value.shape().len() + value.payload_bytes()
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

/// Checks that `batch` can be encoded: entry count, ndim, total size.
pub fn check(batch: &Batch) -> Result<()> {
    if u32::try_from(batch.entries.len()).is_err() {
        return Err(wire_err("entry count", "more than u32::MAX entries"));
    }
    for (key, value) in &batch.entries {
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
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&batch.session);
    out.extend_from_slice(&batch.round.to_le_bytes());
    out.extend_from_slice(&batch.from.to_le_bytes());
    out.extend_from_slice(&batch.to.to_le_bytes());
    out.extend_from_slice(&(batch.entries.len() as u32).to_le_bytes());
    for (key, value) in &batch.entries {
        out.extend_from_slice(&key.to_le_bytes());
        out.push(kind_tag(value.kind()));
        out.push(value.shape().len() as u8);
        for &d in value.shape() {
            out.extend_from_slice(&(d as u64).to_le_bytes());
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
    debug_assert_eq!(out.len() - start, total);
    Ok(())
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

/// A bounds-checked reader over the bytes of one batch.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let rest = self.bytes.len() - self.pos;
        if n > rest {
            return Err(wire_err(
                field(),
                format!(
                    "truncated: needs {n} bytes at offset {}, {rest} left",
                    self.pos
                ),
            ));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &dyn Fn() -> String) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    fn u8(&mut self, field: &dyn Fn() -> String) -> Result<u8> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &dyn Fn() -> String) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }
}

fn words<const N: usize, T>(bytes: &[u8], from_le: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            from_le(a)
        })
        .collect()
}

fn array<T>(dims: &[usize], data: Vec<T>, key: u64) -> Result<ArrayD<T>> {
    ArrayD::from_shape_vec(IxDyn(dims), data)
        .map_err(|e| wire_err(format!("entry {key}: shape"), e.to_string()))
}

/// Decodes one batch. Errors name the field at fault; never panics on any input.
pub fn decode(bytes: &[u8]) -> Result<Batch> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(wire_err(
            "length",
            format!(
                "{} bytes exceeds the maximum of {MAX_MESSAGE_BYTES}",
                bytes.len()
            ),
        ));
    }
    let mut r = Reader { bytes, pos: 0 };
    let magic: [u8; 4] = r.array(&|| "magic".into())?;
    if magic != MAGIC {
        return Err(wire_err("magic", format!("{magic:02x?} is not a batch")));
    }
    let version = r.u16(&|| "version".into())?;
    if version != VERSION {
        return Err(wire_err(
            "version",
            format!("{version} (this build speaks {VERSION})"),
        ));
    }
    let flags = r.u16(&|| "flags".into())?;
    if flags != 0 {
        return Err(wire_err("flags", format!("unknown flags {flags:#x}")));
    }
    let session = r.array(&|| "session".into())?;
    let round = r.u32(&|| "round".into())?;
    let from = r.u16(&|| "from".into())?;
    let to = r.u16(&|| "to".into())?;
    let count = r.u32(&|| "entry count".into())? as usize;
    let rest = bytes.len() - r.pos;
    if count > rest / ENTRY_HEADER_LEN {
        return Err(wire_err(
            "entry count",
            format!("{count} entries cannot fit in {rest} bytes"),
        ));
    }
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let key = r.u64(&|| format!("entry #{i}: key"))?;
        entries.push((key, decode_value(&mut r, key)?));
    }
    if r.pos != bytes.len() {
        return Err(wire_err(
            "length",
            format!(
                "{} trailing bytes after the last entry",
                bytes.len() - r.pos
            ),
        ));
    }
    Ok(Batch {
        session,
        round,
        from,
        to,
        entries,
    })
}

fn decode_value(r: &mut Reader<'_>, key: u64) -> Result<Value> {
    let tag = r.u8(&|| format!("entry {key}: kind"))?;
    let ndim = r.u8(&|| format!("entry {key}: ndim"))? as usize;
    if ndim > MAX_NDIM {
        return Err(wire_err(
            format!("entry {key}: ndim"),
            format!("{ndim} dimensions (at most {MAX_NDIM})"),
        ));
    }
    let mut dims = Vec::with_capacity(ndim);
    let mut len: usize = 1;
    for d in 0..ndim {
        let field = || format!("entry {key}: dim {d}");
        let dim = r.u64(&field)?;
        let dim = usize::try_from(dim).map_err(|_| wire_err(field(), "does not fit usize"))?;
        len = len
            .checked_mul(dim)
            .ok_or_else(|| wire_err(field(), "shape product overflows"))?;
        dims.push(dim);
    }
    let width = match tag {
        1 | 2 => 8,
        3 => 1,
        4 => 4,
        5 => {
            if ndim != 0 {
                return Err(wire_err(
                    format!("entry {key}: ndim"),
                    format!("a seed has no dimensions, got {ndim}"),
                ));
            }
            32
        }
        other => {
            return Err(wire_err(
                format!("entry {key}: kind"),
                format!("unknown kind tag {other}"),
            ))
        }
    };
    let field = || format!("entry {key}: payload");
    let nbytes = len
        .checked_mul(width)
        .ok_or_else(|| wire_err(field(), "payload size overflows"))?;
    let payload = r.take(nbytes, &field)?;
    Ok(match tag {
        1 => Value::Ring(array(&dims, words(payload, u64::from_le_bytes), key)?),
        2 => Value::OddRing(array(&dims, words(payload, u64::from_le_bytes), key)?),
        3 => Value::Small(array(&dims, payload.to_vec(), key)?),
        4 => Value::Float(array(&dims, words(payload, f32::from_le_bytes), key)?),
        _ => {
            let mut seed = [0u8; 32];
            seed.copy_from_slice(payload);
            Value::Seed(seed)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_len_matches_encoding_of_empty_batch() {
        let b = Batch::new([7; 16], 3, 1, 2);
        let bytes = encode(&b).unwrap();
        assert_eq!(bytes.len(), HEADER_LEN);
        assert_eq!(decode(&bytes).unwrap(), b);
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
        // dims start after header + key + kind + ndim
        let d0 = HEADER_LEN + ENTRY_HEADER_LEN;
        bytes[d0..d0 + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        bytes[d0 + 8..d0 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        let err = decode(&bytes).unwrap_err().to_string();
        assert!(err.contains("entry 9"), "{err}");
    }
}

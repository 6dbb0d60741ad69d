//! Decoding a batch as its bytes arrive: [`Decoder`] takes the frame a piece at a time (as a
//! transport receives it) and writes every payload straight into the tensor it becomes, so
//! a received byte is copied once, from the transport's buffer into the tensor. [`decode`]
//! is the same decoder fed one whole frame.
//!
//! Every length is bounds-checked against the frame's announced length and every shape
//! product overflow-checked before anything is allocated, so a payload's allocation never
//! exceeds the frame. A decoder never panics, whatever it is fed.

use ndarray::{ArrayD, IxDyn};
use shareflow_ops::Value;

use super::{
    wire_err, Batch, ENTRY_HEADER_LEN, HEADER_LEN, MAGIC, MAX_MESSAGE_BYTES, MAX_NDIM, VERSION,
};
use crate::Result;

/// The longest entry header: key, kind, ndim, and [`MAX_NDIM`] varints of ten bytes.
const MAX_ENTRY_HEADER: usize = ENTRY_HEADER_LEN + 10 * MAX_NDIM;

/// Decodes one batch. Errors name the field at fault; never panics on any input.
pub fn decode(bytes: &[u8]) -> Result<Batch> {
    let mut d = Decoder::new(bytes.len())?;
    d.feed(bytes)?;
    d.finish()
}

/// A batch decoded from the pieces of a frame of known length, in order.
#[derive(Debug)]
pub struct Decoder {
    /// The frame's length.
    len: usize,
    /// Bytes fed so far.
    pos: usize,
    /// Header bytes not yet parsed: the batch's, then each entry's.
    stage: Vec<u8>,
    /// The batch, once its header is parsed, with the entries decoded so far.
    batch: Option<Batch>,
    /// Entries the header announces.
    count: usize,
    /// The entry whose payload is arriving.
    entry: Option<Entry>,
}

/// An entry whose header is parsed and whose payload is arriving.
#[derive(Debug)]
struct Entry {
    key: u64,
    dims: Vec<usize>,
    payload: Payload,
    /// Payload bytes written.
    filled: usize,
    /// Payload bytes in all.
    bytes: usize,
}

/// A payload's memory, of its element count, filled byte by byte as the frame arrives.
#[derive(Debug)]
enum Payload {
    Ring(Vec<u64>),
    OddRing(Vec<u64>),
    Small(Vec<u8>),
    Float(Vec<f32>),
    Seed([u8; 32]),
}

impl Decoder {
    /// A decoder of a frame of `len` bytes.
    ///
    /// Errors: [`crate::RuntimeError::Wire`] if `len` exceeds [`MAX_MESSAGE_BYTES`].
    pub fn new(len: usize) -> Result<Decoder> {
        if len > MAX_MESSAGE_BYTES {
            return Err(wire_err(
                "length",
                format!("{len} bytes exceeds the maximum of {MAX_MESSAGE_BYTES}"),
            ));
        }
        Ok(Decoder {
            len,
            pos: 0,
            stage: Vec::new(),
            batch: None,
            count: 0,
            entry: None,
        })
    }

    /// Bytes of the frame not yet fed.
    pub fn left(&self) -> usize {
        self.len - self.pos
    }

    /// Decodes the next bytes of the frame.
    ///
    /// Errors: [`crate::RuntimeError::Wire`] naming the field at fault, or if `bytes` run past
    /// the frame's length.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<()> {
        if bytes.len() > self.left() {
            return Err(wire_err(
                "length",
                format!(
                    "{} bytes past the end of a frame of {}",
                    bytes.len() - self.left(),
                    self.len
                ),
            ));
        }
        while !bytes.is_empty() {
            let used = if self.entry.is_some() {
                self.fill(bytes)?
            } else if self.batch.is_none() {
                self.header(bytes)?
            } else {
                self.entry_header(bytes)?
            };
            bytes = &bytes[used..];
            self.pos += used;
        }
        Ok(())
    }

    /// The batch, once the whole frame has been fed.
    ///
    /// Errors: [`crate::RuntimeError::Wire`] if the frame ended before the batch did.
    pub fn finish(self) -> Result<Batch> {
        let at = self.pos;
        let truncated =
            |field: String| wire_err(field, format!("truncated: the frame ends at offset {at}"));
        match (self.batch, self.entry) {
            (None, _) => Err(truncated("header".into())),
            (Some(_), Some(e)) => Err(truncated(format!("entry {}: payload", e.key))),
            (Some(b), None) if b.entries.len() < self.count => {
                Err(truncated(format!("entry #{}", b.entries.len())))
            }
            (Some(b), None) => Ok(b),
        }
    }

    /// Takes bytes of the batch's header; parses it once whole. Returns the bytes taken.
    fn header(&mut self, bytes: &[u8]) -> Result<usize> {
        let take = (HEADER_LEN - self.stage.len()).min(bytes.len());
        self.stage.extend_from_slice(&bytes[..take]);
        if self.stage.len() < HEADER_LEN {
            return Ok(take);
        }
        let mut r = Reader {
            bytes: &self.stage,
            pos: 0,
        };
        let magic: [u8; 2] = r.array(&|| "magic".into())?;
        if magic != MAGIC {
            return Err(wire_err("magic", format!("{magic:02x?} is not a batch")));
        }
        let version = r.u8(&|| "version".into())?;
        if version != VERSION {
            return Err(wire_err(
                "version",
                format!("{version} (this build speaks {VERSION})"),
            ));
        }
        let flags = r.u8(&|| "flags".into())?;
        if flags != 0 {
            return Err(wire_err("flags", format!("unknown flags {flags:#x}")));
        }
        let session = r.u32(&|| "session".into())?;
        let round = r.u32(&|| "round".into())?;
        let from = u16::from(r.u8(&|| "from".into())?);
        let to = u16::from(r.u8(&|| "to".into())?);
        let count = usize::from(r.u16(&|| "entry count".into())?);
        let rest = self.len - HEADER_LEN;
        if count > rest / ENTRY_HEADER_LEN {
            return Err(wire_err(
                "entry count",
                format!("{count} entries cannot fit in {rest} bytes"),
            ));
        }
        self.stage.clear();
        self.count = count;
        self.batch = Some(Batch {
            session,
            round,
            from,
            to,
            entries: Vec::with_capacity(count),
        });
        Ok(take)
    }

    /// Takes bytes of an entry's header; parses it once whole and allocates its payload.
    /// Returns the bytes taken.
    fn entry_header(&mut self, bytes: &[u8]) -> Result<usize> {
        let i = self.batch.as_ref().map_or(0, |b| b.entries.len());
        if i == self.count {
            return Err(wire_err(
                "length",
                format!("{} trailing bytes after the last entry", self.left()),
            ));
        }
        let had = self.stage.len();
        let take = (MAX_ENTRY_HEADER - had).min(bytes.len());
        self.stage.extend_from_slice(&bytes[..take]);
        let Some(len) = entry_header_len(&self.stage) else {
            return Ok(take);
        };
        let mut r = Reader {
            bytes: &self.stage[..len],
            pos: 0,
        };
        let key = u64::from(r.u32(&|| format!("entry #{i}: key"))?);
        let (tag, dims, count) = entry_shape(&mut r, key)?;
        let width = match tag {
            1 | 2 => 8,
            3 => 1,
            4 => 4,
            _ => 32,
        };
        let field = || format!("entry {key}: payload");
        let bytes_len = count
            .checked_mul(width)
            .ok_or_else(|| wire_err(field(), "payload size overflows"))?;
        let used = len.saturating_sub(had);
        // The payload must fit in what is left of the frame before anything is allocated.
        let start = self.pos + used;
        let rest = self.len - start;
        if bytes_len > rest {
            return Err(wire_err(
                field(),
                format!("truncated: needs {bytes_len} bytes at offset {start}, {rest} left"),
            ));
        }
        let payload = match tag {
            1 => Payload::Ring(Vec::with_capacity(count)),
            2 => Payload::OddRing(Vec::with_capacity(count)),
            3 => Payload::Small(Vec::with_capacity(count)),
            4 => Payload::Float(Vec::with_capacity(count)),
            _ => Payload::Seed([0; 32]),
        };
        self.stage.clear();
        self.entry = Some(Entry {
            key,
            dims,
            payload,
            filled: 0,
            bytes: bytes_len,
        });
        if bytes_len == 0 {
            self.complete()?;
        }
        Ok(used)
    }

    /// Writes bytes of the arriving payload; completes its entry once whole. Returns the
    /// bytes taken.
    fn fill(&mut self, bytes: &[u8]) -> Result<usize> {
        let Some(e) = self.entry.as_mut() else {
            return Ok(0);
        };
        let take = (e.bytes - e.filled).min(bytes.len());
        let src = &bytes[..take];
        match &mut e.payload {
            Payload::Ring(v) | Payload::OddRing(v) => write_raw(v, e.filled, src),
            Payload::Float(v) => write_raw(v, e.filled, src),
            Payload::Small(v) => v.extend_from_slice(src),
            Payload::Seed(s) => s[e.filled..e.filled + take].copy_from_slice(src),
        }
        e.filled += take;
        if e.filled == e.bytes {
            self.complete()?;
        }
        Ok(take)
    }

    /// Moves the whole payload of the arriving entry into the batch.
    fn complete(&mut self) -> Result<()> {
        let (Some(e), Some(batch)) = (self.entry.take(), self.batch.as_mut()) else {
            return Ok(());
        };
        let key = e.key;
        let value = match e.payload {
            Payload::Ring(v) => Value::Ring(array(&e.dims, words_from_le(v, e.bytes), key)?),
            Payload::OddRing(v) => Value::OddRing(array(&e.dims, words_from_le(v, e.bytes), key)?),
            Payload::Float(v) => {
                let v = words_from_le(v, e.bytes);
                Value::Float(array(&e.dims, v, key)?)
            }
            Payload::Small(v) => Value::Small(array(&e.dims, v, key)?),
            Payload::Seed(s) => Value::Seed(s),
        };
        batch.entries.push((key, value));
        Ok(())
    }
}

/// An element type whose little-endian bytes the wire carries.
trait LeWord: Copy {
    /// The element whose little-endian bytes are those of `w` in memory.
    fn read_le(w: Self) -> Self;
}

impl LeWord for u64 {
    fn read_le(w: Self) -> Self {
        u64::from_le(w)
    }
}

impl LeWord for f32 {
    fn read_le(w: Self) -> Self {
        f32::from_bits(u32::from_le(w.to_bits()))
    }
}

/// Writes `src` into the bytes of `v`'s allocation from byte `at` on (`v` has room for the
/// whole payload: [`Decoder::entry_header`] reserved it; its length stays 0 until
/// [`words_from_le`]).
fn write_raw<T: LeWord>(v: &mut Vec<T>, at: usize, src: &[u8]) {
    let room = v.capacity() * size_of::<T>();
    let n = src.len().min(room.saturating_sub(at));
    // SAFETY: `at + n` bytes lie within the allocation of `v`'s capacity (checked just
    // above); `src` is another allocation; bytes may be written into uninitialised memory
    // through a raw pointer, and any bytes are a valid `u64` or `f32`.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), v.as_mut_ptr().cast::<u8>().add(at), n);
    }
}

/// The elements of a payload of `bytes` bytes that [`write_raw`] wrote whole.
fn words_from_le<T: LeWord>(mut v: Vec<T>, bytes: usize) -> Vec<T> {
    let len = bytes / size_of::<T>();
    if len <= v.capacity() {
        // SAFETY: `write_raw` wrote all `bytes` bytes of the first `len` elements (the
        // decoder completes an entry only when its payload is whole).
        unsafe { v.set_len(len) };
    }
    if cfg!(target_endian = "big") {
        for w in &mut v {
            *w = T::read_le(*w);
        }
    }
    v
}

/// The length of the entry header at the start of `stage`, once it is all there (`None`
/// until then): key, kind, ndim, and ndim varints. A header that is malformed (too many
/// dimensions, a varint of more than ten bytes) is "whole" where its parse will fail.
fn entry_header_len(stage: &[u8]) -> Option<usize> {
    let ndim = usize::from(*stage.get(ENTRY_HEADER_LEN - 1)?);
    if ndim > MAX_NDIM {
        return Some(ENTRY_HEADER_LEN);
    }
    let mut pos = ENTRY_HEADER_LEN;
    for _ in 0..ndim {
        for i in 0..10 {
            let byte = *stage.get(pos)?;
            pos += 1;
            if byte & 0x80 == 0 || i == 9 {
                break;
            }
        }
    }
    Some(pos)
}

/// An entry header's kind tag, dims and element count (after its key).
fn entry_shape(r: &mut Reader<'_>, key: u64) -> Result<(u8, Vec<usize>, usize)> {
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
        let dim = r.varint(&field)?;
        let dim = usize::try_from(dim).map_err(|_| wire_err(field(), "does not fit usize"))?;
        len = len
            .checked_mul(dim)
            .ok_or_else(|| wire_err(field(), "shape product overflows"))?;
        dims.push(dim);
    }
    match tag {
        1..=4 => {}
        5 if ndim == 0 => {}
        5 => {
            return Err(wire_err(
                format!("entry {key}: ndim"),
                format!("a seed has no dimensions, got {ndim}"),
            ))
        }
        other => {
            return Err(wire_err(
                format!("entry {key}: kind"),
                format!("unknown kind tag {other}"),
            ))
        }
    }
    Ok((tag, dims, len))
}

fn array<T>(dims: &[usize], data: Vec<T>, key: u64) -> Result<ArrayD<T>> {
    ArrayD::from_shape_vec(IxDyn(dims), data)
        .map_err(|e| wire_err(format!("entry {key}: shape"), e.to_string()))
}

/// A bounds-checked reader over the bytes of one batch.
pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
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

    /// A varint of at most 64 bits, in its shortest form (so that decoding and encoding
    /// again gives the same bytes).
    pub(super) fn varint(&mut self, field: &dyn Fn() -> String) -> Result<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.u8(field)?;
            let bits = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return Err(wire_err(field(), "varint exceeds 64 bits"));
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && byte == 0 {
                    return Err(wire_err(field(), "varint not in its shortest form"));
                }
                return Ok(value);
            }
        }
        Err(wire_err(field(), "varint exceeds 64 bits"))
    }
}

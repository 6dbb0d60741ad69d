//! Mutations for fuzzing: edits of raw bytes (truncate, flip, overwrite with interesting
//! integers, insert, delete, splice) and structure-aware edits of JSON documents (numbers,
//! strings, removed or duplicated elements, subtrees copied elsewhere). An edit is data, so
//! proptest shrinks a failing case to the fewest and simplest edits.
//!
//! Every target runs `cases(default)` cases: `PROPTEST_CASES` overrides the default for a
//! longer run, and `PROPTEST_RNG_SEED` the fixed seed.

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed};
use serde_json::Value;

/// The seed of every target unless `PROPTEST_RNG_SEED` is set: runs are reproducible.
pub const SEED: u64 = 0x5348_4152_4546_4c57;

/// A deterministic configuration running `default_cases` cases unless `PROPTEST_CASES` says
/// otherwise; failures are not persisted (each one found is kept as a regression test).
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    // with_cases keeps the other settings of the environment
    let mut c = Config::with_cases(cases);
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = RngSeed::Fixed(SEED);
    }
    c.failure_persistence = None;
    c.max_shrink_iters = 1024;
    c
}

/// Integers at the edges of every width.
pub const INTERESTING: [u64; 24] = [
    0,
    1,
    2,
    3,
    7,
    8,
    16,
    32,
    33,
    64,
    127,
    128,
    255,
    256,
    0x7fff,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    1 << 40,
    i64::MAX as u64,
    1 << 63,
    u64::MAX,
];

fn interesting() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => proptest::sample::select(&INTERESTING[..]),
        1 => any::<u64>(),
        2 => 0u64..64,
    ]
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
pub enum ByteEdit {
    Truncate(Index),
    Flip(Index, u8),
    /// An interesting integer of `width` bytes written at a position, little- or big-endian.
    Word {
        at: Index,
        width: usize,
        value: u64,
        big_endian: bool,
    },
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    /// A copy of `len` bytes from one place written over another (or inserted there).
    Splice {
        from: Index,
        len: usize,
        to: Index,
        insert: bool,
    },
}

pub fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        1 => any::<Index>().prop_map(ByteEdit::Truncate),
        3 => (any::<Index>(), 1u8..).prop_map(|(i, x)| ByteEdit::Flip(i, x)),
        4 => (any::<Index>(), proptest::sample::select(&[1usize, 2, 4, 8][..]), interesting(), any::<bool>())
            .prop_map(|(at, width, value, big_endian)| ByteEdit::Word { at, width, value, big_endian }),
        1 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        1 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| ByteEdit::Delete(i, n)),
        1 => (any::<Index>(), 1usize..128, any::<Index>(), any::<bool>())
            .prop_map(|(from, len, to, insert)| ByteEdit::Splice { from, len, to, insert }),
    ]
}

/// One to `max` byte edits.
pub fn byte_edits(max: usize) -> impl Strategy<Value = Vec<ByteEdit>> {
    proptest::collection::vec(byte_edit(), 1..=max)
}

/// Applies `edits` in order (positions are taken modulo the current length).
pub fn apply_bytes(bytes: &mut Vec<u8>, edits: &[ByteEdit]) {
    for edit in edits {
        let n = bytes.len();
        let pos = |i: &Index| if n == 0 { 0 } else { i.index(n) };
        match edit {
            ByteEdit::Truncate(i) => bytes.truncate(pos(i)),
            ByteEdit::Flip(i, x) if n > 0 => bytes[pos(i)] ^= x,
            ByteEdit::Word {
                at,
                width,
                value,
                big_endian,
            } if n > 0 => {
                let word = if *big_endian {
                    value.to_be_bytes()[8 - width..].to_vec()
                } else {
                    value.to_le_bytes()[..*width].to_vec()
                };
                let at = pos(at);
                let end = (at + width).min(n);
                bytes[at..end].copy_from_slice(&word[..end - at]);
            }
            ByteEdit::Insert(i, b) => {
                let at = if n == 0 { 0 } else { i.index(n + 1) };
                bytes.splice(at..at, b.iter().copied());
            }
            ByteEdit::Delete(i, len) if n > 0 => {
                let at = pos(i);
                bytes.drain(at..(at + len).min(n));
            }
            ByteEdit::Splice {
                from,
                len,
                to,
                insert,
            } if n > 0 => {
                let from = pos(from);
                let chunk = bytes[from..(from + len).min(n)].to_vec();
                let to = pos(to);
                if *insert {
                    bytes.splice(to..to, chunk);
                } else {
                    let end = (to + chunk.len()).min(n);
                    bytes[to..end].copy_from_slice(&chunk[..end - to]);
                }
            }
            _ => {}
        }
    }
}

/// `base` with byte edits applied.
pub fn mutated_bytes(base: &[u8], edits: &[ByteEdit]) -> Vec<u8> {
    let mut b = base.to_vec();
    apply_bytes(&mut b, edits);
    b
}

/// A JSON number that is an edge case somewhere.
#[derive(Debug, Clone)]
pub enum Number {
    Unsigned(u64),
    Negative(i64),
    Float(f64),
}

impl Number {
    fn value(&self) -> Value {
        match self {
            Number::Unsigned(u) => Value::from(*u),
            Number::Negative(i) => Value::from(*i),
            Number::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        }
    }
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        6 => interesting().prop_map(Number::Unsigned),
        1 => prop_oneof![Just(-1i64), Just(i64::MIN), any::<i64>()].prop_map(Number::Negative),
        1 => prop_oneof![
            Just(0.5),
            Just(-0.0),
            Just(1e30),
            Just(-3.4e38),
            Just(f64::MAX),
            Just(1e-45),
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
        ]
        .prop_map(Number::Float),
    ]
}

/// One structure-aware edit of a JSON document; the index picks the node among those of the
/// right type.
#[derive(Debug, Clone)]
pub enum JsonEdit {
    /// A number replaced.
    Number(Index, Number),
    /// A number moved by a small amount (a neighbouring id, round, party, dimension).
    Nudge(Index, i64),
    /// A string replaced.
    Text(Index, String),
    /// An element of an array or a field of an object removed.
    Remove(Index),
    /// An element of an array repeated.
    Duplicate(Index),
    /// A node replaced by a copy of another node.
    Copy { from: Index, to: Index },
    /// A node replaced by null, an empty array or an empty object.
    Empty(Index, u8),
}

pub fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        6 => (any::<Index>(), number()).prop_map(|(i, n)| JsonEdit::Number(i, n)),
        4 => (any::<Index>(), -3i64..=3).prop_map(|(i, d)| JsonEdit::Nudge(i, d)),
        2 => (any::<Index>(), prop_oneof![
            Just(String::new()),
            Just("input".to_string()),
            Just("send".to_string()),
            Just("recv".to_string()),
            Just("ring".to_string()),
            Just("server0".to_string()),
            "[a-z_]{1,12}",
            ".{0,8}",
        ]).prop_map(|(i, s)| JsonEdit::Text(i, s)),
        3 => any::<Index>().prop_map(JsonEdit::Remove),
        2 => any::<Index>().prop_map(JsonEdit::Duplicate),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(from, to)| JsonEdit::Copy { from, to }),
        1 => (any::<Index>(), 0u8..3).prop_map(|(i, k)| JsonEdit::Empty(i, k)),
    ]
}

/// One to `max` JSON edits.
pub fn json_edits(max: usize) -> impl Strategy<Value = Vec<JsonEdit>> {
    proptest::collection::vec(json_edit(), 1..=max)
}

#[derive(Clone, PartialEq)]
enum Seg {
    Key(String),
    At(usize),
}

/// Paths to every node of `v` that `keep` accepts, with the node's parent kind.
fn paths(v: &Value, keep: &dyn Fn(&Value) -> bool) -> Vec<Vec<Seg>> {
    fn walk(
        v: &Value,
        path: &mut Vec<Seg>,
        keep: &dyn Fn(&Value) -> bool,
        out: &mut Vec<Vec<Seg>>,
    ) {
        if keep(v) {
            out.push(path.clone());
        }
        match v {
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    path.push(Seg::At(i));
                    walk(x, path, keep, out);
                    path.pop();
                }
            }
            Value::Object(o) => {
                for (k, x) in o {
                    path.push(Seg::Key(k.clone()));
                    walk(x, path, keep, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), keep, &mut out);
    out
}

fn at_mut<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, seg| match seg {
        Seg::Key(k) => v.get_mut(k.as_str()),
        Seg::At(i) => v.get_mut(*i),
    })
}

fn at<'a>(v: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, seg| match seg {
        Seg::Key(k) => v.get(k.as_str()),
        Seg::At(i) => v.get(*i),
    })
}

fn pick(v: &Value, i: &Index, keep: &dyn Fn(&Value) -> bool) -> Option<Vec<Seg>> {
    let all = paths(v, keep);
    (!all.is_empty()).then(|| all[i.index(all.len())].clone())
}

/// Applies `edits` in order; an edit with no node of its type does nothing.
pub fn apply_json(v: &mut Value, edits: &[JsonEdit]) {
    for edit in edits {
        match edit {
            JsonEdit::Number(i, n) => {
                if let Some(p) = pick(v, i, &|x| x.is_number()) {
                    *at_mut(v, &p).expect("picked") = n.value();
                }
            }
            JsonEdit::Nudge(i, d) => {
                if let Some(p) = pick(v, i, &|x| x.is_number()) {
                    let x = at_mut(v, &p).expect("picked");
                    *x = match (x.as_u64(), x.as_i64(), x.as_f64()) {
                        (Some(u), _, _) => match u.checked_add_signed(*d) {
                            Some(u) => Value::from(u),
                            None => Value::from(u as i128 as i64 + d),
                        },
                        (_, Some(s), _) => Value::from(s.wrapping_add(*d)),
                        (_, _, Some(f)) => Number::Float(f + *d as f64).value(),
                        _ => Value::Null,
                    };
                }
            }
            JsonEdit::Text(i, s) => {
                if let Some(p) = pick(v, i, &|x| x.is_string()) {
                    *at_mut(v, &p).expect("picked") = Value::from(s.as_str());
                }
            }
            JsonEdit::Remove(i) => {
                // a node with a parent: the path is not empty
                if let Some(mut p) = pick(v, i, &|_| true).filter(|p| !p.is_empty()) {
                    let last = p.pop().expect("not empty");
                    match (at_mut(v, &p).expect("picked"), last) {
                        (Value::Array(a), Seg::At(k)) => {
                            a.remove(k);
                        }
                        (Value::Object(o), Seg::Key(k)) => {
                            o.remove(&k);
                        }
                        _ => {}
                    }
                }
            }
            JsonEdit::Duplicate(i) => {
                if let Some(p) = pick(v, i, &|x| x.as_array().is_some_and(|a| !a.is_empty())) {
                    if let Some(Value::Array(a)) = at_mut(v, &p) {
                        let k = i.index(a.len());
                        let x = a[k].clone();
                        a.insert(k, x);
                    }
                }
            }
            JsonEdit::Copy { from, to } => {
                let src = pick(v, from, &|_| true).and_then(|p| at(v, &p).cloned());
                // not the root: a document replaced whole is a different test
                if let (Some(src), Some(p)) =
                    (src, pick(v, to, &|_| true).filter(|p| !p.is_empty()))
                {
                    *at_mut(v, &p).expect("picked") = src;
                }
            }
            JsonEdit::Empty(i, k) => {
                if let Some(p) = pick(v, i, &|_| true).filter(|p| !p.is_empty()) {
                    *at_mut(v, &p).expect("picked") = match k {
                        0 => Value::Null,
                        1 => Value::Array(Vec::new()),
                        _ => Value::Object(Default::default()),
                    };
                }
            }
        }
    }
}

/// `base` (a JSON document) with JSON edits applied, as text.
pub fn mutated_json(base: &Value, edits: &[JsonEdit]) -> String {
    let mut v = base.clone();
    apply_json(&mut v, edits);
    v.to_string()
}

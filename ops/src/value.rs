//! The tagged tensor value that a party stores, computes on and sends.

use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

use crate::OpsError;

/// A 32-byte ChaCha20 seed: a pseudo-random share travels as one of these, never as a tensor.
pub type Seed = [u8; 32];

/// The kinds of [`Value`], as a plain tag (for wire headers, shapes and error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValueKind {
    /// Z_2^64, wrapping `u64` (two's complement fixed point lives here).
    Ring,
    /// Z_{2^64-1}, values in `0..u64::MAX`.
    OddRing,
    /// Small integers: bits, or elements of a small prime field Z_p (p < 256).
    Small,
    /// Plaintext `f32`.
    Float,
    /// A PRG seed.
    Seed,
}

impl ValueKind {
    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Ring => "ring",
            ValueKind::OddRing => "odd-ring",
            ValueKind::Small => "small",
            ValueKind::Float => "float",
            ValueKind::Seed => "seed",
        }
    }
}

/// A tensor held by one party.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Ring(ArrayD<u64>),
    OddRing(ArrayD<u64>),
    Small(ArrayD<u8>),
    Float(ArrayD<f32>),
    Seed(Seed),
}

impl Value {
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Ring(_) => ValueKind::Ring,
            Value::OddRing(_) => ValueKind::OddRing,
            Value::Small(_) => ValueKind::Small,
            Value::Float(_) => ValueKind::Float,
            Value::Seed(_) => ValueKind::Seed,
        }
    }

    /// The shape; a seed has the empty shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::Ring(a) | Value::OddRing(a) => a.shape(),
            Value::Small(a) => a.shape(),
            Value::Float(a) => a.shape(),
            Value::Seed(_) => &[],
        }
    }

    /// Bytes this value takes on the wire, without header.
    pub fn payload_bytes(&self) -> usize {
        match self {
            Value::Ring(a) | Value::OddRing(a) => a.len() * 8,
            Value::Small(a) => a.len(),
            Value::Float(a) => a.len() * 4,
            Value::Seed(_) => 32,
        }
    }

    fn wrong(&self, op: &'static str, expected: &'static str) -> OpsError {
        OpsError::WrongKind {
            op,
            expected,
            got: self.kind().name(),
        }
    }

    pub fn as_ring(&self, op: &'static str) -> crate::Result<&ArrayD<u64>> {
        match self {
            Value::Ring(a) => Ok(a),
            other => Err(other.wrong(op, "ring")),
        }
    }

    pub fn as_odd_ring(&self, op: &'static str) -> crate::Result<&ArrayD<u64>> {
        match self {
            Value::OddRing(a) => Ok(a),
            other => Err(other.wrong(op, "odd-ring")),
        }
    }

    pub fn as_small(&self, op: &'static str) -> crate::Result<&ArrayD<u8>> {
        match self {
            Value::Small(a) => Ok(a),
            other => Err(other.wrong(op, "small")),
        }
    }

    pub fn as_float(&self, op: &'static str) -> crate::Result<&ArrayD<f32>> {
        match self {
            Value::Float(a) => Ok(a),
            other => Err(other.wrong(op, "float")),
        }
    }

    pub fn as_seed(&self, op: &'static str) -> crate::Result<&Seed> {
        match self {
            Value::Seed(s) => Ok(s),
            other => Err(other.wrong(op, "seed")),
        }
    }
}

//! Shapes, element types, visibilities and padding.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::PartyId;

/// A static shape. Images are NHWC; a batch dimension is part of the shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    /// A shape of these dimensions.
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }
    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape(d.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape(d.to_vec())
    }
}

impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape(d)
    }
}

/// The element type of a value in the logical graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    /// A real number (f32 in the clear, fixed point under a protocol).
    Float,
    /// A fixed-point number with this many fractional bits.
    Fixed {
        /// Fractional bits.
        frac_bits: u32,
    },
    /// A raw element of Z_2^64.
    Ring,
    /// A bit.
    Bit,
}

/// Who may see a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Known to everyone (constants and what is computed from constants only).
    Public,
    /// Known to one party only (its inputs, and what it computes from them and public values).
    Private(PartyId),
    /// Secret-shared among the compute parties: nobody sees it.
    Shared,
}

impl Visibility {
    /// The visibility of an op's result from its inputs' visibilities: public if all are
    /// public, private to `p` if all are public or private to `p`, shared otherwise.
    pub fn combine(inputs: impl IntoIterator<Item = Visibility>) -> Visibility {
        let mut out = Visibility::Public;
        for v in inputs {
            out = match (out, v) {
                (Visibility::Public, v) => v,
                (o, Visibility::Public) => o,
                (Visibility::Private(a), Visibility::Private(b)) if a == b => {
                    Visibility::Private(a)
                }
                _ => Visibility::Shared,
            };
        }
        out
    }
}

/// Padding of a convolution or pooling window, with TensorFlow's conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// No padding: `out = (in - k) / stride + 1`.
    Valid,
    /// `out = ceil(in / stride)`; the total padding is split with the extra row/column at the
    /// bottom/right.
    Same,
}

impl Padding {
    /// Output length of one spatial dimension, or `None` when the window does not fit.
    pub fn output_len(self, input: usize, kernel: usize, stride: usize) -> Option<usize> {
        if stride == 0 || kernel == 0 {
            return None;
        }
        match self {
            Padding::Valid => (input >= kernel).then(|| (input - kernel) / stride + 1),
            Padding::Same => (input > 0).then(|| input.div_ceil(stride)),
        }
    }
}

//! The one error type of `shareflow-ops`.

use thiserror::Error;

/// What can go wrong in a local kernel. Every variant says which operand or field is at fault.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum OpsError {
    /// Two operands whose shapes do not fit the kernel.
    #[error("{op}: shapes {left:?} and {right:?} do not fit")]
    ShapeMismatch {
        op: &'static str,
        left: Vec<usize>,
        right: Vec<usize>,
    },
    /// An operand of the wrong rank or an invalid parameter.
    #[error("{op}: {message}")]
    InvalidArgument { op: &'static str, message: String },
    /// A real value that fixed point with the given fractional bits cannot encode.
    #[error(
        "fixed point: value {value} at index {index} is beyond the encodable range \
         +/-{limit} with {frac_bits} fractional bits"
    )]
    OutOfRange {
        value: f64,
        index: usize,
        limit: f64,
        frac_bits: u32,
    },
    /// A value of another kind than the kernel takes.
    #[error("{op}: expected a {expected} value, got {got}")]
    WrongKind {
        op: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    /// The operating system could not provide randomness for a fresh seed.
    #[error("randomness: the operating system generator failed: {0}")]
    Entropy(String),
}

//! Local kernels of shareflow, on one machine and with no notion of graphs or networks.
//!
//! - [`plain`]: the f32 reference kernels (forward and backward) on ndarray, NHWC layout with
//!   TensorFlow's padding conventions. They are the oracle of every protocol test.
//! - [`ring`]: tensors over Z_2^64 (wrapping `u64`), over the odd ring Z_{2^64-1}, and small
//!   prime fields for shared bits; blocked, parallel matmul and conv2d.
//! - [`fixed`]: fixed-point encoding of reals into Z_2^64 with `f` fractional bits.
//! - [`prg`]: AES-128-CTR keyed through ChaCha20, expanding a 32-byte seed into tensors,
//!   domain-separated by (session, node, purpose).
//! - [`value`]: the tagged tensor value that the runtime stores and sends.

pub mod broadcast;
pub mod error;
pub mod fixed;
pub mod im2col;
pub mod par;
pub mod plain;
pub mod prg;
pub mod ring;
pub mod value;

pub use error::OpsError;
pub use value::{Seed, Value, ValueKind};

/// Result of the kernels of this crate.
pub type Result<T> = std::result::Result<T, OpsError>;

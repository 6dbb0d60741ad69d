//! Executes shareflow programs.
//!
//! - [`plain`]: the plaintext f32 reference executor of a logical graph (the oracle of every
//!   protocol test), with training by backpropagation.
//! - [`transport`]: how one party's batches reach the others: in-process channels (every party a
//!   thread) or QUIC with mutual TLS (one process per party). The executor sees only the
//!   [`transport::Transport`] trait.
//! - [`wire`]: the frame format on the wire: raw little-endian words behind a small header.
//! - [`cluster`] and [`keys`]: the cluster file and the certificates of its parties.
//! - [`data`]: MNIST IDX loading and NumPy files.
//! - [`federated`]: federated averaging whose aggregation is a secure computation.

pub mod cluster;
pub mod data;
pub mod error;
pub mod exec;
pub mod federated;
pub mod keys;
pub mod model;
pub mod party;
pub mod plain;
pub mod round;
pub mod train;
pub mod transport;
pub mod wire;

pub use error::RuntimeError;

/// Result of this crate.
pub type Result<T> = std::result::Result<T, RuntimeError>;

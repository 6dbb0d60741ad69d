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
//! - [`exec`]: runs one party's program; [`exec::Session`] keeps variables as shares across runs.
//! - [`train`]: private training on secret-shared data, with checkpoints.
//! - [`model`]: a Keras-like model: a network with its parties' roles, trained, evaluated, saved.
//! - [`party`]: one party of a compiled graph as its own process over QUIC.
//! - [`round`]: round numbers as they travel, shown in their parts in errors.
//!
//! # Parties
//!
//! Some party names are reserved. The compute parties of every compiled program are `server0`
//! and `server1` (the two servers holding the shares) and `helper` (the crypto producer of
//! Pond, the dealer and comparison helper of SecureNN); a graph must not use these names for its
//! own parties. The zoo's networks name their data owners `model-owner` (holds the weights)
//! and `client` (holds the images).
//!
//! The servers see only seeds, shares and masked openings. An output goes only to the party the
//! graph names. The receiver of a prediction's output (the zoo's and [`model`]'s `client`)
//! learns the logits in the clear, not only the predicted class; nothing else is revealed
//! unless the graph asks for it (a loss, the trained weights).

#![warn(missing_docs)]

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

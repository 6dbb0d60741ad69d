//! Federated learning with secure aggregation: data owners train on their own data in
//! plaintext and secret-share their model updates; the servers average them under Pond or
//! SecureNN; only the model owner receives the mean.
//!
//! - [`aggregation`]: the logical graph of one aggregation (K owners' updates in, the mean out
//!   to the model owner).
//! - [`aggregator`]: who runs it ([`Aggregator`]; [`InProcess`] compiles the graph of each set
//!   of contributors once and runs every party as a thread).
//! - [`local`]: an owner's plaintext training from the global model.
//! - [`rounds`]: the FedAvg loop and its plaintext reference on the pooled data.
//!
//! The data owners receive the global model at the start of every round (they train it):
//! federated averaging hides their data and their updates, not the model.

pub mod aggregation;
pub mod aggregator;
pub mod local;
pub mod rounds;

pub use aggregation::{aggregation_graph, owner_name, AggregationGraph, TensorSpec};
pub use aggregator::{compile_for, Aggregate, Aggregator, Compiled, Contribution, InProcess};
pub use local::{LocalConfig, LocalTrainer};
pub use rounds::{federated_averaging, pooled_baseline, FedConfig, RoundReport};

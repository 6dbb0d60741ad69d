//! The one error type of `shareflow-runtime`.

use thiserror::Error;

/// What can go wrong while running a program. Every variant names the party, peer, node or file
/// at fault.
#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Ops(#[from] shareflow_ops::OpsError),
    #[error(transparent)]
    Graph(#[from] shareflow_graphs::GraphError),
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("node {node}: {message}")]
    Node { node: String, message: String },
    /// Inputs given for a party that the compiled graph does not have.
    #[error("inputs given for party {party:?}, which the graph does not have (parties: {known})")]
    UnknownParty { party: String, known: String },
    /// An input value given that the party's program does not take (a misspelt name, or
    /// another run's input).
    #[error("party {party}: {input:?} is not one of its inputs in this graph (inputs: {known})")]
    UnknownInput {
        party: String,
        input: String,
        known: String,
    },
    /// A link to a peer failed: it closed, crashed, refused us, or sent something invalid.
    #[error("peer {peer}: {message}")]
    Transport { peer: String, message: String },
    /// A peer's batch of a round did not arrive in time.
    #[error("peer {peer}: no batch of round {round} arrived within {after:?}")]
    Timeout {
        peer: String,
        round: u32,
        after: std::time::Duration,
    },
    /// Certificates, keys or the TLS configuration.
    #[error("TLS: {0}")]
    Tls(String),
    /// A cluster file or transport setting is wrong; `field` names it (e.g. `parties.server0.address`).
    #[error("config {field}: {message}")]
    Config { field: String, message: String },
    /// Bytes that are not a valid batch; `field` names the header or entry field at fault.
    #[error("wire format: {field}: {message}")]
    Wire { field: String, message: String },
    /// An operating-system error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

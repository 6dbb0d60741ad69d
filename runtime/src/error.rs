//! The one error type of `shareflow-runtime`.

use thiserror::Error;

/// What can go wrong while running a program. Every variant names the party, peer, node or file
/// at fault.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// An error of the shared operations (fixed-point encoding, shapes, tensor files).
    #[error(transparent)]
    Ops(#[from] shareflow_ops::OpsError),
    /// An error of a logical graph (building, validating or loading it).
    #[error(transparent)]
    Graph(#[from] shareflow_graphs::GraphError),
    /// Compiling a graph this crate builds (training sessions, federated aggregation).
    #[error(transparent)]
    Compile(#[from] shareflow_compiler::CompileError),
    /// A file (data set, weights, checkpoint, graph) that cannot be read or is not valid.
    #[error("{path}: {message}")]
    File {
        /// The file's path.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A node of the program cannot run (missing operand, wrong shape or kind).
    #[error("node {node}: {message}")]
    Node {
        /// The node's name.
        node: String,
        /// What is wrong.
        message: String,
    },
    /// A local kernel failed on its operands.
    #[error("node {node}: {source}")]
    Kernel {
        /// The node whose kernel failed.
        node: String,
        /// The kernel's error.
        #[source]
        source: shareflow_ops::OpsError,
    },
    /// Inputs given for a party that the compiled graph does not have.
    #[error("inputs given for party {party:?}, which the graph does not have (parties: {known})")]
    UnknownParty {
        /// The party named by the inputs.
        party: String,
        /// The graph's parties, comma-separated.
        known: String,
    },
    /// An input value given that the party's program does not take (a misspelt name, or
    /// another run's input).
    #[error("party {party}: {input:?} is not one of its inputs in this graph (inputs: {known})")]
    UnknownInput {
        /// The party the input was given for.
        party: String,
        /// The input's name.
        input: String,
        /// The party's inputs in this graph, comma-separated.
        known: String,
    },
    /// A link to a peer failed: it closed, crashed, refused us, or sent something invalid.
    #[error("peer {peer}: {message}")]
    Transport {
        /// The peer's party name.
        peer: String,
        /// What happened.
        message: String,
    },
    /// A peer failed the handshake: another graph, name, protocol version or session.
    #[error("peer {peer}: {message}")]
    Handshake {
        /// The peer's party name.
        peer: String,
        /// What did not match.
        message: String,
    },
    /// A peer closed the connection because a party failed; `failure` says which and how.
    #[error("peer {peer}: {failure}")]
    PeerFailed {
        /// The peer that closed the connection.
        peer: String,
        /// Which party failed and how, as the peer told us.
        failure: Failure,
    },
    /// A peer's batch of a round did not arrive in time.
    #[error("peer {peer}: no batch of {} arrived within {after:?}", crate::round::Round(*round))]
    Timeout {
        /// The peer whose batch is missing.
        peer: String,
        /// The round number on the wire (run and round within the run).
        round: u32,
        /// How long we waited.
        after: std::time::Duration,
    },
    /// Certificates, keys or the TLS configuration.
    #[error("TLS: {0}")]
    Tls(String),
    /// A cluster file or transport setting is wrong; `field` names it (e.g. `parties.server0.address`).
    #[error("config {field}: {message}")]
    Config {
        /// The setting at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Bytes that are not a valid batch; `field` names the header or entry field at fault.
    #[error("wire format: {field}: {message}")]
    Wire {
        /// The header or entry field at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// An operating-system error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (e.g. binding a socket, reading a file).
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// The kind of a failure, as a party tells its peers: a code on the wire, rendered into words by
/// the receiver. It never carries data (values, indices, names of tensors): those stay in the
/// failing party's own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Fixed-point encoding of an input: a value beyond the encodable range.
    InputEncoding,
    /// A local kernel failed on its operands.
    Kernel,
    /// The program or its inputs (a missing input, a node without its value).
    Program,
    /// A file could not be read or written.
    File,
    /// A cluster file or transport setting.
    Config,
    /// Certificates, keys or the TLS configuration.
    Tls,
    /// The operating system.
    Io,
    /// A batch that is not valid on the wire.
    Wire,
    /// The link to a peer failed: it closed, crashed or sent something invalid.
    Link,
    /// A peer did not answer in time.
    Timeout,
    /// A peer failed the handshake (another graph, name or session).
    Handshake,
    /// A code this version does not know.
    Unknown,
}

impl FailureKind {
    const ALL: [FailureKind; 11] = [
        FailureKind::InputEncoding,
        FailureKind::Kernel,
        FailureKind::Program,
        FailureKind::File,
        FailureKind::Config,
        FailureKind::Tls,
        FailureKind::Io,
        FailureKind::Wire,
        FailureKind::Link,
        FailureKind::Timeout,
        FailureKind::Handshake,
    ];

    /// The kind's code on the wire.
    pub fn code(self) -> u8 {
        match self {
            FailureKind::Unknown => 0,
            FailureKind::InputEncoding => 1,
            FailureKind::Kernel => 2,
            FailureKind::Program => 3,
            FailureKind::File => 4,
            FailureKind::Config => 5,
            FailureKind::Tls => 6,
            FailureKind::Io => 7,
            FailureKind::Wire => 8,
            FailureKind::Link => 9,
            FailureKind::Timeout => 10,
            FailureKind::Handshake => 11,
        }
    }

    /// The kind of a code; [`FailureKind::Unknown`] for a code this version does not know.
    pub fn from_code(code: u8) -> FailureKind {
        FailureKind::ALL
            .into_iter()
            .find(|k| k.code() == code)
            .unwrap_or(FailureKind::Unknown)
    }

    /// Whether the party named with this kind is the peer at fault rather than the party that
    /// failed.
    pub fn names_a_peer(self) -> bool {
        matches!(
            self,
            FailureKind::Link | FailureKind::Timeout | FailureKind::Handshake
        )
    }

    /// The failure in words, about `party`.
    pub fn describe(self, party: &str) -> String {
        let what = match self {
            FailureKind::InputEncoding => {
                "encoding of an input (a value beyond the fixed-point range)"
            }
            FailureKind::Kernel => "a local kernel",
            FailureKind::Program => "its program or its inputs",
            FailureKind::File => "a file",
            FailureKind::Config => "its configuration",
            FailureKind::Tls => "its certificates or keys",
            FailureKind::Io => "an operating-system error",
            FailureKind::Wire => "an invalid batch",
            FailureKind::Link => return format!("the link to {party} failed"),
            FailureKind::Timeout => return format!("{party} did not answer in time"),
            FailureKind::Handshake => {
                return format!(
                    "{party} failed the handshake (another graph, party list or session?)"
                )
            }
            FailureKind::Unknown => return format!("{party} failed"),
        };
        format!("{party} failed: {what}")
    }
}

/// Why a peer closed its connection, as it travels on the wire: a kind and the party it is
/// about (the failing party, or for [`FailureKind::names_a_peer`] the peer at fault), never data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The peer refused us during setup (rather than failing during the run).
    pub refused: bool,
    /// What went wrong.
    pub kind: FailureKind,
    /// The party the failure is about, if it is one of the session's parties.
    pub party: Option<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let party = self.party.as_deref().unwrap_or("a party");
        let how = if self.refused {
            "refused us"
        } else {
            "closed the connection"
        };
        write!(f, "{how}: {}", self.kind.describe(party))
    }
}

impl RuntimeError {
    /// What this party tells its peers about this error: the kind, and the party it is about
    /// (`me` for a failure of its own; the peer at fault for a failed link, timeout or
    /// handshake; the root cause for a failure a peer reported). No data of the message.
    pub fn failure(&self, me: &str) -> (FailureKind, String) {
        let out_of_range =
            |e: &shareflow_ops::OpsError| matches!(e, shareflow_ops::OpsError::OutOfRange { .. });
        let (kind, party) = match self {
            RuntimeError::PeerFailed { peer, failure } => {
                return (
                    failure.kind,
                    failure.party.clone().unwrap_or_else(|| peer.clone()),
                )
            }
            RuntimeError::Transport { peer, .. } => (FailureKind::Link, peer.as_str()),
            RuntimeError::Timeout { peer, .. } => (FailureKind::Timeout, peer.as_str()),
            RuntimeError::Handshake { peer, .. } => (FailureKind::Handshake, peer.as_str()),
            RuntimeError::Ops(e) | RuntimeError::Kernel { source: e, .. } if out_of_range(e) => {
                (FailureKind::InputEncoding, me)
            }
            RuntimeError::Ops(_) | RuntimeError::Kernel { .. } => (FailureKind::Kernel, me),
            RuntimeError::Graph(_)
            | RuntimeError::Compile(_)
            | RuntimeError::Node { .. }
            | RuntimeError::UnknownParty { .. }
            | RuntimeError::UnknownInput { .. } => (FailureKind::Program, me),
            RuntimeError::File { .. } => (FailureKind::File, me),
            RuntimeError::Config { .. } => (FailureKind::Config, me),
            RuntimeError::Tls(_) => (FailureKind::Tls, me),
            RuntimeError::Io { .. } => (FailureKind::Io, me),
            RuntimeError::Wire { .. } => (FailureKind::Wire, me),
        };
        (kind, party.to_string())
    }
}

//! The one error type of `shareflow-compiler`.

use thiserror::Error;

/// A graph that cannot be compiled, or a compiled graph that cannot be loaded. Every variant
/// names the node, party or field at fault.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CompileError {
    #[error(transparent)]
    Graph(#[from] shareflow_graphs::GraphError),
    #[error(transparent)]
    Ops(#[from] shareflow_ops::OpsError),
    /// An op the protocol cannot compute (exactly) — says what to use instead.
    #[error("node {node}: {op} is not supported under {protocol}: {hint}")]
    Unsupported {
        node: String,
        op: &'static str,
        protocol: &'static str,
        hint: String,
    },
    #[error("node {node}: {message}")]
    Node { node: String, message: String },
    #[error("party {party}: {message}")]
    Party { party: String, message: String },
    #[error("no layer {layer:?} in this compiled graph (layers: {known})")]
    Layer { layer: String, known: String },
    #[error("compiled graph JSON: {message}")]
    Json { message: String },
    /// A compile option outside its sound range (`CompileOptions::validate`).
    #[error("compile option {field} = {value}: allowed {allowed}")]
    Option {
        field: &'static str,
        value: String,
        allowed: String,
    },
    #[error("unknown protocol {name:?} (pond, securenn)")]
    UnknownProtocol { name: String },
    #[error(
        "compiled graph: format version {found} is not supported (this build reads {supported})"
    )]
    Version { found: u32, supported: u32 },
    /// A party's program would send one of its private inputs, or a function of it, other
    /// than as a share masked by fresh randomness the receiver does not hold.
    #[error(
        "party {party}: instruction {instr} would send private input {input:?} to {peer} {why}; \
         refused"
    )]
    InputLeak {
        party: String,
        instr: crate::ir::ValueId,
        input: String,
        peer: String,
        why: String,
    },
    /// A party's program would reveal a value to a party the graph names as receiving no
    /// output, or keep an output that is not its own.
    #[error("party {party}: instruction {instr} (to {peer}) {why}; refused")]
    OutputLeak {
        party: String,
        instr: crate::ir::ValueId,
        peer: String,
        why: String,
    },
}

//! The one error type of `shareflow-compiler`.

use thiserror::Error;

/// A graph that cannot be compiled, or a compiled graph that cannot be loaded. Every variant
/// names the node, party or field at fault.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CompileError {
    /// The logical graph is not valid.
    #[error(transparent)]
    Graph(#[from] shareflow_graphs::GraphError),
    /// An error of the shared operations (fixed-point encoding, shapes).
    #[error(transparent)]
    Ops(#[from] shareflow_ops::OpsError),
    /// An op the protocol cannot compute (exactly) — says what to use instead.
    #[error("node {node}: {op} is not supported under {protocol}: {hint}")]
    Unsupported {
        /// The node's name.
        node: String,
        /// The op's name.
        op: &'static str,
        /// The protocol's name.
        protocol: &'static str,
        /// What to use instead.
        hint: String,
    },
    /// A node that cannot be compiled as it is (shape, kind, placement).
    #[error("node {node}: {message}")]
    Node {
        /// The node's name.
        node: String,
        /// What is wrong.
        message: String,
    },
    /// A party of the graph at fault (a reserved name, a party without a program).
    #[error("party {party}: {message}")]
    Party {
        /// The party's name.
        party: String,
        /// What is wrong.
        message: String,
    },
    /// A layer asked for (in a cost report or drawing) that the compiled graph does not have.
    #[error("no layer {layer:?} in this compiled graph (layers: {known})")]
    Layer {
        /// The layer asked for.
        layer: String,
        /// The graph's layers, comma-separated.
        known: String,
    },
    /// A compiled graph file that is not valid JSON of a compiled graph.
    #[error("compiled graph JSON: {message}")]
    Json {
        /// The parser's message.
        message: String,
    },
    /// A compile option outside its sound range (`CompileOptions::validate`).
    #[error("compile option {field} = {value}: allowed {allowed}")]
    Option {
        /// The option's name.
        field: &'static str,
        /// The value given.
        value: String,
        /// The range allowed.
        allowed: String,
    },
    /// A protocol name other than `pond` and `securenn`.
    #[error("unknown protocol {name:?} (pond, securenn)")]
    UnknownProtocol {
        /// The name given.
        name: String,
    },
    /// A compiled graph file of another format version.
    #[error(
        "compiled graph: format version {found} is not supported (this build reads {supported})"
    )]
    Version {
        /// The file's version.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A party's program would send one of its private inputs, or a function of it, other
    /// than as a share masked by fresh randomness the receiver does not hold.
    #[error(
        "party {party}: instruction {instr} would send private input {input:?} to {peer} {why}; \
         refused"
    )]
    InputLeak {
        /// The party whose program would send it.
        party: String,
        /// The sending instruction.
        instr: crate::ir::ValueId,
        /// The private input's name.
        input: String,
        /// The party that would receive it.
        peer: String,
        /// How the input reaches the sent value.
        why: String,
    },
    /// A party's program would reveal a value to a party the graph names as receiving no
    /// output, or keep an output that is not its own.
    #[error("party {party}: instruction {instr} (to {peer}) {why}; refused")]
    OutputLeak {
        /// The party whose program would reveal or keep it.
        party: String,
        /// The revealing or output instruction.
        instr: crate::ir::ValueId,
        /// The party it goes to.
        peer: String,
        /// Why that is refused.
        why: String,
    },
    /// A compiled graph that is not what its logical graph compiles to (or carries none):
    /// the first party and instruction that differ from the recompilation.
    #[error(
        "party {party}: {message}; refused: a compiled graph must be what its logical graph \
         compiles to"
    )]
    NotRecompiled {
        /// The party whose program differs (the first party for a graph-wide difference).
        party: String,
        /// The first instruction that differs, if one does.
        instr: Option<crate::ir::ValueId>,
        /// What differs.
        message: String,
    },
}

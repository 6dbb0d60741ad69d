//! The one error type of `shareflow-graphs`.

use thiserror::Error;

/// A graph that cannot be built, loaded or used. Every variant names the node (by id and
/// name), party or JSON field at fault.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GraphError {
    #[error("node {node} ({op}): {message}")]
    Shape {
        node: String,
        op: &'static str,
        message: String,
    },
    #[error("node {node}: unknown party {party}")]
    UnknownParty { node: String, party: String },
    #[error("node {node}: output to party {party}, which the graph does not have")]
    OutputToUnknownParty { node: String, party: String },
    #[error("party {party} is declared twice")]
    DuplicateParty { party: String },
    /// Two inputs with one name: they would be given one value.
    #[error("input {name:?} is declared twice: nodes {first} and {second}")]
    DuplicateInput {
        name: String,
        first: String,
        second: String,
    },
    /// Two outputs with one name to one party: one would be lost.
    #[error("output {name:?} to party {party} is declared twice: nodes {first} and {second}")]
    DuplicateOutput {
        name: String,
        party: String,
        first: String,
        second: String,
    },
    #[error("the graph has a cycle through node {node}")]
    Cycle { node: String },
    #[error("node {node}: input {input} is a private value of party {party}, but a public constant is required")]
    PrivateAsPublic {
        node: String,
        input: String,
        party: String,
    },
    #[error("node {node}: input {input} does not exist")]
    UnknownNode { node: String, input: String },
    #[error("node {node} ({op}): takes {expected} inputs, got {got}")]
    Arity {
        node: String,
        op: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("node {node}: {message}")]
    Invalid { node: String, message: String },
    #[error("graph JSON: {message}")]
    Json { message: String },
    #[error("graph JSON: format version {found} is not supported (this build reads {supported})")]
    Version { found: u32, supported: u32 },
    #[error("node {node}: assigns to {target}, which is not a variable")]
    AssignToNonVariable { node: String, target: String },
    #[error("node {node}: a second assign to variable {variable}")]
    DuplicateAssign { node: String, variable: String },
    #[error("node {node}: variable name {name:?} is taken")]
    DuplicateVariable { node: String, name: String },
    #[error("node {node} ({op}): has no gradient")]
    NoGradient { node: String, op: &'static str },
    #[error("node {node}: variable is not trainable, it has no gradient")]
    NotTrainable { node: String },
    #[error("node {node}: the loss {loss} does not depend on it")]
    Unconnected { node: String, loss: String },
    #[error("no node named {name}")]
    NoSuchName { name: String },
}

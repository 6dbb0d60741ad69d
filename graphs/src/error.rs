//! The one error type of `shareflow-graphs`.

use thiserror::Error;

/// A graph that cannot be built, loaded or used. Every variant names the node (by id and
/// name), party or JSON field at fault.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GraphError {
    /// An op's inputs have shapes it cannot take.
    #[error("node {node} ({op}): {message}")]
    Shape {
        /// The node (id and name).
        node: String,
        /// The op's name.
        op: &'static str,
        /// What does not fit.
        message: String,
    },
    /// A node placed on (or owned by) a party the graph does not declare.
    #[error("node {node}: unknown party {party}")]
    UnknownParty {
        /// The node (id and name).
        node: String,
        /// The undeclared party.
        party: String,
    },
    /// An output to a party the graph does not declare.
    #[error("node {node}: output to party {party}, which the graph does not have")]
    OutputToUnknownParty {
        /// The output node (id and name).
        node: String,
        /// The undeclared receiver.
        party: String,
    },
    /// A party declared twice.
    #[error("party {party} is declared twice")]
    DuplicateParty {
        /// The party's name.
        party: String,
    },
    /// Two inputs with one name: they would be given one value.
    #[error("input {name:?} is declared twice: nodes {first} and {second}")]
    DuplicateInput {
        /// The input's name.
        name: String,
        /// The first node declaring it.
        first: String,
        /// The second node declaring it.
        second: String,
    },
    /// Two outputs with one name to one party: one would be lost.
    #[error("output {name:?} to party {party} is declared twice: nodes {first} and {second}")]
    DuplicateOutput {
        /// The output's name.
        name: String,
        /// The receiving party.
        party: String,
        /// The first node declaring it.
        first: String,
        /// The second node declaring it.
        second: String,
    },
    /// The graph is not acyclic.
    #[error("the graph has a cycle through node {node}")]
    Cycle {
        /// A node on the cycle.
        node: String,
    },
    /// An op that needs a public constant (such as batchnorm's statistics) was given a private
    /// value.
    #[error("node {node}: input {input} is a private value of party {party}, but a public constant is required")]
    PrivateAsPublic {
        /// The node (id and name).
        node: String,
        /// The private input.
        input: String,
        /// The input's owner.
        party: String,
    },
    /// An input that is not a node of the graph.
    #[error("node {node}: input {input} does not exist")]
    UnknownNode {
        /// The node (id and name).
        node: String,
        /// The missing input's id.
        input: String,
    },
    /// An op given the wrong number of inputs.
    #[error("node {node} ({op}): takes {expected} inputs, got {got}")]
    Arity {
        /// The node (id and name).
        node: String,
        /// The op's name.
        op: &'static str,
        /// The inputs the op takes.
        expected: usize,
        /// The inputs given.
        got: usize,
    },
    /// A node that is not valid for another reason.
    #[error("node {node}: {message}")]
    Invalid {
        /// The node (id and name).
        node: String,
        /// What is wrong.
        message: String,
    },
    /// A graph file that is not valid graph JSON.
    #[error("graph JSON: {message}")]
    Json {
        /// The parser's message, with the field at fault.
        message: String,
    },
    /// A graph file of another format version.
    #[error("graph JSON: format version {found} is not supported (this build reads {supported})")]
    Version {
        /// The file's version.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// An assign whose target is not a variable.
    #[error("node {node}: assigns to {target}, which is not a variable")]
    AssignToNonVariable {
        /// The assign node (id and name).
        node: String,
        /// Its target.
        target: String,
    },
    /// Two assigns to one variable in one graph.
    #[error("node {node}: a second assign to variable {variable}")]
    DuplicateAssign {
        /// The second assign node (id and name).
        node: String,
        /// The variable.
        variable: String,
    },
    /// Two variables with one name.
    #[error("node {node}: variable name {name:?} is taken")]
    DuplicateVariable {
        /// The second variable node (id and name).
        node: String,
        /// The name.
        name: String,
    },
    /// A gradient asked through an op that has none.
    #[error("node {node} ({op}): has no gradient")]
    NoGradient {
        /// The node (id and name).
        node: String,
        /// The op's name.
        op: &'static str,
    },
    /// A gradient asked with respect to a non-trainable (frozen) variable.
    #[error("node {node}: variable is not trainable, it has no gradient")]
    NotTrainable {
        /// The variable node (id and name).
        node: String,
    },
    /// A gradient asked with respect to a node the loss does not depend on.
    #[error("node {node}: the loss {loss} does not depend on it")]
    Unconnected {
        /// The node (id and name).
        node: String,
        /// The loss node.
        loss: String,
    },
    /// A node looked up by a name no node has.
    #[error("no node named {name}")]
    NoSuchName {
        /// The name looked up.
        name: String,
    },
}

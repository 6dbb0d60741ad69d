//! The one error type of `shareflow-onnx`.

use thiserror::Error;

/// A model that cannot be read or imported. Every variant names the file, node, operator,
/// tensor or attribute at fault.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum OnnxError {
    /// The file cannot be read.
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// The bytes are not an ONNX `ModelProto`.
    #[error("not an ONNX model: {message}")]
    Decode { message: String },
    /// The model as a whole is outside what the importer takes (no graph, several inputs or
    /// outputs, an unknown dimension).
    #[error("model: {message}")]
    Model { message: String },
    /// An operator the importer does not convert: the model is refused rather than run
    /// without it.
    #[error("node {node}: operator {op} is not supported (supported: {supported})")]
    Unsupported {
        node: String,
        op: String,
        supported: &'static str,
    },
    /// A supported operator with attributes or inputs the importer cannot express.
    #[error("node {node} ({op}): {message}")]
    Node {
        node: String,
        op: String,
        message: String,
    },
    /// A tensor (initializer or constant) that cannot be decoded.
    #[error("tensor {name}: {message}")]
    Tensor { name: String, message: String },
    /// The converted graph is refused by the graph builder.
    #[error(transparent)]
    Graph(#[from] shareflow_graphs::GraphError),
}

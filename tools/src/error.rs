//! The one error type of the tools.

use thiserror::Error;

/// What a command can fail with.
#[derive(Debug, Error)]
pub enum ToolError {
    #[error(transparent)]
    Graph(#[from] shareflow_graphs::GraphError),
    #[error(transparent)]
    Onnx(#[from] shareflow_onnx::OnnxError),
    #[error(transparent)]
    Runtime(#[from] shareflow_runtime::RuntimeError),
    #[error(transparent)]
    Ops(#[from] shareflow_ops::OpsError),
    #[error(transparent)]
    Compile(#[from] shareflow_compiler::CompileError),
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// A run's measured traffic differs from the static cost report of its program.
    #[error(
        "{what}: measured {measured_bytes} bytes in {measured_rounds} rounds, but the cost \
         report says {cost_bytes} bytes in {cost_rounds} rounds"
    )]
    CostMismatch {
        what: String,
        measured_bytes: u64,
        measured_rounds: u64,
        cost_bytes: u64,
        cost_rounds: u64,
    },
    /// A signal stopped the command; it exits with `status` (128 + the signal's number).
    #[error("stopped by {signal}")]
    Interrupted { signal: &'static str, status: u8 },
}

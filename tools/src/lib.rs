//! The command-line tools of shareflow: the `shareflow` CLI (train, eval, compile, dot,
//! inspect, import, export-image, keys, demo, bench, fedavg) and `run-graph`. Each command
//! lives in its own module; the binaries only parse arguments. The network a command runs is
//! a [`commands::network::Network`]: a zoo network, an ONNX model, or a user's graph and
//! weights ([`commands::user_graph`]).

pub mod alloc;
pub mod commands;
pub mod error;
pub mod logging;
pub mod report;

pub use error::ToolError;

/// Result of the tools.
pub type Result<T> = std::result::Result<T, ToolError>;

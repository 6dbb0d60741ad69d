//! `shareflow dot`: a network's graph as Graphviz DOT on stdout.

use shareflow_graphs::zoo::{ModelKind, ZooModel};

use crate::{Result, ToolError};

/// Prints the logical graph of `model` (batch 1) or, with a protocol, its compiled graph.
pub fn run(model: ModelKind, protocol: Option<&str>) -> Result<()> {
    let zoo = ZooModel::build(model, 1)?;
    match protocol {
        None | Some("plaintext") => {
            print!("{}", zoo.graph.to_dot());
            Ok(())
        }
        Some(other) => Err(ToolError::Usage(format!(
            "unknown protocol {other:?} (plaintext, pond, securenn)"
        ))),
    }
}

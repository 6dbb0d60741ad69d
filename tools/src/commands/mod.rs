//! One module per command.

pub mod bench;
pub mod compile;
pub mod demo;
pub mod dot;
pub mod eval;
pub mod inspect;
pub mod keys;
pub mod run_graph;
pub mod run_graph_serving;
pub mod secure;
pub mod train;

use std::path::PathBuf;

use shareflow_graphs::zoo::ModelKind;
use shareflow_runtime::data::{models_dir, Weights};

use crate::{Result, ToolError};

/// The committed weights of a network: `models/<x>.npz`.
pub fn weights_path(kind: ModelKind, explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| models_dir().join(format!("{}.npz", kind.to_string().to_lowercase())))
}

/// Loads a network's weights, with a hint when they are missing.
pub fn load_weights(kind: ModelKind, explicit: Option<PathBuf>) -> Result<Weights> {
    let path = weights_path(kind, explicit);
    if !path.is_file() {
        return Err(ToolError::File {
            path: path.display().to_string(),
            message: format!(
                "no weights; train them with `shareflow train --model {kind}` or pass --weights"
            ),
        });
    }
    Ok(Weights::load(&path)?)
}

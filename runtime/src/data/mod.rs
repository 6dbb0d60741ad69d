//! Data in and out of the tools: MNIST IDX files, model weights as `.npz`, and where to find
//! them by default.

pub mod mnist;
pub mod npy;
pub mod weights;

use std::path::PathBuf;

pub use mnist::{Mnist, Split};
pub use weights::Weights;

/// The environment variable that names the MNIST directory.
pub const DATA_ENV: &str = "SHAREFLOW_DATA";

/// The MNIST directory: `explicit` if given, else `$SHAREFLOW_DATA`, else
/// `../shared/data/mnist` relative to the working directory, else the same path relative to
/// the workspace this binary was built from (so tests and tools find it from any crate).
pub fn data_dir(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p;
    }
    if let Some(p) = std::env::var_os(DATA_ENV) {
        return PathBuf::from(p);
    }
    let relative = PathBuf::from("../shared/data/mnist");
    if relative.is_dir() {
        return relative;
    }
    workspace_root().join("../shared/data/mnist")
}

/// The directory of the committed model weights: `models/` here, else in the workspace this
/// binary was built from.
pub fn models_dir() -> PathBuf {
    let local = PathBuf::from("models");
    if local.is_dir() {
        return local;
    }
    workspace_root().join("models")
}

/// The workspace root at build time.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

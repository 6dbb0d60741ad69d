//! One module per command.

pub mod bench;
pub mod bench_train;
pub mod compile;
pub mod demo;
pub mod dot;
pub mod eval;
pub mod export_image;
pub mod fedavg;
pub mod floor;
pub mod import;
pub mod inspect;
pub mod interrupt;
pub mod keys;
pub mod network;
pub mod parties;
pub mod run_graph;
pub mod run_graph_serving;
pub mod run_graph_training;
pub mod secure;
pub mod train;
pub mod train_private;
pub mod train_quic;
pub mod user_graph;

use std::path::{Path, PathBuf};

use shareflow_compiler::{CompileOptions, PolyApprox};
use shareflow_graphs::zoo::ModelKind;
use shareflow_runtime::data::{models_dir, Weights};

use crate::{Result, ToolError};

/// The file name of a network's weights: `<x>.npz`.
pub fn weights_file(kind: ModelKind) -> String {
    format!("{}.npz", kind.to_string().to_lowercase())
}

/// The weights a command reads: `explicit`, else the committed `models/<x>.npz` (here, or in
/// the workspace this binary was built from).
pub fn weights_path(kind: ModelKind, explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| models_dir().join(weights_file(kind)))
}

/// Where `train` writes: `explicit`, else `models/<x>.npz` under the current directory; never
/// the source tree this binary was built from.
pub fn trained_weights_path(kind: ModelKind, explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| Path::new("models").join(weights_file(kind)))
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

/// Compile options as the user gave them: what they left out is filled per network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    pub base: CompileOptions,
    /// Whether the user chose Pond's ReLU polynomial (`--relu-interval`, `--relu-degree`).
    pub relu_given: bool,
    /// `--input-range lo,hi`: the range of the client's inputs from which SecureNN's
    /// comparisons are narrowed for prediction (`shareflow_compiler::bounds`); `None`: every
    /// comparison over 64 bits.
    pub input_range: Option<(f64, f64)>,
}

impl Options {
    /// Refuses `--input-range` for a command that does not narrow comparisons (training:
    /// the weights change, so no bound computed from them holds).
    pub fn exact_only(&self, command: &str) -> Result<()> {
        match self.input_range {
            Some(_) => Err(ToolError::Usage(format!(
                "--input-range narrows the comparisons of prediction; {command} keeps them at 64 \
                 bits"
            ))),
            None => Ok(()),
        }
    }

    /// The options for network `kind`.
    pub fn for_model(&self, kind: ModelKind) -> CompileOptions {
        let mut o = self.base;
        if !self.relu_given {
            o.relu = pond_relu(kind);
        }
        o.sigmoid = sigmoid_polynomial(kind);
        o
    }
}

impl From<CompileOptions> for Options {
    fn from(base: CompileOptions) -> Self {
        Options {
            base,
            relu_given: false,
            input_range: None,
        }
    }
}

/// The sigmoid polynomial (both protocols) for each network. P's sigmoid cross-entropy meets
/// logits beyond 8 once trained (the gradient of a confident class fades like `e^-|z|`), and
/// degree 7 on [-8, 8] runs away outside it in the wrong direction (12 at -12, where the
/// sigmoid is 0: the gradient pushes the logit further out). Degree 13 on [-16, 16] has about
/// the same error inside (0.035 against 0.032) and turns back outside it (about -88 at -20):
/// the gradient of a logit that strays out pulls it back. The others have no sigmoid.
pub fn sigmoid_polynomial(kind: ModelKind) -> PolyApprox {
    match kind {
        ModelKind::P => PolyApprox {
            interval: 16.0,
            degree: 13,
        },
        ModelKind::A | ModelKind::B | ModelKind::C | ModelKind::D => {
            CompileOptions::default().sigmoid
        }
    }
}

/// The learning rate of `shareflow train` when `--lr` is not given: 0.05 for A-D, 0.2 for P
/// (whose centred sigmoids, each of slope 1/4 at most, and sigmoid cross-entropy give small
/// gradients). On 10,000 images for 3 epochs P reaches 89.5% at 0.1, 91.9% at 0.2 and 94.1%
/// at 0.4 in plaintext; under Pond 89.0% at 0.1 and 91.5% at 0.2, but at 0.4 its
/// pre-activations leave the sigmoid polynomial's interval during the private run, which then
/// diverges.
pub fn default_learning_rate(kind: ModelKind) -> f32 {
    match kind {
        ModelKind::P => 0.2,
        ModelKind::A | ModelKind::B | ModelKind::C | ModelKind::D => 0.05,
    }
}

/// Pond's ReLU polynomial for each network, chosen by agreement with plaintext on the test
/// set: the pre-activations of A, B and C stay within [-8, 8] (degree 10: 99.2% agreement
/// on A, KL 0.006), while D's strided first layer goes beyond it and needs [-16, 16] (degree
/// 14: 98.4% agreement on 500 images; with [-8, 8] only 67%). P has no ReLU.
pub fn pond_relu(kind: ModelKind) -> PolyApprox {
    match kind {
        ModelKind::D => PolyApprox {
            interval: 16.0,
            degree: 14,
        },
        ModelKind::A | ModelKind::B | ModelKind::C | ModelKind::P => CompileOptions::default().relu,
    }
}

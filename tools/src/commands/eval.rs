//! `shareflow eval`: prediction over the MNIST test set, in plaintext or under a protocol.

use std::path::PathBuf;
use std::time::Instant;

use shareflow_graphs::zoo::ModelKind;
use shareflow_runtime::data::{data_dir, Mnist, Split};
use shareflow_runtime::plain::train::{accuracy, predict};

use super::load_weights;
use crate::report::Report;
use crate::{Result, ToolError};

/// Options of `eval`.
pub struct EvalArgs {
    pub model: ModelKind,
    pub protocol: String,
    pub limit: Option<usize>,
    pub batch: usize,
    pub data: Option<PathBuf>,
    pub weights: Option<PathBuf>,
    pub json: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let test = Mnist::load(&data_dir(args.data), Split::Test, args.limit)?;
    let weights = load_weights(args.model, args.weights)?;
    match args.protocol.as_str() {
        "plaintext" => {
            let start = Instant::now();
            let logits = predict(args.model, &weights, &test.images.clone().into_dyn(), args.batch)?;
            let ms = start.elapsed().as_secs_f64() * 1e3;
            let mut r = Report::new();
            r.set("model", args.model.to_string())
                .set("protocol", "plaintext")
                .set("batch", args.batch)
                .set("images", test.len())
                .set("accuracy", accuracy(&logits, &test.labels))
                .set("total_ms", ms);
            r.print(args.json);
            Ok(())
        }
        other => Err(ToolError::Usage(format!(
            "unknown protocol {other:?} (plaintext, pond, securenn)"
        ))),
    }
}

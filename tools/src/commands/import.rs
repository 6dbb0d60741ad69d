//! `shareflow import`: an ONNX model as a logical graph (versioned JSON) and, optionally, its
//! weights as `.npz` (the model owner's inputs by name).

use std::path::PathBuf;

use shareflow_onnx::OnnxModel;
use shareflow_runtime::data::Weights;

use crate::report::Report;
use crate::{Result, ToolError};

/// Options of `import`.
pub struct ImportArgs {
    /// The `.onnx` file.
    pub onnx: PathBuf,
    /// Where the graph's JSON goes.
    pub out: PathBuf,
    /// Where the weights go (`.npz`), if anywhere.
    pub weights_out: Option<PathBuf>,
    /// Inputs per prediction.
    pub batch: usize,
    pub json: bool,
}

/// Imports, writes the graph (and weights) and prints what was written.
pub fn run(args: ImportArgs) -> Result<()> {
    if args.batch == 0 {
        return Err(ToolError::Usage("--batch must be at least 1".into()));
    }
    let model = OnnxModel::load(&args.onnx)?;
    let m = model.import(args.batch)?;
    let text = m.graph.to_json()?;
    std::fs::write(&args.out, text).map_err(|e| ToolError::File {
        path: args.out.display().to_string(),
        message: e.to_string(),
    })?;
    let params: usize = m.weights.values().map(|a| a.len()).sum();
    let mut r = Report::new();
    r.set("onnx", args.onnx.display().to_string())
        .set("opset", model.opset())
        .set("graph", args.out.display().to_string())
        .set("nodes", m.graph.len())
        .set("batch", args.batch)
        .set("input_shape", m.input_shape.clone())
        .set("weights", m.weights.len())
        .set("parameters", params);
    if let Some(path) = &args.weights_out {
        Weights { arrays: m.weights }.save(path)?;
        r.set("weights_out", path.display().to_string());
    }
    r.print(args.json);
    Ok(())
}

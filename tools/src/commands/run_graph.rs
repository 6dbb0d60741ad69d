//! `run-graph` (also `shareflow run-graph`): runs one party of a compiled graph, as its own
//! process, over QUIC with mutual TLS. The other parties run the same command with their own
//! `--party`.
//!
//! ```text
//! run-graph --party client --cluster cluster.toml --graph compiled.json \
//!     --input image=image.npy --output-dir out/
//! ```
//!
//! Outputs the party receives are written as `DIR/<name>.npy`; its metrics are printed as one
//! JSON object. Progress goes to stderr (`run-graph: NAME: connected to ...` once every peer is
//! connected). The process exits 0 only once every party has finished its program; if any party
//! fails (refused, crashed, silent beyond `--timeout`), every party exits non-zero with an error
//! naming the party at fault.
//!
//! With `--serving`, `--graph` is a serving graph (`shareflow compile --serving -o
//! serving.json`): every party connects once, runs the setup program (the model owner's weights
//! shared, masked and opened) and then `--predictions N` prediction programs over the same
//! connections, keeping its store in memory. An input name given N times (`--input
//! image=a.npy --input image=b.npy`) gives prediction i its i-th file; outputs are written as
//! `DIR/<name>.<i>.npy`; the JSON report has the setup's metrics and each prediction's. See
//! [`crate::commands::run_graph_serving`].
//!
//! ```text
//! run-graph --serving --predictions 2 --party client --cluster cluster.toml \
//!     --graph serving.json --input image=a.npy --input image=b.npy --output-dir out/
//! ```
//!
//! With `--training`, `--graph` is a training plan and the party runs a whole private
//! training session; see [`crate::commands::run_graph_training`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use shareflow_compiler::CompiledGraph;
use shareflow_runtime::cluster::ClusterConfig;
use shareflow_runtime::data::npy::{read_npy, write_npy};
use shareflow_runtime::data::Weights;
use shareflow_runtime::exec::Randomness;
use shareflow_runtime::party::run_over_quic_with;

use crate::ToolError;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "run-graph",
    version,
    about = "Runs one party of a compiled shareflow graph over QUIC",
    after_help = "With --serving, --graph is a serving graph (shareflow compile --serving -o \
                  serving.json): setup once, then --predictions N predictions over the same \
                  connections; repeat --input NAME=FILE for the i-th prediction's file; outputs \
                  are written as NAME.<i>.npy."
)]
pub struct Args {
    /// This party's name (as in the compiled graph and the cluster file).
    #[arg(long)]
    pub party: String,
    /// The cluster file (TOML): addresses and certificates of every party.
    #[arg(long)]
    pub cluster: PathBuf,
    /// The compiled graph (JSON, from `shareflow compile`).
    #[arg(long)]
    pub graph: PathBuf,
    /// An input of this party: NAME=FILE.npy (float32). Repeat for several.
    #[arg(long = "input", value_name = "NAME=FILE.npy")]
    pub inputs: Vec<String>,
    /// Every array of an .npz file as an input (e.g. a model owner's weights).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Where to write the outputs this party receives, as NAME.npy.
    #[arg(long, default_value = ".")]
    pub output_dir: PathBuf,
    /// Seconds to wait for a peer (connecting, and every round).
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// The graph is a serving graph (`shareflow compile --serving -o FILE`): run its setup once,
    /// then the predictions, over the same connections.
    #[arg(long)]
    pub serving: bool,
    /// With --serving: how many predictions every party runs (the same at every party; default:
    /// how often this party's prediction inputs are repeated, else 1).
    #[arg(long, requires = "serving")]
    pub predictions: Option<usize>,
    /// The graph is a training plan (`shareflow train --transport quic` writes one): run the
    /// whole private training session over the same connections.
    #[arg(long, conflicts_with = "serving")]
    pub training: bool,
    /// With --training, for the data owner (`client`): its MNIST directory (default:
    /// $SHAREFLOW_DATA or ../shared/data/mnist).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Write a Chrome trace of this party here (chrome://tracing, ui.perfetto.dev): a span per
    /// kernel, round and exchange, with its bytes.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// With --training, for a server when the plan has checkpoints: its checkpoint directory
    /// (it writes its own shares to DIR/PARTY/step-N.npz, atomically, and resumes from
    /// them when the plan says so).
    #[arg(long, value_name = "DIR", requires = "training")]
    pub checkpoint: Option<PathBuf>,
    /// With --training and --checkpoint: start a new session in a directory that holds
    /// checkpoints (deleting them).
    #[arg(long, requires = "checkpoint")]
    pub force: bool,
}

impl Args {
    /// `--timeout` as a duration; it must be positive and finite.
    pub fn timeout(&self) -> Result<Duration, ToolError> {
        if !(self.timeout > 0.0 && self.timeout.is_finite()) {
            return Err(ToolError::Usage(format!(
                "--timeout {} must be positive",
                self.timeout
            )));
        }
        Ok(Duration::from_secs_f64(self.timeout))
    }
}

pub fn run(args: Args) -> Result<(), ToolError> {
    if args.serving {
        return super::run_graph_serving::run(args);
    }
    if args.training {
        return super::run_graph_training::run(args);
    }
    let text = std::fs::read_to_string(&args.graph).map_err(|e| ToolError::File {
        path: args.graph.display().to_string(),
        message: e.to_string(),
    })?;
    let graph = CompiledGraph::from_json(&text).map_err(|e| ToolError::File {
        path: args.graph.display().to_string(),
        message: e.to_string(),
    })?;
    let cluster = ClusterConfig::load(&args.cluster)?;
    let mut inputs = HashMap::new();
    if let Some(w) = &args.weights {
        inputs.extend(Weights::load(w)?.arrays);
    }
    for spec in &args.inputs {
        let (name, file) = spec
            .split_once('=')
            .ok_or_else(|| ToolError::Usage(format!("--input {spec:?}: expected NAME=FILE.npy")))?;
        inputs.insert(name.to_string(), read_npy(&PathBuf::from(file))?);
    }
    let timeout = args.timeout()?;
    std::fs::create_dir_all(&args.output_dir).map_err(|e| ToolError::File {
        path: args.output_dir.display().to_string(),
        message: e.to_string(),
    })?;
    let result = run_over_quic_with(
        &graph,
        &args.party,
        &cluster,
        &inputs,
        timeout,
        &Randomness::Os,
        |c| {
            let session: String = c.session.iter().map(|b| format!("{b:02x}")).collect();
            eprintln!(
                "run-graph: {}: connected to {} (session {session}), running",
                c.party,
                c.peers.join(", ")
            );
        },
    )?;
    let mut written = Vec::new();
    for (name, value) in &result.outputs {
        if let shareflow_ops::Value::Float(a) = value {
            let path = args
                .output_dir
                .join(format!("{}.npy", name.replace('/', "_")));
            write_npy(&path, a)?;
            written.push(path.display().to_string());
        }
    }
    let report = serde_json::json!({
        "party": args.party,
        "protocol": graph.protocol,
        "transport": "quic",
        "outputs": written,
        "metrics": result.metrics,
    });
    println!("{report}");
    Ok(())
}

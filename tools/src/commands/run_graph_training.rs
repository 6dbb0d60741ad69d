//! `run-graph --training`: one party of a private training session (a plan from `shareflow
//! train --transport quic`, [`shareflow_runtime::train::quic`]) over QUIC. The party connects
//! once and runs, over the same connections, the initialisation of the variables, every SGD
//! step, the private predictions of the test images from the still-shared model and, if the
//! plan says so, the reveal of the weights. The servers and the helper keep their shares in
//! memory between the runs.
//!
//! Every data owner reads the files its part of the plan names (MNIST IDX files of a split, or
//! `.npy`/`.npz` files) from `--data DIR`, and only the examples the plan gives it; the
//! predicting party writes the logits of the test examples to `DIR/logits.npy`; the party the
//! weights are revealed to (model owner or data owner) writes them to `DIR/weights.npz` (both
//! atomically, at the end). Every party prints one line per
//! step on stderr (`run-graph: PARTY: step K/N MS ms`; the data owner adds the revealed mean
//! loss when the plan reveals it). The model owner gives the first
//! weights with `--weights FILE.npz` when the plan takes them from it (a data owner that runs
//! frozen layers gives theirs the same way); a server given
//! `--checkpoint DIR` writes its own checkpoints there. The report (one JSON object on stdout)
//! has the init's time, bytes and rounds, each step's metrics (and revealed loss), the
//! predictions', and the step the session resumed from.

use std::path::Path;

use ndarray::{s, Array2, ArrayD};
use shareflow_graphs::zoo::{CLIENT, LOGITS};
use shareflow_runtime::cluster::ClusterConfig;
use shareflow_runtime::data::npy::write_npy_atomic;
use shareflow_runtime::data::Weights;
use shareflow_runtime::exec::Randomness;
use shareflow_runtime::train::mean_loss;
use shareflow_runtime::train::quic::{
    run_training_over_quic, PartyFiles, TrainingPlan, TrainingRun,
};

use super::run_graph::Args;
use crate::ToolError;

pub fn run(args: Args) -> Result<(), ToolError> {
    let file_err = |path: &Path, message: String| ToolError::File {
        path: path.display().to_string(),
        message,
    };
    let text =
        std::fs::read_to_string(&args.graph).map_err(|e| file_err(&args.graph, e.to_string()))?;
    let plan = TrainingPlan::from_json(&text).map_err(|e| {
        file_err(
            &args.graph,
            format!("{e} (a training plan comes from `shareflow train --transport quic`)"),
        )
    })?;
    let timeout = args.timeout()?;
    let cluster = ClusterConfig::load(&args.cluster)?;
    let reads_data =
        plan.test.party == args.party || plan.owners.iter().any(|d| d.party == args.party);
    let data_dir = reads_data.then(|| shareflow_runtime::data::data_dir(args.data.clone()));
    std::fs::create_dir_all(&args.output_dir)
        .map_err(|e| file_err(&args.output_dir, e.to_string()))?;
    let predicts = plan.test.party == args.party;
    let mut logits: Option<Array2<f32>> = None;
    let mut weights = Weights::default();
    let mut init = serde_json::Value::Null;
    let mut steps = Vec::new();
    let mut predictions = Vec::new();
    let mut reveal = serde_json::Value::Null;
    let first_weights = args.weights.as_deref().map(Weights::load).transpose()?;
    let files = PartyFiles {
        data: data_dir.as_deref(),
        checkpoint: args.checkpoint.as_deref(),
        force: args.force,
        init_weights: first_weights.as_ref(),
    };
    let loss_output = plan.loss.clone();
    let outcome = run_training_over_quic(
        &plan,
        &args.party,
        &cluster,
        files,
        timeout,
        &Randomness::Os,
        |c| {
            eprintln!(
                "run-graph: {}: connected to {}, training: {} steps",
                c.party,
                c.peers.join(", "),
                plan.schedule().len()
            );
        },
        |run, result| {
            let m = serde_json::json!({
                "wall_ms": result.metrics.wall_ms,
                "bytes": result.metrics.bytes_sent,
                "rounds": result.metrics.rounds,
            });
            match run {
                TrainingRun::Init => init = m,
                TrainingRun::Step { k, steps: n } => {
                    // a step's full metrics (kernel times too: the training benchmark's)
                    let mut m = serde_json::to_value(&result.metrics).map_err(|e| {
                        shareflow_runtime::RuntimeError::Node {
                            node: "metrics".into(),
                            message: e.to_string(),
                        }
                    })?;
                    let revealed = loss_output.as_deref().filter(|_| args.party == CLIENT);
                    let loss = if let Some(name) = revealed {
                        let l = mean_loss(result.float(name)?);
                        m["loss"] = serde_json::json!(l);
                        format!(" loss {l:.6}")
                    } else {
                        String::new()
                    };
                    eprintln!(
                        "run-graph: {}: step {}/{n} {:.1} ms{loss}",
                        args.party,
                        k + 1,
                        result.metrics.wall_ms
                    );
                    steps.push(m)
                }
                TrainingRun::Predict { start, size } => {
                    if let Ok(l) = result.float(LOGITS) {
                        let l = l
                            .view()
                            .into_dimensionality::<ndarray::Ix2>()
                            .map_err(|e| shareflow_runtime::RuntimeError::Node {
                                node: "logits".into(),
                                message: e.to_string(),
                            })?;
                        logits
                            .get_or_insert_with(|| Array2::zeros((plan.test_images, l.ncols())))
                            .slice_mut(s![start..start + size, ..])
                            .assign(&l);
                    }
                    predictions.push(m);
                }
                TrainingRun::Reveal => {
                    for (name, v) in &result.outputs {
                        if let shareflow_ops::Value::Float(a) = v {
                            weights.arrays.insert(name.clone(), a.clone());
                        }
                    }
                    reveal = m;
                }
            }
            Ok(())
        },
    )?;
    let mut written = Vec::new();
    if predicts {
        let logits = logits.unwrap_or_else(|| Array2::zeros((plan.test_images, 0)));
        let path = args.output_dir.join("logits.npy");
        write_npy_atomic(&path, &ArrayD::from(logits.into_dyn()))?;
        written.push(path.display().to_string());
    }
    if !weights.arrays.is_empty() {
        let path = args.output_dir.join("weights.npz");
        weights.save(&path)?;
        written.push(path.display().to_string());
    }
    let report = serde_json::json!({
        "party": args.party,
        "protocol": plan.step.protocol,
        "transport": "quic",
        "training": true,
        "outputs": written,
        "init": init,
        "steps": steps,
        "predictions": predictions,
        "reveal": reveal,
        "resumed_from_step": outcome.resumed_from,
        "steps_run": outcome.steps_run,
    });
    println!("{report}");
    Ok(())
}

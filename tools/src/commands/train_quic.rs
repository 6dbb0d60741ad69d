//! `shareflow train --protocol P --transport quic`: the private training session with every
//! party its own `run-graph --training` process on 127.0.0.1 over QUIC with mutual TLS, started
//! as `demo` starts them. The plan (recipe and compiled programs) and the certificates are
//! written to a temporary folder, removed at the end and on a signal; only the data owner's
//! process reads the MNIST files.

use std::path::Path;

use ndarray::Ix2;
use shareflow_compiler::cost::CostReport;
use shareflow_compiler::{CompileOptions, ProtocolKind};
use shareflow_graphs::zoo::{CLIENT, MODEL_OWNER};
use shareflow_runtime::data::npy::read_npy;
use shareflow_runtime::data::{data_dir, Mnist, Weights};
use shareflow_runtime::train::quic::TrainingPlan;

use super::interrupt;
use super::parties::{run_local_parties, PartyInputs};
use super::train::TrainArgs;
use super::train_private::{eval_batch, Trained};
use crate::{Result, ToolError};

/// Seconds a party waits for a peer in any round (a step of network C takes seconds).
const TIMEOUT_S: f64 = 600.0;

pub fn over_quic(
    args: &TrainArgs,
    protocol: ProtocolKind,
    options: CompileOptions,
    train_set: &Mnist,
    test_set: &Mnist,
) -> Result<Trained> {
    let plan = TrainingPlan::new(
        args.model,
        &args.config,
        protocol,
        options,
        train_set.len(),
        test_set.len(),
        eval_batch(args.config.batch),
        args.reveal,
    )?;
    let cost = CostReport::of(&plan.step);
    let json = serde_json::to_string(&plan)
        .map_err(|e| ToolError::Usage(format!("training plan: {e}")))?;
    let exe = std::env::current_exe()
        .map_err(|e| ToolError::Usage(format!("cannot find this executable: {e}")))?;
    interrupt::catch()?;
    let dir =
        tempfile::tempdir().map_err(|e| ToolError::Usage(format!("temporary directory: {e}")))?;
    let ran = run_parties(&exe, dir.path(), &plan, &json, args);
    let path = dir.path().to_path_buf();
    let removed = dir.close().map_err(|e| ToolError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    });
    interrupt::check()?;
    let mut trained = ran?;
    removed?;
    trained.cost = cost;
    Ok(trained)
}

fn run_parties(
    exe: &Path,
    dir: &Path,
    plan: &TrainingPlan,
    json: &str,
    args: &TrainArgs,
) -> Result<Trained> {
    let plan_path = dir.join("training.json");
    std::fs::write(&plan_path, json).map_err(|e| ToolError::File {
        path: plan_path.display().to_string(),
        message: e.to_string(),
    })?;
    let data = std::path::absolute(data_dir(args.data.clone()))
        .map_err(|e| ToolError::Usage(format!("data directory: {e}")))?;
    let mut given = PartyInputs {
        args: vec!["--training".into()],
        ..PartyInputs::default()
    };
    given.party_args.insert(
        CLIENT.to_string(),
        vec!["--data".into(), data.display().to_string()],
    );
    let reports = run_local_parties(
        exe,
        &plan.step.parties,
        dir,
        &plan_path,
        &given,
        TIMEOUT_S,
        None,
    )?;
    let logits = read_npy(&dir.join(format!("out-{CLIENT}")).join("logits.npy"))?
        .into_dimensionality::<Ix2>()
        .map_err(|e| ToolError::Usage(format!("the data owner's logits: {e}")))?;
    let weights = if args.reveal {
        Some(Weights::load(
            &dir.join(format!("out-{MODEL_OWNER}")).join("weights.npz"),
        )?)
    } else {
        None
    };
    // Every party's steps: bytes add up over the parties; a step's time is server 0's.
    let steps = |v: &serde_json::Value| v["steps"].as_array().cloned().unwrap_or_default();
    let mut step_bytes = 0;
    let mut step_rounds = 0;
    let mut step_ms = Vec::new();
    for (party, report) in &reports {
        let s = steps(report);
        if let Some(first) = s.first() {
            step_bytes += first["bytes"].as_u64().unwrap_or(0);
            step_rounds = step_rounds.max(first["rounds"].as_u64().unwrap_or(0) as u32);
        }
        if party == "server0" {
            step_ms = s.iter().filter_map(|m| m["wall_ms"].as_f64()).collect();
        }
    }
    Ok(Trained {
        logits,
        weights,
        step_ms,
        step_bytes,
        step_rounds,
        cost: CostReport::of(&plan.step),
        resumed_from: 0,
    })
}

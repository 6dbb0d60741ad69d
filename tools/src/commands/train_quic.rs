//! `shareflow train --protocol P --transport quic`: the private training session with every
//! party its own `run-graph --training` process on 127.0.0.1 over QUIC with mutual TLS, started
//! as `demo` starts them. The plan (recipe and compiled programs) and the certificates are
//! written to a temporary folder, removed at the end and on a signal; only the data owner's
//! process reads the MNIST files, only the model owner's the first weights (`--init
//! FILE.npz`), and each server writes its own checkpoints (`--checkpoint DIR`, in
//! `DIR/<server>/`). Server 0's progress lines (the data owner's when it sees the loss) drive
//! the progress bar.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::ProgressBar;
use ndarray::Ix2;
use serde_json::Value;
use shareflow_compiler::cost::CostReport;
use shareflow_compiler::{CompileOptions, ProtocolKind};
use shareflow_graphs::zoo::{CLIENT, MODEL_OWNER};
use shareflow_runtime::data::npy::read_npy;
use shareflow_runtime::data::{data_dir, Mnist, Weights};
use shareflow_runtime::train::checkpoint::{holder_indices, DEFAULT_EVERY};
use shareflow_runtime::train::quic::TrainingPlan;
use shareflow_runtime::train::StepSpec;

use super::interrupt;
use super::parties::{run_local_parties, PartyInputs, Watch};
use super::train::TrainArgs;
use super::train_private::{eval_batch, progress_bar, step_message, Trained};
use crate::{Result, ToolError};

/// Seconds a party waits for a peer in any round by default (a step of network C takes
/// seconds; `--timeout`).
pub const TIMEOUT_S: f64 = 600.0;

/// How the parties of a training plan are started, beside the plan.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// The data directory of every party that reads data (the data owners and the predicting
    /// party), unless `party_data` names its own.
    pub data: PathBuf,
    /// A party's own data directory instead of `data`.
    pub party_data: HashMap<String, PathBuf>,
    /// The servers' checkpoint directory (each writes its own subdirectory).
    pub checkpoint: Option<PathBuf>,
    /// Start a new session in a checkpoint directory that holds checkpoints.
    pub force: bool,
    /// A party's weights file (`--weights`): the model owner's first weights, a data owner's
    /// frozen layers.
    pub weights: HashMap<String, PathBuf>,
    /// Seconds a party waits for a peer.
    pub timeout_s: f64,
    /// One party's stderr lines (one per step), as they come.
    pub watch: Option<Watch>,
    /// The `shareflow` binary that runs every party (`None`: this executable).
    pub exe: Option<PathBuf>,
}

/// The `shareflow` binary beside this executable (for an example in `target/release/examples/`,
/// the one in `target/release/`), which runs the parties of a plan started from a program that
/// is not `shareflow` itself.
pub fn shareflow_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()
        .map_err(|e| ToolError::Usage(format!("cannot find this executable: {e}")))?;
    let name = format!("shareflow{}", std::env::consts::EXE_SUFFIX);
    me.ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            ToolError::Usage(format!(
                "no {name} beside {}: build it first (cargo build --release -p shareflow-tools)",
                me.display()
            ))
        })
}

pub fn over_quic(
    args: &TrainArgs,
    protocol: ProtocolKind,
    options: CompileOptions,
    (train_set, test_set): (&Mnist, &Mnist),
    init: Option<&Path>,
    receiver: Option<&str>,
) -> Result<Trained> {
    let spec = StepSpec {
        owner_init: init.is_some(),
        reveal_loss: args.reveal_loss,
        reveal_logits: super::train_private::reveals_logits(args)?,
    };
    let mut plan = TrainingPlan::new(
        args.model,
        &args.config,
        protocol,
        options,
        train_set.len(),
        test_set.len(),
        eval_batch(args.config.batch),
        spec,
        receiver,
    )?;
    if let Some(dir) = &args.checkpoint {
        plan.checkpoint_every = Some(args.checkpoint_every.unwrap_or(DEFAULT_EVERY));
        plan.resume = args.resume;
        check_checkpoints(&plan, dir, args)?;
    }
    plan.stop_after = args.stop_after;
    let steps = plan.schedule().len();
    let bar = progress_bar(steps, args.json);
    let epochs = args.config.epochs;
    let shown = bar.clone();
    let launch = Launch {
        data: std::path::absolute(data_dir(args.data.clone()))
            .map_err(|e| ToolError::Usage(format!("data directory: {e}")))?,
        checkpoint: args
            .checkpoint
            .as_ref()
            .map(std::path::absolute)
            .transpose()
            .map_err(|e| ToolError::Usage(format!("checkpoint directory: {e}")))?,
        force: args.force,
        weights: init
            .map(std::path::absolute)
            .transpose()
            .map_err(|e| ToolError::Usage(format!("initial weights: {e}")))?
            .map(|w| HashMap::from([(MODEL_OWNER.to_string(), w)]))
            .unwrap_or_default(),
        party_data: HashMap::new(),
        timeout_s: args.timeout_s.unwrap_or(TIMEOUT_S),
        // server 0's steps end when the step does; the data owner's only once it has the
        // revealed loss (without it, it runs ahead of the servers)
        watch: Some(Watch {
            party: if args.reveal_loss { CLIENT } else { "server0" }.to_string(),
            on_line: Arc::new(move |line| show_step(&shown, line, steps, epochs)),
        }),
        exe: None,
    };
    let trained = run_plan(&plan, &launch, |dir, reports| {
        collect(dir, reports, &plan, receiver)
    });
    bar.finish_and_clear();
    trained
}

/// Runs every party of any training plan (a zoo network's, transfer learning's, joint
/// training's: [`TrainingPlan::of_session`]) as its own process ([`run_plan`]) and returns what
/// the session gave: the predicting party's logits, the receiver's weights, each step's time,
/// bytes and rounds.
pub fn run_session(plan: &TrainingPlan, launch: &Launch) -> Result<Trained> {
    run_plan(plan, launch, |dir, reports| {
        collect(dir, reports, plan, plan.reveal_to.as_deref())
    })
}

/// Moves the progress bar on a party's line `run-graph: PARTY: step K/N MS ms [loss L]`.
fn show_step(bar: &ProgressBar, line: &str, steps: usize, epochs: usize) {
    let Some(rest) = line.split_once(": step ").map(|(_, r)| r) else {
        return;
    };
    let mut words = rest.split_whitespace();
    let k: Option<usize> = words
        .next()
        .and_then(|kn| kn.split_once('/'))
        .and_then(|(k, _)| k.parse().ok());
    let ms: Option<f64> = words.next().and_then(|m| m.parse().ok());
    let loss: Option<f32> = rest
        .split_once("loss ")
        .and_then(|(_, l)| l.trim().parse().ok());
    if let (Some(k), Some(ms)) = (k, ms) {
        let per_epoch = (steps / epochs.max(1)).max(1);
        let epoch = ((k.max(1) - 1) / per_epoch + 1).min(epochs.max(1));
        bar.set_prefix(format!("{epoch}/{epochs}"));
        bar.set_message(step_message(ms, loss));
        bar.set_position(k as u64);
    }
}

/// Runs every party of `plan` as its own `run-graph --training` process in a fresh temporary
/// folder (plan, keys, outputs; removed at the end, and on a signal after the parties are
/// killed); `collect` reads what it needs from the folder and the parties' reports first.
pub fn run_plan<T>(
    plan: &TrainingPlan,
    launch: &Launch,
    collect: impl FnOnce(&Path, &[(String, Value)]) -> Result<T>,
) -> Result<T> {
    let json =
        serde_json::to_string(plan).map_err(|e| ToolError::Usage(format!("training plan: {e}")))?;
    let exe = match &launch.exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe()
            .map_err(|e| ToolError::Usage(format!("cannot find this executable: {e}")))?,
    };
    interrupt::catch()?;
    let dir =
        tempfile::tempdir().map_err(|e| ToolError::Usage(format!("temporary directory: {e}")))?;
    let ran = start_parties(&exe, dir.path(), plan, &json, launch)
        .and_then(|reports| collect(dir.path(), &reports));
    let path = dir.path().to_path_buf();
    let removed = dir.close().map_err(|e| ToolError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    });
    interrupt::check()?;
    let out = ran?;
    removed?;
    Ok(out)
}

/// Before any process starts (the servers check again, each its own files): a resumed
/// session needs a checkpoint that every server has; a new one refuses a directory that
/// holds checkpoints unless `--force` (which deletes them).
fn check_checkpoints(plan: &TrainingPlan, dir: &Path, args: &TrainArgs) -> Result<()> {
    let Some(k) = plan.checkpointer(dir)? else {
        return Ok(());
    };
    if args.resume {
        k.latest()?;
    } else {
        k.prepare_new(args.force)?;
    }
    Ok(())
}

fn start_parties(
    exe: &Path,
    dir: &Path,
    plan: &TrainingPlan,
    json: &str,
    launch: &Launch,
) -> Result<Vec<(String, Value)>> {
    let plan_path = dir.join("training.json");
    std::fs::write(&plan_path, json).map_err(|e| ToolError::File {
        path: plan_path.display().to_string(),
        message: e.to_string(),
    })?;
    let mut given = PartyInputs {
        args: vec!["--training".into()],
        watch: launch.watch.clone(),
        ..PartyInputs::default()
    };
    let readers = plan.owners.iter().chain([&plan.test]).map(|d| &d.party);
    for party in readers {
        let dir = launch.party_data.get(party).unwrap_or(&launch.data);
        given.party_args.insert(
            party.clone(),
            vec!["--data".into(), dir.display().to_string()],
        );
    }
    given.weights.extend(launch.weights.clone());
    if let Some(checkpoint) = &launch.checkpoint {
        for h in holder_indices(&plan.step) {
            let server = plan.step.parties.get(h).cloned().unwrap_or_default();
            let mut a = vec!["--checkpoint".into(), checkpoint.display().to_string()];
            if launch.force {
                a.push("--force".into());
            }
            given.party_args.entry(server).or_default().extend(a);
        }
    }
    run_local_parties(
        exe,
        &plan.step.parties,
        dir,
        &plan_path,
        &given,
        launch.timeout_s,
        None,
    )
}

/// Bytes each party sent in each step of its report, and the steps' rounds.
/// One step of one party: bytes sent, rounds, bytes received, wall milliseconds.
pub type StepTraffic = (u64, u32, u64, Option<f64>);

/// Per party, per step: bytes sent, rounds, bytes received and wall milliseconds.
pub fn step_traffic(reports: &[(String, Value)]) -> Vec<(String, Vec<StepTraffic>)> {
    reports
        .iter()
        .map(|(party, report)| {
            let steps = report["steps"].as_array().cloned().unwrap_or_default();
            let traffic = steps
                .iter()
                .map(|m| {
                    (
                        m["bytes_sent"].as_u64().unwrap_or(0),
                        m["rounds"].as_u64().unwrap_or(0) as u32,
                        m["bytes_received"].as_u64().unwrap_or(0),
                        m["wall_ms"].as_f64(),
                    )
                })
                .collect();
            (party.clone(), traffic)
        })
        .collect()
}

/// What the parties' reports and outputs say: the data owner's logits (and losses), the
/// receiver's weights, server 0's step times, every party's bytes of a step.
fn collect(
    dir: &Path,
    reports: &[(String, Value)],
    plan: &TrainingPlan,
    receiver: Option<&str>,
) -> Result<Trained> {
    let logits = read_npy(
        &dir.join(format!("out-{}", plan.test.party))
            .join("logits.npy"),
    )?
    .into_dimensionality::<Ix2>()
    .map_err(|e| ToolError::Usage(format!("the data owner's logits: {e}")))?;
    let weights = match receiver {
        Some(to) => Some(Weights::load(
            &dir.join(format!("out-{to}")).join("weights.npz"),
        )?),
        None => None,
    };
    // Every party's steps: bytes add up over the parties; a step's time is server 0's.
    let mut step_bytes = 0;
    let mut step_rounds = 0;
    let mut per_party = Vec::new();
    for (party, traffic) in step_traffic(reports) {
        if let Some(&(bytes, rounds, received, ms)) = traffic.first() {
            step_bytes += bytes;
            step_rounds = step_rounds.max(rounds);
            per_party.push((party, bytes, received, ms));
        }
    }
    let mut step_ms = Vec::new();
    let mut resumed_from = 0;
    let mut losses = Vec::new();
    for (party, report) in reports {
        let steps = report["steps"].as_array().cloned().unwrap_or_default();
        if party == "server0" {
            step_ms = steps.iter().filter_map(|m| m["wall_ms"].as_f64()).collect();
            resumed_from = report["resumed_from_step"].as_u64().unwrap_or(0) as usize;
        }
        if party == CLIENT {
            losses = steps
                .iter()
                .filter_map(|m| m["loss"].as_f64().map(|l| l as f32))
                .collect();
        }
    }
    Ok(Trained {
        logits,
        weights,
        step_ms,
        step_bytes,
        step_rounds,
        cost: CostReport::of(&plan.step),
        resumed_from,
        per_party,
        losses,
    })
}

//! `shareflow fedavg`: federated averaging of network A with a secure aggregation. The MNIST
//! training subset is split into K disjoint shards, one per data owner; every round each owner
//! trains the global model for E steps on its shard in plaintext and secret-shares its update,
//! the servers average the updates under the protocol, and only the model owner receives the
//! mean and updates the model ([`shareflow_runtime::federated`]).
//!
//! The aggregation is compiled for each round's contributors (`--absent P`: an owner misses a
//! round with probability P and is left out; their count is public and reported).
//! `--transport inproc` runs every party of the aggregation as a thread (each set of
//! contributors compiled once); `--transport quic` starts one `run-graph` process per party
//! every round over QUIC with
//! mutual TLS ([`run_local_parties`], as `demo` does), each owner giving its update as an
//! `.npz` in a private temporary folder that is removed at the end (and on a signal).
//! Prints per round the test accuracy, the bytes and communication rounds of the aggregation
//! and the largest difference from the plaintext mean; then plaintext training on the pooled
//! shards for as many steps.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};
use shareflow_compiler::{CompileOptions, ProtocolKind};
use shareflow_graphs::zoo::{ModelKind, MODEL_OWNER};
use shareflow_runtime::data::npy::read_npy;
use shareflow_runtime::data::{data_dir, Mnist, Split, Weights};
use shareflow_runtime::federated::aggregator::{collect_mean, contributors, owner_inputs};
use shareflow_runtime::federated::rounds::tensors;
use shareflow_runtime::federated::{
    compile_for, federated_averaging, owner_name, pooled_baseline, Aggregate, Aggregator, Compiled,
    Contribution, FedConfig, InProcess, LocalConfig, LocalTrainer, RoundReport, TensorSpec,
};

use super::interrupt;
use super::parties::{run_local_parties, PartyInputs};
use crate::report::Report;
use crate::{Result, ToolError};

/// Options of `fedavg`.
pub struct FedavgArgs {
    pub owners: usize,
    /// Federated rounds.
    pub rounds: usize,
    pub local: LocalConfig,
    /// The probability that an owner misses a round.
    pub absent: f64,
    pub seed: u64,
    pub protocol: ProtocolKind,
    pub options: super::Options,
    /// `inproc` or `quic`.
    pub transport: String,
    pub data: Option<PathBuf>,
    /// Seconds a QUIC party waits for a peer.
    pub timeout_s: f64,
    pub json: bool,
}

/// The network federated.
const MODEL: ModelKind = ModelKind::A;

pub fn run(args: FedavgArgs) -> Result<()> {
    if args.owners == 0 || args.rounds == 0 {
        return Err(ToolError::Usage(
            "--owners and --rounds must be at least 1".into(),
        ));
    }
    if !(0.0..1.0).contains(&args.absent) {
        return Err(ToolError::Usage(format!(
            "--absent {} must be in [0, 1)",
            args.absent
        )));
    }
    let dir = data_dir(args.data.clone());
    let train = Mnist::load(&dir, Split::Train, None)?;
    let test = Mnist::load(&dir, Split::Test, None)?;
    let cfg = FedConfig {
        kind: MODEL,
        owners: args.owners,
        rounds: args.rounds,
        local: args.local,
        absent: args.absent,
        seed: args.seed,
    };
    let trainer = LocalTrainer::new(MODEL, cfg.local)?;
    let tensors = tensors(&trainer);
    let options = args.options.for_model(MODEL);
    // The cost of an aggregation over every owner (fewer contributors send less).
    let everyone: Vec<String> = (0..cfg.owners).map(owner_name).collect();
    let static_cost = compile_for(&tensors, &everyone, args.protocol, options)?
        .compiled
        .cost();
    if !args.json {
        println!(
            "network {MODEL}, {} owners of {} images each, {} rounds of {} local steps (batch {}), \
             aggregation under {} over {}",
            cfg.owners,
            train.len() / cfg.owners,
            cfg.rounds,
            cfg.local.steps,
            cfg.local.batch,
            args.protocol.name(),
            args.transport
        );
        println!(
            "round  owners  accuracy       bytes  rounds  aggregation_ms  train_ms  max_error"
        );
    }
    let mut per_round = Vec::new();
    let mut show = |r: &RoundReport| {
        if !args.json {
            let (bytes, rounds, wall_ms) = r
                .aggregate
                .as_ref()
                .map_or((0, 0, 0.0), |a| (a.bytes, a.rounds, a.wall_ms));
            println!(
                "{:>5}  {:>6}  {:>7.2}%  {:>10}  {:>6}  {:>14.1}  {:>8.0}  {:.2e}",
                r.round,
                r.contributors,
                100.0 * r.accuracy,
                bytes,
                rounds,
                wall_ms,
                r.train_ms,
                r.max_error
            );
        }
        let (bytes, rounds, wall_ms) = r
            .aggregate
            .as_ref()
            .map_or((0, 0, 0.0), |a| (a.bytes, a.rounds, a.wall_ms));
        per_round.push(json!({
            "round": r.round,
            "contributors": r.contributors,
            "accuracy": r.accuracy,
            "bytes": bytes,
            "rounds": rounds,
            "wall_ms": wall_ms,
            "train_ms": r.train_ms,
            "max_error": r.max_error,
        }));
    };
    match args.transport.as_str() {
        "inproc" => {
            let mut agg = InProcess::new(&tensors, args.protocol, options);
            federated_averaging(&cfg, &train, &test, &mut agg, &mut show)?;
        }
        "quic" => {
            interrupt::catch()?;
            let folder = tempfile::tempdir()
                .map_err(|e| ToolError::Usage(format!("temporary directory: {e}")))?;
            let mut agg = Quic {
                tensors: tensors.clone(),
                protocol: args.protocol,
                options,
                graph: None,
                dir: folder.path().to_path_buf(),
                timeout_s: args.timeout_s,
            };
            let ran = federated_averaging(&cfg, &train, &test, &mut agg, &mut show);
            let path = folder.path().to_path_buf();
            let removed = folder.close().map_err(|e| ToolError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            });
            interrupt::check()?;
            ran?;
            removed?;
        }
        other => {
            return Err(ToolError::Usage(format!(
                "--transport {other}: expected inproc or quic"
            )))
        }
    }
    let (_, pooled) = pooled_baseline(&cfg, &train, &test)?;
    let last = per_round.last().cloned().unwrap_or(Value::Null);
    let mut r = Report::new();
    r.set("model", MODEL.to_string())
        .set("protocol", args.protocol.name())
        .set("transport", args.transport.as_str())
        .set("owners", cfg.owners)
        .set("absent", cfg.absent)
        .set("federated_rounds", cfg.rounds)
        .set("local_steps", cfg.local.steps)
        .set("batch", cfg.local.batch)
        .set("accuracy", last["accuracy"].clone())
        .set("pooled_accuracy", pooled)
        .set("bytes", static_cost.bytes)
        .set("rounds", static_cost.rounds)
        .set("bytes_per_owner", owner_bytes(&static_cost.sent))
        .set("per_round", Value::Array(per_round));
    if args.json {
        r.print(true);
    } else {
        println!(
            "plaintext on the pooled shards, {} steps: {:.2}%",
            cfg.rounds * cfg.local.steps,
            100.0 * pooled
        );
        println!(
            "per aggregation: {} bytes in {} rounds (each owner sends {} bytes)",
            static_cost.bytes,
            static_cost.rounds,
            owner_bytes(&static_cost.sent)
        );
    }
    Ok(())
}

/// The bytes an owner sends (the same for every owner: its shares and seeds).
fn owner_bytes(sent: &std::collections::BTreeMap<String, u64>) -> u64 {
    sent.iter()
        .filter(|(p, _)| p.starts_with("owner-"))
        .map(|(_, &b)| b)
        .max()
        .unwrap_or(0)
}

/// The aggregation with every party a `run-graph` process over QUIC, started afresh every
/// round in `dir` (the compiled graph of the round's contributors, their updates, the
/// outputs).
struct Quic {
    tensors: Vec<TensorSpec>,
    protocol: ProtocolKind,
    options: CompileOptions,
    /// The last graph compiled and where it was written.
    graph: Option<(Compiled, PathBuf)>,
    dir: PathBuf,
    timeout_s: f64,
}

impl Quic {
    /// The compiled graph for `owners` and its file, compiled and written unless the last
    /// round had the same contributors.
    fn graph_for(&mut self, owners: &[String]) -> Result<&(Compiled, PathBuf)> {
        let stale = self
            .graph
            .as_ref()
            .is_none_or(|(c, _)| c.spec.owners != owners);
        if stale {
            let c = compile_for(&self.tensors, owners, self.protocol, self.options)?;
            let path = self.dir.join("compiled.json");
            std::fs::write(&path, c.compiled.to_json()?).map_err(|e| io(&path, e))?;
            self.graph = Some((c, path));
        }
        self.graph
            .as_ref()
            .ok_or_else(|| ToolError::Usage("no compiled aggregation".into()))
    }
}

fn io(path: &Path, e: impl ToString) -> ToolError {
    ToolError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl Aggregator for Quic {
    type Error = ToolError;

    fn aggregate(&mut self, contributions: &[Contribution]) -> Result<Aggregate> {
        let (dir, timeout_s) = (self.dir.clone(), self.timeout_s);
        let (c, graph_path) = self.graph_for(&contributors(contributions))?;
        let mut given = PartyInputs::default();
        for (owner, inputs) in owner_inputs(&c.spec, contributions)? {
            let path = dir.join(format!("{owner}.npz"));
            Weights {
                arrays: inputs.into_iter().collect(),
            }
            .save(&path)?;
            given.weights.insert(owner, path);
        }
        let start = Instant::now();
        let exe = std::env::current_exe()
            .map_err(|e| ToolError::Usage(format!("cannot find this executable: {e}")))?;
        let reports = run_local_parties(
            &exe,
            &c.compiled.parties,
            &dir,
            graph_path,
            &given,
            timeout_s,
            None,
        )?;
        let wall_ms = start.elapsed().as_secs_f64() * 1e3;
        let metric = |key: &'static str| {
            reports
                .iter()
                .map(move |(_, r)| r["metrics"][key].as_u64().unwrap_or(0))
        };
        let bytes = metric("bytes_sent").sum();
        let rounds = metric("rounds").max().unwrap_or(0);
        let out = dir.join(format!("out-{MODEL_OWNER}"));
        let mean = collect_mean(&c.spec, |name| {
            read_npy(&out.join(format!("{}.npy", name.replace('/', "_"))))
        })?;
        Ok(Aggregate {
            mean,
            bytes,
            rounds: u32::try_from(rounds).unwrap_or(u32::MAX),
            wall_ms,
        })
    }
}

//! `shareflow fedavg`: federated averaging of network A with a secure aggregation. The MNIST
//! training subset is split into K disjoint shards, one per data owner; every round each owner
//! trains the global model for E steps on its shard in plaintext and secret-shares its update,
//! the servers average the updates under the protocol, and only the model owner receives the
//! mean and updates the model ([`shareflow_runtime::federated`]).
//!
//! `--transport inproc` runs every party of the aggregation as a thread (compiled once);
//! `--transport quic` starts one `run-graph` process per party every round over QUIC with
//! mutual TLS ([`run_local_parties`], as `demo` does), each owner giving its update as an
//! `.npz` in a private temporary folder that is removed at the end (and on a signal).
//! Prints per round the test accuracy, the bytes and communication rounds of the aggregation
//! and the largest difference from the plaintext mean; then plaintext training on the pooled
//! shards for as many steps.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};
use shareflow_compiler::{compile, CompiledGraph, ProtocolKind};
use shareflow_graphs::zoo::{ModelKind, MODEL_OWNER};
use shareflow_runtime::data::npy::read_npy;
use shareflow_runtime::data::{data_dir, Mnist, Split, Weights};
use shareflow_runtime::federated::aggregator::{collect_mean, owner_inputs};
use shareflow_runtime::federated::rounds::tensors;
use shareflow_runtime::federated::{
    aggregation_graph, federated_averaging, pooled_baseline, Aggregate, AggregationGraph,
    Aggregator, FedConfig, InProcess, LocalConfig, LocalTrainer, RoundReport,
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
    let dir = data_dir(args.data.clone());
    let train = Mnist::load(&dir, Split::Train, None)?;
    let test = Mnist::load(&dir, Split::Test, None)?;
    let cfg = FedConfig {
        kind: MODEL,
        owners: args.owners,
        rounds: args.rounds,
        local: args.local,
        seed: args.seed,
    };
    let trainer = LocalTrainer::new(MODEL, cfg.local)?;
    let spec = aggregation_graph(&tensors(&trainer), cfg.owners)?;
    let options = args.options.for_model(MODEL);
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
            println!(
                "{:>5}  {:>6}  {:>7.2}%  {:>10}  {:>6}  {:>14.1}  {:>8.0}  {:.2e}",
                r.round,
                r.contributors,
                100.0 * r.accuracy,
                r.aggregate.bytes,
                r.aggregate.rounds,
                r.aggregate.wall_ms,
                r.train_ms,
                r.max_error
            );
        }
        per_round.push(json!({
            "round": r.round,
            "contributors": r.contributors,
            "accuracy": r.accuracy,
            "bytes": r.aggregate.bytes,
            "rounds": r.aggregate.rounds,
            "wall_ms": r.aggregate.wall_ms,
            "train_ms": r.train_ms,
            "max_error": r.max_error,
        }));
    };
    let static_cost = match args.transport.as_str() {
        "inproc" => {
            let mut agg = InProcess::new(spec, args.protocol, options)?;
            let cost = agg.compiled().cost();
            federated_averaging(&cfg, &train, &test, &mut agg, &mut show)?;
            cost
        }
        "quic" => {
            let compiled = compile(&spec.graph, args.protocol, options)?;
            let cost = compiled.cost();
            interrupt::catch()?;
            let folder = tempfile::tempdir()
                .map_err(|e| ToolError::Usage(format!("temporary directory: {e}")))?;
            let mut agg = Quic::new(spec, &compiled, folder.path(), args.timeout_s)?;
            let ran = federated_averaging(&cfg, &train, &test, &mut agg, &mut show);
            let path = folder.path().to_path_buf();
            let removed = folder.close().map_err(|e| ToolError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            });
            interrupt::check()?;
            ran?;
            removed?;
            cost
        }
        other => {
            return Err(ToolError::Usage(format!(
                "--transport {other}: expected inproc or quic"
            )))
        }
    };
    let (_, pooled) = pooled_baseline(&cfg, &train, &test)?;
    let last = per_round.last().cloned().unwrap_or(Value::Null);
    let mut r = Report::new();
    r.set("model", MODEL.to_string())
        .set("protocol", args.protocol.name())
        .set("transport", args.transport.as_str())
        .set("owners", cfg.owners)
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
/// round in `dir` (the compiled graph, the owners' updates, the outputs).
struct Quic {
    spec: AggregationGraph,
    parties: Vec<String>,
    dir: PathBuf,
    graph_path: PathBuf,
    timeout_s: f64,
}

impl Quic {
    fn new(
        spec: AggregationGraph,
        compiled: &CompiledGraph,
        dir: &Path,
        timeout_s: f64,
    ) -> Result<Quic> {
        let graph_path = dir.join("compiled.json");
        std::fs::write(&graph_path, compiled.to_json()?).map_err(|e| ToolError::File {
            path: graph_path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Quic {
            spec,
            parties: compiled.parties.clone(),
            dir: dir.to_path_buf(),
            graph_path,
            timeout_s,
        })
    }
}

impl Aggregator for Quic {
    type Error = ToolError;

    fn aggregate(&mut self, updates: &[Weights]) -> Result<Aggregate> {
        let mut given = PartyInputs::default();
        for (owner, inputs) in owner_inputs(&self.spec, updates)? {
            let path = self.dir.join(format!("{owner}.npz"));
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
            &self.parties,
            &self.dir,
            &self.graph_path,
            &given,
            self.timeout_s,
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
        let out = self.dir.join(format!("out-{MODEL_OWNER}"));
        let mean = collect_mean(&self.spec, |name| {
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

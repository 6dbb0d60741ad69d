//! Federated learning with secure aggregation, in one process.
//!
//! ```text
//! cargo run --release --example secure_aggregation -- [--owners K] [--rounds R] [--steps E]
//!     [--absent P] [--protocol securenn|pond] [--data DIR]
//! ```
//!
//! The MNIST training subset is split into K disjoint shards, one per data owner. In every round
//! each owner trains the global network A for E SGD steps on its shard in plaintext and
//! secret-shares its update `local - global`; the servers (every party a thread here) average
//! the updates under the protocol, and only the model owner receives the mean and adds it to
//! the global model. With `--absent P` each owner misses a round with probability P and is left
//! out of it (the count of contributors is public and printed). Prints per round the test accuracy of the global model, the bytes and
//! communication rounds of the aggregation, and the largest difference between the secure and
//! the plaintext mean (fixed-point error); at the end, plaintext training on the pooled shards
//! with the same number of steps. The same over QUIC, one process per party:
//! `shareflow fedavg --transport quic`.

use std::path::PathBuf;
use std::process::ExitCode;

use shareflow::compiler::{CompileOptions, ProtocolKind};
use shareflow::graphs::zoo::ModelKind;
use shareflow::runtime::data::{data_dir, Mnist, Split};
use shareflow::runtime::federated::rounds::tensors;
use shareflow::runtime::federated::{
    federated_averaging, owner_name, pooled_baseline, FedConfig, InProcess, LocalConfig,
    LocalTrainer,
};

struct Args {
    owners: usize,
    rounds: usize,
    steps: usize,
    absent: f64,
    protocol: ProtocolKind,
    data: Option<PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        owners: 10,
        rounds: 20,
        steps: 20,
        absent: 0.0,
        protocol: ProtocolKind::SecureNN,
        data: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let count = || {
            value
                .parse::<usize>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--owners" => a.owners = count()?,
            "--rounds" => a.rounds = count()?,
            "--steps" => a.steps = count()?,
            "--absent" => {
                a.absent = value
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..1.0).contains(p))
                    .ok_or_else(|| format!("--absent {value}: expected a probability below 1"))?
            }
            "--protocol" => a.protocol = value.parse().map_err(|e| format!("{e}"))?,
            "--data" => a.data = Some(PathBuf::from(value)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

fn run(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    let dir = data_dir(a.data);
    let train = Mnist::load(&dir, Split::Train, None)?;
    let test = Mnist::load(&dir, Split::Test, None)?;
    let cfg = FedConfig {
        kind: ModelKind::A,
        owners: a.owners,
        rounds: a.rounds,
        local: LocalConfig {
            steps: a.steps,
            ..LocalConfig::default()
        },
        absent: a.absent,
        seed: 1,
    };
    let trainer = LocalTrainer::new(cfg.kind, cfg.local)?;
    let mut aggregator = InProcess::new(&tensors(&trainer), a.protocol, CompileOptions::default());
    let everyone: Vec<String> = (0..cfg.owners).map(owner_name).collect();
    let cost = aggregator.compiled(&everyone)?.cost();
    println!(
        "network A, {} owners of {} images each, {} rounds of {} local steps (batch {}), \
         aggregation under {}: {} bytes in {} rounds with every owner (compiler's cost report)",
        cfg.owners,
        train.len() / cfg.owners.max(1),
        cfg.rounds,
        cfg.local.steps,
        cfg.local.batch,
        a.protocol.name(),
        cost.bytes,
        cost.rounds
    );
    println!("round  owners  accuracy     bytes  rounds  aggregation_ms  train_ms  max_error");
    federated_averaging(&cfg, &train, &test, &mut aggregator, |r| {
        let (bytes, rounds, ms) = r
            .aggregate
            .as_ref()
            .map_or((0, 0, 0.0), |a| (a.bytes, a.rounds, a.wall_ms));
        println!(
            "{:>5}  {:>6}  {:>7.2}%  {:>8}  {:>6}  {:>14.1}  {:>8.0}  {:.2e}",
            r.round,
            r.contributors,
            100.0 * r.accuracy,
            bytes,
            rounds,
            ms,
            r.train_ms,
            r.max_error
        );
    })?;
    let (_, pooled) = pooled_baseline(&cfg, &train, &test)?;
    println!(
        "plaintext on the pooled shards, {} steps: {:.2}%",
        cfg.rounds * cfg.local.steps,
        100.0 * pooled
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("secure_aggregation: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("secure_aggregation: {e}");
            ExitCode::FAILURE
        }
    }
}

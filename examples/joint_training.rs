//! Joint training of network A on the data of several owners, in one process.
//!
//! ```text
//! cargo run --release --example joint_training -- [--owners K] [--split rows,columns]
//!     [--epochs E] [--batch B] [--limit N] [--test-limit N] [--protocol securenn]
//!     [--transport inproc|quic] [--data DIR]
//! ```
//!
//! K data owners (`owner-1` ... `owner-K`) hold parts of the 10,000-image training subset:
//!
//! - `rows` (horizontal): each owner holds a disjoint shard of the images with their labels and
//!   secret-shares its rows of every batch;
//! - `columns` (vertical): each owner holds a block of columns of every image (owner 1 the
//!   leftmost, and the labels) and secret-shares its columns of every batch.
//!
//! The training graph joins the owners' parts with `concat` and the servers train network A on
//! the joined batch (SGD with momentum, the zoo recipe), which no party sees. Prints the test
//! accuracy of private predictions from the still-shared model, the plaintext run of the same
//! graph on the same batches and the largest weight difference to it, plaintext training of A on
//! the pooled data with the same recipe (`shareflow train --model A`), and the median
//! milliseconds, bytes and communication rounds per step.
//!
//! With `--transport quic` each split runs a second time with every party its own `shareflow
//! run-graph --training` process on 127.0.0.1 over QUIC (the plan of
//! `runtime::train::joint::quic_plan`; build `shareflow` first: `cargo build --release -p
//! shareflow-tools`): every owner's process reads only its own shard (rows) or its own columns
//! of the MNIST files, the client's its test images. The row `rows/quic` (`columns/quic`)
//! prints the same figures, its `max_diff` being the largest difference between the weights
//! revealed over QUIC and those revealed in process.

use std::path::PathBuf;
use std::process::ExitCode;

use shareflow::compiler::{CompileOptions, ProtocolKind};
use shareflow::graphs::joint::{Joint, Split};
use shareflow::graphs::zoo::ModelKind;
use shareflow::runtime::data::{data_dir, Mnist, Split as DataSplit, Weights};
use shareflow::runtime::plain::train::{accuracy, predict, train, TrainConfig};
use shareflow::runtime::train::joint::{quic_plan, train_plain, train_private};
use shareflow_tools::commands::train_quic::{run_session, shareflow_binary, Launch, TIMEOUT_S};

struct Args {
    owners: usize,
    splits: Vec<Split>,
    epochs: usize,
    batch: usize,
    limit: Option<usize>,
    test_limit: Option<usize>,
    protocol: ProtocolKind,
    quic: bool,
    data: Option<PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        owners: 3,
        splits: vec![Split::Rows, Split::Columns],
        epochs: 1,
        batch: 128,
        limit: None,
        test_limit: None,
        protocol: ProtocolKind::SecureNN,
        quic: false,
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
            "--split" => {
                a.splits = value
                    .split(',')
                    .map(|s| match s {
                        "rows" => Ok(Split::Rows),
                        "columns" => Ok(Split::Columns),
                        other => Err(format!("--split {other}: rows or columns")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--epochs" => a.epochs = count()?,
            "--batch" => a.batch = count()?,
            "--limit" => a.limit = Some(count()?),
            "--test-limit" => a.test_limit = Some(count()?),
            "--protocol" => a.protocol = value.parse().map_err(|e| format!("{e}"))?,
            "--transport" => {
                a.quic = match value.as_str() {
                    "inproc" => false,
                    "quic" => true,
                    other => return Err(format!("--transport {other}: inproc or quic")),
                }
            }
            "--data" => a.data = Some(PathBuf::from(value)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

fn run(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    let dir = data_dir(a.data);
    let data = Mnist::load(&dir, DataSplit::Train, a.limit)?;
    let test = Mnist::load(&dir, DataSplit::Test, a.test_limit)?;
    let images = test.images.clone().into_dyn();
    let cfg = TrainConfig {
        epochs: a.epochs,
        batch: a.batch,
        ..TrainConfig::default()
    };
    let pooled = train(ModelKind::A, &data, &cfg, |_| {})?;
    let pooled_acc = accuracy(&predict(ModelKind::A, &pooled, &images, 500)?, &test.labels);
    println!(
        "network A, {} owners, {} training images, {} epochs of batch {}, {}; plaintext on the \
         pooled data with the same recipe: {:.2}% on {} test images",
        a.owners,
        data.len(),
        cfg.epochs,
        cfg.batch,
        a.protocol.name(),
        100.0 * pooled_acc,
        test.len()
    );
    println!("split    steps  accuracy  same_graph_plain  pooled_plain  max_diff  ms/step  bytes/step  rounds/step");
    for split in &a.splits {
        let j = Joint {
            kind: ModelKind::A,
            owners: a.owners,
            split: *split,
        };
        let mut steps = Vec::new();
        let mut model = train_private(
            &j,
            &data,
            &cfg,
            a.protocol,
            CompileOptions::default(),
            None,
            |r| steps.push(r),
        )?;
        let acc = accuracy(&model.predict(&images, 500)?, &test.labels);
        let revealed = model.reveal()?;
        let plain = train_plain(&j, &data, &cfg, None)?;
        let plain_acc = accuracy(&predict(ModelKind::A, &plain, &images, 500)?, &test.labels);
        let diff = max_diff(&revealed, &plain);
        let mut ms: Vec<f64> = steps.iter().map(|s| s.ms).collect();
        ms.sort_by(f64::total_cmp);
        let last = steps.last();
        println!(
            "{:<7}  {:>5}  {:>7.2}%  {:>15.2}%  {:>11.2}%  {:>8.4}  {:>7.0}  {:>10}  {:>11}",
            format!("{split:?}").to_lowercase(),
            steps.len(),
            100.0 * acc,
            100.0 * plain_acc,
            100.0 * pooled_acc,
            diff,
            ms.get(ms.len() / 2).copied().unwrap_or(f64::NAN),
            last.map_or(0, |s| s.bytes),
            last.map_or(0, |s| s.rounds)
        );
        if a.quic {
            let plan = quic_plan(
                &j,
                data.len(),
                test.len(),
                &cfg,
                a.protocol,
                CompileOptions::default(),
                500,
                true,
            )?;
            let launch = Launch {
                data: std::path::absolute(&dir)?,
                timeout_s: TIMEOUT_S,
                exe: Some(shareflow_binary()?),
                ..Launch::default()
            };
            let q = run_session(&plan, &launch)?;
            let mut ms = q.step_ms.clone();
            ms.sort_by(f64::total_cmp);
            println!(
                "{:<7}  {:>5}  {:>7.2}%  {:>15.2}%  {:>11.2}%  {:>8.4}  {:>7.0}  {:>10}  {:>11}",
                format!("{}/quic", format!("{split:?}").to_lowercase()),
                q.step_ms.len(),
                100.0 * accuracy(&q.logits, &test.labels),
                100.0 * plain_acc,
                100.0 * pooled_acc,
                max_diff(&q.weights.unwrap_or_default(), &revealed),
                ms.get(ms.len() / 2).copied().unwrap_or(f64::NAN),
                q.step_bytes,
                q.step_rounds
            );
        }
    }
    Ok(())
}

/// The largest difference between the arrays of the same name in `a` and `b`.
fn max_diff(a: &Weights, b: &Weights) -> f32 {
    a.arrays
        .iter()
        .filter_map(|(n, x)| b.arrays.get(n).map(|y| (x, y)))
        .flat_map(|(x, y)| x.iter().zip(y.iter()).map(|(p, q)| (p - q).abs()))
        .fold(0.0f32, f32::max)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("joint_training: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("joint_training: {e}");
            ExitCode::FAILURE
        }
    }
}

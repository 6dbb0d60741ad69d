//! `shareflow eval`: prediction over the MNIST test set, in plaintext or under a protocol,
//! with accuracy, agreement with plaintext, KL divergence, time, bytes and rounds.
//!
//! Under a protocol the model owner's weights persist by default: a setup run per batch size
//! shares, masks and opens them once, then every batch is one prediction run. `setup_bytes` and
//! `setup_ms` report the setup runs; `bytes`, `median_ms`, `rounds` etc. the prediction batches
//! only. `--no-persist` runs every batch as the single program (weights masked per batch), to
//! compare.

use std::path::PathBuf;
use std::time::Instant;

use shareflow_compiler::ProtocolKind;
use shareflow_graphs::zoo::ModelKind;
use shareflow_runtime::data::{data_dir, Mnist, Split};
use shareflow_runtime::plain::train::{accuracy, predict};

use super::load_weights;
use super::secure::{agreement, mean_kl, summary, SecureModel};
use crate::report::Report;
use crate::Result;

/// Options of `eval`.
pub struct EvalArgs {
    pub model: ModelKind,
    pub protocol: String,
    pub limit: Option<usize>,
    pub batch: usize,
    pub data: Option<PathBuf>,
    pub weights: Option<PathBuf>,
    pub options: super::Options,
    /// Setup once, then predictions (the default); `false`: one single program per batch.
    pub persist: bool,
    pub json: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let test = Mnist::load(&data_dir(args.data), Split::Test, args.limit)?;
    let weights = load_weights(args.model, args.weights)?;
    let images = test.images.clone().into_dyn();
    let start = Instant::now();
    let plain = predict(args.model, &weights, &images, args.batch)?;
    let plain_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut r = Report::new();
    r.set("model", args.model.to_string())
        .set("protocol", args.protocol.clone())
        .set("transport", "inproc")
        .set("batch", args.batch)
        .set("images", test.len());
    if args.protocol == "plaintext" {
        r.set("accuracy", accuracy(&plain, &test.labels))
            .set("total_ms", plain_ms);
        r.print(args.json);
        return Ok(());
    }
    let protocol: ProtocolKind = args.protocol.parse::<ProtocolKind>()?;
    let mut model = SecureModel::new(args.model, protocol, args.options.for_model(args.model));
    model.persist = args.persist;
    let start = Instant::now();
    let (logits, stats) = model.predict(&weights, &images, args.batch)?;
    let total_ms = start.elapsed().as_secs_f64() * 1e3;
    let (median, min, max) = summary(&stats.batch_ms);
    let mut per_party = serde_json::Map::new();
    let mut parties: Vec<_> = stats.per_party.iter().collect();
    parties.sort();
    for (p, b) in parties {
        per_party.insert(p.clone(), serde_json::json!({ "bytes": b }));
    }
    r.set("accuracy", accuracy(&logits, &test.labels))
        .set("plaintext_accuracy", accuracy(&plain, &test.labels))
        .set("agreement", agreement(&logits, &plain))
        .set("kl", mean_kl(&plain, &logits))
        .set("median_ms", median)
        .set("min_ms", min)
        .set("max_ms", max)
        .set("total_ms", total_ms)
        .set("plaintext_ms", plain_ms)
        .set("bytes", stats.bytes)
        .set(
            "bytes_per_image",
            stats.bytes as f64 / test.len().max(1) as f64,
        )
        .set("rounds", stats.rounds)
        .set("persist", args.persist)
        .set("setup_bytes", stats.setup_bytes)
        .set("setup_ms", stats.setup_ms)
        .set("setup_rounds", stats.setup_rounds)
        .set("per_party", serde_json::Value::Object(per_party));
    r.print(args.json);
    Ok(())
}

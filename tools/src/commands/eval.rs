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

use shareflow_compiler::{CompileOptions, ProtocolKind};
use shareflow_runtime::data::{data_dir, Mnist, Split};
use shareflow_runtime::plain::train::accuracy;
use shareflow_runtime::plain::Outside;

use super::network::Network;
use super::secure::{agreement, mean_kl, summary, SecureModel};
use super::train_private::images_bar;
use crate::report::{party_figures, Report};
use crate::Result;

/// Options of `eval`.
pub struct EvalArgs {
    /// A zoo network, an ONNX model or a user's graph.
    pub model: Network,
    pub protocol: String,
    pub limit: Option<usize>,
    pub batch: usize,
    pub data: Option<PathBuf>,
    /// The model owner's weights (see [`Network::weights`]).
    pub weights: Option<PathBuf>,
    pub options: super::Options,
    /// Setup once, then predictions (the default); `false`: one single program per batch.
    pub persist: bool,
    pub json: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    evaluate(&args)?.print(args.json);
    Ok(())
}

/// The intervals of the activations that `protocol` approximates by a polynomial (ReLU,
/// sigmoid), `None` for those it computes exactly.
pub fn polynomial_intervals(
    protocol: ProtocolKind,
    options: &CompileOptions,
) -> (Option<f64>, Option<f64>) {
    match protocol {
        ProtocolKind::Pond => (Some(options.relu.interval), Some(options.sigmoid.interval)),
        ProtocolKind::SecureNN => (None, Some(options.sigmoid.interval)),
    }
}

/// The figures of `eval` (what [`run`] prints).
pub fn evaluate(args: &EvalArgs) -> Result<Report> {
    let test = Mnist::load(&data_dir(args.data.clone()), Split::Test, args.limit)?;
    let weights = args.model.weights(args.weights.clone())?;
    let images = args.model.inputs(&test.images.clone().into_dyn())?;
    let secure = match args.protocol.as_str() {
        "plaintext" => None,
        name => Some(name.parse::<ProtocolKind>()?),
    };
    let options = args.model.options(&args.options);
    let (relu, sigmoid) = secure
        .map(|p| polynomial_intervals(p, &options))
        .unwrap_or((None, None));
    let mut outside = Outside::default();
    let start = Instant::now();
    let plain = args
        .model
        .predict_plain(&weights, &images, args.batch, &mut |g, e| {
            outside += e.outside(g, relu, sigmoid)
        })?;
    let plain_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut r = Report::new();
    r.set("model", args.model.to_string())
        .set("protocol", args.protocol.clone())
        .set("transport", "inproc")
        .set("batch", args.batch)
        .set("images", test.len());
    let Some(protocol) = secure else {
        r.set("accuracy", accuracy(&plain, &test.labels))
            .set("total_ms", plain_ms);
        return Ok(r);
    };
    let mut model = SecureModel::new(args.model.clone(), protocol, options);
    model.persist = args.persist;
    if let Some(range) = args.options.input_range {
        model.narrow_with(range, &weights);
        r.set("input_range", vec![range.0, range.1]);
    }
    model.progress = images_bar(test.len(), args.json);
    let start = Instant::now();
    let (logits, stats) = model.predict(&weights, &images, args.batch)?;
    let total_ms = start.elapsed().as_secs_f64() * 1e3;
    model.progress.finish_and_clear();
    let (median, min, max) = summary(&stats.batch_ms);
    let mut per_party = serde_json::Map::new();
    let mut parties: Vec<_> = stats.per_party.iter().collect();
    parties.sort_by(|a, b| a.0.cmp(b.0));
    for (p, &(sent, received, ms)) in parties {
        per_party.insert(p.clone(), party_figures(sent, received, Some(ms)));
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
        .set("per_party", serde_json::Value::Object(per_party))
        .set("outside_interval", outside.outside)
        .set("activation_inputs", outside.total)
        .set("outside_interval_fraction", outside.fraction());
    Ok(r)
}

//! `shareflow train --protocol securenn|pond`: private training, every party a thread of this
//! process (`--transport inproc`) or its own `run-graph` process over QUIC (`--transport
//! quic`, see [`super::train_quic`]), then private predictions of the test set from the
//! still-shared model.
//!
//! With `--checkpoint DIR` (in process) the servers save their shares every
//! `--checkpoint-every` steps ([`shareflow_runtime::train::checkpoint`]); `--resume` continues
//! from the last checkpoint that every server has.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use shareflow_compiler::cost::CostReport;
use shareflow_compiler::ProtocolKind;
use shareflow_runtime::data::{data_dir, Mnist, Split, Weights};
use shareflow_runtime::plain::train::{accuracy, argmax, predict, train};
use shareflow_runtime::train::checkpoint::{CheckpointOptions, DEFAULT_EVERY};
use shareflow_runtime::train::{train_private_with, TrainOptions};

use super::train::TrainArgs;
use super::trained_weights_path;
use crate::report::Report;
use crate::{Result, ToolError};

/// Images per private prediction of the test set, at most: never more than the training
/// batch, so that a prediction (a part of a training step) fits the wire's message limit
/// whenever the step does (P's predictions of 128 images need a 1.3 GB message).
pub const EVAL_BATCH: usize = 128;

/// The images per private prediction for training batches of `batch`.
pub fn eval_batch(batch: usize) -> usize {
    EVAL_BATCH.min(batch.max(1))
}

/// What a private training run gives, whatever the transport.
pub struct Trained {
    /// The client's logits of the test images (private predictions).
    pub logits: Array2<f32>,
    /// The weights, if revealed to the model owner.
    pub weights: Option<Weights>,
    pub step_ms: Vec<f64>,
    /// Bytes (all parties) and rounds of one step, as measured.
    pub step_bytes: u64,
    pub step_rounds: u32,
    /// The static cost of one step.
    pub cost: CostReport,
    /// The step a resumed session started from (0 for a new one).
    pub resumed_from: usize,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let protocol: ProtocolKind = args.protocol.parse()?;
    let out = args
        .reveal
        .then(|| trained_weights_path(args.model, args.out.clone()));
    if let Some(out) = &out {
        if out.exists() && !args.force {
            return Err(ToolError::File {
                path: out.display().to_string(),
                message: "already exists; pass --force to overwrite it (or --out FILE)".into(),
            });
        }
    } else if args.out.is_some() {
        return Err(ToolError::Usage(
            "--out writes revealed weights: add --reveal (the weights are then opened to the \
             model owner)"
                .into(),
        ));
    }
    let dir = data_dir(args.data.clone());
    let train_set = Mnist::load(&dir, Split::Train, args.limit)?;
    let test_set = Mnist::load(&dir, Split::Test, args.test_limit)?;
    let cfg = args.config;
    let options = crate::commands::Options::from(shareflow_compiler::CompileOptions::default())
        .for_model(args.model);
    let start = Instant::now();
    let trained = match args.transport.as_str() {
        "inproc" => in_process(&args, protocol, options, &train_set, &test_set)?,
        "quic" if args.checkpoint.is_some() => {
            return Err(ToolError::Usage(
                "--checkpoint: checkpoints are written by in-process sessions only for now \
                 (--transport inproc)"
                    .into(),
            ))
        }
        "quic" => super::train_quic::over_quic(&args, protocol, options, &train_set, &test_set)?,
        other => {
            return Err(ToolError::Usage(format!(
                "--transport {other}: expected inproc or quic"
            )))
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let acc = accuracy(&trained.logits, &test_set.labels);
    let mut step_ms = trained.step_ms.clone();
    step_ms.sort_by(f64::total_cmp);
    let median = step_ms.get(step_ms.len() / 2).copied().unwrap_or(0.0);
    let mut r = Report::new();
    r.set("model", args.model.to_string())
        .set("protocol", protocol.name())
        .set("transport", args.transport.as_str())
        .set("epochs", cfg.epochs)
        .set("batch", cfg.batch)
        .set("lr", cfg.lr as f64)
        .set("momentum", cfg.momentum as f64)
        .set("seed", cfg.seed)
        .set("train_images", train_set.len())
        .set("images", test_set.len())
        .set("accuracy", acc)
        .set("train_seconds", seconds)
        .set("step_median_ms", median)
        .set("step_bytes", trained.step_bytes)
        .set("step_rounds", trained.step_rounds)
        .set("cost_step_bytes", trained.cost.bytes)
        .set("cost_step_rounds", trained.cost.rounds);
    if let Some(dir) = &args.checkpoint {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        r.set("checkpoint", dir.display().to_string())
            .set("resumed_from_step", trained.resumed_from)
            .set("steps_run", trained.step_ms.len());
    }
    let images = test_set.images.clone().into_dyn();
    let reference = if args.reference {
        let weights = train(args.model, &train_set, &cfg, |_| {})?;
        let logits = predict(args.model, &weights, &images, 1000)?;
        r.set("reference_accuracy", accuracy(&logits, &test_set.labels));
        Some(weights)
    } else {
        None
    };
    if let (Some(out), Some(weights)) = (out, &trained.weights) {
        if let Some(plain) = &reference {
            let mut worst = 0f32;
            for (name, w) in &plain.arrays {
                let got = weights.arrays.get(name).ok_or_else(|| {
                    ToolError::Usage(format!("the revealed weights have no {name:?}"))
                })?;
                for (a, b) in got.iter().zip(w.iter()) {
                    worst = worst.max((a - b).abs());
                }
            }
            r.set("reference_max_weight_diff", worst as f64);
        }
        weights.save(&out)?;
        let plain = predict(args.model, weights, &images, 1000)?;
        let agree = trained
            .logits
            .outer_iter()
            .zip(plain.outer_iter())
            .filter(|(a, b)| {
                argmax(a.as_slice().unwrap_or(&[])) == argmax(b.as_slice().unwrap_or(&[]))
            })
            .count();
        let out = std::path::absolute(&out).unwrap_or(out);
        r.set("agreement", agree as f64 / test_set.len().max(1) as f64)
            .set("weights", out.display().to_string());
    }
    r.print(args.json);
    Ok(())
}

/// A progress bar over `steps` steps, hidden under `--json`.
pub fn progress_bar(steps: usize, json: bool) -> ProgressBar {
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(steps as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} epoch {prefix} [{bar:40}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// A progress bar over `images` predicted images (images/s and ETA), hidden under `--json`
/// and without a terminal.
pub fn images_bar(images: usize, json: bool) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(images as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:40}] {pos}/{len} images, {per_sec} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

fn in_process(
    args: &TrainArgs,
    protocol: ProtocolKind,
    options: shareflow_compiler::CompileOptions,
    train_set: &Mnist,
    test_set: &Mnist,
) -> Result<Trained> {
    let cfg = args.config;
    let steps = (train_set.len() / cfg.batch.max(1)) * cfg.epochs;
    let bar = progress_bar(steps, args.json);
    let mut step_ms = Vec::with_capacity(steps);
    let mut measured = (0u64, 0u32);
    let opts = TrainOptions {
        checkpoint: args.checkpoint.clone().map(|dir| CheckpointOptions {
            dir,
            every: args.checkpoint_every.unwrap_or(DEFAULT_EVERY),
            force: args.force,
        }),
        resume: args.resume,
        stop_after: args.stop_after,
    };
    let mut model =
        train_private_with(args.model, train_set, &cfg, protocol, options, &opts, |r| {
            step_ms.push(r.ms);
            measured = (r.bytes, r.rounds);
            bar.set_prefix(format!("{}/{}", r.epoch + 1, cfg.epochs));
            bar.set_message(format!("{:.0} ms/step", r.ms));
            bar.set_position(r.step as u64);
        })?;
    bar.finish_and_clear();
    let logits = model.predict(&test_set.images.clone().into_dyn(), eval_batch(cfg.batch))?;
    let weights = if args.reveal {
        Some(model.reveal()?)
    } else {
        None
    };
    Ok(Trained {
        logits,
        weights,
        step_ms,
        step_bytes: measured.0,
        step_rounds: measured.1,
        cost: CostReport::of(model.step_graph()),
        resumed_from: model.resumed_from(),
    })
}

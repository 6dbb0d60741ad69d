//! `shareflow train --protocol securenn|pond`: private training, every party a thread of this
//! process (`--transport inproc`) or its own `run-graph` process over QUIC (`--transport
//! quic`, see [`super::train_quic`]), then private predictions of the test set from the
//! still-shared model.
//!
//! With `--checkpoint DIR` the servers save their shares every `--checkpoint-every` steps
//! ([`shareflow_runtime::train::checkpoint`]; over QUIC each server process writes its own
//! files); `--resume` continues from the last checkpoint that every server has.
//!
//! `--init FILE.npz` has the model owner secret-share the first weights (shapes checked);
//! `--reveal-loss` reveals each step's mean loss to the data owner, who alone prints it;
//! `--reveal-to PARTY` opens the final weights to that party (the model owner by default,
//! or the data owner), never to a server.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use shareflow_compiler::cost::CostReport;
use shareflow_compiler::ProtocolKind;
use shareflow_graphs::zoo::{CLIENT, MODEL_OWNER};
use shareflow_runtime::data::{data_dir, Mnist, Split, Weights};
use shareflow_runtime::plain::train::{accuracy, argmax, predict, train_from};
use shareflow_runtime::train::checkpoint::{CheckpointOptions, DEFAULT_EVERY};
use shareflow_runtime::train::{check_initial_weights, train_private_with, TrainOptions};

use super::train::TrainArgs;
use super::trained_weights_path;
use crate::report::{party_figures, Report};
use crate::{Result, ToolError};

/// Images per private prediction of the test set, at most: never more than the training
/// batch, so that a prediction (a part of a training step) fits the wire's message limit
/// whenever the step does.
pub const EVAL_BATCH: usize = 128;

/// The images per private prediction for training batches of `batch`.
pub fn eval_batch(batch: usize) -> usize {
    EVAL_BATCH.min(batch.max(1))
}

/// `--init`: `seed` (the recipe's seeded He-normal kernels) or an `.npz` file of the first
/// weights, whose arrays must be exactly the network's parameters with their shapes.
pub fn initial_weights(args: &TrainArgs) -> Result<Option<(PathBuf, Weights)>> {
    match args.init.as_deref() {
        None | Some("seed") => Ok(None),
        Some(file) => {
            let path = PathBuf::from(file);
            let weights = Weights::load(&path)?;
            check_initial_weights(args.model, &weights, &path.display().to_string())?;
            Ok(Some((path, weights)))
        }
    }
}

/// Who receives the final weights: `--reveal-to PARTY`, else the model owner under
/// `--reveal`, else nobody. Only the model owner or the data owner may.
pub fn weights_receiver(args: &TrainArgs) -> Result<Option<String>> {
    let to = match (&args.reveal_to, args.reveal) {
        (Some(p), _) => p.clone(),
        (None, true) => MODEL_OWNER.to_string(),
        (None, false) => return Ok(None),
    };
    if to != MODEL_OWNER && to != CLIENT {
        return Err(ToolError::Usage(format!(
            "--reveal-to {to}: the weights go to {MODEL_OWNER} (the default) or {CLIENT} (the \
             data owner), never to a server or the helper"
        )));
    }
    Ok(Some(to))
}

/// Whether every step reveals its logits (`--reveal-logits-to PARTY`): only to the data owner
/// (`client`), who holds the labels and so alone can compute the loss's gradient from them;
/// never to a server, the dealer or the helper, nor to the model owner.
pub fn reveals_logits(args: &TrainArgs) -> Result<bool> {
    match args.reveal_logits_to.as_deref() {
        None => Ok(false),
        Some(CLIENT) => Ok(true),
        Some(p @ ("server0" | "server1" | "dealer" | "helper")) => Err(ToolError::Usage(format!(
            "--reveal-logits-to {p}: {p} computes on shares and never receives a value in the \
             clear; the logits may go to {CLIENT} (the data owner) only"
        ))),
        Some(MODEL_OWNER) => Err(ToolError::Usage(format!(
            "--reveal-logits-to {MODEL_OWNER}: the labels are the data owner's, so only \
             {CLIENT} can compute the loss's gradient from the logits"
        ))),
        Some(other) => Err(ToolError::Usage(format!(
            "--reveal-logits-to {other}: not a party; the logits may go to {CLIENT} (the data \
             owner) only"
        ))),
    }
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
    /// Each party's bytes sent, bytes received and wall milliseconds in one step (the wall
    /// time where measured).
    pub per_party: Vec<(String, u64, u64, Option<f64>)>,
    /// Each step's mean loss, when revealed to the data owner (`--reveal-loss`).
    pub losses: Vec<f32>,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let protocol: ProtocolKind = args.protocol.parse()?;
    let receiver = weights_receiver(&args)?;
    let init = initial_weights(&args)?;
    let out = receiver
        .as_ref()
        .map(|_| trained_weights_path(args.model, args.out.clone()));
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
             model owner) or --reveal-to PARTY"
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
        "inproc" => in_process(
            &args,
            protocol,
            options,
            (&train_set, &test_set),
            init.as_ref().map(|(_, w)| w),
            receiver.as_deref(),
        )?,
        "quic" => super::train_quic::over_quic(
            &args,
            protocol,
            options,
            (&train_set, &test_set),
            init.as_ref().map(|(p, _)| p.as_path()),
            receiver.as_deref(),
        )?,
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
    let per_party: serde_json::Map<String, serde_json::Value> = trained
        .per_party
        .iter()
        .map(|(p, sent, received, ms)| (p.clone(), party_figures(*sent, *received, *ms)))
        .collect();
    let mut r = Report::new();
    r.set("model", args.model.to_string())
        .set("protocol", protocol.name())
        .set("transport", args.transport.as_str())
        .set("epochs", cfg.epochs)
        .set("batch", cfg.batch)
        .set("lr", cfg.lr as f64)
        .set("momentum", cfg.momentum as f64)
        .set("seed", cfg.seed)
        .set(
            "init",
            init.as_ref()
                .map_or("seed".to_string(), |(p, _)| p.display().to_string()),
        )
        .set("train_images", train_set.len())
        .set("images", test_set.len())
        .set("accuracy", acc)
        .set("train_seconds", seconds)
        .set("median_ms", median)
        .set("min_ms", step_ms.first().copied().unwrap_or(0.0))
        .set("max_ms", step_ms.last().copied().unwrap_or(0.0))
        .set("bytes", trained.step_bytes)
        .set("rounds", trained.step_rounds)
        .set("cost_bytes", trained.cost.bytes)
        .set("cost_rounds", trained.cost.rounds)
        .set(
            "reveals_per_step",
            serde_json::Value::from(
                trained
                    .cost
                    .reveals
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            ),
        )
        .set("per_party", serde_json::Value::Object(per_party));
    if let Some(loss) = trained.losses.last() {
        r.set("loss", *loss as f64)
            .set("loss_first_step", trained.losses[0] as f64);
    }
    if let Some(to) = &receiver {
        r.set("weights_to", to.as_str());
    }
    if let Some(dir) = &args.checkpoint {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        r.set("checkpoint", dir.display().to_string())
            .set("resumed_from_step", trained.resumed_from)
            .set("steps_run", trained.step_ms.len());
    }
    let images = test_set.images.clone().into_dyn();
    let reference = if args.reference {
        let first = init.as_ref().map(|(_, w)| w);
        let weights = train_from(args.model, &train_set, &cfg, first, |_| {})?;
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

/// A progress bar over `steps` steps on stderr, hidden under `--json` or when stderr is not
/// a terminal.
pub fn progress_bar(steps: usize, json: bool) -> ProgressBar {
    styled_bar(
        steps,
        json,
        "{spinner} epoch {prefix} [{bar:40}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
    )
}

/// A progress bar over `images` predicted images (images/s and ETA), hidden under `--json`
/// and without a terminal.
pub fn images_bar(images: usize, json: bool) -> ProgressBar {
    styled_bar(
        images,
        json,
        "{spinner} [{bar:40}] {pos}/{len} images, {per_sec} ({elapsed}, eta {eta})",
    )
}

/// A bar of `len` drawn with `template`, hidden under `--json` or without a terminal.
fn styled_bar(len: usize, json: bool, template: &str) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// The progress bar's message after a step: its time, and its loss if revealed.
pub fn step_message(ms: f64, loss: Option<f32>) -> String {
    match loss {
        Some(l) => format!("{ms:.0} ms/step, loss {l:.4}"),
        None => format!("{ms:.0} ms/step"),
    }
}

fn in_process(
    args: &TrainArgs,
    protocol: ProtocolKind,
    options: shareflow_compiler::CompileOptions,
    (train_set, test_set): (&Mnist, &Mnist),
    init: Option<&Weights>,
    receiver: Option<&str>,
) -> Result<Trained> {
    let cfg = args.config;
    let steps = (train_set.len() / cfg.batch.max(1)) * cfg.epochs;
    let bar = progress_bar(steps, args.json);
    let mut step_ms = Vec::with_capacity(steps);
    let mut measured = (0u64, 0u32);
    let mut per_party = Vec::new();
    let mut losses = Vec::new();
    let opts = TrainOptions {
        checkpoint: args.checkpoint.clone().map(|dir| CheckpointOptions {
            dir,
            every: args.checkpoint_every.unwrap_or(DEFAULT_EVERY),
            force: args.force,
        }),
        resume: args.resume,
        stop_after: args.stop_after,
        init_weights: init.cloned(),
        reveal_loss: args.reveal_loss,
        reveal_logits: reveals_logits(args)?,
    };
    let mut model =
        train_private_with(args.model, train_set, &cfg, protocol, options, &opts, |r| {
            step_ms.push(r.ms);
            measured = (r.bytes, r.rounds);
            per_party = r
                .per_party
                .iter()
                .map(|(p, sent, received, ms)| (p.clone(), *sent, *received, Some(*ms)))
                .collect();
            losses.extend(r.loss);
            bar.set_prefix(format!("{}/{}", r.epoch + 1, cfg.epochs));
            bar.set_message(step_message(r.ms, r.loss));
            bar.set_position(r.step as u64);
        })?;
    bar.finish_and_clear();
    let logits = model.predict(&test_set.images.clone().into_dyn(), eval_batch(cfg.batch))?;
    let weights = match receiver {
        Some(to) => Some(model.reveal_to(to)?),
        None => None,
    };
    Ok(Trained {
        logits,
        weights,
        step_ms,
        step_bytes: measured.0,
        step_rounds: measured.1,
        cost: CostReport::of(model.step_graph()),
        resumed_from: model.resumed_from(),
        per_party,
        losses,
    })
}

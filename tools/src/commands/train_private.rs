//! `shareflow train --protocol securenn|pond`: private training in process (every party a
//! thread), then private predictions of the test set from the still-shared model.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use shareflow_compiler::cost::CostReport;
use shareflow_compiler::ProtocolKind;
use shareflow_runtime::data::{data_dir, Mnist, Split};
use shareflow_runtime::plain::train::{accuracy, argmax, predict};
use shareflow_runtime::train::train_private;

use super::train::TrainArgs;
use super::trained_weights_path;
use crate::report::Report;
use crate::{Result, ToolError};

/// Images per private prediction of the test set, at most: never more than the training
/// batch, so that a prediction (a part of a training step) fits the wire's message limit
/// whenever the step does (P's predictions of 128 images need a 1.3 GB message).
const EVAL_BATCH: usize = 128;

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
            "--out writes revealed weights: add --reveal (the weights are then opened to the \\
             model owner)"
                .into(),
        ));
    }
    let dir = data_dir(args.data);
    let train_set = Mnist::load(&dir, Split::Train, args.limit)?;
    let test_set = Mnist::load(&dir, Split::Test, args.test_limit)?;
    let cfg = args.config;
    let steps = (train_set.len() / cfg.batch.max(1)) * cfg.epochs;
    let bar = if args.json {
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
    let options = crate::commands::Options::from(shareflow_compiler::CompileOptions::default())
        .for_model(args.model);
    let start = Instant::now();
    let mut step_ms = Vec::with_capacity(steps);
    let mut measured = (0u64, 0u32);
    let mut model = train_private(args.model, &train_set, &cfg, protocol, options, |r| {
        step_ms.push(r.ms);
        measured = (r.bytes, r.rounds);
        bar.set_prefix(format!("{}/{}", r.epoch + 1, cfg.epochs));
        bar.set_message(format!("{:.0} ms/step", r.ms));
        bar.set_position(r.step as u64);
    })?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let cost = CostReport::of(model.step_graph());
    let images = test_set.images.clone().into_dyn();
    let logits = model.predict(&images, EVAL_BATCH.min(cfg.batch.max(1)))?;
    let acc = accuracy(&logits, &test_set.labels);
    step_ms.sort_by(f64::total_cmp);
    let median = step_ms.get(step_ms.len() / 2).copied().unwrap_or(0.0);
    let mut r = Report::new();
    r.set("model", args.model.to_string())
        .set("protocol", protocol.name())
        .set("transport", "inproc")
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
        .set("step_bytes", measured.0)
        .set("step_rounds", measured.1)
        .set("cost_step_bytes", cost.bytes)
        .set("cost_step_rounds", cost.rounds);
    if let Some(out) = out {
        let weights = model.reveal()?;
        weights.save(&out)?;
        let reference = predict(args.model, &weights, &images, 1000)?;
        let agree = logits
            .outer_iter()
            .zip(reference.outer_iter())
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

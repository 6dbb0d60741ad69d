//! `shareflow train`: trains a network of the zoo and saves its weights where it is told
//! (`--out`, else `models/<x>.npz` under the current directory), never over an existing file
//! unless `--force` says so. The plaintext reference runs the network's training graph
//! (forward, backward and update in one graph) in a plaintext session.
//!
//! Under `--protocol securenn` (or `pond`) the same graph is compiled for the protocol and the
//! servers train on shares ([`shareflow_runtime::train`]): the test accuracy is that of private
//! predictions from the still-shared model. The weights are revealed to the model owner and
//! written only with `--reveal`; then the report also gives the agreement of the private
//! predictions with plaintext predictions from the revealed weights.

use std::path::PathBuf;
use std::time::Instant;

use shareflow_graphs::zoo::ModelKind;
use shareflow_runtime::data::{data_dir, Mnist, Split};
use shareflow_runtime::plain::train::{accuracy, predict, train_from, TrainConfig};

use super::trained_weights_path;
use crate::report::Report;
use crate::{Result, ToolError};

/// Options of `train`.
pub struct TrainArgs {
    pub model: ModelKind,
    /// `plaintext`, `securenn` or `pond`.
    pub protocol: String,
    /// Reveal the privately trained weights to the model owner and write them.
    pub reveal: bool,
    /// Test on the first N test images only.
    pub test_limit: Option<usize>,
    /// Under a protocol: also train in plaintext with the same recipe and compare.
    pub reference: bool,
    /// Under a protocol: `inproc` (every party a thread) or `quic` (every party a process).
    pub transport: String,
    pub data: Option<PathBuf>,
    pub out: Option<PathBuf>,
    /// Overwrite an existing file at the output path; start a new session in a checkpoint
    /// directory that holds checkpoints.
    pub force: bool,
    /// Private training: the checkpoint directory.
    pub checkpoint: Option<PathBuf>,
    /// Steps between two checkpoints (default
    /// [`shareflow_runtime::train::checkpoint::DEFAULT_EVERY`]).
    pub checkpoint_every: Option<usize>,
    /// Private training: continue from the last checkpoint.
    pub resume: bool,
    /// Private training: stop after this many steps.
    pub stop_after: Option<usize>,
    /// Train on the first N training images only.
    pub limit: Option<usize>,
    /// Over QUIC: seconds a party waits for a peer (default 600).
    pub timeout_s: Option<f64>,
    /// `seed` (the seeded He-normal kernels) or an `.npz` of the first weights (under a
    /// protocol, the model owner secret-shares them).
    pub init: Option<String>,
    /// Under a protocol: reveal each step's mean loss to the data owner, who prints it.
    pub reveal_loss: bool,
    /// Under a protocol: who receives the final weights (model-owner or client); implies
    /// revealing them.
    pub reveal_to: Option<String>,
    /// Under a protocol: the party that receives every step's logits and computes the loss's
    /// gradient in the clear (only `client`, who holds the labels).
    pub reveal_logits_to: Option<String>,
    pub config: TrainConfig,
    pub json: bool,
}

pub fn run(args: TrainArgs) -> Result<()> {
    if args.protocol != "plaintext" {
        return super::train_private::run(args);
    }
    if args.checkpoint.is_some()
        || args.stop_after.is_some()
        || args.reveal_loss
        || args.reveal_to.is_some()
        || args.reveal_logits_to.is_some()
    {
        return Err(ToolError::Usage(
            "--checkpoint, --resume, --stop-after, --reveal-loss, --reveal-to and \
             --reveal-logits-to are for private training (--protocol securenn or pond); \
             plaintext training shows its loss"
                .into(),
        ));
    }
    let init = super::train_private::initial_weights(&args)?;
    let out = trained_weights_path(args.model, args.out);
    if out.exists() && !args.force {
        return Err(ToolError::File {
            path: out.display().to_string(),
            message: "already exists; pass --force to overwrite it (or --out FILE)".into(),
        });
    }
    let dir = data_dir(args.data);
    let train_set = Mnist::load(&dir, Split::Train, args.limit)?;
    let test_set = Mnist::load(&dir, Split::Test, args.test_limit)?;
    let cfg = args.config;
    let steps = (train_set.len() / cfg.batch) * cfg.epochs;
    let bar = super::train_private::progress_bar(steps, args.json);
    let start = Instant::now();
    let mut smoothed = None::<f32>;
    let first = init.as_ref().map(|(_, w)| w);
    let weights = train_from(args.model, &train_set, &cfg, first, |p| {
        let s = smoothed.map_or(p.loss, |s| 0.98 * s + 0.02 * p.loss);
        smoothed = Some(s);
        bar.set_prefix(format!("{}/{}", p.epoch + 1, cfg.epochs));
        bar.set_message(format!("loss {s:.4}"));
        bar.set_position(p.step as u64);
    })?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    weights.save(&out)?;
    let out = std::path::absolute(&out).unwrap_or(out);
    let logits = predict(
        args.model,
        &weights,
        &test_set.images.clone().into_dyn(),
        1000,
    )?;
    let acc = accuracy(&logits, &test_set.labels);
    let mut r = Report::new();
    r.set("model", args.model.to_string())
        .set("protocol", "plaintext")
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
        .set("weights", out.display().to_string());
    r.print(args.json);
    Ok(())
}

//! A private training session with every party its own process over QUIC: the servers and the
//! helper keep the variables' shares across the runs, the data owner (the zoo's `client`)
//! reads its own MNIST files and secret-shares one batch per step, the model owner receives the
//! weights only if the plan reveals them.
//!
//! Every party is given the same [`TrainingPlan`] (compiled programs and recipe; the parties
//! check each other's digest of it when they connect) and derives its own inputs of every run
//! from it: the batch order and the learning-rate schedule are
//! [`crate::plain::train::schedule`] of the recipe, so the servers know each step's public
//! learning rate and only the data owner touches the data. The runs, in order: init, the
//! steps, the private predictions of the test images from the still-shared model (logits to
//! the data owner), and the reveal if asked.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shareflow_compiler::{compile, compile_init, CompileOptions, CompiledGraph, ProtocolKind};
use shareflow_graphs::zoo::{ModelKind, ZooModel, CLIENT, IMAGE};
use shareflow_graphs::zoo_train::{reveal_graph, TrainSpec};

use crate::cluster::ClusterConfig;
use crate::data::Mnist;
use crate::exec::{PartyResult, Randomness, SessionParty};
use crate::party::{json_digest, over_quic, Connected};
use crate::plain::train::{batch_inputs, schedule, ScheduledStep, TrainConfig};
use crate::{Result, RuntimeError};

/// The format name of a training plan file.
pub const PLAN_FORMAT: &str = "shareflow-training";

/// What every party of a training session over QUIC runs: the recipe and the compiled
/// programs (JSON; written by `shareflow train --transport quic`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingPlan {
    pub format: String,
    pub model: String,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub momentum: f32,
    pub seed: u64,
    /// Training images the data owner uses (the first ones of its training files).
    pub train_images: usize,
    /// Test images predicted at the end (the first ones of the test files).
    pub test_images: usize,
    /// Images per private prediction.
    pub eval_batch: usize,
    pub init: CompiledGraph,
    pub step: CompiledGraph,
    /// Prediction programs: for `eval_batch` images, then for the remainder if any.
    pub predict: Vec<CompiledGraph>,
    /// Opens the weights to the model owner, if asked.
    pub reveal: Option<CompiledGraph>,
}

/// One run of a training session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainingRun {
    Init,
    /// Step `k` (0-based) of `steps`.
    Step {
        k: usize,
        steps: usize,
    },
    /// The prediction of test images `start..start + size`.
    Predict {
        start: usize,
        size: usize,
    },
    Reveal,
}

impl TrainingPlan {
    /// Compiles the session of network `kind` with recipe `cfg`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: ModelKind,
        cfg: &TrainConfig,
        protocol: ProtocolKind,
        options: CompileOptions,
        train_images: usize,
        test_images: usize,
        eval_batch: usize,
        reveal: bool,
    ) -> Result<TrainingPlan> {
        let spec = TrainSpec {
            seed: cfg.seed,
            momentum: cfg.momentum,
            reveal_loss: false,
        };
        let training = ZooModel::build_training(kind, cfg.batch, &spec)?.graph;
        let eval_batch = eval_batch.max(1).min(test_images.max(1));
        let mut predict = vec![compile(
            &ZooModel::build_from_variables(kind, eval_batch)?.graph,
            protocol,
            options,
        )?];
        let rest = test_images % eval_batch;
        if rest > 0 {
            let g = ZooModel::build_from_variables(kind, rest)?.graph;
            predict.push(compile(&g, protocol, options)?);
        }
        let reveal = if reveal {
            Some(compile(&reveal_graph(kind)?, protocol, options)?)
        } else {
            None
        };
        Ok(TrainingPlan {
            format: PLAN_FORMAT.into(),
            model: kind.to_string(),
            epochs: cfg.epochs,
            batch: cfg.batch,
            lr: cfg.lr,
            momentum: cfg.momentum,
            seed: cfg.seed,
            train_images,
            test_images,
            eval_batch,
            init: compile_init(&training, protocol, options)?,
            step: compile(&training, protocol, options)?,
            predict,
            reveal,
        })
    }

    /// Reads a plan file's JSON.
    pub fn from_json(text: &str) -> Result<TrainingPlan> {
        let plan: TrainingPlan = serde_json::from_str(text).map_err(|e| RuntimeError::Node {
            node: "training plan".into(),
            message: e.to_string(),
        })?;
        if plan.format != PLAN_FORMAT {
            return Err(RuntimeError::Node {
                node: "training plan".into(),
                message: format!("format {:?}, expected {PLAN_FORMAT:?}", plan.format),
            });
        }
        Ok(plan)
    }

    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch: self.batch,
            lr: self.lr,
            momentum: self.momentum,
            seed: self.seed,
        }
    }

    /// The steps of the recipe.
    pub fn schedule(&self) -> Vec<ScheduledStep> {
        schedule(self.train_images, &self.config())
    }

    /// Every program of the session: init, step, the predictions, the reveal.
    fn graphs(&self) -> Vec<&CompiledGraph> {
        let mut g = vec![&self.init, &self.step];
        g.extend(self.predict.iter());
        g.extend(self.reveal.iter());
        g
    }
}

/// Runs party `party` of the training session `plan` over QUIC. `data` (training and test
/// images) is the data owner's, `None` for every other party. `on_run` sees every run's result
/// as it finishes.
#[allow(clippy::too_many_arguments)]
pub fn run_training_over_quic(
    plan: &TrainingPlan,
    party: &str,
    cluster: &ClusterConfig,
    data: Option<(&Mnist, &Mnist)>,
    timeout: Duration,
    randomness: &Randomness,
    on_connected: impl FnOnce(&Connected),
    mut on_run: impl FnMut(TrainingRun, &PartyResult) -> Result<()>,
) -> Result<()> {
    let owner = party == CLIENT;
    let data = match (owner, data) {
        (true, Some((train, test))) => {
            if train.len() < plan.train_images || test.len() < plan.test_images {
                return Err(RuntimeError::Node {
                    node: "training data".into(),
                    message: format!(
                        "the plan uses {} training and {} test images; the files have {} and {}",
                        plan.train_images,
                        plan.test_images,
                        train.len(),
                        test.len()
                    ),
                });
            }
            Some((train, test))
        }
        (true, None) => {
            return Err(RuntimeError::Node {
                node: format!("party {party}"),
                message: "the data owner needs its training and test files".into(),
            })
        }
        (false, _) => None,
    };
    let graphs = plan.graphs();
    let mut session = SessionParty::new(&graphs, party)?;
    let parties = &plan.step.parties;
    let server = parties
        .iter()
        .position(|p| p == party)
        .is_some_and(|h| h < 2);
    let steps = plan.schedule();
    over_quic(
        cluster,
        party,
        (parties, &session.largest_batches(parties.len())),
        json_digest("training plan", plan)?,
        timeout,
        on_connected,
        |t| {
            let none = HashMap::new();
            let r = session.run(0, t, &none, randomness)?;
            on_run(TrainingRun::Init, &r)?;
            for s in &steps {
                let inputs = match data {
                    Some((train, _)) => batch_inputs(train, &s.indices)?,
                    None if server => super::server_inputs(s),
                    None => HashMap::new(),
                };
                let r = session.run(1, t, &inputs, randomness)?;
                let run = TrainingRun::Step {
                    k: s.step,
                    steps: steps.len(),
                };
                on_run(run, &r)?;
            }
            let mut start = 0;
            while start < plan.test_images {
                let size = plan.eval_batch.min(plan.test_images - start);
                let program = if size == plan.eval_batch { 2 } else { 3 };
                let mut inputs = HashMap::new();
                if let Some((_, test)) = data {
                    inputs.insert(IMAGE.to_string(), test.batch(start, start + size));
                }
                let r = session.run(program, t, &inputs, randomness)?;
                on_run(TrainingRun::Predict { start, size }, &r)?;
                start += size;
            }
            if plan.reveal.is_some() {
                let reveal = 2 + plan.predict.len();
                let r = session.run(reveal, t, &none, randomness)?;
                on_run(TrainingRun::Reveal, &r)?;
            }
            Ok(())
        },
    )
}

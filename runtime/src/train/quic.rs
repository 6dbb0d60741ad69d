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
//!
//! Checkpoints: with [`TrainingPlan::checkpoint_every`] each server process writes its own
//! shares to its own directory ([`Checkpointer::only`]); a plan with [`TrainingPlan::resume`]
//! replaces the init run by an announcement of each server's checkpoint steps (public numbers,
//! [`SessionParty::announce`]) after which every party continues from the newest step all
//! servers have, the servers from their own files. Nothing else about a checkpoint leaves a
//! server.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shareflow_compiler::{compile, compile_init, CompileOptions, CompiledGraph, ProtocolKind};
use shareflow_graphs::zoo::{ModelKind, ZooModel, CLIENT, IMAGE, MODEL_OWNER};
use shareflow_graphs::zoo_train::reveal_graph_to;

use crate::cluster::ClusterConfig;
use crate::data::Mnist;
use crate::exec::session::MAX_ANNOUNCED;
use crate::exec::{PartyResult, Randomness, SessionParty};
use crate::party::{json_digest, over_quic, Connected};
use crate::plain::train::{batch_inputs, schedule, ScheduledStep, TrainConfig};
use crate::{Result, RuntimeError};

use super::checkpoint::{self, Checkpointer, ScheduleId};
use super::{check_initial_weights, init_inputs, training_graph, StepSpec};
use crate::data::Weights;

/// The format name of a training plan file.
pub const PLAN_FORMAT: &str = "shareflow-training";

/// What every party of a training session over QUIC runs: the recipe and the compiled
/// programs (JSON; written by `shareflow train --transport quic`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingPlan {
    /// Always [`PLAN_FORMAT`].
    pub format: String,
    /// The zoo network trained (`A` to `D`, or `P`).
    pub model: String,
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per step.
    pub batch: usize,
    /// Initial learning rate.
    pub lr: f32,
    /// Momentum of SGD.
    pub momentum: f32,
    /// Seed of the initial weights and the shuffling.
    pub seed: u64,
    /// Training images the data owner uses (the first ones of its training files).
    pub train_images: usize,
    /// Test images predicted at the end (the first ones of the test files).
    pub test_images: usize,
    /// Images per private prediction.
    pub eval_batch: usize,
    /// The program that initialises the variables' shares.
    pub init: CompiledGraph,
    /// The program of one training step.
    pub step: CompiledGraph,
    /// Prediction programs: for `eval_batch` images, then for the remainder if any.
    pub predict: Vec<CompiledGraph>,
    /// The first weights' source and whether each step reveals its loss.
    #[serde(default)]
    pub spec: StepSpec,
    /// Opens the weights to their receiver ([`TrainingPlan::reveal_to`]), if asked.
    pub reveal: Option<CompiledGraph>,
    /// Who receives the weights at the end (the model owner or the data owner), if anyone.
    #[serde(default)]
    pub reveal_to: Option<String>,
    /// Steps between two checkpoints of the servers' shares (`None`: no checkpoints; `Some(0)`:
    /// only resume, write none). Every server writes its own files to its own directory.
    #[serde(default)]
    pub checkpoint_every: Option<usize>,
    /// Start from the newest checkpoint that every server has instead of the init run: the
    /// servers announce the steps of their checkpoints (public numbers) and every party takes
    /// the newest step common to all.
    #[serde(default)]
    pub resume: bool,
    /// Stop after this many steps of the schedule (a later resumed session does the rest).
    #[serde(default)]
    pub stop_after: Option<usize>,
}

/// What one party of a training session over QUIC brings besides the plan.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartyFiles<'a> {
    /// The data owner's training and test images (`None` for every other party).
    pub data: Option<(&'a Mnist, &'a Mnist)>,
    /// A server's checkpoint directory (the plan says how often to write): the server writes
    /// `DIR/<server>/step-<n>.npz` and nothing else.
    pub checkpoint: Option<&'a Path>,
    /// Start a new session in a checkpoint directory that holds checkpoints (deleting them).
    pub force: bool,
    /// The model owner's first weights, when the plan takes them from it
    /// ([`StepSpec::owner_init`]).
    pub init_weights: Option<&'a Weights>,
}

/// How a party's training session went, besides what `on_run` saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainingOutcome {
    /// The checkpoint step the session resumed from (0 for a new session).
    pub resumed_from: usize,
    /// The steps this session ran.
    pub steps_run: usize,
}

/// One run of a training session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainingRun {
    /// The run that initialises the variables' shares.
    Init,
    /// Step `k` (0-based) of `steps`.
    Step {
        /// The step's index.
        k: usize,
        /// The steps of the whole session.
        steps: usize,
    },
    /// The prediction of test images `start..start + size`.
    Predict {
        /// The first test image.
        start: usize,
        /// The number of images.
        size: usize,
    },
    /// The run that opens the trained weights to their receiver.
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
        spec: StepSpec,
        reveal_to: Option<&str>,
    ) -> Result<TrainingPlan> {
        let training = training_graph(kind, cfg, spec)?;
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
        let reveal = match reveal_to {
            Some(to) => Some(compile(&reveal_graph_to(kind, to)?, protocol, options)?),
            None => None,
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
            spec,
            reveal,
            reveal_to: reveal_to.map(str::to_string),
            checkpoint_every: None,
            resume: false,
            stop_after: None,
        })
    }

    /// The schedule every checkpoint of this session is written for.
    pub fn schedule_id(&self) -> ScheduleId {
        ScheduleId::new(self.train_images, &self.config())
    }

    /// The checkpoints of this session in `dir` (of every server), if the plan has any.
    pub fn checkpointer(&self, dir: &Path) -> Result<Option<Checkpointer>> {
        if self.checkpoint_every.is_none() && !self.resume {
            return Ok(None);
        }
        let every = self.checkpoint_every.unwrap_or(0);
        Checkpointer::new(dir, every, &self.step, self.schedule_id()).map(Some)
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

    /// The training recipe (epochs, batch, learning rate, momentum, seed) of this plan.
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

/// Runs party `party` of the training session `plan` over QUIC with what it brings
/// (`files`: the data owner's images, a server's checkpoint directory). `on_run` sees every
/// run's result as it finishes.
///
/// With checkpoints in the plan each server writes its own shares every K steps (after the
/// step's run, atomically; [`Checkpointer::save_own`]). With [`TrainingPlan::resume`] the first
/// run announces each server's checkpoint steps to every party (public numbers, the only
/// thing sent) and every party continues after the newest step all servers have
/// ([`checkpoint::common_step`]); the servers load their own shares of it.
#[allow(clippy::too_many_arguments)]
pub fn run_training_over_quic(
    plan: &TrainingPlan,
    party: &str,
    cluster: &ClusterConfig,
    files: PartyFiles<'_>,
    timeout: Duration,
    randomness: &Randomness,
    on_connected: impl FnOnce(&Connected),
    mut on_run: impl FnMut(TrainingRun, &PartyResult) -> Result<()>,
) -> Result<TrainingOutcome> {
    let owner = party == CLIENT;
    let data = match (owner, files.data) {
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
    let init = match (
        party == MODEL_OWNER && plan.spec.owner_init,
        files.init_weights,
    ) {
        (true, Some(w)) => {
            let kind: ModelKind = plan.model.parse().map_err(|e| RuntimeError::Node {
                node: "training plan".into(),
                message: format!("model {:?}: {e}", plan.model),
            })?;
            check_initial_weights(kind, w, "the initial weights (--weights)")?;
            init_inputs(Some(w)).remove(MODEL_OWNER).unwrap_or_default()
        }
        (true, None) => {
            return Err(RuntimeError::Node {
                node: format!("party {party}"),
                message: "the plan takes the first weights from the model owner: give them \
                          (--weights FILE.npz)"
                    .into(),
            })
        }
        (false, _) => HashMap::new(),
    };
    let graphs = plan.graphs();
    let mut session = SessionParty::new(&graphs, party)?;
    let parties = &plan.step.parties;
    let me = parties
        .iter()
        .position(|p| p == party)
        .ok_or_else(|| RuntimeError::Node {
            node: format!("party {party}"),
            message: format!("not a party of the plan ({})", parties.join(", ")),
        })?;
    let server = me < 2;
    let holders = checkpoint::holder_indices(&plan.step);
    let checkpoints = own_checkpoints(plan, party, holders.contains(&me), files)?;
    let steps = plan.schedule();
    let end = plan.stop_after.unwrap_or(steps.len()).min(steps.len());
    over_quic(
        cluster,
        party,
        (parties, &session.largest_batches(parties.len())),
        json_digest("training plan", plan)?,
        timeout,
        on_connected,
        |t| {
            let none = HashMap::new();
            let start = if plan.resume {
                let mine = match &checkpoints {
                    Some(k) => announced_steps(&k.steps(party)?),
                    None => Vec::new(),
                };
                let lists = session.announce(t, &holders, &mine)?;
                let named: Vec<(String, Vec<usize>)> = holders
                    .iter()
                    .zip(lists)
                    .map(|(&h, list)| {
                        let name = parties.get(h).cloned().unwrap_or_default();
                        let list = list
                            .into_iter()
                            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                            .collect();
                        (name, list)
                    })
                    .collect();
                let step =
                    checkpoint::common_step(&named).map_err(|message| RuntimeError::Node {
                        node: "resume".into(),
                        message,
                    })?;
                if step > steps.len() {
                    return Err(RuntimeError::Node {
                        node: "resume".into(),
                        message: format!(
                            "the servers' common checkpoint is after step {step}, but the \
                             schedule has {} steps",
                            steps.len()
                        ),
                    });
                }
                if let Some(k) = &checkpoints {
                    for (_, store) in k.load(step)? {
                        session.restore(store);
                    }
                }
                step
            } else {
                let r = session.run(0, t, &init, randomness)?;
                on_run(TrainingRun::Init, &r)?;
                0
            };
            for s in steps.iter().take(end).skip(start) {
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
                if let Some(k) = &checkpoints {
                    if k.due(s.step + 1) {
                        k.save_own(s.step + 1, session.store())?;
                    }
                }
            }
            let mut start_image = 0;
            while start_image < plan.test_images {
                let size = plan.eval_batch.min(plan.test_images - start_image);
                let program = if size == plan.eval_batch { 2 } else { 3 };
                let mut inputs = HashMap::new();
                if let Some((_, test)) = data {
                    inputs.insert(
                        IMAGE.to_string(),
                        test.batch(start_image, start_image + size),
                    );
                }
                let r = session.run(program, t, &inputs, randomness)?;
                let run = TrainingRun::Predict {
                    start: start_image,
                    size,
                };
                on_run(run, &r)?;
                start_image += size;
            }
            if plan.reveal.is_some() {
                let reveal = 2 + plan.predict.len();
                let r = session.run(reveal, t, &none, randomness)?;
                on_run(TrainingRun::Reveal, &r)?;
            }
            Ok(TrainingOutcome {
                resumed_from: start,
                steps_run: end.saturating_sub(start),
            })
        },
    )
}

/// The checkpoints a party writes and reads itself: a server's own files when the plan has
/// checkpoints (checked before connecting: a new session does not write over an earlier
/// one's checkpoints unless `force`).
fn own_checkpoints(
    plan: &TrainingPlan,
    party: &str,
    holder: bool,
    files: PartyFiles<'_>,
) -> Result<Option<Checkpointer>> {
    if !holder {
        return Ok(None);
    }
    let Some(dir) = files.checkpoint else {
        if plan.checkpoint_every.is_some() || plan.resume {
            return Err(RuntimeError::Node {
                node: format!("party {party}"),
                message: "the plan has checkpoints: this server needs its checkpoint \
                          directory (--checkpoint DIR)"
                    .into(),
            });
        }
        return Ok(None);
    };
    let Some(all) = plan.checkpointer(dir)? else {
        return Ok(None);
    };
    let own = all.only(party).ok_or_else(|| RuntimeError::Node {
        node: format!("party {party}"),
        message: "holds no variables of the step program to checkpoint".into(),
    })?;
    if !plan.resume {
        own.prepare_new(files.force)?;
    }
    Ok(Some(own))
}

/// The newest [`MAX_ANNOUNCED`] of a server's checkpoint steps (oldest first), as announced.
fn announced_steps(steps: &[usize]) -> Vec<u64> {
    let skip = steps.len().saturating_sub(MAX_ANNOUNCED);
    steps[skip..].iter().map(|&s| s as u64).collect()
}

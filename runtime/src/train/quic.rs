//! A private training session with every party its own process over QUIC: the servers and the
//! helper keep the variables' shares across the runs, every data owner reads its own data
//! ([`OwnerData`]: which file, which examples, its rows or columns of every batch) and
//! secret-shares its part of one batch per step, the predicting party its test examples, and
//! the receiver gets the weights only if the plan reveals them. The plan carries the compiled
//! graphs of any [`SessionGraphs`] (a zoo network's, a user's [`Network`], transfer learning's,
//! joint training's): [`TrainingPlan::of_session`]; [`TrainingPlan::new`] is the zoo's use of it.
//!
//! Every party is given the same [`TrainingPlan`] (compiled programs and recipe; the parties
//! check each other's digest of it when they connect) and derives its own inputs of every run
//! from it: the batch order and the learning-rate schedule are [`TrainingPlan::schedule`] of
//! the recipe, so the servers know each step's public learning rate and only the data owners
//! touch the data. The runs, in order: init (the model owner gives the init program's inputs
//! that are its own, from its weights file), the steps, the private predictions of the test
//! examples from the still-shared model (logits to the predicting party), and the reveal if
//! asked.
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

use ndarray::ArrayD;
use serde::{Deserialize, Serialize};
use shareflow_compiler::{compile, compile_init, CompileOptions, CompiledGraph, ProtocolKind};
use shareflow_graphs::network::Network;
use shareflow_graphs::zoo::{ModelKind, CLIENT, IMAGE};
use shareflow_graphs::zoo_train::{LABELS, LEARNING_RATE};
use shareflow_graphs::Graph;

use crate::cluster::ClusterConfig;
use crate::data::Split;
use crate::exec::session::MAX_ANNOUNCED;
use crate::exec::{PartyResult, Randomness, SessionParty};
use crate::party::{json_digest, over_quic, Connected};
use crate::plain::train::{schedule, ScheduledStep, TrainConfig};
use crate::{Result, RuntimeError};

use super::checkpoint::{self, Checkpointer, ScheduleId};
use super::owner_data::{OwnerData, OwnerExamples};
use super::{training_graph, SessionGraphs, StepSpec};
use crate::data::Weights;

/// The format name of a training plan file.
pub const PLAN_FORMAT: &str = "shareflow-training";

/// The order of the examples of the steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOrder {
    /// Batches of the pooled examples ([`crate::plain::train::schedule`]).
    #[default]
    Pooled,
    /// `owners` contiguous shards, each shuffled by its owner; every batch takes each owner's
    /// part of its rows ([`super::joint::shard_schedule`]).
    Shards {
        /// The owners of the shards.
        owners: usize,
    },
}

/// What every party of a training session over QUIC runs: the recipe, the data owners' data
/// and the compiled programs (JSON; written by `shareflow train --transport quic` and by the
/// transfer-learning and joint-training sessions).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingPlan {
    /// Always [`PLAN_FORMAT`].
    pub format: String,
    /// What the session trains, for messages (`network A`, `transfer C (b)`, ...).
    pub name: String,
    /// Passes over the training examples.
    pub epochs: usize,
    /// Examples per step.
    pub batch: usize,
    /// Initial learning rate.
    pub lr: f32,
    /// Momentum of SGD.
    pub momentum: f32,
    /// Seed of the initial weights and the shuffling.
    pub seed: u64,
    /// Training examples the schedule draws from (all owners' together).
    pub train_images: usize,
    /// How the steps take their examples.
    #[serde(default)]
    pub order: StepOrder,
    /// Each data owner's training data and what it gives every step.
    pub owners: Vec<OwnerData>,
    /// The test examples predicted at the end: the predicting party's data, its
    /// `examples` the test examples, its input the prediction graph's.
    pub test: OwnerData,
    /// Test examples predicted at the end.
    pub test_images: usize,
    /// Examples per private prediction.
    pub eval_batch: usize,
    /// The program that initialises the variables' shares.
    pub init: CompiledGraph,
    /// The program of one training step.
    pub step: CompiledGraph,
    /// Prediction programs: for `eval_batch` examples, then for the remainder if any.
    pub predict: Vec<CompiledGraph>,
    /// The first weights' source and whether each step reveals its loss.
    #[serde(default)]
    pub spec: StepSpec,
    /// The output name of the revealed loss, if the step reveals one.
    #[serde(default)]
    pub loss: Option<String>,
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

/// What a training session is, for [`TrainingPlan::of_session`]: its name, recipe, data and
/// what it reveals.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// What the session trains, for messages.
    pub name: String,
    /// The recipe.
    pub cfg: TrainConfig,
    /// Training examples the schedule draws from.
    pub train_images: usize,
    /// How the steps take their examples.
    pub order: StepOrder,
    /// Each data owner's training data.
    pub owners: Vec<OwnerData>,
    /// The predicting party's test data (its input is replaced by the prediction graph's);
    /// its `examples` give the number of test examples.
    pub test: OwnerData,
    /// Examples per private prediction.
    pub eval_batch: usize,
    /// The first weights' source and whether each step reveals its loss.
    pub spec: StepSpec,
    /// The output name of the loss the step reveals, if any.
    pub loss: Option<String>,
    /// Who receives the weights at the end, if anyone.
    pub reveal_to: Option<String>,
}
/// What one party of a training session over QUIC brings besides the plan.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartyFiles<'a> {
    /// The party's data directory, where it finds the files its [`OwnerData`] names (a data
    /// owner's and the predicting party's; `None` for every other party).
    pub data: Option<&'a Path>,
    /// A server's checkpoint directory (the plan says how often to write): the server writes
    /// `DIR/<server>/step-<n>.npz` and nothing else.
    pub checkpoint: Option<&'a Path>,
    /// Start a new session in a checkpoint directory that holds checkpoints (deleting them).
    pub force: bool,
    /// The party's weights file: the model owner's first weights (the init program's inputs
    /// that are its own), or a data owner's frozen layers ([`OwnerData::features`]).
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
    /// Compiles the session of network `kind` with recipe `cfg`: the zoo's data owner
    /// (`client`) gives the first `train_images` MNIST training images and predicts the first
    /// `test_images` test images ([`TrainingPlan::of_session`] of the network).
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
        let session = SessionSpec {
            name: format!("network {kind}"),
            cfg: *cfg,
            train_images,
            order: StepOrder::Pooled,
            owners: vec![OwnerData::mnist(
                CLIENT,
                Split::Train,
                train_images,
                IMAGE,
                Some(LABELS),
            )],
            test: OwnerData::mnist(CLIENT, Split::Test, test_images, IMAGE, None),
            eval_batch,
            spec,
            loss: spec
                .reveal_loss
                .then(|| shareflow_graphs::zoo_train::LOSS.to_string()),
            reveal_to: reveal_to.map(str::to_string),
        };
        let network: Network = kind.network();
        TrainingPlan::of_session(&network, &training, protocol, options, session)
    }

    /// Compiles the session of the training graph `training` whose predictions and reveal are
    /// `graphs`' (any [`SessionGraphs`]), with the recipe, data and reveal of `s`.
    pub fn of_session(
        graphs: &dyn SessionGraphs,
        training: &Graph,
        protocol: ProtocolKind,
        options: CompileOptions,
        s: SessionSpec,
    ) -> Result<TrainingPlan> {
        let test_images = s.test.examples.1.saturating_sub(s.test.examples.0);
        let eval_batch = s.eval_batch.max(1).min(test_images.max(1));
        let (graph, input) = graphs.prediction(eval_batch)?;
        let mut predict = vec![compile(&graph, protocol, options)?];
        let rest = test_images % eval_batch;
        if rest > 0 {
            predict.push(compile(&graphs.prediction(rest)?.0, protocol, options)?);
        }
        let reveal = match &s.reveal_to {
            Some(to) => Some(compile(&graphs.reveal_to(to)?, protocol, options)?),
            None => None,
        };
        let mut test = s.test;
        test.input = input;
        let cfg = s.cfg;
        Ok(TrainingPlan {
            format: PLAN_FORMAT.into(),
            name: s.name,
            epochs: cfg.epochs,
            batch: cfg.batch,
            lr: cfg.lr,
            momentum: cfg.momentum,
            seed: cfg.seed,
            train_images: s.train_images,
            order: s.order,
            owners: s.owners,
            test,
            test_images,
            eval_batch,
            init: compile_init(training, protocol, options)?,
            step: compile(training, protocol, options)?,
            predict,
            spec: s.spec,
            loss: s.loss,
            reveal,
            reveal_to: s.reveal_to,
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

    /// The steps of the recipe, in the plan's [`StepOrder`].
    pub fn schedule(&self) -> Vec<ScheduledStep> {
        match self.order {
            StepOrder::Pooled => schedule(self.train_images, &self.config()),
            StepOrder::Shards { owners } => {
                super::joint::shard_schedule(owners, self.train_images, &self.config())
            }
        }
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
/// (`files`: a data owner's or the predicting party's data directory, whose files its
/// [`OwnerData`] names and of which it reads only its own examples; a weights file; a server's
/// checkpoint directory). `on_run` sees every run's result as it finishes.
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
    let own: Vec<&OwnerData> = plan.owners.iter().filter(|d| d.party == party).collect();
    let predicts = plan.test.party == party && plan.test_images > 0;
    let dir = match (own.is_empty() && !predicts, files.data) {
        (true, _) => None,
        (false, Some(dir)) => Some(dir),
        (false, None) => {
            return Err(RuntimeError::Node {
                node: format!("party {party}"),
                message: "the plan reads data of this party: give its data directory \
                          (--data DIR)"
                    .into(),
            })
        }
    };
    let train: Vec<(&OwnerData, OwnerExamples)> = match dir {
        Some(dir) => own
            .into_iter()
            .map(|d| Ok((d, d.load(dir)?)))
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let test = match dir {
        Some(dir) if predicts => Some(plan.test.load(dir)?),
        _ => None,
    };
    let init = own_init_inputs(plan, party, files.init_weights)?;
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
    let takes_rate = plan.step.parameter_parties(LEARNING_RATE).contains(&party);
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
                let mut inputs = HashMap::new();
                for (d, examples) in &train {
                    inputs.extend(d.inputs(examples, files.init_weights, &s.indices)?);
                }
                if takes_rate {
                    inputs.extend(super::learning_rate_input(s));
                }
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
                let inputs = match &test {
                    Some(examples) => {
                        let first = plan.test.examples.0 + start_image;
                        let indices: Vec<usize> = (first..first + size).collect();
                        plan.test.inputs(examples, files.init_weights, &indices)?
                    }
                    None => HashMap::new(),
                };
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

/// The inputs of the init program that are `party`'s own (the model owner's first weights),
/// from its weights file, each checked for its shape.
fn own_init_inputs(
    plan: &TrainingPlan,
    party: &str,
    weights: Option<&Weights>,
) -> Result<HashMap<String, ArrayD<f32>>> {
    let mine: Vec<_> = plan
        .init
        .inputs
        .iter()
        .filter(|i| i.party == party)
        .collect();
    if mine.is_empty() {
        return Ok(HashMap::new());
    }
    let Some(w) = weights else {
        return Err(RuntimeError::Node {
            node: format!("party {party}"),
            message: format!(
                "the plan takes the first weights of {} from this party: give them \
                 (--weights FILE.npz)",
                plan.name
            ),
        });
    };
    mine.into_iter()
        .map(|i| {
            let a = w.arrays.get(&i.name).ok_or_else(|| RuntimeError::Node {
                node: format!("party {party}"),
                message: format!(
                    "the initial weights (--weights) of {} need {:?} of shape {:?}",
                    plan.name, i.name, i.shape
                ),
            })?;
            if a.shape() != i.shape.as_slice() {
                return Err(RuntimeError::Node {
                    node: format!("party {party}"),
                    message: format!(
                        "array {:?} of the initial weights (--weights) has shape {:?}, {} \
                         expects {:?}",
                        i.name,
                        a.shape(),
                        plan.name,
                        i.shape
                    ),
                });
            }
            Ok((i.name.clone(), a.clone()))
        })
        .collect()
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

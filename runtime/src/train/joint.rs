//! Joint training on several data owners' data ([`shareflow_graphs::joint`]): the owners
//! secret-share their parts of every batch (their own rows, or their columns of the same
//! rows), the graph joins them with `concat`, and the servers train one model on the joined
//! batch, which no party sees. [`train_private`] runs it under a protocol, [`train_plain`] the
//! same graph in plaintext on the same batches (the reference).
//!
//! The batches: with [`Split::Rows`] owner `k` holds the `k`-th contiguous shard of the
//! examples, shuffles it every epoch (from the seed and `k`) and gives its share of every
//! batch ([`Joint::parts`]); an epoch has as many steps as the owner with the fewest batches
//! allows. With [`Split::Columns`] every owner holds every row, and the batches are the pooled
//! data's ([`crate::plain::train::schedule`]).

use std::collections::HashMap;
use std::f32::consts::PI;
use std::ops::Range;

use ndarray::{ArrayD, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use shareflow_compiler::{CompileOptions, ProtocolKind};
use shareflow_graphs::joint::{input_name, Joint, Split};
use shareflow_graphs::zoo::{CLIENT, IMAGE, MODEL_OWNER};
use shareflow_graphs::zoo_train::{TrainSpec, LABELS, LEARNING_RATE};
use shareflow_graphs::Graph;

use super::owner_data::OwnerData;
use super::quic::{SessionSpec, StepOrder, TrainingPlan};
use super::{run_steps, PrivateModel, SessionGraphs, StepReport};
use crate::data::{Mnist, Split as DataSplit, Weights};
use crate::exec::serving::Inputs;
use crate::plain::train::{learning_rate, one_hot, schedule, ScheduledStep, TrainConfig};
use crate::plain::Session;
use crate::{Result, RuntimeError};

/// The session graphs of a joint training session: predictions of the client's images, the
/// reveal of every parameter to the model owner.
pub struct JointGraphs(pub Joint);

impl SessionGraphs for JointGraphs {
    fn prediction(&self, n: usize) -> Result<(Graph, String)> {
        Ok((self.0.prediction(n)?.graph, IMAGE.to_string()))
    }
    fn reveal(&self) -> Result<Graph> {
        Ok(self.0.reveal()?)
    }
}

/// The examples of owner `k` (from 0) of `owners` when `n` are split by rows: contiguous
/// shards, the first ones one larger when `owners` does not divide `n`.
pub fn shard(n: usize, owners: usize, k: usize) -> Range<usize> {
    let sizes = shareflow_graphs::joint::split_evenly(n, owners);
    let start: usize = sizes[..k.min(sizes.len())].iter().sum();
    start..start + sizes.get(k).copied().unwrap_or(0)
}

/// The steps of joint training on `n` examples with `cfg`; each step's `indices` are the
/// owners' rows in owner order ([`Split::Rows`]) or the rows every owner gives its columns of
/// ([`Split::Columns`]).
pub fn joint_schedule(j: &Joint, n: usize, cfg: &TrainConfig) -> Vec<ScheduledStep> {
    match j.split {
        Split::Columns => schedule(n, cfg),
        Split::Rows => shard_schedule(j.owners, n, cfg),
    }
}

/// The steps of training on `n` examples split by rows among `owners`: owner `k` holds the
/// `k`-th contiguous [`shard`], shuffles it every epoch (from the seed and `k`) and gives its
/// part of every batch (the batch split evenly, the first owners one more); each step's
/// `indices` are the owners' rows in owner order.
pub fn shard_schedule(owners: usize, n: usize, cfg: &TrainConfig) -> Vec<ScheduledStep> {
    let parts = shareflow_graphs::joint::split_evenly(cfg.batch, owners);
    let shards: Vec<Range<usize>> = (0..owners).map(|k| shard(n, owners, k)).collect();
    let per_epoch = shards
        .iter()
        .zip(&parts)
        .map(|(s, &p)| s.len() / p.max(1))
        .min()
        .unwrap_or(0);
    let total = per_epoch * cfg.epochs;
    let mut rngs: Vec<ChaCha20Rng> = (0..owners)
        .map(|k| ChaCha20Rng::seed_from_u64(cfg.seed ^ 0x5eed ^ ((k as u64 + 1) << 32)))
        .collect();
    let mut steps = Vec::with_capacity(total);
    for epoch in 0..cfg.epochs {
        let orders: Vec<Vec<usize>> = shards
            .iter()
            .zip(rngs.iter_mut())
            .map(|(s, rng)| {
                let mut o: Vec<usize> = s.clone().collect();
                o.shuffle(rng);
                o
            })
            .collect();
        for b in 0..per_epoch {
            let step = steps.len();
            let mut indices = Vec::with_capacity(cfg.batch);
            for (order, &p) in orders.iter().zip(&parts) {
                indices.extend_from_slice(&order[b * p..(b + 1) * p]);
            }
            let lr = cfg.lr * 0.5 * (1.0 + (PI * step as f32 / total as f32).cos());
            steps.push(ScheduledStep {
                epoch,
                step,
                lr,
                indices,
            });
        }
    }
    steps
}

/// Every owner's inputs of `step` (by party, then name): its rows' images and one-hot labels,
/// or its columns of the rows' images (and the labels, for owner 1).
pub fn owner_inputs(j: &Joint, data: &Mnist, step: &ScheduledStep) -> Result<Inputs> {
    if let Some(&i) = step.indices.iter().find(|&&i| i >= data.len()) {
        return Err(RuntimeError::Node {
            node: "joint training".into(),
            message: format!("example {i} is beyond the {} images", data.len()),
        });
    }
    let labels = |idx: &[usize]| one_hot(&idx.iter().map(|&i| data.labels[i]).collect::<Vec<_>>());
    let parts = j.parts(step.indices.len());
    let mut inputs = Inputs::new();
    let mut at = 0;
    for (k, (owner, &p)) in j.owner_names().iter().zip(&parts).enumerate() {
        let mut mine: HashMap<String, ArrayD<f32>> = HashMap::new();
        match j.split {
            Split::Rows => {
                let rows = &step.indices[at..at + p];
                mine.insert(input_name(owner, IMAGE), data.gather(rows));
                mine.insert(input_name(owner, LABELS), labels(rows)?);
            }
            Split::Columns => {
                let images = data.gather(&step.indices);
                let cols = images.slice_axis(Axis(2), (at..at + p).into()).to_owned();
                mine.insert(input_name(owner, IMAGE), cols);
                if k == 0 {
                    mine.insert(input_name(owner, LABELS), labels(&step.indices)?);
                }
            }
        }
        at += p;
        inputs.insert(owner.clone(), mine);
    }
    Ok(inputs)
}

fn spec(cfg: &TrainConfig) -> TrainSpec {
    TrainSpec {
        seed: cfg.seed,
        momentum: cfg.momentum,
        reveal_loss: false,
    }
}

/// The training graph, or an error if `data` has no whole step.
fn graph(j: &Joint, data: &Mnist, cfg: &TrainConfig) -> Result<(Graph, Vec<ScheduledStep>)> {
    let steps = joint_schedule(j, data.len(), cfg);
    if steps.is_empty() {
        return Err(RuntimeError::Node {
            node: "joint training".into(),
            message: format!(
                "{} images split among {} owners make no batch of {}",
                data.len(),
                j.owners,
                cfg.batch
            ),
        });
    }
    Ok((j.training(cfg.batch, &spec(cfg))?.graph, steps))
}

/// Trains `j` in plaintext with the same graph and batches as [`train_private`] (the first
/// `stop_after` steps if given); returns the parameters.
pub fn train_plain(
    j: &Joint,
    data: &Mnist,
    cfg: &TrainConfig,
    stop_after: Option<usize>,
) -> Result<Weights> {
    let (graph, steps) = graph(j, data, cfg)?;
    let mut session = Session::new(graph, &HashMap::new())?;
    let end = stop_after.unwrap_or(steps.len()).min(steps.len());
    for s in &steps[..end] {
        let mut inputs: HashMap<String, ArrayD<f32>> =
            owner_inputs(j, data, s)?.into_values().flatten().collect();
        inputs.insert(LEARNING_RATE.to_string(), learning_rate(s.lr));
        session.run(&inputs)?;
    }
    session.weights(&j.kind.layers().params())
}

/// Trains `j` privately under `protocol` on the owners' parts of `data` with `cfg` (the first
/// `stop_after` steps if given); `report` sees every step.
pub fn train_private(
    j: &Joint,
    data: &Mnist,
    cfg: &TrainConfig,
    protocol: ProtocolKind,
    options: CompileOptions,
    stop_after: Option<usize>,
    report: impl FnMut(StepReport),
) -> Result<PrivateModel> {
    let (graph, steps) = graph(j, data, cfg)?;
    let mut model = PrivateModel::start(
        &graph,
        Box::new(JointGraphs(*j)),
        protocol,
        options,
        &Inputs::new(),
    )?;
    run_steps(
        &mut model,
        &steps,
        stop_after,
        |s| owner_inputs(j, data, s),
        report,
    )?;
    Ok(model)
}

/// The plan of joint training `j` over QUIC ([`TrainingPlan::of_session`] of [`JointGraphs`]):
/// every owner a process that reads from its own data directory the MNIST training images it
/// holds (its shard of the first `train_images` with [`Split::Rows`], its columns of them with
/// [`Split::Columns`]) and gives its part of every batch; the client predicts the first
/// `test_images` test images in batches of `eval_batch`; the weights are revealed to the model
/// owner if `reveal`.
#[allow(clippy::too_many_arguments)]
pub fn quic_plan(
    j: &Joint,
    train_images: usize,
    test_images: usize,
    cfg: &TrainConfig,
    protocol: ProtocolKind,
    options: CompileOptions,
    eval_batch: usize,
    reveal: bool,
) -> Result<TrainingPlan> {
    if joint_schedule(j, train_images, cfg).is_empty() {
        return Err(RuntimeError::Node {
            node: "joint training".into(),
            message: format!(
                "{train_images} images split among {} owners make no batch of {}",
                j.owners, cfg.batch
            ),
        });
    }
    let parts = j.parts(cfg.batch);
    let mut owners = Vec::new();
    let mut at = 0;
    for (k, (name, &p)) in j.owner_names().iter().zip(&parts).enumerate() {
        let mut d = OwnerData::mnist(
            name,
            DataSplit::Train,
            train_images,
            &input_name(name, IMAGE),
            None,
        );
        match j.split {
            Split::Rows => {
                let s = shard(train_images, j.owners, k);
                d.examples = (s.start, s.end);
                d.rows = Some((at, at + p));
                d.labels = Some((input_name(name, LABELS), 10));
            }
            Split::Columns => {
                d.columns = Some((at, at + p));
                if k == 0 {
                    d.labels = Some((input_name(name, LABELS), 10));
                }
            }
        }
        at += p;
        owners.push(d);
    }
    let session = SessionSpec {
        name: format!("joint {} ({:?}, {} owners)", j.kind, j.split, j.owners),
        cfg: *cfg,
        train_images,
        order: match j.split {
            Split::Rows => StepOrder::Shards { owners: j.owners },
            Split::Columns => StepOrder::Pooled,
        },
        owners,
        test: OwnerData::mnist(CLIENT, DataSplit::Test, test_images, IMAGE, None),
        eval_batch,
        spec: Default::default(),
        loss: None,
        reveal_to: reveal.then(|| MODEL_OWNER.to_string()),
    };
    let graph = j.training(cfg.batch, &spec(cfg))?.graph;
    TrainingPlan::of_session(&JointGraphs(*j), &graph, protocol, options, session)
}

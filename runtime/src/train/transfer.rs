//! Transfer learning with a private fine-tune ([`shareflow_graphs::transfer`]): the model
//! owner pre-trains a network in plaintext on its public data ([`pretrain`]), then the
//! servers fine-tune its classifier on a data owner's private data with the feature layers
//! frozen ([`fine_tune_private`]), either on shares ([`FrozenFeatures::OnShares`]: the model
//! owner secret-shares the frozen weights at init, the data owner its images every step) or at
//! the data owner ([`FrozenFeatures::AtOwner`]: it computes the features in plaintext with the
//! frozen weights, which it then holds in the clear, and secret-shares only the features).
//! [`fine_tune_plain`] runs the same fine-tuning graph in plaintext (the reference), and
//! [`train_from_scratch`] trains every layer privately from seeded values (the comparison).

use std::collections::HashMap;
use std::time::Instant;

use ndarray::{ArrayD, Axis};
use shareflow_compiler::{CompileOptions, ProtocolKind};
use shareflow_graphs::nn::ParamSpec;
use shareflow_graphs::transfer::{FrozenFeatures, Transfer, FEATURES};
use shareflow_graphs::zoo::{CLIENT, IMAGE, MODEL_OWNER};
use shareflow_graphs::zoo_train::{TrainSpec, LABELS, LEARNING_RATE};
use shareflow_graphs::Graph;

use super::owner_data::{FeatureLayers, OwnerData};
use super::quic::{SessionSpec, StepOrder, TrainingPlan};
use super::{run_steps, PrivateModel, SessionGraphs, StepReport, StepSpec};
use crate::data::{Mnist, Split, Weights};
use crate::exec::serving::Inputs;
use crate::plain::train::{learning_rate, one_hot_of, schedule, TrainConfig};
use crate::plain::{forward, Session};
use crate::{Result, RuntimeError};

/// The session graphs of a transfer-learning session: predictions from images
/// ([`FrozenFeatures::OnShares`]) or from features ([`FrozenFeatures::AtOwner`]), and the
/// reveal of `reveal` to the model owner.
pub struct TransferGraphs {
    /// The split network.
    pub transfer: Transfer,
    /// What predictions take: images, or the data owner's features.
    pub input: FrozenFeatures,
    /// The parameters the reveal opens to the model owner.
    pub reveal: Vec<ParamSpec>,
}

impl SessionGraphs for TransferGraphs {
    fn prediction(&self, n: usize) -> Result<(Graph, String)> {
        let name = match self.input {
            FrozenFeatures::OnShares => IMAGE,
            FrozenFeatures::AtOwner => FEATURES,
        };
        Ok((
            self.transfer.prediction(n, self.input)?.graph,
            name.to_string(),
        ))
    }
    fn reveal(&self) -> Result<Graph> {
        Ok(self.transfer.reveal(&self.reveal)?)
    }
}

fn spec(cfg: &TrainConfig) -> TrainSpec {
    TrainSpec {
        seed: cfg.seed,
        momentum: cfg.momentum,
        reveal_loss: false,
    }
}

/// Checks that `data` has at least one batch of `cfg`.
fn enough(data: &Mnist, cfg: &TrainConfig) -> Result<()> {
    if data.len() < cfg.batch.max(1) {
        return Err(RuntimeError::Node {
            node: "transfer learning".into(),
            message: format!(
                "{} images are fewer than one batch of {}",
                data.len(),
                cfg.batch
            ),
        });
    }
    Ok(())
}

/// The model owner's plaintext training of every layer of `t` on `data` (labels below
/// `t.classes`) with `cfg`; calls `progress(step, steps)` after every step.
pub fn pretrain(
    t: Transfer,
    data: &Mnist,
    cfg: &TrainConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<Weights> {
    enough(data, cfg)?;
    let model = t.training(cfg.batch, &spec(cfg))?;
    let mut session = Session::new(model.graph, &HashMap::new())?;
    let steps = schedule(data.len(), cfg);
    for s in &steps {
        let mut inputs = HashMap::from([
            (IMAGE.to_string(), data.gather(&s.indices)),
            (LABELS.to_string(), labels(t, data, &s.indices)?),
        ]);
        inputs.insert(LEARNING_RATE.to_string(), learning_rate(s.lr));
        session.run(&inputs)?;
        progress(s.step + 1, steps.len());
    }
    session.weights(&model.params)
}

/// One-hot labels `[n, classes]` of the examples `indices`.
fn labels(t: Transfer, data: &Mnist, indices: &[usize]) -> Result<ArrayD<f32>> {
    let l = indices
        .iter()
        .map(|&i| {
            data.labels
                .get(i)
                .copied()
                .ok_or_else(|| RuntimeError::Node {
                    node: "transfer learning".into(),
                    message: format!("example {i} is beyond the {} images", data.len()),
                })
        })
        .collect::<Result<Vec<u8>>>()?;
    one_hot_of(&l, t.classes)
}

/// The data owner's features of `images` `[n, 28, 28, 1]`: the feature layers with the frozen
/// `weights`, in plaintext, in batches of at most `batch`; `[n, feature_size]`.
pub fn features(
    t: Transfer,
    weights: &Weights,
    images: &ArrayD<f32>,
    batch: usize,
) -> Result<ArrayD<f32>> {
    let n = images.shape().first().copied().unwrap_or(0);
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        let size = batch.max(1).min(n - start);
        let model = t.feature_graph(size)?;
        let mut inputs = HashMap::new();
        for p in &model.params {
            inputs.insert(p.name.clone(), weights.get(&p.name, &p.shape)?.clone());
        }
        let slice = images.slice_axis(Axis(0), (start..start + size).into());
        inputs.insert(IMAGE.to_string(), slice.to_owned());
        let eval = forward(&model.graph, &inputs)?;
        parts.push(eval.value(&model.graph, model.logits)?.clone());
        start += size;
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    if views.is_empty() {
        return Ok(ArrayD::zeros(vec![0, t.kind.feature_size()]));
    }
    ndarray::concatenate(Axis(0), &views).map_err(|e| RuntimeError::Node {
        node: FEATURES.into(),
        message: e.to_string(),
    })
}

/// The data owner's inputs of a fine-tuning step on the examples `indices`: the images
/// ([`FrozenFeatures::OnShares`]) or their features computed with the frozen `weights`
/// ([`FrozenFeatures::AtOwner`]), and one-hot labels.
pub fn owner_batch(
    t: Transfer,
    frozen: FrozenFeatures,
    weights: &Weights,
    data: &Mnist,
    indices: &[usize],
) -> Result<HashMap<String, ArrayD<f32>>> {
    let images = data.gather(indices);
    let (name, x) = match frozen {
        FrozenFeatures::OnShares => (IMAGE, images),
        FrozenFeatures::AtOwner => (FEATURES, features(t, weights, &images, indices.len())?),
    };
    Ok(HashMap::from([
        (name.to_string(), x),
        (LABELS.to_string(), labels(t, data, indices)?),
    ]))
}

/// The first values the model owner gives the fine-tuning graph: the pre-trained classifier,
/// and the frozen feature layers if they run on shares.
pub fn owner_values(
    t: Transfer,
    frozen: FrozenFeatures,
    weights: &Weights,
) -> Result<HashMap<String, ArrayD<f32>>> {
    let mut params = t.classifier_params();
    if frozen == FrozenFeatures::OnShares {
        params.extend(t.feature_params());
    }
    params
        .iter()
        .map(|p| Ok((p.name.clone(), weights.get(&p.name, &p.shape)?.clone())))
        .collect()
}

/// Fine-tunes the classifier of `t` in plaintext with the same graph as the private
/// fine-tune, from the pre-trained `weights`, on `data` with `cfg` (the first `stop_after`
/// steps if given). Returns every variable of the graph's parameters after the last step (the
/// frozen ones included, when they are variables).
pub fn fine_tune_plain(
    t: Transfer,
    frozen: FrozenFeatures,
    weights: &Weights,
    data: &Mnist,
    cfg: &TrainConfig,
    stop_after: Option<usize>,
) -> Result<Weights> {
    enough(data, cfg)?;
    let model = t.fine_tuning(cfg.batch, frozen, cfg.momentum)?;
    let mut session = Session::new(model.graph, &owner_values(t, frozen, weights)?)?;
    let steps = schedule(data.len(), cfg);
    let end = stop_after.unwrap_or(steps.len()).min(steps.len());
    for s in &steps[..end] {
        let mut inputs = owner_batch(t, frozen, weights, data, &s.indices)?;
        inputs.insert(LEARNING_RATE.to_string(), learning_rate(s.lr));
        session.run(&inputs)?;
    }
    let mut params = t.classifier_params();
    if frozen == FrozenFeatures::OnShares {
        params.extend(t.feature_params());
    }
    session.weights(&params)
}

/// Fine-tunes the classifier of `t` privately under `protocol`, from the model owner's
/// pre-trained `weights`, on the data owner's `data` with `cfg` (the first `stop_after` steps
/// if given). `report` sees every step and the milliseconds the data owner spent computing
/// its features in plaintext (0 on shares). The session reveals the classifier only.
#[allow(clippy::too_many_arguments)]
pub fn fine_tune_private(
    t: Transfer,
    frozen: FrozenFeatures,
    weights: &Weights,
    data: &Mnist,
    cfg: &TrainConfig,
    protocol: ProtocolKind,
    options: CompileOptions,
    stop_after: Option<usize>,
    mut report: impl FnMut(StepReport, f64),
) -> Result<PrivateModel> {
    enough(data, cfg)?;
    let model = t.fine_tuning(cfg.batch, frozen, cfg.momentum)?;
    let graphs = TransferGraphs {
        transfer: t,
        input: frozen,
        reveal: t.classifier_params(),
    };
    let init = Inputs::from([(MODEL_OWNER.to_string(), owner_values(t, frozen, weights)?)]);
    let mut private =
        PrivateModel::start(&model.graph, Box::new(graphs), protocol, options, &init)?;
    let steps = schedule(data.len(), cfg);
    let owner_ms = std::cell::Cell::new(0.0);
    run_steps(
        &mut private,
        &steps,
        stop_after,
        |s| {
            let started = Instant::now();
            let batch = owner_batch(t, frozen, weights, data, &s.indices)?;
            owner_ms.set(started.elapsed().as_secs_f64() * 1e3);
            Ok(Inputs::from([(CLIENT.to_string(), batch)]))
        },
        |r| {
            report(
                r,
                if frozen == FrozenFeatures::AtOwner {
                    owner_ms.get()
                } else {
                    0.0
                },
            )
        },
    )?;
    Ok(private)
}

/// Trains every layer of `t` privately from seeded values (the graph of [`pretrain`]) on
/// `data` with `cfg`, the first `stop_after` steps if given: the comparison of the fine-tune.
/// Predictions take images.
#[allow(clippy::too_many_arguments)]
pub fn train_from_scratch(
    t: Transfer,
    data: &Mnist,
    cfg: &TrainConfig,
    protocol: ProtocolKind,
    options: CompileOptions,
    stop_after: Option<usize>,
    report: impl FnMut(StepReport),
) -> Result<PrivateModel> {
    enough(data, cfg)?;
    let model = t.training(cfg.batch, &spec(cfg))?;
    let graphs = TransferGraphs {
        transfer: t,
        input: FrozenFeatures::OnShares,
        reveal: t.layers().params(),
    };
    let mut private = PrivateModel::start(
        &model.graph,
        Box::new(graphs),
        protocol,
        options,
        &Inputs::new(),
    )?;
    let steps = schedule(data.len(), cfg);
    run_steps(
        &mut private,
        &steps,
        stop_after,
        |s| {
            let batch = HashMap::from([
                (IMAGE.to_string(), data.gather(&s.indices)),
                (LABELS.to_string(), labels(t, data, &s.indices)?),
            ]);
            Ok(Inputs::from([(CLIENT.to_string(), batch)]))
        },
        report,
    )?;
    Ok(private)
}

/// Test accuracy of a transfer session on `test`: private predictions of the images, or of
/// their features computed by the data owner with the frozen `weights`, in batches of `batch`.
pub fn private_accuracy(
    model: &mut PrivateModel,
    t: Transfer,
    input: FrozenFeatures,
    weights: &Weights,
    test: &Mnist,
    batch: usize,
) -> Result<f64> {
    let images = test.images.clone().into_dyn();
    let examples = match input {
        FrozenFeatures::OnShares => images,
        FrozenFeatures::AtOwner => features(t, weights, &images, batch)?,
    };
    let logits = model.predict(&examples, batch)?;
    Ok(crate::plain::train::accuracy(&logits, &test.labels))
}

/// Plaintext test accuracy of `t` with `weights` (every layer) on `test`, in batches of at
/// most `batch`.
pub fn plain_accuracy(t: Transfer, weights: &Weights, test: &Mnist, batch: usize) -> Result<f64> {
    let n = test.len();
    let mut logits = ndarray::Array2::zeros((n, t.classes));
    let mut start = 0;
    while start < n {
        let size = batch.max(1).min(n - start);
        let model = t.network(size)?;
        let mut inputs = HashMap::new();
        for p in &model.params {
            inputs.insert(p.name.clone(), weights.get(&p.name, &p.shape)?.clone());
        }
        inputs.insert(IMAGE.to_string(), test.batch(start, start + size));
        let eval = forward(&model.graph, &inputs)?;
        let out = eval.value(&model.graph, model.logits)?;
        let out = shareflow_ops::plain::to_rank::<_, ndarray::Ix2>(out.view(), "logits")?;
        logits
            .slice_mut(ndarray::s![start..start + size, ..])
            .assign(&out);
        start += size;
    }
    Ok(crate::plain::train::accuracy(&logits, &test.labels))
}

/// The plan of the private fine-tune of `t` over QUIC ([`TrainingPlan::of_session`] of
/// [`TransferGraphs`]): the model owner gives the pre-trained values from its weights file at
/// init; the data owner (`client`) reads from its data directory the first `train_images`
/// MNIST training images of the `digits` (first, count; relabelled from 0), and gives every
/// step its images ([`FrozenFeatures::OnShares`]) or their features computed with the frozen
/// layers of its own weights file ([`FrozenFeatures::AtOwner`]); it predicts the first
/// `test_images` test images of the digits in batches of `eval_batch`. The classifier is
/// revealed to the model owner if `reveal`.
#[allow(clippy::too_many_arguments)]
pub fn quic_plan(
    t: Transfer,
    frozen: FrozenFeatures,
    digits: (u8, u8),
    (train_images, test_images): (usize, usize),
    cfg: &TrainConfig,
    protocol: ProtocolKind,
    options: CompileOptions,
    eval_batch: usize,
    reveal: bool,
) -> Result<TrainingPlan> {
    if train_images < cfg.batch.max(1) {
        return Err(RuntimeError::Node {
            node: "transfer learning".into(),
            message: format!(
                "{train_images} images are fewer than one batch of {}",
                cfg.batch
            ),
        });
    }
    let model = t.fine_tuning(cfg.batch, frozen, cfg.momentum)?;
    let graphs = TransferGraphs {
        transfer: t,
        input: frozen,
        reveal: t.classifier_params(),
    };
    let owner = |split, n, input: &str, labels: bool| OwnerData {
        digits: Some(digits),
        labels: labels.then(|| (LABELS.to_string(), t.classes)),
        features: (frozen == FrozenFeatures::AtOwner).then(|| FeatureLayers {
            model: t.kind.to_string(),
            classes: t.classes,
        }),
        ..OwnerData::mnist(CLIENT, split, n, input, None)
    };
    let input = match frozen {
        FrozenFeatures::OnShares => IMAGE,
        FrozenFeatures::AtOwner => FEATURES,
    };
    let variant = match frozen {
        FrozenFeatures::OnShares => "a",
        FrozenFeatures::AtOwner => "b",
    };
    let session = SessionSpec {
        name: format!("transfer {} ({variant})", t.kind),
        cfg: *cfg,
        train_images,
        order: StepOrder::Pooled,
        owners: vec![owner(Split::Train, train_images, input, true)],
        test: owner(Split::Test, test_images, input, false),
        eval_batch,
        spec: StepSpec::default(),
        loss: None,
        reveal_to: reveal.then(|| MODEL_OWNER.to_string()),
    };
    TrainingPlan::of_session(&graphs, &model.graph, protocol, options, session)
}

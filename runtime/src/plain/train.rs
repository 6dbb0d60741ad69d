//! Plaintext training and prediction of the zoo networks.
//!
//! Training runs the network's training graph ([`shareflow_graphs::zoo::ZooModel::build_training`]: forward pass,
//! the network's loss (softmax cross-entropy; sigmoid cross-entropy for P), symbolic gradients
//! and SGD with momentum as one graph) in a plaintext [`Session`], one run per step: He-normal initial kernels and zero biases from the seed, a
//! cosine learning-rate decay over all steps given as the graph's public `learning_rate`
//! parameter, mini-batches drawn from a shuffled order every epoch (a final partial batch is
//! dropped).

use std::collections::HashMap;
use std::f32::consts::PI;

use ndarray::{ArrayD, Axis, Ix2, IxDyn};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use shareflow_graphs::network::{Network, PredictionGraph};
use shareflow_graphs::nn::Params;
use shareflow_graphs::zoo::{ModelKind, IMAGE};
use shareflow_graphs::zoo_train::{LABELS, LEARNING_RATE};
use shareflow_graphs::Graph;
use shareflow_ops::plain::to_rank;

use super::dropout::dropout_masks;
use super::{forward, Evaluation, Session};
use crate::data::{Mnist, Weights};
use crate::{Result, RuntimeError};

/// Hyper-parameters of [`train`].
#[derive(Debug, Clone, Copy)]
pub struct TrainConfig {
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per SGD step (a final partial batch of an epoch is dropped).
    pub batch: usize,
    /// Initial learning rate, decayed by a cosine over all steps.
    pub lr: f32,
    /// Momentum of SGD.
    pub momentum: f32,
    /// Seeds the initial weights and the shuffling (training is then reproducible).
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 15,
            batch: 64,
            lr: 0.05,
            momentum: 0.9,
            seed: 1,
        }
    }
}

/// What [`train`] reports after every step.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The epoch of the step (from 0).
    pub epoch: usize,
    /// The steps done, 1-based.
    pub step: usize,
    /// The steps of the whole run.
    pub steps: usize,
    /// The mean loss of the step's batch.
    pub loss: f32,
}

/// The classes of MNIST.
const CLASSES: usize = 10;

/// One-hot rows `[n, 10]` of these labels, or an error naming the first label out of range.
pub fn one_hot(labels: &[u8]) -> Result<ArrayD<f32>> {
    one_hot_of(labels, CLASSES)
}

/// One-hot rows `[n, classes]` of these labels, or an error naming the first label out of
/// range.
pub fn one_hot_of(labels: &[u8], classes: usize) -> Result<ArrayD<f32>> {
    let mut out = ArrayD::zeros(IxDyn(&[labels.len(), classes]));
    for (i, &l) in labels.iter().enumerate() {
        if usize::from(l) >= classes {
            return Err(RuntimeError::Node {
                node: LABELS.into(),
                message: format!("label {l} of example {i} is not below {classes}"),
            });
        }
        out[[i, usize::from(l)]] = 1.0;
    }
    Ok(out)
}

/// One step of a training run: its epoch, number, learning rate and examples.
#[derive(Debug, Clone)]
pub struct ScheduledStep {
    /// The epoch of the step (from 0).
    pub epoch: usize,
    /// The step's index over the whole run (from 0).
    pub step: usize,
    /// The step's learning rate (after the cosine decay).
    pub lr: f32,
    /// The indices of the batch's examples in the data set.
    pub indices: Vec<usize>,
}

/// The steps of training on `n` examples with `cfg`, the same for every protocol: an order
/// shuffled every epoch from the seed, full batches (a final partial one is dropped), and the
/// learning rate decayed by a cosine over all steps.
pub fn schedule(n: usize, cfg: &TrainConfig) -> Vec<ScheduledStep> {
    let batch = cfg.batch.max(1);
    let total = (n / batch) * cfg.epochs;
    let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed ^ 0x5eed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut steps = Vec::with_capacity(total);
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks_exact(batch) {
            let step = steps.len();
            let lr = cfg.lr * 0.5 * (1.0 + (PI * step as f32 / total as f32).cos());
            steps.push(ScheduledStep {
                epoch,
                step,
                lr,
                indices: chunk.to_vec(),
            });
        }
    }
    steps
}

/// A training batch as the data owner gives it: the images of `indices` under `image` and
/// their one-hot labels under `labels`. An index beyond `data` is an error.
pub fn batch_inputs(data: &Mnist, indices: &[usize]) -> Result<HashMap<String, ArrayD<f32>>> {
    let labels = indices
        .iter()
        .map(|&i| {
            data.labels
                .get(i)
                .copied()
                .ok_or_else(|| RuntimeError::Node {
                    node: "train".into(),
                    message: format!("example {i} is beyond the {} images", data.len()),
                })
        })
        .collect::<Result<Vec<u8>>>()?;
    Ok(HashMap::from([
        (IMAGE.to_string(), data.gather(indices)),
        (LABELS.to_string(), one_hot(&labels)?),
    ]))
}

/// A learning rate as the graph's run-time parameter (a scalar).
pub fn learning_rate(lr: f32) -> ArrayD<f32> {
    ArrayD::from_elem(IxDyn(&[]), lr)
}

/// Trains network `kind` on `data`; calls `progress` after every step.
pub fn train(
    kind: ModelKind,
    data: &Mnist,
    cfg: &TrainConfig,
    progress: impl FnMut(Progress),
) -> Result<Weights> {
    train_from(kind, data, cfg, None, progress)
}

/// [`train`] from the first weights `init` (by parameter name) instead of the seeded
/// He-normal kernels, when given.
pub fn train_from(
    kind: ModelKind,
    data: &Mnist,
    cfg: &TrainConfig,
    init: Option<&Weights>,
    progress: impl FnMut(Progress),
) -> Result<Weights> {
    train_network_from(&kind.network(), data, cfg, init, progress)
}

/// Trains `network` on `data` (its training graph in a plaintext session, one run per step of
/// [`schedule`], with the step's dropout masks); calls `progress` after every step.
pub fn train_network(
    network: &Network,
    data: &Mnist,
    cfg: &TrainConfig,
    progress: impl FnMut(Progress),
) -> Result<Weights> {
    train_network_from(network, data, cfg, None, progress)
}

/// [`train_network`] from the first weights `init` (by parameter name, given by the model
/// owner) instead of the seeded He-normal kernels, when given.
pub fn train_network_from(
    network: &Network,
    data: &Mnist,
    cfg: &TrainConfig,
    init: Option<&Weights>,
    mut progress: impl FnMut(Progress),
) -> Result<Weights> {
    let steps_per_epoch = data.len() / cfg.batch.max(1);
    if steps_per_epoch == 0 {
        return Err(RuntimeError::Node {
            node: "train".into(),
            message: format!(
                "{} images are fewer than one batch of {}",
                data.len(),
                cfg.batch
            ),
        });
    }
    let (model, owners) = match init {
        Some(w) => (
            network.training(cfg.batch, cfg.momentum, false, |owner, _| {
                Params::OwnerVariables(owner)
            })?,
            w.arrays.clone().into_iter().collect(),
        ),
        None => (
            network.training(cfg.batch, cfg.momentum, false, |_, _| {
                Params::variables(cfg.seed)
            })?,
            HashMap::new(),
        ),
    };
    let loss_node = model.loss;
    let mut session = Session::new(model.graph, &owners)?;
    let schedule = schedule(data.len(), cfg);
    for s in &schedule {
        let mut inputs = batch_inputs(data, &s.indices)?;
        inputs.insert(LEARNING_RATE.to_string(), learning_rate(s.lr));
        inputs.extend(dropout_masks(&model.masks, cfg.seed, s.step));
        let eval = session.run(&inputs)?;
        let loss = eval
            .value(session.graph(), loss_node)?
            .iter()
            .next()
            .copied()
            .unwrap_or(f32::NAN);
        progress(Progress {
            epoch: s.epoch,
            step: s.step + 1,
            steps: schedule.len(),
            loss,
        });
    }
    session.weights(&model.params)
}

/// Logits `[n, 10]` of network `kind` with `weights` on `images` `[n, 28, 28, 1]`, in batches
/// of at most `batch` images.
pub fn predict(
    kind: ModelKind,
    weights: &Weights,
    images: &ArrayD<f32>,
    batch: usize,
) -> Result<ndarray::Array2<f32>> {
    predict_observed(kind, weights, images, batch, &mut |_, _| {})
}

/// [`predict`], showing `observe` every batch's graph and the values of all its nodes (for
/// figures about the hidden values, such as [`Evaluation::outside`]).
pub fn predict_observed(
    kind: ModelKind,
    weights: &Weights,
    images: &ArrayD<f32>,
    batch: usize,
    observe: &mut dyn FnMut(&Graph, &Evaluation),
) -> Result<ndarray::Array2<f32>> {
    predict_network(&kind.network(), weights, images, batch, observe)
}

/// Outputs `[n, k]` of `network` (its prediction graph, the weights as the model owner's
/// inputs) on `images` `[n, ...]`, in batches of at most `batch`, showing `observe` every
/// batch's graph and node values.
pub fn predict_network(
    network: &Network,
    weights: &Weights,
    images: &ArrayD<f32>,
    batch: usize,
    observe: &mut dyn FnMut(&Graph, &Evaluation),
) -> Result<ndarray::Array2<f32>> {
    let n = images.shape().first().copied().unwrap_or(0);
    let mut out: Option<ndarray::Array2<f32>> = None;
    let mut models: HashMap<usize, PredictionGraph> = HashMap::new();
    let mut start = 0;
    while start < n {
        let size = batch.max(1).min(n - start);
        let model = match models.entry(size) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(network.prediction(size, Params::Inputs)?)
            }
        };
        let mut inputs = HashMap::new();
        for p in &model.params {
            inputs.insert(p.name.clone(), weights.get(&p.name, &p.shape)?.clone());
        }
        let slice = images
            .slice_axis(Axis(0), (start..start + size).into())
            .to_owned();
        inputs.insert(IMAGE.to_string(), slice);
        let eval = forward(&model.graph, &inputs)?;
        observe(&model.graph, &eval);
        let logits = eval.value(&model.graph, model.logits)?;
        let logits = to_rank::<_, Ix2>(logits.view(), "logits")?;
        out.get_or_insert_with(|| ndarray::Array2::zeros((n, logits.ncols())))
            .slice_mut(ndarray::s![start..start + size, ..])
            .assign(&logits);
        start += size;
    }
    Ok(out.unwrap_or_else(|| ndarray::Array2::zeros((0, 0))))
}

/// Fraction of rows whose argmax equals the label.
pub fn accuracy(logits: &ndarray::Array2<f32>, labels: &[u8]) -> f64 {
    let correct = logits
        .outer_iter()
        .zip(labels)
        .filter(|(row, &l)| argmax(row.as_slice().unwrap_or(&[])) == l as usize)
        .count();
    correct as f64 / labels.len().max(1) as f64
}

/// Index of the largest value (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{data_dir, Split};

    /// The weights after 8 steps (A, 256 images, 2 epochs, seed 1) of the hand-written
    /// backward pass and SGD that the training graph replaced, recorded from that code: the sum
    /// and the sum of magnitudes of every parameter and its first four entries.
    const RECORDED: [(&str, f64, f64, [f32; 4]); 6] = [
        (
            "dense1/bias",
            -3.424636728e-2,
            4.204175838e-1,
            [-0.005192361, 0.0051431484, -0.0014337689, 0.0097600315],
        ),
        (
            "dense1/kernel",
            -2.522761500e1,
            4.035926200e3,
            [-0.056502998, 0.027710406, -0.12222668, -0.056099713],
        ),
        (
            "dense2/bias",
            -4.810457040e-2,
            4.432001984e-1,
            [0.0016355272, -0.005221676, -0.005838322, 0.0018039827],
        ),
        (
            "dense2/kernel",
            1.295766323e1,
            1.633179230e3,
            [-0.12375031, 0.14544716, -0.10938109, 0.12896958],
        ),
        (
            "dense3/bias",
            -9.895302355e-9,
            1.245158348e-1,
            [-0.004944292, 0.0025681749, -0.017964585, -0.001812175],
        ),
        (
            "dense3/kernel",
            3.506134702e0,
            1.258398159e2,
            [-0.044150416, -0.052484095, 0.11247789, -0.23220591],
        ),
    ];
    const RECORDED_LOSSES: [f32; 8] = [
        2.3731782, 2.2626894, 2.3470826, 2.109899, 1.9152583, 1.9034203, 1.7468772, 1.7456943,
    ];

    #[test]
    fn the_training_graph_gives_the_weights_of_the_hand_written_backward() {
        let dir = data_dir(None);
        let train_set = Mnist::load(&dir, Split::Train, Some(256)).unwrap();
        let cfg = TrainConfig {
            epochs: 2,
            ..Default::default()
        };
        let mut losses = Vec::new();
        let w = train(ModelKind::A, &train_set, &cfg, |p| losses.push(p.loss)).unwrap();
        for (got, want) in losses.iter().zip(RECORDED_LOSSES) {
            assert!((got - want).abs() < 1e-5, "loss {got} vs {want}");
        }
        assert_eq!(losses.len(), RECORDED_LOSSES.len());
        for (name, sum, abs, first) in RECORDED {
            let a = &w.arrays[name];
            let s: f64 = a.iter().map(|&v| v as f64).sum();
            let s2: f64 = a.iter().map(|&v| (v as f64).abs()).sum();
            assert!(
                (s - sum).abs() <= 1e-5 * abs.max(1.0),
                "{name}: sum {s} vs {sum}"
            );
            assert!(
                (s2 - abs).abs() <= 1e-5 * abs,
                "{name}: magnitudes {s2} vs {abs}"
            );
            for (g, f) in a.iter().zip(first) {
                assert!((g - f).abs() <= 1e-6, "{name}: {g} vs {f}");
            }
        }
    }

    #[test]
    fn training_a_on_a_small_slice_learns() {
        let dir = data_dir(None);
        let train_set = Mnist::load(&dir, Split::Train, Some(1280)).unwrap();
        let test_set = Mnist::load(&dir, Split::Test, Some(500)).unwrap();
        let cfg = TrainConfig {
            epochs: 3,
            ..Default::default()
        };
        let mut losses = Vec::new();
        let w = train(ModelKind::A, &train_set, &cfg, |p| losses.push(p.loss)).unwrap();
        assert_eq!(losses.len(), 3 * 1280 / 64);
        let first: f32 = losses[..5].iter().sum::<f32>() / 5.0;
        let last: f32 = losses[losses.len() - 5..].iter().sum::<f32>() / 5.0;
        assert!(last < first / 3.0, "loss {first} -> {last}");
        let logits = predict(ModelKind::A, &w, &test_set.images.clone().into_dyn(), 100).unwrap();
        let acc = accuracy(&logits, &test_set.labels);
        assert!(acc > 0.8, "accuracy {acc}");
        // Training is reproducible from its seed.
        let again = train(ModelKind::A, &train_set, &cfg, |_| {}).unwrap();
        assert_eq!(again, w);
    }

    #[test]
    fn training_p_on_a_small_slice_learns() {
        // P at learning rate 0.4 (its fastest plaintext recipe): the loss leaves the class
        // prior's 10 H(0.1) = 3.25 and the predictions depend on the image.
        let dir = data_dir(None);
        let train_set = Mnist::load(&dir, Split::Train, Some(1280)).unwrap();
        let test_set = Mnist::load(&dir, Split::Test, Some(500)).unwrap();
        let cfg = TrainConfig {
            epochs: 3,
            lr: 0.4,
            ..Default::default()
        };
        let mut losses = Vec::new();
        let w = train(ModelKind::P, &train_set, &cfg, |p| losses.push(p.loss)).unwrap();
        let first: f32 = losses[..5].iter().sum::<f32>() / 5.0;
        let last: f32 = losses[losses.len() - 5..].iter().sum::<f32>() / 5.0;
        assert!(last < first / 2.0, "loss {first} -> {last}");
        let logits = predict(ModelKind::P, &w, &test_set.images.clone().into_dyn(), 100).unwrap();
        let acc = accuracy(&logits, &test_set.labels);
        assert!(acc > 0.7, "accuracy {acc}");
    }
}

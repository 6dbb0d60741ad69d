//! Plaintext training and prediction of the zoo networks.
//!
//! SGD with momentum and a cosine learning-rate decay over all steps, mini-batches drawn from a
//! shuffled order every epoch (a final partial batch is dropped), He-normal initial kernels and
//! zero biases, softmax cross-entropy loss.

use std::collections::HashMap;
use std::f32::consts::PI;

use self::rand_distr_free::normal;
use ndarray::{ArrayD, Axis, Ix2, IxDyn};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use shareflow_graphs::zoo::{ModelKind, ZooModel, IMAGE};
use shareflow_graphs::Graph;
use shareflow_ops::plain::{self as k, to_rank, Sgd};

use super::{backward, forward, Evaluation};
use crate::data::{Mnist, Weights};
use crate::{Result, RuntimeError};

/// Hyper-parameters of [`train`].
#[derive(Debug, Clone, Copy)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
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
    pub epoch: usize,
    pub step: usize,
    pub steps: usize,
    pub loss: f32,
}

/// He-normal kernels (standard deviation `sqrt(2 / fan_in)`) and zero biases.
pub fn init_weights(model: &ZooModel, seed: u64) -> Weights {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut w = Weights::default();
    for p in &model.params {
        let array = if p.name.ends_with("/bias") {
            ArrayD::zeros(IxDyn(&p.shape))
        } else {
            let std = (2.0 / p.fan_in as f32).sqrt();
            ArrayD::from_shape_simple_fn(IxDyn(&p.shape), || normal(&mut rng) * std)
        };
        w.arrays.insert(p.name.clone(), array);
    }
    w
}

/// Trains network `kind` on `data`; calls `progress` after every step.
pub fn train(
    kind: ModelKind,
    data: &Mnist,
    cfg: &TrainConfig,
    mut progress: impl FnMut(Progress),
) -> Result<Weights> {
    let model = ZooModel::build(kind, cfg.batch)?;
    let mut weights = init_weights(&model, cfg.seed);
    let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed ^ 0x5eed);
    let steps_per_epoch = data.len() / cfg.batch;
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
    let total = steps_per_epoch * cfg.epochs;
    let names: Vec<String> = model.params.iter().map(|p| p.name.clone()).collect();
    let ids = names
        .iter()
        .map(|n| model.graph.find(n))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut velocity: Vec<ArrayD<f32>> = names
        .iter()
        .map(|n| ArrayD::zeros(weights.arrays[n].raw_dim()))
        .collect();
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut step = 0;
    // The graph's inputs: the parameters (updated in place) and the current batch.
    let mut inputs: HashMap<String, ArrayD<f32>> =
        std::mem::take(&mut weights.arrays).into_iter().collect();
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks_exact(cfg.batch) {
            let lr = cfg.lr * 0.5 * (1.0 + (PI * step as f32 / total as f32).cos());
            inputs.insert(IMAGE.to_string(), data.gather(chunk));
            let labels: Vec<usize> = chunk.iter().map(|&i| data.labels[i] as usize).collect();
            let eval = forward(&model.graph, &inputs)?;
            let logits = eval.value(&model.graph, model.logits)?;
            let logits2 = to_rank::<_, Ix2>(logits.view(), "logits")?;
            let (loss, dlogits) = k::softmax_cross_entropy(logits2, &labels)?;
            let grads = backward(
                &model.graph,
                &eval,
                vec![(model.logits, dlogits.into_dyn())],
                &ids,
            )?;
            drop(eval);
            let mut grads = grads;
            let mut params: Vec<ArrayD<f32>> = names
                .iter()
                .map(|n| inputs.remove(n).unwrap_or_default())
                .collect();
            let grads: Vec<ArrayD<f32>> = ids
                .iter()
                .zip(&params)
                .map(|(id, p)| {
                    grads
                        .remove(id)
                        .unwrap_or_else(|| ArrayD::zeros(p.raw_dim()))
                })
                .collect();
            Sgd::new(lr, cfg.momentum).step(&mut params, &grads, &mut velocity)?;
            for (n, p) in names.iter().zip(params) {
                inputs.insert(n.clone(), p);
            }
            step += 1;
            progress(Progress {
                epoch,
                step,
                steps: total,
                loss,
            });
        }
    }
    inputs.remove(IMAGE);
    weights.arrays = inputs.into_iter().collect();
    Ok(weights)
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
    let n = images.shape().first().copied().unwrap_or(0);
    let mut out = ndarray::Array2::zeros((n, 10));
    let mut models: HashMap<usize, ZooModel> = HashMap::new();
    let mut start = 0;
    while start < n {
        let size = batch.max(1).min(n - start);
        let model = match models.entry(size) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(ZooModel::build(kind, size)?),
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
        out.slice_mut(ndarray::s![start..start + size, ..])
            .assign(&logits);
        start += size;
    }
    Ok(out)
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

mod rand_distr_free {
    //! A standard normal sample by Box-Muller, to avoid a dependency for one function.
    use rand::Rng;

    pub fn normal(rng: &mut impl Rng) -> f32 {
        let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
        let u2: f32 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{data_dir, Split};

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
}

//! Federated averaging (FedAvg) with a secure aggregation: in every round each data owner
//! trains the global model on its own shard in plaintext ([`LocalTrainer`]), the servers
//! average the owners' updates `local - global` under the protocol ([`Aggregator`]), and the
//! model owner adds the mean to the global model, which it then hands to the owners for the
//! next round. The global model is evaluated on the test set after every round.
//!
//! An owner may miss a round (a phone that is off: [`FedConfig::absent`] is the probability,
//! drawn from the seed): it is left out, the mean is over the owners that contributed, and
//! their count is public and reported. A round nobody contributes to leaves the model as it
//! was.

use std::collections::HashMap;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use shareflow_graphs::zoo::{ModelKind, ZooModel};
use shareflow_graphs::zoo_train::TrainSpec;

use super::aggregation::{owner_name, TensorSpec};
use super::aggregator::{Aggregate, Aggregator};
use super::local::{difference, LocalConfig, LocalTrainer};
use crate::data::{Mnist, Weights};
use crate::plain::train::{accuracy, predict};
use crate::plain::Session;
use crate::{Result, RuntimeError};

/// A federation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FedConfig {
    /// The network trained.
    pub kind: ModelKind,
    /// Data owners, each with a disjoint shard of the training images.
    pub owners: usize,
    /// Federated rounds.
    pub rounds: usize,
    /// The owners' local training.
    pub local: LocalConfig,
    /// The probability that an owner misses a round (0: every owner contributes every round).
    pub absent: f64,
    /// Seeds the initial model, the shards, the owners' batches and who misses a round.
    pub seed: u64,
}

/// What one round did.
#[derive(Debug, Clone)]
pub struct RoundReport {
    /// From 1.
    pub round: usize,
    /// Owners that contributed (public).
    pub contributors: usize,
    /// Test accuracy of the global model after the round.
    pub accuracy: f64,
    /// Bytes, rounds and wall time of the secure aggregation (none if nobody contributed).
    pub aggregate: Option<Aggregate>,
    /// Time of the owners' local training (one after the other).
    pub train_ms: f64,
    /// Largest difference between the securely averaged update and the plaintext average.
    pub max_error: f32,
}

/// The tensors of network `kind` (its parameters).
pub fn tensors(trainer: &LocalTrainer) -> Vec<TensorSpec> {
    trainer
        .params()
        .iter()
        .map(|p| TensorSpec {
            name: p.name.clone(),
            shape: p.shape.clone(),
        })
        .collect()
}

/// `owners` disjoint shards of `0..n` of equal size (a shuffled order cut in pieces; the
/// remainder is left out).
pub fn shards(n: usize, owners: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha20Rng::seed_from_u64(seed ^ 0x5a4d));
    let size = n / owners.max(1);
    order
        .chunks_exact(size.max(1))
        .take(owners)
        .map(<[usize]>::to_vec)
        .collect()
}

/// The initial model: He-normal kernels from `seed` and zero biases, as `shareflow train`
/// starts.
pub fn initial_model(kind: ModelKind, seed: u64) -> Result<Weights> {
    let model = ZooModel::build_training(
        kind,
        1,
        &TrainSpec {
            seed,
            momentum: 0.0,
            reveal_loss: false,
        },
    )?;
    Session::new(model.graph, &HashMap::new())?.weights(&model.params)
}

/// The elementwise mean of `updates` (the plaintext reference of the secure aggregation).
pub fn plain_mean(updates: &[Weights]) -> Weights {
    let mut mean = Weights::default();
    let Some(first) = updates.first() else {
        return mean;
    };
    for (name, x) in &first.arrays {
        let mut sum = x.clone();
        for u in &updates[1..] {
            if let Some(y) = u.arrays.get(name) {
                sum += y;
            }
        }
        mean.arrays.insert(name.clone(), sum / updates.len() as f32);
    }
    mean
}

/// The largest absolute difference over the tensors of `a` (a tensor missing from `b` counts
/// as infinitely far).
pub fn max_abs_diff(a: &Weights, b: &Weights) -> f32 {
    a.arrays
        .iter()
        .map(|(name, x)| match b.arrays.get(name) {
            Some(y) if y.shape() == x.shape() => x
                .iter()
                .zip(y.iter())
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f32::max),
            _ => f32::INFINITY,
        })
        .fold(0.0, f32::max)
}

/// Test accuracy of `weights`.
pub fn test_accuracy(kind: ModelKind, weights: &Weights, test: &Mnist) -> Result<f64> {
    let logits = predict(kind, weights, &test.images.clone().into_dyn(), 1000)?;
    Ok(accuracy(&logits, &test.labels))
}

/// Runs `cfg.rounds` rounds of FedAvg on `train` split into `cfg.owners` shards, the updates
/// (of the network's [`tensors`]) of each round's contributors averaged by `aggregator`; calls
/// `report` after every round and returns the final global model.
pub fn federated_averaging<A: Aggregator>(
    cfg: &FedConfig,
    train: &Mnist,
    test: &Mnist,
    aggregator: &mut A,
    mut report: impl FnMut(&RoundReport),
) -> std::result::Result<Weights, A::Error> {
    let trainer = LocalTrainer::new(cfg.kind, cfg.local)?;
    let shards = shards(train.len(), cfg.owners, cfg.seed);
    if shards.len() != cfg.owners {
        return Err(RuntimeError::Node {
            node: "federation".into(),
            message: format!(
                "{} training images cannot be shared among {} owners",
                train.len(),
                cfg.owners
            ),
        }
        .into());
    }
    let mut global = initial_model(cfg.kind, cfg.seed)?;
    let mut absence = ChaCha20Rng::seed_from_u64(cfg.seed ^ 0xab5e);
    for round in 1..=cfg.rounds {
        let start = Instant::now();
        let mut contributions = Vec::with_capacity(cfg.owners);
        for (i, shard) in shards.iter().enumerate() {
            if absence.random_bool(cfg.absent.clamp(0.0, 1.0)) {
                continue;
            }
            let seed = cfg.seed ^ ((round as u64) << 32) ^ (i as u64 + 1);
            let local = trainer.train(&global, train, shard, seed)?;
            contributions.push((owner_name(i), difference(&local, &global)?));
        }
        let train_ms = start.elapsed().as_secs_f64() * 1e3;
        let contributors = contributions.len();
        let (aggregate, max_error) = if contributions.is_empty() {
            (None, 0.0)
        } else {
            let aggregate = aggregator.aggregate(&contributions)?;
            let updates: Vec<Weights> = contributions.into_iter().map(|(_, u)| u).collect();
            let max_error = max_abs_diff(&plain_mean(&updates), &aggregate.mean);
            for (name, w) in global.arrays.iter_mut() {
                let m = aggregate.mean.get(name, w.shape())?;
                *w += m;
            }
            (Some(aggregate), max_error)
        };
        report(&RoundReport {
            round,
            contributors,
            accuracy: test_accuracy(cfg.kind, &global, test)?,
            aggregate,
            train_ms,
            max_error,
        });
    }
    Ok(global)
}

/// The plaintext reference: the same initial model trained on the pooled shards for as many
/// steps as the federation's local steps in all rounds (`rounds * steps`); returns the model
/// and its test accuracy.
pub fn pooled_baseline(cfg: &FedConfig, train: &Mnist, test: &Mnist) -> Result<(Weights, f64)> {
    let local = LocalConfig {
        steps: cfg.local.steps * cfg.rounds,
        ..cfg.local
    };
    let trainer = LocalTrainer::new(cfg.kind, local)?;
    let pooled: Vec<usize> = shards(train.len(), cfg.owners, cfg.seed)
        .into_iter()
        .flatten()
        .collect();
    let global = initial_model(cfg.kind, cfg.seed)?;
    let trained = trainer.train(&global, train, &pooled, cfg.seed)?;
    let acc = test_accuracy(cfg.kind, &trained, test)?;
    Ok((trained, acc))
}

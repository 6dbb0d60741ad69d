//! A data owner's local training in plaintext: the network's training graph whose parameters
//! start from the global model the owner was handed (`ZooModel::build_training_from_client`),
//! run for a number of SGD steps on the owner's own images; the update is `local - global`.

use std::collections::HashMap;

use ndarray::ArrayD;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use shareflow_graphs::nn::ParamSpec;
use shareflow_graphs::zoo::{ModelKind, ZooModel};
use shareflow_graphs::zoo_train::LEARNING_RATE;
use shareflow_graphs::Graph;

use crate::data::{Mnist, Weights};
use crate::plain::train::{batch_inputs, learning_rate};
use crate::plain::Session;
use crate::{Result, RuntimeError};

/// Hyper-parameters of the local steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalConfig {
    /// SGD steps per round.
    pub steps: usize,
    /// Images per SGD step.
    pub batch: usize,
    /// Learning rate.
    pub lr: f32,
    /// Momentum of SGD; the velocity starts at zero every round.
    pub momentum: f32,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            steps: 10,
            batch: 64,
            lr: 0.05,
            momentum: 0.9,
        }
    }
}

/// The training graph of one network, built once and run by every owner in every round.
pub struct LocalTrainer {
    graph: Graph,
    params: Vec<ParamSpec>,
    cfg: LocalConfig,
}

impl LocalTrainer {
    /// Builds the training graph of `kind`; refuses zero steps or a zero batch.
    pub fn new(kind: ModelKind, cfg: LocalConfig) -> Result<LocalTrainer> {
        if cfg.steps == 0 || cfg.batch == 0 {
            return Err(RuntimeError::Node {
                node: "local training".into(),
                message: format!(
                    "needs at least one step of one image ({} steps of {})",
                    cfg.steps, cfg.batch
                ),
            });
        }
        let model = ZooModel::build_training_from_client(kind, cfg.batch, cfg.momentum)?;
        Ok(LocalTrainer {
            graph: model.graph,
            params: model.params,
            cfg,
        })
    }

    /// The network's parameters (the tensors an update holds).
    pub fn params(&self) -> &[ParamSpec] {
        &self.params
    }

    /// Trains `global` for the configured steps on the images `shard` of `data` (shuffled
    /// with `seed`, reshuffled whenever the steps run through them) and returns the trained
    /// weights. Errors if an index of `shard` is beyond `data`.
    pub fn train(
        &self,
        global: &Weights,
        data: &Mnist,
        shard: &[usize],
        seed: u64,
    ) -> Result<Weights> {
        if let Some(&i) = shard.iter().find(|&&i| i >= data.len()) {
            return Err(RuntimeError::Node {
                node: "local training".into(),
                message: format!("image {i} is beyond the {} images", data.len()),
            });
        }
        let start: HashMap<String, ArrayD<f32>> = global
            .arrays
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut session = Session::new(self.graph.clone(), &start)?;
        for batch in batches(shard, self.cfg.steps, self.cfg.batch, seed)? {
            let mut inputs = batch_inputs(data, &batch)?;
            inputs.insert(LEARNING_RATE.to_string(), learning_rate(self.cfg.lr));
            session.run(&inputs)?;
        }
        session.weights(&self.params)
    }
}

/// `steps` batches of `batch` indices of `shard`: consecutive slices of a shuffled order,
/// reshuffled when exhausted. Errors if the shard holds fewer images than one batch.
fn batches(shard: &[usize], steps: usize, batch: usize, seed: u64) -> Result<Vec<Vec<usize>>> {
    if shard.len() < batch {
        return Err(RuntimeError::Node {
            node: "local training".into(),
            message: format!(
                "a shard of {} images is smaller than one batch of {batch}",
                shard.len()
            ),
        });
    }
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut order = shard.to_vec();
    let mut at = order.len();
    let mut out = Vec::with_capacity(steps);
    for _ in 0..steps {
        if at + batch > order.len() {
            order.shuffle(&mut rng);
            at = 0;
        }
        out.push(order[at..at + batch].to_vec());
        at += batch;
    }
    Ok(out)
}

/// `a - b` per tensor of `a` (an error names a tensor that `b` lacks or shapes differently).
pub fn difference(a: &Weights, b: &Weights) -> Result<Weights> {
    let mut out = Weights::default();
    for (name, x) in &a.arrays {
        let y = b.get(name, x.shape())?;
        out.arrays.insert(name.clone(), x - y);
    }
    Ok(out)
}

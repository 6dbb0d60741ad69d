//! The training graph of a zoo network: the same layers as [`ZooModel::build`], with the
//! parameters as variables, softmax cross-entropy against one-hot labels, the symbolic
//! gradients and SGD with momentum, all in one graph (one training step per run).
//!
//! Inputs per step: `image` `[batch, 28, 28, 1]` and one-hot `labels` `[batch, 10]` of party
//! `client` (the data owner), the public parameter `learning_rate` `[]`. The mean loss is
//! revealed to `client` (an explicit output: the only value of the step that leaves it).

use crate::builder::GraphBuilder;
use crate::error::GraphError;
use crate::nn::{ParamSpec, Params};
use crate::optim::momentum;
use crate::zoo::{ModelKind, ZooModel, CLIENT, IMAGE, MODEL_OWNER};
use crate::{Graph, NodeId, PartyId};

/// The name of the one-hot labels input.
pub const LABELS: &str = "labels";
/// The name of the learning-rate parameter.
pub const LEARNING_RATE: &str = "learning_rate";
/// The name of the revealed loss.
pub const LOSS: &str = "loss";

/// How the training graph initialises and updates the weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainSpec {
    /// Seeds the He-normal initial kernels.
    pub seed: u64,
    /// The momentum coefficient of SGD.
    pub momentum: f32,
}

/// A zoo network's training graph, built for one batch size.
pub struct TrainingModel {
    pub kind: ModelKind,
    pub batch: usize,
    pub graph: Graph,
    pub client: PartyId,
    pub image: NodeId,
    pub labels: NodeId,
    pub learning_rate: NodeId,
    /// The mean loss before it is revealed.
    pub loss: NodeId,
    /// The output that reveals the loss to the client.
    pub loss_output: NodeId,
    /// The parameters' variables, in layer order (as [`TrainingModel::params`]).
    pub variables: Vec<NodeId>,
    /// The parameters, in layer order.
    pub params: Vec<ParamSpec>,
}

impl ZooModel {
    /// The training graph of network `kind` for batches of `batch` images.
    pub fn build_training(
        kind: ModelKind,
        batch: usize,
        spec: &TrainSpec,
    ) -> Result<TrainingModel, GraphError> {
        let layers = kind.layers();
        let g = GraphBuilder::new();
        // The same parties as the prediction graph; the model owner has nothing to give here.
        g.party(MODEL_OWNER);
        let client = g.party(CLIENT);
        let image = g.input(client, IMAGE, [batch, 28, 28, 1]);
        let labels = g.input(client, LABELS, [batch, 10]);
        let lr = g.parameter(LEARNING_RATE, []);
        let params = Params::variables(spec.seed);
        let logits = layers.apply(&g, &params, &image);
        let loss = logits.softmax_cross_entropy(&labels);
        let specs = layers.params();
        let mut vars = Vec::with_capacity(specs.len());
        for p in &specs {
            let id = g.state.borrow().graph.find(&p.name)?;
            vars.push(g.tensor(id));
        }
        let grads = g.gradients(&loss, &vars)?;
        momentum(&g, &vars, &grads, &lr, spec.momentum)?;
        let loss_output = loss.output_to(client, LOSS);
        let graph = g.build()?;
        Ok(TrainingModel {
            kind,
            batch,
            graph,
            client,
            image: image.id(),
            labels: labels.id(),
            learning_rate: lr.id(),
            loss: loss.id(),
            loss_output: loss_output.id(),
            variables: vars.iter().map(|v| v.id()).collect(),
            params: specs,
        })
    }
}

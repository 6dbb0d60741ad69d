//! A network: a layer list with its input shape and its training loss, and the graphs built
//! from it: prediction (the model owner's parameters, the client's input, the output to the
//! client), training (the parameters as variables, the loss, its gradients and SGD with
//! momentum) and reveal (the trained parameters to the model owner). The zoo networks are
//! `Network`s ([`crate::zoo::ModelKind::network`]), so the zoo and a user's model share one
//! path.
//!
//! The parties are named once here: [`MODEL_OWNER`] owns the parameters, [`CLIENT`] owns the
//! prediction input (and, in a training graph, the training data as the data owner) and is the
//! only party that receives the output.
//!
//! ```
//! use shareflow_graphs::network::Network;
//! use shareflow_graphs::nn::{Dense, Flatten, Params, ReLU, Sequential};
//!
//! let net = Network::new(
//!     [28, 28, 1],
//!     Sequential::new()
//!         .push(Flatten)
//!         .push(Dense::new("dense1", 784, 32))
//!         .push(ReLU)
//!         .push(Dense::new("dense2", 32, 10)),
//! );
//! let g = net.prediction(4, Params::Inputs).unwrap();
//! assert_eq!(g.graph.node(g.logits).unwrap().shape.dims(), &[4, 10]);
//! assert_eq!(net.parameter_count(), 784 * 32 + 32 + 32 * 10 + 10);
//! ```

use std::sync::Arc;

use crate::builder::GraphBuilder;
use crate::error::GraphError;
use crate::nn::{Layer, LayerKind, ParamSpec, Params, Residual, Scale, Sequential};
use crate::op::Init;
use crate::zoo::Loss;
use crate::zoo_train::add_training;
use crate::{Graph, NodeId, PartyId};

pub use crate::zoo::{CLIENT, IMAGE, LOGITS, MODEL_OWNER};
pub use crate::zoo_train::{LABELS, LEARNING_RATE, LOSS};

/// A layer list, the shape of one input example and the training loss.
#[derive(Debug, Clone)]
pub struct Network {
    /// The layers.
    pub layers: Sequential,
    /// The shape of one example, without the batch axis (`[28, 28, 1]` for MNIST, NHWC).
    pub input: Vec<usize>,
    /// The training loss (softmax cross-entropy unless set).
    pub loss: Loss,
}

/// The nodes one top-level layer added to a graph, with its output shape and parameters.
#[derive(Debug, Clone)]
pub struct LayerNodes {
    /// The layer's description ([`Layer::describe`]).
    pub describe: String,
    /// Its output shape (batch axis first).
    pub shape: Vec<usize>,
    /// Its parameters' element count.
    pub parameters: usize,
    /// The nodes it added (its parameter inputs included).
    pub nodes: Vec<NodeId>,
}

/// A network's prediction graph for one batch size.
#[derive(Debug, Clone)]
pub struct PredictionGraph {
    /// Examples per run.
    pub batch: usize,
    /// The graph.
    pub graph: Graph,
    /// The party that owns the parameters.
    pub model_owner: PartyId,
    /// The party that owns the input and receives the output.
    pub client: PartyId,
    /// The input node.
    pub image: NodeId,
    /// The output value before it is revealed.
    pub logits: NodeId,
    /// The output node that reveals it to the client.
    pub output: NodeId,
    /// The parameters, in layer order.
    pub params: Vec<ParamSpec>,
    /// What each top-level layer added, in order.
    pub layers: Vec<LayerNodes>,
}

/// A public dropout mask of a training graph: a run-time parameter of this name and shape,
/// each value 0 (probability `rate`) or `1 / (1 - rate)`.
#[derive(Debug, Clone, PartialEq)]
pub struct DropoutMask {
    /// The parameter's name (`<layer>/mask`).
    pub name: String,
    /// Its shape (the dropped activation's).
    pub shape: Vec<usize>,
    /// The fraction dropped.
    pub rate: f32,
}

/// A network's training graph, built for one batch size.
#[derive(Debug, Clone)]
pub struct TrainingGraph {
    /// Examples per step.
    pub batch: usize,
    /// The graph.
    pub graph: Graph,
    /// The data owner (the [`CLIENT`] party).
    pub client: PartyId,
    /// The input node.
    pub image: NodeId,
    /// The one-hot labels input.
    pub labels: NodeId,
    /// The learning-rate parameter.
    pub learning_rate: NodeId,
    /// The mean loss before it is revealed.
    pub loss: NodeId,
    /// The output that reveals the loss to the client, if asked for.
    pub loss_output: Option<NodeId>,
    /// The output that reveals each step's logits to the client, if asked for
    /// ([`StepReveals::logits`]).
    pub logits_output: Option<NodeId>,
    /// The parameters' variables, in layer order (as `params`).
    pub variables: Vec<NodeId>,
    /// The parameters, in layer order.
    pub params: Vec<ParamSpec>,
    /// The dropout masks each step is given, in layer order.
    pub masks: Vec<DropoutMask>,
}

/// What each step of a training graph reveals to the data owner ([`CLIENT`]), beyond nothing.
///
/// Both are leaks the user opts into; each is an output of the graph, named in the compiled
/// graph's outputs and in its cost report (`reveals`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepReveals {
    /// The mean loss of the batch (one number per step).
    pub loss: bool,
    /// The logits of the batch, `[batch, classes]` (under [`LOGITS`]): the data owner then
    /// computes the loss and its gradient (`sigmoid(z) - y` or `softmax(z) - y`, over the
    /// batch) in the clear from them and its own labels, and secret-shares the gradient back,
    /// as the Pond proof of concept does. Exact (no polynomial, no softmax on shares) and
    /// cheaper, but the data owner learns the model's outputs on its own examples at every
    /// step (the same as a prediction would give it). The labels stay with the data owner:
    /// only it can receive the logits.
    pub logits: bool,
}

/// How a batch normalisation was folded by [`Network::fold_batchnorm`]; the model owner
/// applies the same to the weights (`s = gamma / sqrt(var + epsilon)`).
#[derive(Debug, Clone)]
pub enum Fold {
    /// Into the linear layer `layer` before it: `kernel *= s` along its last axis,
    /// `bias = (bias - mean) * s + beta`.
    IntoLinear {
        /// The batch normalisation (its parameter names and epsilon).
        bn: crate::nn::BatchNorm,
        /// The linear layer's name.
        layer: String,
    },
    /// Into a [`Scale`] of the same name: `scale = s`, `shift = beta - mean * s`.
    IntoScale {
        /// The batch normalisation (its parameter names and epsilon).
        bn: crate::nn::BatchNorm,
    },
}

impl Network {
    /// A network over examples of shape `input` (no batch axis), trained with the softmax
    /// cross-entropy.
    pub fn new(input: impl Into<Vec<usize>>, layers: Sequential) -> Self {
        Network {
            layers,
            input: input.into(),
            loss: Loss::SoftmaxCrossEntropy,
        }
    }

    /// The same network trained with `loss`.
    pub fn with_loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }

    /// Every parameter, in layer order.
    pub fn params(&self) -> Vec<ParamSpec> {
        self.layers.params()
    }

    /// The number of parameter elements.
    pub fn parameter_count(&self) -> usize {
        self.params()
            .iter()
            .map(|p| p.shape.iter().product::<usize>())
            .sum()
    }

    fn input_shape(&self, batch: usize) -> Vec<usize> {
        let mut dims = vec![batch];
        dims.extend_from_slice(&self.input);
        dims
    }

    /// The prediction graph for batches of `batch`, with the parameters `params(model_owner)`:
    /// the client gives [`IMAGE`] and alone receives [`LOGITS`] (the last layer's output).
    pub fn prediction(
        &self,
        batch: usize,
        params: impl FnOnce(PartyId) -> Params,
    ) -> Result<PredictionGraph, GraphError> {
        let g = GraphBuilder::new();
        let model_owner = g.party(MODEL_OWNER);
        let client = g.party(CLIENT);
        let image = g.input(client, IMAGE, self.input_shape(batch));
        let params = params(model_owner);
        let mut h = image.clone();
        let mut layers = Vec::with_capacity(self.layers.layers.len());
        for layer in &self.layers.layers {
            let before = g.node_count();
            h = layer.apply(&g, &params, &h);
            let nodes = (before..g.node_count()).map(|i| NodeId(i as u32)).collect();
            layers.push(LayerNodes {
                describe: layer.describe(),
                shape: h.shape().0,
                parameters: layer
                    .params()
                    .iter()
                    .map(|p| p.shape.iter().product::<usize>())
                    .sum(),
                nodes,
            });
        }
        let output = h.output_to(client, LOGITS);
        let graph = g.build()?;
        Ok(PredictionGraph {
            batch,
            graph,
            model_owner,
            client,
            image: image.id(),
            logits: h.id(),
            output: output.id(),
            params: self.params(),
            layers,
        })
    }

    /// The training graph for batches of `batch`: the layers in training mode with the
    /// parameters `params(client)`, the loss against one-hot [`LABELS`] (a last
    /// [`crate::nn::Softmax`] is part of the softmax cross-entropy), its gradients and SGD with
    /// momentum `momentum_coefficient` at the public [`LEARNING_RATE`]. With `reveal_loss` the
    /// client receives the mean loss; otherwise nothing leaves a step.
    pub fn training(
        &self,
        batch: usize,
        momentum_coefficient: f32,
        reveal_loss: bool,
        params: impl FnOnce(PartyId, PartyId) -> Params,
    ) -> Result<TrainingGraph, GraphError> {
        let reveals = StepReveals {
            loss: reveal_loss,
            logits: false,
        };
        self.training_with(batch, momentum_coefficient, reveals, params)
    }

    /// [`Network::training`] with the step's reveals to the client given by `reveals`: with
    /// [`StepReveals::logits`], the logits are an output to the client and the loss and its
    /// gradient with respect to them are the client's own values, computed in the clear.
    pub fn training_with(
        &self,
        batch: usize,
        momentum_coefficient: f32,
        reveals: StepReveals,
        params: impl FnOnce(PartyId, PartyId) -> Params,
    ) -> Result<TrainingGraph, GraphError> {
        let mut body = self.layers.clone();
        let ends_in_softmax = body
            .layers
            .last()
            .is_some_and(|l| matches!(l.kind(), LayerKind::Softmax));
        if ends_in_softmax {
            if self.loss != Loss::SoftmaxCrossEntropy {
                return Err(GraphError::Invalid {
                    node: "softmax".into(),
                    message: format!(
                        "a network ending in a softmax trains with the softmax cross-entropy, \
                         not {:?}",
                        self.loss
                    ),
                });
            }
            body.layers.pop();
        }
        let classes = self.training_classes(&body, batch)?;
        let g = GraphBuilder::new();
        // The same parties as the prediction graph; the model owner gives the first weights
        // only when the parameters are its variables.
        let owner = g.party(MODEL_OWNER);
        let client = g.party(CLIENT);
        let image = g.input(client, IMAGE, self.input_shape(batch));
        let labels = g.input(client, LABELS, [batch, classes]);
        let params = params(owner, client);
        let logits = body.apply_training(&g, &params, &image);
        // Revealed logits: the output node's value is the client's, so the loss and the
        // gradient of the logits are computed by the client alone; the gradient flows through
        // the output unchanged and reaches the shared layers as the client's shares.
        let (logits, logits_output) = if reveals.logits {
            let out = logits.output_to(client, LOGITS);
            let id = out.id();
            (out, Some(id))
        } else {
            (logits, None)
        };
        // The loss, the gradients of the trainable variables (not the frozen ones) and SGD
        // with momentum.
        let step = add_training(&g, &logits, &labels, self.loss, momentum_coefficient)?;
        let loss_output = reveals.loss.then(|| step.loss.output_to(client, LOSS).id());
        let graph = g.build()?;
        let mut masks = Vec::new();
        for l in self.layers.flat() {
            if let LayerKind::Dropout(d) = l.kind() {
                let id = graph.find(&d.mask_name())?;
                masks.push(DropoutMask {
                    name: d.mask_name(),
                    shape: graph.node(id)?.shape.0.clone(),
                    rate: d.rate,
                });
            }
        }
        Ok(TrainingGraph {
            batch,
            graph,
            client,
            image: image.id(),
            labels: labels.id(),
            learning_rate: step.learning_rate.id(),
            loss: step.loss.id(),
            loss_output,
            logits_output,
            variables: step.variables.iter().map(|v| v.id()).collect(),
            params: self.params(),
            masks,
        })
    }

    /// The width of the training graph's output (the labels'), from a graph of `body` alone
    /// (which says first why a layer cannot train).
    fn training_classes(&self, body: &Sequential, batch: usize) -> Result<usize, GraphError> {
        let g = GraphBuilder::new();
        let client = g.party(CLIENT);
        let image = g.input(client, IMAGE, self.input_shape(batch));
        let out = body.apply_training(&g, &Params::variables(0), &image);
        if let Some(e) = g.state.borrow().error.clone() {
            return Err(e);
        }
        Ok(out.shape().dims().last().copied().unwrap_or(0))
    }

    /// The graph that reveals every parameter to the model owner under its name: the
    /// `reveal` run of a training session, the only one that opens the weights.
    pub fn reveal_graph(&self) -> Result<Graph, GraphError> {
        self.reveal_graph_to(MODEL_OWNER)
    }

    /// [`Network::reveal_graph`] with the weights going to `receiver`: the model owner or the
    /// data owner (`client`), the two parties that are not servers; any other name is refused.
    pub fn reveal_graph_to(&self, receiver: &str) -> Result<Graph, GraphError> {
        let g = GraphBuilder::new();
        let owner = g.party(MODEL_OWNER);
        let client = g.party(CLIENT);
        let to = match receiver {
            MODEL_OWNER => owner,
            CLIENT => client,
            other => {
                return Err(GraphError::OutputToUnknownParty {
                    node: "reveal".into(),
                    party: format!(
                        "{other} (the weights go to {MODEL_OWNER} or {CLIENT}, never to a server)"
                    ),
                })
            }
        };
        reveal_variables(&g, &self.params(), to);
        g.build()
    }

    /// The network with every [`crate::nn::BatchNorm`] folded away for inference: into the
    /// [`crate::nn::Dense`] or [`crate::nn::Conv2D`] right before it, or else into a [`Scale`]
    /// of its name; and how, so that the model owner folds the weights the same way.
    pub fn fold_batchnorm(&self) -> (Network, Vec<Fold>) {
        let mut folds = Vec::new();
        let layers = fold_sequential(&self.layers, &mut folds);
        (
            Network {
                layers,
                input: self.input.clone(),
                loss: self.loss,
            },
            folds,
        )
    }
}

/// Adds to `g` the session's variables `params` (their values are the session's stored
/// shares, whatever the initialiser says), each revealed to `to` under its own name: the body
/// of every reveal graph.
pub fn reveal_variables(g: &GraphBuilder, params: &[ParamSpec], to: PartyId) {
    for p in params {
        g.variable(&p.name, p.shape.clone(), Init::Zeros)
            .output_to(to, &p.name);
    }
}

fn fold_sequential(seq: &Sequential, folds: &mut Vec<Fold>) -> Sequential {
    let mut out: Vec<Arc<dyn Layer>> = Vec::with_capacity(seq.layers.len());
    for layer in &seq.layers {
        match layer.kind() {
            LayerKind::BatchNorm(bn) => {
                let before = out.last().and_then(|l| match l.kind() {
                    LayerKind::Linear { name } => Some(name.to_string()),
                    _ => None,
                });
                match before {
                    Some(name) => folds.push(Fold::IntoLinear {
                        bn: bn.clone(),
                        layer: name,
                    }),
                    None => {
                        folds.push(Fold::IntoScale { bn: bn.clone() });
                        out.push(Arc::new(Scale::new(&bn.name, bn.channels)));
                    }
                }
            }
            LayerKind::Residual(branch) => {
                out.push(Arc::new(Residual::new(fold_sequential(branch, folds))));
            }
            _ => out.push(layer.clone()),
        }
    }
    Sequential { layers: out }
}

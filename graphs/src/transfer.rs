//! Transfer learning of a zoo network: its feature layers ([`ModelKind::features`]) trained
//! on one task and frozen, its classifier ([`ModelKind::classifier`], for `classes` classes)
//! fine-tuned on another.
//!
//! The graphs, all with the parties `model-owner` and `client` (the data owner) in the zoo's
//! order, so that the programs of one session share them:
//!
//! - [`Transfer::training`]: every layer a seeded trainable variable: the plaintext
//!   pre-training, and the private training of all layers from scratch;
//! - [`Transfer::fine_tuning`]: the classifier's variables start from the model owner's
//!   pre-trained values and are trained; the feature layers are either frozen variables that
//!   the model owner secret-shares ([`FrozenFeatures::OnShares`]: the data owner's images go
//!   through them on shares) or not in the graph at all ([`FrozenFeatures::AtOwner`]: the data
//!   owner runs them in plaintext, [`Transfer::feature_graph`], and shares only the features;
//!   the frozen weights are then given to the data owner in the clear);
//! - [`Transfer::prediction`]: logits from the session's variables to the client;
//! - [`Transfer::reveal`]: the trained parameters to the model owner.

use crate::builder::GraphBuilder;
use crate::error::GraphError;
use crate::network::reveal_variables;
use crate::nn::{ParamSpec, Params, Sequential};
use crate::zoo::{ModelKind, ZooModel, CLIENT, IMAGE, LOGITS, MODEL_OWNER};
use crate::zoo_train::{add_training, TrainSpec, TrainingModel, LABELS, LOSS};
use crate::Graph;

/// The name of the features input (variant [`FrozenFeatures::AtOwner`]) and output
/// ([`Transfer::feature_graph`]).
pub const FEATURES: &str = "features";

/// Where the frozen feature layers run while the classifier is fine-tuned privately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrozenFeatures {
    /// On shares: the model owner secret-shares the frozen weights once (variables that are
    /// neither differentiated nor updated), the data owner secret-shares its images, and the
    /// servers compute the features of every batch on shares.
    OnShares,
    /// At the data owner, in plaintext: it computes the features of its images with the frozen
    /// weights, which it therefore holds in the clear, and secret-shares only the features.
    AtOwner,
}

/// A zoo network split into frozen features and a classifier for `classes` classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// The zoo network whose layers are split.
    pub kind: ModelKind,
    /// The classes of the classifier (its last dense layer's units).
    pub classes: usize,
}

impl Transfer {
    /// Every layer: the features, then the classifier.
    pub fn layers(&self) -> Sequential {
        self.kind
            .features()
            .then(self.kind.classifier(self.classes))
    }

    /// The parameters of the feature layers.
    pub fn feature_params(&self) -> Vec<ParamSpec> {
        self.kind.features().params()
    }

    /// The parameters of the classifier.
    pub fn classifier_params(&self) -> Vec<ParamSpec> {
        self.kind.classifier(self.classes).params()
    }

    /// The training graph of every layer from seeded initial values (He-normal kernels from
    /// `spec.seed`, zero biases): the client gives `image` and one-hot `labels` `[batch,
    /// classes]`.
    pub fn training(&self, batch: usize, spec: &TrainSpec) -> Result<TrainingModel, GraphError> {
        let g = GraphBuilder::new();
        g.party(MODEL_OWNER);
        let client = g.party(CLIENT);
        let image = g.input(client, IMAGE, [batch, 28, 28, 1]);
        let logits = self
            .layers()
            .apply(&g, &Params::variables(spec.seed), &image);
        self.finish(g, batch, image, logits, spec.momentum, spec.reveal_loss)
    }

    /// The fine-tuning graph: the classifier's variables start from the model owner's values
    /// (under the parameters' names) and are trained; the features are frozen variables of
    /// the model owner computed on shares, or the client's `features` input `[batch,
    /// feature_size]`, as `frozen` says.
    pub fn fine_tuning(
        &self,
        batch: usize,
        frozen: FrozenFeatures,
        momentum: f32,
    ) -> Result<TrainingModel, GraphError> {
        let g = GraphBuilder::new();
        let owner = g.party(MODEL_OWNER);
        let client = g.party(CLIENT);
        let (input, features) = match frozen {
            FrozenFeatures::OnShares => {
                let image = g.input(client, IMAGE, [batch, 28, 28, 1]);
                let f = self
                    .kind
                    .features()
                    .apply(&g, &Params::Frozen(owner), &image);
                (image, f)
            }
            FrozenFeatures::AtOwner => {
                let f = g.input(client, FEATURES, [batch, self.kind.feature_size()]);
                (f.clone(), f)
            }
        };
        let logits =
            self.kind
                .classifier(self.classes)
                .apply(&g, &Params::OwnerVariables(owner), &features);
        let mut model = self.finish(g, batch, input, logits, momentum, false)?;
        model.params = self.classifier_params();
        Ok(model)
    }

    /// The loss, gradients and update after `logits`.
    fn finish(
        &self,
        g: GraphBuilder,
        batch: usize,
        input: crate::Tensor,
        logits: crate::Tensor,
        momentum: f32,
        reveal_loss: bool,
    ) -> Result<TrainingModel, GraphError> {
        let client = g.party(CLIENT);
        let labels = g.input(client, LABELS, [batch, self.classes]);
        let step = add_training(&g, &logits, &labels, self.kind.loss(), momentum)?;
        let loss_output = reveal_loss.then(|| step.loss.output_to(client, LOSS).id());
        let graph = g.build()?;
        Ok(TrainingModel {
            batch,
            graph,
            client,
            image: input.id(),
            labels: labels.id(),
            learning_rate: step.learning_rate.id(),
            loss: step.loss.id(),
            loss_output,
            logits_output: None,
            variables: step.variables.iter().map(|v| v.id()).collect(),
            params: self.layers().params(),
            masks: Vec::new(),
        })
    }

    /// The prediction graph for `n` examples from a session's variables: the client gives
    /// images (`input` [`FrozenFeatures::OnShares`]: every layer on shares) or features
    /// ([`FrozenFeatures::AtOwner`]: the classifier only), and receives the logits `[n,
    /// classes]`. The model's `image` is the node of that input.
    pub fn prediction(&self, n: usize, input: FrozenFeatures) -> Result<ZooModel, GraphError> {
        let g = GraphBuilder::new();
        let model_owner = g.party(MODEL_OWNER);
        let client = g.party(CLIENT);
        let params = Params::variables(0);
        let (x, layers) = match input {
            FrozenFeatures::OnShares => (g.input(client, IMAGE, [n, 28, 28, 1]), self.layers()),
            FrozenFeatures::AtOwner => (
                g.input(client, FEATURES, [n, self.kind.feature_size()]),
                self.kind.classifier(self.classes),
            ),
        };
        let logits = layers.apply(&g, &params, &x);
        let output = logits.output_to(client, LOGITS);
        Ok(ZooModel {
            kind: self.kind,
            batch: n,
            graph: g.build()?,
            model_owner,
            client,
            image: x.id(),
            logits: logits.id(),
            output: output.id(),
            params: layers.params(),
        })
    }

    /// The network for `n` images with its parameters as inputs of the model owner (as
    /// [`ZooModel::build`]): the plaintext evaluation of given weights.
    pub fn network(&self, n: usize) -> Result<ZooModel, GraphError> {
        self.owner_weights_graph(n, self.layers(), LOGITS)
    }

    /// The data owner's feature extraction of `n` images: the feature layers with their
    /// parameters as inputs of the model owner, the features revealed to the client (run in
    /// plaintext by the data owner, who then holds the frozen weights). The model's `logits`
    /// are the features.
    pub fn feature_graph(&self, n: usize) -> Result<ZooModel, GraphError> {
        self.owner_weights_graph(n, self.kind.features(), FEATURES)
    }

    /// `layers` on the client's `n` images with their parameters as inputs of the model owner,
    /// the result revealed to the client as `output`.
    fn owner_weights_graph(
        &self,
        n: usize,
        layers: Sequential,
        output: &str,
    ) -> Result<ZooModel, GraphError> {
        let g = GraphBuilder::new();
        let model_owner = g.party(MODEL_OWNER);
        let client = g.party(CLIENT);
        let image = g.input(client, IMAGE, [n, 28, 28, 1]);
        let logits = layers.apply(&g, &Params::Inputs(model_owner), &image);
        let revealed = logits.output_to(client, output);
        Ok(ZooModel {
            kind: self.kind,
            batch: n,
            graph: g.build()?,
            model_owner,
            client,
            image: image.id(),
            logits: logits.id(),
            output: revealed.id(),
            params: layers.params(),
        })
    }

    /// The graph that reveals the parameters `params` of a session to the model owner.
    pub fn reveal(&self, params: &[ParamSpec]) -> Result<Graph, GraphError> {
        let g = GraphBuilder::new();
        let owner = g.party(MODEL_OWNER);
        g.party(CLIENT);
        reveal_variables(&g, params, owner);
        g.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Init, Op};

    fn c5() -> Transfer {
        Transfer {
            kind: ModelKind::C,
            classes: 5,
        }
    }

    fn count(graph: &Graph, name: &str) -> usize {
        graph.nodes().filter(|(_, n)| n.op.name() == name).count()
    }

    #[test]
    fn the_frozen_features_are_neither_differentiated_nor_updated() {
        let m = c5().fine_tuning(4, FrozenFeatures::OnShares, 0.9).unwrap();
        // Only the classifier's four parameters are trained: four velocities, eight assigns.
        assert_eq!(m.variables.len(), 4);
        assert_eq!(count(&m.graph, "assign"), 8);
        for name in ["conv1/kernel", "conv1/bias", "conv2/kernel", "conv2/bias"] {
            let id = m.graph.find(name).unwrap();
            assert!(matches!(
                m.graph.node(id).unwrap().op,
                Op::Variable {
                    trainable: false,
                    init: Init::Owner { .. },
                    ..
                }
            ));
        }
        // No backward op of the feature layers.
        for op in [
            "conv2d_backprop_input",
            "conv2d_backprop_filter",
            "maxpool_grad",
        ] {
            assert_eq!(count(&m.graph, op), 0, "{op}");
        }
        // One relu_grad: the classifier's.
        assert_eq!(count(&m.graph, "relu_grad"), 1);
        let labels = m.graph.node(m.labels).unwrap();
        assert_eq!(labels.shape.dims(), &[4, 5]);

        let b = c5().fine_tuning(4, FrozenFeatures::AtOwner, 0.9).unwrap();
        assert_eq!(count(&b.graph, "conv2d"), 0);
        assert_eq!(b.graph.node(b.image).unwrap().shape.dims(), &[4, 800]);
        assert_eq!(b.variables.len(), 4);
    }

    #[test]
    fn the_features_and_the_classifier_make_the_network() {
        for kind in ModelKind::ALL.into_iter().chain([ModelKind::P]) {
            let t = Transfer { kind, classes: 10 };
            let f = t.feature_graph(2).unwrap();
            assert_eq!(
                f.graph.node(f.logits).unwrap().shape.dims(),
                &[2, kind.feature_size()],
                "network {kind}"
            );
            assert_eq!(t.layers().params(), kind.layers().params());
        }
        let p = c5().prediction(3, FrozenFeatures::AtOwner).unwrap();
        assert_eq!(p.graph.node(p.logits).unwrap().shape.dims(), &[3, 5]);
    }
}

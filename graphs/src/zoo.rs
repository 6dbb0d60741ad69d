//! The four MNIST networks of the SecureNN paper (Wagh, Gupta, Chandran, PoPETs 2019):
//!
//! | | network | layers |
//! |---|---|---|
//! | A | SecureML | FC 784->128, ReLU, FC 128->128, ReLU, FC 128->10 |
//! | B | MiniONN | Conv 5x5 1->16 valid, MaxPool 2x2, ReLU, Conv 5x5 16->16 valid, MaxPool 2x2, ReLU, FC 256->100, ReLU, FC 100->10 |
//! | C | LeNet | Conv 5x5 1->20 valid, MaxPool 2x2, ReLU, Conv 5x5 20->50 valid, MaxPool 2x2, ReLU, FC 800->500, ReLU, FC 500->10 |
//! | D | Chameleon | Conv 5x5 1->5 stride 2 same, ReLU, FC 980->100, ReLU, FC 100->10 |
//!
//! and a fifth network without comparisons, trainable under Pond:
//!
//! | | network | layers |
//! |---|---|---|
//! | P | Pond network | Conv 5x5 1->16 stride 2 same, Sigmoid - 1/2, AvgPool 2x2, FC 784->128, Sigmoid - 1/2, FC 128->10 |
//!
//! P follows the Pond proof of concept (Morten Dahl, "Private image analysis with MPC", 2017):
//! sigmoids instead of ReLUs and average instead of max pooling, so that every layer, forward
//! and backward, is arithmetic on shares; its training loss is the sigmoid cross-entropy
//! ([`ModelKind::loss`]), whose gradient needs no softmax either. It departs from that
//! network's Keras layers (conv 32 3x3 twice, dense 6272->128) in two ways, both for training:
//!
//! - the activations are centred sigmoids, `sigmoid(x) - 1/2` ([`CentredSigmoid`]): with plain
//!   sigmoids every input of a dense layer is near 1/2, one SGD step moves the pre-activations
//!   of a unit by about a quarter of its fan-in times the step (1568 for dense1 of the Keras
//!   network), its sigmoids saturate within a few steps, and the output no longer depends on
//!   the image: the Keras network stayed at the class prior (loss 10 H(0.1), 10% accuracy)
//!   at every learning rate tried;
//! - one strided 5x5 convolution of 16 channels instead of two 3x3 of 32: a step of batch 32 of
//!   the Keras network sent 1.04 GB under Pond, a step of batch 64 of this one 196 MB.
//!
//! Every network takes `image` [batch, 28, 28, 1] (pixels / 255) from party `client`, has its
//! parameters as inputs of party `model-owner`, and reveals `logits` [batch, 10] to `client`.

use std::fmt;
use std::str::FromStr;

use crate::error::GraphError;
use crate::network::Network;
use crate::nn::{
    AvgPool2D, CentredSigmoid, Conv2D, Dense, Flatten, MaxPool2D, ParamSpec, Params, ReLU,
    Sequential,
};
use crate::types::Padding;
use crate::{Graph, NodeId, PartyId};

/// The party that owns the weights.
pub const MODEL_OWNER: &str = "model-owner";
/// The party that owns the images and receives the logits.
pub const CLIENT: &str = "client";
/// The name of the image input.
pub const IMAGE: &str = "image";
/// The name of the output.
pub const LOGITS: &str = "logits";

/// One of networks A-D of the SecureNN paper, or P.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// SecureML: three fully connected layers.
    A,
    /// MiniONN: two convolutions with max pooling, two fully connected layers.
    B,
    /// LeNet: two convolutions with max pooling, two fully connected layers.
    C,
    /// Chameleon: one strided convolution, two fully connected layers.
    D,
    /// The Pond network: centred sigmoids and average pooling, no comparison in any layer.
    P,
}

/// The loss a network is trained with (against one-hot labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Softmax cross-entropy: its gradient needs a softmax (comparisons and an exponential on
    /// shares: SecureNN only).
    SoftmaxCrossEntropy,
    /// Sigmoid cross-entropy: its gradient needs a sigmoid only (Pond and SecureNN).
    SigmoidCrossEntropy,
}

impl ModelKind {
    /// The four networks of the SecureNN paper, those of the benchmark table and of the
    /// committed weights; [`ModelKind::P`] is apart.
    pub const ALL: [ModelKind; 4] = [ModelKind::A, ModelKind::B, ModelKind::C, ModelKind::D];

    /// The paper's name of the network.
    pub fn origin(self) -> &'static str {
        match self {
            ModelKind::A => "SecureML",
            ModelKind::B => "MiniONN",
            ModelKind::C => "LeNet",
            ModelKind::D => "Chameleon",
            ModelKind::P => "Pond proof of concept (centred sigmoids, one strided convolution)",
        }
    }

    /// The training loss: the sigmoid cross-entropy for P (trainable without comparisons),
    /// the softmax cross-entropy for the others.
    pub fn loss(self) -> Loss {
        match self {
            ModelKind::P => Loss::SigmoidCrossEntropy,
            ModelKind::A | ModelKind::B | ModelKind::C | ModelKind::D => Loss::SoftmaxCrossEntropy,
        }
    }

    /// The network: the layer list over `[28, 28, 1]` images with the network's loss (every
    /// graph of a zoo network is built from it, as a user's network's).
    pub fn network(self) -> Network {
        Network::new([28, 28, 1], self.layers()).with_loss(self.loss())
    }

    /// The layer list: the feature layers, then the classifier for the ten digits.
    pub fn layers(self) -> Sequential {
        self.features().then(self.classifier(10))
    }

    /// The feature layers: every layer up to the flatten before the first dense layer (for
    /// A, the flatten alone). Frozen in transfer learning.
    pub fn features(self) -> Sequential {
        let valid = Padding::Valid;
        let pool = || MaxPool2D {
            size: [2, 2],
            stride: [2, 2],
            padding: valid,
        };
        match self {
            ModelKind::A => Sequential::new().push(Flatten),
            ModelKind::B => Sequential::new()
                .push(Conv2D::new("conv1", [5, 5], 1, 16, [1, 1], valid))
                .push(pool())
                .push(ReLU)
                .push(Conv2D::new("conv2", [5, 5], 16, 16, [1, 1], valid))
                .push(pool())
                .push(ReLU)
                .push(Flatten),
            ModelKind::C => Sequential::new()
                .push(Conv2D::new("conv1", [5, 5], 1, 20, [1, 1], valid))
                .push(pool())
                .push(ReLU)
                .push(Conv2D::new("conv2", [5, 5], 20, 50, [1, 1], valid))
                .push(pool())
                .push(ReLU)
                .push(Flatten),
            ModelKind::D => Sequential::new()
                .push(Conv2D::new("conv1", [5, 5], 1, 5, [2, 2], Padding::Same))
                .push(ReLU)
                .push(Flatten),
            ModelKind::P => Sequential::new()
                .push(Conv2D::new("conv1", [5, 5], 1, 16, [2, 2], Padding::Same))
                .push(CentredSigmoid)
                .push(AvgPool2D {
                    size: [2, 2],
                    stride: [2, 2],
                    padding: valid,
                })
                .push(Flatten),
        }
    }

    /// The length of a feature vector (the output of [`ModelKind::features`] per image).
    pub fn feature_size(self) -> usize {
        match self {
            ModelKind::A => 784,
            ModelKind::B => 256,
            ModelKind::C => 800,
            ModelKind::D => 980,
            ModelKind::P => 7 * 7 * 16,
        }
    }

    /// The classification layers after the features, ending in `classes` logits.
    pub fn classifier(self, classes: usize) -> Sequential {
        let f = self.feature_size();
        match self {
            ModelKind::A => Sequential::new()
                .push(Dense::new("dense1", f, 128))
                .push(ReLU)
                .push(Dense::new("dense2", 128, 128))
                .push(ReLU)
                .push(Dense::new("dense3", 128, classes)),
            ModelKind::B | ModelKind::D => Sequential::new()
                .push(Dense::new("dense1", f, 100))
                .push(ReLU)
                .push(Dense::new("dense2", 100, classes)),
            ModelKind::C => Sequential::new()
                .push(Dense::new("dense1", f, 500))
                .push(ReLU)
                .push(Dense::new("dense2", 500, classes)),
            ModelKind::P => Sequential::new()
                .push(Dense::new("dense1", f, 128))
                .push(CentredSigmoid)
                .push(Dense::new("dense2", 128, classes)),
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ModelKind::A => "A",
            ModelKind::B => "B",
            ModelKind::C => "C",
            ModelKind::D => "D",
            ModelKind::P => "P",
        };
        f.write_str(s)
    }
}

impl FromStr for ModelKind {
    type Err = GraphError;
    fn from_str(s: &str) -> Result<Self, GraphError> {
        match s.to_ascii_uppercase().as_str() {
            "A" => Ok(ModelKind::A),
            "B" => Ok(ModelKind::B),
            "C" => Ok(ModelKind::C),
            "D" => Ok(ModelKind::D),
            "P" => Ok(ModelKind::P),
            _ => Err(GraphError::NoSuchName {
                name: format!("model {s:?} (networks are A, B, C, D, P)"),
            }),
        }
    }
}

/// A zoo network built for one batch size.
pub struct ZooModel {
    /// Which network.
    pub kind: ModelKind,
    /// Images per prediction (the first dimension of the image input).
    pub batch: usize,
    /// The prediction graph: the client's images in, the logits out to the client.
    pub graph: Graph,
    /// The party holding the weights ([`MODEL_OWNER`]).
    pub model_owner: PartyId,
    /// The party holding the images and receiving the logits ([`CLIENT`]).
    pub client: PartyId,
    /// The image input node.
    pub image: NodeId,
    /// The logits before they are revealed.
    pub logits: NodeId,
    /// The output node that reveals the logits to the client.
    pub output: NodeId,
    /// The parameters, in layer order.
    pub params: Vec<ParamSpec>,
}

impl ZooModel {
    /// Builds network `kind` for images in batches of `batch`.
    pub fn build(kind: ModelKind, batch: usize) -> Result<ZooModel, GraphError> {
        Self::prediction_graph(kind, batch, Params::Inputs)
    }

    /// The prediction graph of network `kind` with the parameters `params(model_owner)`.
    pub(crate) fn prediction_graph(
        kind: ModelKind,
        batch: usize,
        params: impl FnOnce(PartyId) -> Params,
    ) -> Result<ZooModel, GraphError> {
        let p = kind.network().prediction(batch, params)?;
        Ok(ZooModel {
            kind,
            batch,
            graph: p.graph,
            model_owner: p.model_owner,
            client: p.client,
            image: p.image,
            logits: p.logits,
            output: p.output,
            params: p.params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_parameter_counts() {
        let expect = [
            (ModelKind::A, 118_282),
            (ModelKind::B, 33_542),
            (ModelKind::C, 431_080),
            (ModelKind::D, 99_240),
            (ModelKind::P, 102_186),
        ];
        for (kind, count) in expect {
            let m = ZooModel::build(kind, 3).unwrap();
            let params: usize = m
                .params
                .iter()
                .map(|p| p.shape.iter().product::<usize>())
                .sum();
            assert_eq!(params, count, "network {kind}");
            assert_eq!(m.graph.node(m.logits).unwrap().shape.dims(), &[3, 10]);
            assert_eq!(
                m.graph.node(m.output).unwrap().visibility,
                crate::Visibility::Private(m.client)
            );
            assert_eq!(
                m.graph.node(m.logits).unwrap().visibility,
                crate::Visibility::Shared
            );
        }
    }
}

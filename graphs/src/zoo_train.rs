//! The training graph of a zoo network: the same layers as [`ZooModel::build`], with the
//! parameters as variables, the network's loss against one-hot labels ([`ModelKind::loss`]:
//! softmax cross-entropy, or sigmoid cross-entropy for P), the symbolic gradients and SGD
//! with momentum, all in one graph (one training step per run).
//!
//! Inputs per step: `image` `[batch, 28, 28, 1]` and one-hot `labels` `[batch, 10]` of party
//! `client` (the data owner), the public parameter `learning_rate` `[]`. With
//! [`TrainSpec::reveal_loss`] the mean loss is revealed to `client` (an explicit output: the
//! only value of the step that leaves it); without, nothing leaves a step.

use crate::builder::{GraphBuilder, Tensor};
use crate::error::GraphError;
use crate::network::TrainingGraph;
use crate::nn::Params;
use crate::op::Op;
use crate::optim::momentum;
use crate::zoo::{Loss, ModelKind, ZooModel};
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
    /// Whether each step reveals the mean loss to the client.
    pub reveal_loss: bool,
}

/// A zoo network's training graph (see [`TrainingGraph`]).
pub type TrainingModel = TrainingGraph;

impl ZooModel {
    /// The training graph of network `kind` for batches of `batch` images.
    pub fn build_training(
        kind: ModelKind,
        batch: usize,
        spec: &TrainSpec,
    ) -> Result<TrainingModel, GraphError> {
        Self::training_graph(kind, batch, spec.momentum, spec.reveal_loss, |_, _| {
            Params::variables(spec.seed)
        })
    }

    /// [`ZooModel::build_training`] whose parameters start from the values the model owner
    /// gives under the parameters' names (`Init::Owner`: its inputs of the init run, secret-
    /// shared to the servers) instead of seeded He-normal kernels; `spec.seed` is unused.
    pub fn build_training_from_owner(
        kind: ModelKind,
        batch: usize,
        spec: &TrainSpec,
    ) -> Result<TrainingModel, GraphError> {
        Self::training_graph(kind, batch, spec.momentum, spec.reveal_loss, |owner, _| {
            Params::OwnerVariables(owner)
        })
    }

    /// The training graph of network `kind` whose parameters start from values the client
    /// gives under the parameters' names (`Init::Owner`): a data owner training a global model
    /// further on its own data (federated learning).
    pub fn build_training_from_client(
        kind: ModelKind,
        batch: usize,
        momentum: f32,
    ) -> Result<TrainingModel, GraphError> {
        Self::training_graph(kind, batch, momentum, false, |_, client| {
            Params::OwnerVariables(client)
        })
    }

    /// The training graph with the parameters `params(model_owner, client)`.
    fn training_graph(
        kind: ModelKind,
        batch: usize,
        momentum_coefficient: f32,
        reveal_loss: bool,
        params: impl FnOnce(PartyId, PartyId) -> Params,
    ) -> Result<TrainingModel, GraphError> {
        kind.network()
            .training(batch, momentum_coefficient, reveal_loss, params)
    }
}

/// The nodes that [`add_training`] adds.
pub struct TrainingStep {
    /// The mean loss (not revealed).
    pub loss: Tensor,
    /// The public learning-rate parameter of each step.
    pub learning_rate: Tensor,
    /// The trainable variables, in the order of the graph.
    pub variables: Vec<Tensor>,
}

/// Ends a training graph: the loss of `logits` against `labels`, its gradients with respect to
/// every trainable variable of the graph so far, and SGD with momentum (the learning rate a
/// public parameter named [`LEARNING_RATE`]). Frozen variables (`trainable: false`) are
/// neither differentiated nor updated, and no backward op runs through layers that lead to the
/// loss only from them and from the inputs.
pub fn add_training(
    g: &GraphBuilder,
    logits: &Tensor,
    labels: &Tensor,
    loss: Loss,
    momentum_coefficient: f32,
) -> Result<TrainingStep, GraphError> {
    let lr = g.parameter(LEARNING_RATE, []);
    let loss = match loss {
        Loss::SoftmaxCrossEntropy => logits.softmax_cross_entropy(labels),
        Loss::SigmoidCrossEntropy => logits.sigmoid_cross_entropy(labels),
    };
    let trainable: Vec<NodeId> = g
        .state
        .borrow()
        .graph
        .nodes()
        .filter(|(_, n)| {
            matches!(
                n.op,
                Op::Variable {
                    trainable: true,
                    ..
                }
            )
        })
        .map(|(id, _)| id)
        .collect();
    let vars: Vec<Tensor> = trainable.into_iter().map(|id| g.tensor(id)).collect();
    let grads = g.gradients(&loss, &vars)?;
    momentum(g, &vars, &grads, &lr, momentum_coefficient)?;
    Ok(TrainingStep {
        loss,
        learning_rate: lr,
        variables: vars,
    })
}

impl ZooModel {
    /// The prediction graph of network `kind` held by a training session: the parameters are
    /// the session's variables (named as in [`ZooModel::build_training`]), never revealed; the
    /// client gives the image and receives the logits.
    pub fn build_from_variables(kind: ModelKind, batch: usize) -> Result<ZooModel, GraphError> {
        Self::prediction_graph(kind, batch, |_| Params::variables(0))
    }
}

/// The graph that reveals every parameter of network `kind` to the model owner, under its
/// name: the `reveal` run of a training session, the only one that opens the weights.
pub fn reveal_graph(kind: ModelKind) -> Result<Graph, GraphError> {
    reveal_graph_to(kind, crate::zoo::MODEL_OWNER)
}

/// [`reveal_graph`] with the weights going to `receiver`: the model owner or the data owner
/// (`client`), the two parties that are not servers; any other name is refused.
pub fn reveal_graph_to(kind: ModelKind, receiver: &str) -> Result<Graph, GraphError> {
    kind.network().reveal_graph_to(receiver)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GraphBuilder, GraphError, Init};

    fn spec() -> TrainSpec {
        TrainSpec {
            seed: 1,
            momentum: 0.9,
            reveal_loss: true,
        }
    }

    #[test]
    fn training_graph_round_trips_through_json_and_draws() {
        let m = ZooModel::build_training(ModelKind::C, 2, &spec()).unwrap();
        let json = m.graph.to_json().unwrap();
        let back = crate::Graph::from_json(&json).unwrap();
        assert_eq!(back.to_json().unwrap(), json);
        assert_eq!(back.len(), m.graph.len());
        // Parameters and velocities; one assign each.
        assert_eq!(back.variable_nodes().len(), 2 * m.params.len());
        let assigns = back
            .nodes()
            .filter(|(_, n)| matches!(n.op, Op::Assign))
            .count();
        assert_eq!(assigns, 2 * m.params.len());
        let dot = back.to_dot();
        assert!(dot.contains("variable") && dot.contains("conv2d_backprop_input"));
    }

    #[test]
    fn p_trains_with_the_sigmoid_cross_entropy_and_no_comparison() {
        let count = |m: &TrainingModel, name: &str| {
            m.graph.nodes().filter(|(_, n)| n.op.name() == name).count()
        };
        let p = ZooModel::build_training(ModelKind::P, 2, &spec()).unwrap();
        assert_eq!(count(&p, "sigmoid_cross_entropy"), 1);
        for op in [
            "softmax_cross_entropy",
            "softmax",
            "relu",
            "relu_grad",
            "maxpool2d",
            "maxpool_grad",
        ] {
            assert_eq!(count(&p, op), 0, "{op} in P's training graph");
        }
        assert!(matches!(
            p.graph.node(p.loss).unwrap().op,
            Op::SigmoidCrossEntropy
        ));
        let json = p.graph.to_json().unwrap();
        assert_eq!(
            crate::Graph::from_json(&json).unwrap().to_json().unwrap(),
            json
        );
        for kind in ModelKind::ALL {
            let m = ZooModel::build_training(kind, 2, &spec()).unwrap();
            assert_eq!(count(&m, "softmax_cross_entropy"), 1, "network {kind}");
            assert_eq!(count(&m, "sigmoid_cross_entropy"), 0, "network {kind}");
        }
        // The prediction graph still ends in the logits.
        let m = ZooModel::build_from_variables(ModelKind::P, 3).unwrap();
        assert_eq!(m.graph.node(m.logits).unwrap().op, Op::Add);
        assert_eq!(m.graph.node(m.logits).unwrap().shape.dims(), &[3, 10]);
    }

    #[test]
    fn only_the_loss_is_revealed() {
        let m = ZooModel::build_training(ModelKind::A, 2, &spec()).unwrap();
        assert_eq!(
            m.graph.output_nodes(),
            m.loss_output.into_iter().collect::<Vec<_>>()
        );
        for id in m.graph.output_nodes() {
            for input in m.graph.inputs(id) {
                let op = &m.graph.node(input).unwrap().op;
                assert!(!matches!(op, Op::Variable { .. }), "{op:?} is revealed");
            }
        }
        for &v in &m.variables {
            let node = m.graph.node(v).unwrap();
            assert_eq!(node.visibility, crate::Visibility::Shared);
            assert!(matches!(
                node.op,
                Op::Variable {
                    trainable: true,
                    ..
                }
            ));
        }
    }

    #[test]
    fn a_global_model_given_by_the_client_starts_every_parameter() {
        let m = ZooModel::build_training_from_client(ModelKind::A, 2, 0.0).unwrap();
        for &v in &m.variables {
            let node = m.graph.node(v).unwrap();
            assert!(
                matches!(node.op, Op::Variable { init: Init::Owner { party }, trainable: true, .. } if party == m.client),
                "{:?}",
                node.op
            );
        }
        assert_eq!(m.variables.len(), m.params.len());
    }

    #[test]
    fn kernels_take_consecutive_parts_of_one_stream() {
        let m = ZooModel::build_training(ModelKind::A, 2, &spec()).unwrap();
        let inits: Vec<Init> = m
            .variables
            .iter()
            .map(|&v| match m.graph.node(v).unwrap().op {
                Op::Variable { init, .. } => init,
                _ => unreachable!("a parameter is a variable"),
            })
            .collect();
        assert_eq!(
            inits[..4],
            [
                Init::HeNormal {
                    fan_in: 784,
                    seed: 1,
                    offset: 0
                },
                Init::Zeros,
                Init::HeNormal {
                    fan_in: 128,
                    seed: 1,
                    offset: 784 * 128
                },
                Init::Zeros,
            ]
        );
    }

    #[test]
    fn assigns_are_checked() {
        let g = GraphBuilder::new();
        let p = g.party("owner");
        let x = g.input(p, "x", [3]);
        let _ = g.assign(&x, &x);
        let err = g.build().unwrap_err();
        assert!(
            matches!(err, GraphError::AssignToNonVariable { ref target, .. } if target.contains("'x'")),
            "{err}"
        );

        let g = GraphBuilder::new();
        let v = g.variable("v", [3], Init::Zeros);
        let _ = g.assign(&v, &g.constant([2], vec![1.0, 2.0]));
        let err = g.build().unwrap_err();
        assert!(
            matches!(err, GraphError::Shape { op: "assign", ref node, .. } if node.contains("v/assign")),
            "{err}"
        );

        let g = GraphBuilder::new();
        let v = g.variable("v", [1], Init::Zeros);
        let _ = g.assign(&v, &g.constant([1], vec![1.0]));
        let _ = g.assign(&v, &g.constant([1], vec![2.0]));
        let err = g.build().unwrap_err();
        assert!(
            matches!(err, GraphError::DuplicateAssign { ref variable, .. } if variable.contains("'v'")),
            "{err}"
        );

        let g = GraphBuilder::new();
        let _ = g.variable("v", [1], Init::Zeros);
        let _ = g.variable("v", [2], Init::Zeros);
        let err = g.build().unwrap_err();
        assert!(
            matches!(err, GraphError::DuplicateVariable { ref name, .. } if name == "v"),
            "{err}"
        );
    }
}

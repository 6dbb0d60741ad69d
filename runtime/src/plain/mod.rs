//! The plaintext reference executor: runs a logical graph in f32 with no protocol at all.
//!
//! It is the "TensorFlow" column of every accuracy table and the oracle of every protocol
//! test. [`forward`] evaluates every node of a graph without variables; a [`Session`] runs a
//! graph with variables many times (a training step per run: the backward pass is part of the
//! graph, see `shareflow_graphs::GraphBuilder::gradients`); [`train`] trains the networks of
//! the zoo through their training graphs.

pub mod dropout;
mod forward;
pub mod session;
pub mod train;

use std::collections::HashMap;

use ndarray::ArrayD;
use shareflow_graphs::{Graph, NodeId, Op};

pub use forward::forward;
pub use session::{public_initial, Session};

/// Every node's value after a run.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// The value of every node that ran, by node id.
    pub values: HashMap<NodeId, ArrayD<f32>>,
}

impl Evaluation {
    /// The value of a node, or an error naming it.
    pub fn value(&self, graph: &Graph, id: NodeId) -> crate::Result<&ArrayD<f32>> {
        self.values
            .get(&id)
            .ok_or_else(|| crate::RuntimeError::Node {
                node: graph.label(id),
                message: "no value was computed".into(),
            })
    }

    /// The outputs by name, with the party that receives each.
    pub fn outputs(&self, graph: &Graph) -> Vec<(String, String, ArrayD<f32>)> {
        graph
            .output_nodes()
            .into_iter()
            .filter_map(|id| {
                let node = graph.node(id).ok()?;
                let Op::Output { party, name } = &node.op else {
                    return None;
                };
                let value = self.values.get(&id)?.clone();
                Some((name.clone(), graph.party_name(*party).to_string(), value))
            })
            .collect()
    }
}

/// The inputs of polynomial activations that fell outside the polynomial's interval: where a
/// protocol that approximates the activation (Pond's ReLU, both protocols' sigmoid) computes
/// garbage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outside {
    /// Inputs with `|x| > interval`.
    pub outside: u64,
    /// All inputs of the activations counted.
    pub total: u64,
}

impl Outside {
    /// `outside / total` (0 if nothing was counted).
    pub fn fraction(&self) -> f64 {
        self.outside as f64 / self.total.max(1) as f64
    }
}

impl std::ops::AddAssign for Outside {
    fn add_assign(&mut self, other: Outside) {
        self.outside += other.outside;
        self.total += other.total;
    }
}

impl Evaluation {
    /// Counts the inputs of the ReLU and sigmoid nodes beyond `[-interval, interval]` of their
    /// polynomial (`None`: that activation is computed exactly, not counted).
    pub fn outside(&self, graph: &Graph, relu: Option<f64>, sigmoid: Option<f64>) -> Outside {
        let mut count = Outside::default();
        for (id, node) in graph.nodes() {
            let interval = match node.op {
                Op::Relu => relu,
                Op::Sigmoid => sigmoid,
                _ => None,
            };
            let inputs = graph.inputs(id);
            let (Some(interval), [input]) = (interval, inputs.as_slice()) else {
                continue;
            };
            if let Some(x) = self.values.get(input) {
                count.total += x.len() as u64;
                count.outside += x.iter().filter(|v| f64::from(v.abs()) > interval).count() as u64;
            }
        }
        count
    }
}

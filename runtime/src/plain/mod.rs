//! The plaintext reference executor: runs a logical graph in f32 with no protocol at all.
//!
//! It is the "TensorFlow" column of every accuracy table and the oracle of every protocol
//! test. [`forward`] evaluates every node of a graph without variables; a [`Session`] runs a
//! graph with variables many times (a training step per run: the backward pass is part of the
//! graph, see `shareflow_graphs::GraphBuilder::gradients`); [`train`] trains the networks of
//! the zoo through their training graphs.

mod forward;
pub mod session;
pub mod train;

use std::collections::HashMap;

use ndarray::ArrayD;
use shareflow_graphs::{Graph, NodeId, Op};

pub use forward::forward;
pub use session::Session;

/// Every node's value after a run.
#[derive(Debug, Default)]
pub struct Evaluation {
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

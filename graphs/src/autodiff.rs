//! Symbolic gradients: reverse-mode differentiation over the logical graph, TF1 style.
//!
//! [`GraphBuilder::gradients`] adds the backward pass as ordinary nodes of the same graph, so
//! that every backend (the plaintext reference now, the protocols later) runs the very same
//! training graph. The backward rules of each op are in `autodiff_rules`.

use std::collections::{HashMap, HashSet};

use crate::builder::{GraphBuilder, Tensor};
use crate::error::GraphError;
use crate::op::Op;
use crate::NodeId;

impl GraphBuilder {
    /// The gradients of `loss` with respect to each of `wrt` (variables or any other nodes),
    /// in the order given, as new nodes of this graph.
    ///
    /// The seed is a constant of ones shaped like `loss` (the gradient of the sum of its
    /// elements); contributions of several paths are summed with [`Op::Add`]. Only the nodes
    /// on a path from one of `wrt` to `loss` are differentiated. Errors: a non-trainable
    /// variable in `wrt` ([`GraphError::NotTrainable`]), a node of `wrt` that `loss` does not
    /// depend on ([`GraphError::Unconnected`]), an op on the way without a gradient such as
    /// argmax ([`GraphError::NoGradient`]), or an error met earlier while building.
    ///
    /// ```
    /// use shareflow_graphs::prelude::*;
    /// use shareflow_graphs::optim::sgd;
    ///
    /// let g = GraphBuilder::new();
    /// let owner = g.party("data-owner");
    /// let x = g.input(owner, "x", [4, 3]);
    /// let y = g.input(owner, "y", [4, 2]);
    /// let w = g.variable("w", [3, 2], Init::Normal { std: 0.1, seed: 7, offset: 0 });
    /// let b = g.variable("b", [2], Init::Zeros);
    /// let loss = (x.matmul(&w) + &b).mean_squared_error(&y);
    /// let grads = g.gradients(&loss, &[w.clone(), b.clone()])?;
    /// assert_eq!(grads[0].shape(), w.shape());
    /// let lr = g.parameter("learning_rate", []);
    /// sgd(&g, &[w, b], &grads, &lr)?;
    /// let graph = g.build()?;
    /// assert_eq!(graph.variable_nodes().len(), 2);
    /// # Ok::<(), GraphError>(())
    /// ```
    pub fn gradients(&self, loss: &Tensor, wrt: &[Tensor]) -> Result<Vec<Tensor>, GraphError> {
        let graph = {
            let s = self.state.borrow();
            if let Some(e) = &s.error {
                return Err(e.clone());
            }
            s.graph.clone()
        };
        for w in wrt {
            if let Op::Variable {
                trainable: false, ..
            } = graph.node(w.id())?.op
            {
                return Err(GraphError::NotTrainable {
                    node: graph.label(w.id()),
                });
            }
        }
        let order = graph.topo_order()?;
        // The nodes that depend on one of `wrt` ...
        let mut from_wrt: HashSet<NodeId> = wrt.iter().map(Tensor::id).collect();
        for &id in &order {
            if graph.inputs(id).iter().any(|i| from_wrt.contains(i)) {
                from_wrt.insert(id);
            }
        }
        // ... and that `loss` depends on: only they are differentiated.
        let mut to_loss: HashSet<NodeId> = HashSet::from([loss.id()]);
        for &id in order.iter().rev() {
            if to_loss.contains(&id) {
                to_loss.extend(graph.inputs(id));
            }
        }
        let on_path: HashSet<NodeId> = from_wrt.intersection(&to_loss).copied().collect();
        for w in wrt {
            if !on_path.contains(&w.id()) {
                return Err(GraphError::Unconnected {
                    node: graph.label(w.id()),
                    loss: graph.label(loss.id()),
                });
            }
        }
        let shape = loss.shape();
        let seed = self.constant(shape.clone(), vec![1.0; shape.numel()]);
        // The gradient of each node so far: contributions are added as they arrive.
        let mut pending: HashMap<NodeId, Tensor> = HashMap::from([(loss.id(), seed)]);
        let mut done: HashMap<NodeId, Tensor> = HashMap::new();
        for &id in order.iter().rev() {
            if !on_path.contains(&id) {
                continue;
            }
            let Some(dy) = pending.remove(&id) else {
                continue;
            };
            let inputs = graph.inputs(id);
            let want: Vec<bool> = inputs.iter().map(|i| on_path.contains(i)).collect();
            if want.iter().any(|&w| w) {
                let contributions =
                    crate::autodiff_rules::backprop(self, &graph, id, &dy, &inputs, &want)?;
                for (slot, d) in contributions {
                    let total = match pending.remove(&inputs[slot]) {
                        Some(acc) => acc.add(&d),
                        None => d,
                    };
                    pending.insert(inputs[slot], total);
                }
            }
            done.insert(id, dy);
        }
        wrt.iter()
            .map(|w| {
                done.get(&w.id())
                    .cloned()
                    .ok_or_else(|| GraphError::Unconnected {
                        node: graph.label(w.id()),
                        loss: graph.label(loss.id()),
                    })
            })
            .collect()
    }
}

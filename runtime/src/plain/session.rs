//! A plaintext session: runs one graph many times and keeps the variables' values between the
//! runs, as the servers of a protocol session will keep their shares.
//!
//! [`Session::new`] gives every variable its first value (its owner's value, given under the
//! variable's name, or its seeded public initialiser); each [`Session::run`] evaluates the graph
//! on the given inputs and parameters with the variables' current values, then applies every
//! [`Op::Assign`]: the assigned values are the variables' values in the next run.

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn};
use shareflow_graphs::{Graph, Init, NodeId, Op};
use shareflow_ops::plain::init::normal;

use super::forward::evaluate;
use super::Evaluation;
use crate::{Result, RuntimeError};

/// The first value of a variable of shape `dims` from its public initialiser; `None` for a
/// value its owner gives.
pub fn public_initial(init: &Init, dims: &[usize]) -> Option<ArrayD<f32>> {
    Some(match *init {
        Init::Owner { .. } => return None,
        Init::Zeros => ArrayD::zeros(IxDyn(dims)),
        Init::HeNormal {
            fan_in,
            seed,
            offset,
        } => normal(dims, (2.0 / fan_in.max(1) as f32).sqrt(), seed, offset),
        Init::Normal { std, seed, offset } => normal(dims, std, seed, offset),
    })
}

/// A graph and the current values of its variables.
pub struct Session {
    graph: Graph,
    order: Vec<NodeId>,
    variables: HashMap<NodeId, ArrayD<f32>>,
    /// `(variable, assign)` pairs.
    assigns: Vec<(NodeId, NodeId)>,
}

impl Session {
    /// Starts a session of `graph`; `owners` holds the first values of the variables whose
    /// owner provides them, by variable name.
    pub fn new(mut graph: Graph, owners: &HashMap<String, ArrayD<f32>>) -> Result<Session> {
        let order = graph.validate()?;
        let mut variables = HashMap::new();
        let mut assigns = Vec::new();
        for (id, node) in graph.nodes() {
            match &node.op {
                Op::Variable { name, init, .. } => {
                    let dims = node.shape.dims();
                    let value = match public_initial(init, dims) {
                        Some(v) => v,
                        None => {
                            let v = owners.get(name).ok_or_else(|| RuntimeError::Node {
                                node: graph.label(id),
                                message: format!("its owner gave no value for {name:?}"),
                            })?;
                            if v.shape() != dims {
                                return Err(RuntimeError::Node {
                                    node: graph.label(id),
                                    message: format!(
                                        "the owner's value has shape {:?}, the variable {}",
                                        v.shape(),
                                        node.shape
                                    ),
                                });
                            }
                            v.clone()
                        }
                    };
                    variables.insert(id, value);
                }
                Op::Assign => {
                    if let Some(&var) = graph.inputs(id).first() {
                        assigns.push((var, id));
                    }
                }
                _ => {}
            }
        }
        Ok(Session {
            graph,
            order,
            variables,
            assigns,
        })
    }

    /// The session's graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// One run: evaluates every node with `inputs` (private inputs and public parameters, by
    /// name) and the variables' current values, then applies every assign. Returns every
    /// node's value of this run (the outputs through [`Evaluation::outputs`]).
    pub fn run(&mut self, inputs: &HashMap<String, ArrayD<f32>>) -> Result<Evaluation> {
        let mut eval = evaluate(&self.graph, &self.order, inputs, &self.variables)?;
        for &(var, assign) in &self.assigns {
            let value = eval
                .values
                .remove(&assign)
                .ok_or_else(|| RuntimeError::Node {
                    node: self.graph.label(assign),
                    message: "no value was computed".into(),
                })?;
            self.variables.insert(var, value);
        }
        Ok(eval)
    }

    /// The current values of the variables of `params`, by name (a network's weights).
    pub fn weights(
        &self,
        params: &[shareflow_graphs::nn::ParamSpec],
    ) -> Result<crate::data::Weights> {
        let mut weights = crate::data::Weights::default();
        for p in params {
            let value = self.variable(&p.name).ok_or_else(|| RuntimeError::Node {
                node: p.name.clone(),
                message: "the training graph has no such variable".into(),
            })?;
            weights.arrays.insert(p.name.clone(), value.clone());
        }
        Ok(weights)
    }

    /// The current value of the variable named `name`.
    pub fn variable(&self, name: &str) -> Option<&ArrayD<f32>> {
        self.variables.iter().find_map(|(id, v)| {
            matches!(&self.graph.node(*id).ok()?.op, Op::Variable { name: n, .. } if n == name)
                .then_some(v)
        })
    }
}

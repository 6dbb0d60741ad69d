//! Forward evaluation of every node in f32.

use std::collections::HashMap;

use ndarray::ArrayD;
use shareflow_compiler::plain_op;
use shareflow_graphs::{Graph, NodeId, Op};

use super::Evaluation;
use crate::{Result, RuntimeError};

/// Evaluates `graph` with the given input values (by input name). A graph with variables runs
/// in a [`super::Session`], which holds their values.
pub fn forward(graph: &Graph, inputs: &HashMap<String, ArrayD<f32>>) -> Result<Evaluation> {
    evaluate(graph, &graph.topo_order()?, inputs, &HashMap::new())
}

/// Evaluates the nodes of `graph` in `order` with the inputs and parameters of `inputs` (by
/// name) and the variables' values of `variables` (by node).
pub(crate) fn evaluate(
    graph: &Graph,
    order: &[NodeId],
    inputs: &HashMap<String, ArrayD<f32>>,
    variables: &HashMap<NodeId, ArrayD<f32>>,
) -> Result<Evaluation> {
    let mut eval = Evaluation::default();
    for &id in order {
        let node = graph.node(id)?;
        let mut args: Vec<&ArrayD<f32>> = graph
            .inputs(id)
            .into_iter()
            .map(|i| eval.value(graph, i))
            .collect::<Result<_>>()?;
        match &node.op {
            Op::Input { name, .. } | Op::Parameter { name } => {
                let v = inputs.get(name).ok_or_else(|| RuntimeError::Node {
                    node: graph.label(id),
                    message: format!("no value given for {} {name:?}", node.op.name()),
                })?;
                if v.shape() != node.shape.dims() {
                    return Err(RuntimeError::Node {
                        node: graph.label(id),
                        message: format!(
                            "{} {name:?} has shape {:?}, the graph expects {}",
                            node.op.name(),
                            v.shape(),
                            node.shape
                        ),
                    });
                }
                args.push(v);
            }
            Op::Variable { .. } => {
                args.push(variables.get(&id).ok_or_else(|| RuntimeError::Node {
                    node: graph.label(id),
                    message: "a variable has a value only in a session".into(),
                })?);
            }
            _ => {}
        }
        let out = plain_op::eval(&node.op, &node.shape, &args).map_err(|e| RuntimeError::Node {
            node: graph.label(id),
            message: e.to_string(),
        })?;
        eval.values.insert(id, out.value);
    }
    Ok(eval)
}

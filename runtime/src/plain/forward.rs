//! Forward evaluation of every node in f32.

use std::collections::HashMap;

use ndarray::ArrayD;
use shareflow_compiler::plain_op;
use shareflow_graphs::{Graph, Op};

use super::Evaluation;
use crate::{Result, RuntimeError};

/// Evaluates `graph` with the given input values (by input name).
pub fn forward(graph: &Graph, inputs: &HashMap<String, ArrayD<f32>>) -> Result<Evaluation> {
    let mut eval = Evaluation::default();
    for id in graph.topo_order()? {
        let node = graph.node(id)?;
        let mut args: Vec<&ArrayD<f32>> = graph
            .inputs(id)
            .into_iter()
            .map(|i| eval.value(graph, i))
            .collect::<Result<_>>()?;
        if let Op::Input { name, .. } = &node.op {
            let v = inputs.get(name).ok_or_else(|| RuntimeError::Node {
                node: graph.label(id),
                message: format!("no value given for input {name:?}"),
            })?;
            if v.shape() != node.shape.dims() {
                return Err(RuntimeError::Node {
                    node: graph.label(id),
                    message: format!(
                        "input {name:?} has shape {:?}, the graph expects {}",
                        v.shape(),
                        node.shape
                    ),
                });
            }
            args.push(v);
        }
        let out = plain_op::eval(&node.op, &node.shape, &args).map_err(|e| RuntimeError::Node {
            node: graph.label(id),
            message: e.to_string(),
        })?;
        if let Some(a) = out.argmax {
            eval.argmax.insert(id, a);
        }
        eval.values.insert(id, out.value);
    }
    Ok(eval)
}

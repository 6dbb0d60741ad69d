//! The checks of variables and assignments: names unique among variables, every assign to a
//! variable, at most one assign per variable (shapes are checked by inference).

use std::collections::HashMap;

use crate::error::GraphError;
use crate::graph::Graph;
use crate::op::Op;
use crate::NodeId;

/// Checks the variables and assigns of `graph`.
pub(crate) fn check(graph: &Graph) -> Result<(), GraphError> {
    let mut names: HashMap<&str, NodeId> = HashMap::new();
    let mut assigned: HashMap<NodeId, NodeId> = HashMap::new();
    for (id, node) in graph.nodes() {
        match &node.op {
            Op::Variable { name, .. } if names.insert(name.as_str(), id).is_some() => {
                return Err(GraphError::DuplicateVariable {
                    node: graph.label(id),
                    name: name.clone(),
                });
            }
            Op::Assign => {
                let Some(&target) = graph.inputs(id).first() else {
                    continue;
                };
                if !matches!(graph.node(target)?.op, Op::Variable { .. }) {
                    return Err(GraphError::AssignToNonVariable {
                        node: graph.label(id),
                        target: graph.label(target),
                    });
                }
                if assigned.insert(target, id).is_some() {
                    return Err(GraphError::DuplicateAssign {
                        node: graph.label(id),
                        variable: graph.label(target),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(())
}

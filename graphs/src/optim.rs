//! Optimisers as graph builders: they add the update of every variable as [`Op::Assign`]
//! nodes, so that a training step (forward, backward, update) is one graph.
//!
//! The learning rate is a public scalar tensor: a constant, or a [`Op::Parameter`] that the
//! session gives at every step (a decaying schedule without recompiling the graph).

use crate::builder::{GraphBuilder, Tensor};
use crate::error::GraphError;
use crate::op::{Init, Op};
use crate::types::Visibility;

/// Plain SGD: `var <- var - lr * grad` for every variable. Returns the assign nodes.
pub fn sgd(
    g: &GraphBuilder,
    vars: &[Tensor],
    grads: &[Tensor],
    lr: &Tensor,
) -> Result<Vec<Tensor>, GraphError> {
    check(vars, grads, lr)?;
    Ok(vars
        .iter()
        .zip(grads)
        .map(|(var, grad)| g.assign(var, &var.sub(&grad.mul(lr))))
        .collect())
}

/// SGD with (heavy-ball) momentum, as TensorFlow's `MomentumOptimizer` and PyTorch's `SGD`:
/// `v <- momentum * v + grad`, then `var <- var - lr * v`. Each velocity is a variable named
/// `<variable>/velocity`, zero at first and not trainable. Returns the assign nodes (the
/// velocities' first).
pub fn momentum(
    g: &GraphBuilder,
    vars: &[Tensor],
    grads: &[Tensor],
    lr: &Tensor,
    momentum: f32,
) -> Result<Vec<Tensor>, GraphError> {
    check(vars, grads, lr)?;
    let mu = g.constant([], vec![momentum]);
    let mut assigns = Vec::with_capacity(2 * vars.len());
    for (var, grad) in vars.iter().zip(grads) {
        let name = variable_name(var)?;
        let v = g.variable_with(&format!("{name}/velocity"), var.shape(), Init::Zeros, false);
        let next = v.mul(&mu).add(grad);
        assigns.push(g.assign(&v, &next));
        assigns.push(g.assign(var, &var.sub(&next.mul(lr))));
    }
    Ok(assigns)
}

fn variable_name(var: &Tensor) -> Result<String, GraphError> {
    match var.op() {
        Some(Op::Variable { name, .. }) => Ok(name),
        _ => Err(GraphError::AssignToNonVariable {
            node: "optimiser".into(),
            target: var.label(),
        }),
    }
}

fn check(vars: &[Tensor], grads: &[Tensor], lr: &Tensor) -> Result<(), GraphError> {
    if vars.len() != grads.len() {
        return Err(GraphError::Invalid {
            node: "optimiser".into(),
            message: format!("{} variables and {} gradients", vars.len(), grads.len()),
        });
    }
    if lr.visibility() != Visibility::Public || lr.shape().numel() != 1 {
        return Err(GraphError::Invalid {
            node: lr.label(),
            message: format!(
                "the learning rate must be a public scalar, not a {:?} {}",
                lr.visibility(),
                lr.shape()
            ),
        });
    }
    Ok(())
}

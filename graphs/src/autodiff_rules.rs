//! The backward rule of every differentiable op: the gradients of its inputs, as new nodes,
//! from the gradient `dy` of its output. Existing ops are reused wherever they express the
//! gradient exactly (matmul and transpose for dense layers, mul/sub/neg, reshape, reduce_sum);
//! the backward ops of [`Op`] cover the rest.

use crate::builder::{GraphBuilder, Tensor};
use crate::error::GraphError;
use crate::graph::Graph;
use crate::op::Op;
use crate::types::Shape;
use crate::NodeId;

/// The contributions `(input slot, gradient)` of node `id` to the inputs that `want` marks.
pub(crate) fn backprop(
    g: &GraphBuilder,
    graph: &Graph,
    id: NodeId,
    dy: &Tensor,
    inputs: &[NodeId],
    want: &[bool],
) -> Result<Vec<(usize, Tensor)>, GraphError> {
    let node = graph.node(id)?;
    let x = |slot: usize| g.tensor(inputs[slot]);
    let shape =
        |slot: usize| -> Result<Shape, GraphError> { Ok(graph.node(inputs[slot])?.shape.clone()) };
    let wanted = |slot: usize| want.get(slot).copied().unwrap_or(false);
    let no_gradient = || GraphError::NoGradient {
        node: graph.label(id),
        op: node.op.name(),
    };
    let mut out = Vec::new();
    match &node.op {
        Op::Add | Op::Sub => {
            if wanted(0) {
                out.push((0, unbroadcast(dy, &shape(0)?)));
            }
            if wanted(1) {
                let d = unbroadcast(dy, &shape(1)?);
                out.push((
                    1,
                    if matches!(node.op, Op::Sub) {
                        d.neg()
                    } else {
                        d
                    },
                ));
            }
        }
        Op::Mul => {
            if wanted(0) {
                out.push((0, unbroadcast(&dy.mul(&x(1)), &shape(0)?)));
            }
            if wanted(1) {
                out.push((1, unbroadcast(&dy.mul(&x(0)), &shape(1)?)));
            }
        }
        Op::Neg => out.push((0, dy.neg())),
        Op::MatMul => {
            if wanted(0) {
                out.push((0, dy.matmul(&x(1).transpose(&[1, 0]))));
            }
            if wanted(1) {
                out.push((1, x(0).transpose(&[1, 0]).matmul(dy)));
            }
        }
        Op::Conv2d { stride, padding } => {
            if wanted(0) {
                let op = Op::Conv2dBackpropInput {
                    stride: *stride,
                    padding: *padding,
                    input_shape: shape(0)?.0,
                };
                out.push((0, x(1).apply(op, &[dy, &x(1)])));
            }
            if wanted(1) {
                let op = Op::Conv2dBackpropFilter {
                    stride: *stride,
                    padding: *padding,
                    filter_shape: shape(1)?.0,
                };
                out.push((1, x(0).apply(op, &[&x(0), dy])));
            }
        }
        Op::AvgPool2d { window } => {
            let op = Op::AvgPoolGrad {
                window: *window,
                input_shape: shape(0)?.0,
            };
            out.push((0, dy.apply(op, &[dy])));
        }
        Op::MaxPool2d { window } => {
            let op = Op::MaxPoolGrad { window: *window };
            out.push((0, dy.apply(op, &[&x(0), dy])));
        }
        Op::Relu => out.push((0, dy.apply(Op::ReluGrad, &[&x(0), dy]))),
        Op::Sigmoid => {
            // dy * s * (1 - s) = dy * (s - s * s), with s the sigmoid's own value.
            let s = g.tensor(id);
            out.push((0, dy.mul(&s.sub(&s.mul(&s)))));
        }
        Op::Softmax => {
            // y * (dy - sum(dy * y, last axis)), the sum repeated along the last axis.
            let y = g.tensor(id);
            let dims = node.shape.dims().to_vec();
            let last = dims.len().saturating_sub(1);
            let mut kept = dims.clone();
            if let Some(d) = kept.get_mut(last) {
                *d = 1;
            }
            let dot = dy.mul(&y).reduce_sum(last).reshape(kept).broadcast_to(dims);
            out.push((0, y.mul(&dy.sub(&dot))));
        }
        Op::BatchNorm { epsilon } => {
            if want[1..].iter().any(|&w| w) {
                return Err(no_gradient());
            }
            // dy * gamma / sqrt(var + eps) is the same op on dy with zero mean and offset.
            let c = shape(1)?;
            let zero = g.constant(c.clone(), vec![0.0; c.numel()]);
            let op = Op::BatchNorm { epsilon: *epsilon };
            out.push((0, dy.apply(op, &[dy, &zero, &x(2), &x(3), &zero])));
        }
        Op::Reshape { .. } => out.push((0, dy.reshape(shape(0)?))),
        Op::Transpose { perm } => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            out.push((0, dy.transpose(&inverse)));
        }
        Op::Concat { axis } => {
            // Each input's gradient is its part of `dy`.
            let first = shape(0)?.dims().get(*axis).copied().unwrap_or(0);
            if wanted(0) {
                out.push((0, dy.slice(*axis, 0, first)));
            }
            if wanted(1) {
                let second = shape(1)?.dims().get(*axis).copied().unwrap_or(0);
                out.push((1, dy.slice(*axis, first, second)));
            }
        }
        Op::Slice { axis, start, len } => {
            // `dy` in its place, zeros around it.
            let full = shape(0)?;
            let zeros = |n: usize| {
                let mut d = full.0.clone();
                d[*axis] = n;
                let count = d.iter().product();
                g.constant(d, vec![0.0; count])
            };
            let mut d = dy.clone();
            if *start > 0 {
                d = zeros(*start).concat(&d, *axis);
            }
            let after = full.0[*axis] - start - len;
            if after > 0 {
                d = d.concat(&zeros(after), *axis);
            }
            out.push((0, d));
        }
        Op::ReduceSum { axis } => {
            let dims = shape(0)?.0;
            let mut kept = dims.clone();
            if let Some(d) = kept.get_mut(*axis) {
                *d = 1;
            }
            out.push((0, dy.reshape(kept).broadcast_to(dims)));
        }
        Op::BroadcastTo { .. } => out.push((0, unbroadcast_ones(dy, &shape(0)?))),
        Op::Output { .. } => out.push((0, dy.clone())),
        Op::SoftmaxCrossEntropy => {
            if wanted(1) {
                return Err(no_gradient());
            }
            // (softmax(z) - y) / N, times the incoming scalar.
            let n = shape(0)?.dims().first().copied().unwrap_or(1).max(1);
            let scale = dy.mul(&g.constant(Shape::default(), vec![1.0 / n as f32]));
            out.push((0, x(0).softmax().sub(&x(1)).mul(&scale)));
        }
        Op::SigmoidCrossEntropy => {
            if wanted(1) {
                return Err(no_gradient());
            }
            // (sigmoid(z) - y) / N, times the incoming scalar.
            let n = shape(0)?.dims().first().copied().unwrap_or(1).max(1);
            let scale = dy.mul(&g.constant(Shape::default(), vec![1.0 / n as f32]));
            out.push((0, x(0).sigmoid().sub(&x(1)).mul(&scale)));
        }
        Op::MeanSquaredError => {
            // 2 (p - t) / numel, and its negative for the target.
            let n = shape(0)?.numel().max(1);
            let scale = dy.mul(&g.constant(Shape::default(), vec![2.0 / n as f32]));
            let d = x(0).sub(&x(1)).mul(&scale);
            if wanted(1) {
                out.push((1, d.neg()));
            }
            if wanted(0) {
                out.push((0, d));
            }
        }
        Op::Constant { .. }
        | Op::Input { .. }
        | Op::Variable { .. }
        | Op::Parameter { .. }
        | Op::Argmax
        | Op::Assign
        | Op::Conv2dBackpropInput { .. }
        | Op::Conv2dBackpropFilter { .. }
        | Op::ReluGrad
        | Op::MaxPoolGrad { .. }
        | Op::AvgPoolGrad { .. } => return Err(no_gradient()),
    }
    Ok(out)
}

/// Sums a gradient over the leading axes that broadcasting added (the operands of add, sub
/// and mul broadcast by their trailing dimensions only).
fn unbroadcast(dy: &Tensor, target: &Shape) -> Tensor {
    let mut d = dy.clone();
    while d.shape().rank() > target.rank() {
        d = d.reduce_sum(0);
    }
    d
}

/// The adjoint of [`Op::BroadcastTo`]: sums over the added leading axes and over the axes
/// that were 1.
fn unbroadcast_ones(dy: &Tensor, target: &Shape) -> Tensor {
    let mut d = unbroadcast(dy, target);
    for (axis, &t) in target.dims().iter().enumerate() {
        if t == 1 && d.shape().dims().get(axis).is_some_and(|&n| n != 1) {
            let mut kept = d.shape().0;
            kept[axis] = 1;
            d = d.reduce_sum(axis).reshape(kept);
        }
    }
    d
}

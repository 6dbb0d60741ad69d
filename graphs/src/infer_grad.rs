//! Shape inference of the backward and loss ops (the gradients that
//! [`crate::GraphBuilder::gradients`] adds and the losses it starts from).

use crate::error::GraphError;
use crate::infer::{window_out, InputInfo};
use crate::op::{Op, Window};
use crate::types::{Padding, Shape};

/// The shape of a backward or loss op, or the error `err` makes of a message. Called by
/// [`crate::infer::infer`] after it checked the arity.
pub(crate) fn infer_grad(
    op: &Op,
    inputs: &[InputInfo<'_>],
    err: &dyn Fn(String) -> GraphError,
) -> Result<Shape, GraphError> {
    let shape = |i: usize| inputs[i].shape;
    match op {
        Op::Conv2dBackpropInput {
            stride,
            padding,
            input_shape,
        } => {
            let filter = shape(1).dims();
            conv_fits(input_shape, filter, *stride, *padding, shape(0), err)?;
            Ok(Shape::new(input_shape.clone()))
        }
        Op::Conv2dBackpropFilter {
            stride,
            padding,
            filter_shape,
        } => {
            conv_fits(
                shape(0).dims(),
                filter_shape,
                *stride,
                *padding,
                shape(1),
                err,
            )?;
            Ok(Shape::new(filter_shape.clone()))
        }
        Op::ReluGrad => {
            same(shape(0), shape(1), err)?;
            Ok(shape(0).clone())
        }
        Op::MaxPoolGrad { window } => {
            pool_fits(shape(0).dims(), window, shape(1), err)?;
            Ok(shape(0).clone())
        }
        Op::AvgPoolGrad {
            window,
            input_shape,
        } => {
            pool_fits(input_shape, window, shape(0), err)?;
            Ok(Shape::new(input_shape.clone()))
        }
        Op::BroadcastTo { shape: target } => {
            let from = shape(0).dims();
            let fits = from.len() <= target.len()
                && from
                    .iter()
                    .zip(&target[target.len() - from.len()..])
                    .all(|(&f, &t)| f == t || f == 1);
            if !fits {
                return Err(err(format!(
                    "{} does not broadcast to {}",
                    shape(0),
                    Shape::new(target.clone())
                )));
            }
            Ok(Shape::new(target.clone()))
        }
        Op::SoftmaxCrossEntropy | Op::SigmoidCrossEntropy => {
            same(shape(0), shape(1), err)?;
            if shape(0).rank() != 2 || shape(0).numel() == 0 {
                return Err(err(format!(
                    "logits {} are not [N, K] with N, K > 0",
                    shape(0)
                )));
            }
            Ok(Shape::default())
        }
        Op::MeanSquaredError => {
            same(shape(0), shape(1), err)?;
            if shape(0).numel() == 0 {
                return Err(err(format!("mean of the empty {}", shape(0))));
            }
            Ok(Shape::default())
        }
        other => Err(err(format!("{} is not a backward op", other.name()))),
    }
}

fn same(a: &Shape, b: &Shape, err: &dyn Fn(String) -> GraphError) -> Result<(), GraphError> {
    if a == b {
        Ok(())
    } else {
        Err(err(format!("operands {a} and {b} differ in shape")))
    }
}

/// Checks that a convolution of `input` by `filter` gives `dy`.
fn conv_fits(
    input: &[usize],
    filter: &[usize],
    stride: [usize; 2],
    padding: Padding,
    dy: &Shape,
    err: &dyn Fn(String) -> GraphError,
) -> Result<(), GraphError> {
    let out = match (input, filter) {
        ([n, h, w, c], [kh, kw, ci, co]) if c == ci => {
            let win = Window {
                size: [*kh, *kw],
                stride,
                padding,
            };
            window_out(&win, *h, *w).map(|(oh, ow)| Shape::new([*n, oh, ow, *co]))
        }
        _ => None,
    };
    match out {
        Some(out) if out == *dy => Ok(()),
        _ => Err(err(format!(
            "a convolution of {} (NHWC) by {} (HWIO) stride {stride:?} does not give the gradient's {dy}",
            Shape::new(input.to_vec()),
            Shape::new(filter.to_vec())
        ))),
    }
}

/// Checks that pooling `input` over `window` gives `dy`.
fn pool_fits(
    input: &[usize],
    window: &Window,
    dy: &Shape,
    err: &dyn Fn(String) -> GraphError,
) -> Result<(), GraphError> {
    let out = match input {
        [n, h, w, c] => window_out(window, *h, *w).map(|(oh, ow)| Shape::new([*n, oh, ow, *c])),
        _ => None,
    };
    match out {
        Some(out) if out == *dy => Ok(()),
        _ => Err(err(format!(
            "pooling {} over {:?} stride {:?} does not give the gradient's {dy}",
            Shape::new(input.to_vec()),
            window.size,
            window.stride
        ))),
    }
}

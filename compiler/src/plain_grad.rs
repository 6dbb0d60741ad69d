//! The f32 evaluation of the backward and loss ops (see [`crate::plain_op::eval`]), on the
//! reference kernels of `shareflow_ops::plain`.

use ndarray::{ArrayD, Ix2, Ix4, IxDyn};
use shareflow_graphs::{Op, Shape};
use shareflow_ops::plain::{self as k, to_rank};
use shareflow_ops::OpsError;

use crate::plain_op::{padding, window};

/// A rank-4 shape, or an error naming `op`.
fn dims4(op: &'static str, dims: &[usize]) -> Result<[usize; 4], OpsError> {
    <[usize; 4]>::try_from(dims).map_err(|_| OpsError::InvalidArgument {
        op,
        message: format!("shape {dims:?} is not NHWC"),
    })
}

/// Evaluates a backward or loss op; `shape` is the node's static shape.
pub(crate) fn eval_grad(
    op: &Op,
    shape: &Shape,
    args: &[&ArrayD<f32>],
) -> Result<ArrayD<f32>, OpsError> {
    let arg = |i: usize| args[i].view();
    Ok(match op {
        Op::Conv2dBackpropInput {
            stride,
            padding: p,
            input_shape,
        } => k::conv2d_backward_input(
            dims4("conv2d_backprop_input", input_shape)?,
            to_rank::<_, Ix4>(arg(1), "conv2d_backprop_input")?,
            to_rank::<_, Ix4>(arg(0), "conv2d_backprop_input")?,
            (stride[0], stride[1]),
            padding(*p),
        )?
        .into_dyn(),
        Op::Conv2dBackpropFilter {
            stride,
            padding: p,
            filter_shape,
        } => k::conv2d_backward_filter(
            to_rank::<_, Ix4>(arg(0), "conv2d_backprop_filter")?,
            dims4("conv2d_backprop_filter", filter_shape)?,
            to_rank::<_, Ix4>(arg(1), "conv2d_backprop_filter")?,
            (stride[0], stride[1]),
            padding(*p),
        )?
        .into_dyn(),
        Op::ReluGrad => k::relu_backward(arg(0), arg(1))?,
        Op::MaxPoolGrad { window: w } => {
            let x = to_rank::<_, Ix4>(arg(0), "maxpool_grad")?;
            let routing = k::maxpool2d(x, &window(w))?;
            k::maxpool2d_backward(
                to_rank::<_, Ix4>(arg(1), "maxpool_grad")?,
                routing.argmax.view(),
                dims4("maxpool_grad", arg(0).shape())?,
            )?
            .into_dyn()
        }
        Op::AvgPoolGrad {
            window: w,
            input_shape,
        } => k::avgpool2d_backward(
            to_rank::<_, Ix4>(arg(0), "avgpool_grad")?,
            dims4("avgpool_grad", input_shape)?,
            &window(w),
        )?
        .into_dyn(),
        Op::BroadcastTo { shape: target } => arg(0)
            .broadcast(IxDyn(target))
            .ok_or_else(|| OpsError::ShapeMismatch {
                op: "broadcast_to",
                left: arg(0).shape().to_vec(),
                right: target.clone(),
            })?
            .to_owned(),
        Op::SoftmaxCrossEntropy => {
            let loss = k::softmax_cross_entropy_onehot(
                to_rank::<_, Ix2>(arg(0), "softmax_cross_entropy")?,
                to_rank::<_, Ix2>(arg(1), "softmax_cross_entropy")?,
            )?;
            scalar(shape, loss, "softmax_cross_entropy")?
        }
        Op::SigmoidCrossEntropy => {
            let loss = k::sigmoid_cross_entropy(
                to_rank::<_, Ix2>(arg(0), "sigmoid_cross_entropy")?,
                to_rank::<_, Ix2>(arg(1), "sigmoid_cross_entropy")?,
            )?;
            scalar(shape, loss, "sigmoid_cross_entropy")?
        }
        Op::MeanSquaredError => {
            let loss = k::mean_squared_error(arg(0), arg(1))?;
            scalar(shape, loss, "mean_squared_error")?
        }
        other => {
            return Err(OpsError::InvalidArgument {
                op: other.name(),
                message: "no plaintext evaluation".into(),
            })
        }
    })
}

/// A one-element value of the node's shape (a scalar or `[1]`).
fn scalar(shape: &Shape, value: f32, op: &'static str) -> Result<ArrayD<f32>, OpsError> {
    ArrayD::from_shape_vec(IxDyn(shape.dims()), vec![value]).map_err(|e| {
        OpsError::InvalidArgument {
            op,
            message: e.to_string(),
        }
    })
}

//! One logical op evaluated in f32 on the reference kernels: shared by the plaintext executor,
//! constant folding, and the parties that compute on their own private values in the clear.

use ndarray::{ArrayD, Ix1, Ix2, Ix4, IxDyn};
use shareflow_graphs::op::Window;
use shareflow_graphs::{Op, Padding, Shape};
use shareflow_ops::plain::{self as k, to_rank};
use shareflow_ops::OpsError;

/// The value of an op.
pub struct PlainOut {
    /// The op's result.
    pub value: ArrayD<f32>,
}

/// The ops-crate padding for a graph padding.
pub fn padding(p: Padding) -> k::Padding {
    match p {
        Padding::Valid => k::Padding::Valid,
        Padding::Same => k::Padding::Same,
    }
}

/// The ops-crate window of a graph window.
pub fn window(w: &Window) -> k::Window2d {
    k::Window2d::new(
        (w.size[0], w.size[1]),
        (w.stride[0], w.stride[1]),
        padding(w.padding),
    )
}

fn invalid(op: &'static str, message: String) -> OpsError {
    OpsError::InvalidArgument { op, message }
}

/// Evaluates `op` on `args` (its inputs, in order); `shape` is the node's static shape. An
/// `Input`, `Variable`, `Parameter` or `Output` passes its first argument through (the caller
/// supplies the value); an `Assign` gives the value assigned.
pub fn eval(op: &Op, shape: &Shape, args: &[&ArrayD<f32>]) -> Result<PlainOut, OpsError> {
    let supplied = matches!(
        op,
        Op::Input { .. } | Op::Variable { .. } | Op::Parameter { .. }
    );
    if args.len() != op.arity() && !supplied {
        return Err(invalid(
            op.name(),
            format!("{} arguments for {} inputs", args.len(), op.arity()),
        ));
    }
    let arg = |i: usize| args[i].view();
    let value = match op {
        Op::Constant { values } => ArrayD::from_shape_vec(IxDyn(shape.dims()), values.clone())
            .map_err(|e| invalid("constant", e.to_string()))?,
        Op::Input { .. } | Op::Variable { .. } | Op::Parameter { .. } => match args.first() {
            Some(v) => (*v).clone(),
            None => return Err(invalid(op.name(), "no value supplied".into())),
        },
        Op::Add => k::add(arg(0), arg(1))?,
        Op::Sub => k::sub(arg(0), arg(1))?,
        Op::Mul => k::mul(arg(0), arg(1))?,
        Op::Neg => arg(0).mapv(|v| -v),
        Op::MatMul => k::matmul(
            to_rank::<_, Ix2>(arg(0), "matmul")?,
            to_rank::<_, Ix2>(arg(1), "matmul")?,
        )?
        .into_dyn(),
        Op::Conv2d { stride, padding: p } => k::conv2d(
            to_rank::<_, Ix4>(arg(0), "conv2d")?,
            to_rank::<_, Ix4>(arg(1), "conv2d")?,
            (stride[0], stride[1]),
            padding(*p),
        )?
        .into_dyn(),
        Op::AvgPool2d { window: w } => {
            k::avgpool2d(to_rank::<_, Ix4>(arg(0), "avgpool2d")?, &window(w))?.into_dyn()
        }
        Op::MaxPool2d { window: w } => {
            k::maxpool2d(to_rank::<_, Ix4>(arg(0), "maxpool2d")?, &window(w))?
                .y
                .into_dyn()
        }
        Op::Relu => k::relu(arg(0)),
        Op::Sigmoid => k::sigmoid(arg(0)),
        Op::Softmax => k::softmax(arg(0))?,
        Op::BatchNorm { epsilon } => {
            let v = |i: usize| to_rank::<_, Ix1>(arg(i), "batchnorm");
            k::batchnorm_inference(arg(0), v(1)?, v(2)?, v(3)?, v(4)?, *epsilon)?
        }
        Op::Reshape { shape: s } => arg(0)
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(IxDyn(s))
            .map_err(|e| invalid("reshape", e.to_string()))?,
        Op::Transpose { perm } => {
            if perm.len() != arg(0).ndim() {
                return Err(invalid(
                    "transpose",
                    format!("{perm:?} for rank {}", arg(0).ndim()),
                ));
            }
            arg(0)
                .permuted_axes(IxDyn(perm))
                .as_standard_layout()
                .into_owned()
        }
        Op::Concat { axis } => ndarray::concatenate(ndarray::Axis(*axis), &[arg(0), arg(1)])
            .map_err(|e| invalid("concat", e.to_string()))?,
        Op::Slice { axis, start, len } => {
            let x = arg(0);
            if x.shape().get(*axis).is_none_or(|&n| start + len > n) {
                return Err(invalid(
                    "slice",
                    format!("{start}..{} of axis {axis} of {:?}", start + len, x.shape()),
                ));
            }
            x.slice_axis(ndarray::Axis(*axis), (*start..start + len).into())
                .to_owned()
        }
        Op::ReduceSum { axis } => k::reduce_sum(arg(0), *axis, false)?,
        Op::Argmax => k::argmax_last(arg(0))?.mapv(|i| i as f32),
        Op::Output { .. } => args[0].clone(),
        Op::Assign => args[1].clone(),
        _ => crate::plain_grad::eval_grad(op, shape, args)?,
    };
    Ok(PlainOut { value })
}

//! The ops that Pond and SecureNN lower alike: linear ops (local on shares), products with
//! dealer triples and truncation, pooling by a public divisor, batch normalisation with public
//! statistics, and shape ops.

use ndarray::{Array3, ArrayD, Ix1};
use shareflow_graphs::{Op, Padding, Shape};

use super::poly::{Fit, Target};
use super::{to_shared, Lowerer, Operand, Shared, HELPER, S0, S1};
use crate::ir::Kernel;
use crate::ir::ValueId;
use crate::CompileError;
use shareflow_ops::ValueKind;

/// Lowers `op` if it is one of the common ops; `None` for the protocol's own (relu, maxpool,
/// argmax). Sigmoid is Pond's polynomial under both protocols, so that they give the same
/// values.
pub fn lower_common(
    cx: &mut Lowerer,
    op: &Op,
    shape: &Shape,
    inputs: &[Operand],
) -> Option<Result<Shared, CompileError>> {
    let dims = shape.dims();
    match product_kernel(cx, op) {
        Ok(Some(k)) => return Some(product(cx, k, &inputs[0], &inputs[1], dims)),
        Err(e) => return Some(Err(e)),
        Ok(None) => {}
    }
    Some(match op {
        Op::Add | Op::Sub => add_sub(cx, matches!(op, Op::Sub), &inputs[0], &inputs[1], dims),
        Op::Neg => to_shared(cx, &inputs[0]).map(|x| cx.local(Kernel::Neg, &x, dims)),
        Op::Sigmoid => to_shared(cx, &inputs[0]).and_then(|x| {
            let fit = Fit::new(Target::Sigmoid, &cx.options.sigmoid);
            cx.polynomial(&x, &fit, shape)
        }),
        Op::Mul => product(cx, Kernel::Mul, &inputs[0], &inputs[1], dims),
        Op::AvgPool2d { window } => to_shared(cx, &inputs[0]).and_then(|x| {
            let input = cx.shape(x.s[0]).to_vec();
            let summed = cx.local(Kernel::SumPool2d { window: *window }, &x, dims);
            let divisor = pool_divisor(cx, window, &input, dims)?;
            Ok(cx.mul_public(&summed, divisor, dims))
        }),
        Op::BatchNorm { epsilon } => batchnorm(cx, inputs, *epsilon, dims),
        Op::Reshape { shape } => to_shared(cx, &inputs[0]).map(|x| {
            cx.local(
                Kernel::Reshape {
                    shape: shape.clone(),
                },
                &x,
                dims,
            )
        }),
        Op::BroadcastTo { shape } => to_shared(cx, &inputs[0]).map(|x| {
            cx.local(
                Kernel::BroadcastTo {
                    shape: shape.clone(),
                },
                &x,
                dims,
            )
        }),
        Op::AvgPoolGrad {
            window,
            input_shape,
        } => to_shared(cx, &inputs[0]).and_then(|dy| avgpool_grad(cx, &dy, window, input_shape)),
        Op::MeanSquaredError => mean_squared_error(cx, &inputs[0], &inputs[1]),
        Op::SoftmaxCrossEntropy => Err(cx.error(
            "the value of a softmax cross-entropy loss needs a softmax and a logarithm on \
             shares, which only SecureNN lowers (its gradient is all training needs); train \
             without revealing the loss",
        )),
        Op::SigmoidCrossEntropy => Err(cx.error(
            "the value of a sigmoid cross-entropy loss needs a logarithm on shares, which is not \
             lowered (its gradient is, and training does not need the value); reveal the logits \
             or train without revealing the loss",
        )),
        Op::Transpose { perm } => to_shared(cx, &inputs[0])
            .map(|x| cx.local(Kernel::Transpose { perm: perm.clone() }, &x, dims)),
        Op::Concat { axis } => to_shared(cx, &inputs[0]).and_then(|a| {
            let b = to_shared(cx, &inputs[1])?;
            Ok(cx.local2(Kernel::Concat { axis: *axis }, &a, &b, dims))
        }),
        Op::Slice { axis, start, len } => to_shared(cx, &inputs[0]).map(|x| {
            let k = Kernel::StridedSlice {
                axis: *axis,
                start: *start,
                step: 1,
                len: *len,
            };
            cx.local(k, &x, dims)
        }),
        Op::ReduceSum { axis } => {
            to_shared(cx, &inputs[0]).map(|x| cx.local(Kernel::ReduceSum { axis: *axis }, &x, dims))
        }
        _ => return None,
    })
}

fn add_sub(
    cx: &mut Lowerer,
    sub: bool,
    a: &Operand,
    b: &Operand,
    dims: &[usize],
) -> Result<Shared, CompileError> {
    match (a, b) {
        (x, Operand::Public(p)) => {
            let x = to_shared(cx, x)?;
            let p = if sub { p.mapv(|v| -v) } else { p.clone() };
            let p0 = cx.public_ring(S0, &p)?;
            Ok(cx.add_public(&x, p0, dims))
        }
        (x, Operand::Parameter(p)) => {
            let x = to_shared(cx, x)?;
            let p0 = if sub {
                cx.emit_like(Kernel::Neg, &[p[0]])
            } else {
                p[0]
            };
            Ok(cx.add_public(&x, p0, dims))
        }
        (Operand::Parameter(p), y) => {
            let y = to_shared(cx, y)?;
            let y = if sub {
                cx.local(Kernel::Neg, &y, dims)
            } else {
                y
            };
            Ok(cx.add_public(&y, p[0], dims))
        }
        (Operand::Public(p), y) => {
            let y = to_shared(cx, y)?;
            let y = if sub {
                cx.local(Kernel::Neg, &y, dims)
            } else {
                y
            };
            let p0 = cx.public_ring(S0, p)?;
            Ok(cx.add_public(&y, p0, dims))
        }
        (x, y) => {
            let x = to_shared(cx, x)?;
            let y = to_shared(cx, y)?;
            let k = if sub { Kernel::Sub } else { Kernel::Add };
            Ok(cx.local2(k, &x, &y, dims))
        }
    }
}

/// The ring kernel of a product that is a matmul or a convolution (or one of its gradients),
/// `None` for any other op.
pub(crate) fn product_kernel(cx: &Lowerer, op: &Op) -> Result<Option<Kernel>, CompileError> {
    Ok(Some(match op {
        Op::MatMul => Kernel::MatMul,
        Op::Conv2d { stride, padding } => Kernel::Conv2d {
            stride: *stride,
            padding: *padding,
        },
        Op::Conv2dBackpropInput {
            stride,
            padding,
            input_shape,
        } => Kernel::Conv2dBackpropInput {
            stride: *stride,
            padding: *padding,
            input_shape: four(cx, input_shape)?,
        },
        Op::Conv2dBackpropFilter {
            stride,
            padding,
            filter_shape,
        } => Kernel::Conv2dBackpropFilter {
            stride: *stride,
            padding: *padding,
            filter_shape: four(cx, filter_shape)?,
        },
        _ => return Ok(None),
    }))
}

/// A bilinear product: local when one side is public, a dealer triple otherwise; then
/// truncated. A truncation's output times a public scalar reuses the truncation's opening
/// ([`Lowerer::rescaled_truncation`]).
fn product(
    cx: &mut Lowerer,
    k: Kernel,
    a: &Operand,
    b: &Operand,
    dims: &[usize],
) -> Result<Shared, CompileError> {
    if k == Kernel::Mul {
        for (x, l) in [(a, b), (b, a)] {
            if let Some(z) = rescaled(cx, x, l, dims)? {
                return Ok(z);
            }
        }
    }
    product_plus(cx, k, a, b, dims, None)
}

/// `x l` for shares `x` that a dealer truncation made and a public scalar `l`, if
/// [`Lowerer::rescaled_truncation`] applies.
fn rescaled(
    cx: &mut Lowerer,
    x: &Operand,
    l: &Operand,
    dims: &[usize],
) -> Result<Option<Shared>, CompileError> {
    let Operand::Shared(x) = x else {
        return Ok(None);
    };
    if !cx.truncations.contains_key(&x.s) {
        return Ok(None);
    }
    // A constant's magnitude is known (a parameter's is not).
    let (scalar, at_most_one) = match l {
        Operand::Public(p) if p.ndim() == 0 => (
            (
                [cx.public_ring(S0, p)?, cx.public_ring(S1, p)?],
                cx.public_ring(HELPER, p)?,
            ),
            p.iter().all(|v| v.abs() <= 1.0),
        ),
        Operand::Parameter(p) if cx.shape(p[0]).is_empty() => match cx.helper_parameter(p[0]) {
            Some(h) => ((*p, h), false),
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(cx.rescaled_truncation(x, scalar, at_most_one, dims))
}

/// [`product`] plus `addend`, shares at the product's scale (`2^(2f)` for two fixed-point
/// factors: a bias shifted by `f`, or a value times a public one), added before the
/// truncation: `trunc(k(a, b) + addend)` (see `super::fused_add`).
pub fn product_plus(
    cx: &mut Lowerer,
    k: Kernel,
    a: &Operand,
    b: &Operand,
    dims: &[usize],
    addend: Option<&Shared>,
) -> Result<Shared, CompileError> {
    let f = cx.frac_bits();
    let plus = |cx: &mut Lowerer, z: Shared| match addend {
        Some(s) => cx.local2(Kernel::Add, &z, s, dims),
        None => z,
    };
    let public = |cx: &mut Lowerer, o: &Operand| -> Result<Option<[ValueId; 2]>, CompileError> {
        Ok(match o {
            Operand::Public(p) => Some([cx.public_ring(S0, p)?, cx.public_ring(S1, p)?]),
            Operand::Parameter(p) => Some(*p),
            _ => None,
        })
    };
    if let Some(p) = public(cx, a)? {
        let y = to_shared(cx, b)?;
        let z0 = cx.emit(S0, k.clone(), &[p[0], y.s[0]], ValueKind::Ring, dims);
        let z1 = cx.emit(S1, k, &[p[1], y.s[1]], ValueKind::Ring, dims);
        let z = plus(cx, Shared { s: [z0, z1] });
        return Ok(cx.truncate(&z));
    }
    if let Some(p) = public(cx, b)? {
        let x = to_shared(cx, a)?;
        let z0 = cx.emit(S0, k.clone(), &[x.s[0], p[0]], ValueKind::Ring, dims);
        let z1 = cx.emit(S1, k, &[x.s[1], p[1]], ValueKind::Ring, dims);
        let z = plus(cx, Shared { s: [z0, z1] });
        return Ok(cx.truncate(&z));
    }
    let x = masked_share(cx, a)?;
    let y = masked_share(cx, b)?;
    Ok(cx.product_truncated(&x, &y, k, dims, f, addend))
}

/// The shares of a product's operand: an input owner's value is shared already masked
/// ([`Lowerer::share_masked`]).
fn masked_share(cx: &mut Lowerer, o: &Operand) -> Result<Shared, CompileError> {
    match o {
        Operand::Private { value, .. } => Ok(cx.share_masked(*value)),
        _ => to_shared(cx, o),
    }
}

/// The mean of `(p - t)^2` over every element: one product, a local sum, a public scale.
fn mean_squared_error(cx: &mut Lowerer, p: &Operand, t: &Operand) -> Result<Shared, CompileError> {
    let shape = match p {
        Operand::Shared(x) => cx.shape(x.s[0]).to_vec(),
        Operand::Private { value, .. } => cx.shape(*value).to_vec(),
        Operand::Public(a) => a.shape().to_vec(),
        Operand::Parameter(v) => cx.shape(v[0]).to_vec(),
    };
    let n: usize = shape.iter().product();
    let d = add_sub(cx, true, p, t, &shape)?;
    let f = cx.frac_bits();
    let squared = cx.product_truncated(&d, &d, Kernel::Mul, &shape, f, None);
    let flat = cx.local(Kernel::Reshape { shape: vec![n] }, &squared, &[n]);
    let sum = cx.local(Kernel::ReduceSum { axis: 0 }, &flat, &[]);
    let scale = ArrayD::from_elem(vec![], 1.0 / n.max(1) as f32);
    let scale = [cx.public_ring(S0, &scale)?, cx.public_ring(S1, &scale)?];
    Ok(cx.mul_public(&sum, scale, &[]))
}

/// A rank-4 shape of a backward op, or an error naming the node.
fn four(cx: &Lowerer, dims: &[usize]) -> Result<[usize; 4], CompileError> {
    dims.try_into()
        .map_err(|_| cx.error(format!("expected an NHWC or HWIO shape, got {dims:?}")))
}

/// The gradient of average pooling, local: `dy` divided by each window's cell count, repeated
/// over the window's cells and added back into the input's cells (overlapping windows add up).
fn avgpool_grad(
    cx: &mut Lowerer,
    dy: &Shared,
    window: &shareflow_graphs::op::Window,
    input_shape: &[usize],
) -> Result<Shared, CompileError> {
    let input = four(cx, input_shape)?;
    let out = cx.shape(dy.s[0]).to_vec();
    let divisor = pool_divisor(cx, window, input_shape, &out)?;
    let scaled = cx.mul_public(dy, divisor, &out);
    let k = window.size[0] * window.size[1];
    let one = [&out[..], &[1]].concat();
    let cells = [&out[..], &[k]].concat();
    let column = cx.local(Kernel::Reshape { shape: one.clone() }, &scaled, &one);
    let spread = cx.local(
        Kernel::BroadcastTo {
            shape: cells.clone(),
        },
        &column,
        &cells,
    );
    let scatter = Kernel::WindowsAdd {
        window: *window,
        input_shape: input,
    };
    Ok(cx.local(scatter, &spread, input_shape))
}

/// `1 / (cells in the window)` as a public ring tensor on both servers: a scalar for VALID
/// windows, `[OH, OW, C]` for SAME ones (cells outside the image do not count, as in
/// TensorFlow).
fn pool_divisor(
    cx: &mut Lowerer,
    window: &shareflow_graphs::op::Window,
    input: &[usize],
    out: &[usize],
) -> Result<[crate::ir::ValueId; 2], CompileError> {
    let inv = match window.padding {
        Padding::Valid => ArrayD::from_elem(vec![], 1.0 / (window.size[0] * window.size[1]) as f32),
        Padding::Same => {
            let (oh, ow, c) = (out[1], out[2], out[3]);
            Array3::from_shape_fn((oh, ow, c), |(y, x, _)| {
                let cy = cells(y, window.size[0], window.stride[0], input[1], oh);
                let cx = cells(x, window.size[1], window.stride[1], input[2], ow);
                1.0 / (cy * cx).max(1) as f32
            })
            .into_dyn()
        }
    };
    Ok([cx.public_ring(S0, &inv)?, cx.public_ring(S1, &inv)?])
}

/// In-bounds cells of output position `o` along one axis of length `n` with SAME padding.
fn cells(o: usize, k: usize, s: usize, n: usize, out: usize) -> usize {
    let total = ((out - 1) * s + k).saturating_sub(n);
    let before = total / 2;
    let start = (o * s) as isize - before as isize;
    let lo = start.max(0);
    let hi = (start + k as isize).min(n as isize);
    (hi - lo).max(0) as usize
}

/// `x * scale + shift` with `scale = gamma / sqrt(var + eps)` and `shift = beta - mean * scale`
/// computed at compile time from the public statistics.
fn batchnorm(
    cx: &mut Lowerer,
    inputs: &[Operand],
    epsilon: f32,
    dims: &[usize],
) -> Result<Shared, CompileError> {
    let stat = |i: usize| match &inputs[i] {
        Operand::Public(a) => a
            .clone()
            .into_dimensionality::<Ix1>()
            .map_err(|e| e.to_string()),
        _ => Err("batchnorm statistics must be public".to_string()),
    };
    let (mean, var, gamma, beta) = match (stat(1), stat(2), stat(3), stat(4)) {
        (Ok(m), Ok(v), Ok(g), Ok(b)) => (m, v, g, b),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => {
            return Err(cx.error(e))
        }
    };
    let scale = &gamma / &var.mapv(|v| (v + epsilon).sqrt());
    let shift = &beta - &(&mean * &scale);
    let x = to_shared(cx, &inputs[0])?;
    let scale = scale.into_dyn();
    let s = [cx.public_ring(S0, &scale)?, cx.public_ring(S1, &scale)?];
    let scaled = cx.mul_public(&x, s, dims);
    let shift0 = cx.public_ring(S0, &shift.into_dyn())?;
    Ok(cx.add_public(&scaled, shift0, dims))
}

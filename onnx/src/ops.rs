//! The dispatch of ONNX operators, and the elementwise ones (Relu, Sigmoid, Add, Sub, Mul,
//! Softmax); the others are in `dense`, `window`, `reshape` and `shape_ops`.

use ndarray::{ArrayD, Axis as NdAxis, IxDyn};
use shareflow_graphs::Tensor;

use crate::convert::{Converter, Ctx, Value, SUPPORTED};
use crate::error::OnnxError;
use crate::layout::{flat_nhwc_order, Layout, Live};
use crate::tensor::{Attrs, Known};

/// The values a node defines, by name.
pub(crate) type Outputs = Vec<(String, Value)>;

/// The elementwise binary operators.
#[derive(Clone, Copy)]
enum Binary {
    Add,
    Sub,
    Mul,
}

impl Binary {
    fn graph(self, a: &Tensor, b: &Tensor) -> Tensor {
        match self {
            Binary::Add => a + b,
            Binary::Sub => a - b,
            Binary::Mul => a * b,
        }
    }
    fn host(self, a: &ArrayD<f32>, b: &ArrayD<f32>) -> Option<ArrayD<f32>> {
        let shape = broadcast_shape(a.shape(), b.shape())?;
        let a = a.broadcast(IxDyn(&shape))?;
        let b = b.broadcast(IxDyn(&shape))?;
        Some(match self {
            Binary::Add => &a + &b,
            Binary::Sub => &a - &b,
            Binary::Mul => &a * &b,
        })
    }
}

/// NumPy's broadcast shape of `a` and `b`.
fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| (i + s.len()).checked_sub(n).map_or(1, |j| s[j]);
    (0..n)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// The node's first output defined as `value`.
pub(crate) fn one_output(ctx: &Ctx, value: Value) -> Outputs {
    let name = ctx.node.output.first().cloned().unwrap_or_default();
    vec![(name, value)]
}

/// The node's first output defined as a computed value.
pub(crate) fn live_output(ctx: &Ctx, live: Live) -> Outputs {
    one_output(ctx, Value::Live(live))
}

impl Converter<'_> {
    /// Converts one node.
    pub fn convert(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
        self.no_extra_outputs(ctx)?;
        match ctx.node.op_type() {
            "Identity" | "Dropout" => Ok(one_output(ctx, self.value(ctx, 0)?)),
            "Constant" => {
                let name = ctx.node.output.first().cloned().unwrap_or_default();
                let k = Attrs::new(&ctx.node.attribute).constant(&name)?;
                Ok(one_output(ctx, Value::Known(k)))
            }
            "Relu" => self.unary(ctx, Tensor::relu),
            "Sigmoid" => self.unary(ctx, Tensor::sigmoid),
            "Add" => self.binary(ctx, Binary::Add),
            "Sub" => self.binary(ctx, Binary::Sub),
            "Mul" => self.binary(ctx, Binary::Mul),
            "Gemm" | "MatMul" => self.gemm(ctx),
            "Conv" => self.conv(ctx),
            "MaxPool" | "AveragePool" => self.pool(ctx),
            "GlobalAveragePool" => self.global_average_pool(ctx),
            "Softmax" => self.softmax(ctx),
            "Flatten" => self.flatten(ctx),
            "Reshape" => self.reshape(ctx),
            "Transpose" => self.transpose(ctx),
            "Pad" => self.pad(ctx),
            "BatchNormalization" => Err(ctx.err(
                "a batch normalisation is folded into the Conv or Gemm right before it, whose \
                 output nothing else reads; this one follows no such layer",
            )),
            op => match self.shape_op(ctx, op) {
                Some(result) => result,
                None => Err(OnnxError::Unsupported {
                    node: ctx.label.clone(),
                    op: op.to_string(),
                    supported: SUPPORTED,
                }),
            },
        }
    }

    /// Refuses a node whose second or later output (a dropout mask, pooling indices) is read.
    fn no_extra_outputs(&self, ctx: &Ctx) -> Result<(), OnnxError> {
        for name in ctx.node.output.iter().skip(1) {
            if !name.is_empty() && self.is_used(name) {
                return Err(ctx.err(format!(
                    "output {name:?} is used; only the first output is supported"
                )));
            }
        }
        Ok(())
    }

    fn unary(&mut self, ctx: &Ctx, f: fn(&Tensor) -> Tensor) -> Result<Outputs, OnnxError> {
        let x = self.live(ctx, 0)?;
        Ok(live_output(ctx, Live { t: f(&x.t), ..x }))
    }

    fn binary(&mut self, ctx: &Ctx, op: Binary) -> Result<Outputs, OnnxError> {
        let (a, b) = (self.value(ctx, 0)?, self.value(ctx, 1)?);
        let out = match (a, b) {
            (Value::Known(a), Value::Known(b)) => {
                let array = op.host(&a.array, &b.array).ok_or_else(|| {
                    ctx.err(format!(
                        "shapes {:?} and {:?} do not broadcast",
                        a.array.shape(),
                        b.array.shape()
                    ))
                })?;
                Value::Known(Known {
                    name: ctx.node.output.first().cloned().unwrap_or_default(),
                    array,
                    ints: None,
                    private: a.private || b.private,
                })
            }
            (Value::Live(x), Value::Known(k)) => {
                let (x, k) = self.with_constant(ctx, 0, &x, &k)?;
                Value::Live(Live {
                    t: op.graph(&x.t, &k),
                    ..x
                })
            }
            (Value::Known(k), Value::Live(x)) => {
                let (x, k) = self.with_constant(ctx, 1, &x, &k)?;
                Value::Live(Live {
                    t: op.graph(&k, &x.t),
                    ..x
                })
            }
            (Value::Live(a), Value::Live(b)) => {
                let (a, b) = (self.live(ctx, 0).map(|_| a)?, self.live(ctx, 1).map(|_| b)?);
                let (a, b) = if a.layout == b.layout && a.shape == b.shape {
                    (a, b)
                } else {
                    (a.to_plain(), b.to_plain())
                };
                let shape = broadcast_shape(&a.shape, &b.shape).ok_or_else(|| {
                    ctx.err(format!(
                        "shapes {:?} and {:?} do not broadcast",
                        a.shape, b.shape
                    ))
                })?;
                let expand = |v: &Live| {
                    if v.shape == shape || shape.ends_with(&v.shape) {
                        v.t.clone()
                    } else {
                        v.t.broadcast_to(shape.clone())
                    }
                };
                let t = op.graph(&expand(&a), &expand(&b));
                let layout = if a.shape == b.shape {
                    a.layout
                } else {
                    Layout::Plain
                };
                Value::Live(Live {
                    t,
                    layout,
                    shape,
                    pads: None,
                })
            }
        };
        Ok(one_output(ctx, out))
    }

    /// A known operand `k` of an elementwise op on `x`, in `x`'s graph layout and with a
    /// shape the graph broadcasts (equal to trailing dimensions of `x`).
    fn with_constant(
        &mut self,
        ctx: &Ctx,
        i: usize,
        x: &Live,
        k: &Known,
    ) -> Result<(Live, Tensor), OnnxError> {
        let x = self.live(ctx, 1 - i).map(|_| x.clone())?;
        let shape = broadcast_shape(&x.shape, k.array.shape());
        if shape.as_ref() != Some(&x.shape) {
            return Err(ctx.err(format!(
                "the constant operand {:?} of shape {:?} does not broadcast to the activation's \
                 shape {:?}",
                k.name,
                k.array.shape(),
                x.shape
            )));
        }
        // The constant in ONNX order at the activation's rank.
        let mut full = vec![1; x.shape.len() - k.array.ndim()];
        full.extend_from_slice(k.array.shape());
        let arr = k
            .array
            .clone()
            .into_shape_with_order(IxDyn(&full))
            .map_err(|e| ctx.err(e.to_string()))?;
        let arr = match x.layout {
            Layout::Plain => arr,
            Layout::Nhwc => arr.permuted_axes(IxDyn(&[0, 2, 3, 1])),
            Layout::FlatNhwc { c, h, w } => {
                if full[1] == 1 {
                    arr
                } else {
                    let order = flat_nhwc_order(c, h, w);
                    let mut out = arr.clone();
                    for (r, &k) in order.iter().enumerate() {
                        out.index_axis_mut(NdAxis(1), r)
                            .assign(&arr.index_axis(NdAxis(1), k));
                    }
                    out
                }
            }
        };
        let graph_shape = x.t.shape().0;
        // Drop the leading ones; broadcast the rest to the trailing dimensions if needed.
        let lead = arr.shape().iter().take_while(|&&d| d == 1).count();
        let trimmed: Vec<usize> = arr.shape()[lead..].to_vec();
        let arr = if graph_shape.ends_with(&trimmed) {
            arr.as_standard_layout()
                .into_owned()
                .into_shape_with_order(IxDyn(&trimmed))
                .map_err(|e| ctx.err(e.to_string()))?
        } else {
            let rank = if arr.shape()[0] == 1 {
                graph_shape.len() - 1
            } else {
                graph_shape.len()
            };
            let target = graph_shape[graph_shape.len() - rank..].to_vec();
            let squeezed = if rank < arr.ndim() {
                arr.index_axis(NdAxis(0), 0).to_owned()
            } else {
                arr
            };
            squeezed
                .broadcast(IxDyn(&target))
                .ok_or_else(|| ctx.err("constant does not broadcast"))?
                .to_owned()
        };
        let name = if arr == k.array {
            k.name.clone()
        } else {
            format!(
                "{}@{}",
                k.name,
                ctx.node.output.first().map_or("", String::as_str)
            )
        };
        let t = self.weight(k, &name, arr);
        Ok((x, t))
    }

    fn softmax(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
        let x = self.live(ctx, 0)?.to_plain();
        let rank = x.shape.len() as i64;
        let default = if self.opset < 13 { 1 } else { -1 };
        let axis = Attrs::new(&ctx.node.attribute).int("axis", default);
        let axis = if axis < 0 { axis + rank } else { axis };
        if axis != rank - 1 {
            return Err(ctx.err(format!(
                "softmax over axis {axis} of a {rank}-D value; only the last axis is supported"
            )));
        }
        Ok(live_output(
            ctx,
            Live {
                t: x.t.softmax(),
                ..x
            },
        ))
    }
}

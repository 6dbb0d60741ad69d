//! One conversion per ONNX operator.

use ndarray::{Array1, Array2, ArrayD, Axis as NdAxis, Ix2, IxDyn};
use shareflow_graphs::Tensor;

use crate::convert::{reshaped, Converter, Ctx, Value, SUPPORTED};
use crate::error::OnnxError;
use crate::layout::{flat_nhwc_order, Layout, Live};
use crate::padding::{self, Axis};
use crate::tensor::{Attrs, Known};

/// The values a node defines, by name.
type Outputs = Vec<(String, Value)>;

/// A per-channel scale and shift from a batch normalisation folded into the layer before.
struct Fold {
    scale: Vec<f32>,
    shift: Vec<f32>,
    /// The batch normalisation's output, which the folded layer defines instead.
    output: String,
}

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

fn one_output(ctx: &Ctx, value: Value) -> Outputs {
    let name = ctx.node.output.first().cloned().unwrap_or_default();
    vec![(name, value)]
}

fn live_output(ctx: &Ctx, live: Live) -> Outputs {
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

    /// Gemm and MatMul: `x [m, k] x w [k, n] + b`, the weight known (transposed, scaled,
    /// permuted for a flattened NHWC input, a following batch normalisation folded in).
    fn gemm(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
        let attrs = Attrs::new(&ctx.node.attribute);
        let is_gemm = ctx.node.op_type() == "Gemm";
        let x = self.live(ctx, 0)?;
        if x.shape.len() != 2 {
            return Err(ctx.err(format!(
                "input of shape {:?}; only 2-D inputs are supported",
                x.shape
            )));
        }
        if is_gemm && attrs.int("transA", 0) != 0 {
            return Err(ctx.err("transA = 1 is not supported"));
        }
        let x = match x.layout {
            Layout::Nhwc => x.to_plain(),
            _ => x,
        };
        let (alpha, beta, trans_b) = if is_gemm {
            (
                attrs.float("alpha", 1.0),
                attrs.float("beta", 1.0),
                attrs.int("transB", 0) != 0,
            )
        } else {
            (1.0, 1.0, false)
        };
        let w = match self.value(ctx, 1)? {
            Value::Known(w) => w,
            Value::Live(w) => {
                // Two activations: a plain product.
                let x = x.to_plain();
                let w = self.live(ctx, 1).map(|_| w.to_plain())?;
                let w = if trans_b { w.t.transpose(&[1, 0]) } else { w.t };
                let mut t = x.t.matmul(&w);
                if alpha != 1.0 {
                    t = &t * &self.g.constant(Vec::<usize>::new(), vec![alpha]);
                }
                let n = t.shape().0.get(1).copied().unwrap_or(0);
                if is_gemm && ctx.input_name(2).is_some() {
                    return Err(ctx.err("a bias with a computed weight is not supported"));
                }
                return Ok(live_output(ctx, Live::plain(t, vec![x.shape[0], n])));
            }
        };
        let w2 =
            w.array.clone().into_dimensionality::<Ix2>().map_err(|_| {
                ctx.err(format!("weight of shape {:?} is not 2-D", w.array.shape()))
            })?;
        let mut kernel: Array2<f32> = if trans_b { w2.t().to_owned() } else { w2 };
        if alpha != 1.0 {
            kernel.mapv_inplace(|v| v * alpha);
        }
        let (k_in, n) = kernel.dim();
        if k_in != x.shape[1] {
            return Err(ctx.err(format!(
                "weight {:?} takes {k_in} inputs, the input has {}",
                w.name, x.shape[1]
            )));
        }
        let bias = match (is_gemm, ctx.input_name(2)) {
            (true, Some(_)) => {
                let b = self.known(ctx, 2)?;
                let values: Vec<f32> = match b.array.len() {
                    1 => vec![b.array.iter().next().copied().unwrap_or(0.0); n],
                    len if len == n => b.array.iter().copied().collect(),
                    _ => {
                        return Err(ctx.err(format!(
                            "bias of shape {:?} for {n} outputs",
                            b.array.shape()
                        )))
                    }
                };
                Some((b, Array1::from(values).mapv(|v| v * beta)))
            }
            _ => None,
        };
        let fold = self.fold_batchnorm(ctx, n)?;
        let mut bias_values = bias.as_ref().map(|(_, b)| b.clone());
        if let Some(f) = &fold {
            for (j, mut col) in kernel.columns_mut().into_iter().enumerate() {
                col.mapv_inplace(|v| v * f.scale[j]);
            }
            let b = bias_values.unwrap_or_else(|| Array1::zeros(n));
            bias_values = Some(Array1::from_iter(
                b.iter()
                    .enumerate()
                    .map(|(j, &v)| v * f.scale[j] + f.shift[j]),
            ));
        }
        if let Layout::FlatNhwc { c, h, w } = x.layout {
            let order = flat_nhwc_order(c, h, w);
            kernel = kernel.select(NdAxis(0), &order);
        }
        let kernel_t = self.weight(&w, &w.name, kernel.into_dyn());
        let mut t = x.t.matmul(&kernel_t);
        if let Some(b) = bias_values {
            let owner = bias.map(|(k, _)| k).unwrap_or_else(|| Known {
                name: format!("{}/bias", w.name),
                array: ArrayD::zeros(IxDyn(&[0])),
                ints: None,
                private: true,
            });
            let bt = self.weight(&owner, &owner.name, b.into_dyn());
            t = t + bt;
        }
        let out = Live::plain(t, vec![x.shape[0], n]);
        Ok(self.outputs_after_fold(ctx, fold, out))
    }

    fn outputs_after_fold(&self, ctx: &Ctx, fold: Option<Fold>, out: Live) -> Outputs {
        match fold {
            Some(f) => vec![(f.output, Value::Live(out))],
            None => live_output(ctx, out),
        }
    }

    /// A batch normalisation that alone reads this node's output, with known statistics:
    /// its per-channel scale and shift (and it is marked converted).
    fn fold_batchnorm(&mut self, ctx: &Ctx, channels: usize) -> Result<Option<Fold>, OnnxError> {
        let Some(out) = ctx.node.output.first() else {
            return Ok(None);
        };
        let Some(bn) = self.only_consumer(out) else {
            return Ok(None);
        };
        if bn.op_type() != "BatchNormalization" || bn.input.first() != Some(out) {
            return Ok(None);
        }
        let attrs = Attrs::new(&bn.attribute);
        if attrs.int("training_mode", 0) != 0 {
            return Ok(None);
        }
        let params: Option<Vec<&Known>> = (1..5)
            .map(|i| bn.input.get(i).and_then(|n| self.known_named(n)))
            .collect();
        let Some(params) = params else {
            return Ok(None);
        };
        let eps = attrs.float("epsilon", 1e-5);
        let vec = |k: &Known| -> Result<Vec<f32>, OnnxError> {
            if k.array.len() != channels {
                return Err(ctx.err(format!(
                    "the batch normalisation after it has {} channels in {:?}, the layer {channels}",
                    k.array.len(),
                    k.name
                )));
            }
            Ok(k.array.iter().copied().collect())
        };
        let (gamma, beta, mean, var) = (
            vec(params[0])?,
            vec(params[1])?,
            vec(params[2])?,
            vec(params[3])?,
        );
        let scale: Vec<f32> = gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| g / (v + eps).sqrt())
            .collect();
        let shift = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        if let Some(i) = self.index_of(bn) {
            self.folded.insert(i);
        }
        Ok(Some(Fold {
            scale,
            shift,
            output: bn.output.first().cloned().unwrap_or_default(),
        }))
    }

    /// A 2-D window's stride and padding from the node's attributes over `x [N, C, H, W]`.
    fn window(
        &self,
        ctx: &Ctx,
        x: &Live,
        kernel: [usize; 2],
        extra_pads: [usize; 4],
        ceil: bool,
    ) -> Result<([usize; 2], shareflow_graphs::Padding, [usize; 2]), OnnxError> {
        let attrs = Attrs::new(&ctx.node.attribute);
        let pair = |name: &str, default: usize| -> Result<[usize; 2], OnnxError> {
            match attrs.ints(name) {
                None => Ok([default; 2]),
                Some(&[a, b]) if a >= 0 && b >= 0 => Ok([a as usize, b as usize]),
                Some(v) => Err(ctx.err(format!("{name} {v:?}: two non-negative values expected"))),
            }
        };
        let stride = pair("strides", 1)?;
        if pair("dilations", 1)? != [1, 1] {
            return Err(ctx.err("dilations other than 1 are not supported"));
        }
        let pads = match attrs.ints("pads") {
            None => [0; 4],
            Some(p) if p.len() == 4 && p.iter().all(|&v| v >= 0) => {
                [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
            }
            Some(p) => {
                return Err(ctx.err(format!("pads {p:?}: four non-negative values expected")))
            }
        };
        let pads: Vec<usize> = pads.iter().zip(extra_pads).map(|(a, b)| a + b).collect();
        let (h, w) = (
            x.shape[2] - extra_pads[0] - extra_pads[2],
            x.shape[3] - extra_pads[1] - extra_pads[3],
        );
        let axes = [
            Axis {
                input: h,
                kernel: kernel[0],
                stride: stride[0],
                pads: [pads[0], pads[2]],
                ceil,
            },
            Axis {
                input: w,
                kernel: kernel[1],
                stride: stride[1],
                pads: [pads[1], pads[3]],
                ceil,
            },
        ];
        let auto_pad = attrs.string("auto_pad", "NOTSET");
        let padding = padding::choose(&auto_pad, axes).map_err(|m| ctx.err(m))?;
        let out = [
            padding
                .output_len(h, kernel[0], stride[0])
                .ok_or_else(|| ctx.err("the window does not fit the input"))?,
            padding
                .output_len(w, kernel[1], stride[1])
                .ok_or_else(|| ctx.err("the window does not fit the input"))?,
        ];
        Ok((stride, padding, out))
    }

    /// The node's 4-D input in NHWC order, with the padding of a Pad before it.
    fn image_input(
        &mut self,
        ctx: &Ctx,
        allow_pads: bool,
    ) -> Result<(Live, [usize; 4]), OnnxError> {
        let x = match self.value(ctx, 0)? {
            Value::Live(l) if l.pads.is_some() && allow_pads => l,
            _ => self.live(ctx, 0)?,
        };
        let pads = x.pads.unwrap_or([0; 4]);
        let x = x.to_nhwc().ok_or_else(|| {
            ctx.err(format!(
                "input of shape {:?}; a 4-D NCHW image is expected",
                x.shape
            ))
        })?;
        Ok((x, pads))
    }

    fn conv(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
        let attrs = Attrs::new(&ctx.node.attribute);
        if attrs.int("group", 1) != 1 {
            return Err(ctx.err("group other than 1 is not supported"));
        }
        let (x, extra) = self.image_input(ctx, true)?;
        let w = self.known(ctx, 1)?;
        let &[o, i, kh, kw] = w.array.shape() else {
            return Err(ctx.err(format!(
                "filter {:?} of shape {:?}; a 2-D convolution's filter is 4-D",
                w.name,
                w.array.shape()
            )));
        };
        if i != x.shape[1] {
            return Err(ctx.err(format!(
                "filter {:?} takes {i} channels, the input has {}",
                w.name, x.shape[1]
            )));
        }
        if let Some(k) = attrs.ints("kernel_shape") {
            if k != [kh as i64, kw as i64] {
                return Err(ctx.err(format!("kernel_shape {k:?} differs from the filter's")));
            }
        }
        let (stride, padding, out) = self.window(ctx, &x, [kh, kw], extra, false)?;
        let mut filter = w.array.clone();
        let mut bias: Option<(Known, Vec<f32>)> = match ctx.input_name(2) {
            Some(_) => {
                let b = self.known(ctx, 2)?;
                if b.array.len() != o {
                    return Err(ctx.err(format!(
                        "bias {:?} has {} values for {o} filters",
                        b.name,
                        b.array.len()
                    )));
                }
                let v = b.array.iter().copied().collect();
                Some((b, v))
            }
            None => None,
        };
        let fold = self.fold_batchnorm(ctx, o)?;
        if let Some(f) = &fold {
            for (j, mut sub) in filter.outer_iter_mut().enumerate() {
                sub.mapv_inplace(|v| v * f.scale[j]);
            }
            let b = bias.as_ref().map_or(vec![0.0; o], |(_, v)| v.clone());
            let folded = (0..o).map(|j| b[j] * f.scale[j] + f.shift[j]).collect();
            let owner = bias.map(|(k, _)| k).unwrap_or_else(|| Known {
                name: format!("{}/bias", w.name),
                array: ArrayD::zeros(IxDyn(&[0])),
                ints: None,
                private: true,
            });
            bias = Some((owner, folded));
        }
        let hwio = filter
            .permuted_axes(IxDyn(&[2, 3, 1, 0]))
            .as_standard_layout()
            .into_owned();
        let wt = self.weight(&w, &w.name, hwio);
        let mut t = x.t.conv2d(&wt, stride, padding);
        if let Some((k, v)) = bias {
            let bt = self.weight(&k, &k.name, Array1::from(v).into_dyn());
            t = t + bt;
        }
        let shape = vec![x.shape[0], o, out[0], out[1]];
        let live = Live {
            t,
            layout: Layout::Nhwc,
            shape,
            pads: None,
        };
        Ok(self.outputs_after_fold(ctx, fold, live))
    }

    fn pool(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
        let attrs = Attrs::new(&ctx.node.attribute);
        let (x, _) = self.image_input(ctx, false)?;
        let kernel = match attrs.ints("kernel_shape") {
            Some(&[a, b]) if a > 0 && b > 0 => [a as usize, b as usize],
            other => {
                return Err(ctx.err(format!(
                    "kernel_shape {other:?}: two positive values expected"
                )))
            }
        };
        let ceil = attrs.int("ceil_mode", 0) != 0;
        let (stride, padding, out) = self.window(ctx, &x, kernel, [0; 4], ceil)?;
        let max = ctx.node.op_type() == "MaxPool";
        if !max
            && attrs.int("count_include_pad", 0) != 0
            && padding == shareflow_graphs::Padding::Same
        {
            return Err(ctx.err(
                "count_include_pad = 1 with padding is not supported (padded cells are not counted)",
            ));
        }
        let t = if max {
            x.t.maxpool2d(kernel, stride, padding)
        } else {
            x.t.avgpool2d(kernel, stride, padding)
        };
        let shape = vec![x.shape[0], x.shape[1], out[0], out[1]];
        Ok(live_output(
            ctx,
            Live {
                t,
                layout: Layout::Nhwc,
                shape,
                pads: None,
            },
        ))
    }

    fn global_average_pool(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
        let (x, _) = self.image_input(ctx, false)?;
        let (h, w) = (x.shape[2], x.shape[3]);
        let t =
            x.t.avgpool2d([h, w], [h, w], shareflow_graphs::Padding::Valid);
        let shape = vec![x.shape[0], x.shape[1], 1, 1];
        Ok(live_output(
            ctx,
            Live {
                t,
                layout: Layout::Nhwc,
                shape,
                pads: None,
            },
        ))
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

    fn flatten(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
        let axis = Attrs::new(&ctx.node.attribute).int("axis", 1);
        match self.value(ctx, 0)? {
            Value::Known(k) => {
                let axis = norm_axis(ctx, axis, k.array.ndim())?;
                let outer = k.array.shape()[..axis].iter().product::<usize>();
                let inner = k.array.shape()[axis..].iter().product::<usize>();
                let k = reshaped(&k, &[outer, inner]).ok_or_else(|| ctx.err("cannot flatten"))?;
                Ok(one_output(ctx, Value::Known(k)))
            }
            Value::Live(_) => {
                let x = self.live(ctx, 0)?;
                let axis = norm_axis(ctx, axis, x.shape.len())?;
                Ok(live_output(ctx, flatten_live(&x, axis)))
            }
        }
    }

    fn reshape(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
        let spec = self.known(ctx, 1)?;
        let Some(spec) = spec.ints.clone() else {
            return Err(ctx.err("the shape input is not an integer tensor"));
        };
        let allow_zero = Attrs::new(&ctx.node.attribute).int("allowzero", 0) != 0;
        let value = self.value(ctx, 0)?;
        let from: Vec<usize> = match &value {
            Value::Known(k) => k.array.shape().to_vec(),
            Value::Live(l) => l.shape.clone(),
        };
        let target = reshape_target(&from, &spec, allow_zero).map_err(|m| ctx.err(m))?;
        match value {
            Value::Known(k) => {
                let k = reshaped(&k, &target).ok_or_else(|| ctx.err("cannot reshape"))?;
                Ok(one_output(ctx, Value::Known(k)))
            }
            Value::Live(_) => {
                let x = self.live(ctx, 0)?;
                // `[N, -1]` after an NCHW image is a flatten.
                if x.layout != Layout::Plain
                    && target.len() == 2
                    && target[0] == x.shape[0]
                    && x.shape.len() == 4
                {
                    return Ok(live_output(ctx, flatten_live(&x, 1)));
                }
                if x.layout != Layout::Plain && target == x.shape {
                    return Ok(live_output(ctx, x));
                }
                // `[N, H, W, 1] -> [N, 1, H, W]` is NHWC to NCHW with one channel: a relabel.
                if x.layout == Layout::Plain
                    && x.shape.len() == 4
                    && x.shape[3] == 1
                    && target == [x.shape[0], 1, x.shape[1], x.shape[2]]
                {
                    return Ok(live_output(
                        ctx,
                        Live {
                            t: x.t,
                            layout: Layout::Nhwc,
                            shape: target,
                            pads: None,
                        },
                    ));
                }
                let x = x.to_plain();
                let t = x.t.reshape(target.clone());
                Ok(live_output(ctx, Live::plain(t, target)))
            }
        }
    }

    fn transpose(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
        let value = self.value(ctx, 0)?;
        let rank = match &value {
            Value::Known(k) => k.array.ndim(),
            Value::Live(l) => l.shape.len(),
        };
        let perm: Vec<usize> = match Attrs::new(&ctx.node.attribute).ints("perm") {
            None => (0..rank).rev().collect(),
            Some(p) => p
                .iter()
                .map(|&v| usize::try_from(v).ok().filter(|&v| v < rank))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ctx.err(format!("perm {p:?} for a {rank}-D value")))?,
        };
        let mut seen = perm.clone();
        seen.sort_unstable();
        if perm.len() != rank || seen != (0..rank).collect::<Vec<_>>() {
            return Err(ctx.err(format!("perm {perm:?} is not a permutation of {rank} axes")));
        }
        match value {
            Value::Known(k) => {
                let array = k
                    .array
                    .clone()
                    .permuted_axes(IxDyn(&perm))
                    .as_standard_layout()
                    .into_owned();
                Ok(one_output(ctx, Value::Known(Known { array, ..k })))
            }
            Value::Live(_) => {
                let x = self.live(ctx, 0)?;
                let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
                // NHWC to NCHW and back (as tf2onnx writes around a Keras convolution) only
                // relabel the graph's NHWC tensor.
                match (x.layout, perm.as_slice()) {
                    (Layout::Plain, [0, 3, 1, 2]) => {
                        return Ok(live_output(
                            ctx,
                            Live {
                                t: x.t,
                                layout: Layout::Nhwc,
                                shape,
                                pads: None,
                            },
                        ))
                    }
                    (Layout::Nhwc, [0, 2, 3, 1]) => {
                        return Ok(live_output(ctx, Live::plain(x.t, shape)))
                    }
                    _ => {}
                }
                let t = match x.layout {
                    // Graph axis of ONNX axis a: [0, 3, 1, 2][a].
                    Layout::Nhwc => {
                        let graph_axis = [0, 3, 1, 2];
                        let p: Vec<usize> = perm.iter().map(|&a| graph_axis[a]).collect();
                        x.t.transpose(&p)
                    }
                    _ => x.to_plain().t.transpose(&perm),
                };
                Ok(live_output(ctx, Live::plain(t, shape)))
            }
        }
    }

    /// A zero Pad of the spatial axes, which the following Conv takes over.
    fn pad(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
        let attrs = Attrs::new(&ctx.node.attribute);
        let mode = attrs.string("mode", "constant");
        if mode != "constant" {
            return Err(ctx.err(format!(
                "mode {mode:?}; only constant (zero) padding is supported"
            )));
        }
        let (pads, value) = if self.opset >= 11 {
            let pads = self.known(ctx, 1)?.ints.unwrap_or_default();
            let value = match ctx.input_name(2) {
                Some(_) => self
                    .known(ctx, 2)?
                    .array
                    .iter()
                    .next()
                    .copied()
                    .unwrap_or(0.0),
                None => 0.0,
            };
            if ctx.input_name(3).is_some() {
                return Err(ctx.err("the axes input is not supported"));
            }
            (pads, value)
        } else {
            (
                attrs.ints("pads").map(<[i64]>::to_vec).unwrap_or_default(),
                attrs.float("value", 0.0),
            )
        };
        if value != 0.0 {
            return Err(ctx.err(format!("padding value {value}; only zeros are supported")));
        }
        let x = self.live(ctx, 0)?;
        let ok = pads.len() == 8
            && x.shape.len() == 4
            && pads.iter().all(|&p| p >= 0)
            && [0, 1, 4, 5].iter().all(|&i| pads[i] == 0);
        if !ok {
            return Err(ctx.err(format!(
                "pads {pads:?}: only non-negative padding of the height and width of a 4-D NCHW \
                 image is supported"
            )));
        }
        let p = [
            pads[2] as usize,
            pads[3] as usize,
            pads[6] as usize,
            pads[7] as usize,
        ];
        let consumer = ctx.node.output.first().and_then(|o| self.only_consumer(o));
        if consumer.map(|n| n.op_type()) != Some("Conv") {
            return Err(ctx.err("a Pad is supported only when a Conv alone reads its output"));
        }
        let mut shape = x.shape.clone();
        shape[2] += p[0] + p[2];
        shape[3] += p[1] + p[3];
        Ok(live_output(
            ctx,
            Live {
                shape,
                pads: Some(p),
                ..x
            },
        ))
    }
}

/// `axis` in `0..=rank` (negative counts from the end).
fn norm_axis(ctx: &Ctx, axis: i64, rank: usize) -> Result<usize, OnnxError> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(a)
        .ok()
        .filter(|&a| a <= rank)
        .ok_or_else(|| ctx.err(format!("axis {axis} of a {rank}-D value")))
}

/// `x` flattened to `[prod(shape[..axis]), prod(shape[axis..])]`; a flattened NHWC image keeps
/// the graph's order.
fn flatten_live(x: &Live, axis: usize) -> Live {
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis..].iter().product();
    let target = vec![outer, inner];
    match x.layout {
        Layout::Nhwc if axis == 1 => {
            let (c, h, w) = (x.shape[1], x.shape[2], x.shape[3]);
            let layout = if c == 1 || h * w == 1 {
                Layout::Plain
            } else {
                Layout::FlatNhwc { c, h, w }
            };
            Live {
                t: x.t.reshape(target.clone()),
                layout,
                shape: target,
                pads: None,
            }
        }
        Layout::FlatNhwc { .. } if axis == 1 => x.clone(),
        _ => {
            let x = x.to_plain();
            Live::plain(x.t.reshape(target.clone()), target)
        }
    }
}

/// ONNX Reshape's target shape: 0 copies the input's dimension (unless `allow_zero`), -1 is
/// inferred.
fn reshape_target(from: &[usize], spec: &[i64], allow_zero: bool) -> Result<Vec<usize>, String> {
    let total: usize = from.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allow_zero => out.push(
                *from
                    .get(i)
                    .ok_or_else(|| format!("shape {spec:?}: no dimension {i} to copy"))?,
            ),
            d if d >= 0 => out.push(d as usize),
            _ => return Err(format!("shape {spec:?} is not a valid target")),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("shape {spec:?} does not fit {total} elements"));
        }
        out[i] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(format!("shape {spec:?} does not fit {from:?}"));
    }
    Ok(out)
}

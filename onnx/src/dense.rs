//! Gemm and MatMul, with the batch normalisation after them folded in.

use ndarray::{Array1, Array2, ArrayD, Axis as NdAxis, Ix2, IxDyn};

use crate::convert::{Converter, Ctx, Value};
use crate::error::OnnxError;
use crate::layout::{flat_nhwc_order, Layout, Live};
use crate::ops::{live_output, Outputs};
use crate::tensor::{Attrs, Known};

/// A per-channel scale and shift from a batch normalisation folded into the layer before.
pub(crate) struct Fold {
    pub(crate) scale: Vec<f32>,
    pub(crate) shift: Vec<f32>,
    /// The batch normalisation's output, which the folded layer defines instead.
    pub(crate) output: String,
}

impl Converter<'_> {
    /// Gemm and MatMul: `x [m, k] x w [k, n] + b`, the weight known (transposed, scaled,
    /// permuted for a flattened NHWC input, a following batch normalisation folded in).
    pub(crate) fn gemm(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
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

    pub(crate) fn outputs_after_fold(&self, ctx: &Ctx, fold: Option<Fold>, out: Live) -> Outputs {
        match fold {
            Some(f) => vec![(f.output, Value::Live(out))],
            None => live_output(ctx, out),
        }
    }

    /// A batch normalisation that alone reads this node's output, with known statistics:
    /// its per-channel scale and shift (and it is marked converted).
    pub(crate) fn fold_batchnorm(
        &mut self,
        ctx: &Ctx,
        channels: usize,
    ) -> Result<Option<Fold>, OnnxError> {
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
}

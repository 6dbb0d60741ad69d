//! Conv, the pools and Pad: windows over NHWC images, their padding VALID or SAME.

use ndarray::{Array1, ArrayD, IxDyn};

use crate::convert::{Converter, Ctx, Value};
use crate::error::OnnxError;
use crate::layout::{Layout, Live};
use crate::ops::{live_output, Outputs};
use crate::padding::{self, Axis};
use crate::tensor::{Attrs, Known};

impl Converter<'_> {
    /// A 2-D window's stride and padding from the node's attributes over `x [N, C, H, W]`.
    pub(crate) fn window(
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
    pub(crate) fn image_input(
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

    pub(crate) fn conv(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
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

    pub(crate) fn pool(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
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

    pub(crate) fn global_average_pool(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
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

    /// A zero Pad of the spatial axes, which the following Conv takes over.
    pub(crate) fn pad(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
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

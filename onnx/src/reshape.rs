//! Flatten, Reshape and Transpose: relabelling NHWC values where they can, moving them only
//! where they must.

use ndarray::IxDyn;

use crate::convert::{reshaped, Converter, Ctx, Value};
use crate::error::OnnxError;
use crate::layout::{Layout, Live};
use crate::ops::{live_output, one_output, Outputs};
use crate::tensor::{Attrs, Known};

impl Converter<'_> {
    pub(crate) fn flatten(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
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

    pub(crate) fn reshape(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
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

    pub(crate) fn transpose(&mut self, ctx: &Ctx) -> Result<Outputs, OnnxError> {
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

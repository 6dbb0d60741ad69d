//! Shape arithmetic evaluated at import time: Shape, Gather, Cast, Slice, Concat, Unsqueeze
//! and Squeeze on values known at import time (or the shape of a computed value), as
//! exporters write around a Reshape (tf2onnx's flatten: Shape, Gather, Cast, Slice, Concat).
//! On a computed value they are refused: the graph has no such ops.

use ndarray::{ArrayD, IxDyn};

use crate::convert::{Converter, Ctx, Value};
use crate::error::OnnxError;
use crate::proto::tensor_proto::DataType;
use crate::tensor::{Attrs, Known};

/// A 1-D (or scalar) integer value of the node's output.
fn ints_value(ctx: &Ctx, ints: Vec<i64>, scalar: bool) -> Vec<(String, Value)> {
    let dims: Vec<usize> = if scalar { vec![] } else { vec![ints.len()] };
    let array = ArrayD::from_shape_vec(IxDyn(&dims), ints.iter().map(|&v| v as f32).collect())
        .unwrap_or_else(|_| ArrayD::zeros(IxDyn(&[0])));
    let name = ctx.node.output.first().cloned().unwrap_or_default();
    vec![(
        name.clone(),
        Value::Known(Known {
            name,
            array,
            ints: Some(ints),
            private: false,
        }),
    )]
}

/// Index `i` (negative from the end) of a length-`n` axis, clamped as Slice does.
fn clamp(i: i64, n: usize) -> i64 {
    let n = n as i64;
    let i = if i < 0 { i + n } else { i };
    i.clamp(0, n)
}

impl Converter<'_> {
    /// The integer values of known input `i` (1-D or scalar).
    fn known_ints(&self, ctx: &Ctx, i: usize) -> Result<(Vec<i64>, bool), OnnxError> {
        let k = self.known(ctx, i)?;
        if k.array.ndim() > 1 {
            return Err(ctx.err(format!(
                "input {i} has shape {:?}; shape arithmetic on 0-D and 1-D values only",
                k.array.shape()
            )));
        }
        let ints = k
            .ints
            .clone()
            .unwrap_or_else(|| k.array.iter().map(|&v| v as i64).collect());
        Ok((ints, k.array.ndim() == 0))
    }

    /// Converts a shape-arithmetic node, or `None` when `op` is not one.
    pub fn shape_op(
        &mut self,
        ctx: &Ctx,
        op: &str,
    ) -> Option<Result<Vec<(String, Value)>, OnnxError>> {
        let result = match op {
            "Shape" => self.shape(ctx),
            "Gather" => self.gather(ctx),
            "Cast" => self.cast(ctx),
            "Slice" => self.slice(ctx),
            "Concat" => self.concat(ctx),
            "Unsqueeze" | "Squeeze" => self.squeeze(ctx, op == "Unsqueeze"),
            _ => return None,
        };
        Some(result)
    }

    fn shape(&mut self, ctx: &Ctx) -> Result<Vec<(String, Value)>, OnnxError> {
        let dims: Vec<usize> = match self.value(ctx, 0)? {
            Value::Known(k) => k.array.shape().to_vec(),
            Value::Live(l) => l.shape,
        };
        let attrs = Attrs::new(&ctx.node.attribute);
        let n = dims.len();
        let start = clamp(attrs.int("start", 0), n) as usize;
        let end = clamp(attrs.int("end", n as i64), n) as usize;
        let ints = dims[start..end.max(start)]
            .iter()
            .map(|&d| d as i64)
            .collect();
        Ok(ints_value(ctx, ints, false))
    }

    fn gather(&mut self, ctx: &Ctx) -> Result<Vec<(String, Value)>, OnnxError> {
        if Attrs::new(&ctx.node.attribute).int("axis", 0) != 0 {
            return Err(ctx.err("Gather along an axis other than 0 is not supported"));
        }
        let (data, _) = self.known_ints(ctx, 0)?;
        let (indices, scalar) = self.known_ints(ctx, 1)?;
        let out = indices
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + data.len() as i64 } else { i };
                usize::try_from(j)
                    .ok()
                    .and_then(|j| data.get(j).copied())
                    .ok_or_else(|| ctx.err(format!("index {i} of {} values", data.len())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ints_value(ctx, out, scalar))
    }

    fn cast(&mut self, ctx: &Ctx) -> Result<Vec<(String, Value)>, OnnxError> {
        let to = Attrs::new(&ctx.node.attribute).int("to", 0) as i32;
        let to_float = [DataType::Float, DataType::Double, DataType::Float16]
            .iter()
            .any(|d| *d as i32 == to);
        match self.value(ctx, 0)? {
            Value::Known(mut k) => {
                k.ints = if to_float {
                    None
                } else {
                    k.array.mapv_inplace(f32::trunc);
                    Some(k.array.iter().map(|&v| v as i64).collect())
                };
                k.name = ctx.node.output.first().cloned().unwrap_or_default();
                Ok(vec![(k.name.clone(), Value::Known(k))])
            }
            // A cast of a computed float value to a float type changes nothing.
            Value::Live(l) if to_float => Ok(vec![(
                ctx.node.output.first().cloned().unwrap_or_default(),
                Value::Live(l),
            )]),
            Value::Live(_) => {
                Err(ctx.err("a cast of a computed value to integers is not supported"))
            }
        }
    }

    fn slice(&mut self, ctx: &Ctx) -> Result<Vec<(String, Value)>, OnnxError> {
        let (data, _) = self.known_ints(ctx, 0)?;
        let (starts, _) = self.known_ints(ctx, 1)?;
        let (ends, _) = self.known_ints(ctx, 2)?;
        let axes = match ctx.input_name(3) {
            Some(_) => self.known_ints(ctx, 3)?.0,
            None => vec![0],
        };
        let steps = match ctx.input_name(4) {
            Some(_) => self.known_ints(ctx, 4)?.0,
            None => vec![1],
        };
        if starts.len() != 1
            || ends.len() != 1
            || !matches!(axes.as_slice(), [0] | [-1])
            || steps != [1]
        {
            return Err(ctx.err("only a step-1 slice of a 1-D value is supported"));
        }
        let n = data.len();
        let (s, e) = (clamp(starts[0], n) as usize, clamp(ends[0], n) as usize);
        Ok(ints_value(ctx, data[s..e.max(s)].to_vec(), false))
    }

    fn concat(&mut self, ctx: &Ctx) -> Result<Vec<(String, Value)>, OnnxError> {
        let mut out = Vec::new();
        for i in 0..ctx.node.input.len() {
            out.extend(self.known_ints(ctx, i)?.0);
        }
        Ok(ints_value(ctx, out, false))
    }

    fn squeeze(&mut self, ctx: &Ctx, unsqueeze: bool) -> Result<Vec<(String, Value)>, OnnxError> {
        let (ints, scalar) = self.known_ints(ctx, 0)?;
        match (unsqueeze, scalar, ints.len()) {
            (true, true, _) => Ok(ints_value(ctx, ints, false)),
            (false, false, 1) => Ok(ints_value(ctx, ints, true)),
            _ => Err(ctx.err("only a scalar unsqueezed to 1-D, or back, is supported")),
        }
    }
}

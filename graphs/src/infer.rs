//! Shape and visibility inference: what an op produces from its inputs.

use crate::error::GraphError;
use crate::op::{Op, Window};
use crate::types::{Shape, Visibility};

/// What is known of an input while inferring.
pub struct InputInfo<'a> {
    /// The input's name, for error messages.
    pub label: String,
    /// The input's shape.
    pub shape: &'a Shape,
    /// Who may see the input.
    pub visibility: Visibility,
}

/// The shape and visibility of `op` applied to `inputs`, or an error naming `node`.
pub fn infer(
    node: &str,
    op: &Op,
    own_shape: &Shape,
    inputs: &[InputInfo<'_>],
) -> Result<(Shape, Visibility), GraphError> {
    let err = |message: String| GraphError::Shape {
        node: node.to_string(),
        op: op.name(),
        message,
    };
    if inputs.len() != op.arity() {
        return Err(GraphError::Arity {
            node: node.to_string(),
            op: op.name(),
            expected: op.arity(),
            got: inputs.len(),
        });
    }
    let vis = Visibility::combine(inputs.iter().map(|i| i.visibility));
    let dims = |i: usize| inputs[i].shape.dims();
    let shape = match op {
        Op::Constant { values } => {
            if values.len() != own_shape.numel() {
                return Err(err(format!(
                    "{} values for shape {own_shape}",
                    values.len()
                )));
            }
            return Ok((own_shape.clone(), Visibility::Public));
        }
        Op::Input { party, .. } => return Ok((own_shape.clone(), Visibility::Private(*party))),
        Op::Add | Op::Sub | Op::Mul => broadcast(dims(0), dims(1)).ok_or_else(|| {
            err(format!(
                "operands {} and {} do not broadcast (the second must equal the first or its trailing dimensions)",
                inputs[0].shape, inputs[1].shape
            ))
        })?,
        Op::Neg | Op::Relu | Op::Sigmoid => inputs[0].shape.clone(),
        Op::Softmax => {
            if dims(0).is_empty() {
                return Err(err("softmax of a scalar".into()));
            }
            inputs[0].shape.clone()
        }
        Op::MatMul => match (dims(0), dims(1)) {
            ([m, k], [k2, n]) if k == k2 => Shape::new([*m, *n]),
            _ => {
                return Err(err(format!(
                    "cannot multiply {} by {} (need [m,k] x [k,n])",
                    inputs[0].shape, inputs[1].shape
                )))
            }
        },
        Op::Conv2d { stride, padding } => match (dims(0), dims(1)) {
            ([n, h, w, c], [kh, kw, ci, co]) if c == ci => {
                let win = Window {
                    size: [*kh, *kw],
                    stride: *stride,
                    padding: *padding,
                };
                let (oh, ow) = window_out(&win, *h, *w).ok_or_else(|| {
                    err(format!(
                        "filter {}x{} stride {:?} does not fit input {}",
                        kh, kw, stride, inputs[0].shape
                    ))
                })?;
                Shape::new([*n, oh, ow, *co])
            }
            _ => {
                return Err(err(format!(
                    "input {} (NHWC) and filter {} (HWIO) do not fit",
                    inputs[0].shape, inputs[1].shape
                )))
            }
        },
        Op::AvgPool2d { window } | Op::MaxPool2d { window } => match dims(0) {
            [n, h, w, c] => {
                let (oh, ow) = window_out(window, *h, *w).ok_or_else(|| {
                    err(format!(
                        "window {:?} stride {:?} does not fit input {}",
                        window.size, window.stride, inputs[0].shape
                    ))
                })?;
                Shape::new([*n, oh, ow, *c])
            }
            _ => return Err(err(format!("input {} is not NHWC", inputs[0].shape))),
        },
        Op::BatchNorm { .. } => {
            let x = dims(0);
            let Some(&c) = x.last() else {
                return Err(err("batchnorm of a scalar".into()));
            };
            for input in &inputs[1..] {
                if input.shape.dims() != [c] {
                    return Err(err(format!(
                        "statistic {} has shape {}, expected [{c}]",
                        input.label, input.shape
                    )));
                }
                if let Visibility::Private(p) = input.visibility {
                    return Err(GraphError::PrivateAsPublic {
                        node: node.to_string(),
                        input: input.label.clone(),
                        party: p.to_string(),
                    });
                }
            }
            inputs[0].shape.clone()
        }
        Op::Reshape { shape } => {
            let target = Shape::new(shape.clone());
            if target.numel() != inputs[0].shape.numel() {
                return Err(err(format!(
                    "cannot reshape {} ({} elements) to {}",
                    inputs[0].shape,
                    inputs[0].shape.numel(),
                    target
                )));
            }
            target
        }
        Op::Transpose { perm } => {
            let d = dims(0);
            let mut seen = vec![false; d.len()];
            let ok = perm.len() == d.len()
                && perm
                    .iter()
                    .all(|&p| p < d.len() && !std::mem::replace(&mut seen[p], true));
            if !ok {
                return Err(err(format!(
                    "{perm:?} is not a permutation of the axes of {}",
                    inputs[0].shape
                )));
            }
            Shape::new(perm.iter().map(|&p| d[p]).collect::<Vec<_>>())
        }
        Op::Concat { axis } => {
            let (a, b) = (dims(0), dims(1));
            let fits = a.len() == b.len()
                && *axis < a.len()
                && a.iter().zip(b).enumerate().all(|(i, (x, y))| i == *axis || x == y);
            if !fits {
                return Err(err(format!(
                    "cannot join {} and {} along axis {axis}",
                    inputs[0].shape, inputs[1].shape
                )));
            }
            let mut out = a.to_vec();
            out[*axis] += b[*axis];
            Shape::new(out)
        }
        Op::Slice { axis, start, len } => {
            let d = dims(0);
            let fits = d
                .get(*axis)
                .is_some_and(|&n| start.checked_add(*len).is_some_and(|end| end <= n));
            if !fits {
                return Err(err(format!(
                    "elements {start}..{} of axis {axis} are not in {}",
                    start.saturating_add(*len),
                    inputs[0].shape
                )));
            }
            let mut out = d.to_vec();
            out[*axis] = *len;
            Shape::new(out)
        }
        Op::ReduceSum { axis } => {
            let d = dims(0);
            if *axis >= d.len() {
                return Err(err(format!("axis {axis} out of range for {}", inputs[0].shape)));
            }
            let mut out = d.to_vec();
            out.remove(*axis);
            Shape::new(out)
        }
        Op::Argmax => {
            let d = dims(0);
            if d.is_empty() {
                return Err(err("argmax of a scalar".into()));
            }
            Shape::new(d[..d.len() - 1].to_vec())
        }
        Op::Output { party, .. } => {
            return Ok((inputs[0].shape.clone(), Visibility::Private(*party)));
        }
        Op::Variable { .. } => return Ok((own_shape.clone(), Visibility::Shared)),
        Op::Parameter { .. } => return Ok((own_shape.clone(), Visibility::Public)),
        Op::Assign => {
            if inputs[0].shape != inputs[1].shape {
                return Err(err(format!(
                    "value {} of shape {} for variable {} of shape {}",
                    inputs[1].label, inputs[1].shape, inputs[0].label, inputs[0].shape
                )));
            }
            return Ok((inputs[0].shape.clone(), Visibility::Shared));
        }
        _ => return crate::infer_grad::infer_grad(op, inputs, &err).map(|s| (s, vis)),
    };
    Ok((shape, vis))
}

/// Output shape of `a (op) b` where `b` equals `a` or is a trailing part of it (a bias), or is
/// a scalar.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Shape> {
    if b.len() <= a.len() && a[a.len() - b.len()..] == *b {
        Some(Shape::new(a.to_vec()))
    } else if a.len() < b.len() && b[b.len() - a.len()..] == *a {
        Some(Shape::new(b.to_vec()))
    } else {
        None
    }
}

/// Output height and width of a window over an `h x w` image.
pub fn window_out(win: &Window, h: usize, w: usize) -> Option<(usize, usize)> {
    Some((
        win.padding.output_len(h, win.size[0], win.stride[0])?,
        win.padding.output_len(w, win.size[1], win.stride[1])?,
    ))
}

//! One local kernel on one party: the single `match` from compiled kernels to the ops crate.

use std::collections::HashMap;

use ndarray::{ArrayD, Ix4, IxDyn};
use shareflow_compiler::ir::{Draw, Kernel};
use shareflow_compiler::plain_op;
use shareflow_compiler::Instr;
use shareflow_ops::fixed::FixedPoint;
use shareflow_ops::im2col::im2col;
use shareflow_ops::prg::{fresh_seed, Domain, Prg};
use shareflow_ops::ring::{self, PrimeField};
use shareflow_ops::{OpsError, Value};

use crate::{Result, RuntimeError};

/// What a kernel may read besides its inputs.
pub struct KernelContext<'a> {
    pub session: u128,
    pub inputs: &'a HashMap<String, ArrayD<f32>>,
}

fn ring<'a>(v: &'a Value, op: &'static str) -> std::result::Result<&'a ArrayD<u64>, OpsError> {
    v.as_ring(op)
}

/// Runs a local kernel (not a send, receive or output) on its argument values.
pub fn run(instr: &Instr, args: &[&Value], cx: &KernelContext<'_>) -> Result<Value> {
    let at = |e: OpsError| RuntimeError::Node {
        node: label(instr),
        message: e.to_string(),
    };
    let r = |i: usize| ring(args[i], instr.kernel.name()).map_err(at);
    let value = match &instr.kernel {
        Kernel::Input { name } => {
            let v = cx.inputs.get(name).ok_or_else(|| RuntimeError::Node {
                node: label(instr),
                message: format!("no value given for input {name:?}"),
            })?;
            if v.shape() != instr.shape.as_slice() {
                return Err(RuntimeError::Node {
                    node: label(instr),
                    message: format!(
                        "input {name:?} has shape {:?}, the graph expects {:?}",
                        v.shape(),
                        instr.shape
                    ),
                });
            }
            Value::Float(v.clone())
        }
        Kernel::FloatConst { values } => Value::Float(
            ArrayD::from_shape_vec(IxDyn(&instr.shape), values.clone()).map_err(|e| shape_err(instr, e))?,
        ),
        Kernel::RingConst { values } => Value::Ring(
            ArrayD::from_shape_vec(IxDyn(&instr.shape), values.clone()).map_err(|e| shape_err(instr, e))?,
        ),
        Kernel::Plain { op } => {
            let floats = args
                .iter()
                .map(|a| a.as_float("plain"))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(at)?;
            let shape = shareflow_graphs::Shape::new(instr.shape.clone());
            Value::Float(plain_op::eval(op, &shape, &floats).map_err(at)?.value)
        }
        Kernel::Encode { frac_bits } => {
            let x = args[0].as_float("encode").map_err(at)?;
            Value::Ring(FixedPoint::new(*frac_bits).map_err(at)?.encode(x).map_err(at)?)
        }
        Kernel::Decode { frac_bits } => {
            Value::Float(FixedPoint::new(*frac_bits).map_err(at)?.decode_f32(r(0)?))
        }
        Kernel::Add => Value::Ring(ring::add(r(0)?, r(1)?).map_err(at)?),
        Kernel::Sub => Value::Ring(ring::sub(r(0)?, r(1)?).map_err(at)?),
        Kernel::Neg => Value::Ring(ring::neg(r(0)?)),
        Kernel::Mul => Value::Ring(ring::mul(r(0)?, r(1)?).map_err(at)?),
        Kernel::MatMul => Value::Ring(ring::matmul(r(0)?, r(1)?).map_err(at)?),
        Kernel::Conv2d { stride, padding } => Value::Ring(
            ring::conv2d(r(0)?, r(1)?, (stride[0], stride[1]), plain_op::padding(*padding)).map_err(at)?,
        ),
        Kernel::SumPool2d { window } => Value::Ring(sum_pool(r(0)?, window, &instr.shape).map_err(at)?),
        Kernel::ShrArith { bits } => Value::Ring(ring::shr_arith(r(0)?, *bits).map_err(at)?),
        Kernel::ShrLogical { bits } => Value::Ring(ring::shr_logical(r(0)?, *bits).map_err(at)?),
        Kernel::Shl { bits } => Value::Ring(ring::shl(r(0)?, *bits).map_err(at)?),
        Kernel::XorConst { value } => Value::Ring(r(0)?.mapv(|w| w ^ value)),
        Kernel::Reshape { shape } => Value::Ring(ring::reshape(r(0)?, shape).map_err(at)?),
        Kernel::Transpose { perm } => Value::Ring(ring::transpose(r(0)?, perm).map_err(at)?),
        Kernel::ReduceSum { axis } => Value::Ring(ring::sum_axis(r(0)?, *axis).map_err(at)?),
        Kernel::SampleSeed => Value::Seed(fresh_seed().map_err(at)?),
        Kernel::Expand { stream, draw, shape } => {
            let seed = args[0].as_seed("expand").map_err(at)?;
            let purpose = match draw {
                Draw::Ring => 1,
                Draw::OddRing => 2,
                Draw::Field { p } => 0x100 | *p as u32,
                Draw::Bits => 3,
            };
            let mut prg = Prg::new(seed, Domain::new(cx.session, *stream, purpose));
            match draw {
                Draw::Ring => Value::Ring(prg.ring(shape).map_err(at)?),
                Draw::OddRing => Value::OddRing(prg.odd_ring(shape).map_err(at)?),
                Draw::Field { p } => {
                    Value::Small(prg.field(PrimeField::new(*p).map_err(at)?, shape).map_err(at)?)
                }
                Draw::Bits => Value::Small(prg.bits(shape).map_err(at)?),
            }
        }
        Kernel::Output { .. } | Kernel::Send { .. } | Kernel::Recv { .. } => {
            return Err(RuntimeError::Node {
                node: label(instr),
                message: "not a local kernel".into(),
            })
        }
    };
    Ok(value)
}

/// Sums over each window: im2col (zero padding) then a sum over the window cells.
fn sum_pool(
    x: &ArrayD<u64>,
    window: &shareflow_graphs::op::Window,
    out_shape: &[usize],
) -> std::result::Result<ArrayD<u64>, OpsError> {
    let x4 = x.view().into_dimensionality::<Ix4>().map_err(|_| OpsError::InvalidArgument {
        op: "sumpool2d",
        message: format!("expected NHWC, got {:?}", x.shape()),
    })?;
    let c = x.shape()[3];
    let cols = im2col(x4, &plain_op::window(window))?;
    let rows = cols.nrows();
    let cells = window.size[0] * window.size[1];
    let cols = cols.into_dyn();
    let grouped = ring::reshape(&cols, &[rows, cells, c])?;
    let summed = ring::sum_axis(&grouped, 1)?;
    ring::reshape(&summed, out_shape)
}

/// How errors name an instruction: its id, kernel and logical origin.
pub fn label(instr: &Instr) -> String {
    match &instr.origin {
        Some(o) => format!("{} ({} of {o})", instr.id, instr.kernel.name()),
        None => format!("{} ({})", instr.id, instr.kernel.name()),
    }
}

fn shape_err(instr: &Instr, e: ndarray::ShapeError) -> RuntimeError {
    RuntimeError::Node {
        node: label(instr),
        message: e.to_string(),
    }
}

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
    /// Separates the PRG streams of one run from every other run's.
    pub session: u128,
    /// The party's input values for this run, by input name.
    pub inputs: &'a HashMap<String, ArrayD<f32>>,
    /// INSECURE, tests only: derive every sampled seed from this one (see
    /// [`super::Randomness::Replay`]).
    #[cfg(feature = "test-randomness")]
    pub replay: Option<[u8; 32]>,
}

fn ring<'a>(v: &'a Value, op: &'static str) -> std::result::Result<&'a ArrayD<u64>, OpsError> {
    v.as_ring(op)
}

/// The operands (by position) that `kernel` may overwrite when they are not used again: an
/// elementwise ring kernel whose output has the operand's shape (the first operand, or for a
/// sum or a product either), and a reshape, which keeps the operand's buffer.
pub fn overwritable(kernel: &Kernel) -> &'static [usize] {
    match kernel {
        Kernel::Add | Kernel::Mul => &[0, 1],
        Kernel::Reshape { .. } => &[0],
        Kernel::Sub
        | Kernel::Neg
        | Kernel::Shl { .. }
        | Kernel::ShrLogical { .. }
        | Kernel::ShrArith { .. }
        | Kernel::XorConst { .. }
        | Kernel::AndConst { .. } => &[0],
        _ => &[],
    }
}

/// Runs a kernel of [`overwritable`] in place: `x` is its operand at position `taken`, which
/// is not used again, and `rest` the other operands in order. The result has `x`'s buffer,
/// unless another operand broadcasts `x` to a larger shape: then [`run`] computes it.
pub fn run_in_place(
    instr: &Instr,
    taken: usize,
    mut x: ArrayD<u64>,
    rest: &[&Value],
    cx: &KernelContext<'_>,
) -> Result<Value> {
    let at = |e: OpsError| RuntimeError::Kernel {
        node: label(instr),
        source: e,
    };
    let grows = rest
        .iter()
        .any(|b| !matches!(b, Value::Ring(b) if b.broadcast(x.raw_dim()).is_some()));
    if grows {
        let x = Value::Ring(x);
        let mut args = rest.to_vec();
        args.insert(taken.min(args.len()), &x);
        return run(instr, &args, cx);
    }
    if let Kernel::Reshape { shape } = &instr.kernel {
        return Ok(Value::Ring(ring::reshape_owned(x, shape).map_err(at)?));
    }
    let other = || ring(operand(instr, rest, 0)?, instr.kernel.name()).map_err(at);
    match (&instr.kernel, taken) {
        (Kernel::Add, _) => ring::add_assign(&mut x, other()?).map_err(at)?,
        (Kernel::Mul, _) => ring::mul_assign(&mut x, other()?).map_err(at)?,
        (Kernel::Sub, 0) => ring::sub_assign(&mut x, other()?).map_err(at)?,
        (Kernel::Neg, 0) => ring::map_assign(&mut x, u64::wrapping_neg),
        (Kernel::Shl { bits }, 0) => ring::shl_assign(&mut x, *bits).map_err(at)?,
        (Kernel::ShrLogical { bits }, 0) => ring::shr_logical_assign(&mut x, *bits).map_err(at)?,
        (Kernel::ShrArith { bits }, 0) => ring::shr_arith_assign(&mut x, *bits).map_err(at)?,
        (Kernel::XorConst { value }, 0) => ring::map_assign(&mut x, |w| w ^ value),
        (Kernel::AndConst { value }, 0) => ring::map_assign(&mut x, |w| w & value),
        _ => {
            return Err(RuntimeError::Node {
                node: label(instr),
                message: format!("operand {taken} of this kernel cannot be overwritten"),
            })
        }
    }
    Ok(Value::Ring(x))
}

/// Runs a local kernel (not a send, receive or output) on its argument values.
pub fn run(instr: &Instr, args: &[&Value], cx: &KernelContext<'_>) -> Result<Value> {
    let at = |e: OpsError| RuntimeError::Kernel {
        node: label(instr),
        source: e,
    };
    let r = |i: usize| ring(operand(instr, args, i)?, instr.kernel.name()).map_err(at);
    // SecureNN's operands: odd-ring values, words of either ring, small values, fields.
    let arg = |i: usize| operand(instr, args, i);
    let odd = |i: usize| arg(i)?.as_odd_ring(instr.kernel.name()).map_err(at);
    let word = |i: usize| words(arg(i)?, instr.kernel.name()).map_err(at);
    let small = |i: usize| arg(i)?.as_small(instr.kernel.name()).map_err(at);
    let ring_at = |i: usize| arg(i)?.as_ring(instr.kernel.name()).map_err(at);
    let field = |p: u8| PrimeField::new(p).map_err(at);
    let value = match &instr.kernel {
        Kernel::Input { name } => Value::Float(given(instr, cx, name, "input")?),
        Kernel::Parameter { name } => Value::Float(given(instr, cx, name, "parameter")?),
        Kernel::CheckInput { name, check } => {
            let x = operand(instr, args, 0)?
                .as_float("check_input")
                .map_err(at)?;
            check.check(x).map_err(|why| RuntimeError::Node {
                node: label(instr),
                message: format!("input {name:?} refused before it is shared: {why}"),
            })?;
            Value::Float(x.clone())
        }
        Kernel::Initializer { init } => Value::Float(
            crate::plain::public_initial(init, &instr.shape).ok_or_else(|| RuntimeError::Node {
                node: label(instr),
                message: "a variable given by its owner has no public initialiser".into(),
            })?,
        ),
        Kernel::FloatConst { values } => Value::Float(
            ArrayD::from_shape_vec(IxDyn(&instr.shape), values.clone())
                .map_err(|e| shape_err(instr, e))?,
        ),
        Kernel::RingConst { values } => Value::Ring(
            ArrayD::from_shape_vec(IxDyn(&instr.shape), values.clone())
                .map_err(|e| shape_err(instr, e))?,
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
            let x = operand(instr, args, 0)?.as_float("encode").map_err(at)?;
            Value::Ring(
                FixedPoint::new(*frac_bits)
                    .map_err(at)?
                    .encode(x)
                    .map_err(at)?,
            )
        }
        Kernel::Decode { frac_bits } => {
            Value::Float(FixedPoint::new(*frac_bits).map_err(at)?.decode_f32(r(0)?))
        }
        Kernel::Add => Value::Ring(ring::add(r(0)?, r(1)?).map_err(at)?),
        Kernel::Sub => Value::Ring(ring::sub(r(0)?, r(1)?).map_err(at)?),
        Kernel::Neg => Value::Ring(ring::neg(r(0)?)),
        Kernel::Mul => Value::Ring(ring::mul(r(0)?, r(1)?).map_err(at)?),
        Kernel::MulWideShr { offset, bits } => {
            Value::Ring(ring::mul_wide_shr(r(0)?, r(1)?, *offset, *bits).map_err(at)?)
        }
        Kernel::MatMul => Value::Ring(ring::matmul(r(0)?, r(1)?).map_err(at)?),
        Kernel::Conv2d { stride, padding } => Value::Ring(
            ring::conv2d(
                r(0)?,
                r(1)?,
                (stride[0], stride[1]),
                plain_op::padding(*padding),
            )
            .map_err(at)?,
        ),
        Kernel::Conv2dBackpropInput {
            stride,
            padding,
            input_shape,
        } => Value::Ring(
            ring::conv2d_backprop_input(
                r(0)?,
                r(1)?,
                input_shape,
                (stride[0], stride[1]),
                plain_op::padding(*padding),
            )
            .map_err(at)?,
        ),
        Kernel::Conv2dBackpropFilter {
            stride,
            padding,
            filter_shape,
        } => Value::Ring(
            ring::conv2d_backprop_filter(
                r(0)?,
                r(1)?,
                filter_shape,
                (stride[0], stride[1]),
                plain_op::padding(*padding),
            )
            .map_err(at)?,
        ),
        Kernel::SumPool2d { window } => {
            Value::Ring(sum_pool(r(0)?, window, &instr.shape).map_err(at)?)
        }
        Kernel::ShrArith { bits } => Value::Ring(ring::shr_arith(r(0)?, *bits).map_err(at)?),
        Kernel::ShrLogical { bits } => Value::Ring(ring::shr_logical(r(0)?, *bits).map_err(at)?),
        Kernel::Shl { bits } => Value::Ring(ring::shl(r(0)?, *bits).map_err(at)?),
        Kernel::XorConst { value } => Value::Ring(r(0)?.mapv(|w| w ^ value)),
        Kernel::AndConst { value } => Value::Ring(r(0)?.mapv(|w| w & value)),
        Kernel::Reshape { shape } => Value::Ring(ring::reshape(r(0)?, shape).map_err(at)?),
        Kernel::BroadcastTo { shape } => {
            let x = r(0)?;
            let b = x.broadcast(IxDyn(shape)).ok_or_else(|| {
                at(OpsError::ShapeMismatch {
                    op: "broadcast_to",
                    left: x.shape().to_vec(),
                    right: shape.clone(),
                })
            })?;
            Value::Ring(b.to_owned())
        }
        Kernel::Transpose { perm } => Value::Ring(ring::transpose(r(0)?, perm).map_err(at)?),
        Kernel::ReduceSum { axis } => Value::Ring(ring::sum_axis(r(0)?, *axis).map_err(at)?),
        Kernel::SampleSeed => Value::Seed(sample_seed(instr, cx).map_err(at)?),
        Kernel::Expand {
            stream,
            draw,
            shape,
        } => {
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
                Draw::Field { p } => Value::Small(
                    prg.field(PrimeField::new(*p).map_err(at)?, shape)
                        .map_err(at)?,
                ),
                Draw::Bits => Value::Small(prg.bits(shape).map_err(at)?),
            }
        }
        Kernel::OddAdd => Value::OddRing(ring::odd_add(odd(0)?, odd(1)?).map_err(at)?),
        Kernel::OddSub => Value::OddRing(ring::odd_sub(odd(0)?, odd(1)?).map_err(at)?),
        Kernel::RingToOdd => Value::OddRing(ring::odd_reduce(ring_at(0)?)),
        Kernel::Wrap => Value::Small(ring::wrap(ring_at(0)?, ring_at(1)?).map_err(at)?),
        Kernel::BitDecompose { bits } => {
            Value::Small(ring::bit_decompose_low(word(0)?, *bits as usize))
        }
        Kernel::LowBytes { bytes } => {
            let x = r(0)?;
            let b = usize::from(*bytes).clamp(1, 8);
            let mut shape = x.shape().to_vec();
            shape.push(b);
            let x = x.as_standard_layout();
            let out = ring::low_bytes(x.as_slice().unwrap_or_default(), b);
            Value::Small(
                ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| shape_err(instr, e))?,
            )
        }
        Kernel::PackSmall { bits } => {
            let x = small(0)?.as_standard_layout();
            let out = ring::pack_small(x.as_slice().unwrap_or_default(), u32::from(*bits));
            let len = out.len();
            Value::Small(
                ArrayD::from_shape_vec(IxDyn(&[len]), out).map_err(|e| shape_err(instr, e))?,
            )
        }
        Kernel::UnpackSmall { bits } => {
            let x = small(0)?.as_standard_layout();
            let packed = x.as_slice().unwrap_or_default();
            let len: usize = instr.shape.iter().product();
            let out = ring::unpack_small(packed, u32::from(*bits), len).ok_or_else(|| {
                at(OpsError::InvalidArgument {
                    op: "unpack_small",
                    message: format!("{} bytes for {len} values of {bits} bits", packed.len()),
                })
            })?;
            Value::Small(
                ArrayD::from_shape_vec(IxDyn(&instr.shape), out)
                    .map_err(|e| shape_err(instr, e))?,
            )
        }
        Kernel::FromLowBytes => {
            let x = small(0)?;
            let (&b, lead) = x.shape().split_last().ok_or_else(|| {
                at(OpsError::InvalidArgument {
                    op: "from_low_bytes",
                    message: "a scalar has no trailing axis of bytes".into(),
                })
            })?;
            if !(1..=8).contains(&b) {
                return Err(at(OpsError::InvalidArgument {
                    op: "from_low_bytes",
                    message: format!("{b} bytes per word, expected 1 to 8"),
                }));
            }
            let flat = x.as_standard_layout();
            let words =
                ring::from_low_bytes(flat.as_slice().unwrap_or_default(), b).unwrap_or_default();
            Value::Ring(
                ArrayD::from_shape_vec(IxDyn(lead), words).map_err(|e| shape_err(instr, e))?,
            )
        }
        Kernel::BitAt { bit } => {
            let bit = bit.min(&63);
            Value::Small(r(0)?.mapv(|w| ((w >> bit) & 1) as u8))
        }
        Kernel::XorBits { not } => {
            let flip = u8::from(*not);
            let (a, b) = (small(0)?, small(1)?);
            if a.shape() != b.shape() {
                return Err(at(OpsError::ShapeMismatch {
                    op: "xor_bits",
                    left: a.shape().to_vec(),
                    right: b.shape().to_vec(),
                }));
            }
            Value::Small(
                ndarray::Zip::from(a)
                    .and(b)
                    .map_collect(|&x, &y| (x ^ y ^ flip) & 1),
            )
        }
        Kernel::XorPublicBitTimes => {
            Value::Ring(ring::xor_public_bit_times(r(0)?, small(1)?, r(2)?).map_err(at)?)
        }
        Kernel::Lsb => Value::Small(ring::lsb(word(0)?)),
        Kernel::IsZero => Value::Small(ring::is_zero(word(0)?)),
        Kernel::BitTo { kind } => match kind {
            shareflow_ops::ValueKind::Ring => Value::Ring(ring::bits_to_words(small(0)?)),
            shareflow_ops::ValueKind::OddRing => Value::OddRing(ring::bits_to_words(small(0)?)),
            other => {
                return Err(at(OpsError::InvalidArgument {
                    op: "bit_to",
                    message: format!("bits become ring or odd-ring words, not {}", other.name()),
                }))
            }
        },
        Kernel::XorPublicBit { add } => {
            let is_odd = arg(0)?.kind() == shareflow_ops::ValueKind::OddRing;
            let v = ring::xor_public_bit(word(0)?, small(1)?, *add, is_odd).map_err(at)?;
            if is_odd {
                Value::OddRing(v)
            } else {
                Value::Ring(v)
            }
        }
        Kernel::FieldSub { p } => Value::Small(field(*p)?.sub(small(0)?, small(1)?).map_err(at)?),
        Kernel::PrivateCompare { party, p, stream } => {
            let seed = arg(3)?.as_seed("private_compare").map_err(at)?;
            let mut common = Prg::new(
                seed,
                Domain::new(cx.session, *stream, 0x300 | u32::from(*p)),
            );
            let (x, r, beta) = (small(0)?, word(1)?, small(2)?);
            let out = ring::private_compare_packed(field(*p)?, *party, x, r, beta, &mut common)
                .map_err(at)?;
            let len = out.len();
            Value::Small(
                ArrayD::from_shape_vec(IxDyn(&[len]), out).map_err(|e| shape_err(instr, e))?,
            )
        }
        Kernel::AnyZeroSum { p, n } => {
            let (a, b) = (
                small(0)?.as_standard_layout(),
                small(1)?.as_standard_layout(),
            );
            let words: usize = instr.shape.iter().product();
            let out = ring::any_zero_sum_packed(
                field(*p)?,
                usize::from(*n),
                a.as_slice().unwrap_or_default(),
                b.as_slice().unwrap_or_default(),
                words,
            )
            .map_err(at)?;
            Value::Small(
                ArrayD::from_shape_vec(IxDyn(&instr.shape), out)
                    .map_err(|e| shape_err(instr, e))?,
            )
        }
        Kernel::BitsMinus { p } => {
            Value::Small(ring::bits_minus(field(*p)?, word(0)?, small(1)?).map_err(at)?)
        }
        Kernel::Xor => Value::Ring(ring::zip_with("xor", r(0)?, r(1)?, |x, y| x ^ y).map_err(at)?),
        Kernel::BitPlanes { n } => {
            let planes = ring::bit_planes(&ring::contiguous(word(0)?), usize::from(*n));
            ring_tensor(instr, planes)?
        }
        Kernel::CarryPairs => {
            let planes = ring_at(0)?;
            let n = planes.shape().last().copied().unwrap_or(0);
            ring_tensor(
                instr,
                ring::carry_pairs(&ring::contiguous(planes), n).map_err(at)?,
            )?
        }
        Kernel::CarryLeaves { party } => {
            let (c, r) = (ring::contiguous(ring_at(0)?), ring::contiguous(ring_at(1)?));
            let n = ring_at(0)?.shape().last().copied().unwrap_or(0);
            ring_tensor(instr, ring::carry_leaves(*party, &c, &r, n).map_err(at)?)?
        }
        Kernel::CarryOpen { groups } => {
            let (s, a) = (ring::contiguous(ring_at(0)?), ring::contiguous(ring_at(1)?));
            ring_tensor(
                instr,
                ring::carry_open(&s, usize::from(*groups), &a).map_err(at)?,
            )?
        }
        Kernel::CarryDeal { groups } => {
            let (a0, a1, z0) = (
                ring::contiguous(ring_at(0)?),
                ring::contiguous(ring_at(1)?),
                ring::contiguous(ring_at(2)?),
            );
            let g = usize::from(*groups);
            ring_tensor(instr, ring::carry_deal(g, &a0, &a1, &z0).map_err(at)?)?
        }
        Kernel::CarryCombine { party, groups } => {
            let x: Vec<_> = (0..5)
                .map(|i| ring_at(i).map(|a| ring::contiguous(a)))
                .collect::<Result<_>>()?;
            let g = usize::from(*groups);
            let next = ring::carry_combine(*party, &x[0], g, &x[1], &x[2], &x[3], &x[4]);
            ring_tensor(instr, next.map_err(at)?)?
        }
        Kernel::CarryOut { party } => {
            let (s, u) = (ring::contiguous(ring_at(0)?), ring::contiguous(ring_at(2)?));
            let beta = ring::contiguous(small(1)?);
            ring_tensor(instr, ring::carry_out(*party, &s, &beta, &u).map_err(at)?)?
        }
        Kernel::PlaneBits => {
            let (a, b) = (ring::contiguous(ring_at(0)?), ring::contiguous(ring_at(1)?));
            let len = instr.shape.iter().product();
            let bits = ring::plane_bits(&a, &b, len).map_err(at)?;
            Value::Small(
                ArrayD::from_shape_vec(IxDyn(&instr.shape), bits)
                    .map_err(|e| shape_err(instr, e))?,
            )
        }
        Kernel::Windows { window, pad } => {
            Value::Ring(ring::windows(ring_at(0)?, &plain_op::window(window), *pad).map_err(at)?)
        }
        Kernel::WindowsAdd {
            window,
            input_shape,
        } => Value::Ring(
            ring::windows_add(ring_at(0)?, input_shape, &plain_op::window(window)).map_err(at)?,
        ),
        Kernel::StridedSlice {
            axis,
            start,
            step,
            len,
        } => Value::Ring(ring::strided_slice(ring_at(0)?, *axis, *start, *step, *len).map_err(at)?),
        Kernel::Concat { axis } => {
            Value::Ring(ring::concat(ring_at(0)?, ring_at(1)?, *axis).map_err(at)?)
        }
        Kernel::Iota { axis, scale } => {
            Value::Ring(ring::iota(&instr.shape, *axis, *scale).map_err(at)?)
        }
        Kernel::OneHot { n } => Value::Ring(ring::one_hot(ring_at(0)?, *n).map_err(at)?),
        Kernel::RotateLast { keep } => {
            Value::Ring(ring::rotate_last(ring_at(0)?, ring_at(1)?, *keep).map_err(at)?)
        }
        Kernel::Output { .. }
        | Kernel::Send { .. }
        | Kernel::Recv { .. }
        | Kernel::Store { .. }
        | Kernel::Load { .. } => {
            return Err(RuntimeError::Node {
                node: label(instr),
                message: "not a local kernel".into(),
            })
        }
    };
    Ok(value)
}

/// The value given to the party under `name` (an input or a run-time parameter, `what`), of
/// the instruction's shape.
fn given(instr: &Instr, cx: &KernelContext<'_>, name: &str, what: &str) -> Result<ArrayD<f32>> {
    let v = cx.inputs.get(name).ok_or_else(|| RuntimeError::Node {
        node: label(instr),
        message: format!("no value given for {what} {name:?}"),
    })?;
    if v.shape() != instr.shape.as_slice() {
        return Err(RuntimeError::Node {
            node: label(instr),
            message: format!(
                "{what} {name:?} has shape {:?}, the graph expects {:?}",
                v.shape(),
                instr.shape
            ),
        });
    }
    Ok(v.clone())
}

/// Sums over each window: im2col (zero padding) then a sum over the window cells.
fn sum_pool(
    x: &ArrayD<u64>,
    window: &shareflow_graphs::op::Window,
    out_shape: &[usize],
) -> std::result::Result<ArrayD<u64>, OpsError> {
    let x4 = x
        .view()
        .into_dimensionality::<Ix4>()
        .map_err(|_| OpsError::InvalidArgument {
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

/// Argument `i` of `instr`, or an error naming the instruction.
fn operand<'a>(instr: &Instr, args: &[&'a Value], i: usize) -> Result<&'a Value> {
    args.get(i).copied().ok_or_else(|| RuntimeError::Node {
        node: label(instr),
        message: format!("missing input {i}"),
    })
}

/// The words of a ring or odd-ring value (SecureNN reads both as 64-bit words).
fn words<'a>(v: &'a Value, op: &'static str) -> std::result::Result<&'a ArrayD<u64>, OpsError> {
    match v {
        Value::Ring(a) | Value::OddRing(a) => Ok(a),
        other => Err(OpsError::WrongKind {
            op,
            expected: "ring or odd-ring",
            got: other.kind().name(),
        }),
    }
}

/// How errors name an instruction: its id, kernel and logical origin.
/// A fresh seed from the operating system.
#[cfg(not(feature = "test-randomness"))]
fn sample_seed(_: &Instr, _: &KernelContext<'_>) -> std::result::Result<[u8; 32], OpsError> {
    fresh_seed()
}

/// A fresh seed from the operating system, or one derived from the replay seed.
#[cfg(feature = "test-randomness")]
fn sample_seed(instr: &Instr, cx: &KernelContext<'_>) -> std::result::Result<[u8; 32], OpsError> {
    match &cx.replay {
        None => fresh_seed(),
        Some(master) => Ok(Prg::new(master, Domain::new(0, instr.id.0 as u64, 0x5eed)).seed()),
    }
}

/// An instruction's name for errors and traces: its id, kernel, and the logical node it comes from.
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

/// A ring tensor of the instruction's shape from its words.
fn ring_tensor(instr: &Instr, words: Vec<u64>) -> Result<Value> {
    Ok(Value::Ring(
        ArrayD::from_shape_vec(IxDyn(&instr.shape), words).map_err(|e| shape_err(instr, e))?,
    ))
}

//! Sound comparison widths from a bound the model owner computes: interval arithmetic over the
//! plaintext graph, given the values of some private inputs (the weights) and a declared range
//! for others (the client's image), proves `|a| <= B` for every value whose sign SecureNN takes
//! (the inputs of ReLU, the differences of max pooling and argmax), and so a width `k` with
//! `|a| < 2^(k-1)` in ring units: the sign of `a mod 2^k` is then the sign of `a`
//! ([`crate::lower::securenn::opened`]). Where nothing is proven the width stays 64.
//!
//! **Conservative by construction.** The intervals bound the values the protocol computes in
//! the ring, not the plaintext's:
//!
//! - a value given by the owner is taken as encoded (`round(x 2^f) / 2^f`), a constant too;
//! - an input given by range is widened by one ulp (`2^-f`) for its encoding's rounding (half
//!   an ulp);
//! - every product (`Mul`, `MatMul`, `Conv2d`) is truncated once, by dealer truncation: the
//!   floor of the product plus the carry of the shares' low bits, within one ulp either way;
//!   each is widened by two ulps, and left unbounded where the product before truncation may
//!   reach `2^61` ring units (dealer truncation is within an ulp below `2^62` only);
//! - ReLU and max pooling are exact in the ring (their own comparisons are proven at the
//!   widths found here), so their intervals are the functions' images;
//! - the arithmetic is in `f64`: a sum of `n` products is within `2 n 2^-53` of the sum of
//!   their magnitudes, which each linear op adds to its radius; every other result is widened
//!   by `2^-50` of its magnitude.
//!
//! Any op not listed in [`Narrowing::analyse`] gives an unbounded value, and the comparisons
//! that depend on it stay at 64 bits. A SAME-padded max pool also stays at 64 (its padding
//! cells hold a word far below every value), or at the `65 - f` bits of a truncation's output
//! ([`crate::lower::Lowerer::sign_width`]). Local (SecureML) truncation, with its rare large
//! error, is refused.
//!
//! **Valid only for what it assumed.** The compiled program records each assumption where the
//! input enters: the owner of a value-bound input checks at run time that it shares the very
//! values the bound was computed from (SHA-256 of the shape and the `f32` bits), the owner of a
//! range-bound input that every element lies in the range, and both refuse otherwise
//! (`Kernel::CheckInput`).
//!
//! **What the width reveals.** The widths are public (in the program and the cost report):
//! each tells about `log2` of a bound on the values at one layer, that is, of the weights'
//! norms (for ReLU after a dense layer, `log2 max_j sum_i |W_ij| |x|_max`) given the input
//! range. The model owner opts in to that.

use std::collections::HashMap;

use ndarray::{Array2, ArrayD, ArrayView2, Axis, Ix2, Ix4, IxDyn};
use serde::{Deserialize, Serialize};
use shareflow_graphs::{Graph, Op, Padding, Visibility};
use shareflow_ops::im2col::im2col;
use shareflow_ops::plain::to_rank;

use crate::lower::securenn::WORD_BITS;
use crate::options::Truncation;
use crate::plain_op::{self, window};
use crate::{CompileError, CompileOptions};

/// Ulps added for one dealer truncation (within one ulp either way; two to be safe).
const TRUNCATION_ULPS: f64 = 2.0;

/// Relative widening of every result for the rounding of `f64` adds.
const FP_RELATIVE: f64 = 1.0 / (1u64 << 50) as f64;

/// What a party's input must be for the widths to hold, checked by that party before it shares
/// the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InputCheck {
    /// Every element in `[lo, hi]` (and finite).
    Range {
        /// Least value.
        lo: f64,
        /// Greatest value.
        hi: f64,
    },
    /// Exactly the values the bound was computed from: [`digest`] of them.
    Digest {
        /// Lowercase hex SHA-256.
        sha256: String,
    },
}

impl InputCheck {
    /// Refuses `value` unless it satisfies the check; the message names the range or digest.
    pub fn check(&self, value: &ArrayD<f32>) -> Result<(), String> {
        match self {
            InputCheck::Range { lo, hi } => {
                let bad = value
                    .iter()
                    .enumerate()
                    .find(|(_, &v)| !(f64::from(v) >= *lo && f64::from(v) <= *hi));
                match bad {
                    Some((i, v)) => Err(format!(
                        "element {i} is {v}, outside the declared range [{lo}, {hi}] that the \
                         comparison widths were proven for"
                    )),
                    None => Ok(()),
                }
            }
            InputCheck::Digest { sha256 } => {
                let got = digest(value);
                if &got == sha256 {
                    Ok(())
                } else {
                    Err(format!(
                        "its SHA-256 is {got}, not {sha256}: the comparison widths were proven \
                         for other values"
                    ))
                }
            }
        }
    }
}

/// An assumption on one party's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputAssumption {
    /// The party providing it.
    pub party: String,
    /// The input's name.
    pub name: String,
    /// What it must satisfy.
    pub check: InputCheck,
}

/// The width of one comparison node's signs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ComparisonWidth {
    /// The logical node (`graph.label`), as the lowering names it.
    pub node: String,
    /// Its op (`relu`, `maxpool2d`, `argmax`).
    pub op: String,
    /// The proven bound on `|a|` of every sign it takes, in ring units; `None`: none proven.
    pub bound: Option<u64>,
    /// The width: `|a| < 2^(bits - 1)`; 64 where no bound is proven.
    pub bits: u32,
}

impl std::fmt::Display for InputAssumption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.check {
            InputCheck::Range { lo, hi } => write!(
                f,
                "{}'s input {:?}: every element in [{lo}, {hi}]",
                self.party, self.name
            ),
            InputCheck::Digest { sha256 } => write!(
                f,
                "{}'s input {:?}: the values bounded (SHA-256 {sha256})",
                self.party, self.name
            ),
        }
    }
}

/// Comparison widths proven from assumptions on the inputs ([`Narrowing::analyse`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Narrowing {
    /// What every width assumes, one entry per input bound by value or range.
    pub assumptions: Vec<InputAssumption>,
    /// Every comparison node of the graph, in topological order.
    pub comparisons: Vec<ComparisonWidth>,
}

/// SHA-256 (lowercase hex) of an array's shape and its elements' `f32` bits, little endian.
pub fn digest(value: &ArrayD<f32>) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&(value.ndim() as u64).to_le_bytes());
    for &d in value.shape() {
        ctx.update(&(d as u64).to_le_bytes());
    }
    for v in value.iter() {
        ctx.update(&v.to_le_bytes());
    }
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The width proving `|a| <= bound` (ring units): the least `k` with `bound < 2^(k-1)`, at
/// least 2, and 64 beyond.
pub fn width_for(bound: u64) -> u32 {
    let bits = 64 - bound.leading_zeros();
    (bits + 1).clamp(2, WORD_BITS as u32)
}

/// Lower and upper bounds per element, real units.
#[derive(Debug, Clone)]
struct Interval {
    lo: ArrayD<f64>,
    hi: ArrayD<f64>,
}

impl Interval {
    fn point(v: ArrayD<f64>) -> Interval {
        Interval {
            lo: v.clone(),
            hi: v,
        }
    }

    fn widen(mut self, ulps: f64, ulp: f64) -> Interval {
        let add = ulps * ulp;
        self.lo
            .mapv_inplace(|v| v - add - v.abs() * FP_RELATIVE - f64::MIN_POSITIVE);
        self.hi
            .mapv_inplace(|v| v + add + v.abs() * FP_RELATIVE + f64::MIN_POSITIVE);
        self
    }

    /// The largest magnitude, elementwise.
    fn magnitude(&self) -> ArrayD<f64> {
        let mut m = self.lo.mapv(f64::abs);
        m.zip_mut_with(&self.hi, |a, b| *a = a.max(b.abs()));
        m
    }

    fn max_abs(&self) -> f64 {
        self.magnitude().iter().fold(0.0, |a, &b| a.max(b))
    }

    fn map(&self, f: impl Fn(&ArrayD<f64>) -> Option<ArrayD<f64>>) -> Option<Interval> {
        Some(Interval {
            lo: f(&self.lo)?,
            hi: f(&self.hi)?,
        })
    }
}

/// What the analysis knows of a node's value.
#[derive(Debug, Clone)]
enum Val {
    /// A value known in the clear (public, or a private value given to the analysis).
    Plain(ArrayD<f32>),
    /// Bounds on the value (real units, as the protocol computes it).
    Range(Interval),
    /// Nothing.
    Unknown,
}

impl Narrowing {
    /// [`Narrowing::analyse`] with `range` for every input not given in `values` (for a
    /// prediction graph: the client's image, the weights given by their owner).
    pub fn analyse_with_range(
        graph: &Graph,
        options: &CompileOptions,
        values: &HashMap<String, ArrayD<f32>>,
        range: (f64, f64),
    ) -> Result<Narrowing, CompileError> {
        let ranges = graph
            .nodes()
            .filter_map(|(_, n)| match &n.op {
                Op::Input { name, .. } if !values.contains_key(name) => Some((name.clone(), range)),
                _ => None,
            })
            .collect();
        Narrowing::analyse(graph, options, values, &ranges)
    }

    /// Bounds every comparison of `graph` from the `values` of some private inputs (by input
    /// name: the weights, computed from by their owner) and `ranges` of others (by input name,
    /// `[lo, hi]` in real units), at the options' fixed-point precision (module docs).
    ///
    /// Errors: [`CompileError::Option`] for local truncation, or a range that is not finite
    /// and ordered; [`CompileError::Node`] for a value of the wrong shape.
    pub fn analyse(
        graph: &Graph,
        options: &CompileOptions,
        values: &HashMap<String, ArrayD<f32>>,
        ranges: &HashMap<String, (f64, f64)>,
    ) -> Result<Narrowing, CompileError> {
        if options.truncation != Truncation::Dealer {
            return Err(CompileError::Option {
                field: "truncation",
                value: format!("{:?}", options.truncation),
                allowed: "dealer truncation when comparisons are narrowed (local truncation \
                          has a rare large error that no bound covers)"
                    .into(),
            });
        }
        for (name, (lo, hi)) in ranges {
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return Err(CompileError::Option {
                    field: "input_range",
                    value: format!("{name}: [{lo}, {hi}]"),
                    allowed: "finite lo <= hi".into(),
                });
            }
        }
        let scale = f64::from(options.frac_bits).exp2();
        let ulp = 1.0 / scale;
        let encode = |x: &ArrayD<f32>| x.mapv(|v| (f64::from(v) * scale).round() / scale);
        let mut vals: HashMap<shareflow_graphs::NodeId, Val> = HashMap::new();
        let mut assumptions = Vec::new();
        let mut comparisons = Vec::new();
        for id in graph.topo_order()? {
            let node = graph.node(id)?;
            let label = graph.label(id);
            let dims = node.shape.dims();
            let args: Vec<Val> = graph
                .inputs(id)
                .iter()
                .map(|i| vals.get(i).cloned().unwrap_or(Val::Unknown))
                .collect();
            let range_of = |v: &Val| match v {
                Val::Plain(x) => Some(Interval::point(encode(x))),
                Val::Range(r) => Some(r.clone()),
                Val::Unknown => None,
            };
            let exact = |v: &Val| match v {
                Val::Plain(x) => Some(encode(x)),
                _ => None,
            };
            let mut compare = |bound: Option<f64>| {
                let bound = bound
                    .filter(|b| b.is_finite())
                    .map(|b| (b * scale).ceil() + 1.0)
                    .filter(|b| *b < 2f64.powi(63))
                    .map(|b| b as u64);
                comparisons.push(ComparisonWidth {
                    node: label.clone(),
                    op: node.op.name().to_string(),
                    bound,
                    bits: bound.map_or(WORD_BITS as u32, width_for),
                });
            };
            let val = match (&node.op, node.visibility) {
                (Op::Input { party, name }, _) => {
                    let party = graph.party_name(*party).to_string();
                    if let Some(v) = values.get(name) {
                        if v.shape() != dims {
                            return Err(CompileError::Node {
                                node: label,
                                message: format!(
                                    "value of shape {:?} for an input of shape {dims:?}",
                                    v.shape()
                                ),
                            });
                        }
                        assumptions.push(InputAssumption {
                            party,
                            name: name.clone(),
                            check: InputCheck::Digest { sha256: digest(v) },
                        });
                        Val::Plain(v.clone())
                    } else if let Some(&(lo, hi)) = ranges.get(name) {
                        assumptions.push(InputAssumption {
                            party,
                            name: name.clone(),
                            check: InputCheck::Range { lo, hi },
                        });
                        let fill = |x: f64| ArrayD::from_elem(IxDyn(dims), x);
                        Val::Range(Interval {
                            lo: fill(lo),
                            hi: fill(hi),
                        })
                        .widened(1.0, ulp)
                    } else {
                        Val::Unknown
                    }
                }
                (op, Visibility::Public | Visibility::Private(_)) => {
                    let plain: Option<Vec<&ArrayD<f32>>> = args
                        .iter()
                        .map(|a| match a {
                            Val::Plain(x) => Some(x),
                            _ => None,
                        })
                        .collect();
                    match (plain, op, args.first()) {
                        (Some(plain), _, _) if !matches!(op, Op::Input { .. }) => {
                            match plain_op::eval(op, &node.shape, &plain) {
                                Ok(out) => Val::Plain(out.value),
                                Err(_) => Val::Unknown,
                            }
                        }
                        (
                            _,
                            Op::Reshape { .. } | Op::Transpose { .. } | Op::Output { .. },
                            Some(Val::Range(r)),
                        ) => shape_op(op, r).map_or(Val::Unknown, Val::Range),
                        _ => Val::Unknown,
                    }
                }
                (op, Visibility::Shared) => {
                    let ranges: Option<Vec<Interval>> = args.iter().map(range_of).collect();
                    let exacts: Vec<Option<ArrayD<f64>>> = args.iter().map(exact).collect();
                    match op {
                        Op::Relu => {
                            let r = ranges.and_then(|r| r.into_iter().next());
                            compare(r.as_ref().map(Interval::max_abs));
                            r.map_or(Val::Unknown, |r| {
                                Val::Range(Interval {
                                    lo: r.lo.mapv(|v| v.max(0.0)),
                                    hi: r.hi.mapv(|v| v.max(0.0)),
                                })
                            })
                        }
                        Op::MaxPool2d { window: w } => {
                            let r = ranges.and_then(|r| r.into_iter().next());
                            let pooled = match (&r, w.padding) {
                                (Some(r), Padding::Valid) => pool(r, w),
                                _ => None,
                            };
                            let mut bound = pooled.as_ref().map(|p| p.1);
                            // A ReLU lowered after this pool (`lower::relu_before_maxpool`)
                            // leaves its input to the pool: bound the differences of that
                            // input too, and the ReLU's own signs.
                            if let Some(relu) = relu_input(graph, id) {
                                let before = vals.get(&relu).and_then(range_of);
                                bound = match (bound, before) {
                                    (Some(b), Some(x)) => {
                                        pool(&x, w).map(|p| b.max(p.1).max(x.max_abs()))
                                    }
                                    _ => None,
                                };
                            }
                            compare(bound);
                            pooled.map_or(Val::Unknown, |p| Val::Range(p.0))
                        }
                        Op::Argmax => {
                            let r = ranges.and_then(|r| r.into_iter().next());
                            let spread = r.as_ref().filter(|r| r.hi.ndim() > 0).map(|r| {
                                let last = Axis(r.hi.ndim() - 1);
                                let hi = r.hi.fold_axis(last, f64::MIN, |a, &b| a.max(b));
                                let lo = r.lo.fold_axis(last, f64::MAX, |a, &b| a.min(b));
                                (&hi - &lo).iter().fold(0.0, |a: f64, &b| a.max(b))
                            });
                            compare(spread);
                            Val::Unknown
                        }
                        Op::Reshape { .. } | Op::Transpose { .. } | Op::Output { .. } => ranges
                            .and_then(|r| shape_op(op, r.first()?))
                            .map_or(Val::Unknown, Val::Range),
                        _ => match ranges {
                            Some(r) => {
                                shared_op(op, &r, &exacts, ulp).map_or(Val::Unknown, Val::Range)
                            }
                            None => Val::Unknown,
                        },
                    }
                }
            };
            vals.insert(id, val);
        }
        Ok(Narrowing {
            assumptions,
            comparisons,
        })
    }

    /// The width of the comparisons of `node` (a label): 64 unless proven narrower.
    pub fn bits(&self, node: &str) -> u32 {
        self.comparisons
            .iter()
            .find(|c| c.node == node)
            .map_or(WORD_BITS as u32, |c| c.bits)
    }

    /// The check on input `name` of `party`, if any.
    pub fn check(&self, party: &str, name: &str) -> Option<&InputCheck> {
        self.assumptions
            .iter()
            .find(|a| a.party == party && a.name == name)
            .map(|a| &a.check)
    }
}

impl Val {
    fn widened(self, ulps: f64, ulp: f64) -> Val {
        match self {
            Val::Range(r) => Val::Range(r.widen(ulps, ulp)),
            other => other,
        }
    }
}

/// Reshape, transpose and output: the same bounds, moved.
fn shape_op(op: &Op, r: &Interval) -> Option<Interval> {
    match op {
        Op::Reshape { shape } => r.map(|x| {
            x.as_standard_layout()
                .into_owned()
                .into_shape_with_order(IxDyn(shape))
                .ok()
        }),
        Op::Transpose { perm } => r.map(|x| {
            (perm.len() == x.ndim()).then(|| {
                x.view()
                    .permuted_axes(IxDyn(perm))
                    .as_standard_layout()
                    .into_owned()
            })
        }),
        Op::Output { .. } => Some(r.clone()),
        _ => None,
    }
}

/// The bounds of a shared op's result, from its operands' bounds (and exact values where
/// known); `None` for an op the analysis does not bound.
fn shared_op(op: &Op, r: &[Interval], exact: &[Option<ArrayD<f64>>], ulp: f64) -> Option<Interval> {
    let out = match op {
        Op::Add => Interval {
            lo: &r[0].lo + &r[1].lo,
            hi: &r[0].hi + &r[1].hi,
        },
        Op::Sub => Interval {
            lo: &r[0].lo - &r[1].hi,
            hi: &r[0].hi - &r[1].lo,
        },
        Op::Neg => Interval {
            lo: r[0].hi.mapv(|v| -v),
            hi: r[0].lo.mapv(|v| -v),
        },
        Op::Mul => {
            let p = [
                &r[0].lo * &r[1].lo,
                &r[0].lo * &r[1].hi,
                &r[0].hi * &r[1].lo,
                &r[0].hi * &r[1].hi,
            ];
            let mut lo = p[0].clone();
            let mut hi = p[0].clone();
            for q in &p[1..] {
                lo.zip_mut_with(q, |a, &b| *a = a.min(b));
                hi.zip_mut_with(q, |a, &b| *a = a.max(b));
            }
            truncated(Interval { lo, hi }, ulp)?
        }
        Op::MatMul => {
            let two = |x: &ArrayD<f64>| {
                to_rank::<_, Ix2>(x.view(), "matmul")
                    .ok()
                    .map(|v| v.to_owned())
            };
            let mm = |x: &ArrayD<f64>, w: ArrayView2<f64>| Some(two(x)?.dot(&w).into_dyn());
            let product = match (&exact[0], &exact[1]) {
                (_, Some(w)) => linear(&r[0], &two(w)?, mm)?,
                (Some(a), None) => {
                    // a b = (b^T a^T)^T
                    let t = |x: &ArrayD<f64>| x.t().to_owned();
                    let rt = Interval {
                        lo: t(&r[1].lo),
                        hi: t(&r[1].hi),
                    };
                    let at = two(a)?.t().to_owned();
                    let out = linear(&rt, &at, mm)?;
                    Interval {
                        lo: t(&out.lo),
                        hi: t(&out.hi),
                    }
                }
                (None, None) => return None,
            };
            truncated(product, ulp)?
        }
        Op::Conv2d { stride, padding } => {
            let w = exact[1].as_ref()?;
            let w4 = to_rank::<_, Ix4>(w.view(), "conv2d").ok()?;
            let (kh, kw, cin, cout) = w4.dim();
            let win = shareflow_ops::plain::Window2d::new(
                (kh, kw),
                (stride[0], stride[1]),
                plain_op::padding(*padding),
            );
            let flat = w4
                .as_standard_layout()
                .into_owned()
                .into_shape_with_order((kh * kw * cin, cout))
                .ok()?;
            let conv = |x: &ArrayD<f64>, w: ArrayView2<f64>| {
                let x4 = to_rank::<_, Ix4>(x.view(), "conv2d").ok()?;
                let (n, h, wd, _) = x4.dim();
                let (oh, ow) = win.output_hw(h, wd).ok()?;
                let cols = im2col(x4, &win).ok()?;
                cols.dot(&w)
                    .into_shape_with_order(IxDyn(&[n, oh, ow, cout]))
                    .ok()
            };
            truncated(linear(&r[0], &flat, conv)?, ulp)?
        }
        _ => return None,
    };
    Some(out.widen(0.0, ulp))
}

/// The bounds of a product after its dealer truncation: widened by [`TRUNCATION_ULPS`], or
/// `None` where the product (`2f` fractional bits) may reach `2^61` ring units, beyond which
/// dealer truncation is no longer within an ulp (it is for `|x| < 2^62`).
fn truncated(product: Interval, ulp: f64) -> Option<Interval> {
    let limit = 2f64.powi(61) * ulp * ulp;
    (product.max_abs() < limit).then(|| product.widen(TRUNCATION_ULPS, ulp))
}

/// A linear map `f(x, w)` of `x` in `r` by the exact matrix `w`: `hi = f(hi, w+) + f(lo, w-)`,
/// `lo = f(lo, w+) + f(hi, w-)`, each widened by the `f64` error of `n`-term sums,
/// `2 n 2^-53 f(|x|, |w|)`.
fn linear(
    r: &Interval,
    w: &Array2<f64>,
    f: impl Fn(&ArrayD<f64>, ArrayView2<f64>) -> Option<ArrayD<f64>>,
) -> Option<Interval> {
    let pos = w.mapv(|v| v.max(0.0));
    let neg = w.mapv(|v| v.min(0.0));
    let abs = w.mapv(f64::abs);
    let n = w.nrows() as f64;
    let gamma = 2.0 * n * f64::EPSILON;
    let hi = f(&r.hi, pos.view())? + f(&r.lo, neg.view())?;
    let lo = f(&r.lo, pos.view())? + f(&r.hi, neg.view())?;
    let err = f(&r.magnitude(), abs.view())?.mapv(|v| v * gamma);
    Some(Interval {
        lo: lo - &err,
        hi: hi + &err,
    })
}

/// A VALID max pool of the bounds (`None` for another padding), and the largest difference of
/// two candidates of one window (`max hi - min lo` over the window: every candidate of the
/// comparison tree is one of the window's values).
fn pool(r: &Interval, w: &shareflow_graphs::op::Window) -> Option<(Interval, f64)> {
    if w.padding != Padding::Valid {
        return None;
    }
    let win = window(w);
    let windows = |x: &ArrayD<f64>, max: bool| -> Option<ArrayD<f64>> {
        let x4 = to_rank::<_, Ix4>(x.view(), "maxpool2d").ok()?;
        let (n, h, wd, c) = x4.dim();
        let (oh, ow) = win.output_hw(h, wd).ok()?;
        let cols = im2col(x4, &win).ok()?;
        let cells = win.kh * win.kw;
        let cols = cols.into_shape_with_order((n * oh * ow, cells, c)).ok()?;
        let init = if max { f64::MIN } else { f64::MAX };
        let out = cols.fold_axis(Axis(1), init, |a, &b| if max { a.max(b) } else { a.min(b) });
        out.into_shape_with_order(IxDyn(&[n, oh, ow, c])).ok()
    };
    let hi = windows(&r.hi, true)?;
    let lo_max = windows(&r.lo, true)?;
    let lo_min = windows(&r.lo, false)?;
    let spread = (&hi - &lo_min).iter().fold(0.0, |a: f64, &b| a.max(b));
    Some((Interval { lo: lo_max, hi }, spread))
}

/// The input of the ReLU that feeds the max pool `id`, if one does.
fn relu_input(graph: &Graph, id: shareflow_graphs::NodeId) -> Option<shareflow_graphs::NodeId> {
    let i = *graph.inputs(id).first()?;
    let n = graph.node(i).ok()?;
    if matches!(n.op, Op::Relu) {
        graph.inputs(i).first().copied()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr2;
    use shareflow_graphs::GraphBuilder;

    /// `relu(x w + b)` for `x` in `[0, 1]^2`, then `relu(sigmoid(...))`; and the analysis.
    fn dense(options: &CompileOptions) -> Result<Narrowing, CompileError> {
        let g = GraphBuilder::new();
        let owner = g.party("model-owner");
        let client = g.party("client");
        let x = g.input(client, "x", [1, 2]);
        let w = g.input(owner, "w", [2, 2]);
        let b = g.input(owner, "b", [2]);
        let h = (&x.matmul(&w) + &b).relu();
        h.sigmoid().relu().output_to(client, "y");
        let values = HashMap::from([
            (
                "w".to_string(),
                arr2(&[[1.0f32, -2.0], [0.5, 3.0]]).into_dyn(),
            ),
            ("b".to_string(), ndarray::arr1(&[0.25f32, -1.0]).into_dyn()),
        ]);
        let ranges = HashMap::from([("x".to_string(), (0.0, 1.0))]);
        Narrowing::analyse(&g.build().unwrap(), options, &values, &ranges)
    }

    #[test]
    fn a_dense_layer_is_bounded_by_its_weights_and_the_input_range() {
        let n = dense(&CompileOptions::default()).unwrap();
        // x0 - 2 x1... column 1 is -2 x0 + 3 x1 - 1 in [-3, 2]: |a| <= 3 plus slack.
        let first = &n.comparisons[0];
        assert_eq!(first.op, "relu");
        let bound = first.bound.unwrap();
        assert!((3 << 16..(3 << 16) + 16).contains(&bound), "{bound}");
        assert_eq!(first.bits, 19);
        // A sigmoid is not bounded by the analysis: the ReLU after it keeps 64 bits.
        assert_eq!(n.comparisons[1].bound, None);
        assert_eq!(n.comparisons[1].bits, 64);
        assert_eq!(n.bits(&n.comparisons[0].node), 19);
        assert_eq!(n.bits("no such node"), 64);
        // The client's range and the owner's two values.
        assert_eq!(n.assumptions.len(), 3);
        let x = n.check("client", "x").unwrap();
        assert!(x.check(&ndarray::arr1(&[0.0f32, 1.0]).into_dyn()).is_ok());
        let e = x
            .check(&ndarray::arr1(&[0.5f32, 1.5]).into_dyn())
            .unwrap_err();
        assert!(
            e.contains("element 1 is 1.5") && e.contains("[0, 1]"),
            "{e}"
        );
        assert!(x.check(&ndarray::arr1(&[f32::NAN]).into_dyn()).is_err());
        let w = n.check("model-owner", "w").unwrap();
        assert!(w
            .check(&arr2(&[[1.0f32, -2.0], [0.5, 3.0]]).into_dyn())
            .is_ok());
        assert!(w
            .check(&arr2(&[[1.0f32, -2.0], [0.5, 3.5]]).into_dyn())
            .is_err());
    }

    #[test]
    fn a_product_beyond_what_truncation_keeps_exact_is_unbounded() {
        let g = GraphBuilder::new();
        let owner = g.party("model-owner");
        let client = g.party("client");
        let x = g.input(client, "x", [1, 1]);
        let w = g.input(owner, "w", [1, 1]);
        x.matmul(&w).relu().output_to(client, "y");
        let graph = g.build().unwrap();
        let analyse = |w: f32| {
            let values = HashMap::from([("w".to_string(), arr2(&[[w]]).into_dyn())]);
            let ranges = HashMap::from([("x".to_string(), (0.0, 30000.0))]);
            Narrowing::analyse(&graph, &CompileOptions::default(), &values, &ranges).unwrap()
        };
        // 30000 x 100 = 3e6, 2^48 ring units before truncation: bounded.
        assert!(analyse(100.0).comparisons[0].bits < 64);
        // 30000 x 20000 = 6e8: 2.6e18 ring units before truncation, beyond 2^61.
        assert_eq!(analyse(20000.0).comparisons[0].bits, 64);
    }

    #[test]
    fn local_truncation_is_refused() {
        let options = CompileOptions {
            truncation: Truncation::Local,
            ..Default::default()
        };
        let e = dense(&options).unwrap_err().to_string();
        assert!(e.contains("truncation"), "{e}");
    }

    #[test]
    fn widths_prove_the_bound() {
        assert_eq!(width_for(0), 2);
        assert_eq!(width_for(1), 2);
        assert_eq!(width_for(2), 3);
        assert_eq!(width_for((1 << 20) - 1), 21);
        assert_eq!(width_for(1 << 20), 22);
        assert_eq!(width_for(1 << 62), 64);
        assert_eq!(width_for(u64::MAX), 64);
    }
}

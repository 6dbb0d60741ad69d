//! Algorithms 9 and 10 of SecureNN: MaxPool and DMaxPool, and argmax, as trees of
//! comparisons.
//!
//! The paper's MaxPool compares the candidates one after the other (`n - 1` DReLUs in
//! sequence); here they meet in a knockout tree: adjacent pairs are compared all at once
//! (one DReLU and one SelectShare for the whole level), so the rounds grow with
//! `ceil(log2 n)` and the comparisons stay `n - 1`. At each pair the left (earlier) candidate
//! wins ties, so the winner is the first maximum in scan order, as in TensorFlow and the
//! plaintext reference.

use shareflow_graphs::op::Window;
use shareflow_ops::ValueKind;

use super::opened::sign_times;
use super::relu::{drelu, select_share};
use super::SERVERS;
use crate::ir::{Draw, Exchange, Kernel};
use crate::lower::{Lowerer, Shared, HELPER};
use crate::options::Comparison;
use crate::CompileError;

/// The word that SAME padding cells of a max-pooling window hold, below every value a
/// comparison takes exactly, so it never wins: `-2^61` for the paper's DReLU (exact for
/// differences below `2^62`, so for values `|x| < 2^61`), `-2^62` for signs from an opening
/// (exact for every difference, so for values `|x| < 2^62`). Values of a known width `k` (a
/// truncation's output, [`Lowerer::sign_widths`]) take `-2^(k-1)` instead
/// ([`pool_windows`]), so that their differences keep `k + 1` bits.
pub fn pad(comparison: Comparison) -> u64 {
    let bits = match comparison {
        Comparison::Paper => 61,
        Comparison::Opened => 62,
    };
    (1u64 << bits).wrapping_neg()
}

/// The candidates of a knockout tree: values `[lanes.., m, 1]` and, if tracked, their
/// indices (same shape).
struct Candidates {
    value: Shared,
    index: Option<Shared>,
    lanes: Vec<usize>,
    m: usize,
    /// The candidates' width where known ([`Lowerer::sign_widths`]): each in
    /// `[-2^(k-1), 2^(k-1))`, so that a difference of two is in `(-2^k, 2^k)` and its sign is
    /// exact over `k + 1` bits.
    width: Option<u32>,
}

impl Candidates {
    fn shape(&self, m: usize) -> Vec<usize> {
        let mut s = self.lanes.clone();
        s.extend([m, 1]);
        s
    }
}

/// MaxPool Π_MP({P0, P1}, P2) over the last axis of `x` (`[.., n]`): shares of the maximum
/// (`[..]`) and, if `with_index`, of the index of its first occurrence (the paper's `ind`,
/// as an integer times `index_scale`). Exact for values of half the range of the signs (for
/// the paper's DReLU, `(-2^61, 2^61)`; see [`pad`]).
pub fn maxpool(
    cx: &mut Lowerer,
    x: &Shared,
    with_index: bool,
    index_scale: u64,
) -> (Shared, Option<Shared>) {
    let (value, index, _) = tree(cx, x, with_index, index_scale);
    (value, index)
}

/// [`maxpool`], and the tree's decisions: per level, the shared bits `[lanes.., pairs, 1]`
/// that are 1 where the left candidate won.
pub(crate) fn tree(
    cx: &mut Lowerer,
    x: &Shared,
    with_index: bool,
    index_scale: u64,
) -> (Shared, Option<Shared>, Vec<Shared>) {
    let shape = cx.shape(x.s[0]).to_vec();
    let (lanes, n) = match shape.split_last() {
        Some((&n, lanes)) => (lanes.to_vec(), n),
        None => (Vec::new(), 1),
    };
    let full = [lanes.as_slice(), &[n, 1]].concat();
    let width = cx.sign_widths.get(&x.s).copied();
    let value = cx.local(
        Kernel::Reshape {
            shape: full.clone(),
        },
        x,
        &full,
    );
    let mut c = Candidates {
        value,
        index: None,
        lanes,
        m: n,
        width,
    };
    if with_index {
        c.index = Some(positions(cx, &full, index_scale));
    }
    let mut decisions = Vec::new();
    while c.m > 1 {
        let beta;
        (c, beta) = knockout_round(cx, c);
        decisions.push(beta);
    }
    let out = c.lanes.clone();
    let value = cx.local(Kernel::Reshape { shape: out.clone() }, &c.value, &out);
    // The maximum is one of the candidates (a value, never a padding cell).
    if let Some(k) = width {
        cx.sign_widths.insert(value.s, k);
    }
    let index = c
        .index
        .map(|i| cx.local(Kernel::Reshape { shape: out.clone() }, &i, &out));
    (value, index, decisions)
}

/// Step 1: ind = (the position of each candidate along the axis before the last of
/// `full`, times `scale`), public: on P0, 0 on P1.
fn positions(cx: &mut Lowerer, full: &[usize], scale: u64) -> Shared {
    let axis = full.len().saturating_sub(2);
    let index = cx.on_servers(
        |j| Kernel::Iota {
            axis,
            scale: if j == 0 { scale } else { 0 },
        },
        |_| vec![],
        ValueKind::Ring,
        full,
    );
    Shared { s: index }
}

/// `count` candidates from `start`, every `step`-th, along the tree's axis.
pub(crate) fn pick(
    cx: &mut Lowerer,
    x: &Shared,
    lanes: &[usize],
    start: usize,
    step: usize,
    len: usize,
) -> Shared {
    let axis = lanes.len();
    let shape = [lanes, &[len, 1]].concat();
    cx.local(
        Kernel::StridedSlice {
            axis,
            start,
            step,
            len,
        },
        x,
        &shape,
    )
}

/// Step 6 for one level of `m` candidates: ind = SelectShare(beta, ind_right, ind_left), the
/// odd one out going on.
fn index_round(cx: &mut Lowerer, ind: &Shared, beta: &Shared, lanes: &[usize], m: usize) -> Shared {
    let half = m / 2;
    let pairs = [lanes, &[half, 1]].concat();
    let l = pick(cx, ind, lanes, 0, 2, half);
    let r = pick(cx, ind, lanes, 1, 2, half);
    let index = select_share(cx, beta, &r, &l, &pairs);
    if m % 2 == 1 {
        let odd = pick(cx, ind, lanes, m - 1, 1, 1);
        let next = [lanes, &[half + 1, 1]].concat();
        return cx.local2(Kernel::Concat { axis: lanes.len() }, &index, &odd, &next);
    }
    index
}

/// One level of the tree: candidates `2i` and `2i + 1` meet; an odd one out goes on. Returns
/// the next candidates and the level's decisions `beta`.
fn knockout_round(cx: &mut Lowerer, c: Candidates) -> (Candidates, Shared) {
    let axis = c.lanes.len();
    let half = c.m / 2;
    let pairs = c.shape(half);
    let left = pick(cx, &c.value, &c.lanes, 0, 2, half);
    let right = pick(cx, &c.value, &c.lanes, 1, 2, half);
    // Steps 3-4: <w>_j = <left>_j - <right>_j and beta = DReLU(w): 1 where the left
    // candidate is at least the right one (it wins ties).
    let w = cx.local2(Kernel::Sub, &left, &right, &pairs);
    if let Some(k) = c.width.filter(|&k| k < 64) {
        cx.sign_widths.insert(w.s, k + 1);
    }
    let (beta, mut value) = match cx.options.comparison {
        // Step 5 as one product in the rounds of the sign: max = right + beta w.
        Comparison::Opened => {
            let (beta, beta_w) = sign_times(cx, &w);
            (beta, cx.local2(Kernel::Add, &right, &beta_w, &pairs))
        }
        Comparison::Paper => {
            let beta = drelu(cx, &w);
            // Step 5: max = SelectShare(beta, right, left).
            let max = select_share(cx, &beta, &right, &left, &pairs);
            (beta, max)
        }
    };
    // Step 6: ind = SelectShare(beta, ind_right, ind_left).
    let index = c
        .index
        .map(|ind| index_round(cx, &ind, &beta, &c.lanes, c.m));
    if c.m % 2 == 1 {
        let next = c.shape(half + 1);
        let odd = pick(cx, &c.value, &c.lanes, c.m - 1, 1, 1);
        value = cx.local2(Kernel::Concat { axis }, &value, &odd, &next);
    }
    let next = Candidates {
        value,
        index,
        lanes: c.lanes,
        m: half + c.m % 2,
        width: c.width,
    };
    (next, beta)
}

/// Max pooling of NHWC shares over `window`, to `out` (`[N, OH, OW, C]`): the windows as a
/// trailing axis (SAME padding cells hold [`pad`] on server 0 and 0 on server 1), then
/// [`maxpool`].
pub fn maxpool2d(
    cx: &mut Lowerer,
    x: &Shared,
    window: &Window,
    out: &[usize],
) -> Result<Shared, CompileError> {
    let windows = pool_windows(cx, x, window, out)?;
    let (value, _, decisions) = tree(cx, &windows, false, 1);
    cx.pool_trees.entry((x.s, *window)).or_insert(decisions);
    Ok(value)
}

/// The windows of NHWC shares as `[N, OH, OW, C, KH*KW]`.
pub(crate) fn pool_windows(
    cx: &mut Lowerer,
    x: &Shared,
    window: &Window,
    out: &[usize],
) -> Result<Shared, CompileError> {
    let &[n, oh, ow, c] = out else {
        return Err(cx.error(format!("max pooling to shape {out:?}, expected NHWC")));
    };
    let shape = [n, oh, ow, c, window.size[0] * window.size[1]];
    // Where the values' width k is known (a truncation's output), the padding cells hold
    // -2^(k-1), below every value and of the same width, so the differences keep k + 1 bits.
    let width = match cx.options.comparison {
        Comparison::Opened => cx.sign_widths.get(&x.s).copied().filter(|&k| k < 64),
        Comparison::Paper => None,
    };
    let word = width.map_or(pad(cx.options.comparison), |k| {
        (1u64 << (k - 1)).wrapping_neg()
    });
    let s = cx.on_servers(
        |j| Kernel::Windows {
            window: *window,
            pad: if j == 0 { word } else { 0 },
        },
        |j| vec![x.s[j]],
        ValueKind::Ring,
        &shape,
    );
    if let Some(k) = width {
        cx.sign_widths.insert(s, k);
    }
    Ok(Shared { s })
}

/// DMaxPool over `window`: for every output of [`maxpool2d`], shares of the one-hot vector
/// of the cell that won (`[N, OH, OW, C, KH*KW]`, integers 0 or 1), for the backward pass.
pub fn dmaxpool2d(
    cx: &mut Lowerer,
    x: &Shared,
    window: &Window,
    out: &[usize],
) -> Result<Shared, CompileError> {
    let windows = pool_windows(cx, x, window, out)?;
    let n = window.size[0] * window.size[1];
    let (_, index) = maxpool(cx, &windows, true, 1);
    match index {
        Some(ind) => Ok(dmaxpool(cx, &ind, n)),
        None => Err(cx.error("max pooling lost its index")),
    }
}

/// DMaxPool Π_DMP({P0, P1}, P2): from shares of an index `ind` in `[0, n)` (integers,
/// `[..]`), shares of the one-hot vector `e_ind` (`[.., n]`).
///
/// The paper's algorithm is for `n` a power of two (a 2x2 window), where `n` divides
/// `L = 2^64` and so `(ind + k mod L) mod n = (ind + k) mod n`; any other window uses the next
/// power of two `N >= n` and keeps the first `n` entries (the others are always 0).
///
/// - Common randomness: P0, P1 hold a random `k` in Z_L and shares of 0.
pub fn dmaxpool(cx: &mut Lowerer, ind: &Shared, n: usize) -> Shared {
    let shape = cx.shape(ind.s[0]).to_vec();
    let size = n.next_power_of_two();
    let big = [shape.as_slice(), &[size]].concat();
    let out = [shape.as_slice(), &[n]].concat();
    let k = cx.servers_random(Draw::Ring, &shape);
    // Step 1: <g>_j = <ind>_j + (1 - j) k.
    let g0 = cx.emit(
        SERVERS[0],
        Kernel::Add,
        &[ind.s[0], k[0]],
        ValueKind::Ring,
        &shape,
    );
    // Step 2: P_j sends <g>_j to P2.
    let g = [g0, ind.s[1]].map(|v| cx.send(v, HELPER, Exchange::MaskedOpening));
    // Step 3: P2 computes g and h = g mod N, uniform in [0, N) as k is.
    let g = cx.emit(HELPER, Kernel::Add, &g, ValueKind::Ring, &shape);
    // Step 4: P2 sends shares of the one-hot vector E_h of length N.
    let e = cx.emit(
        HELPER,
        Kernel::OneHot { n: size },
        &[g],
        ValueKind::Ring,
        &big,
    );
    let e = cx.dealer_share(e);
    // Step 5: P_j rotates its share by k: D[i] = E[(i + k) mod N], which is 1 at i = ind; and
    // adds its share of 0.
    let d = cx.on_servers(
        |_| Kernel::RotateLast { keep: n },
        |j| vec![e.s[j], k[j]],
        ValueKind::Ring,
        &out,
    );
    cx.rerandomise(&Shared { s: d })
}

/// Argmax over the last axis: shares of the index of the first maximum, as a fixed-point
/// number (so that revealing decodes it as the float index), through the MaxPool tree.
pub fn argmax(cx: &mut Lowerer, x: &Shared) -> Result<Shared, CompileError> {
    if cx.shape(x.s[0]).is_empty() {
        return Err(cx.error("argmax of a scalar"));
    }
    let scale = 1u64 << cx.frac_bits();
    match maxpool(cx, x, true, scale) {
        (_, Some(index)) => Ok(index),
        _ => Err(cx.error("argmax lost its index")),
    }
}

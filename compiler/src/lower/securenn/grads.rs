//! The backward pass of ReLU and max pooling on SecureNN shares, reusing the forward pass's
//! comparisons: no second PrivateCompare for a value the forward compared already.
//!
//! - The ReLU derivative `DReLU(x)` (shares of 0/1 words) is what the forward ReLU took to
//!   pick `x` or 0; [`super::relu::relu`] keeps it by the shares of `x` and [`drelu_of`]
//!   returns it (or takes the sign if there was no forward ReLU of `x`). Then
//!   `relu_grad(x, dy) = DReLU(x) dy` is one dealer product, with no truncation (the bit is
//!   an integer).
//! - The routing of a max pool is the one-hot of the winning cell per window
//!   (`[N, OH, OW, C, KH*KW]`, the paper's DMaxPool output). The forward max pool keeps the
//!   decisions of its comparison tree; [`maxpool_routing_of`] replays the index half of the
//!   tree on them (SelectShares, no comparison) and converts the index to a one-hot with
//!   DMaxPool. Then `maxpool_grad(x, dy)` is one dealer product of the routing with `dy`
//!   broadcast over the window, and a local scatter of every window back into its input
//!   cells (overlapping windows add up).
//!
//! Ties: DReLU is 1 at `x = 0` (`x >= 0`), where the plaintext reference's ReLU derivative is
//! 0; a max pool routes to the first maximum in scan order, as the reference does.

use shareflow_graphs::op::Window;

use super::maxpool::{dmaxpool, pool_windows, replay_index, tree};
use super::relu::drelu;
use crate::ir::Kernel;
use crate::lower::{Lowerer, Shared};
use crate::CompileError;

/// Shares of `DReLU(x)` (1 where `x >= 0`, integers): the forward ReLU's, or a fresh sign.
pub fn drelu_of(cx: &mut Lowerer, x: &Shared) -> Shared {
    if let Some(bit) = cx.drelus.get(&x.s) {
        return *bit;
    }
    let bit = drelu(cx, x);
    cx.drelus.insert(x.s, bit);
    bit
}

/// The gradient of ReLU at `x` given `dy` (same shape): `DReLU(x) dy`.
pub fn relu_grad(cx: &mut Lowerer, x: &Shared, dy: &Shared) -> Shared {
    let shape = cx.shape(x.s[0]).to_vec();
    let bit = drelu_of(cx, x);
    cx.beaver(&bit, dy, Kernel::Mul, &shape)
}

/// Shares of the one-hot routing of the max pool of `x` (NHWC) over `window` to `out`
/// (`[N, OH, OW, C]`): `[N, OH, OW, C, KH*KW]`, 1 at each window's first maximum.
pub fn maxpool_routing_of(
    cx: &mut Lowerer,
    x: &Shared,
    window: &Window,
    out: &[usize],
) -> Result<Shared, CompileError> {
    let key = (x.s, *window);
    if let Some(r) = cx.routings.get(&key) {
        return Ok(*r);
    }
    let decisions = match cx.pool_trees.get(&key) {
        Some(d) => d.clone(),
        None => {
            let windows = pool_windows(cx, x, window, out)?;
            let (_, _, decisions) = tree(cx, &windows, false, 1);
            cx.pool_trees.insert(key, decisions.clone());
            decisions
        }
    };
    let n = window.size[0] * window.size[1];
    let index = replay_index(cx, &decisions, out, n);
    let routing = dmaxpool(cx, &index, n);
    cx.routings.insert(key, routing);
    Ok(routing)
}

/// The gradient of the max pool of `x` (NHWC) over `window` given `dy` (`[N, OH, OW, C]`):
/// each `dy` goes to its window's first maximum, summed where windows overlap.
pub fn maxpool_grad(
    cx: &mut Lowerer,
    x: &Shared,
    dy: &Shared,
    window: &Window,
) -> Result<Shared, CompileError> {
    let input = cx.shape(x.s[0]).to_vec();
    let out = cx.shape(dy.s[0]).to_vec();
    let (&[n, h, w, c], &[_, oh, ow, _]) = (input.as_slice(), out.as_slice()) else {
        return Err(cx.error(format!(
            "max-pool gradient of {input:?} from {out:?}, expected NHWC"
        )));
    };
    let routing = maxpool_routing_of(cx, x, window, &out)?;
    let k = window.size[0] * window.size[1];
    // The window axis first, so that `dy` broadcasts as a trailing part of the product.
    let first = [k, n, oh, ow, c];
    let moved = Kernel::Transpose {
        perm: vec![4, 0, 1, 2, 3],
    };
    let routing_t = cx.local(moved, &routing, &first);
    let routed = cx.beaver(&routing_t, dy, Kernel::Mul, &first);
    let back = Kernel::Transpose {
        perm: vec![1, 2, 3, 4, 0],
    };
    let routed = cx.local(back, &routed, &[n, oh, ow, c, k]);
    let scatter = Kernel::WindowsAdd {
        window: *window,
        input_shape: [n, h, w, c],
    };
    Ok(cx.local(scatter, &routed, &input))
}

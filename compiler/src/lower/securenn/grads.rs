//! The backward pass of ReLU and max pooling on SecureNN shares, reusing the forward pass's
//! comparisons: no second PrivateCompare for a value the forward compared already.
//!
//! - The ReLU derivative `DReLU(x)` (shares of 0/1 words) is what the forward ReLU took to
//!   pick `x` or 0; [`super::relu::relu`] keeps it by the shares of `x` and [`drelu_of`]
//!   returns it (or takes the sign if there was no forward ReLU of `x`). Then
//!   `relu_grad(x, dy) = DReLU(x) dy` is one dealer product, with no truncation (the bit is
//!   an integer); where `dy` is a truncation's output, a product in affine form
//!   ([`crate::lower::affine`]) that opens neither factor.
//! - A max pool's gradient goes down its comparison tree, which the forward max pool kept
//!   (its decisions `beta`, 1 where a pair's left candidate won): from the last level to the
//!   first, each pair's gradient `g` goes to the left candidate as `beta g` and to the right
//!   one as `g - beta g` (one product per pair, no truncation: `beta` is an integer; `beta`
//!   is in affine form, so only `g` is opened, masked, and the helper deals one word: 3 words
//!   per pair where a Beaver product takes 5), and an odd one out's passes through
//!   ([`route_down`]). A 2x2 window takes 3 products of
//!   a bit and a value and 2 rounds; replaying the tree's index half with SelectShares,
//!   DMaxPool's one-hot and a product with `dy` broadcast over the window took 11 rounds and
//!   about twice the traffic. Then a local scatter of every window back into its input cells
//!   (overlapping windows add up).
//!
//! Ties: DReLU is 1 at `x = 0` (`x >= 0`), where the plaintext reference's ReLU derivative is
//! 0; a max pool routes to the first maximum in scan order, as the reference does.

use shareflow_graphs::op::Window;

use super::maxpool::{pick, pool_windows, tree};
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
    cx.product_affine(&bit, dy, &shape)
}

/// The decisions of the comparison tree of the max pool of `x` (NHWC) over `window` to `out`
/// (`[N, OH, OW, C]`): the forward max pool's, or a fresh tree's if there was none.
fn pool_decisions(
    cx: &mut Lowerer,
    x: &Shared,
    window: &Window,
    out: &[usize],
) -> Result<Vec<Shared>, CompileError> {
    let key = (x.s, *window);
    if let Some(d) = cx.pool_trees.get(&key) {
        return Ok(d.clone());
    }
    let windows = pool_windows(cx, x, window, out)?;
    let (_, _, decisions) = tree(cx, &windows, false, 1);
    cx.pool_trees.insert(key, decisions.clone());
    Ok(decisions)
}

/// The gradient `dy` (`[lanes..]`) of the maximum of a tree of `n` candidates routed to
/// them (`[lanes.., n]`) by the tree's `decisions`: at each level from the last, the
/// gradient of pair `i`'s winner goes to its left candidate where `beta_i = 1`, else to its
/// right one, and an odd one out's passes through.
fn route_down(
    cx: &mut Lowerer,
    decisions: &[Shared],
    dy: &Shared,
    lanes: &[usize],
    n: usize,
) -> Shared {
    // The candidates at each level's input.
    let mut sizes = vec![n];
    for _ in 1..decisions.len() {
        let m = sizes[sizes.len() - 1];
        sizes.push(m / 2 + m % 2);
    }
    let axis = lanes.len();
    let top = [lanes, &[1, 1]].concat();
    let mut g = cx.local(Kernel::Reshape { shape: top.clone() }, dy, &top);
    for (beta, &m) in decisions.iter().zip(&sizes).rev() {
        let half = m / 2;
        let pairs = [lanes, &[half, 1]].concat();
        // The level's outputs: the pairs' winners, then the odd one out (none for even m).
        let won = match m % 2 {
            0 => g,
            _ => pick(cx, &g, lanes, 0, 1, half),
        };
        // The bit is in affine form (`t + (1 - 2t) s`, from the forward's sign): only the
        // gradient is masked and opened, and the helper deals `s b` (3 words per element
        // where a Beaver product, opening both, takes 5); a gradient in affine form already
        // (a truncation's output) is not opened at all.
        if cx.affine(&won).is_none() {
            cx.mask(&won);
        }
        let left = cx.product_affine(beta, &won, &pairs);
        let right = cx.local2(Kernel::Sub, &won, &left, &pairs);
        // Left and right side by side, then as candidates 2i and 2i + 1.
        let side_by_side = [lanes, &[half, 2]].concat();
        let both = cx.local2(
            Kernel::Concat { axis: axis + 1 },
            &left,
            &right,
            &side_by_side,
        );
        let flat = [lanes, &[2 * half, 1]].concat();
        let mut next = cx.local(
            Kernel::Reshape {
                shape: flat.clone(),
            },
            &both,
            &flat,
        );
        if m % 2 == 1 {
            let odd = pick(cx, &g, lanes, half, 1, 1);
            let all = [lanes, &[m, 1]].concat();
            next = cx.local2(Kernel::Concat { axis }, &next, &odd, &all);
        }
        g = next;
    }
    let routed = [lanes, &[n]].concat();
    cx.local(
        Kernel::Reshape {
            shape: routed.clone(),
        },
        &g,
        &routed,
    )
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
    let (&[n, h, w, c], &[_, _, _, _]) = (input.as_slice(), out.as_slice()) else {
        return Err(cx.error(format!(
            "max-pool gradient of {input:?} from {out:?}, expected NHWC"
        )));
    };
    let decisions = pool_decisions(cx, x, window, &out)?;
    let k = window.size[0] * window.size[1];
    let routed = route_down(cx, &decisions, dy, &out, k);
    let scatter = Kernel::WindowsAdd {
        window: *window,
        input_shape: [n, h, w, c],
    };
    Ok(cx.local(scatter, &routed, &input))
}

//! ReLU then max pooling, lowered as max pooling then ReLU.
//!
//! `maxpool(relu(a)) = relu(maxpool(a))` exactly, and the right side compares `k^2` times
//! fewer values for `k x k` windows. A protocol lowers one op at a time and cannot see the
//! graph, so the swap happens when the max pooling is lowered: if its input is the output of
//! a ReLU lowered by [`relu_remembered`], it pools the ReLU's input instead and applies ReLU
//! to the pooled values. The first ReLU's nodes then have no user left and dead-code removal
//! drops them. (If the ReLU also feeds another op, it stays for that op and the swap costs
//! one ReLU of the pooled size on top; graphs rarely do this.)
//!
//! The ReLUs are remembered per thread (lowering runs on one thread) together with the nodes
//! they emitted; a record is only used if the lowered graph holds exactly those nodes at
//! those ids, so a record of an earlier compilation can never be mistaken for one of this
//! compilation.

use std::cell::RefCell;
use std::ops::Range;

use super::relu::relu;
use crate::ir::LowNode;
use crate::lower::{Lowerer, Shared};

/// Records kept at most (a few per graph are ever looked up).
const CAPACITY: usize = 64;

/// A ReLU lowered in this thread: its input and output shares and the nodes it emitted.
struct Record {
    input: Shared,
    output: Shared,
    span: Range<usize>,
    nodes: Vec<LowNode>,
}

thread_local! {
    static RELUS: RefCell<Vec<Record>> = const { RefCell::new(Vec::new()) };
}

/// ReLU of `a` ([`relu`]), remembered for [`relu_input`].
pub fn relu_remembered(cx: &mut Lowerer, a: &Shared) -> Shared {
    let first = cx.low.nodes.len();
    let output = relu(cx, a);
    let span = first..cx.low.nodes.len();
    let record = Record {
        input: *a,
        output,
        nodes: cx.low.nodes[span.clone()].to_vec(),
        span,
    };
    RELUS.with(|r| {
        let mut r = r.borrow_mut();
        if r.len() >= CAPACITY {
            r.remove(0);
        }
        r.push(record);
    });
    output
}

/// The input of the ReLU whose output is `x`, if `x` is the output of a ReLU lowered in this
/// compilation by [`relu_remembered`].
pub fn relu_input(cx: &Lowerer, x: &Shared) -> Option<Shared> {
    RELUS.with(|r| {
        r.borrow()
            .iter()
            .rev()
            .find(|rec| {
                rec.output == *x && cx.low.nodes.get(rec.span.clone()) == Some(&rec.nodes[..])
            })
            .map(|rec| rec.input)
    })
}

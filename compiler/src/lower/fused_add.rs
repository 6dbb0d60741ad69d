//! Additions lowered with the product they add to, before its truncation: `trunc(k(a, b) + e)`,
//! the same value to one ulp as `trunc(k(a, b)) + e'`, with one truncation where the separate
//! ops take one each.
//!
//! Two kinds of addend qualify:
//!
//! - **A bias** (an input or a variable, ready before the product), shifted by `f`:
//!   `trunc(x w + b 2^f)`. The truncation's opening then also serves a sign that follows (a
//!   ReLU's, see `securenn::opened`).
//! - **A product with a public value** (`v * mu`, a constant or a run-time parameter), kept at
//!   the product's scale `2^(2f)`: `trunc(x^T dy + v mu)`. This is SGD with momentum's
//!   `v <- mu v + grad` (`shareflow_graphs::optim::momentum`): without it, the gradient and
//!   `v mu` are truncated apart, and the second truncation (an opening and the helper's pair,
//!   26 bytes per element) is saved for every parameter of every step. The update's
//!   `lr v` that follows opens nothing of its own either (`super::rescale`).

use std::collections::{HashMap, HashSet};

use shareflow_graphs::{Graph, NodeId, Op, Visibility};
use shareflow_ops::ValueKind;

use super::{linear, to_shared, Lowerer, Operand, Protocol, Shared, S0, S1};
use crate::ir::Kernel;
use crate::CompileError;

/// What an addition adds to its product.
#[derive(Debug, Clone, Copy)]
pub enum Addend {
    /// A bias: an input or a variable.
    Bias(NodeId),
    /// A shared `Mul` of a value and a public one.
    Scaled(NodeId),
}

/// An addition lowered with its product.
#[derive(Debug, Clone, Copy)]
pub struct FusedAdd {
    /// The product (matmul, conv2d or one of its gradients), whose only user is the addition.
    pub product: NodeId,
    /// The other operand.
    pub addend: Addend,
}

/// The fused additions of `graph`, by addition node.
#[derive(Debug, Default)]
pub struct FusedAdds {
    by_add: HashMap<NodeId, FusedAdd>,
    absorbed: HashSet<NodeId>,
}

impl FusedAdds {
    /// Finds the shared additions of `graph` (among `live`) that qualify (see the module).
    pub fn of(graph: &Graph, live: &HashSet<NodeId>) -> FusedAdds {
        let mut by_add = HashMap::new();
        for (add, node) in graph.nodes() {
            if !live.contains(&add)
                || !matches!(node.op, Op::Add)
                || node.visibility != Visibility::Shared
            {
                continue;
            }
            let [x, y] = graph.inputs(add)[..] else {
                continue;
            };
            if x == y {
                continue;
            }
            let sole_same = |id: NodeId| {
                graph.users(id).as_slice() == [add]
                    && graph.node(id).is_ok_and(|n| n.shape == node.shape)
            };
            let fused = [(x, y), (y, x)].into_iter().find_map(|(p, other)| {
                if !is_product(graph, p, false) || !sole_same(p) {
                    return None;
                }
                if is_bias(graph, p, other) {
                    return Some(FusedAdd {
                        product: p,
                        addend: Addend::Bias(other),
                    });
                }
                (sole_same(other) && is_public_product(graph, other)).then_some(FusedAdd {
                    product: p,
                    addend: Addend::Scaled(other),
                })
            });
            if let Some(f) = fused {
                by_add.insert(add, f);
            }
        }
        let absorbed = by_add
            .values()
            .flat_map(|f| match f.addend {
                Addend::Bias(_) => vec![f.product],
                Addend::Scaled(m) => vec![f.product, m],
            })
            .collect();
        FusedAdds { by_add, absorbed }
    }

    /// The fused addition `add`, if it is one.
    pub fn get(&self, add: NodeId) -> Option<FusedAdd> {
        self.by_add.get(&add).copied()
    }

    /// Whether `id` is lowered with an addition (a product, or a scaled addend), not on its
    /// own.
    pub fn absorbs(&self, id: NodeId) -> bool {
        self.absorbed.contains(&id)
    }
}

/// A shared matmul or conv2d (and, unless `forward_only`, their gradients).
fn is_product(graph: &Graph, id: NodeId, forward_only: bool) -> bool {
    graph.node(id).is_ok_and(|n| {
        n.visibility == Visibility::Shared
            && match n.op {
                Op::MatMul | Op::Conv2d { .. } => true,
                Op::Conv2dBackpropFilter { .. } | Op::Conv2dBackpropInput { .. } => !forward_only,
                _ => false,
            }
    })
}

/// Whether `bias` is an input or a variable added to the forward product `p`.
fn is_bias(graph: &Graph, p: NodeId, bias: NodeId) -> bool {
    is_product(graph, p, true)
        && graph
            .node(bias)
            .is_ok_and(|b| matches!(b.op, Op::Input { .. } | Op::Variable { .. }))
}

/// Whether `id` is a shared `Mul` of a value of its own shape and a public one.
fn is_public_product(graph: &Graph, id: NodeId) -> bool {
    let Ok(node) = graph.node(id) else {
        return false;
    };
    if !matches!(node.op, Op::Mul) || node.visibility != Visibility::Shared {
        return false;
    }
    let public = |i: NodeId| {
        graph
            .node(i)
            .is_ok_and(|n| n.visibility == Visibility::Public)
    };
    match graph.inputs(id)[..] {
        [a, b] => {
            let x = match (public(a), public(b)) {
                (false, true) => a,
                (true, false) => b,
                _ => return false,
            };
            graph.node(x).is_ok_and(|n| n.shape == node.shape)
        }
        _ => false,
    }
}

/// Lowers the fused addition `add`: its product with the addend added before the truncation
/// (a bias that is public is added after it, as usual: it costs nothing either way). The
/// traffic counts as the product's.
pub fn lower_fused_add(
    cx: &mut Lowerer,
    graph: &Graph,
    protocol: &dyn Protocol,
    add: NodeId,
    fused: FusedAdd,
    values: &HashMap<NodeId, Operand>,
) -> Result<Operand, CompileError> {
    let operand = |cx: &Lowerer, i: NodeId| {
        values
            .get(&i)
            .cloned()
            .ok_or_else(|| cx.error(format!("input {} was not lowered", graph.label(i))))
    };
    let product = fused.product;
    let node = graph.node(product)?;
    let (a, b) = match graph.inputs(product)[..] {
        [a, b] => (operand(cx, a)?, operand(cx, b)?),
        _ => return Err(cx.error("a product without two inputs")),
    };
    let origin = cx.origin.replace(graph.label(product));
    let Some(kernel) = linear::product_kernel(cx, &node.op)? else {
        return Err(cx.error("not a product"));
    };
    let dims = node.shape.dims();
    let out = match fused.addend {
        Addend::Bias(bias) => match operand(cx, bias)? {
            bias @ (Operand::Shared(_) | Operand::Private { .. }) => {
                let s = to_shared(cx, &bias)?;
                let shape = cx.shape(s.s[0]).to_vec();
                let f = cx.frac_bits();
                let shifted = cx.local(Kernel::Shl { bits: f }, &s, &shape);
                linear::product_plus(cx, kernel, &a, &b, dims, Some(&shifted))
            }
            bias => linear::product_plus(cx, kernel, &a, &b, dims, None).and_then(|z| {
                cx.origin = Some(graph.label(add));
                let inputs = [Operand::Shared(z), bias];
                protocol.lower_op(cx, &Op::Add, &node.shape, &inputs)
            }),
        },
        Addend::Scaled(m) => {
            cx.origin = Some(graph.label(m));
            let scaled = public_product(cx, graph, m, values)?;
            cx.origin = Some(graph.label(product));
            linear::product_plus(cx, kernel, &a, &b, dims, Some(&scaled))
        }
    };
    cx.origin = origin;
    Ok(Operand::Shared(out?))
}

/// The shares of the `Mul` node `m` (a value times a public one) at the product's scale
/// `2^(2f)`: each server multiplies its share, nothing is truncated.
fn public_product(
    cx: &mut Lowerer,
    graph: &Graph,
    m: NodeId,
    values: &HashMap<NodeId, Operand>,
) -> Result<Shared, CompileError> {
    let mut x = None;
    let mut public = None;
    for i in graph.inputs(m) {
        match values.get(&i) {
            Some(Operand::Public(p)) => {
                public = Some([cx.public_ring(S0, p)?, cx.public_ring(S1, p)?])
            }
            Some(Operand::Parameter(p)) => public = Some(*p),
            Some(o) => x = Some(to_shared(cx, o)?),
            None => return Err(cx.error(format!("input {} was not lowered", graph.label(i)))),
        }
    }
    let (Some(x), Some(p)) = (x, public) else {
        return Err(cx.error("not a product of a value and a public one"));
    };
    let dims = graph.node(m)?.shape.dims().to_vec();
    let s0 = cx.emit(S0, Kernel::Mul, &[x.s[0], p[0]], ValueKind::Ring, &dims);
    let s1 = cx.emit(S1, Kernel::Mul, &[x.s[1], p[1]], ValueKind::Ring, &dims);
    Ok(Shared { s: [s0, s1] })
}

//! Lowering: from a logical graph to kernels placed on parties and share exchanges.
//!
//! The driver ([`lower`]) walks the logical graph in topological order. Public subgraphs are
//! evaluated at compile time (constant folding); a party's private subgraph runs in the clear
//! on that party (`Kernel::Plain`); an op on values of several owners is secret-shared between
//! the two servers and lowered by the [`Protocol`]. A softmax whose only users are outputs to
//! one party is computed by that party after the logits are revealed to it; any other shared
//! softmax is the protocol's (SecureNN computes it on shares, Pond refuses it).

pub mod affine;
pub mod context;
pub mod dealer;
pub mod fused_add;
pub mod linear;
pub mod phase;
pub mod poly;
pub mod pond;
pub mod rescale;
pub mod securenn;
pub mod session;

use std::collections::HashMap;

use ndarray::ArrayD;
use shareflow_graphs::{Graph, NodeId, Op, Shape, Visibility};
use shareflow_ops::ValueKind;

pub use context::{Lowerer, COMPUTE_PARTIES, HELPER, S0, S1};
use fused_add::FusedAdds;

use crate::ir::{Exchange, Host, Kernel, ValueId};
use crate::plain_op;
use crate::CompileError;

/// A value secret-shared between the two servers: `s[0]` on server 0, `s[1]` on server 1,
/// additive shares over Z_2^64 of a fixed-point number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shared {
    /// Server 0's share and server 1's share.
    pub s: [ValueId; 2],
}

/// A shared value masked by dealer randomness and opened once: `e = x - a` on both servers,
/// `a` known to the helper and shared. Reused by every product that takes `x`.
#[derive(Debug, Clone, Copy)]
pub struct Masked {
    /// `a` on the helper.
    pub a: ValueId,
    /// Shares of `a`.
    pub a_shared: Shared,
    /// The opened `x - a` on server 0 and server 1.
    pub e: [ValueId; 2],
}

/// A dealer truncation folded into a product ([`Lowerer::product_truncated`]), as a sign
/// that follows it reuses it: its output is `y = P - R + 2^(64-f) T` with `P = (c >> f) -
/// 2^(62-f)` public.
#[derive(Debug, Clone, Copy)]
pub struct Truncated {
    /// `P = (c >> f) - 2^(62-f)` of the opened `c`, on server 0 and server 1.
    pub p: [ValueId; 2],
    /// The bits truncated.
    pub f: u32,
    /// `R` on the helper.
    pub r: ValueId,
    /// `lambda` on the helper: the mask is `r = R 2^f + lambda`.
    pub lambda: ValueId,
    /// The opened `c = z + 2^62 + r` on server 0 and server 1.
    pub c: [ValueId; 2],
    /// Shares of `T` (they add up modulo `2^f` only).
    pub top: Shared,
    /// `G` on the helper (`T = G - msb(c) H`).
    pub g: ValueId,
    /// `H` on the helper.
    pub h: ValueId,
    /// `msb(c)` (a 0/1 word) on server 0 and server 1.
    pub msb: [ValueId; 2],
}

/// An input of an op being lowered.
#[derive(Debug, Clone)]
pub enum Operand {
    /// Known at compile time.
    Public(ArrayD<f32>),
    /// A float value held in the clear by one party.
    Private {
        /// The party holding it.
        host: Host,
        /// The value on that party.
        value: ValueId,
    },
    /// Secret-shared between the servers.
    Shared(Shared),
    /// A public value given at run time (a graph's parameter, such as a learning rate): fixed
    /// point on server 0 and on server 1.
    Parameter([ValueId; 2]),
}

/// A secure protocol: how an op on shared values becomes kernels and exchanges.
pub trait Protocol {
    /// The protocol's name, for messages.
    fn name(&self) -> &'static str;
    /// Lowers `op` (the logical node `label`, of static shape `shape`) whose result is shared.
    fn lower_op(
        &self,
        cx: &mut Lowerer,
        op: &Op,
        shape: &Shape,
        inputs: &[Operand],
    ) -> Result<Shared, CompileError>;
}

/// The error for an op that `protocol` cannot lower, naming the logical node being lowered.
pub fn unsupported(cx: &Lowerer, op: &Op, protocol: &'static str, hint: String) -> CompileError {
    CompileError::Unsupported {
        node: cx.origin.clone().unwrap_or_default(),
        op: op.name(),
        protocol,
        hint,
    }
}

/// The parties of a compiled graph: the compute parties, then the graph's own.
pub fn compiled_parties(graph: &Graph) -> Result<Vec<String>, CompileError> {
    let mut parties: Vec<String> = COMPUTE_PARTIES.iter().map(|p| p.to_string()).collect();
    for p in graph.parties() {
        if parties.contains(p) {
            return Err(CompileError::Party {
                party: p.clone(),
                message: format!(
                    "the name is reserved for a compute party ({})",
                    COMPUTE_PARTIES.join(", ")
                ),
            });
        }
        parties.push(p.clone());
    }
    Ok(parties)
}

/// Lowers every node of `graph` with `protocol`.
pub fn lower(graph: &Graph, protocol: &dyn Protocol, cx: &mut Lowerer) -> Result<(), CompileError> {
    let host_of = |p: shareflow_graphs::PartyId| COMPUTE_PARTIES.len() + p.index();
    let mut values: HashMap<NodeId, Operand> = HashMap::new();
    let deferred = relu_before_maxpool(graph);
    let live = live_nodes(graph);
    let fused = FusedAdds::of(graph, &live);
    for id in graph.topo_order()? {
        // a product (and a scaled addend) added before its truncation is lowered with the
        // addition (below)
        if !live.contains(&id) || fused.absorbs(id) {
            continue;
        }
        let node = graph.node(id)?;
        cx.origin = Some(graph.label(id));
        cx.sign_bits = cx
            .narrowing
            .as_ref()
            .map_or(securenn::WORD_BITS as u32, |n| n.bits(&graph.label(id)));
        if let Some(f) = fused.get(id) {
            let out = fused_add::lower_fused_add(cx, graph, protocol, id, f, &values)?;
            values.insert(id, out);
            continue;
        }
        let inputs: Vec<Operand> = graph
            .inputs(id)
            .iter()
            .map(|i| {
                values.get(i).cloned().ok_or_else(|| CompileError::Node {
                    node: graph.label(id),
                    message: format!("input {} was not lowered", graph.label(*i)),
                })
            })
            .collect::<Result<_, _>>()?;
        // A shared softmax whose users are all outputs to one party: that party receives the
        // probabilities anyway, so it gets the logits and computes them in the clear (cheaper
        // than on shares). Any other shared softmax is the protocol's.
        let receiver = match (&node.op, node.visibility) {
            (Op::Softmax, Visibility::Shared) => sole_output_party(graph, id),
            _ => None,
        };
        let out = if let Some(to) = receiver {
            softmax_at(cx, &inputs[0], host_of(to), node.shape.dims())?
        } else {
            match (&node.op, node.visibility) {
                (Op::Input { party, name }, _) => {
                    let host = host_of(*party);
                    let mut value = cx.emit(
                        host,
                        Kernel::Input { name: name.clone() },
                        &[],
                        ValueKind::Float,
                        node.shape.dims(),
                    );
                    // What narrowed comparisons assume of it, checked by its owner first.
                    let check = cx
                        .narrowing
                        .as_ref()
                        .and_then(|n| n.check(graph.party_name(*party), name).cloned());
                    if let Some(check) = check {
                        let kernel = Kernel::CheckInput {
                            name: name.clone(),
                            check,
                        };
                        value = cx.emit_like(kernel, &[value]);
                    }
                    Operand::Private { host, value }
                }
                (Op::Variable { name, .. }, _) => {
                    Operand::Shared(cx.load_variable(name, node.shape.dims()))
                }
                (Op::Assign, _) => {
                    let var = graph.inputs(id).first().copied();
                    let name = match var.map(|v| graph.node(v)).transpose()?.map(|n| &n.op) {
                        Some(Op::Variable { name, .. }) => name.clone(),
                        _ => return Err(cx.error("assigns to something that is not a variable")),
                    };
                    let value = to_shared(cx, &inputs[1])?;
                    cx.store_variable(&name, &value);
                    Operand::Shared(value)
                }
                (Op::Parameter { name }, _) => {
                    Operand::Parameter(cx.parameter(name, node.shape.dims()))
                }
                (Op::Output { party, name }, _) => {
                    let to = host_of(*party);
                    let value = match &inputs[0] {
                        Operand::Public(a) => cx.public_float(to, a),
                        Operand::Private { value, .. } => cx.send(*value, to, Exchange::Reveal),
                        Operand::Shared(x) => cx.reveal(x, to),
                        Operand::Parameter(_) => return Err(cx.error(PARAMETER_USE)),
                    };
                    let shape = cx.shape(value).to_vec();
                    cx.emit(
                        to,
                        Kernel::Output { name: name.clone() },
                        &[value],
                        ValueKind::Float,
                        &shape,
                    );
                    Operand::Private { host: to, value }
                }
                (op, Visibility::Public) => {
                    let args: Vec<&ArrayD<f32>> = inputs
                        .iter()
                        .map(|o| match o {
                            Operand::Public(a) => Ok(a),
                            Operand::Parameter(_) => Err(cx.error(PARAMETER_USE)),
                            _ => Err(cx.error("a public node has a non-public input")),
                        })
                        .collect::<Result<_, _>>()?;
                    let out = plain_op::eval(op, &node.shape, &args)
                        .map_err(|e| cx.error(e.to_string()))?;
                    Operand::Public(out.value)
                }
                // A reshape or transpose of a private value that is shared anyway, used only
                // on shares: done on the shares, so that its mask derives from the value's
                // (the transposed input of a weight gradient is not shared and opened twice).
                (op @ (Op::Reshape { .. } | Op::Transpose { .. }), Visibility::Private(_))
                    if shape_op_on_shares(graph, id) =>
                {
                    let x = match &inputs[0] {
                        Operand::Private { value, .. } => cx.share_masked(*value),
                        other => to_shared(cx, other)?,
                    };
                    let inputs = [Operand::Shared(x)];
                    Operand::Shared(protocol.lower_op(cx, op, &node.shape, &inputs)?)
                }
                (op, Visibility::Private(p)) => {
                    let host = host_of(p);
                    let args = inputs
                        .iter()
                        .map(|o| match o {
                            Operand::Public(a) => Ok(cx.public_float(host, a)),
                            Operand::Private { value, .. } => Ok(*value),
                            Operand::Shared(_) => {
                                Err(cx.error("a private node has a shared input"))
                            }
                            Operand::Parameter(_) => Err(cx.error(PARAMETER_USE)),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    let value = cx.emit(
                        host,
                        Kernel::Plain { op: op.clone() },
                        &args,
                        ValueKind::Float,
                        node.shape.dims(),
                    );
                    Operand::Private { host, value }
                }
                // A ReLU whose users are all max pools is applied after them (see
                // `relu_before_maxpool`): here it passes its input through.
                (Op::Relu, Visibility::Shared) if deferred.contains(&id) => inputs[0].clone(),
                (op @ Op::MaxPool2d { .. }, Visibility::Shared)
                    if graph
                        .inputs(id)
                        .first()
                        .is_some_and(|i| deferred.contains(i)) =>
                {
                    let pooled = protocol.lower_op(cx, op, &node.shape, &inputs)?;
                    let relu = protocol.lower_op(
                        cx,
                        &Op::Relu,
                        &node.shape,
                        &[Operand::Shared(pooled)],
                    )?;
                    Operand::Shared(relu)
                }
                (op, Visibility::Shared) => {
                    Operand::Shared(protocol.lower_op(cx, op, &node.shape, &inputs)?)
                }
            }
        };
        values.insert(id, out);
    }
    cx.origin = None;
    Ok(())
}

/// The nodes that an output or an assign depends on: the others are not lowered (a training
/// graph's loss, say, when nothing reveals it).
pub fn live_nodes(graph: &Graph) -> std::collections::HashSet<NodeId> {
    let mut live = std::collections::HashSet::new();
    let mut todo: Vec<NodeId> = graph
        .nodes()
        .filter(|(_, n)| matches!(n.op, Op::Output { .. } | Op::Assign))
        .map(|(id, _)| id)
        .collect();
    while let Some(id) = todo.pop() {
        if live.insert(id) {
            todo.extend(graph.inputs(id).iter().copied());
        }
    }
    live
}

/// Whether the private reshape or transpose `id` is better done on shares: its input has a
/// shared user (so it is shared anyway) and every user of `id` is a shared op.
fn shape_op_on_shares(graph: &Graph, id: NodeId) -> bool {
    let shared_op = |n: NodeId| {
        graph
            .node(n)
            .is_ok_and(|n| n.visibility == Visibility::Shared && !matches!(n.op, Op::Output { .. }))
    };
    let users = graph.users(id);
    !users.is_empty()
        && users.iter().all(|&u| shared_op(u))
        && graph
            .inputs(id)
            .first()
            .is_some_and(|&i| graph.users(i).iter().any(|&u| shared_op(u)))
}

/// The shared ReLUs whose every user is a max pool: `maxpool(relu(x)) = relu(maxpool(x))`
/// exactly (ReLU is monotone), and the right side applies ReLU to `k^2` times fewer values of
/// a `k x k` pool, so the driver lowers these ReLUs after the pools instead.
pub fn relu_before_maxpool(graph: &Graph) -> std::collections::HashSet<NodeId> {
    graph
        .nodes()
        .filter(|(id, n)| {
            matches!(n.op, Op::Relu)
                && n.visibility == Visibility::Shared
                && !graph.users(*id).is_empty()
                && graph.users(*id).iter().all(|u| {
                    graph.node(*u).is_ok_and(|n| {
                        matches!(n.op, Op::MaxPool2d { .. }) && n.visibility == Visibility::Shared
                    })
                })
        })
        .map(|(id, _)| id)
        .collect()
}

/// The softmax of `logits` computed in the clear by `host`, who receives them.
fn softmax_at(
    cx: &mut Lowerer,
    logits: &Operand,
    host: Host,
    dims: &[usize],
) -> Result<Operand, CompileError> {
    let logits = match logits {
        Operand::Shared(x) => cx.reveal(x, host),
        Operand::Private { value, .. } => cx.send(*value, host, Exchange::Reveal),
        Operand::Public(a) => cx.public_float(host, a),
        Operand::Parameter(_) => return Err(cx.error(PARAMETER_USE)),
    };
    let value = cx.emit(
        host,
        Kernel::Plain { op: Op::Softmax },
        &[logits],
        ValueKind::Float,
        dims,
    );
    Ok(Operand::Private { host, value })
}

/// The party that every user of `id` outputs to, if they are all outputs to one party.
fn sole_output_party(graph: &Graph, id: NodeId) -> Option<shareflow_graphs::PartyId> {
    let mut party = None;
    for user in graph.users(id) {
        match graph.node(user).ok()?.op {
            Op::Output { party: p, .. } if party.is_none() || party == Some(p) => party = Some(p),
            _ => return None,
        }
    }
    party
}

/// What the protocols do with a run-time parameter: products and sums with shared values.
const PARAMETER_USE: &str = "a run-time parameter may only be added to or multiplied with \
                             shared values (compute anything else from it outside the graph)";

/// The shares of an operand, sharing a private value or placing a public one on server 0.
pub fn to_shared(cx: &mut Lowerer, x: &Operand) -> Result<Shared, CompileError> {
    Ok(match x {
        Operand::Parameter(p) => {
            let shape = cx.shape(p[1]).to_vec();
            let n = shape.iter().product();
            let zero = cx.ring_words(S1, &shape, vec![0; n]);
            Shared { s: [p[0], zero] }
        }
        Operand::Shared(s) => *s,
        Operand::Private { value, .. } => cx.share(*value),
        Operand::Public(a) => {
            let p0 = cx.public_ring(S0, a)?;
            let shape = a.shape().to_vec();
            let zero = cx.ring_words(S1, &shape, vec![0; a.len()]);
            Shared { s: [p0, zero] }
        }
    })
}

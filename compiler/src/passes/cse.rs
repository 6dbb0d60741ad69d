//! Common subexpression elimination: two nodes on one host with the same pure kernel and the
//! same inputs are one value (the public constants that lowering emits per use, a shape op
//! applied twice to one share). A send of one value to one party for one purpose is one
//! message, and its receives are one value.
//!
//! [`find`] returns the rewrite as a value (each duplicate and the earlier node it repeats);
//! [`apply`] reroutes the users and marks the duplicates dead. Ids stay stable.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use shareflow_ops::ValueKind;

use crate::ir::{Host, Kernel, LowGraph, LowNode, ValueId};

/// Duplicates and the node each repeats (never itself a duplicate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patch {
    /// Each duplicate's id, mapped to the node it repeats.
    pub replace: BTreeMap<ValueId, ValueId>,
}

impl Patch {
    fn canon(&self, v: ValueId) -> ValueId {
        self.replace.get(&v).copied().unwrap_or(v)
    }
}

/// What must match for two nodes to be one value (then their kernels are compared exactly).
#[derive(Hash, PartialEq, Eq)]
struct Key {
    host: Host,
    fingerprint: u64,
    inputs: Vec<ValueId>,
    kind: ValueKind,
    shape: Vec<usize>,
}

/// The duplicates among the live nodes of `low`.
pub fn find(low: &LowGraph) -> Patch {
    let mut patch = Patch::default();
    let mut seen: HashMap<Key, Vec<ValueId>> = HashMap::new();
    for id in low.live() {
        let node = low.node(id);
        let kernel = match node.kernel {
            Kernel::Recv { from, send } => Kernel::Recv {
                from,
                send: patch.canon(send),
            },
            ref k if k.is_pure() || matches!(k, Kernel::Send { .. }) => k.clone(),
            _ => continue,
        };
        let key = Key {
            host: node.host,
            fingerprint: fingerprint(&kernel),
            inputs: node.inputs.iter().map(|&v| patch.canon(v)).collect(),
            kind: node.kind,
            shape: node.shape.clone(),
        };
        let bucket = seen.entry(key).or_default();
        let same = bucket.iter().copied().find(|&other| {
            let o = &low.node(other).kernel;
            match (o, &kernel) {
                (Kernel::Recv { from, send }, Kernel::Recv { from: f, send: s }) => {
                    from == f && patch.canon(*send) == *s
                }
                (o, k) => same_kernel(o, k),
            }
        });
        match same {
            Some(first) => {
                patch.replace.insert(id, first);
            }
            None => bucket.push(id),
        }
    }
    patch
}

/// Reroutes every use of a duplicate to the node it repeats and marks the duplicates dead.
pub fn apply(low: &mut LowGraph, patch: &Patch) {
    if patch.replace.is_empty() {
        return;
    }
    for node in &mut low.nodes {
        rewrite(node, patch);
    }
    for dup in patch.replace.keys() {
        low.dead[dup.0 as usize] = true;
    }
}

/// Finds and removes the duplicates of `low`; returns how many nodes were removed.
pub fn run(low: &mut LowGraph) -> usize {
    let patch = find(low);
    apply(low, &patch);
    patch.replace.len()
}

fn rewrite(node: &mut LowNode, patch: &Patch) {
    for input in &mut node.inputs {
        *input = patch.canon(*input);
    }
    if let Kernel::Recv { send, .. } = &mut node.kernel {
        *send = patch.canon(*send);
    }
}

/// Equal kernels; float constants compare bit for bit (`0.0` and `-0.0` differ).
fn same_kernel(a: &Kernel, b: &Kernel) -> bool {
    match (a, b) {
        (Kernel::FloatConst { values: x }, Kernel::FloatConst { values: y }) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        }
        _ => a == b,
    }
}

/// A hash of the kernel and its parameters (constants by content).
fn fingerprint(k: &Kernel) -> u64 {
    let mut h = DefaultHasher::new();
    k.name().hash(&mut h);
    match k {
        Kernel::RingConst { values } => values.hash(&mut h),
        Kernel::FloatConst { values } => values.iter().for_each(|v| v.to_bits().hash(&mut h)),
        Kernel::Expand {
            stream,
            draw,
            shape,
        } => (stream, draw, shape).hash(&mut h),
        // Small parameters: their debug form is exact and short.
        other => format!("{other:?}").hash(&mut h),
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Exchange;

    fn node(host: usize, kernel: Kernel, inputs: &[u32]) -> LowNode {
        LowNode {
            host,
            kernel,
            inputs: inputs.iter().map(|&i| ValueId(i)).collect(),
            kind: ValueKind::Ring,
            shape: vec![2],
            origin: None,
        }
    }

    fn ring(values: &[u64]) -> Kernel {
        Kernel::RingConst {
            values: values.to_vec(),
        }
    }

    fn live(g: &LowGraph) -> Vec<u32> {
        g.live().map(|v| v.0).collect()
    }

    #[test]
    fn constants_emitted_per_use_become_one() {
        let mut g = LowGraph::default();
        g.push(node(0, Kernel::Input { name: "x".into() }, &[])); // 0
        g.push(node(0, ring(&[5, 6]), &[])); // 1
        g.push(node(0, ring(&[5, 6]), &[])); // 2 = 1
        g.push(node(0, ring(&[5, 7]), &[])); // 3: other values
        g.push(node(1, ring(&[5, 6]), &[])); // 4: other host
        g.push(node(0, Kernel::Mul, &[0, 1])); // 5
        g.push(node(0, Kernel::Mul, &[0, 2])); // 6 = 5 once 2 is 1
        g.push(node(0, Kernel::Add, &[5, 6])); // 7 -> add(5, 5)
        g.push(node(0, Kernel::Add, &[3, 0])); // 8
        assert_eq!(run(&mut g), 2);
        assert_eq!(live(&g), vec![0, 1, 3, 4, 5, 7, 8]);
        assert_eq!(g.node(ValueId(7)).inputs, vec![ValueId(5), ValueId(5)]);
    }

    #[test]
    fn float_constants_compare_by_bits_and_fresh_seeds_never_merge() {
        let mut g = LowGraph::default();
        g.push(node(
            0,
            Kernel::FloatConst {
                values: vec![0.0, 1.0],
            },
            &[],
        )); // 0
        g.push(node(
            0,
            Kernel::FloatConst {
                values: vec![-0.0, 1.0],
            },
            &[],
        )); // 1
        g.push(node(
            0,
            Kernel::FloatConst {
                values: vec![0.0, 1.0],
            },
            &[],
        )); // 2 = 0
        g.push(node(0, Kernel::SampleSeed, &[])); // 3
        g.push(node(0, Kernel::SampleSeed, &[])); // 4: another seed
        g.push(node(0, Kernel::Output { name: "a".into() }, &[0])); // 5
        g.push(node(0, Kernel::Output { name: "a".into() }, &[2])); // 6: an effect, kept
        let patch = find(&g);
        assert_eq!(
            patch.replace,
            [(ValueId(2), ValueId(0))].into_iter().collect()
        );
        apply(&mut g, &patch);
        assert_eq!(g.node(ValueId(6)).inputs, vec![ValueId(0)]);
    }

    #[test]
    fn one_message_per_value_receiver_and_purpose() {
        let mut g = LowGraph::default();
        let send = |to| Kernel::Send {
            to,
            exchange: Exchange::Share,
        };
        g.push(node(0, Kernel::Input { name: "x".into() }, &[])); // 0
        g.push(node(0, Kernel::Neg, &[0])); // 1
        g.push(node(0, Kernel::Neg, &[0])); // 2 = 1
        g.push(node(0, send(1), &[1])); // 3
        g.push(node(
            1,
            Kernel::Recv {
                from: 0,
                send: ValueId(3),
            },
            &[],
        )); // 4
        g.push(node(0, send(1), &[2])); // 5 = 3 once 2 is 1
        g.push(node(
            1,
            Kernel::Recv {
                from: 0,
                send: ValueId(5),
            },
            &[],
        )); // 6 = 4
        g.push(node(0, send(2), &[2])); // 7: another receiver
        g.push(node(
            2,
            Kernel::Recv {
                from: 0,
                send: ValueId(7),
            },
            &[],
        )); // 8
        g.push(node(1, Kernel::Add, &[4, 6])); // 9 -> add(4, 4)
        assert_eq!(run(&mut g), 3);
        assert_eq!(live(&g), vec![0, 1, 3, 4, 7, 8, 9]);
        assert_eq!(g.node(ValueId(7)).inputs, vec![ValueId(1)]);
        assert_eq!(g.node(ValueId(9)).inputs, vec![ValueId(4), ValueId(4)]);
    }
}

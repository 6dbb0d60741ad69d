//! Persistent masks for serving: splits the compiled graph of a model whose owner's inputs
//! persist into a *setup* graph, run once, and a *per-prediction* graph, run for every input.
//!
//! Every node gets a [`Phase`]:
//!
//! - the inputs of persistent parties, the seeds, and randomness drawn while lowering an op on
//!   setup values (the dealer's mask `b` of a weight) are pinned to setup by the lowering
//!   ([`crate::lower::Lowerer::serve`]);
//! - other inputs and other randomness (any kernel that samples or reads a seed, but a send)
//!   are per prediction: fresh on every run;
//! - constants are free: recomputed by whichever graph needs them;
//! - any other node is per prediction if one of its inputs is, else setup if one is, else free;
//!   a receive is in the phase of its send.
//!
//! A draw at setup from a seed that a party with fresh inputs holds (the prediction's client)
//! is refused: it would be a mask fixed across predictions, on values that change with each.
//!
//! The setup graph keeps the setup and free nodes and stores (`Store`) every setup value that
//! a per-prediction node reads; the per-prediction graph keeps the per-prediction and free
//! nodes and loads (`Load`) those values under the same id. Both then lose their dead code.

use std::collections::{BTreeSet, HashMap, HashSet};

use shareflow_ops::ValueKind;

use crate::ir::{Host, Kernel, LowGraph, LowNode, StoreKey, ValueId};
use crate::passes::dce::remove_dead;
use crate::CompileError;

/// When a node's value is computed in a serving session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// A constant: computed wherever it is needed.
    Free,
    /// Once, by the setup run; stored for the predictions.
    Setup,
    /// By every prediction.
    Predict,
}

/// Whether `node` draws randomness: samples a seed, or reads one (expansions, and the
/// protocol kernels that draw from a seed). A send of a seed only moves it.
pub fn draws_randomness(low: &LowGraph, node: &LowNode) -> bool {
    match node.kernel {
        Kernel::SampleSeed | Kernel::Expand { .. } => true,
        Kernel::Send { .. } | Kernel::Recv { .. } | Kernel::Store { .. } | Kernel::Load { .. } => {
            false
        }
        _ => node.inputs.iter().any(|v| {
            low.nodes
                .get(v.0 as usize)
                .is_some_and(|n| n.kind == ValueKind::Seed)
        }),
    }
}

/// The phase of node `id` of `low` from its inputs' phases (`phases`, indexed by id) and
/// whether the lowering pinned it to setup.
pub fn phase_of(low: &LowGraph, id: ValueId, pinned: bool, phases: &[Phase]) -> Phase {
    let node = low.node(id);
    let of = |v: &ValueId| phases.get(v.0 as usize).copied().unwrap_or(Phase::Predict);
    let derived = || {
        let mut phase = Phase::Free;
        for input in &node.inputs {
            match of(input) {
                Phase::Predict => return Phase::Predict,
                Phase::Setup => phase = Phase::Setup,
                Phase::Free => {}
            }
        }
        phase
    };
    let pin = if pinned { Phase::Setup } else { Phase::Predict };
    if draws_randomness(low, node) {
        return pin;
    }
    match &node.kernel {
        Kernel::Input { .. } => pin,
        // A run-time parameter is given to every run: what reads it is never set up once.
        Kernel::Output { .. } | Kernel::Load { .. } | Kernel::Parameter { .. } => Phase::Predict,
        Kernel::Store { .. } => Phase::Setup,
        Kernel::Recv { send, .. } => of(send),
        // A message travels in the run that needs it; a constant needs none.
        Kernel::Send { .. } => match derived() {
            Phase::Free => Phase::Predict,
            p => p,
        },
        // Constants (no inputs) are free.
        _ => derived(),
    }
}

/// The phase of every node (dead nodes included, for stable indices).
pub fn phases(low: &LowGraph, pinned: &HashSet<ValueId>) -> Vec<Phase> {
    let mut phases = Vec::with_capacity(low.nodes.len());
    for i in 0..low.nodes.len() {
        let id = ValueId(i as u32);
        let p = phase_of(low, id, pinned.contains(&id), &phases);
        phases.push(p);
    }
    phases
}

/// The two graphs of a serving session (ids shared: a `Load` has the id of the value it loads).
#[derive(Debug, Clone)]
pub struct Split {
    /// The setup run: computes and stores the persistent values (masked weights).
    pub setup: LowGraph,
    /// The graph of one prediction: loads the stored values.
    pub predict: LowGraph,
    /// The values setup stores and every prediction loads.
    pub stored: BTreeSet<ValueId>,
}

/// The hosts that hold each seed of `low`, by the seed's value on any of them: its sampler
/// and every party it is sent to.
fn seed_holders(low: &LowGraph) -> HashMap<ValueId, BTreeSet<Host>> {
    let mut root: HashMap<ValueId, ValueId> = HashMap::new();
    for (i, node) in low.nodes.iter().enumerate() {
        let id = ValueId(i as u32);
        let from = match node.kernel {
            Kernel::SampleSeed => Some(id),
            Kernel::Send { .. } if node.kind == ValueKind::Seed => {
                node.inputs.first().and_then(|v| root.get(v)).copied()
            }
            Kernel::Recv { send, .. } if node.kind == ValueKind::Seed => root.get(&send).copied(),
            _ => None,
        };
        if let Some(r) = from {
            root.insert(id, r);
        }
    }
    let mut holders: HashMap<ValueId, BTreeSet<Host>> = HashMap::new();
    for (&id, r) in &root {
        holders.entry(*r).or_default().insert(low.node(id).host);
    }
    root.into_iter()
        .map(|(id, r)| (id, holders.get(&r).cloned().unwrap_or_default()))
        .collect()
}

/// Refuses a live node of the setup phase that draws from a seed one of `fresh` holds.
fn check_setup_draws(low: &LowGraph, phases: &[Phase], fresh: &[Host]) -> Result<(), CompileError> {
    if fresh.is_empty() {
        return Ok(());
    }
    let holders = seed_holders(low);
    for id in low.live() {
        let node = low.node(id);
        if phases[id.0 as usize] != Phase::Setup
            || matches!(node.kernel, Kernel::SampleSeed)
            || !draws_randomness(low, node)
        {
            continue;
        }
        let held = node.inputs.iter().filter_map(|v| holders.get(v)).flatten();
        if let Some(h) = held.copied().find(|h| fresh.contains(h)) {
            return Err(CompileError::Node {
                node: node.origin.clone().unwrap_or_else(|| id.to_string()),
                message: format!(
                    "{id} ({}) would draw once at setup from a seed that host {h} holds, \
                     whose inputs change with every prediction: a mask fixed across predictions",
                    node.kernel.name()
                ),
            });
        }
    }
    Ok(())
}

/// Splits `low` (dead code removed) into its setup and per-prediction graphs; `fresh` are the
/// hosts whose inputs change with every prediction (see the module).
pub fn split(
    low: &LowGraph,
    pinned: &HashSet<ValueId>,
    fresh: &[Host],
) -> Result<Split, CompileError> {
    let phases = phases(low, pinned);
    check_setup_draws(low, &phases, fresh)?;
    let mut stored = BTreeSet::new();
    for id in low.live() {
        let node = low.node(id);
        let phase = phases[id.0 as usize];
        for input in &node.inputs {
            match (phase, phases[input.0 as usize]) {
                (Phase::Predict, Phase::Setup) => {
                    stored.insert(*input);
                }
                (Phase::Setup | Phase::Free, Phase::Predict) => {
                    return Err(CompileError::Node {
                        node: node.origin.clone().unwrap_or_else(|| id.to_string()),
                        message: format!(
                            "{id} ({}) is computed once at setup but depends on {input}, which \
                             changes with every prediction",
                            node.kernel.name()
                        ),
                    });
                }
                _ => {}
            }
        }
    }
    let mut setup = low.clone();
    let mut predict = low.clone();
    for (i, phase) in phases.iter().enumerate() {
        let id = ValueId(i as u32);
        match phase {
            Phase::Predict => setup.dead[i] = true,
            Phase::Setup if stored.contains(&id) => {
                let node = &mut predict.nodes[i];
                node.kernel = Kernel::Load {
                    key: StoreKey::Value(id),
                };
                node.inputs.clear();
            }
            Phase::Setup => predict.dead[i] = true,
            Phase::Free => {}
        }
    }
    for &key in &stored {
        let node = low.node(key);
        setup.push(LowNode {
            host: node.host,
            kernel: Kernel::Store {
                key: StoreKey::Value(key),
            },
            inputs: vec![key],
            kind: node.kind,
            shape: node.shape.clone(),
            origin: node.origin.clone(),
        });
    }
    remove_dead(&mut setup);
    remove_dead(&mut predict);
    Ok(Split {
        setup,
        predict,
        stored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Draw, Exchange};
    use shareflow_ops::ValueKind;

    fn node(host: usize, kernel: Kernel, inputs: &[u32]) -> LowNode {
        let kind = match kernel {
            Kernel::SampleSeed => ValueKind::Seed,
            _ => ValueKind::Ring,
        };
        LowNode {
            host,
            kernel,
            inputs: inputs.iter().map(|&i| ValueId(i)).collect(),
            kind,
            shape: vec![2],
            origin: None,
        }
    }

    fn expand(stream: u64) -> Kernel {
        Kernel::Expand {
            stream,
            draw: Draw::Ring,
            shape: vec![2],
        }
    }

    /// Host 0 holds a persistent `w` and a fresh `x`; both are masked with randomness from a
    /// persistent seed and sent to host 1, which multiplies them.
    fn graph() -> (LowGraph, HashSet<ValueId>) {
        let mut g = LowGraph::default();
        g.push(node(0, Kernel::Input { name: "w".into() }, &[])); // 0 pinned
        g.push(node(0, Kernel::Input { name: "x".into() }, &[])); // 1
        g.push(node(0, Kernel::SampleSeed, &[])); // 2 pinned
        g.push(node(0, expand(1), &[2])); // 3 pinned: w's mask
        g.push(node(0, expand(2), &[2])); // 4 fresh: x's mask
        g.push(node(0, Kernel::Sub, &[0, 3])); // 5 setup
        g.push(node(0, Kernel::Sub, &[1, 4])); // 6 predict
        g.push(node(
            0,
            Kernel::Send {
                to: 1,
                exchange: Exchange::MaskedOpening,
            },
            &[5],
        )); // 7
        g.push(node(
            1,
            Kernel::Recv {
                from: 0,
                send: ValueId(7),
            },
            &[],
        )); // 8 setup
        g.push(node(
            0,
            Kernel::Send {
                to: 1,
                exchange: Exchange::MaskedOpening,
            },
            &[6],
        )); // 9
        g.push(node(
            1,
            Kernel::Recv {
                from: 0,
                send: ValueId(9),
            },
            &[],
        )); // 10 predict
        g.push(node(1, Kernel::RingConst { values: vec![3, 3] }, &[])); // 11 free
        g.push(node(1, Kernel::Mul, &[8, 11])); // 12 setup
        g.push(node(1, Kernel::Mul, &[10, 12])); // 13 predict
        g.push(node(1, Kernel::Mul, &[10, 11])); // 14 predict
        g.push(node(1, Kernel::Add, &[13, 14])); // 15
        g.push(node(1, Kernel::Output { name: "y".into() }, &[15])); // 16
        let pinned = [0, 2, 3].into_iter().map(ValueId).collect();
        (g, pinned)
    }

    #[test]
    fn phases_follow_the_inputs() {
        let (g, pinned) = graph();
        use Phase::*;
        let expect = [
            Setup, Predict, Setup, Setup, Predict, Setup, Predict, Setup, Setup, Predict, Predict,
            Free, Setup, Predict, Predict, Predict, Predict,
        ];
        assert_eq!(phases(&g, &pinned), expect);
    }

    /// A seed that a fresh party (host 2, a prediction's client) sampled and sent to host 0.
    fn client_seed(g: &mut LowGraph) -> ValueId {
        let seed = g.push(node(2, Kernel::SampleSeed, &[]));
        let to = Kernel::Send {
            to: 0,
            exchange: Exchange::Seed,
        };
        let send = g.push(node(2, to, &[seed.0]));
        let recv = g.push(node(0, Kernel::Recv { from: 2, send }, &[]));
        for v in [send, recv] {
            g.nodes[v.0 as usize].kind = ValueKind::Seed;
        }
        recv
    }

    #[test]
    fn a_draw_at_setup_from_a_fresh_partys_seed_is_refused() {
        for pin_the_draw in [false, true] {
            let (mut g, mut pinned) = graph();
            let seed = client_seed(&mut g);
            pinned.extend([ValueId(seed.0 - 2), ValueId(seed.0 - 1), seed]);
            let draw = g.push(node(0, expand(9), &[seed.0]));
            g.push(node(0, Kernel::Output { name: "m".into() }, &[draw.0]));
            if pin_the_draw {
                pinned.insert(draw);
                let e = split(&g, &pinned, &[2]).unwrap_err().to_string();
                assert!(e.contains("fixed across predictions"), "{e}");
                // The same draw is allowed where no party with fresh inputs holds the seed.
                assert!(split(&g, &pinned, &[]).is_ok());
            } else {
                // Drawn by every prediction from the seed set up once: fine.
                let s = split(&g, &pinned, &[2]).unwrap();
                assert!(s.stored.contains(&seed));
            }
        }
    }

    #[test]
    fn a_run_time_parameter_is_read_by_every_prediction() {
        let (mut g, pinned) = graph();
        // A parameter times the setup value 12: a prediction's, as the parameter.
        let lr = g.push(node(1, Kernel::Parameter { name: "lr".into() }, &[]));
        let scaled = g.push(node(1, Kernel::Mul, &[12, lr.0]));
        let p = phases(&g, &pinned);
        assert_eq!(
            (p[lr.0 as usize], p[scaled.0 as usize]),
            (Phase::Predict, Phase::Predict)
        );
    }

    #[test]
    fn a_kernel_that_reads_a_seed_draws_fresh_randomness_unless_pinned() {
        let (mut g, mut pinned) = graph();
        // A protocol kernel drawing from the persistent seed 2 while it works on w (0).
        let fresh = g.push(node(0, Kernel::Add, &[0, 2]));
        let fixed = g.push(node(0, Kernel::Add, &[0, 2]));
        pinned.insert(fixed);
        let p = phases(&g, &pinned);
        assert_eq!(
            (p[fresh.0 as usize], p[fixed.0 as usize]),
            (Phase::Predict, Phase::Setup)
        );
        // Moving a seed is no draw: its send and receive are in the seed's phase.
        let send = g.push(node(
            0,
            Kernel::Send {
                to: 1,
                exchange: Exchange::Seed,
            },
            &[2],
        ));
        g.nodes[send.0 as usize].kind = ValueKind::Seed;
        let recv = g.push(node(1, Kernel::Recv { from: 0, send }, &[]));
        let p = phases(&g, &pinned);
        assert_eq!(
            (p[send.0 as usize], p[recv.0 as usize]),
            (Phase::Setup, Phase::Setup)
        );
    }

    #[test]
    fn setup_stores_what_predictions_load() {
        let (g, pinned) = graph();
        let s = split(&g, &pinned, &[]).unwrap();
        // The prediction reads the seed (for x's fresh mask) and w's opened product.
        assert_eq!(s.stored, [ValueId(2), ValueId(12)].into_iter().collect());
        let live = |g: &LowGraph| g.live().map(|v| v.0).collect::<Vec<_>>();
        // Setup: w, its mask, the opening, the product with the constant, and two stores.
        assert_eq!(live(&s.setup), vec![0, 2, 3, 5, 7, 8, 11, 12, 17, 18]);
        assert_eq!(
            s.setup.node(ValueId(17)).kernel,
            Kernel::Store {
                key: StoreKey::Value(ValueId(2))
            }
        );
        // Prediction: loads under the same ids, the constant again, x's fresh path.
        assert_eq!(
            live(&s.predict),
            vec![1, 2, 4, 6, 9, 10, 11, 12, 13, 14, 15, 16]
        );
        assert_eq!(
            s.predict.node(ValueId(12)).kernel,
            Kernel::Load {
                key: StoreKey::Value(ValueId(12))
            }
        );
        assert!(s.predict.node(ValueId(12)).inputs.is_empty());
    }

    #[test]
    fn a_setup_value_may_not_depend_on_a_fresh_one() {
        let (mut g, mut pinned) = graph();
        // An expansion pinned to setup from a fresh seed is a lowering bug.
        let seed = g.push(node(0, Kernel::SampleSeed, &[]));
        let bad = g.push(node(0, expand(9), &[seed.0]));
        let out = g.push(node(0, Kernel::Add, &[bad.0, 1]));
        g.push(node(0, Kernel::Output { name: "z".into() }, &[out.0]));
        pinned.insert(bad);
        let e = split(&g, &pinned, &[]).unwrap_err().to_string();
        assert!(e.contains("changes with every prediction"), "{e}");
    }
}

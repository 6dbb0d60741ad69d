//! Compiling for serving: the setup program masks and opens each weight once; every
//! prediction masks its fresh inputs with fresh randomness and reuses the rest.

use std::collections::{HashMap, HashSet};

use shareflow_compiler::ir::{Exchange, Kernel, ValueId};
use shareflow_compiler::lower::{HELPER, S0, S1};
use shareflow_compiler::{compile_serving, CompileOptions, CompiledGraph, Instr, ProtocolKind};
use shareflow_graphs::zoo::{ModelKind, ZooModel, CLIENT, MODEL_OWNER};

/// The serving graph of a case, which must compile.
fn serving(kind: ModelKind, protocol: ProtocolKind) -> shareflow_compiler::ServingGraph {
    let zoo = ZooModel::build(kind, 1).unwrap();
    compile_serving(&zoo.graph, protocol, CompileOptions::default())
        .unwrap_or_else(|e| panic!("network {kind} under {}: {e}", protocol.name()))
}

/// The networks each protocol compiles (Pond has no max pooling).
fn cases() -> Vec<(ModelKind, ProtocolKind)> {
    let mut out = vec![
        (ModelKind::A, ProtocolKind::Pond),
        (ModelKind::D, ProtocolKind::Pond),
    ];
    out.extend(ModelKind::ALL.iter().map(|&k| (k, ProtocolKind::SecureNN)));
    out
}

fn instrs(g: &CompiledGraph) -> HashMap<ValueId, (usize, &Instr)> {
    g.programs
        .iter()
        .flat_map(|p| p.instrs.iter().map(move |i| (i.id, (p.host, i))))
        .collect()
}

/// Whether `v` depends on a draw made in this run (an expansion or a protocol kernel reading a
/// seed; a loaded value is from setup).
fn fresh(
    g: &HashMap<ValueId, (usize, &Instr)>,
    v: ValueId,
    memo: &mut HashMap<ValueId, bool>,
) -> bool {
    if let Some(&f) = memo.get(&v) {
        return f;
    }
    let (_, i) = g[&v];
    let f = match i.kernel {
        Kernel::Expand { .. } | Kernel::SampleSeed => true,
        Kernel::Load { .. } => false,
        Kernel::Recv { send, .. } => fresh(g, send, memo),
        _ => i.inputs.iter().any(|&u| fresh(g, u, memo)),
    };
    memo.insert(v, f);
    f
}

#[test]
fn every_share_and_opening_of_a_prediction_depends_on_a_fresh_draw() {
    for (kind, protocol) in cases() {
        let s = serving(kind, protocol);
        let g = instrs(&s.predict);
        let mut memo = HashMap::new();
        let mut openings = 0;
        for (_, i) in g.values() {
            if let Kernel::Send { exchange, .. } = i.kernel {
                if matches!(exchange, Exchange::MaskedOpening | Exchange::Share) {
                    openings += 1;
                    let what = format!(
                        "network {kind} under {}: {} ({exchange:?})",
                        protocol.name(),
                        i.id
                    );
                    assert!(
                        fresh(&g, i.inputs[0], &mut memo),
                        "{what} reuses a mask across predictions"
                    );
                }
            }
        }
        assert!(openings > 0);
    }
}

#[test]
fn setup_masks_each_weight_once_and_the_owner_is_offline_after() {
    for (kind, protocol) in cases() {
        let s = serving(kind, protocol);
        let what = format!("network {kind} under {}", protocol.name());
        let zoo = ZooModel::build(kind, 1).unwrap();
        let mut kernels: Vec<Vec<usize>> = zoo
            .params
            .iter()
            .filter(|p| p.name.ends_with("/kernel"))
            .map(|p| p.shape.clone())
            .collect();
        // The model owner sends w - b to each server: server 0's copy of each.
        let owner = s.setup.host(MODEL_OWNER).unwrap();
        let mut opened: Vec<Vec<usize>> = s.setup.programs[owner]
            .instrs
            .iter()
            .filter(|i| {
                matches!(
                    i.kernel,
                    Kernel::Send {
                        to: S0,
                        exchange: Exchange::MaskedOpening,
                    }
                )
            })
            .map(|i| i.shape.clone())
            .collect();
        let servers_open = s.setup.programs[S0].instrs.iter().any(|i| {
            matches!(
                i.kernel,
                Kernel::Send {
                    exchange: Exchange::MaskedOpening,
                    ..
                }
            )
        });
        assert!(!servers_open, "{what}: the servers open nothing at setup");
        kernels.sort();
        opened.sort();
        assert_eq!(
            opened, kernels,
            "{what}: setup sends w - b once per weight, nothing else"
        );
        assert!(
            s.predict.program(MODEL_OWNER).unwrap().instrs.is_empty(),
            "{what}"
        );
        // The client only samples its seeds at setup, sends and keeps them; every prediction
        // draws its masks from them afresh (the run's own domain) and samples none.
        let client_setup = &s.setup.program(CLIENT).unwrap().instrs;
        assert!(!client_setup.is_empty(), "{what}");
        assert!(
            client_setup.iter().all(|i| matches!(
                i.kernel,
                Kernel::SampleSeed
                    | Kernel::Store { .. }
                    | Kernel::Send {
                        exchange: Exchange::Seed,
                        ..
                    }
            )),
            "{what}: the client's setup {:?}",
            client_setup.iter().map(|i| &i.kernel).collect::<Vec<_>>()
        );
        let client_predict = &s.predict.program(CLIENT).unwrap().instrs;
        assert!(
            !client_predict
                .iter()
                .any(|i| matches!(i.kernel, Kernel::SampleSeed)),
            "{what}: a prediction samples no seed"
        );
        assert_eq!(s.setup.inputs.len(), zoo.params.len(), "{what}");
        assert_eq!(s.predict.inputs.len(), 1, "{what}: the image");
    }
}

#[test]
fn the_dealer_only_deals_for_fresh_inputs() {
    for (kind, protocol) in cases() {
        let s = serving(kind, protocol);
        let what = format!("network {kind} under {}", protocol.name());
        let zoo = ZooModel::build(kind, 1).unwrap();
        let weights: HashSet<Vec<usize>> = zoo
            .params
            .iter()
            .filter(|p| p.name.ends_with("/kernel"))
            .map(|p| p.shape.clone())
            .collect();
        // The helper keeps each weight's mask b from setup; in a prediction it sends nothing of
        // a weight's size (only c = k(a, b) for the fresh a, and truncation pairs).
        let loads: Vec<&Instr> = s.predict.programs[HELPER]
            .instrs
            .iter()
            .filter(|i| matches!(i.kernel, Kernel::Load { .. }))
            .collect();
        for shape in &weights {
            assert!(
                loads.iter().any(|i| &i.shape == shape),
                "{what}: the helper loads b of shape {shape:?}"
            );
        }
        for host in [HELPER, S0, S1] {
            for i in &s.predict.programs[host].instrs {
                if let Kernel::Send { .. } = i.kernel {
                    assert!(
                        !weights.contains(&i.shape),
                        "{what}: {} sends {:?}",
                        i.id,
                        i.shape
                    );
                }
            }
        }
    }
}

#[test]
fn a_revealed_cross_entropy_loss_compiles_under_securenn_only() {
    let spec = shareflow_graphs::zoo_train::TrainSpec {
        seed: 1,
        momentum: 0.9,
        reveal_loss: true,
    };
    let model = ZooModel::build_training(ModelKind::A, 2, &spec).unwrap();
    // Pond has no softmax on shares at all; SecureNN computes the loss on shares (its
    // logarithm a polynomial) and reveals it to the client only.
    let err =
        shareflow_compiler::compile(&model.graph, ProtocolKind::Pond, CompileOptions::default())
            .err()
            .unwrap();
    assert!(err.to_string().contains("softmax"), "{err}");
    shareflow_compiler::compile(
        &model.graph,
        ProtocolKind::SecureNN,
        CompileOptions::default(),
    )
    .unwrap();
}

#[test]
fn a_revealed_sigmoid_cross_entropy_loss_is_refused_with_a_reason() {
    let spec = shareflow_graphs::zoo_train::TrainSpec {
        seed: 1,
        momentum: 0.9,
        reveal_loss: true,
    };
    let model = ZooModel::build_training(ModelKind::P, 2, &spec).unwrap();
    // Pond computes the gradient's sigmoid on shares, not the loss's logarithm.
    let err =
        shareflow_compiler::compile(&model.graph, ProtocolKind::Pond, CompileOptions::default())
            .err()
            .unwrap();
    assert!(
        err.to_string()
            .contains("sigmoid cross-entropy loss needs a logarithm"),
        "{err}"
    );
    // Without the revealed loss the same step compiles.
    let spec = shareflow_graphs::zoo_train::TrainSpec {
        reveal_loss: false,
        ..spec
    };
    let model = ZooModel::build_training(ModelKind::P, 2, &spec).unwrap();
    shareflow_compiler::compile(&model.graph, ProtocolKind::Pond, CompileOptions::default())
        .unwrap();
}

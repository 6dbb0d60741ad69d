//! What crosses the wire in a training session: servers receive only seeds, shares and masked
//! openings in every program; nothing is revealed during init and steps; a prediction from the
//! still-shared model reveals only the logits, to the client; the model owner receives the
//! weights only in the reveal program.

use shareflow_compiler::ir::{Exchange, Kernel};
use shareflow_compiler::{
    compile, compile_init, verify, CompileOptions, CompiledGraph, ProtocolKind,
};
use shareflow_graphs::zoo::{ModelKind, ZooModel, CLIENT, LOGITS, MODEL_OWNER};
use shareflow_graphs::zoo_train::{reveal_graph, TrainSpec};

const COMPUTE: [&str; 3] = ["server0", "server1", "helper"];

/// `(sender, receiver, exchange)` of every send.
fn sends(g: &CompiledGraph) -> Vec<(String, String, Exchange)> {
    let mut out = Vec::new();
    for p in &g.programs {
        for i in &p.instrs {
            if let Kernel::Send { to, exchange } = i.kernel {
                out.push((p.party.clone(), g.parties[to].clone(), exchange));
            }
        }
    }
    out
}

fn programs(kind: ModelKind, protocol: ProtocolKind) -> [(&'static str, CompiledGraph); 4] {
    let spec = TrainSpec {
        seed: 1,
        momentum: 0.9,
        reveal_loss: false,
    };
    let training = ZooModel::build_training(kind, 2, &spec).unwrap().graph;
    let predict = ZooModel::build_from_variables(kind, 2).unwrap().graph;
    let o = CompileOptions::default();
    [
        ("init", compile_init(&training, protocol, o).unwrap()),
        ("step", compile(&training, protocol, o).unwrap()),
        ("predict", compile(&predict, protocol, o).unwrap()),
        (
            "reveal",
            compile(&reveal_graph(kind).unwrap(), protocol, o).unwrap(),
        ),
    ]
}

#[test]
fn servers_receive_only_seeds_shares_and_masked_openings() {
    for (name, g) in programs(ModelKind::C, ProtocolKind::SecureNN) {
        verify(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (from, to, exchange) in sends(&g) {
            if COMPUTE.contains(&to.as_str()) {
                assert!(
                    matches!(
                        exchange,
                        Exchange::Seed | Exchange::Share | Exchange::MaskedOpening
                    ),
                    "{name}: {from} sends {to} a {exchange:?}"
                );
            }
        }
    }
}

#[test]
fn only_the_reveal_program_opens_the_weights_and_only_to_the_model_owner() {
    for (name, g) in programs(ModelKind::A, ProtocolKind::SecureNN) {
        let reveals: Vec<_> = sends(&g)
            .into_iter()
            .filter(|(.., e)| *e == Exchange::Reveal)
            .collect();
        match name {
            "init" | "step" => {
                assert!(reveals.is_empty(), "{name} reveals {reveals:?}");
                assert!(g.outputs.is_empty(), "{name}: {:?}", g.outputs);
            }
            "predict" => {
                assert!(reveals.iter().all(|(_, to, _)| to == CLIENT), "{reveals:?}");
                let outputs: Vec<_> = g.outputs.iter().map(|o| (&*o.party, &*o.name)).collect();
                assert_eq!(outputs, [(CLIENT, LOGITS)]);
            }
            _ => {
                assert!(!reveals.is_empty());
                assert!(
                    reveals.iter().all(|(_, to, _)| to == MODEL_OWNER),
                    "{reveals:?}"
                );
                assert!(g.outputs.iter().all(|o| o.party == MODEL_OWNER));
                assert_eq!(g.outputs.len(), ModelKind::A.layers().params().len());
            }
        }
        // The model owner takes part in nothing but the reveal.
        let owner = g.programs.iter().find(|p| p.party == MODEL_OWNER).unwrap();
        if name != "reveal" {
            assert!(
                owner.instrs.is_empty(),
                "{name}: the model owner runs {:?}",
                owner.instrs
            );
        }
    }
}

//! The logical graph JSON (`Graph::from_json`): what loads writes back to the same text, draws,
//! and compiles for Pond and SecureNN (or refuses with a compile error), and what compiles
//! passes the compiled graph's validation.

use proptest::prelude::*;
use serde_json::Value;
use shareflow_compiler::{compile, CompileOptions, ProtocolKind};
use shareflow_graphs::zoo::{ModelKind, ZooModel};
use shareflow_graphs::{Graph, GraphBuilder};

use crate::mutate::{byte_edits, config, json_edits, mutated_bytes, mutated_json};

/// A small graph with a constant, private inputs of two parties, every kind of op the
/// protocols lower on the way, and an output.
fn small() -> Graph {
    let g = GraphBuilder::new();
    let a = g.party("alice");
    let b = g.party("bob");
    let x = g.input(a, "x", [2, 3]);
    let w = g.input(b, "w", [3, 2]);
    let c = g.constant([2], vec![0.5, -1.0]);
    let y = x.matmul(&w).add(&c).relu();
    y.output_to(a, "y");
    g.build().unwrap()
}

fn bases() -> Vec<Value> {
    let mut out = vec![serde_json::from_str(&small().to_json().unwrap()).unwrap()];
    for kind in ModelKind::ALL {
        let g = ZooModel::build(kind, 1).unwrap().graph;
        out.push(serde_json::from_str(&g.to_json().unwrap()).unwrap());
    }
    out
}

fn check(text: &str, compile_it: bool) -> Result<(), TestCaseError> {
    let Ok(graph) = Graph::from_json(text) else {
        return Ok(());
    };
    let again = graph.to_json().unwrap();
    prop_assert_eq!(Graph::from_json(&again).unwrap().to_json().unwrap(), again);
    let _ = graph.to_dot();
    if compile_it {
        for protocol in [ProtocolKind::Pond, ProtocolKind::SecureNN] {
            if let Ok(c) = compile(&graph, protocol, CompileOptions::default()) {
                prop_assert!(c.validate().is_ok(), "{:?}", c.validate());
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn mutated_small_graphs(edits in json_edits(3)) {
        let base = &bases()[0];
        check(&mutated_json(base, &edits), true)?;
    }

    #[test]
    fn mutated_zoo_graphs(which in 1usize..5, edits in json_edits(3)) {
        check(&mutated_json(&bases()[which], &edits), true)?;
    }

    #[test]
    fn mutated_text(which in 0usize..5, edits in byte_edits(3)) {
        let text = bases()[which].to_string();
        check(&String::from_utf8_lossy(&mutated_bytes(text.as_bytes(), &edits)), false)?;
    }

    #[test]
    fn raw_text(text in ".{0,160}") {
        check(&text, false)?;
    }
}

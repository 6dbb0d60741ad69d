//! Compiled and serving graphs (`CompiledGraph::from_json`, `ServingGraph::from_json`): what
//! loads has been validated, so every party's executor plan builds, the cost report and the
//! digest are computed, and it writes back to a graph that loads the same.

use proptest::prelude::*;
use serde_json::Value;
use shareflow_compiler::{
    compile, compile_serving, CompileOptions, CompiledGraph, ProtocolKind, ServingGraph,
};
use shareflow_graphs::zoo::{ModelKind, ZooModel};
use shareflow_graphs::GraphBuilder;
use shareflow_runtime::exec::Plan;
use shareflow_runtime::party::graph_digest;

use crate::mutate::{byte_edits, config, json_edits, mutated_bytes, mutated_json};

fn small(protocol: ProtocolKind) -> CompiledGraph {
    let g = GraphBuilder::new();
    let a = g.party("alice");
    let b = g.party("bob");
    let x = g.input(a, "x", [2, 2]);
    let w = g.input(b, "w", [2, 2]);
    x.mul(&w).relu().output_to(a, "y");
    compile(&g.build().unwrap(), protocol, CompileOptions::default()).unwrap()
}

fn network_a(protocol: ProtocolKind) -> CompiledGraph {
    let model = ZooModel::build(ModelKind::A, 1).unwrap();
    compile(&model.graph, protocol, CompileOptions::default()).unwrap()
}

fn value(g: &CompiledGraph) -> Value {
    serde_json::from_str(&g.to_json().unwrap()).unwrap()
}

/// What the tools do after loading: plan every party, cost, digest, write back.
fn check(text: &str) -> Result<(), TestCaseError> {
    let Ok(g) = CompiledGraph::from_json(text) else {
        return Ok(());
    };
    for p in &g.programs {
        let plan = Plan::new(p);
        prop_assert!(plan.is_ok(), "party {}: {:?}", p.party, plan.err());
    }
    let _ = g.cost();
    let _ = graph_digest(&g).unwrap();
    prop_assert_eq!(CompiledGraph::from_json(&g.to_json().unwrap()).unwrap(), g);
    Ok(())
}

fn check_serving(text: &str) -> Result<(), TestCaseError> {
    let Ok(s) = ServingGraph::from_json(text) else {
        return Ok(());
    };
    for g in [&s.setup, &s.predict] {
        for p in &g.programs {
            prop_assert!(Plan::new(p).is_ok());
        }
    }
    Ok(())
}

/// A number that the JSON parser used to read one unit in the last place off (`1e-45` read
/// as `1.0000000000000001e-45`), here in the source graph that a compiled graph carries: it
/// writes back to a graph that loads the same (found by `mutated_small_graphs`).
#[test]
fn a_float_in_the_source_graph_round_trips() {
    for protocol in [ProtocolKind::SecureNN, ProtocolKind::Pond] {
        let mut v = value(&small(protocol));
        v["source"]["graph"]["nodes"][0]["id"] = serde_json::json!(1e-45);
        let text = v.to_string();
        assert!(CompiledGraph::from_json(&text).is_ok(), "{protocol:?}");
        check(&text).unwrap();
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn mutated_small_graphs(securenn: bool, edits in json_edits(3)) {
        let protocol = if securenn { ProtocolKind::SecureNN } else { ProtocolKind::Pond };
        check(&mutated_json(&value(&small(protocol)), &edits))?;
    }

    #[test]
    fn mutated_small_text(edits in byte_edits(3)) {
        let text = small(ProtocolKind::SecureNN).to_json().unwrap();
        check(&String::from_utf8_lossy(&mutated_bytes(text.as_bytes(), &edits)))?;
    }

    #[test]
    fn raw_text(text in ".{0,160}") {
        check(&text)?;
        check_serving(&text)?;
    }
}

proptest! {
    // network A is 66 kB of JSON: fewer cases
    #![proptest_config(config(300))]

    #[test]
    fn mutated_network_a(securenn: bool, edits in json_edits(3)) {
        let protocol = if securenn { ProtocolKind::SecureNN } else { ProtocolKind::Pond };
        check(&mutated_json(&value(&network_a(protocol)), &edits))?;
    }

    #[test]
    fn mutated_serving_graphs(edits in json_edits(3)) {
        let g = GraphBuilder::new();
        let a = g.party("client");
        let b = g.party("owner");
        let x = g.input(a, "x", [1, 2]);
        let w = g.input(b, "w", [2, 2]);
        x.matmul(&w).relu().output_to(a, "y");
        let s = compile_serving(&g.build().unwrap(), ProtocolKind::SecureNN, CompileOptions::default()).unwrap();
        check_serving(&mutated_json(&serde_json::to_value(&s).unwrap(), &edits))?;
    }
}

//! Load-time validation of compiled graphs: everything the compiler emits passes; graphs that
//! deserialise but are inconsistent are refused with an error naming the instruction.

use serde_json::{json, Value};
use shareflow_compiler::{
    compile, compile_serving, CompileError, CompileOptions, CompiledGraph, ProtocolKind,
    ServingGraph,
};
use shareflow_graphs::zoo::{ModelKind, ZooModel};

const PROTOCOLS: [ProtocolKind; 2] = [ProtocolKind::Pond, ProtocolKind::SecureNN];

#[test]
fn every_compiled_zoo_network_validates() {
    for kind in ModelKind::ALL {
        let model = ZooModel::build(kind, 2).unwrap();
        for protocol in PROTOCOLS {
            // Pond has no exact max pooling (networks B and C).
            let Ok(g) = compile(&model.graph, protocol, CompileOptions::default()) else {
                continue;
            };
            g.validate().unwrap();
            let back = CompiledGraph::from_json(&g.to_json().unwrap()).unwrap();
            assert_eq!(back, g, "{kind:?} {protocol:?}");
            let s = compile_serving(&model.graph, protocol, CompileOptions::default()).unwrap();
            let text = serde_json::to_string(&s).unwrap();
            assert_eq!(ServingGraph::from_json(&text).unwrap(), s);
        }
    }
}

fn network_a() -> Value {
    let model = ZooModel::build(ModelKind::A, 1).unwrap();
    let g = compile(
        &model.graph,
        ProtocolKind::SecureNN,
        CompileOptions::default(),
    )
    .unwrap();
    serde_json::from_str(&g.to_json().unwrap()).unwrap()
}

fn load(v: &Value) -> CompileError {
    CompiledGraph::from_json(&v.to_string()).unwrap_err()
}

/// The program and index of the first instruction with this kernel.
fn find(v: &Value, kernel: &str) -> (usize, usize) {
    let programs = v["programs"].as_array().unwrap();
    programs
        .iter()
        .enumerate()
        .find_map(|(p, program)| {
            let instrs = program["instrs"].as_array().unwrap();
            let i = instrs
                .iter()
                .position(|i| i["kernel"]["kernel"] == kernel)?;
            Some((p, i))
        })
        .unwrap()
}

#[test]
fn a_round_far_beyond_the_messages_is_refused() {
    // Planning allocated one entry per round up to the largest round of any instruction.
    let mut v = network_a();
    v["rounds"] = json!(u32::MAX);
    let err = load(&v).to_string();
    assert!(err.contains("rounds"), "{err}");
    let mut v = network_a();
    let (p, i) = find(&v, "add");
    v["programs"][p]["instrs"][i]["round"] = json!(u32::MAX);
    let err = load(&v).to_string();
    assert!(err.contains("round 4294967295"), "{err}");
}

#[test]
fn a_kernel_with_too_few_inputs_is_refused() {
    let mut v = network_a();
    let (p, i) = find(&v, "add");
    let instr = &mut v["programs"][p]["instrs"][i];
    instr["inputs"].as_array_mut().unwrap().pop();
    let err = load(&v);
    assert!(matches!(err, CompileError::Node { .. }), "{err}");
    assert!(err.to_string().contains("takes 2 inputs, got 1"), "{err}");
}

#[test]
fn a_receive_of_another_shape_than_its_send_is_refused() {
    let mut v = network_a();
    let (p, i) = find(&v, "recv");
    v["programs"][p]["instrs"][i]["shape"] = json!([7, 7]);
    let err = load(&v).to_string();
    assert!(
        err.contains("(recv) of party") && err.contains("[7, 7]"),
        "{err}"
    );
}

#[test]
fn a_value_used_before_its_message_arrives_is_refused() {
    // A local instruction in the round in which its input still travels.
    let mut v = network_a();
    let instrs = v["programs"][0]["instrs"].as_array().unwrap().clone();
    let (r, recv) = instrs
        .iter()
        .enumerate()
        .find(|(_, i)| i["kernel"]["kernel"] == "recv")
        .unwrap();
    let id = recv["id"].clone();
    let round = recv["round"].clone();
    let user = instrs
        .iter()
        .enumerate()
        .skip(r)
        .find(|(_, i)| i["inputs"].as_array().is_some_and(|a| a.contains(&id)))
        .map(|(k, _)| k)
        .unwrap();
    v["programs"][0]["instrs"][user]["round"] = round;
    let err = load(&v).to_string();
    assert!(err.contains("is ready in round"), "{err}");
}

#[test]
fn overflowing_shapes_are_refused() {
    let mut v = network_a();
    let (p, i) = find(&v, "input");
    v["programs"][p]["instrs"][i]["shape"] = json!([u64::MAX, 2]);
    // refused by the size limit of one tensor (`limits`) before its product overflows
    let err = load(&v).to_string();
    assert!(
        err.contains("overflows") || err.contains("larger than the limit"),
        "{err}"
    );
    let mut v = network_a();
    v["inputs"][0]["shape"] = json!([u64::MAX, u64::MAX]);
    assert!(load(&v).to_string().contains("overflows"));
}

#[test]
fn duplicate_ids_and_parties_are_refused() {
    let mut v = network_a();
    let first = v["programs"][0]["instrs"][0]["id"].clone();
    v["programs"][0]["instrs"][1]["id"] = first;
    let err = load(&v).to_string();
    assert!(
        err.contains("used twice") || err.contains("before"),
        "{err}"
    );
    let mut v = network_a();
    let p0 = v["parties"][0].clone();
    v["parties"][1] = p0;
    assert!(load(&v).to_string().contains("listed twice"));
}

#[test]
fn a_serving_graph_that_loads_what_setup_never_stored_is_refused() {
    let model = ZooModel::build(ModelKind::A, 1).unwrap();
    let s = compile_serving(
        &model.graph,
        ProtocolKind::SecureNN,
        CompileOptions::default(),
    )
    .unwrap();
    let mut v: Value = serde_json::to_value(&s).unwrap();
    for program in v["setup"]["programs"].as_array_mut().unwrap() {
        for instr in program["instrs"].as_array_mut().unwrap() {
            if instr["kernel"]["kernel"] == "store" {
                instr["kernel"]["key"] = json!({ "value": u32::MAX });
            }
        }
    }
    let err = ServingGraph::from_json(&v.to_string())
        .unwrap_err()
        .to_string();
    assert!(err.contains("which setup does not store"), "{err}");
}

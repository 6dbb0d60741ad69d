//! Training steps under SecureNN and Pond equal the plaintext session's on a small CNN that
//! uses every backward op of a network: the input and filter gradients of conv2d, ReLU and max
//! pooling (SecureNN) or sigmoid and average pooling (Pond), reshape, matmul, bias add, mean
//! squared error (its value revealed to the client), SGD with momentum and a run-time learning
//! rate.

use std::collections::HashMap;
use std::time::Duration;

use ndarray::{ArrayD, IxDyn};
use shareflow_compiler::{compile, compile_init, CompileOptions, ProtocolKind};
use shareflow_graphs::optim::momentum;
use shareflow_graphs::prelude::*;
use shareflow_graphs::{Graph, Init};
use shareflow_runtime::exec::serving::Inputs;
use shareflow_runtime::exec::{Session, SessionProgram};
use shareflow_runtime::plain;

const VARS: [(&str, &[usize]); 4] = [
    ("k1", &[3, 3, 1, 2]),
    ("k2", &[3, 3, 2, 2]),
    ("w", &[18, 3]),
    ("b", &[3]),
];

fn init(name: &str, seed: u64) -> Init {
    match name {
        "b" => Init::Zeros,
        _ => Init::Normal {
            std: 0.5,
            seed,
            offset: 0,
        },
    }
}

/// The training graph; `exact` picks ReLU and max pooling, else sigmoid and average pooling.
fn training_graph(exact: bool) -> Graph {
    let g = GraphBuilder::new();
    g.party("owner");
    let client = g.party("client");
    let x = g.input(client, "x", [2, 6, 6, 1]);
    let y = g.input(client, "y", [2, 3]);
    let vars: Vec<Tensor> = VARS
        .iter()
        .enumerate()
        .map(|(i, (name, shape))| g.variable(name, shape.to_vec(), init(name, i as u64 + 7)))
        .collect();
    let act = |t: Tensor| if exact { t.relu() } else { t.sigmoid() };
    let h = act(x.conv2d(&vars[0], [1, 1], Padding::Same));
    let h = act(h.conv2d(&vars[1], [1, 1], Padding::Same));
    let h = if exact {
        h.maxpool2d([2, 2], [2, 2], Padding::Valid)
    } else {
        h.avgpool2d([2, 2], [2, 2], Padding::Valid)
    };
    let z = h.reshape([2, 18]).matmul(&vars[2]).add(&vars[3]);
    let loss = z.mean_squared_error(&y);
    loss.output_to(client, "loss");
    let grads = g.gradients(&loss, &vars).unwrap();
    let lr = g.parameter("lr", []);
    momentum(&g, &vars, &grads, &lr, 0.9).unwrap();
    g.build().unwrap()
}

/// Reveals every variable to the owner.
fn reveal_graph() -> Graph {
    let g = GraphBuilder::new();
    let owner = g.party("owner");
    g.party("client");
    for (name, shape) in VARS {
        g.variable(name, shape.to_vec(), Init::Zeros)
            .output_to(owner, name);
    }
    g.build().unwrap()
}

fn batch(step: usize) -> (ArrayD<f32>, ArrayD<f32>) {
    let x = ArrayD::from_shape_fn(IxDyn(&[2, 6, 6, 1]), |i| {
        (((i[0] * 7 + i[1] * 5 + i[2] * 3 + step) % 11) as f32 - 5.0) / 4.0
    });
    let y = ArrayD::from_shape_fn(IxDyn(&[2, 3]), |i| ((i[0] + i[1] + step) % 3) as f32 - 1.0);
    (x, y)
}

/// Three steps in plaintext and under `protocol`; the largest difference of the variables.
fn compare(protocol: ProtocolKind, exact: bool) -> f32 {
    let graph = training_graph(exact);
    let mut reference = plain::Session::new(graph.clone(), &HashMap::new()).unwrap();
    let options = CompileOptions::default();
    let init = SessionProgram::new(compile_init(&graph, protocol, options).unwrap()).unwrap();
    let step = SessionProgram::new(compile(&graph, protocol, options).unwrap()).unwrap();
    let reveal = SessionProgram::new(compile(&reveal_graph(), protocol, options).unwrap()).unwrap();
    let mut session = Session::new(step.graph.parties.clone(), Duration::from_secs(60));
    session.run(&init, &Inputs::new()).unwrap();
    for (s, rate) in [0.1f32, 0.05, 0.02].into_iter().enumerate() {
        let (x, y) = batch(s);
        let lr = ArrayD::from_elem(IxDyn(&[]), rate);
        let mut plain_inputs =
            HashMap::from([("x".to_string(), x.clone()), ("y".to_string(), y.clone())]);
        plain_inputs.insert("lr".into(), lr.clone());
        let eval = reference.run(&plain_inputs).unwrap();
        let want = eval.outputs(reference.graph())[0].2.clone();
        let mut inputs = Inputs::new();
        inputs.insert(
            "client".into(),
            HashMap::from([("x".to_string(), x), ("y".to_string(), y)]),
        );
        // The servers, and the helper, which deals the rate's products with the gradients.
        let takers = step.graph.parameter_parties("lr");
        assert_eq!(takers, ["server0", "server1", "helper"]);
        for party in takers {
            inputs.insert(
                party.into(),
                HashMap::from([("lr".to_string(), lr.clone())]),
            );
        }
        let run = session.run(&step, &inputs).unwrap();
        let loss = run.float("client", "loss").unwrap();
        let (a, b) = (loss.sum(), want.sum());
        assert!((a - b).abs() < 1e-2 * b.abs().max(1.0), "loss {a} vs {b}");
    }
    let run = session.run(&reveal, &Inputs::new()).unwrap();
    let mut worst = 0f32;
    for (name, _) in VARS {
        let got = run.float("owner", name).unwrap();
        let want = reference.variable(name).unwrap();
        assert_eq!(got.shape(), want.shape(), "{name}");
        for (a, b) in got.iter().zip(want.iter()) {
            worst = worst.max((a - b).abs());
        }
    }
    worst
}

#[test]
fn securenn_steps_equal_the_plaintext_steps() {
    let worst = compare(ProtocolKind::SecureNN, true);
    eprintln!("securenn: largest variable difference after 3 steps {worst:e}");
    assert!(worst < 2e-3, "{worst}");
}

#[test]
fn pond_steps_equal_the_plaintext_steps() {
    let worst = compare(ProtocolKind::Pond, false);
    eprintln!("pond: largest variable difference after 3 steps {worst:e}");
    assert!(worst < 5e-3, "{worst}");
}

#[test]
fn a_failed_step_leaves_the_variables_as_they_were() {
    let graph = training_graph(true);
    let protocol = ProtocolKind::SecureNN;
    let options = CompileOptions::default();
    let init = SessionProgram::new(compile_init(&graph, protocol, options).unwrap()).unwrap();
    let step = SessionProgram::new(compile(&graph, protocol, options).unwrap()).unwrap();
    let reveal = SessionProgram::new(compile(&reveal_graph(), protocol, options).unwrap()).unwrap();
    let mut session = Session::new(step.graph.parties.clone(), Duration::from_secs(60));
    session.run(&init, &Inputs::new()).unwrap();
    let before = session.run(&reveal, &Inputs::new()).unwrap();
    // The client gives no labels: the step fails at the client, after the servers may have
    // computed part of it.
    let (x, _) = batch(0);
    let mut inputs = Inputs::new();
    inputs.insert("client".into(), HashMap::from([("x".to_string(), x)]));
    for party in step.graph.parameter_parties("lr") {
        let lr = ArrayD::from_elem(IxDyn(&[]), 0.1f32);
        inputs.insert(party.into(), HashMap::from([("lr".to_string(), lr)]));
    }
    let failed = session.run(&step, &inputs).unwrap_err().to_string();
    assert!(failed.contains("\"y\""), "{failed}");
    let after = session.run(&reveal, &Inputs::new()).unwrap();
    for (name, _) in VARS {
        let (a, b) = (
            before.float("owner", name).unwrap(),
            after.float("owner", name).unwrap(),
        );
        assert_eq!(a, b, "{name} changed");
    }
    let plain = plain::Session::new(graph, &HashMap::new()).unwrap();
    let w = before.float("owner", "w").unwrap();
    for (a, b) in w.iter().zip(plain.variable("w").unwrap().iter()) {
        assert!((a - b).abs() < 1e-4, "initial w {a} vs {b}");
    }
}

/// SGD with momentum's `mu v` is added to the gradient before the gradient's truncation (one
/// truncation per parameter instead of two): the velocities' products send nothing, under both
/// protocols, and the steps above still equal the plaintext ones.
#[test]
fn momentum_is_added_before_the_gradients_truncation() {
    for (protocol, exact) in [(ProtocolKind::SecureNN, true), (ProtocolKind::Pond, false)] {
        let graph = training_graph(exact);
        let velocity_products: Vec<String> = graph
            .nodes()
            .filter(|(id, n)| {
                matches!(n.op, shareflow_graphs::Op::Mul)
                    && graph.inputs(*id).iter().any(|&i| {
                        graph.node(i).is_ok_and(|v| {
                            matches!(&v.op, shareflow_graphs::Op::Variable { name, .. }
                                if name.ends_with("/velocity") && name != "b/velocity")
                        })
                    })
            })
            .map(|(id, _)| graph.label(id))
            .collect();
        // The bias's gradient is a sum, not a product: its `mu v` keeps its truncation.
        assert_eq!(velocity_products.len(), 3);
        let step = compile(&graph, protocol, CompileOptions::default()).unwrap();
        let cost = shareflow_compiler::cost::CostReport::of(&step);
        for label in &velocity_products {
            let layer = cost.layers.iter().find(|l| &l.layer == label);
            let sent = layer.map_or(0, |l| l.bytes);
            assert_eq!(sent, 0, "{protocol:?}: {label} sends {sent} bytes");
        }
    }
}

#[test]
fn a_relu_gradient_of_a_truncations_output_opens_nothing() {
    let graph = training_graph(true);
    // The ReLU gradients whose dy is a convolution's input gradient (truncated); the other's
    // dy comes from the max pool's gradient.
    let of_truncation: Vec<String> = graph
        .nodes()
        .filter(|(id, n)| {
            matches!(n.op, shareflow_graphs::Op::ReluGrad)
                && graph.inputs(*id).get(1).is_some_and(|&dy| {
                    graph.node(dy).is_ok_and(|d| {
                        matches!(d.op, shareflow_graphs::Op::Conv2dBackpropInput { .. })
                    })
                })
        })
        .map(|(id, _)| graph.label(id))
        .collect();
    assert_eq!(of_truncation.len(), 1);
    let step = compile(&graph, ProtocolKind::SecureNN, CompileOptions::default()).unwrap();
    let cost = shareflow_compiler::cost::CostReport::of(&step);
    let layer = cost
        .layers
        .iter()
        .find(|l| l.layer == of_truncation[0])
        .unwrap();
    // DReLU(x) dy is local to the servers with the helper's dealt terms: no opening, one
    // message from the helper (securenn_steps_equal_the_plaintext_steps checks the values).
    for link in &layer.links {
        assert_eq!(link.from, "helper", "{}: {link:?}", layer.layer);
    }
    assert_eq!(layer.rounds, 1);
}

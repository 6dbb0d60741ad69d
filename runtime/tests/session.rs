//! The plaintext session: variables keep their values between runs, assigns write them, the
//! optimisers built in the graph update as the reference SGD with momentum does.

use std::collections::HashMap;

use ndarray::{arr1, ArrayD, IxDyn};
use shareflow_graphs::optim::{momentum, sgd};
use shareflow_graphs::prelude::*;
use shareflow_ops::plain::Sgd;
use shareflow_runtime::plain::Session;

fn lr(value: f32) -> HashMap<String, ArrayD<f32>> {
    HashMap::from([("lr".to_string(), ArrayD::from_elem(IxDyn(&[]), value))])
}

#[test]
fn momentum_in_the_graph_matches_the_reference_optimiser() {
    let g = GraphBuilder::new();
    let owner = g.party("model-owner");
    let w = g.variable("w", [3], Init::Owner { party: owner });
    let target = g.constant([3], vec![0.5, -1.0, 2.0]);
    let loss = w.mean_squared_error(&target);
    let grads = g.gradients(&loss, std::slice::from_ref(&w)).unwrap();
    let rate = g.parameter("lr", []);
    momentum(&g, &[w], &grads, &rate, 0.9).unwrap();
    let graph = g.build().unwrap();
    let start = arr1(&[1.0f32, 2.0, -3.0]).into_dyn();
    let owners = HashMap::from([("w".to_string(), start.clone())]);
    let mut session = Session::new(graph, &owners).unwrap();

    let t = arr1(&[0.5f32, -1.0, 2.0]).into_dyn();
    let mut params = vec![start];
    let mut velocity = Sgd::zero_velocity(&params);
    for (step, rate) in [0.1f32, 0.05, 0.02].into_iter().enumerate() {
        session.run(&lr(rate)).unwrap();
        let grad = (&params[0] - &t).mapv(|d| d * (2.0 / 3.0));
        Sgd::new(rate, 0.9)
            .step(&mut params, &[grad], &mut velocity)
            .unwrap();
        let got = session.variable("w").unwrap();
        for (a, b) in got.iter().zip(params[0].iter()) {
            assert!((a - b).abs() <= 1e-6, "step {step}: {a} vs {b}");
        }
        let v = session.variable("w/velocity").unwrap();
        assert_eq!(v.shape(), &[3]);
    }
}

#[test]
fn plain_sgd_and_seeded_initialisers() {
    let g = GraphBuilder::new();
    let p = g.party("data-owner");
    let x = g.input(p, "x", [2, 2]);
    let w = g.variable(
        "w",
        [2, 1],
        Init::Normal {
            std: 1.0,
            seed: 5,
            offset: 0,
        },
    );
    let b = g.variable("b", [1], Init::Zeros);
    let y = g.constant([2, 1], vec![1.0, -1.0]);
    let loss = (x.matmul(&w) + &b).mean_squared_error(&y);
    let vars = [w, b];
    let grads = g.gradients(&loss, &vars).unwrap();
    let rate = g.parameter("lr", []);
    sgd(&g, &vars, &grads, &rate).unwrap();
    let out = loss.output_to(p, "loss");
    let graph = g.build().unwrap();
    let mut session = Session::new(graph, &HashMap::new()).unwrap();
    let first = session.variable("w").unwrap().clone();
    assert_eq!(
        first,
        shareflow_ops::plain::init::normal(&[2, 1], 1.0, 5, 0)
    );
    assert_eq!(session.variable("b").unwrap().iter().sum::<f32>(), 0.0);
    let mut inputs = lr(0.1);
    inputs.insert(
        "x".into(),
        ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1.0, 0.5, -0.5, 1.0]).unwrap(),
    );
    let mut losses = Vec::new();
    for _ in 0..30 {
        let eval = session.run(&inputs).unwrap();
        losses.push(eval.value(session.graph(), out.id()).unwrap().sum());
        assert_eq!(eval.outputs(session.graph()).len(), 1);
    }
    assert_ne!(session.variable("w").unwrap(), &first);
    assert!(losses[29] < losses[0] / 10.0, "{losses:?}");
}

#[test]
fn a_missing_owner_value_names_the_variable() {
    let g = GraphBuilder::new();
    let owner = g.party("model-owner");
    let _ = g.variable("dense/kernel", [2], Init::Owner { party: owner });
    let graph = g.build().unwrap();
    let err = Session::new(graph, &HashMap::new()).err().unwrap();
    assert!(err.to_string().contains("dense/kernel"), "{err}");
}

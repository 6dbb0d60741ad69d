//! The symbolic gradients of every differentiable op, run by the plaintext reference, against
//! central finite differences through the same graph (small random shapes).

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn};
use shareflow_graphs::prelude::*;
use shareflow_ops::plain::gradcheck::{assert_close, distinct, numeric_grad, random};
use shareflow_runtime::plain::forward;

/// Builds `y = f(x_0, .., x_n)` on inputs of the given values, the scalar
/// `loss = sum(y * r)` for a fixed random `r`, and its gradients; checks every gradient
/// against central differences of `loss`.
fn check(name: &str, values: &[ArrayD<f32>], f: impl Fn(&GraphBuilder, &[Tensor]) -> Tensor) {
    let g = GraphBuilder::new();
    let p = g.party("owner");
    let xs: Vec<Tensor> = values
        .iter()
        .enumerate()
        .map(|(i, v)| g.input(p, &format!("x{i}"), v.shape().to_vec()))
        .collect();
    let y = f(&g, &xs);
    let shape = y.shape();
    let r = random(shape.dims(), 99);
    let mut loss = &y * &g.constant(shape.clone(), r.iter().copied().collect());
    while loss.shape().rank() > 0 {
        loss = loss.reduce_sum(0);
    }
    let grads = g.gradients(&loss, &xs).unwrap();
    let grad_outs: Vec<Tensor> = grads
        .iter()
        .enumerate()
        .map(|(i, d)| d.output_to(p, &format!("d{i}")))
        .collect();
    let loss_out = loss.output_to(p, "loss");
    let graph = g.build().unwrap();
    let feed = |vals: &[ArrayD<f32>]| -> HashMap<String, ArrayD<f32>> {
        vals.iter()
            .enumerate()
            .map(|(i, v)| (format!("x{i}"), v.clone()))
            .collect()
    };
    let eval = forward(&graph, &feed(values)).unwrap();
    for (i, out) in grad_outs.iter().enumerate() {
        let analytic = eval.value(&graph, out.id()).unwrap();
        assert!(
            analytic.iter().any(|v| v.abs() > 1e-3),
            "{name}: gradient {i} is all zero, the check would prove nothing"
        );
        let numeric = numeric_grad(&values[i], |x| {
            let mut vals = values.to_vec();
            vals[i] = x.clone();
            let e = forward(&graph, &feed(&vals)).unwrap();
            f64::from(e.value(&graph, loss_out.id()).unwrap().iter().sum::<f32>())
        });
        assert_close(&format!("{name}: d x{i}"), analytic, &numeric);
    }
}

fn one_hot(rows: &[usize], classes: usize) -> ArrayD<f32> {
    let mut y = ArrayD::zeros(IxDyn(&[rows.len(), classes]));
    for (i, &c) in rows.iter().enumerate() {
        y[[i, c]] = 1.0;
    }
    y
}

#[test]
fn conv2d_with_stride_2_and_both_paddings() {
    for (padding, x, w) in [
        (Padding::Same, [2, 5, 5, 2], [3, 3, 2, 3]),
        (Padding::Valid, [1, 7, 6, 1], [3, 2, 1, 2]),
    ] {
        let values = [random(&x, 1), random(&w, 2)];
        check(&format!("conv2d {padding:?}"), &values, |_, v| {
            v[0].conv2d(&v[1], [2, 2], padding)
        });
    }
}

#[test]
fn pooling_with_stride_other_than_size() {
    let x = distinct(&[2, 7, 7, 2], 3);
    check("maxpool 3x3/2 valid", std::slice::from_ref(&x), |_, v| {
        v[0].maxpool2d([3, 3], [2, 2], Padding::Valid)
    });
    check("maxpool 2x2/1 same", std::slice::from_ref(&x), |_, v| {
        v[0].maxpool2d([2, 2], [1, 1], Padding::Same)
    });
    check("avgpool 3x3/2 same", &[random(&[2, 6, 6, 2], 4)], |_, v| {
        v[0].avgpool2d([3, 3], [2, 2], Padding::Same)
    });
}

#[test]
fn arithmetic_with_broadcasting() {
    let a = random(&[3, 4], 5);
    let bias = random(&[4], 6);
    let scalar = random(&[], 7);
    for (name, values) in [
        ("same shapes", [a.clone(), random(&[3, 4], 8)]),
        ("bias", [a.clone(), bias.clone()]),
        ("bias first", [bias.clone(), a.clone()]),
        ("scalar", [a.clone(), scalar.clone()]),
    ] {
        check(&format!("add {name}"), &values, |_, v| &v[0] + &v[1]);
        check(&format!("sub {name}"), &values, |_, v| &v[0] - &v[1]);
        check(&format!("mul {name}"), &values, |_, v| &v[0] * &v[1]);
    }
    check("neg", std::slice::from_ref(&a), |_, v| -&v[0]);
    check("matmul", &[a, random(&[4, 2], 9)], |_, v| {
        v[0].matmul(&v[1])
    });
    // A node used twice: the contributions add up.
    check("x * x + x", &[random(&[5], 10)], |_, v| {
        &(&v[0] * &v[0]) + &v[0]
    });
}

#[test]
fn shape_ops() {
    let x = random(&[2, 3, 4], 11);
    check("reshape", std::slice::from_ref(&x), |_, v| {
        v[0].reshape([4, 6])
    });
    check("transpose", std::slice::from_ref(&x), |_, v| {
        v[0].transpose(&[2, 0, 1])
    });
    for axis in 0..3 {
        check(
            &format!("reduce_sum {axis}"),
            std::slice::from_ref(&x),
            |_, v| v[0].reduce_sum(axis),
        );
    }
    check("broadcast_to", &[random(&[3, 1], 12)], |_, v| {
        v[0].broadcast_to([2, 3, 4])
    });
}

#[test]
fn activations() {
    let x = distinct(&[3, 5], 13);
    check("relu", std::slice::from_ref(&x), |_, v| v[0].relu());
    check("sigmoid", std::slice::from_ref(&x), |_, v| v[0].sigmoid());
    check("softmax", &[random(&[3, 5], 14)], |_, v| v[0].softmax());
    let stats = |g: &GraphBuilder, seed: u64, shift: f32| {
        let v = random(&[5], seed).mapv(|v| v + shift);
        g.constant([5], v.iter().copied().collect())
    };
    check("batchnorm", &[x], |g, v| {
        v[0].batchnorm(
            &stats(g, 15, 0.0),
            &stats(g, 16, 2.0),
            &stats(g, 17, 0.0),
            &stats(g, 18, 0.0),
            1e-3,
        )
    });
}

#[test]
fn losses() {
    let logits = random(&[4, 5], 19).mapv(|v| 3.0 * v);
    let labels = one_hot(&[0, 4, 2, 2], 5);
    check("softmax cross-entropy", &[logits], |g, v| {
        let y = g.constant([4, 5], labels.iter().copied().collect());
        v[0].softmax_cross_entropy(&y)
    });
    let logits = random(&[4, 5], 22).mapv(|v| 3.0 * v);
    let labels = random(&[4, 5], 23).mapv(|v| (v > 0.0) as u8 as f32);
    check("sigmoid cross-entropy", &[logits], |g, v| {
        let y = g.constant([4, 5], labels.iter().copied().collect());
        v[0].sigmoid_cross_entropy(&y)
    });
    let values = [random(&[3, 4], 20), random(&[3, 4], 21)];
    check("mean squared error", &values, |_, v| {
        v[0].mean_squared_error(&v[1])
    });
}

#[test]
fn ops_without_gradient_and_unconnected_nodes_are_named() {
    let g = GraphBuilder::new();
    let p = g.party("owner");
    let x = g.input(p, "x", [2, 3]);
    let other = g.input(p, "other", [2]);
    let loss = x.argmax().reduce_sum(0);
    let err = g.gradients(&loss, std::slice::from_ref(&x)).err().unwrap();
    assert!(
        matches!(err, GraphError::NoGradient { op: "argmax", .. }),
        "{err}"
    );
    let loss = x.reduce_sum(1).reduce_sum(0);
    let err = g.gradients(&loss, &[other]).err().unwrap();
    assert!(matches!(err, GraphError::Unconnected { ref node, .. } if node.contains("other")));
    let frozen = g.variable_with("frozen", [3], Init::Zeros, false);
    let loss = (&x + &frozen).reduce_sum(1).reduce_sum(0);
    let err = g.gradients(&loss, &[frozen]).err().unwrap();
    assert!(matches!(err, GraphError::NotTrainable { ref node } if node.contains("frozen")));
}

//! The tools' default options are exact where the old zoo default (signs in Z_2^32) was
//! silently wrong, and `eval` reports what Pond's polynomials cannot compute.

use std::collections::HashMap;

use ndarray::{Array2, ArrayD};
use shareflow_compiler::{CompileOptions, ProtocolKind};
use shareflow_graphs::zoo::{ModelKind, ZooModel, IMAGE};
use shareflow_runtime::data::{data_dir, models_dir, Mnist, Split, Weights};
use shareflow_runtime::plain::forward;
use shareflow_runtime::plain::train::predict;
use shareflow_tools::commands::eval::{evaluate, EvalArgs};
use shareflow_tools::commands::secure::{agreement, SecureModel};
use shareflow_tools::commands::Options;

fn weights(kind: ModelKind) -> Weights {
    let file = models_dir().join(format!("{}.npz", kind.to_string().to_lowercase()));
    Weights::load(&file).unwrap()
}

fn argmax(logits: &Array2<f32>) -> Vec<usize> {
    logits
        .outer_iter()
        .map(|row| (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best }))
        .collect()
}

/// Logits of the tools' default SecureNN prediction (`Options::for_model`).
fn secure(kind: ModelKind, weights: &Weights, images: &ArrayD<f32>) -> Array2<f32> {
    let options = Options::from(CompileOptions::default()).for_model(kind);
    let mut model = SecureModel::new(kind, ProtocolKind::SecureNN, options);
    let batch = images.shape()[0];
    model.predict(weights, images, batch).unwrap().0
}

#[test]
fn an_image_scaled_by_30000_keeps_its_prediction() {
    // Test image 0 is a 7; scaled, its hidden values pass 2^15 (2^14 in max pooling).
    let test = Mnist::load(&data_dir(None), Split::Test, Some(1)).unwrap();
    assert_eq!(test.labels[0], 7);
    let image = test.batch(0, 1).mapv(|v| v * 30000.0);
    for kind in [ModelKind::A, ModelKind::C] {
        let w = weights(kind);
        let plain = predict(kind, &w, &image, 1).unwrap();
        assert_eq!(argmax(&plain), vec![7], "network {kind} in plaintext");
        assert_eq!(argmax(&secure(kind, &w, &image)), vec![7], "network {kind}");
    }
}

#[test]
fn an_image_scaled_by_30000_is_refused_where_comparisons_are_narrowed() {
    // `--input-range 0,1`: the widths hold for images in [0, 1] only, so the client refuses
    // the scaled image rather than predict it wrongly.
    let test = Mnist::load(&data_dir(None), Split::Test, Some(1)).unwrap();
    let image = test.batch(0, 1).mapv(|v| v * 30000.0);
    let kind = ModelKind::C;
    let w = weights(kind);
    let options = Options::from(CompileOptions::default()).for_model(kind);
    let mut model = SecureModel::new(kind, ProtocolKind::SecureNN, options);
    model.narrow_with((0.0, 1.0), &w);
    let e = model.predict(&w, &image, 1).unwrap_err().to_string();
    assert!(e.contains("\"image\"") && e.contains("[0, 1]"), "{e}");
    let (logits, _) = model.predict(&w, &test.batch(0, 1), 1).unwrap();
    assert_eq!(argmax(&logits), vec![7]);
}

#[test]
fn a_first_layer_scaled_by_10000_keeps_every_prediction() {
    let test = Mnist::load(&data_dir(None), Split::Test, Some(50)).unwrap();
    let mut w = weights(ModelKind::A);
    for name in ["dense1/kernel", "dense1/bias"] {
        let a = w.arrays.get_mut(name).unwrap();
        a.mapv_inplace(|v| v * 1e4);
    }
    let images = test.images.clone().into_dyn();
    let plain = predict(ModelKind::A, &w, &images, 50).unwrap();
    let got = secure(ModelKind::A, &w, &images);
    assert_eq!(agreement(&got, &plain), 1.0);
}

fn eval_args(protocol: &str, limit: usize, relu_interval: Option<f64>) -> EvalArgs {
    let mut base = CompileOptions::default();
    if let Some(i) = relu_interval {
        base.relu.interval = i;
    }
    EvalArgs {
        model: ModelKind::A.into(),
        protocol: protocol.into(),
        limit: Some(limit),
        batch: limit,
        data: None,
        weights: None,
        options: Options {
            base,
            relu_given: relu_interval.is_some(),
            input_range: None,
        },
        persist: true,
        json: true,
    }
}

/// The inputs of network A's ReLUs on the first `n` test images, and how many exceed `bound`.
fn relu_inputs(n: usize, bound: f32) -> (u64, u64) {
    let test = Mnist::load(&data_dir(None), Split::Test, Some(n)).unwrap();
    let zoo = ZooModel::build(ModelKind::A, n).unwrap();
    let mut inputs: HashMap<String, ArrayD<f32>> =
        weights(ModelKind::A).arrays.into_iter().collect();
    inputs.insert(IMAGE.to_string(), test.images.clone().into_dyn());
    let eval = forward(&zoo.graph, &inputs).unwrap();
    let (mut outside, mut total) = (0, 0);
    for (id, node) in zoo.graph.nodes() {
        if node.op.name() == "relu" {
            let x = &eval.values[&zoo.graph.inputs(id)[0]];
            total += x.len() as u64;
            outside += x.iter().filter(|v| v.abs() > bound).count() as u64;
        }
    }
    (outside, total)
}

#[test]
fn eval_counts_the_activation_inputs_outside_the_interval() {
    // Default interval [-8, 8]: the true count, from the plaintext pass of this test.
    let n = 20;
    let r = evaluate(&eval_args("pond", n, None)).unwrap().json();
    let (outside, total) = relu_inputs(n, 8.0);
    assert_eq!(r["outside_interval"], outside, "{r}");
    assert_eq!(r["activation_inputs"], total, "{r}");
    assert_eq!(total, n as u64 * 256, "two hidden layers of 128");
    // A tiny interval: most inputs are outside, and agreement collapses with them.
    let tiny = evaluate(&eval_args("pond", n, Some(0.5))).unwrap().json();
    let (outside, _) = relu_inputs(n, 0.5);
    assert!(outside > total / 4, "{outside} of {total}");
    assert_eq!(tiny["outside_interval"], outside, "{tiny}");
    let fraction = tiny["outside_interval_fraction"].as_f64().unwrap();
    assert!((fraction - outside as f64 / total as f64).abs() < 1e-12);
    // SecureNN computes ReLU exactly: nothing to count.
    let exact = evaluate(&eval_args("securenn", 4, None)).unwrap().json();
    assert_eq!(exact["outside_interval"], 0);
    assert_eq!(exact["activation_inputs"], 0);
}

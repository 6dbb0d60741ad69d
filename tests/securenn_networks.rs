//! Networks A-D of the model zoo under SecureNN, with their trained weights, on MNIST test
//! images: the argmax of the secure logits against the plaintext reference.
//!
//! ReLU and max pooling are exact, so the logits differ from plaintext only by fixed-point
//! rounding (encoding and one ulp per truncation); the prediction changes only where two
//! logits are that close.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::plaintext;
use ndarray::{ArrayD, Axis};
use shareflow::compiler::{compile, CompileOptions, ProtocolKind};
use shareflow::graphs::zoo::{ModelKind, ZooModel, CLIENT, IMAGE, LOGITS, MODEL_OWNER};
use shareflow::runtime::data::{data_dir, models_dir, Mnist, Split, Weights};
use shareflow::runtime::exec::{run_in_process, Plan};

/// Images per network, and per run.
const IMAGES: usize = 100;
const BATCH: usize = 50;

fn argmax_rows(logits: &ArrayD<f32>) -> Vec<usize> {
    logits
        .axis_iter(Axis(0))
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            best
        })
        .collect()
}

#[test]
fn secure_predictions_agree_with_plaintext_on_every_network() {
    let test = Mnist::load(&data_dir(None), Split::Test, Some(IMAGES)).unwrap();
    let mut report = Vec::new();
    for kind in ModelKind::ALL {
        let zoo = ZooModel::build(kind, BATCH).unwrap();
        let compiled = compile(
            &zoo.graph,
            ProtocolKind::SecureNN,
            CompileOptions::default(),
        )
        .unwrap();
        let plans: Vec<Plan> = compiled
            .programs
            .iter()
            .map(|p| Plan::new(p).unwrap())
            .collect();
        let file = models_dir().join(format!("{}.npz", kind.to_string().to_lowercase()));
        let weights = Weights::load(&file).unwrap();
        let (mut agree, mut correct, mut max_err) = (0, 0, 0f32);
        let start = Instant::now();
        let (mut bytes, mut rounds) = (0, 0);
        for first in (0..IMAGES).step_by(BATCH) {
            let images = test.batch(first, first + BATCH);
            let inputs = HashMap::from([
                (
                    MODEL_OWNER.to_string(),
                    weights.arrays.clone().into_iter().collect(),
                ),
                (
                    CLIENT.to_string(),
                    HashMap::from([(IMAGE.to_string(), images)]),
                ),
            ]);
            let expected = plaintext(&zoo.graph, &inputs).remove(LOGITS).unwrap();
            let run = run_in_process(&compiled, &plans, &inputs, Duration::from_secs(120)).unwrap();
            let got = run.float(CLIENT, LOGITS).unwrap();
            (bytes, rounds) = (run.bytes(), run.rounds());
            max_err = got
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(max_err, f32::max);
            let (p, s) = (argmax_rows(&expected), argmax_rows(got));
            for (i, (p, s)) in p.iter().zip(&s).enumerate() {
                agree += usize::from(p == s);
                correct += usize::from(*s == usize::from(test.labels[first + i]));
            }
        }
        let line = format!(
            "network {kind}: agreement {agree}/{IMAGES}, accuracy {correct}/{IMAGES}, max |logit \
             error| {max_err:.5}, {:.1} s, per batch of {BATCH}: {:.1} MB, {rounds} rounds",
            start.elapsed().as_secs_f64(),
            bytes as f64 / 1e6
        );
        println!("{line}");
        report.push((kind, agree, max_err, line));
    }
    for (kind, agree, max_err, line) in report {
        // Rounding only: a few ulps per layer on logits of magnitude ~10.
        assert!(max_err < 0.01, "{line}");
        assert!(agree >= IMAGES - 1, "network {kind}: {line}");
    }
}

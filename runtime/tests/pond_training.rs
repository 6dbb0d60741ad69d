//! Private training under Pond of network P (centred sigmoids, average pooling, sigmoid
//! cross-entropy: no comparison anywhere): the same graph, initial weights and batches as the
//! plaintext run, the weights kept as shares by the servers between steps. The two runs differ
//! by the fixed-point encoding and the sigmoid polynomial (P's: degree 13 on `[-16, 16]`,
//! error up to 0.035) only.
//!
//! With the logits revealed to the data owner (`StepReveals::logits`), the loss's gradient is
//! computed by the data owner in the clear: the weights are the same within the same bounds,
//! the step's cost report names the leak, and the checks of what a party may receive accept
//! the step only because its graph names the data owner as the logits' receiver.

use shareflow_compiler::{compile, verify, CompileOptions, PolyApprox, ProtocolKind};
use shareflow_graphs::zoo::{ModelKind, CLIENT, LOGITS};
use shareflow_runtime::data::{data_dir, Mnist, Split, Weights};
use shareflow_runtime::plain::train::{self, argmax, TrainConfig};
use shareflow_runtime::train::{
    train_private_with, training_graph, PrivateModel, StepSpec, TrainOptions,
};

/// The largest difference of a revealed weight from the plaintext run's after four steps, as
/// a fraction of the largest move of a weight in the plaintext run (at P's learning rate of
/// 0.4 a weight moves by about 0.7; the polynomial's error of up to 0.035 in each sigmoid
/// moves the private run's by a few hundredths more or less).
const WEIGHT_BOUND: f32 = 0.1;
/// The largest difference of a private logit from the plaintext logit of the revealed weights:
/// two sigmoid layers, each off by up to 0.035, the second's errors summed over 128 units by
/// dense2 (about 0.22 observed).
const LOGIT_BOUND: f32 = 0.4;

fn config(lr: f32) -> TrainConfig {
    TrainConfig {
        epochs: 1,
        batch: 16,
        lr,
        momentum: 0.9,
        seed: 3,
    }
}

/// P's compile options: its sigmoid polynomial (as `shareflow train` chooses it for P).
fn options() -> CompileOptions {
    CompileOptions {
        sigmoid: PolyApprox {
            interval: 16.0,
            degree: 13,
        },
        ..CompileOptions::default()
    }
}

/// The largest difference of two sets of weights.
fn largest_difference(a: &Weights, b: &Weights) -> f32 {
    let mut worst = 0f32;
    for (name, w) in &a.arrays {
        let other = &b.arrays[name];
        assert_eq!(other.shape(), w.shape(), "{name}");
        for (x, y) in w.iter().zip(other.iter()) {
            worst = worst.max((x - y).abs());
        }
    }
    worst
}

/// Four private steps of P on 64 images, the logits revealed to the data owner or not.
fn train_p(data: &Mnist, reveal_logits: bool) -> PrivateModel {
    let opts = TrainOptions {
        reveal_logits,
        ..TrainOptions::default()
    };
    let mut steps = 0;
    let model = train_private_with(
        ModelKind::P,
        data,
        &config(0.4),
        ProtocolKind::Pond,
        options(),
        &opts,
        |r| {
            steps += 1;
            eprintln!(
                "reveal logits {reveal_logits}: step {} {:.0} ms, {} bytes, {} rounds",
                r.step, r.ms, r.bytes, r.rounds
            );
        },
    )
    .unwrap();
    assert_eq!(steps, 4);
    model
}

#[test]
fn network_p_trains_under_pond_like_the_plaintext_run() {
    let data = Mnist::load(&data_dir(None), Split::Train, Some(64)).unwrap();
    let cfg = config(0.4);
    let plain = train::train(ModelKind::P, &data, &cfg, |_| {}).unwrap();
    // The initial weights: four steps at a rate of zero.
    let initial = train::train(ModelKind::P, &data, &config(0.0), |_| {}).unwrap();
    let moved = largest_difference(&plain, &initial);
    assert!(moved > 0.1, "the weights hardly moved: {moved}");
    let bound = WEIGHT_BOUND * moved;

    let mut private = train_p(&data, false);
    let revealed = private.reveal().unwrap();
    let worst = largest_difference(&revealed, &plain);
    eprintln!(
        "largest weight difference {worst:e} (the plaintext run moved a weight by {moved:e})"
    );
    assert!(worst < bound, "largest weight difference {worst}");

    // The same step with the logits revealed to the data owner: the same weights.
    let mut open = train_p(&data, true);
    let opened = open.reveal().unwrap();
    let worst_open = largest_difference(&opened, &plain);
    eprintln!("revealed logits: largest weight difference {worst_open:e} from the plaintext run");
    assert!(worst_open < bound, "largest weight difference {worst_open}");
    let between = largest_difference(&opened, &revealed);
    eprintln!("largest weight difference {between:e} between the two private runs");
    assert!(between < bound, "{between}");

    let test = Mnist::load(&data_dir(None), Split::Test, Some(16)).unwrap();
    let images = test.images.clone().into_dyn();
    let logits = private.predict(&images, 8).unwrap();
    let reference = train::predict(ModelKind::P, &revealed, &images, 8).unwrap();
    let plaintext = train::predict(ModelKind::P, &plain, &images, 8).unwrap();
    let (mut same, mut gap) = (0f32, 0f32);
    for ((a, b), c) in logits.iter().zip(reference.iter()).zip(plaintext.iter()) {
        same = same.max((a - b).abs());
        gap = gap.max((a - c).abs());
    }
    eprintln!(
        "largest logit difference {same:e} from the revealed weights' plaintext logits, {gap:e} \
         from the plaintext run's"
    );
    assert!(same < LOGIT_BOUND, "largest logit difference {same}");
    // The predicted classes are not compared: after four steps the ten logits of an image lie
    // within a few tenths of each other, the polynomial's error of the same order (the
    // agreement over the test set after a full run is in the README).
    let agree = logits
        .outer_iter()
        .zip(reference.outer_iter())
        .filter(|(a, c)| argmax(&a.to_vec()) == argmax(&c.to_vec()))
        .count();
    eprintln!("{agree} of {} predicted classes agree", test.len());
}

#[test]
fn revealed_logits_are_named_in_the_cost_report_and_checked_against_the_graph() {
    let cfg = config(0.4);
    let spec = |reveal_logits| StepSpec {
        reveal_logits,
        ..StepSpec::default()
    };
    let shared = compile(
        &training_graph(ModelKind::P, &cfg, spec(false)).unwrap(),
        ProtocolKind::Pond,
        options(),
    )
    .unwrap();
    assert!(
        shared.cost().reveals.is_empty(),
        "{:?}",
        shared.cost().reveals
    );

    let open = compile(
        &training_graph(ModelKind::P, &cfg, spec(true)).unwrap(),
        ProtocolKind::Pond,
        options(),
    )
    .unwrap();
    let reveals = open.cost().reveals;
    assert_eq!(reveals.len(), 1, "{reveals:?}");
    assert_eq!(reveals[0].name, LOGITS);
    assert_eq!(reveals[0].to, CLIENT);
    assert_eq!(reveals[0].shape, vec![cfg.batch, 10]);
    assert_eq!(reveals[0].to_string(), "logits [16, 10] to client");
    verify(&open).unwrap();

    // The same programs without the graph naming the data owner as the logits' receiver: the
    // reveal to it is refused.
    let mut tampered = open.clone();
    tampered.outputs.retain(|o| o.name != LOGITS);
    let err = verify(&tampered).unwrap_err().to_string();
    assert!(err.contains("receives no output"), "{err}");
}

//! Private training under SecureNN: the same graph, initial weights and batches as the
//! plaintext run, the weights kept as shares by the servers between steps.

use shareflow_compiler::{CompileOptions, ProtocolKind};
use shareflow_graphs::zoo::ModelKind;
use shareflow_runtime::data::{data_dir, models_dir, Mnist, Split, Weights};
use shareflow_runtime::plain::train::{self, TrainConfig};
use shareflow_runtime::train::{
    check_initial_weights, train_private, train_private_with, TrainOptions,
};

fn config(batch: usize) -> TrainConfig {
    TrainConfig {
        epochs: 1,
        batch,
        lr: 0.05,
        momentum: 0.9,
        seed: 3,
    }
}

#[test]
fn network_a_trains_under_securenn_like_the_plaintext_run() {
    let data = Mnist::load(&data_dir(None), Split::Train, Some(64)).unwrap();
    let cfg = config(16);
    let plain = train::train(ModelKind::A, &data, &cfg, |_| {}).unwrap();
    let mut reports = Vec::new();
    let mut private = train_private(
        ModelKind::A,
        &data,
        &cfg,
        ProtocolKind::SecureNN,
        CompileOptions::default(),
        |r| reports.push(r),
    )
    .unwrap();
    assert_eq!(reports.len(), 4);
    let revealed = private.reveal().unwrap();
    let mut worst = 0f32;
    for (name, w) in &plain.arrays {
        let got = &revealed.arrays[name];
        for (a, b) in got.iter().zip(w.iter()) {
            worst = worst.max((a - b).abs());
        }
    }
    eprintln!(
        "largest weight difference {worst:e}; step bytes {} rounds {}",
        reports[0].bytes, reports[0].rounds
    );
    assert!(worst < 1e-2, "largest weight difference {worst}");
    let test = Mnist::load(&data_dir(None), Split::Test, Some(20)).unwrap();
    let images = test.images.clone().into_dyn();
    let logits = private.predict(&images, 10).unwrap();
    let reference = train::predict(ModelKind::A, &revealed, &images, 10).unwrap();
    for (a, b) in logits.iter().zip(reference.iter()) {
        assert!((a - b).abs() < 0.05, "{a} vs {b}");
    }
}

#[test]
fn the_model_owners_first_weights_and_the_revealed_loss_are_the_plaintext_runs() {
    let data = Mnist::load(&data_dir(None), Split::Train, Some(64)).unwrap();
    let cfg = config(16);
    let first = Weights::load(&models_dir().join("a.npz")).unwrap();
    let mut plain_losses = Vec::new();
    let plain = train::train_from(ModelKind::A, &data, &cfg, Some(&first), |p| {
        plain_losses.push(p.loss)
    })
    .unwrap();
    let opts = TrainOptions {
        init_weights: Some(first.clone()),
        reveal_loss: true,
        ..TrainOptions::default()
    };
    let mut losses = Vec::new();
    let mut private = train_private_with(
        ModelKind::A,
        &data,
        &cfg,
        ProtocolKind::SecureNN,
        CompileOptions::default(),
        &opts,
        |r| losses.push(r.loss.unwrap()),
    )
    .unwrap();
    eprintln!("losses {losses:?}, plaintext {plain_losses:?}");
    assert_eq!(losses.len(), plain_losses.len());
    for (a, b) in losses.iter().zip(&plain_losses) {
        assert!((a - b).abs() < 5e-3, "revealed loss {a}, plaintext {b}");
    }
    let revealed = private.reveal_to("client").unwrap();
    for (name, w) in &plain.arrays {
        for (a, b) in revealed.arrays[name].iter().zip(w.iter()) {
            assert!((a - b).abs() < 1e-2, "{name}: {a} vs {b}");
        }
    }
    // from the seeded first weights the loss is large (about ln 10 at first): the logarithm's
    // polynomial over its whole interval
    let mut plain_losses = Vec::new();
    train::train(ModelKind::A, &data, &cfg, |p| plain_losses.push(p.loss)).unwrap();
    let opts = TrainOptions {
        reveal_loss: true,
        ..TrainOptions::default()
    };
    let mut losses = Vec::new();
    let seeded = |r: shareflow_runtime::train::StepReport| losses.push(r.loss.unwrap());
    train_private_with(
        ModelKind::A,
        &data,
        &cfg,
        ProtocolKind::SecureNN,
        CompileOptions::default(),
        &opts,
        seeded,
    )
    .unwrap();
    eprintln!("seeded: losses {losses:?}, plaintext {plain_losses:?}");
    assert!(plain_losses[0] > 1.0, "{plain_losses:?}");
    for (a, b) in losses.iter().zip(&plain_losses) {
        assert!((a - b).abs() < 5e-3, "revealed loss {a}, plaintext {b}");
    }
    // the weights never go to a server
    assert!(private.reveal_to("server0").is_err());
    // another network's weights are refused, naming the array
    let c = Weights::load(&models_dir().join("c.npz")).unwrap();
    let err = check_initial_weights(ModelKind::A, &c, "c.npz")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("c.npz") && err.contains("dense1/kernel"),
        "{err}"
    );
}

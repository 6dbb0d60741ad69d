//! Checkpoints of a private training session: a session stopped after a checkpoint and
//! resumed ends with the weights of a session run straight through; a server's file holds
//! random-looking shares; a checkpoint of another step program is refused; a half-written
//! temporary file is not a checkpoint.

use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::NpzReader;
use shareflow_compiler::{CompileOptions, ProtocolKind};
use shareflow_graphs::zoo::ModelKind;
use shareflow_runtime::data::{data_dir, Mnist, Split, Weights};
use shareflow_runtime::plain::train::{self, TrainConfig};
use shareflow_runtime::train::checkpoint::CheckpointOptions;
use shareflow_runtime::train::{train_private_with, PrivateModel, TrainOptions};
use shareflow_runtime::RuntimeError;

/// Fractional bits of the fixed-point encoding.
const FRAC: u32 = 16;

fn config(batch: usize) -> TrainConfig {
    TrainConfig {
        epochs: 1,
        batch,
        lr: 0.05,
        momentum: 0.9,
        seed: 3,
    }
}

fn data() -> Mnist {
    Mnist::load(&data_dir(None), Split::Train, Some(64)).unwrap()
}

fn run(data: &Mnist, batch: usize, opts: &TrainOptions) -> Result<PrivateModel, RuntimeError> {
    train_private_with(
        ModelKind::A,
        data,
        &config(batch),
        ProtocolKind::SecureNN,
        CompileOptions::default(),
        opts,
        |_| {},
    )
}

fn checkpoints(dir: &Path, every: usize) -> CheckpointOptions {
    CheckpointOptions {
        dir: dir.to_path_buf(),
        every,
        force: false,
    }
}

fn largest_difference(a: &Weights, b: &Weights) -> f32 {
    let mut worst = 0f32;
    for (name, w) in &a.arrays {
        for (x, y) in w.iter().zip(b.arrays[name].iter()) {
            worst = worst.max((x - y).abs());
        }
    }
    worst
}

/// Trains 2 of the 4 steps with a checkpoint after step 2, drops the session, resumes.
fn stop_and_resume(data: &Mnist, dir: &Path) -> PrivateModel {
    let first = TrainOptions {
        checkpoint: Some(checkpoints(dir, 2)),
        resume: false,
        stop_after: Some(2),
        ..TrainOptions::default()
    };
    drop(run(data, 16, &first).unwrap());
    let resume = TrainOptions {
        checkpoint: Some(checkpoints(dir, 2)),
        resume: true,
        stop_after: None,
        ..TrainOptions::default()
    };
    let resumed = run(data, 16, &resume).unwrap();
    assert_eq!(resumed.resumed_from(), 2);
    resumed
}

#[test]
fn a_resumed_session_ends_with_the_weights_of_an_uninterrupted_one() {
    let data = data();
    let mut straight = run(&data, 16, &TrainOptions::default()).unwrap();
    let straight = straight.reveal().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut resumed = stop_and_resume(&data, dir.path());
    let resumed = resumed.reveal().unwrap();
    let worst = largest_difference(&straight, &resumed);
    let plain = train::train(ModelKind::A, &data, &config(16), |_| {}).unwrap();
    eprintln!(
        "largest weight difference resumed vs straight {worst:e}; vs plaintext: straight {:e}, \
         resumed {:e}",
        largest_difference(&plain, &straight),
        largest_difference(&plain, &resumed)
    );
    // The runs draw fresh randomness, so the truncations round differently: measured 6.1e-5 to
    // 6.1e-4 (26 runs; the straight run is itself ~1.1e-4 from the plaintext one).
    assert!(worst < 2e-3, "largest weight difference {worst}");
    // Both servers have checkpoints after steps 2 and 4 (the resumed session wrote step 4).
    for server in ["server0", "server1"] {
        assert!(dir.path().join(server).join("step-2.npz").is_file());
        assert!(dir.path().join(server).join("step-4.npz").is_file());
    }
}

#[test]
fn checkpoints_hold_shares_not_weights_and_refuse_another_program() {
    let data = data();
    let dir = tempfile::tempdir().unwrap();
    let opts = TrainOptions {
        checkpoint: Some(checkpoints(dir.path(), 2)),
        resume: false,
        stop_after: Some(2),
        ..TrainOptions::default()
    };
    let mut model = run(&data, 16, &opts).unwrap();
    let weights = model.reveal().unwrap();

    // (b) server0's share of each weight looks random: as a fixed-point number it is nowhere
    // near the weight, while the two shares together are.
    let read = |server: &str| {
        let file = std::fs::File::open(dir.path().join(server).join("step-2.npz")).unwrap();
        NpzReader::new(file).unwrap()
    };
    let (mut s0, mut s1) = (read("server0"), read("server1"));
    let mut compared = 0;
    for (name, w) in &weights.arrays {
        let a: ArrayD<u64> = s0.by_name(name).unwrap();
        let b: ArrayD<u64> = s1.by_name(name).unwrap();
        let decode = |x: u64| (x as i64) as f64 / (1u64 << FRAC) as f64;
        let mut near = 0;
        for ((x, y), w) in a.iter().zip(b.iter()).zip(w.iter()) {
            if (decode(*x) - *w as f64).abs() < 1.0 {
                near += 1;
            }
            let sum = decode(x.wrapping_add(*y));
            assert!((sum - *w as f64).abs() < 1e-3, "{name}: {sum} vs {w}");
            compared += 1;
        }
        assert!(
            near <= 1 + a.len() / 1000,
            "{name}: {near} shares near the weights"
        );
    }
    assert!(compared > 1000);

    // (c) a session of another batch size (another step program) refuses the checkpoint.
    let other = TrainOptions {
        checkpoint: Some(checkpoints(dir.path(), 2)),
        resume: true,
        stop_after: None,
        ..TrainOptions::default()
    };
    let err = run(&data, 8, &other)
        .err()
        .expect("resuming another program");
    let message = err.to_string();
    eprintln!("{message}");
    assert!(message.contains("digest mismatch"), "{message}");
    assert!(message.contains("step-2.npz"), "{message}");
    // ... and so does a new session of it, unless forced.
    let fresh = TrainOptions {
        checkpoint: Some(checkpoints(dir.path(), 2)),
        resume: false,
        stop_after: Some(0),
        ..TrainOptions::default()
    };
    let message = run(&data, 8, &fresh)
        .err()
        .expect("overwriting")
        .to_string();
    assert!(message.contains("digest mismatch"), "{message}");
    // A new session of the same program is told to resume or force.
    let message = run(&data, 16, &fresh)
        .err()
        .expect("overwriting")
        .to_string();
    assert!(message.contains("--resume"), "{message}");

    // (d) a half-written temporary file of a later step is not a checkpoint: the session
    // resumes from step 2.
    for server in ["server0", "server1"] {
        let temp = dir.path().join(server).join(".step-4.npz.tmp");
        std::fs::write(&temp, b"PK\x03\x04 half written").unwrap();
    }
    let resume = TrainOptions {
        checkpoint: Some(checkpoints(dir.path(), 0)),
        resume: true,
        stop_after: Some(2),
        ..TrainOptions::default()
    };
    let mut resumed = run(&data, 16, &resume).unwrap();
    assert_eq!(resumed.resumed_from(), 2);
    let again = resumed.reveal().unwrap();
    let worst = largest_difference(&weights, &again);
    assert_eq!(worst, 0.0, "restored weights differ by {worst}");

    // A server with only a newer checkpoint: the step every server has is used; none is an
    // error naming what each server has.
    std::fs::copy(
        dir.path().join("server0").join("step-2.npz"),
        dir.path().join("server0").join("step-3.npz"),
    )
    .unwrap();
    assert_eq!(run(&data, 16, &resume).unwrap().resumed_from(), 2);
    std::fs::remove_file(dir.path().join("server1").join("step-2.npz")).unwrap();
    let message = run(&data, 16, &resume)
        .err()
        .expect("no common step")
        .to_string();
    assert!(
        message.contains("no checkpoint that every server has"),
        "{message}"
    );
}

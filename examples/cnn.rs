//! A small CNN written with the model API, trained privately on a slice of MNIST and
//! evaluated with private predictions.
//!
//! ```text
//! cargo run --release --example cnn -- [--protocol securenn|pond|plaintext] [--train N]
//!     [--test N] [--epochs E] [--batch B] [--transport inproc|quic] [--data DIR] [--save FILE]
//! ```
//!
//! The data owner secret-shares each training batch; the servers (every party a thread of
//! this process) keep the weights as shares between steps and never see an image, a label or
//! a weight; dropout masks are public and drawn by every server from the run's seed. The test
//! images are then predicted from the still-shared model, the logits going to the client
//! only. The same run in plaintext (`--protocol plaintext`) is the reference. Defaults: 1,280
//! training images, one epoch of batches of 64, 500 test images.
//!
//! Pond has no exact comparisons, so neither max pooling, ReLU nor the softmax's gradient: with
//! `--protocol pond` the CNN is built from what Pond computes (a strided convolution, centred
//! sigmoids `sigmoid(x) - 1/2` by a degree-13 polynomial on [-16, 16], average pooling, the
//! sigmoid cross-entropy, learning rate 0.2), the recipe of the zoo's network P.
//!
//! With `--transport quic` the fit stays in process, its weights are then revealed to the
//! model owner, and the evaluation runs with every party a QUIC endpoint on 127.0.0.1 with
//! mutual TLS, each in its own thread ([`Model::over_quic`]): the model owner secret-shares the
//! weights once, the client each batch, and only the client receives the logits.

use std::path::PathBuf;
use std::process::ExitCode;

use shareflow::compiler::PolyApprox;
use shareflow::prelude::*;
use shareflow::runtime::data::{data_dir, Mnist, Split};
use shareflow::runtime::model::EvalReport;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (mut protocol, mut train_n, mut test_n) = (Protocol::SecureNN, 1280, 500);
    let (mut epochs, mut batch, mut data, mut save) = (1, 64, None, None);
    let mut quic = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--protocol" => {
                protocol = match value()?.as_str() {
                    "securenn" => Protocol::SecureNN,
                    "pond" => Protocol::Pond,
                    "plaintext" => Protocol::Plaintext,
                    p => return Err(format!("unknown protocol {p}").into()),
                }
            }
            "--train" => train_n = value()?.parse()?,
            "--test" => test_n = value()?.parse()?,
            "--epochs" => epochs = value()?.parse()?,
            "--batch" => batch = value()?.parse()?,
            "--data" => data = Some(PathBuf::from(value()?)),
            "--save" => save = Some(PathBuf::from(value()?)),
            "--transport" => {
                quic = match value()?.as_str() {
                    "quic" => true,
                    "inproc" => false,
                    t => return Err(format!("unknown transport {t}").into()),
                }
            }
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    let dir = data_dir(data);
    let train = Mnist::load(&dir, Split::Train, Some(train_n))?;
    let test = Mnist::load(&dir, Split::Test, Some(test_n))?;

    if protocol == Protocol::Pond {
        return pond(train, test, (epochs, batch), quic);
    }
    let mut model = Model::new(
        [28, 28, 1],
        Sequential::new()
            .push(Conv2D::new("conv1", [5, 5], 1, 8, [1, 1], Padding::Valid))
            .push(MaxPool2D {
                size: [2, 2],
                stride: [2, 2],
                padding: Padding::Valid,
            })
            .push(ReLU)
            .push(Conv2D::new("conv2", [3, 3], 8, 8, [2, 2], Padding::Same))
            .push(ReLU)
            .push(Flatten)
            .push(Dense::new("dense1", 6 * 6 * 8, 64))
            .push(ReLU)
            .push(Dropout::new("dropout", 0.1))
            .push(Dense::new("dense2", 64, 10))
            .push(Softmax),
    );
    model.compile(
        protocol,
        Optimizer::momentum(0.05, 0.9),
        Loss::SoftmaxCrossEntropy,
    );
    let cluster = tempfile::tempdir()?;
    let quic = quic.then(|| cluster.path());
    fit_and_evaluate(
        &mut model,
        protocol,
        (&train, &test),
        (epochs, batch),
        quic,
        None,
    )?;
    if let Some(path) = save {
        // Opens the weights to the model owner (the only run that does) and writes them.
        model.save(&path)?;
        println!("weights saved to {}", path.display());
    }
    Ok(())
}

/// The CNN under Pond: layers Pond computes without comparisons, fit privately, evaluated
/// from the shared model (or, with `quic`, from the weights shared again to QUIC parties).
fn pond(
    train: Mnist,
    test: Mnist,
    (epochs, batch): (usize, usize),
    quic: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let build = |protocol: Protocol| {
        let mut model = Model::new(
            [28, 28, 1],
            Sequential::new()
                .push(Conv2D::new("conv1", [5, 5], 1, 8, [2, 2], Padding::Same))
                .push(CentredSigmoid)
                .push(AvgPool2D {
                    size: [2, 2],
                    stride: [2, 2],
                    padding: Padding::Valid,
                })
                .push(Flatten)
                .push(Dense::new("dense1", 7 * 7 * 8, 64))
                .push(CentredSigmoid)
                .push(Dense::new("dense2", 64, 10)),
        );
        model.options.sigmoid = PolyApprox {
            interval: 16.0,
            degree: 13,
        };
        model.compile(
            protocol,
            Optimizer::momentum(0.2, 0.9),
            Loss::SigmoidCrossEntropy,
        );
        model
    };
    // the reference: the same network, initial weights and batches in plaintext
    let mut reference = build(Protocol::Plaintext);
    reference.fit(&train.images, &train.labels, epochs, batch)?;
    let plain = reference.evaluate(&test.images.clone().into_dyn(), &test.labels, 100)?;
    let mut model = build(Protocol::Pond);
    let cluster = tempfile::tempdir()?;
    let quic = quic.then(|| cluster.path());
    let train_test = (&train, &test);
    fit_and_evaluate(
        &mut model,
        Protocol::Pond,
        train_test,
        (epochs, batch),
        quic,
        Some(&plain),
    )?;
    Ok(())
}

/// Prints the model's summary, fits it and evaluates it on the test images, printing both;
/// with `quic` (the loopback cluster's directory) the evaluation runs over QUIC, and
/// `reference` is a plaintext evaluation of the same recipe to print beside it.
fn fit_and_evaluate(
    model: &mut Model,
    protocol: Protocol,
    (train, test): (&Mnist, &Mnist),
    (epochs, batch): (usize, usize),
    quic: Option<&std::path::Path>,
    reference: Option<&EvalReport>,
) -> Result<(), Box<dyn std::error::Error>> {
    println!("{}\n", model.summary(protocol_kind(protocol))?);
    let fit = model.fit(&train.images, &train.labels, epochs, batch)?;
    println!(
        "fit ({protocol:?}): {} steps of {batch} in {:.1} s, {:.1} MB, {} rounds per step",
        fit.steps,
        fit.ms / 1e3,
        fit.bytes as f64 / 1e6,
        fit.rounds
    );
    if let (Some(dir), Some(_)) = (quic, protocol.secure()) {
        // the servers' shares live in this process's session: the model owner receives the
        // weights and secret-shares them again to the QUIC parties
        let weights = model.reveal_weights()?.clone();
        model.set_weights(weights)?;
        model.over_quic(dir);
    }
    let eval = model.evaluate(&test.images.clone().into_dyn(), &test.labels, 100)?;
    let beside = reference
        .map(|r| format!(" (plaintext, same recipe: {:.2}%)", 100.0 * r.accuracy))
        .unwrap_or_default();
    println!(
        "evaluate ({protocol:?}): accuracy {:.2}%{beside} on {} test images in {:.1} s, {:.1} MB, {} rounds per batch",
        100.0 * eval.accuracy,
        eval.images,
        eval.ms / 1e3,
        eval.bytes as f64 / 1e6,
        eval.rounds
    );
    Ok(())
}

fn protocol_kind(p: Protocol) -> Option<ProtocolKind> {
    p.secure().or(Some(ProtocolKind::SecureNN))
}

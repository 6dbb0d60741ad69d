//! Private prediction, as in tf-encrypted's poster example: a model owner's weights, a
//! client's input, the output to the client only.
//!
//! ```text
//! cargo run --release --example private_prediction -- [--images N] [--transport inproc|quic]
//!     [--data DIR]
//! ```
//!
//! The model owner holds the trained weights of network A (`models/a.npz`, FC 784-128-128-10,
//! written with the model API) and the client N MNIST test images (default 100). Under Pond
//! and SecureNN (every party a thread of this process) the model owner secret-shares its
//! weights once, the client secret-shares each batch of images, the servers compute on shares,
//! and only the client receives the logits. Prints, per protocol, the accuracy, the agreement
//! of the predicted digits with plaintext, the largest logit difference, the time, and the
//! bytes and rounds of the predictions; exits with an error if a protocol disagrees with
//! plaintext on more than 2% of the images (Pond's ReLU is a polynomial) or SecureNN on any.
//! With `--transport quic` every party of the secure predictions is a QUIC endpoint on
//! 127.0.0.1 with mutual TLS, each in its own thread ([`Model::over_quic`]).

use std::path::PathBuf;
use std::process::ExitCode;

use shareflow::prelude::*;
use shareflow::runtime::data::{data_dir, models_dir, Mnist, Split};
use shareflow::runtime::plain::train::argmax;

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
    let mut images = 100;
    let mut data = None;
    let mut quic = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--images" => images = args.next().ok_or("--images N")?.parse()?,
            "--data" => data = Some(PathBuf::from(args.next().ok_or("--data DIR")?)),
            "--transport" => {
                quic = match args.next().as_deref() {
                    Some("quic") => true,
                    Some("inproc") => false,
                    _ => return Err("--transport inproc|quic".into()),
                }
            }
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    let test = Mnist::load(&data_dir(data), Split::Test, Some(images))?;
    let x = test.images.clone().into_dyn();

    // The model: network A, written as a list of layers.
    let mut model = Model::new(
        [28, 28, 1],
        Sequential::new()
            .push(Flatten)
            .push(Dense::new("dense1", 784, 128))
            .push(ReLU)
            .push(Dense::new("dense2", 128, 128))
            .push(ReLU)
            .push(Dense::new("dense3", 128, 10)),
    );
    // The model owner's weights.
    model.load(&models_dir().join("a.npz"))?;
    // the loopback cluster's certificates, when the parties talk over QUIC
    let cluster = tempfile::tempdir()?;
    if quic {
        model.over_quic(cluster.path());
    }
    println!("{}\n", model.summary(Some(ProtocolKind::SecureNN))?);

    let mut plain = None;
    for protocol in [Protocol::Plaintext, Protocol::Pond, Protocol::SecureNN] {
        model.compile(protocol, Optimizer::sgd(0.0), Loss::SoftmaxCrossEntropy);
        let eval = model.evaluate(&x, &test.labels, 50)?;
        let logits = model.predict(&x, 50)?;
        let reference = plain.get_or_insert_with(|| logits.clone());
        let agree = logits
            .outer_iter()
            .zip(reference.outer_iter())
            .filter(|(a, b)| {
                argmax(a.as_slice().unwrap_or(&[])) == argmax(b.as_slice().unwrap_or(&[]))
            })
            .count();
        let diff = logits
            .iter()
            .zip(reference.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!(
            "{protocol:?}: accuracy {:.2}%, agreement with plaintext {agree}/{}, largest logit \
             difference {diff:.4}, {:.0} ms, {} bytes, {} rounds",
            100.0 * eval.accuracy,
            test.len(),
            eval.ms,
            eval.bytes,
            eval.rounds
        );
        let allowed = match protocol {
            Protocol::Pond => test.len() / 50,
            _ => 0,
        };
        if test.len() - agree > allowed {
            return Err(format!(
                "{protocol:?} disagrees with plaintext on {} images",
                test.len() - agree
            )
            .into());
        }
    }
    println!(
        "\nfirst image: label {}, the client's logits (plaintext) {}",
        test.labels[0],
        plain
            .map(|p| p.row(0).to_vec())
            .unwrap_or_default()
            .iter()
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

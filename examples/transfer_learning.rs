//! Transfer learning with a private fine-tune (MNIST digits 0-4 / 5-9), in one process.
//!
//! ```text
//! cargo run --release --example transfer_learning -- [--model C] [--pretrain-epochs E]
//!     [--epochs E] [--batch B] [--limit N] [--test-limit N] [--scratch-steps S]
//!     [--variants b,a,scratch] [--protocol securenn|pond] [--lr LR] [--transport inproc|quic]
//!     [--data DIR]
//! ```
//!
//! `--model P --protocol pond` fine-tunes P's classifier (dense, centred sigmoid, dense; the
//! sigmoid cross-entropy) under Pond, with P's sigmoid polynomial (degree 13 on [-16, 16]) and
//! a learning rate of 0.2 unless `--lr` (at 0.4 the private fine-tune diverges: see README).
//!
//! The model owner pre-trains the network in plaintext on the "public" digits 0-4 of the
//! 10,000-image training subset (five classes). A data owner holds the "private" digits 5-9
//! (relabelled 0-4). The feature layers (the convolutions) are frozen and the classifier (the
//! dense layers) is fine-tuned privately by the servers, starting from the pre-trained values
//! that the model owner secret-shares:
//!
//! - `a`: the data owner secret-shares its images and the frozen layers run on shares (the
//!   model owner secret-shares the frozen weights once, at init);
//! - `b`: the data owner runs the frozen layers itself in plaintext and secret-shares only the
//!   features: cheaper, but the frozen weights are then public to the data owner;
//! - `scratch`: every layer trained privately from seeded values (a short run of
//!   `--scratch-steps` steps, for its cost per step; its accuracy after a whole epoch is the
//!   plaintext one printed beside it, as private training of C matches plaintext).
//!
//! For each it prints the test accuracy on the digits 5-9 of the test set (private predictions
//! from the still-shared model), the same graph's plaintext accuracy, the largest difference
//! between the private and the plaintext classifier, and the median milliseconds, bytes and
//! communication rounds per step.
//!
//! With `--transport quic` each fine-tune (`a`, `b`) runs a second time with every party its
//! own `shareflow run-graph --training` process on 127.0.0.1 over QUIC (the plan of
//! `runtime::train::transfer::quic_plan`; build `shareflow` first: `cargo build --release -p
//! shareflow-tools`): the model owner reads the pre-trained weights from its own file, the
//! data owner its MNIST digits (and, in `b`, the frozen layers from its own file). The row
//! `a/quic` (`b/quic`) prints the same figures, its `max_diff` being the largest difference
//! between the classifier revealed over QUIC and the one revealed in process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use shareflow::compiler::{CompileOptions, PolyApprox, ProtocolKind};
use shareflow::graphs::transfer::{FrozenFeatures, Transfer};
use shareflow::graphs::zoo::{ModelKind, CLIENT, MODEL_OWNER};
use shareflow::runtime::data::{data_dir, Mnist, Split, Weights};
use shareflow::runtime::plain::train::{accuracy, TrainConfig};
use shareflow::runtime::train::transfer::{
    fine_tune_plain, fine_tune_private, plain_accuracy, pretrain, private_accuracy, quic_plan,
    train_from_scratch,
};
use shareflow::runtime::train::StepReport;
use shareflow_tools::commands::secure;
use shareflow_tools::commands::train_private::Trained;
use shareflow_tools::commands::train_quic::{run_session, shareflow_binary, Launch, TIMEOUT_S};

struct Args {
    model: ModelKind,
    pretrain_epochs: usize,
    epochs: usize,
    batch: usize,
    limit: usize,
    test_limit: usize,
    scratch_steps: usize,
    variants: Vec<String>,
    protocol: ProtocolKind,
    quic: bool,
    /// The learning rate of the pre-training and the fine-tune (default: 0.2 for P, else the
    /// recipe's 0.05).
    lr: Option<f32>,
    data: Option<PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        model: ModelKind::C,
        pretrain_epochs: 1,
        epochs: 1,
        batch: 32,
        limit: 1000,
        test_limit: 500,
        scratch_steps: 3,
        variants: vec!["b".into(), "a".into(), "scratch".into()],
        protocol: ProtocolKind::SecureNN,
        quic: false,
        lr: None,
        data: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let count = || {
            value
                .parse::<usize>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--model" => a.model = value.parse().map_err(|e| format!("{e}"))?,
            "--pretrain-epochs" => a.pretrain_epochs = count()?,
            "--epochs" => a.epochs = count()?,
            "--batch" => a.batch = count()?,
            "--limit" => a.limit = count()?,
            "--test-limit" => a.test_limit = count()?,
            "--scratch-steps" => a.scratch_steps = count()?,
            "--variants" => a.variants = value.split(',').map(str::to_string).collect(),
            "--protocol" => a.protocol = value.parse().map_err(|e| format!("{e}"))?,
            "--transport" => {
                a.quic = match value.as_str() {
                    "inproc" => false,
                    "quic" => true,
                    other => return Err(format!("--transport {other}: inproc or quic")),
                }
            }
            "--lr" => a.lr = Some(value.parse().map_err(|e| format!("--lr {value}: {e}"))?),
            "--data" => a.data = Some(PathBuf::from(value)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

/// The first `n` examples.
fn first(m: Mnist, n: usize) -> Mnist {
    let n = n.min(m.len());
    Mnist {
        images: m.images.slice(ndarray::s![..n, .., .., ..]).to_owned(),
        labels: m.labels[..n].to_vec(),
    }
}

/// Medians of the steps' milliseconds, and the bytes and rounds of the last step.
fn summary(steps: &[StepReport]) -> (f64, u64, u32) {
    let ms: Vec<f64> = steps.iter().map(|s| s.ms).collect();
    let median = secure::summary(&ms).0;
    let last = steps.last();
    (
        median,
        last.map_or(0, |s| s.bytes),
        last.map_or(0, |s| s.rounds),
    )
}

fn max_diff(a: &Weights, b: &Weights) -> f32 {
    a.arrays
        .iter()
        .filter_map(|(name, x)| b.arrays.get(name).map(|y| (x, y)))
        .flat_map(|(x, y)| x.iter().zip(y.iter()).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

/// The fine-tune of `frozen` with every party its own process over QUIC: the weights the model
/// owner reveals (the classifier), the data owner's logits of `test`, the step figures.
#[allow(clippy::too_many_arguments)]
fn over_quic(
    t: Transfer,
    frozen: FrozenFeatures,
    pretrained: &Weights,
    dir: &Path,
    (train, test): (usize, usize),
    cfg: &TrainConfig,
    (protocol, options): (ProtocolKind, CompileOptions),
) -> Result<Trained, Box<dyn std::error::Error>> {
    let plan = quic_plan(
        t,
        frozen,
        (5, 5),
        (train, test),
        cfg,
        protocol,
        options,
        500,
        true,
    )?;
    // each party's own weights file: the model owner's pre-trained network, the data owner's
    // frozen layers (variant b only)
    let files = tempfile::tempdir()?;
    let owner = files.path().join("pretrained.npz");
    pretrained.save(&owner)?;
    let mut weights = HashMap::from([(MODEL_OWNER.to_string(), owner)]);
    if frozen == FrozenFeatures::AtOwner {
        let mut layers = Weights::default();
        for p in t.feature_params() {
            layers
                .arrays
                .insert(p.name.clone(), pretrained.get(&p.name, &p.shape)?.clone());
        }
        let path = files.path().join("frozen.npz");
        layers.save(&path)?;
        weights.insert(CLIENT.to_string(), path);
    }
    let launch = Launch {
        data: std::path::absolute(dir)?,
        weights,
        timeout_s: TIMEOUT_S,
        exe: Some(shareflow_binary()?),
        ..Launch::default()
    };
    Ok(run_session(&plan, &launch)?)
}

fn run(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    let dir = data_dir(a.data);
    let train = Mnist::load(&dir, Split::Train, None)?;
    let test = Mnist::load(&dir, Split::Test, None)?;
    let public = train.digits(0, 5);
    let private = first(train.digits(5, 5), a.limit);
    let public_test = test.digits(0, 5);
    let private_test = first(test.digits(5, 5), a.test_limit);
    let t = Transfer {
        kind: a.model,
        classes: 5,
    };
    let mut options = CompileOptions::default();
    let mut lr = TrainConfig::default().lr;
    if a.model == ModelKind::P {
        // P's sigmoid polynomial (as `shareflow train --model P` chooses it) and a learning
        // rate at which the loss on shares stays inside the polynomial's interval.
        options.sigmoid = PolyApprox {
            interval: 16.0,
            degree: 13,
        };
        lr = 0.2;
    }
    let lr = a.lr.unwrap_or(lr);
    let pre_cfg = TrainConfig {
        epochs: a.pretrain_epochs,
        lr,
        ..TrainConfig::default()
    };
    let cfg = TrainConfig {
        epochs: a.epochs,
        batch: a.batch,
        lr,
        ..TrainConfig::default()
    };
    println!(
        "network {} with 5 classes; pre-training in plaintext on {} images of the digits 0-4 \
         ({} epochs, batch {})",
        a.model,
        public.len(),
        pre_cfg.epochs,
        pre_cfg.batch
    );
    let started = Instant::now();
    let pretrained = pretrain(t, &public, &pre_cfg, |_, _| {})?;
    println!(
        "pre-trained in {:.1} s: {:.2}% on the {} test digits 0-4",
        started.elapsed().as_secs_f64(),
        100.0 * plain_accuracy(t, &pretrained, &public_test, 500)?,
        public_test.len()
    );
    println!(
        "fine-tuning on {} private images of the digits 5-9 ({} epochs, batch {}, {}); test on {} \
         digits 5-9",
        private.len(),
        cfg.epochs,
        cfg.batch,
        a.protocol.name(),
        private_test.len()
    );
    println!(
        "variant  steps  accuracy  plaintext  max_diff  ms/step  owner_ms/step  bytes/step  rounds/step"
    );
    for v in &a.variants {
        let frozen = match v.as_str() {
            "a" => FrozenFeatures::OnShares,
            "b" => FrozenFeatures::AtOwner,
            "scratch" => {
                let mut steps = Vec::new();
                let mut model = train_from_scratch(
                    t,
                    &private,
                    &cfg,
                    a.protocol,
                    options,
                    Some(a.scratch_steps),
                    |r| steps.push(r),
                )?;
                let (ms, bytes, rounds) = summary(&steps);
                let acc = private_accuracy(
                    &mut model,
                    t,
                    FrozenFeatures::OnShares,
                    &pretrained,
                    &private_test,
                    cfg.batch,
                )?;
                let plain = pretrain(t, &private, &cfg, |_, _| {})?;
                println!(
                    "{v:>7}  {:>5}  {:>7.2}%  {:>8.2}%  {:>8}  {:>7.0}  {:>13}  {:>10}  {:>11}",
                    steps.len(),
                    100.0 * acc,
                    100.0 * plain_accuracy(t, &plain, &private_test, 500)?,
                    "-",
                    ms,
                    "-",
                    bytes,
                    rounds
                );
                continue;
            }
            other => return Err(format!("unknown variant {other} (a, b, scratch)").into()),
        };
        let mut steps = Vec::new();
        let mut owner_ms = Vec::new();
        let mut model = fine_tune_private(
            t,
            frozen,
            &pretrained,
            &private,
            &cfg,
            a.protocol,
            options,
            None,
            |r, o| {
                steps.push(r);
                owner_ms.push(o);
            },
        )?;
        let (ms, bytes, rounds) = summary(&steps);
        owner_ms.sort_by(f64::total_cmp);
        let owner = owner_ms.get(owner_ms.len() / 2).copied().unwrap_or(0.0);
        let acc = private_accuracy(&mut model, t, frozen, &pretrained, &private_test, 500)?;
        let revealed = model.reveal()?;
        let plain = fine_tune_plain(t, frozen, &pretrained, &private, &cfg, None)?;
        let mut tuned = pretrained.clone();
        tuned.arrays.extend(plain.arrays.clone());
        println!(
            "{v:>7}  {:>5}  {:>7.2}%  {:>8.2}%  {:>8.4}  {:>7.0}  {:>13.1}  {:>10}  {:>11}",
            steps.len(),
            100.0 * acc,
            100.0 * plain_accuracy(t, &tuned, &private_test, 500)?,
            max_diff(&revealed, &plain),
            ms,
            owner,
            bytes,
            rounds
        );
        if a.quic {
            let q = over_quic(
                t,
                frozen,
                &pretrained,
                &dir,
                (private.len(), private_test.len()),
                &cfg,
                (a.protocol, options),
            )?;
            let quic_weights = q.weights.unwrap_or_default();
            let mut tuned = pretrained.clone();
            tuned.arrays.extend(quic_weights.arrays.clone());
            println!(
                "{:>7}  {:>5}  {:>7.2}%  {:>8.2}%  {:>8.4}  {:>7.0}  {:>13}  {:>10}  {:>11}",
                format!("{v}/quic"),
                q.step_ms.len(),
                100.0 * accuracy(&q.logits, &private_test.labels),
                100.0 * plain_accuracy(t, &tuned, &private_test, 500)?,
                max_diff(&quic_weights, &revealed),
                secure::summary(&q.step_ms).0,
                "-",
                q.step_bytes,
                q.step_rounds
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("transfer_learning: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("transfer_learning: {e}");
            ExitCode::FAILURE
        }
    }
}

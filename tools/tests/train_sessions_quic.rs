//! Training sessions other than a zoo network's over QUIC, every party its own `shareflow
//! run-graph --training` process: joint training (rows and columns, three owners, each owner's
//! process reading only its own part of the data) and the transfer-learning fine-tune (the
//! frozen layers at the data owner, or on shares), a few steps on slices of MNIST. Each ends
//! with the weights and the test predictions of the same session in process, up to fixed-point
//! noise (the two runs draw their own randomness).

#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::path::PathBuf;

use ndarray::{Array2, Axis};
use shareflow_compiler::{CompileOptions, ProtocolKind};
use shareflow_graphs::joint::{Joint, Split};
use shareflow_graphs::transfer::{FrozenFeatures, Transfer};
use shareflow_graphs::zoo::{ModelKind, CLIENT, MODEL_OWNER};
use shareflow_runtime::data::{data_dir, Mnist, Split as DataSplit, Weights};
use shareflow_runtime::plain::train::TrainConfig;
use shareflow_runtime::train::quic::TrainingPlan;
use shareflow_runtime::train::{joint, transfer};
use shareflow_tools::commands::train_private::Trained;
use shareflow_tools::commands::train_quic::{run_session, Launch};

const SHAREFLOW: &str = env!("CARGO_BIN_EXE_shareflow");
/// Steps of every session.
const STEPS: usize = 2;

/// One QUIC session at a time: the loopback clusters take ports the OS reports free, which two
/// clusters made at once could both be given.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn session(plan: &TrainingPlan, launch: &Launch) -> Trained {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let trained = run_session(plan, launch).unwrap();
    assert_eq!(trained.step_ms.len(), STEPS);
    trained
}

fn launch(weights: HashMap<String, PathBuf>) -> Launch {
    Launch {
        data: std::path::absolute(data_dir(None)).unwrap(),
        weights,
        timeout_s: 60.0,
        exe: Some(PathBuf::from(SHAREFLOW)),
        ..Launch::default()
    }
}

fn run(mut plan: TrainingPlan, weights: HashMap<String, PathBuf>) -> Trained {
    plan.stop_after = Some(STEPS);
    session(&plan, &launch(weights))
}

fn max_diff(a: &Weights, b: &Weights) -> f32 {
    assert_eq!(
        a.arrays.keys().collect::<std::collections::BTreeSet<_>>(),
        b.arrays.keys().collect()
    );
    a.arrays
        .iter()
        .flat_map(|(n, x)| x.iter().zip(b.arrays[n].iter()).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

fn argmax(logits: &Array2<f32>) -> Vec<usize> {
    logits
        .axis_iter(Axis(0))
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
                .0
        })
        .collect()
}

/// The QUIC session's predictions agree with the in-process ones on all but one image at most
/// (a near-tie may flip under fixed-point noise), and their logits are close.
fn same_predictions(quic: &Array2<f32>, inproc: &Array2<f32>) {
    assert_eq!(quic.dim(), inproc.dim());
    let (a, b) = (argmax(quic), argmax(inproc));
    let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert!(differ <= 1, "{differ} of {} predictions differ", a.len());
    let d = (quic - inproc).iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(d < 0.05, "logits differ by {d}");
}

fn cfg() -> TrainConfig {
    TrainConfig {
        epochs: 1,
        batch: 24,
        ..TrainConfig::default()
    }
}

fn joint_session(split: Split) {
    let j = Joint {
        kind: ModelKind::A,
        owners: 3,
        split,
    };
    let cfg = cfg();
    let dir = data_dir(None);
    let data = Mnist::load(&dir, DataSplit::Train, Some(120)).unwrap();
    let test = Mnist::load(&dir, DataSplit::Test, Some(16)).unwrap();
    let options = CompileOptions::default();
    let protocol = ProtocolKind::SecureNN;
    let mut model =
        joint::train_private(&j, &data, &cfg, protocol, options, Some(STEPS), |_| {}).unwrap();
    let logits = model.predict(&test.images.clone().into_dyn(), 8).unwrap();
    let weights = model.reveal().unwrap();
    let plan =
        joint::quic_plan(&j, data.len(), test.len(), &cfg, protocol, options, 8, true).unwrap();
    // every owner reads only its own part
    for (k, owner) in plan.owners.iter().enumerate() {
        assert_eq!(owner.party, j.owner_names()[k]);
    }
    let q = run(plan, HashMap::new());
    let d = max_diff(q.weights.as_ref().unwrap(), &weights);
    assert!(d < 2e-3, "{split:?}: the weights differ by {d}");
    same_predictions(&q.logits, &logits);
}

#[test]
fn joint_rows_over_quic_matches_in_process() {
    joint_session(Split::Rows);
}

#[test]
fn joint_columns_over_quic_matches_in_process() {
    joint_session(Split::Columns);
}

fn transfer_session(frozen: FrozenFeatures) {
    let t = Transfer {
        kind: ModelKind::C,
        classes: 5,
    };
    let dir = data_dir(None);
    let train = Mnist::load(&dir, DataSplit::Train, Some(600)).unwrap();
    let test = Mnist::load(&dir, DataSplit::Test, Some(200)).unwrap();
    let public = train.digits(0, 5);
    let pre = TrainConfig {
        epochs: 1,
        batch: 32,
        ..TrainConfig::default()
    };
    let pretrained = transfer::pretrain(t, &public, &pre, |_, _| {}).unwrap();
    let private = train.digits(5, 5);
    let test = test.digits(5, 5);
    let test = Mnist {
        images: test.images.slice(ndarray::s![..8, .., .., ..]).to_owned(),
        labels: test.labels[..8].to_vec(),
    };
    let cfg = TrainConfig { batch: 8, ..cfg() };
    let (protocol, options) = (ProtocolKind::SecureNN, CompileOptions::default());
    let mut model = transfer::fine_tune_private(
        t,
        frozen,
        &pretrained,
        &private,
        &cfg,
        protocol,
        options,
        Some(STEPS),
        |_, _| {},
    )
    .unwrap();
    let examples = match frozen {
        FrozenFeatures::OnShares => test.images.clone().into_dyn(),
        FrozenFeatures::AtOwner => {
            transfer::features(t, &pretrained, &test.images.clone().into_dyn(), 8).unwrap()
        }
    };
    let logits = model.predict(&examples, 8).unwrap();
    let weights = model.reveal().unwrap();
    let plan = transfer::quic_plan(
        t,
        frozen,
        (5, 5),
        (private.len(), test.len()),
        &cfg,
        protocol,
        options,
        8,
        true,
    )
    .unwrap();
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("pretrained.npz");
    pretrained.save(&path).unwrap();
    let mut given = HashMap::from([(MODEL_OWNER.to_string(), path.clone())]);
    if frozen == FrozenFeatures::AtOwner {
        given.insert(CLIENT.to_string(), path);
    }
    // the data owner reads its digits 5-9 of the first 600 training images: the plan's
    // examples of the whole file are the same ones
    let mut plan = plan;
    plan.owners[0].examples = (0, private.len());
    plan.test.examples = (0, test.len());
    let q = run_plan_limited(plan, given, 600, 200);
    let d = max_diff(q.weights.as_ref().unwrap(), &weights);
    assert!(d < 2e-3, "{frozen:?}: the classifier differs by {d}");
    same_predictions(&q.logits, &logits);
}

/// The plan with the data owner's files limited to the first `train` and `test` images of
/// MNIST, as `.npz` files in its own directory (the digits are taken from them).
fn run_plan_limited(
    mut plan: TrainingPlan,
    weights: HashMap<String, PathBuf>,
    train: usize,
    test: usize,
) -> Trained {
    let dir = tempfile::tempdir().unwrap();
    for (split, n, name) in [
        (DataSplit::Train, train, "train.npz"),
        (DataSplit::Test, test, "test.npz"),
    ] {
        let m = Mnist::load(&data_dir(None), split, Some(n)).unwrap();
        let mut w = Weights::default();
        w.arrays.insert("images".into(), m.images.into_dyn());
        let labels: Vec<f32> = m.labels.iter().map(|&l| f32::from(l)).collect();
        w.arrays.insert(
            "labels".into(),
            ndarray::ArrayD::from_shape_vec(vec![n], labels).unwrap(),
        );
        w.save(&dir.path().join(name)).unwrap();
    }
    use shareflow_runtime::train::owner_data::DataFile;
    plan.owners[0].file = DataFile::Numpy {
        file: "train.npz".into(),
    };
    plan.test.file = DataFile::Numpy {
        file: "test.npz".into(),
    };
    plan.stop_after = Some(STEPS);
    let mut l = launch(weights);
    l.party_data
        .insert(CLIENT.to_string(), dir.path().to_path_buf());
    session(&plan, &l)
}

#[test]
fn transfer_features_at_owner_over_quic_matches_in_process() {
    transfer_session(FrozenFeatures::AtOwner);
}

#[test]
fn transfer_on_shares_over_quic_matches_in_process() {
    transfer_session(FrozenFeatures::OnShares);
}

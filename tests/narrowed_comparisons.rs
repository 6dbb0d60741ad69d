//! SecureNN's comparisons narrowed from a bound the model owner computes
//! (`compiler::bounds`): the cost report still equals the measured traffic, predictions agree
//! with plaintext, the rounds are unchanged and the bytes fewer; and the programs refuse what
//! the bound did not assume (an image outside the declared range, other weights).

use std::collections::HashMap;
use std::time::Duration;

use ndarray::{ArrayD, Axis};
use shareflow::compiler::bounds::Narrowing;
use shareflow::compiler::serving::default_persistent;
use shareflow::compiler::{
    compile_serving, compile_serving_narrowed, verify_serving, CompileOptions, CostReport,
    ProtocolKind, ServingGraph,
};
use shareflow::graphs::zoo::{ModelKind, ZooModel, CLIENT, IMAGE, LOGITS, MODEL_OWNER};
use shareflow::runtime::data::{data_dir, models_dir, Mnist, Split, Weights};
use shareflow::runtime::exec::{InProcessRun, ServingSession};
use shareflow::runtime::plain::train::predict;

type Inputs = HashMap<String, HashMap<String, ArrayD<f32>>>;

const TIMEOUT: Duration = Duration::from_secs(120);

fn weights(kind: ModelKind) -> Weights {
    let path = models_dir().join(format!("{}.npz", kind.to_string().to_lowercase()));
    Weights::load(&path).unwrap()
}

fn owner(w: &Weights) -> Inputs {
    HashMap::from([(
        MODEL_OWNER.to_string(),
        w.arrays.clone().into_iter().collect(),
    )])
}

fn client(images: ArrayD<f32>) -> Inputs {
    HashMap::from([(
        CLIENT.to_string(),
        HashMap::from([(IMAGE.to_string(), images)]),
    )])
}

/// Network `kind` at `batch`, narrowed for images in [0, 1] and the committed weights.
fn narrowed(kind: ModelKind, batch: usize, w: &Weights) -> ServingGraph {
    let graph = ZooModel::build(kind, batch).unwrap().graph;
    let options = CompileOptions::default();
    let values = w.arrays.clone().into_iter().collect();
    let ranges = HashMap::from([(IMAGE.to_string(), (0.0, 1.0))]);
    let n = Narrowing::analyse(&graph, &options, &values, &ranges).unwrap();
    assert!(n.comparisons.iter().all(|c| c.bits < 64), "{n:?}");
    let persistent = default_persistent(&graph);
    compile_serving_narrowed(
        &graph,
        ProtocolKind::SecureNN,
        options,
        &persistent,
        Some(&n),
    )
    .unwrap()
}

fn assert_measured(cost: &CostReport, run: &InProcessRun, what: &str) {
    assert_eq!(cost.rounds, run.rounds(), "{what}: rounds");
    assert_eq!(cost.bytes, run.bytes(), "{what}: bytes");
    let sent: u64 = run.parties.iter().map(|p| p.metrics.bytes_sent).sum();
    assert_eq!(cost.bytes, sent, "{what}: bytes sent");
}

fn argmax_rows(logits: &ArrayD<f32>) -> Vec<usize> {
    logits
        .axis_iter(Axis(0))
        .map(|row| (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b }))
        .collect()
}

#[test]
fn narrowed_c_costs_what_it_reports_and_agrees_with_plaintext() {
    let kind = ModelKind::C;
    let w = weights(kind);
    let test = Mnist::load(&data_dir(None), Split::Test, Some(50)).unwrap();
    // One image at a time: the report equals the traffic, with fewer bytes and the same
    // rounds (exact or narrowed, the last ReLU's sign reuses the truncation's opening).
    let one = narrowed(kind, 1, &w);
    verify_serving(&one).unwrap();
    let exact = compile_serving(
        &ZooModel::build(kind, 1).unwrap().graph,
        ProtocolKind::SecureNN,
        CompileOptions::default(),
    )
    .unwrap();
    let cost = one.predict.cost();
    assert_eq!(cost.rounds, exact.predict.cost().rounds);
    assert!(
        cost.bytes < exact.predict.cost().bytes * 6 / 10,
        "{} bytes narrowed, {} exact",
        cost.bytes,
        exact.predict.cost().bytes
    );
    assert_eq!(cost.comparisons.len(), 5, "{:?}", cost.comparisons);
    assert_eq!(cost.assumptions.len(), 9, "{:?}", cost.assumptions);
    let mut session = ServingSession::new(one, TIMEOUT).unwrap();
    assert_measured(
        &session.graph().setup.cost(),
        &session.setup(&owner(&w)).unwrap(),
        "setup",
    );
    for i in 0..2 {
        let run = session.predict(&client(test.batch(i, i + 1))).unwrap();
        assert_measured(&cost, &run, &format!("prediction {i}"));
    }
    // 50 images in one batch: every prediction as in plaintext.
    let images = test.images.clone().into_dyn();
    let mut session = ServingSession::new(narrowed(kind, 50, &w), TIMEOUT).unwrap();
    session.setup(&owner(&w)).unwrap();
    let run = session.predict(&client(images.clone())).unwrap();
    let secure = run.float(CLIENT, LOGITS).unwrap().clone();
    let plain = predict(kind, &w, &images, 50).unwrap().into_dyn();
    assert_eq!(argmax_rows(&secure), argmax_rows(&plain));
}

#[test]
fn an_image_outside_the_declared_range_is_refused() {
    let w = weights(ModelKind::A);
    let test = Mnist::load(&data_dir(None), Split::Test, Some(1)).unwrap();
    let mut session = ServingSession::new(narrowed(ModelKind::A, 1, &w), TIMEOUT).unwrap();
    session.setup(&owner(&w)).unwrap();
    // Scaled by 30,000 its hidden values pass every narrowed width.
    let image = test.batch(0, 1).mapv(|v| v * 30000.0);
    let e = session.predict(&client(image)).unwrap_err().to_string();
    assert!(
        e.contains("\"image\"") && e.contains("[0, 1]") && e.contains("refused"),
        "{e}"
    );
    // In range it still runs.
    session.predict(&client(test.batch(0, 1))).unwrap();
}

#[test]
fn weights_other_than_those_bounded_are_refused() {
    let w = weights(ModelKind::A);
    let graph = narrowed(ModelKind::A, 1, &w);
    let mut other = w.clone();
    other
        .arrays
        .get_mut("dense1/kernel")
        .unwrap()
        .mapv_inplace(|v| v * 1e4);
    let mut session = ServingSession::new(graph, TIMEOUT).unwrap();
    let e = session.setup(&owner(&other)).unwrap_err().to_string();
    assert!(e.contains("dense1/kernel") && e.contains("SHA-256"), "{e}");
}

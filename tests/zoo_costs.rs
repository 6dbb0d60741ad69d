//! The static cost report of networks A-D equals what the runtime measures, exactly: rounds,
//! and bytes and messages per ordered party pair. With persistent weights, every prediction
//! costs what the per-prediction program's report says, and saves at least the weights'
//! masking traffic.
//!
//! Pond compiles A and D (B and C need max pooling). SecureNN is checked on every network it
//! compiles; the others are reported on stderr and skipped.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::max_abs_diff;
use ndarray::ArrayD;
use shareflow::compiler::cost::entry_bytes;
use shareflow::compiler::{
    compile, compile_serving, CompileError, CompileOptions, CompiledGraph, CostReport, ProtocolKind,
};
use shareflow::graphs::zoo::{ModelKind, ZooModel, CLIENT, IMAGE, LOGITS, MODEL_OWNER};
use shareflow::ops::ValueKind;
use shareflow::runtime::data::{data_dir, models_dir, Mnist, Split, Weights};
use shareflow::runtime::exec::{run_in_process, InProcessRun, Plan, ServingSession};

type Inputs = HashMap<String, HashMap<String, ArrayD<f32>>>;

const TIMEOUT: Duration = Duration::from_secs(60);

fn weights(kind: ModelKind) -> Inputs {
    let path = models_dir().join(format!("{}.npz", kind.to_string().to_lowercase()));
    let w = Weights::load(&path).unwrap();
    HashMap::from([(MODEL_OWNER.to_string(), w.arrays.into_iter().collect())])
}

fn image(test: &Mnist, i: usize) -> Inputs {
    HashMap::from([(
        CLIENT.to_string(),
        HashMap::from([(IMAGE.to_string(), test.batch(i, i + 1))]),
    )])
}

fn both(a: &Inputs, b: &Inputs) -> Inputs {
    a.iter()
        .chain(b)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The compiled network, or `None` (reported) if the protocol does not lower one of its ops.
fn compiled(kind: ModelKind, protocol: ProtocolKind) -> Option<CompiledGraph> {
    let zoo = ZooModel::build(kind, 1).unwrap();
    match compile(&zoo.graph, protocol, CompileOptions::default()) {
        Ok(g) => Some(g),
        Err(e @ CompileError::Unsupported { .. }) => {
            eprintln!("network {kind} under {}: skipped: {e}", protocol.name());
            None
        }
        Err(e) => panic!("network {kind} under {}: {e}", protocol.name()),
    }
}

fn run(g: &CompiledGraph, inputs: &Inputs) -> InProcessRun {
    let plans: Vec<Plan> = g.programs.iter().map(|p| Plan::new(p).unwrap()).collect();
    run_in_process(g, &plans, inputs, TIMEOUT).unwrap()
}

/// Rounds, total bytes, and bytes and messages of every ordered pair are equal.
fn assert_measured(cost: &CostReport, run: &InProcessRun, what: &str) {
    assert_eq!(cost.rounds, run.rounds(), "{what}: rounds");
    assert_eq!(cost.bytes, run.bytes(), "{what}: bytes");
    let mut measured = Vec::new();
    for p in &run.parties {
        for peer in &p.metrics.peers {
            if peer.messages_sent > 0 {
                measured.push((
                    p.metrics.party.clone(),
                    peer.peer.clone(),
                    peer.bytes_sent,
                    peer.messages_sent,
                ));
            }
        }
    }
    let mut predicted: Vec<_> = cost
        .links
        .iter()
        .map(|l| (l.from.clone(), l.to.clone(), l.bytes, l.messages))
        .collect();
    measured.sort();
    predicted.sort();
    assert_eq!(
        predicted, measured,
        "{what}: per party pair (from, to, bytes, messages)"
    );
}

fn check_network(kind: ModelKind, protocol: ProtocolKind, test: &Mnist) {
    let Some(g) = compiled(kind, protocol) else {
        return;
    };
    let what = format!("network {kind} under {}", protocol.name());
    let r = run(&g, &both(&weights(kind), &image(test, 0)));
    assert_measured(&g.cost(), &r, &what);
    eprintln!(
        "{what}: {} rounds, {} bytes (static = measured)",
        g.rounds,
        r.bytes()
    );
}

#[test]
fn pond_cost_report_equals_measured_traffic() {
    let test = Mnist::load(&data_dir(None), Split::Test, Some(1)).unwrap();
    for kind in [ModelKind::A, ModelKind::D] {
        assert!(
            compiled(kind, ProtocolKind::Pond).is_some(),
            "Pond compiles network {kind}"
        );
        check_network(kind, ProtocolKind::Pond, &test);
    }
    for kind in [ModelKind::B, ModelKind::C] {
        let zoo = ZooModel::build(kind, 1).unwrap();
        let e = compile(&zoo.graph, ProtocolKind::Pond, CompileOptions::default()).unwrap_err();
        assert!(e.to_string().contains("maxpool"), "{e}");
    }
}

#[test]
fn securenn_cost_report_equals_measured_traffic() {
    let test = Mnist::load(&data_dir(None), Split::Test, Some(1)).unwrap();
    for kind in ModelKind::ALL {
        check_network(kind, ProtocolKind::SecureNN, &test);
    }
}

/// Bytes the servers exchange to open the masked weights of the products, once: each sends its
/// share of `w - b` to the other.
fn weight_masking_bytes(kind: ModelKind) -> u64 {
    let zoo = ZooModel::build(kind, 1).unwrap();
    zoo.params
        .iter()
        .filter(|p| p.name.ends_with("/kernel"))
        .map(|p| 2 * entry_bytes(ValueKind::Ring, &p.shape) as u64)
        .sum()
}

fn check_serving(kind: ModelKind, protocol: ProtocolKind, test: &Mnist) {
    let Some(plain) = compiled(kind, protocol) else {
        return;
    };
    let what = format!(
        "network {kind} under {} with persistent weights",
        protocol.name()
    );
    let zoo = ZooModel::build(kind, 1).unwrap();
    let serving = compile_serving(&zoo.graph, protocol, CompileOptions::default()).unwrap();
    assert_eq!(serving.persistent, vec![MODEL_OWNER.to_string()]);
    // A round fewer: the client's seeds are the setup's, so the dealer's correction of the
    // first product leaves in round 0.
    assert_eq!(serving.predict.rounds + 1, plain.rounds, "{what}: rounds");
    let predict_cost = serving.predict.cost();
    let mut session = ServingSession::new(serving.clone(), TIMEOUT).unwrap();
    let setup = session.setup(&weights(kind)).unwrap();
    assert_measured(&serving.setup.cost(), &setup, &format!("{what}: setup"));
    let owner = serving.predict.host(MODEL_OWNER).unwrap();
    assert!(
        serving.predict.programs[owner].instrs.is_empty(),
        "{what}: the model owner is offline"
    );
    for i in 0..3 {
        let inputs = image(test, i);
        let p = session.predict(&inputs).unwrap();
        assert_measured(&predict_cost, &p, &format!("{what}: prediction {i}"));
        let once = run(&plain, &both(&weights(kind), &inputs));
        let saved = once.bytes() - p.bytes();
        assert!(
            saved >= weight_masking_bytes(kind),
            "{what}: saves {saved} bytes, less than the weights' masking traffic {}",
            weight_masking_bytes(kind)
        );
        // The same function, up to the truncations' one-ulp errors, which the polynomial
        // activations amplify where they leave their interval (network D, image 1, under Pond).
        let (a, b) = (
            p.float(CLIENT, LOGITS).unwrap(),
            once.float(CLIENT, LOGITS).unwrap(),
        );
        let tol = 0.05 + 0.01 * b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            max_abs_diff(a, b) < tol,
            "{what}: logits differ by {} > {tol}",
            max_abs_diff(a, b)
        );
        if i == 0 {
            eprintln!(
                "{what}: setup {} bytes; per prediction {} rounds, {} bytes (without persistence {})",
                setup.bytes(),
                p.rounds(),
                p.bytes(),
                once.bytes()
            );
        }
    }
}

#[test]
fn persistent_weights_cost_what_the_prediction_report_says() {
    let test = Mnist::load(&data_dir(None), Split::Test, Some(3)).unwrap();
    for kind in [ModelKind::A, ModelKind::D] {
        check_serving(kind, ProtocolKind::Pond, &test);
    }
    for kind in ModelKind::ALL {
        check_serving(kind, ProtocolKind::SecureNN, &test);
    }
}

#[test]
fn a_prediction_before_setup_is_an_error() {
    let zoo = ZooModel::build(ModelKind::A, 1).unwrap();
    let serving =
        compile_serving(&zoo.graph, ProtocolKind::Pond, CompileOptions::default()).unwrap();
    let mut session = ServingSession::new(serving, TIMEOUT).unwrap();
    let test = Mnist::load(&data_dir(None), Split::Test, Some(1)).unwrap();
    let e = session.predict(&image(&test, 0)).unwrap_err().to_string();
    assert!(e.contains("setup"), "{e}");
}

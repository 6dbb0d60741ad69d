//! Issue 6's serving at the command level: `shareflow eval` sets the weights up once and then
//! runs one prediction per batch (same agreement as the single program, fewer bytes per batch),
//! and `run-graph --serving` runs setup once and then several predictions over the same QUIC
//! connections, each prediction sending exactly what the cost report of the prediction program
//! says. A party's store is stamped with its serving graph: another graph's store is refused.

#[allow(clippy::type_complexity)] // in the shared helpers
mod common;

use std::process::Command;
use std::time::Duration;

use common::{show, wait_all, Party, Session, RUN_GRAPH, SHAREFLOW};
use shareflow_compiler::{compile_serving, CompileOptions, ProtocolKind, ServingGraph};
use shareflow_graphs::zoo::{ModelKind, ZooModel, CLIENT, IMAGE, LOGITS, MODEL_OWNER};
use shareflow_runtime::data::npy::{read_npy, write_npy};
use shareflow_runtime::data::{data_dir, models_dir, Mnist, Split, Weights};
use shareflow_runtime::exec::serving::ServingParty;
use shareflow_runtime::exec::ServingSession;
use shareflow_runtime::plain::train::predict;

fn serving(model: ModelKind, batch: usize, protocol: ProtocolKind) -> ServingGraph {
    let zoo = ZooModel::build(model, batch).unwrap();
    compile_serving(&zoo.graph, protocol, CompileOptions::default()).unwrap()
}

fn eval(extra: &[&str]) -> serde_json::Value {
    let out = Command::new(SHAREFLOW)
        .args([
            "eval",
            "--model",
            "A",
            "--protocol",
            "pond",
            "--limit",
            "20",
            "--batch",
            "10",
            "--json",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn eval_with_persistent_weights_agrees_as_before_with_fewer_bytes_per_prediction() {
    let persist = eval(&[]);
    let single = eval(&["--no-persist"]);
    println!("persist: {persist}\nsingle: {single}");
    assert_eq!(persist["persist"], true);
    assert_eq!(single["persist"], false);
    assert_eq!(persist["agreement"], single["agreement"]);
    assert!(persist["agreement"].as_f64().unwrap() >= 0.95);
    assert_eq!(single["setup_bytes"], 0);

    // two batches of 10: one setup, then two predictions each costing the prediction program
    let g = serving(ModelKind::A, 10, ProtocolKind::Pond);
    assert_eq!(persist["setup_bytes"], g.setup.cost().bytes);
    assert_eq!(persist["bytes"], 2 * g.predict.cost().bytes);
    assert!(persist["setup_ms"].as_f64().unwrap() > 0.0);
    let (p, s) = (
        persist["bytes"].as_u64().unwrap(),
        single["bytes"].as_u64().unwrap(),
    );
    assert!(p < s, "persist {p} bytes, single program {s}");
}

#[test]
fn run_graph_serving_over_quic_runs_setup_once_then_predictions_at_their_cost() {
    let s = Session::new(ModelKind::A, 1);
    let g = serving(ModelKind::A, 1, ProtocolKind::SecureNN);
    assert_eq!(g.setup.parties, s.compiled.parties);
    let graph_path = s.path().join("serving.json");
    std::fs::write(&graph_path, serde_json::to_string(&g).unwrap()).unwrap();
    let test = Mnist::load(&data_dir(None), Split::Test, Some(2)).unwrap();
    let images = [test.batch(0, 1), test.batch(1, 2)];
    let paths: Vec<_> = (0..2)
        .map(|i| s.path().join(format!("img{i}.npy")))
        .collect();
    for (p, a) in paths.iter().zip(&images) {
        write_npy(p, a).unwrap();
    }
    let parties: Vec<Party> = g
        .setup
        .parties
        .iter()
        .map(|p| {
            let mut c = Command::new(RUN_GRAPH);
            c.args(["--serving", "--predictions", "2", "--party", p])
                .arg("--cluster")
                .arg(&s.cluster_path)
                .arg("--graph")
                .arg(&graph_path)
                .arg("--output-dir")
                .arg(s.out_dir(p))
                .args(["--timeout", "30"]);
            if p == MODEL_OWNER {
                c.arg("--weights").arg(&s.weights_path);
            }
            if p == CLIENT {
                for path in &paths {
                    c.arg("--input").arg(format!("{IMAGE}={}", path.display()));
                }
            }
            Party::spawn(p, c)
        })
        .collect();
    let exits = wait_all(parties, Duration::from_secs(120));
    assert!(exits.iter().all(|e| e.success()), "{}", show(&exits));

    let reports: Vec<_> = exits.iter().map(|e| e.report()).collect();
    let sum = |f: &dyn Fn(&serde_json::Value) -> &serde_json::Value| -> u64 {
        reports
            .iter()
            .map(|r| f(r)["bytes_sent"].as_u64().unwrap())
            .sum()
    };
    let (setup_cost, predict_cost) = (g.setup.cost(), g.predict.cost());
    assert_eq!(sum(&|r| &r["setup"]), setup_cost.bytes);
    for i in 0..2 {
        assert_eq!(reports[0]["predictions"].as_array().unwrap().len(), 2);
        let measured = sum(&|r| &r["predictions"][i]);
        println!(
            "prediction {i}: {measured} bytes (cost report {}); setup {} bytes",
            predict_cost.bytes, setup_cost.bytes
        );
        assert_eq!(measured, predict_cost.bytes);
    }
    let rounds = reports
        .iter()
        .map(|r| r["predictions"][1]["rounds"].as_u64().unwrap())
        .max()
        .unwrap();
    assert_eq!(rounds, u64::from(predict_cost.rounds));

    // the client's two predictions agree with plaintext
    let weights = Weights::load(&s.weights_path).unwrap();
    for (i, image) in images.iter().enumerate() {
        let got = read_npy(&s.out_dir(CLIENT).join(format!("{LOGITS}.{i}.npy"))).unwrap();
        let plain = predict(ModelKind::A, &weights, image, 1).unwrap();
        let argmax = |v: Vec<f32>| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
        assert_eq!(got.shape(), &[1, 10]);
        assert_eq!(
            argmax(got.iter().copied().collect()),
            argmax(plain.iter().copied().collect()),
            "prediction {i}: {got} vs plaintext {plain}"
        );
    }
}

#[test]
fn a_store_from_another_serving_graph_is_refused() {
    let a = serving(ModelKind::A, 1, ProtocolKind::SecureNN);
    let other = serving(ModelKind::A, 2, ProtocolKind::SecureNN);
    let weights = Weights::load(&models_dir().join("a.npz")).unwrap();
    let mut session = ServingSession::new(a.clone(), Duration::from_secs(30)).unwrap();
    let setup = std::collections::HashMap::from([(
        MODEL_OWNER.to_string(),
        weights.arrays.into_iter().collect(),
    )]);
    session.setup(&setup).unwrap();
    let stores = session.stores().to_vec();

    // the same graph takes them back
    ServingSession::with_stores(a.clone(), Duration::from_secs(30), stores.clone()).unwrap();
    ServingParty::with_store(&a, CLIENT, stores[0].clone()).unwrap();

    // another graph refuses them, saying why
    let err = ServingSession::with_stores(other.clone(), Duration::from_secs(30), stores.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("another serving graph"), "{err}");
    let err = ServingParty::with_store(&other, CLIENT, stores[0].clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("another serving graph"), "{err}");
    // and so does a store no setup filled
    let err = ServingParty::with_store(&a, CLIENT, Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not stamped"), "{err}");
}

#[test]
fn a_serving_session_that_fails_keeps_the_predictions_it_finished_and_names_the_round() {
    // the client goes on to a third prediction after the others stopped at two: the servers
    // refuse its batches of the third, and the client keeps the outputs of the first two; the
    // errors say which prediction's round failed
    let s = Session::new(ModelKind::A, 1);
    let g = serving(ModelKind::A, 1, ProtocolKind::SecureNN);
    let graph_path = s.path().join("serving.json");
    std::fs::write(&graph_path, serde_json::to_string(&g).unwrap()).unwrap();
    let parties: Vec<Party> = g
        .setup
        .parties
        .iter()
        .map(|p| {
            let n = if p == CLIENT { "3" } else { "2" };
            let mut c = Command::new(RUN_GRAPH);
            c.args(["--serving", "--predictions", n, "--party", p])
                .arg("--cluster")
                .arg(&s.cluster_path)
                .arg("--graph")
                .arg(&graph_path)
                .arg("--output-dir")
                .arg(s.out_dir(p))
                .args(["--timeout", "30"]);
            if p == MODEL_OWNER {
                c.arg("--weights").arg(&s.weights_path);
            }
            if p == CLIENT {
                c.arg("--input")
                    .arg(format!("{IMAGE}={}", s.image_path.display()));
            }
            Party::spawn(p, c)
        })
        .collect();
    let exits = wait_all(parties, Duration::from_secs(120));
    let client = exits.iter().find(|e| e.name == CLIENT).unwrap();
    assert!(!client.success(), "{}", show(&exits));
    let mut files: Vec<String> = std::fs::read_dir(s.out_dir(CLIENT))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [format!("{LOGITS}.0.npy"), format!("{LOGITS}.1.npy")],
        "{}",
        show(&exits)
    );
    assert_eq!(
        read_npy(&s.out_dir(CLIENT).join(format!("{LOGITS}.1.npy")))
            .unwrap()
            .shape(),
        &[1, 10]
    );
    // the round of the third prediction, in its parts
    assert!(
        exits
            .iter()
            .any(|e| e.stderr.contains("of prediction 2 (wire round")),
        "{}",
        show(&exits)
    );
}

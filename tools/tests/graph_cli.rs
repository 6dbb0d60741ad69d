//! A user's own model on the command line: the graph and weights that `shareflow import` writes
//! for the PyTorch export of network A, run with `--graph --weights`, give what `--onnx` gives
//! (eval, compile, inspect, dot, demo, bench over QUIC); `export-image` writes the MNIST
//! reader's images in the graphs' layout, which `run-graph` takes as they are; a graph or
//! weights file that breaks the rules is refused naming the field.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ndarray::{ArrayD, IxDyn};
use serde_json::Value;
use shareflow_compiler::CompileOptions;
use shareflow_graphs::zoo::{ModelKind, CLIENT, LOGITS};
use shareflow_runtime::data::npy::read_npy;
use shareflow_runtime::data::{data_dir, Mnist, Split, Weights};
use shareflow_tools::commands::eval::{evaluate, EvalArgs};
use shareflow_tools::commands::import::{self, ImportArgs};
use shareflow_tools::commands::network::Network;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../onnx/fixtures")
        .join(name)
}

/// `shareflow import torch_a.onnx` into `dir`: the graph (batch `batch`) and its weights.
fn imported(dir: &Path, batch: usize) -> (PathBuf, PathBuf) {
    let (graph, weights) = (dir.join("a.json"), dir.join("a.npz"));
    import::run(ImportArgs {
        onnx: fixture("torch_a.onnx"),
        out: graph.clone(),
        weights_out: Some(weights.clone()),
        batch,
        json: true,
    })
    .unwrap();
    (graph, weights)
}

/// Runs `shareflow ARGS` and returns its status, stdout and stderr.
fn shareflow(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shareflow"))
        .args(args)
        .env(
            "SHAREFLOW_DATA",
            std::path::absolute(data_dir(None)).unwrap(),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `shareflow ARGS --json`, which must succeed.
fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, out, err) = shareflow(&all);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn an_imported_graph_evaluates_as_its_onnx_model() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, weights) = imported(dir.path(), 1);
    let eval = |model: Network, weights: Option<PathBuf>, protocol: &str, batch: usize| {
        evaluate(&EvalArgs {
            model,
            protocol: protocol.into(),
            limit: Some(20),
            batch,
            data: None,
            weights,
            options: CompileOptions::default().into(),
            persist: true,
            json: true,
        })
        .unwrap()
        .json()
    };
    let user = Network::from_args(None, None, Some(&graph)).unwrap();
    assert_eq!(user.fixed_batch(), Some(1));
    let onnx = Network::from_args(None, Some(&fixture("torch_a.onnx")), None).unwrap();
    for protocol in ["plaintext", "securenn"] {
        let g = eval(user.clone(), Some(weights.clone()), protocol, 1);
        let o = eval(onnx.clone(), None, protocol, 20);
        assert_eq!(g["images"], 20);
        assert_eq!(g["accuracy"], o["accuracy"], "{protocol}: {g} {o}");
        assert_eq!(g["plaintext_accuracy"], o["plaintext_accuracy"]);
        if protocol == "securenn" {
            assert_eq!(g["agreement"].as_f64(), Some(1.0), "{g}");
            assert_eq!(o["agreement"].as_f64(), Some(1.0), "{o}");
            assert_eq!(g["rounds"], o["rounds"]);
            assert_eq!(g["rounds"], 11);
        }
    }
    // The same plaintext logits, image by image.
    let test = Mnist::load(&data_dir(None), Split::Test, Some(20)).unwrap();
    let w = user.weights(Some(weights.clone())).unwrap();
    let images = user.inputs(&test.images.clone().into_dyn()).unwrap();
    let a = user.predict_plain(&w, &images, 1, &mut |_, _| {}).unwrap();
    let onnx_w = onnx.weights(None).unwrap();
    let onnx_images = onnx.inputs(&test.images.clone().into_dyn()).unwrap();
    let b = onnx
        .predict_plain(&onnx_w, &onnx_images, 20, &mut |_, _| {})
        .unwrap();
    let diff = (&a - &b).iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(diff < 1e-4, "largest difference {diff}");
    // Weights are required to evaluate a graph, and a batch it was not written for refused.
    let e = user.weights(None).unwrap_err().to_string();
    assert!(e.contains("--weights"), "{e}");
    let e = eval_err(user.clone(), Some(weights.clone()), 20);
    assert!(
        e.contains("batches of exactly 1") && e.contains("--batch 1"),
        "{e}"
    );
}

fn eval_err(model: Network, weights: Option<PathBuf>, batch: usize) -> String {
    evaluate(&EvalArgs {
        model,
        protocol: "plaintext".into(),
        limit: Some(20),
        batch,
        data: None,
        weights,
        options: CompileOptions::default().into(),
        persist: true,
        json: true,
    })
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default()
}

#[test]
fn compile_inspect_and_dot_take_a_graph() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, weights) = imported(dir.path(), 2);
    let g = json(&[
        "compile",
        "--graph",
        s(&graph),
        "--protocol",
        "securenn",
        "--serving",
    ]);
    let o = json(&[
        "compile",
        "--onnx",
        s(&fixture("torch_a.onnx")),
        "--protocol",
        "securenn",
        "--serving",
        "--batch",
        "2",
    ]);
    // The graph's own batch is compile's default.
    assert_eq!(g["batch"], 2);
    assert_eq!(g["bytes"], o["bytes"]);
    assert_eq!(g["rounds"], o["rounds"]);
    assert_eq!(g["setup"]["bytes"], o["setup"]["bytes"]);
    let (ok, _, err) = shareflow(&[
        "compile",
        "--graph",
        s(&graph),
        "--protocol",
        "securenn",
        "--batch",
        "3",
    ]);
    assert!(!ok && err.contains("batches of exactly 2"), "{err}");

    let i = json(&["inspect", "--graph", s(&graph), "--weights", s(&weights)]);
    assert_eq!(i["parameters"], 118_282);
    assert_eq!(i["nodes"][0]["name"], "image");
    assert_eq!(i["nodes"][0]["shape"], serde_json::json!([2, 1, 28, 28]));

    let (ok, dot, err) = shareflow(&["dot", "--graph", s(&graph)]);
    assert!(ok, "{err}");
    assert!(
        dot.starts_with("digraph") && dot.contains("matmul"),
        "{dot}"
    );
    let (ok, dot, err) = shareflow(&["dot", "--graph", s(&graph), "--protocol", "securenn"]);
    assert!(ok && dot.contains("cluster"), "{err}");
}

#[test]
fn the_demo_predicts_with_a_graph_as_with_its_onnx_model() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, weights) = imported(dir.path(), 1);
    let g = json(&[
        "demo",
        "--graph",
        s(&graph),
        "--weights",
        s(&weights),
        "--index",
        "3",
        "--timeout",
        "120",
    ]);
    let o = json(&[
        "demo",
        "--onnx",
        s(&fixture("torch_a.onnx")),
        "--index",
        "3",
        "--timeout",
        "120",
    ]);
    assert_eq!(g["label"], 0);
    assert_eq!(g["predicted"], o["predicted"], "{g} {o}");
    assert_eq!(g["predicted"], g["label"]);
    assert_eq!(g["agreement"].as_f64(), Some(1.0));
    assert_eq!(g["bytes"], o["bytes"]);
    assert_eq!(g["bytes"], g["static_bytes"]);
}

#[test]
fn bench_runs_an_onnx_model_and_a_graph_over_quic() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, weights) = imported(dir.path(), 1);
    let onnx = fixture("torch_a.onnx");
    let shared = [
        "--protocol",
        "securenn",
        "--transport",
        "inproc,quic",
        "--reps",
        "1",
        "--limit",
        "20",
    ];
    let mut onnx_args = vec!["bench", "--onnx", s(&onnx), "--batch", "1"];
    onnx_args.extend(shared);
    let mut graph_args = vec!["bench", "--graph", s(&graph), "--weights", s(&weights)];
    graph_args.extend(shared);
    let (o, g) = (json(&onnx_args), json(&graph_args));
    for r in [&o, &g] {
        let rows = r["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2, "{r}");
        assert_eq!(rows[1]["transport"], "quic");
        for row in rows {
            assert_eq!(row["batch"], 1, "the graph's batch is bench's default");
            assert_eq!(row["images"], 20);
            assert_eq!(row["rounds"], 11);
            assert_eq!(row["agreement"].as_f64(), Some(1.0), "{row}");
            assert_eq!(row["per_party"].as_object().unwrap().len(), 5);
        }
        // In process and over QUIC the same traffic per prediction.
        assert_eq!(rows[0]["bytes"], rows[1]["bytes"]);
    }
    assert_eq!(o["rows"][1]["bytes"], g["rows"][1]["bytes"]);
    assert_eq!(o["rows"][0]["accuracy"], g["rows"][0]["accuracy"]);
    assert_eq!(g["rows"][0]["model"], s(&graph));
}

#[test]
fn export_image_writes_the_readers_images_which_run_graph_takes() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    let r = json(&[
        "export-image",
        "--index",
        "5",
        "--count",
        "3",
        "-o",
        s(&x),
        "--labels",
        s(&y),
    ]);
    assert_eq!(r["shape"], serde_json::json!([3, 28, 28, 1]));
    let test = Mnist::load(&data_dir(None), Split::Test, Some(8)).unwrap();
    assert_eq!(read_npy(&x).unwrap(), test.batch(5, 8));
    let labels: Vec<f32> = test.labels[5..8].iter().map(|&l| f32::from(l)).collect();
    assert_eq!(read_npy(&y).unwrap().into_raw_vec_and_offset().0, labels);

    // An existing file is replaced only with --force.
    let (ok, _, err) = shareflow(&["export-image", "--index", "0", "-o", s(&x)]);
    assert!(
        !ok && err.contains("exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(read_npy(&x).unwrap(), test.batch(5, 8), "left alone");
    json(&["export-image", "--index", "0", "-o", s(&x), "--force"]);
    assert_eq!(read_npy(&x).unwrap(), test.batch(0, 1));

    // In the input shape of a graph.
    let (graph, _) = imported(dir.path(), 1);
    let flat = dir.path().join("g.npy");
    let r = json(&[
        "export-image",
        "--index",
        "0",
        "-o",
        s(&flat),
        "--graph",
        s(&graph),
    ]);
    assert_eq!(r["shape"], serde_json::json!([1, 1, 28, 28]));

    // The exported image is a client's input file as it is: network A over QUIC.
    let session = common::Session::new(ModelKind::A, 1);
    let files = common::Files {
        image: Some(&x),
        ..Default::default()
    };
    let parties = session.spawn_all_with(|p| session.command_with(p, 60.0, files));
    let exits = common::wait_all(parties, Duration::from_secs(120));
    assert!(
        exits.iter().all(common::Exit::success),
        "{}",
        common::show(&exits)
    );
    let logits = read_npy(&session.out_dir(CLIENT).join(format!("{LOGITS}.npy"))).unwrap();
    let row: Vec<f32> = logits.iter().copied().collect();
    let digit = (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b });
    assert_eq!(digit, usize::from(test.labels[0]), "{row:?}");
}

#[test]
fn a_graph_or_weights_that_break_the_rules_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, weights) = imported(dir.path(), 1);
    let text = std::fs::read_to_string(&graph).unwrap();
    let mut cases = Vec::new();
    let edit = |from: &str, to: &str| {
        assert!(text.contains(from), "{from}");
        text.replacen(from, to, 1)
    };
    // the output renamed, the client's input renamed, the model owner's input moved to the
    // client, and a file that is no graph
    cases.push((
        edit("\"name\": \"logits\"\n", "\"name\": \"probs\"\n"),
        "output `probs`",
    ));
    cases.push((
        edit("\"name\": \"image\"\n", "\"name\": \"pixels\"\n"),
        "input `pixels`",
    ));
    cases.push((
        edit(
            "\"party\": 0,\n        \"name\": \"1.weight\"",
            "\"party\": 1,\n        \"name\": \"1.weight\"",
        ),
        "input `1.weight`",
    ));
    cases.push((text.replace("shareflow-graph", "other"), "format"));
    for (i, (bad, want)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.json"));
        std::fs::write(&path, bad).unwrap();
        let (ok, _, err) = shareflow(&["inspect", "--graph", s(&path)]);
        assert!(!ok, "case {i}");
        assert!(
            err.contains(want) && err.contains(&format!("bad{i}.json")),
            "case {i}: {err}"
        );
    }
    // Weights with an array missing, with one too many, or of another shape: named.
    let full = Weights::load(&weights).unwrap();
    let mut missing = full.clone();
    missing.arrays.remove("1.weight");
    let mut extra = full.clone();
    extra
        .arrays
        .insert("extra".into(), ArrayD::zeros(IxDyn(&[2])));
    let mut reshaped = full;
    reshaped
        .arrays
        .insert("1.bias".into(), ArrayD::zeros(IxDyn(&[64])));
    for (w, want) in [
        (missing, "no array `1.weight`"),
        (extra, "array `extra` is no input"),
        (reshaped, "array `1.bias` has shape [64]"),
    ] {
        let path = dir.path().join("w.npz");
        w.save(&path).unwrap();
        let (ok, _, err) = shareflow(&["inspect", "--graph", s(&graph), "--weights", s(&path)]);
        assert!(!ok && err.contains(want) && err.contains("w.npz"), "{err}");
    }
    // --graph without --weights cannot run.
    let (ok, _, err) = shareflow(&["eval", "--graph", s(&graph), "--limit", "2"]);
    assert!(!ok && err.contains("--weights"), "{err}");
    // The weights are fine.
    json(&["inspect", "--graph", s(&graph), "--weights", s(&weights)]);
}

//! `--onnx` on the tools: an imported PyTorch export of network A evaluated like the zoo's A,
//! in plaintext and under SecureNN, the Keras export of A in the QUIC demo, and `import`
//! writing a graph and weights that load back.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use shareflow_compiler::CompileOptions;
use shareflow_graphs::Graph;
use shareflow_runtime::data::{data_dir, Weights};
use shareflow_tools::commands::eval::{evaluate, EvalArgs};
use shareflow_tools::commands::import::{self, ImportArgs};
use shareflow_tools::commands::network::Network;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../onnx/fixtures")
        .join(name)
}

fn eval_args(model: Network, protocol: &str, limit: usize) -> EvalArgs {
    EvalArgs {
        model,
        protocol: protocol.into(),
        limit: Some(limit),
        batch: limit,
        data: None,
        weights: None,
        options: CompileOptions::default().into(),
        persist: true,
        json: true,
    }
}

#[test]
fn the_onnx_export_of_a_evaluates_as_the_zoos_a() {
    let onnx = Network::from_args(None, Some(&fixture("torch_a.onnx")), None).unwrap();
    let zoo = Network::from_args(Some("A".parse().unwrap()), None, None).unwrap();
    let plain = evaluate(&eval_args(onnx.clone(), "plaintext", 40))
        .unwrap()
        .json();
    let zoo_plain = evaluate(&eval_args(zoo, "plaintext", 40)).unwrap().json();
    assert_eq!(plain["accuracy"], zoo_plain["accuracy"]);
    let secure = evaluate(&eval_args(onnx, "securenn", 40)).unwrap().json();
    assert_eq!(secure["agreement"].as_f64(), Some(1.0), "{secure}");
    assert_eq!(secure["rounds"].as_u64(), Some(11), "{secure}");
    // Exactly one of --model, --onnx and --graph.
    assert!(Network::from_args(None, None, None).is_err());
}

#[test]
fn import_writes_a_graph_and_weights_that_load_back() {
    let dir = tempfile::tempdir().unwrap();
    let (out, weights_out) = (dir.path().join("b.json"), dir.path().join("b.npz"));
    import::run(ImportArgs {
        onnx: fixture("torch_b.onnx"),
        out: out.clone(),
        weights_out: Some(weights_out.clone()),
        batch: 2,
        json: true,
    })
    .unwrap();
    let graph = Graph::from_json(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let w = Weights::load(Path::new(&weights_out)).unwrap();
    assert_eq!(w.arrays["0.weight"].shape(), &[5, 5, 1, 16]);
    let params: usize = w.arrays.values().map(|a| a.len()).sum();
    assert_eq!(params, 33_542);
    assert!(graph.len() > 10);
}

#[test]
fn the_demo_runs_an_onnx_model_one_process_per_party() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shareflow"))
        .args(["demo", "--json", "--timeout", "120", "--onnx"])
        .arg(fixture("keras_a.onnx"))
        .arg("--data")
        .arg(std::path::absolute(data_dir(None)).unwrap())
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["agreement"].as_f64(), Some(1.0), "{r}");
    assert_eq!(r["label"].as_u64(), Some(7), "{r}");
    assert_eq!(r["predicted"].as_u64(), Some(7), "{r}");
    assert_eq!(r["bytes"], r["static_bytes"], "{r}");
}

//! `shareflow train` under SecureNN, in process and with every party a process over QUIC: the
//! same recipe gives the same model (up to fixed-point noise), the step's measured traffic is
//! the cost report's, and the temporary folder of the QUIC run is removed.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use shareflow_runtime::data::{data_dir, Weights};

fn train(transport: &str, out: &Path, tmp: &Path) -> Value {
    train_with(transport, out, tmp, &[])
}

fn train_with(transport: &str, out: &Path, tmp: &Path, extra: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_shareflow"))
        .args([
            "train",
            "--model",
            "A",
            "--protocol",
            "securenn",
            "--epochs",
            "1",
        ])
        .args([
            "--batch",
            "32",
            "--limit",
            "128",
            "--test-limit",
            "40",
            "--json",
        ])
        .args(["--reveal", "--force", "--transport", transport, "-o"])
        .arg(out)
        .arg("--data")
        .arg(std::path::absolute(data_dir(None)).unwrap())
        .args(extra)
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn quic_and_in_process_training_give_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let (a, b) = (dir.path().join("inproc.npz"), dir.path().join("quic.npz"));
    let inproc = train("inproc", &a, &tmp);
    let quic = train("quic", &b, &tmp);
    for r in [&inproc, &quic] {
        // the loss is neither revealed nor printed unless asked for
        assert!(r.get("loss").is_none(), "{r}");
        let per_party: u64 = r["per_party"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p["bytes_sent"].as_u64().unwrap())
            .sum();
        assert_eq!(r["bytes"].as_u64(), Some(per_party), "{r}");
        assert_eq!(r["bytes"], r["cost_bytes"], "{r}");
        assert_eq!(r["rounds"], r["cost_rounds"], "{r}");
        assert_eq!(r["agreement"].as_f64(), Some(1.0), "{r}");
    }
    assert_eq!(quic["transport"], "quic");
    assert_eq!(inproc["bytes"], quic["bytes"]);
    let worst = largest_difference(&a, &b);
    assert!(worst < 1e-3, "largest weight difference {worst}");
    // keys, the plan and the outputs of the QUIC run are gone
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

/// The largest weight difference between two saved models (infinite if their arrays differ).
fn largest_difference(a: &Path, b: &Path) -> f32 {
    let (wa, wb) = (Weights::load(a).unwrap(), Weights::load(b).unwrap());
    shareflow_runtime::federated::rounds::max_abs_diff(&wa, &wb)
}

#[test]
fn logits_revealed_to_the_data_owner_over_quic_give_the_in_process_model() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let (a, b) = (dir.path().join("inproc.npz"), dir.path().join("quic.npz"));
    let reveal = ["--reveal-logits-to", "client"];
    let inproc = train_with("inproc", &a, &tmp, &reveal);
    let quic = train_with("quic", &b, &tmp, &reveal);
    for r in [&inproc, &quic] {
        // the leak is named, and the step is the cheaper one (no softmax on shares)
        assert_eq!(r["reveals_per_step"][0], "logits [32, 10] to client", "{r}");
        assert_eq!(r["bytes"], r["cost_bytes"], "{r}");
        assert_eq!(r["rounds"], r["cost_rounds"], "{r}");
        assert_eq!(r["rounds"].as_u64(), Some(18), "{r}");
    }
    assert_eq!(inproc["bytes"], quic["bytes"]);
    let worst = largest_difference(&a, &b);
    assert!(worst < 1e-3, "largest weight difference {worst}");
}

#[test]
fn over_quic_the_model_owner_gives_the_first_weights_and_the_client_sees_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("client.npz");
    let first = shareflow_runtime::data::models_dir().join("a.npz");
    let output = Command::new(env!("CARGO_BIN_EXE_shareflow"))
        .args(["train", "--model", "A", "--protocol", "securenn"])
        .args(["--epochs", "1", "--batch", "32", "--limit", "64"])
        .args(["--test-limit", "200", "--transport", "quic", "--json"])
        .args(["--reveal-loss", "--reveal-to", "client", "--init"])
        .arg(&first)
        .arg("-o")
        .arg(&out)
        .arg("--data")
        .arg(std::path::absolute(data_dir(None)).unwrap())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r: Value = serde_json::from_slice(&output.stdout).unwrap();
    // two steps from the committed weights: still a trained network, with a small loss
    let loss = r["loss"].as_f64().unwrap();
    assert!(loss > 0.0 && loss < 1.0, "{r}");
    assert!(r["accuracy"].as_f64().unwrap() > 0.9, "{r}");
    assert_eq!(r["weights_to"], "client");
    assert_eq!(
        r["init"].as_str(),
        Some(first.display().to_string().as_str())
    );
    assert_eq!(Weights::load(&out).unwrap().arrays.len(), 6);

    // another network's weights are refused before anything starts, naming file and array
    let c = shareflow_runtime::data::models_dir().join("c.npz");
    let output = Command::new(env!("CARGO_BIN_EXE_shareflow"))
        .args([
            "train",
            "--model",
            "A",
            "--protocol",
            "securenn",
            "--transport",
            "quic",
        ])
        .args(["--limit", "64", "--batch", "32", "--init"])
        .arg(&c)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        err.contains("c.npz") && err.contains("dense1/kernel"),
        "{err}"
    );
}

//! `shareflow train` under SecureNN, in process and with every party a process over QUIC: the
//! same recipe gives the same model (up to fixed-point noise), the step's measured traffic is
//! the cost report's, and the temporary folder of the QUIC run is removed.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use shareflow_runtime::data::{data_dir, Weights};

fn train(transport: &str, out: &Path, tmp: &Path) -> Value {
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
        assert_eq!(r["step_bytes"], r["cost_step_bytes"], "{r}");
        assert_eq!(r["step_rounds"], r["cost_step_rounds"], "{r}");
        assert_eq!(r["agreement"].as_f64(), Some(1.0), "{r}");
    }
    assert_eq!(quic["transport"], "quic");
    assert_eq!(inproc["step_bytes"], quic["step_bytes"]);
    let (wa, wb) = (Weights::load(&a).unwrap(), Weights::load(&b).unwrap());
    let mut worst = 0f32;
    for (name, x) in &wa.arrays {
        for (p, q) in x.iter().zip(wb.arrays[name].iter()) {
            worst = worst.max((p - q).abs());
        }
    }
    assert!(worst < 1e-3, "largest weight difference {worst}");
    // keys, the plan and the outputs of the QUIC run are gone
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

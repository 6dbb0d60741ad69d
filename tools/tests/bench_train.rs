//! `shareflow bench --train`, run as a user would, on a small batch: the measured bytes and
//! rounds of a private training step are the step program's cost report, Pond is skipped with
//! a note, over QUIC as in process. Values only, never timing.

use std::process::{Command, Output};

use serde_json::Value;
use shareflow_runtime::data::data_dir;

fn bench_train(extra: &[&str]) -> Output {
    let data = std::path::absolute(data_dir(None)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_shareflow"))
        .args(["bench", "--train"])
        .arg("--data")
        .arg(data)
        .args(extra)
        .output()
        .expect("run shareflow bench --train")
}

#[test]
fn training_step_traffic_is_the_cost_report() {
    let out = bench_train(&["--model", "A", "--batch", "8", "--reps", "1", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["train"], true);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report}");
    let row = &rows[0];
    assert_eq!(row["model"], "A");
    assert_eq!(row["protocol"], "securenn");
    assert_eq!(row["transport"], "inproc");
    assert_eq!(row["batch"], 8);
    assert_eq!(row["reps"], 1);
    for f in [
        "median_ms",
        "min_ms",
        "max_ms",
        "plaintext_ms",
        "images_per_s",
    ] {
        assert!(row[f].is_number(), "field {f} missing in {row}");
    }
    let bytes = row["bytes"].as_u64().unwrap();
    let rounds = row["rounds"].as_u64().unwrap();
    assert!(bytes > 0 && rounds > 0, "{row}");
    assert_eq!(bytes, row["cost_bytes"].as_u64().unwrap(), "{row}");
    assert_eq!(rounds, row["cost_rounds"].as_u64().unwrap(), "{row}");
    assert!(row["init_bytes"].is_u64(), "{row}");
    // Pond has no softmax on shares: a note, not a row.
    let notes = report["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("A under pond: skipped")),
        "{notes:?}"
    );
}

#[test]
fn over_quic_the_step_traffic_is_the_cost_report_too() {
    let out = bench_train(&[
        "--model",
        "A",
        "--protocol",
        "securenn",
        "--transport",
        "inproc,quic",
        "--batch",
        "8",
        "--reps",
        "1",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let rows = report["rows"].as_array().unwrap();
    let transports: Vec<&str> = rows
        .iter()
        .map(|r| r["transport"].as_str().unwrap())
        .collect();
    assert_eq!(transports, ["inproc", "quic"], "{report}");
    for row in rows {
        assert_eq!(row["bytes"], row["cost_bytes"], "{row}");
        assert_eq!(row["rounds"], row["cost_rounds"], "{row}");
        assert!(row["median_ms"].as_f64().unwrap() > 0.0, "{row}");
        let parties = row["per_party"].as_object().unwrap();
        assert_eq!(parties.len(), 5, "{row}");
    }
    assert_eq!(rows[0]["bytes"], rows[1]["bytes"]);
}

#[test]
fn an_unknown_transport_is_refused() {
    let out = bench_train(&["--model", "A", "--transport", "tcp", "--json"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tcp"), "{err}");
}

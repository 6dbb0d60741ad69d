//! `shareflow bench`, run as a user would, on small settings: every DESIGN.md field is present
//! and the figures are plausible, in process and with one process per party over QUIC.

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_shareflow"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run shareflow bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

const FIELDS: [&str; 14] = [
    "model",
    "protocol",
    "transport",
    "batch",
    "images",
    "accuracy",
    "agreement",
    "kl",
    "median_ms",
    "min_ms",
    "max_ms",
    "bytes",
    "rounds",
    "per_party",
];

fn check_row(row: &Value, transport: &str, images: u64, reps: u64, serving: bool) {
    for f in FIELDS {
        assert!(!row[f].is_null(), "field {f} missing in {row}");
    }
    assert_eq!(row["model"], "A");
    assert_eq!(row["protocol"], "pond");
    assert_eq!(row["transport"], transport);
    assert_eq!(row["batch"], 1);
    assert_eq!(row["images"], images);
    assert_eq!(row["reps"], reps);
    let f = |k: &str| row[k].as_f64().unwrap();
    assert!(f("min_ms") > 0.0 && f("min_ms") <= f("median_ms") && f("median_ms") <= f("max_ms"));
    assert!(f("plaintext_ms") > 0.0);
    // The floor is rounds x round trip + bytes / bandwidth + plaintext time: at least the
    // plaintext time, and the ratio is the median over it.
    assert!(
        f("floor_ms") >= f("plaintext_ms"),
        "floor {}",
        f("floor_ms")
    );
    // The JSON rounds the times and the ratio to three decimals, so recomputing the ratio from
    // the rounded times may differ by the rounding of each (a small floor magnifies it).
    let ratio = f("median_ms") / f("floor_ms");
    let rounding = 5e-4 * (1.0 + ratio * (1.0 / f("floor_ms") + 1.0 / f("median_ms")));
    assert!(
        (f("floor_ratio") - ratio).abs() <= rounding * 1.01,
        "floor ratio {} against {ratio}",
        f("floor_ratio")
    );
    assert!(
        (0.8..=1.0).contains(&f("accuracy")),
        "accuracy {}",
        f("accuracy")
    );
    assert!(f("agreement") >= 0.8);
    assert!((0.0..0.1).contains(&f("kl")), "kl {}", f("kl"));
    assert!(row["rounds"].as_u64().unwrap() > 0);
    // Bytes are the sum of the parties' own, every party is there and every party ran (but
    // the model owner, once its weights are shared at setup, has no part in a prediction).
    let parties = row["per_party"].as_object().unwrap();
    assert_eq!(parties.len(), 5);
    let mut active = vec!["server0", "server1", "helper", "client"];
    if !serving {
        active.push("model-owner");
    }
    for p in active {
        let fig = &parties[p];
        assert!(fig["wall_ms"].as_f64().unwrap() > 0.0, "{p}: {fig}");
    }
    assert_eq!(row["serving"], serving);
    if serving {
        // The weights of A (about 118k) shared and masked: words both ways.
        let setup = row["setup_bytes"].as_u64().unwrap();
        assert!(setup > 118_000 * 8 * 2, "setup {setup}");
        assert!(row["setup_ms"].as_f64().unwrap() > 0.0);
    } else {
        assert!(row["setup_bytes"].is_null());
    }
    let sum: u64 = parties
        .values()
        .map(|v| v["bytes_sent"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, row["bytes"].as_u64().unwrap());
    assert!(sum > 100_000);
}

#[test]
fn bench_in_process_has_every_field() {
    let v = bench(&[
        "--model",
        "A",
        "--protocol",
        "pond",
        "--transport",
        "inproc",
        "--batch",
        "1",
        "--reps",
        "2",
        "--limit",
        "20",
        "--single",
        "--json",
    ]);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    check_row(&rows[0], "inproc", 20, 2, false);
    assert!(v["machine"].as_str().unwrap().contains("cores"));
}

#[test]
fn bench_over_quic_and_markdown() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("bench.md");
    let v = bench(&[
        "--model",
        "A,B",
        "--protocol",
        "pond",
        "--transport",
        "quic",
        "--batch",
        "1",
        "--reps",
        "1",
        "--limit",
        "5",
        "--json",
        "--markdown",
        md.to_str().unwrap(),
    ]);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "B under Pond is skipped");
    check_row(&rows[0], "quic", 5, 1, true);
    assert!(v["notes"][0].as_str().unwrap().contains("B under pond"));
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.contains("| A | pond | quic | 1 |"), "{text}");
    assert!(text.contains("skipped"));
    // The link of the floor, measured in the same run.
    let link = &v["links"]["quic"];
    assert!(link["rtt_ms"].as_f64().unwrap() > 0.0, "{link}");
    assert!(link["bandwidth_mb_s"].as_f64().unwrap() > 1.0, "{link}");
    assert!(text.contains("Floor over `quic`"), "{text}");
}

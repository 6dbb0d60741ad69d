//! `--trace FILE`: a Chrome trace of a private prediction of network C, checked against the
//! static cost report: one track per party, and the exchanges of each party add up to the
//! bytes and rounds that the compiler predicts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn shareflow(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_shareflow"))
        .args(args)
        .output()
        .expect("run shareflow");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

/// The trace's events.
fn events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("the trace file");
    match serde_json::from_str(&text).expect("the trace is JSON") {
        Value::Array(events) => events,
        other => panic!("the trace is not an array: {other}"),
    }
}

/// Per (pid, tid), the name of its track (thread), from the metadata events.
fn tracks(events: &[Value]) -> BTreeMap<(u64, u64), String> {
    events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| {
            let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
            (key, e["args"]["name"].as_str().unwrap().to_string())
        })
        .collect()
}

/// A span argument as a number (the trace writes recorded values as strings).
fn number(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().expect("a whole number"),
        Value::String(s) => s.parse().expect("a number"),
        other => panic!("not a number: {other}"),
    }
}

/// Per party: bytes sent in its exchange spans, and the rounds it exchanged in.
fn exchanges(events: &[Value]) -> BTreeMap<String, (u64, BTreeSet<u64>)> {
    let tracks = tracks(events);
    let mut out: BTreeMap<String, (u64, BTreeSet<u64>)> = BTreeMap::new();
    for e in events {
        // A span's arguments recorded during it are on its end event.
        if e["ph"] != "E" || e["name"] != "exchange" {
            continue;
        }
        let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        let party = tracks.get(&key).expect("a named track").clone();
        let entry = out.entry(party).or_default();
        entry.0 += number(&e["args"]["bytes_sent"]);
        entry.1.insert(number(&e["args"]["round"]));
    }
    out
}

fn check_against_cost(events: &[Value], cost: &Value) {
    let per_party = exchanges(events);
    let parties: BTreeSet<&str> = cost["per_party"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let names: BTreeSet<String> = tracks(events).into_values().collect();
    for p in &parties {
        assert!(names.contains(*p), "no track for party {p}: {names:?}");
    }
    let mut last_round = 0;
    for p in parties {
        let sent = cost["per_party"][p]["bytes_sent"].as_u64().unwrap();
        let traced = per_party.get(p).map_or(0, |e| e.0);
        assert_eq!(traced, sent, "bytes sent by {p}");
        if let Some(r) = per_party.get(p).and_then(|e| e.1.last()) {
            last_round = last_round.max(r + 1);
        }
    }
    assert_eq!(last_round, cost["rounds"].as_u64().unwrap(), "rounds");
    let kernel_spans = events
        .iter()
        .filter(|e| e["ph"] == "B" && e["name"] != "round" && e["name"] != "exchange")
        .count();
    assert!(kernel_spans > 0, "no kernel spans");
}

#[test]
fn a_private_prediction_of_c_in_process_has_a_track_per_party_and_the_cost_reports_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("c.json");
    let trace_arg = trace.to_str().unwrap();
    shareflow(&[
        "eval",
        "--model",
        "C",
        "--protocol",
        "securenn",
        "--limit",
        "1",
        "--batch",
        "1",
        "--no-persist",
        "--json",
        "--trace",
        trace_arg,
    ]);
    let cost = shareflow(&[
        "compile",
        "--model",
        "C",
        "--protocol",
        "securenn",
        "--json",
    ]);
    check_against_cost(&events(&trace), &cost);
}

#[test]
fn the_demo_merges_each_party_process_trace_into_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("demo.json");
    let report = shareflow(&[
        "demo",
        "--model",
        "A",
        "--json",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert!(report.is_object());
    let events = events(&trace);
    let processes: BTreeSet<String> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "process_name")
        .map(|e| e["args"]["name"].as_str().unwrap().to_string())
        .collect();
    for p in [
        "shareflow",
        "server0",
        "server1",
        "helper",
        "model-owner",
        "client",
    ] {
        assert!(processes.contains(p), "no process {p} in {processes:?}");
    }
    let cost = shareflow(&[
        "compile",
        "--model",
        "A",
        "--protocol",
        "securenn",
        "--json",
    ]);
    check_against_cost(&events, &cost);
}

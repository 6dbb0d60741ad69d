//! One JSON schema: the fields that several commands report have the same names and types
//! everywhere, and every `per_party` entry has the same fields.

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
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// The fields of every `per_party` entry (`shareflow_tools::report::PARTY_FIELDS`).
const PARTY_FIELDS: [&str; 3] = ["bytes_sent", "bytes_received", "wall_ms"];

/// Checks the types of the shared fields that `v` has, and that it has all of `required`.
fn check(what: &str, v: &Value, required: &[&str]) {
    for f in required {
        assert!(!v[*f].is_null(), "{what}: no field {f} in {v}");
    }
    for f in ["model", "protocol", "transport"] {
        if let Some(x) = v.get(f) {
            assert!(x.is_string(), "{what}: {f} is not a string: {x}");
        }
    }
    for f in ["batch", "images", "bytes", "rounds"] {
        if let Some(x) = v.get(f) {
            assert!(x.is_u64(), "{what}: {f} is not a count: {x}");
        }
    }
    for f in ["accuracy", "agreement"] {
        if let Some(x) = v.get(f) {
            let x = x.as_f64().unwrap_or(-1.0);
            assert!(
                (0.0..=1.0).contains(&x),
                "{what}: {f} = {x} is not a fraction"
            );
        }
    }
    for f in ["kl", "median_ms", "min_ms", "max_ms"] {
        if let Some(x) = v.get(f) {
            assert!(x.as_f64().is_some_and(|x| x >= 0.0), "{what}: {f} = {x}");
        }
    }
    if let Some(p) = v.get("per_party") {
        let parties = p.as_object().expect("per_party is an object");
        assert!(!parties.is_empty(), "{what}: per_party is empty");
        for (party, fig) in parties {
            let fields: Vec<&str> = fig
                .as_object()
                .expect("a party's figures")
                .keys()
                .map(String::as_str)
                .collect();
            let mut want = PARTY_FIELDS.to_vec();
            want.sort_unstable();
            assert_eq!(fields, want, "{what}: fields of {party}");
            assert!(fig["bytes_sent"].is_u64() && fig["bytes_received"].is_u64());
            assert!(fig["wall_ms"].is_null() || fig["wall_ms"].is_f64());
        }
    }
}

const MEASURED: [&str; 12] = [
    "model",
    "protocol",
    "transport",
    "batch",
    "images",
    "accuracy",
    "agreement",
    "kl",
    "median_ms",
    "bytes",
    "rounds",
    "per_party",
];

#[test]
fn eval_demo_and_compile_share_the_names_and_the_per_party_fields() {
    let eval = shareflow(&[
        "eval",
        "--model",
        "A",
        "--protocol",
        "securenn",
        "--limit",
        "5",
        "--json",
    ]);
    check("eval", &eval, &MEASURED);
    assert_eq!(eval["images"], 5);
    assert_eq!(eval["transport"], "inproc");

    let demo = shareflow(&["demo", "--model", "A", "--json"]);
    check(
        "demo",
        &demo,
        &[
            "model",
            "protocol",
            "transport",
            "batch",
            "images",
            "agreement",
            "median_ms",
            "min_ms",
            "max_ms",
            "bytes",
            "rounds",
            "per_party",
        ],
    );
    assert_eq!(demo["transport"], "quic");

    let compile = shareflow(&[
        "compile",
        "--model",
        "A",
        "--protocol",
        "securenn",
        "--json",
    ]);
    check(
        "compile",
        &compile,
        &["model", "protocol", "batch", "bytes", "rounds", "per_party"],
    );
    // The static report's bytes are the measured ones, party by party.
    for (party, fig) in compile["per_party"].as_object().unwrap() {
        assert!(fig["wall_ms"].is_null());
        assert_eq!(
            fig["bytes_sent"], demo["per_party"][party]["bytes_sent"],
            "{party}"
        );
    }
}

#[test]
fn inspect_gives_shapes_as_arrays_and_keys_has_json() {
    let inspect = shareflow(&["inspect", "--model", "C", "--json"]);
    check("inspect", &inspect, &["model", "nodes", "params"]);
    let image = &inspect["nodes"][0];
    assert_eq!(image["name"], "image");
    assert_eq!(image["shape"], serde_json::json!([1, 28, 28, 1]));
    let conv1 = inspect["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "conv1/kernel")
        .expect("conv1/kernel");
    assert_eq!(conv1["shape"], serde_json::json!([5, 5, 1, 20]));

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys");
    let keys = shareflow(&["keys", "--out", out.to_str().unwrap(), "--json"]);
    assert_eq!(keys["parties"].as_array().map(Vec::len), Some(5));
    assert!(std::path::Path::new(keys["cluster"].as_str().unwrap()).is_file());
    assert!(std::path::Path::new(keys["ca"].as_str().unwrap()).is_file());
}

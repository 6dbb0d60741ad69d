//! The `shareflow` command line, run as a user would.

use std::io::Write;
use std::process::{Command, Stdio};

fn shareflow(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shareflow"))
        .args(args)
        .output()
        .expect("run shareflow")
}

/// Whether Graphviz `dot` can be run here; prints one line saying so when it cannot.
fn have_graphviz() -> bool {
    let found = Command::new("dot")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        println!("Graphviz `dot` is not installed: the drawings are not rendered");
    }
    found
}

/// Pipes `dot_text` through Graphviz `dot -Tsvg` and returns the SVG.
fn render(dot_text: &[u8]) -> String {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run Graphviz `dot`");
    child.stdin.take().unwrap().write_all(dot_text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `shareflow dot` with `args`, which must succeed.
fn dot_of(args: &[&str]) -> Vec<u8> {
    let out = shareflow(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn dot_of_network_c_renders_as_svg() {
    if !have_graphviz() {
        return;
    }
    let svg = render(&dot_of(&["dot", "--model", "C"]));
    assert!(svg.contains("<svg") && svg.contains("conv1/kernel"));
}

#[test]
fn compiled_graphs_render_as_a_box_per_layer_and_party() {
    if !have_graphviz() {
        return;
    }
    let parties = ["server0", "server1", "helper", "model-owner", "client"];
    for (model, protocol, serving) in [
        ("C", "securenn", false),
        ("A", "securenn", false),
        ("A", "pond", false),
        ("D", "pond", true),
    ] {
        let mut args = vec!["dot", "--model", model, "--protocol", protocol];
        if serving {
            args.push("--serving");
        }
        let svg = render(&dot_of(&args));
        let case = format!("{model} under {protocol}");
        for (host, party) in parties.iter().enumerate() {
            // A serving session's model owner takes part in its setup only.
            if serving && *party == "model-owner" {
                continue;
            }
            let text = party.replace('-', "&#45;");
            assert!(
                svg.contains(&format!("<title>cluster_p{host}</title>"))
                    && svg.contains(&format!(">{text}</text>")),
                "{case}: no cluster for {party}"
            );
        }
        // A box per layer and party and a heading per round, not a node per kernel.
        let nodes = svg.matches("class=\"node\"").count();
        let edges = svg.matches("class=\"edge\"").count();
        assert!(nodes <= 110, "{case}: {nodes} nodes");
        assert!(edges <= 400, "{case}: {edges} edges");
        assert!(svg.contains(">round 1</text>"), "{case}");
        assert!(svg.contains("masked opening"), "{case}");
    }
}

#[test]
fn dot_draws_one_layer_in_detail() {
    let text = String::from_utf8(dot_of(&[
        "dot",
        "--model",
        "A",
        "--protocol",
        "pond",
        "--detail",
        "dense2",
    ]))
    .unwrap();
    assert!(text.contains("subgraph cluster_l") && text.contains("label=\"dense2\""));
    assert!(
        text.contains("matmul\\n[1, 128]"),
        "no matmul kernel of dense2"
    );
    let out = shareflow(&[
        "dot",
        "--model",
        "A",
        "--protocol",
        "pond",
        "--detail",
        "conv9",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("conv9") && err.contains("dense2"), "{err}");
}

#[test]
fn inspect_reports_parameters_as_json() {
    let out = shareflow(&["inspect", "--model", "C", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"], "C");
    assert_eq!(v["parameters"], 431_080);
}

#[test]
fn eval_plaintext_reports_accuracy_as_json() {
    let out = shareflow(&[
        "eval",
        "--model",
        "A",
        "--protocol",
        "plaintext",
        "--limit",
        "200",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["images"], 200);
    assert!(v["accuracy"].as_f64().unwrap() > 0.9);
}

#[test]
fn eval_pond_reports_agreement_kl_bytes_rounds() {
    let out = shareflow(&[
        "eval",
        "--model",
        "A",
        "--protocol",
        "pond",
        "--limit",
        "100",
        "--batch",
        "50",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "accuracy",
        "agreement",
        "kl",
        "median_ms",
        "bytes",
        "rounds",
        "per_party",
    ] {
        assert!(!v[field].is_null(), "missing {field}");
    }
    assert!(v["agreement"].as_f64().unwrap() >= 0.95);
    assert!(v["bytes"].as_u64().unwrap() > 0);
}

#[test]
fn errors_are_clear() {
    let out = shareflow(&["eval", "--model", "B", "--protocol", "pond", "--limit", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("maxpool2d") && err.contains("securenn"),
        "{err}"
    );
    let out = shareflow(&["eval", "--model", "A", "--data", "/nonexistent"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent"));
    let out = shareflow(&["eval", "--model", "Z"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"Z\"") && err.contains("A, B, C, D"), "{err}");
}

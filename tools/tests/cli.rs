//! The `shareflow` command line, run as a user would.

mod common;

use std::process::Command;

use common::{render_svg, NO_GRAPHVIZ};

fn shareflow(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shareflow"))
        .args(args)
        .output()
        .expect("run shareflow")
}

#[test]
fn dot_of_network_c_renders_as_svg() {
    let out = shareflow(&["dot", "--model", "C"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let Some(svg) = render_svg(&out.stdout) else {
        return;
    };
    assert!(svg.contains("<svg") && svg.contains("conv1/kernel"));
}

#[test]
fn render_tests_skip_without_graphviz() {
    // This test binary again, running only the render test, with no `dot` on its PATH.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "dot_of_network_c_renders_as_svg", "--nocapture"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert_eq!(
        stderr.lines().filter(|l| l.contains(NO_GRAPHVIZ)).count(),
        1,
        "{stderr}"
    );
}

#[test]
fn dot_of_a_compiled_graph_has_a_cluster_per_party() {
    // A compiled network has thousands of kernels: Graphviz takes minutes to lay it out, so
    // only the text is checked here.
    let out = shareflow(&["dot", "--model", "A", "--protocol", "pond"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for party in ["server0", "server1", "helper", "model-owner", "client"] {
        assert!(
            text.contains(&format!("label=\"{party}\"")),
            "no cluster for {party}"
        );
    }
    assert!(text.contains(" B, round "));
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

/// Test-only randomness is not reachable from the shipped binaries: no flag fixes the seeds.
#[test]
fn run_graph_has_no_way_to_fix_its_randomness() {
    let run_graph = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_run-graph"))
            .args(args)
            .output()
            .expect("run run-graph")
    };
    let help = run_graph(&["--help"]);
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout).to_lowercase();
    assert!(help.contains("--party"), "{help}");
    assert!(!help.contains("seed") && !help.contains("replay"), "{help}");

    let seed = "5a".repeat(32);
    let common = [
        "--party",
        "client",
        "--cluster",
        "c.toml",
        "--graph",
        "g.json",
    ];
    for out in [
        run_graph(&[&common[..], &["--insecure-replay-seed", &seed]].concat()),
        shareflow(
            &[
                &["run-graph"][..],
                &common,
                &["--insecure-replay-seed", &seed],
            ]
            .concat(),
        ),
    ] {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("unexpected argument '--insecure-replay-seed'"),
            "{err}"
        );
    }
}

/// `shareflow keys` refuses to overwrite an earlier run's files; `--force` replaces them all.
#[test]
fn keys_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys");
    let out_arg = out.to_str().unwrap();
    let keys = |force: bool| {
        let mut args = vec!["keys", "--parties", "server0,client", "--out", out_arg];
        if force {
            args.push("--force");
        }
        shareflow(&args)
    };
    assert!(keys(false).status.success());
    let ca = std::fs::read(out.join("ca.pem")).unwrap();
    let again = keys(false);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("--force") && err.contains("exists"), "{err}");
    assert_eq!(std::fs::read(out.join("ca.pem")).unwrap(), ca);
    let forced = keys(true);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert_ne!(std::fs::read(out.join("ca.pem")).unwrap(), ca);
}

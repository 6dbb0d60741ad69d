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
    let Some(svg) = render_svg(&dot_of(&["dot", "--model", "C"])) else {
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
fn compiled_graphs_render_as_a_box_per_layer_and_party() {
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
        let Some(svg) = render_svg(&dot_of(&args)) else {
            return;
        };
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

/// `shareflow eval --json` on the first images of network A.
fn eval_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec![
        "eval", "--model", "A", "--limit", "20", "--batch", "20", "--json",
    ];
    all.extend_from_slice(args);
    let out = shareflow(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn frac_bits_are_honoured() {
    let at = |f: &str| eval_json(&["--protocol", "securenn", "--frac-bits", f]);
    let (twelve, sixteen) = (at("12"), at("16"));
    // Coarser rounding: the logits differ from plaintext more, and still agree.
    let (kl12, kl16) = (
        twelve["kl"].as_f64().unwrap(),
        sixteen["kl"].as_f64().unwrap(),
    );
    assert!(kl12 > 10.0 * kl16, "KL {kl12} at 12 bits, {kl16} at 16");
    assert_eq!(twelve["agreement"], 1.0);
    assert_eq!(sixteen["agreement"], 1.0);
    // And the compiled graph is at the precision asked for.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    let p = path.to_str().unwrap();
    let args = [
        "compile",
        "--model",
        "A",
        "--protocol",
        "pond",
        "--frac-bits",
        "20",
        "-o",
        p,
    ];
    assert!(shareflow(&args).status.success());
    let compiled: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(compiled["options"]["frac_bits"], 20);
}

#[test]
fn options_out_of_range_are_refused_by_the_library() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["--protocol", "securenn", "--frac-bits", "0"],
            "frac_bits = 0",
        ),
        (
            &["--protocol", "securenn", "--frac-bits", "40"],
            "frac_bits = 40",
        ),
        (
            &["--protocol", "pond", "--relu-degree", "0"],
            "relu.degree = 0",
        ),
        (
            &["--protocol", "pond", "--relu-degree", "21"],
            "relu.degree = 21",
        ),
        (
            &["--protocol", "pond", "--relu-interval", "0.001"],
            "relu.interval = 0.001",
        ),
        (
            &["--protocol", "pond", "--relu-interval", "1e6"],
            "relu.interval = 1000000",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["eval", "--model", "A", "--limit", "1"];
        all.extend_from_slice(args);
        let out = shareflow(&all);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(expected) && err.contains("allowed"),
            "{args:?}: {err}"
        );
    }
    // The reduced-width comparisons are gone.
    let out = shareflow(&["eval", "--model", "A", "--compare-bits", "32"]);
    assert!(!out.status.success());
}

//! Every party of a compiled zoo network as a separate `run-graph` process on 127.0.0.1, as
//! `shareflow demo` and `shareflow bench` start them.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use shareflow_graphs::zoo::{ModelKind, CLIENT, IMAGE, MODEL_OWNER};
use shareflow_runtime::cluster::{ClusterConfig, CLUSTER_FILE};
use shareflow_runtime::keys::Existing;

use super::weights_path;
use crate::{Result, ToolError};

/// Makes a fresh loopback cluster (CA, certificates, free ports) in `dir`, starts one
/// `exe run-graph` per party (the model owner with the network's weights, the client with
/// `image_path`; outputs in `dir/out-PARTY`), waits for all, and returns each party's name and
/// its report. With `serving: Some(n)`, `graph_path` is a serving graph and every party runs
/// its setup once and then `n` predictions over the same connections. If any party fails, the
/// error lists every failure.
#[allow(clippy::too_many_arguments)]
pub fn run_local_parties(
    exe: &Path,
    parties: &[String],
    dir: &Path,
    graph_path: &Path,
    image_path: &Path,
    model: ModelKind,
    timeout_s: f64,
    serving: Option<usize>,
) -> Result<Vec<(String, Value)>> {
    // a retry in the same directory makes a fresh cluster
    ClusterConfig::local_with(parties, dir, 0, Existing::Replace)?;
    let mut children: Vec<(String, Child)> = Vec::new();
    for party in parties {
        let mut cmd = Command::new(exe);
        cmd.arg("run-graph")
            .arg("--party")
            .arg(party)
            .arg("--cluster")
            .arg(dir.join(CLUSTER_FILE))
            .arg("--graph")
            .arg(graph_path)
            .arg("--output-dir")
            .arg(dir.join(format!("out-{party}")))
            .arg("--timeout")
            .arg(timeout_s.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(n) = serving {
            cmd.arg("--serving").arg("--predictions").arg(n.to_string());
        }
        if party == MODEL_OWNER {
            cmd.arg("--weights").arg(weights_path(model, None));
        }
        if party == CLIENT {
            cmd.arg("--input")
                .arg(format!("{IMAGE}={}", image_path.display()));
        }
        match cmd.spawn() {
            Ok(child) => children.push((party.clone(), child)),
            Err(e) => {
                for (_, mut c) in children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Err(ToolError::Usage(format!("starting party {party}: {e}")));
            }
        }
    }
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for (party, child) in children {
        let out = child
            .wait_with_output()
            .map_err(|e| ToolError::Usage(format!("waiting for party {party}: {e}")))?;
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout)
                .map_err(|e| ToolError::Usage(format!("party {party} printed no report: {e}")))?;
            reports.push((party, v));
        } else {
            failures.push(format!(
                "{party}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    if !failures.is_empty() {
        return Err(ToolError::Usage(format!(
            "parties failed:\n  {}",
            failures.join("\n  ")
        )));
    }
    Ok(reports)
}

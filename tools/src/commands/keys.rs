//! `shareflow keys`: a cluster CA and one certificate + key per party, and a loopback cluster
//! file to start from.

use std::path::Path;

use shareflow_runtime::cluster::{ClusterConfig, CLUSTER_FILE};

use crate::Result;

/// Writes `ca.pem`, `NAME.pem` and `NAME.key` for every party into `out`, and
/// `out/cluster.toml` with loopback addresses from `base_port` (edit the addresses for real
/// machines).
pub fn run(parties: &[String], out: &Path, base_port: u16) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| crate::ToolError::File {
        path: out.display().to_string(),
        message: e.to_string(),
    })?;
    ClusterConfig::local(parties, out, base_port)?;
    println!(
        "wrote a CA, {} certificates and {} in {}",
        parties.len(),
        CLUSTER_FILE,
        out.display()
    );
    Ok(())
}

//! `shareflow keys`: a cluster CA and one certificate + key per party, and a loopback cluster
//! file to start from.

use std::path::Path;

use shareflow_runtime::cluster::{ClusterConfig, CLUSTER_FILE};
use shareflow_runtime::keys::{Existing, CA_FILE};

use crate::report::Report;
use crate::Result;

/// Writes `ca.pem`, `NAME.pem` and `NAME.key` for every party into `out`, and
/// `out/cluster.toml` with loopback addresses from `base_port` (edit the addresses for real
/// machines). Refuses to overwrite any file, or to write through a symbolic link; with `force`,
/// replaces the CA and every certificate and key (and removes those of parties the old
/// cluster file lists and `parties` does not).
pub fn run(parties: &[String], out: &Path, base_port: u16, force: bool, json: bool) -> Result<()> {
    let existing = if force {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    ClusterConfig::local_with(parties, out, base_port, existing)?;
    if json {
        let mut r = Report::new();
        r.set("out", out.display().to_string())
            .set("ca", out.join(CA_FILE).display().to_string())
            .set("cluster", out.join(CLUSTER_FILE).display().to_string())
            .set("parties", parties.to_vec());
        r.print(true);
        return Ok(());
    }
    println!(
        "wrote a CA, {} certificates and {} in {}",
        parties.len(),
        CLUSTER_FILE,
        out.display()
    );
    Ok(())
}

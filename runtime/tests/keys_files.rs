//! The key files of a cluster: never written through a symbolic link, never over an earlier
//! run's files unless asked, and then all replaced together.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use shareflow_runtime::cluster::{ClusterConfig, CLUSTER_FILE};
use shareflow_runtime::keys::{self, Existing};

fn names(parties: &[&str]) -> Vec<String> {
    parties.iter().map(|p| p.to_string()).collect()
}

/// Every file of the directory and its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

/// Whether `party`'s certificate in `dir` is signed by the CA in `dir` and names the party.
fn verifies(dir: &Path, party: &str) -> bool {
    let roots = keys::load_roots(&dir.join(keys::CA_FILE)).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    let cert = keys::load_certs(&dir.join(keys::cert_file(party))).unwrap();
    let name = ServerName::try_from(party.to_string()).unwrap();
    verifier
        .verify_server_cert(&cert[0], &[], &name, &[], UnixTime::now())
        .is_ok()
}

#[test]
fn a_second_run_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let parties = names(&["server0", "server1"]);
    ClusterConfig::local(&parties, dir.path(), 0).unwrap();
    let before = contents(dir.path());
    assert_eq!(before.len(), 6, "{:?}", before.keys());

    let e = ClusterConfig::local(&parties, dir.path(), 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("exists") && e.contains("--force"), "{e}");
    let e = keys::generate(&parties, dir.path(), Existing::Refuse)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ca.pem") && e.contains("--force"), "{e}");
    // a new party alone is refused too: the cluster file and the CA exist
    assert!(ClusterConfig::local(&names(&["helper"]), dir.path(), 0).is_err());
    assert_eq!(contents(dir.path()), before);
}

#[cfg(unix)]
#[test]
fn symbolic_links_are_refused_and_their_targets_untouched() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("authorized_keys");
    std::fs::write(&target, "precious").unwrap();
    let parties = names(&["server0", "server1"]);

    // a key file planted as a link, with and without --force
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    symlink(&target, out.join("server1.key")).unwrap();
    for existing in [Existing::Refuse, Existing::Replace] {
        let e = ClusterConfig::local_with(&parties, &out, 0, existing)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("server1.key") && e.contains("symbolic link"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
        // nothing was written
        assert_eq!(contents(&out).len(), 1);
    }

    // the output directory itself a link
    let linked = dir.path().join("linked");
    symlink(elsewhere.path(), &linked).unwrap();
    let e = ClusterConfig::local(&parties, &linked, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("linked") && e.contains("symbolic link"), "{e}");
    assert_eq!(contents(elsewhere.path()).len(), 1);
}

#[test]
fn force_replaces_the_ca_and_every_certificate() {
    let dir = tempfile::tempdir().unwrap();
    ClusterConfig::local(&names(&["server0", "server1", "helper"]), dir.path(), 0).unwrap();
    let before = contents(dir.path());

    // again with --force, without the helper
    let parties = names(&["server0", "server1"]);
    let cluster = ClusterConfig::local_with(&parties, dir.path(), 0, Existing::Replace).unwrap();
    let after = contents(dir.path());
    let mut expected: Vec<String> = keys::files(&parties);
    expected.push(CLUSTER_FILE.into());
    expected.sort();
    // the helper's files (signed by the old CA) are gone; no temporary file is left
    assert_eq!(after.keys().cloned().collect::<Vec<_>>(), expected);
    for name in keys::files(&parties) {
        assert_ne!(before[&name], after[&name], "{name} was not replaced");
    }
    for party in &parties {
        assert!(verifies(dir.path(), party), "{party}");
        keys::load_key(&cluster.parties[party].key).unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |f: &str| {
            std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("server0.key"), 0o600);
    }
}

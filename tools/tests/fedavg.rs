//! `shareflow fedavg`: a small federation of network A over both transports. The JSON report
//! has the fields of the other commands; the measured traffic of every round equals the
//! compiler's cost report; the secure mean is the plaintext mean within the fixed-point
//! tolerance; the temporary folder of the QUIC run is removed; owners that miss a round are
//! left out and counted, the aggregation then compiled for those that came.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use shareflow_runtime::data::data_dir;

/// `(3 + |sum|) * 2^-17` for updates of a few steps (see `tests/secure_aggregation.rs`).
const TOLERANCE: f64 = 8.0 / (1u64 << 17) as f64;

fn fedavg(transport: &str, tmp: &Path, more: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_shareflow"))
        .args(["fedavg", "--steps", "3"])
        .args(more)
        .args(["--transport", transport, "--timeout", "120", "--json"])
        .arg("--data")
        .arg(std::path::absolute(data_dir(None)).unwrap())
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_small_federation_over_both_transports() {
    for transport in ["inproc", "quic"] {
        let tmp = tempfile::tempdir().unwrap();
        let r = fedavg(transport, tmp.path(), &["--owners", "3", "--rounds", "2"]);
        assert_eq!(r["transport"], transport);
        assert_eq!(r["owners"], 3);
        assert_eq!(r["protocol"], "securenn");
        let (bytes, rounds) = (r["bytes"].as_u64().unwrap(), r["rounds"].as_u64().unwrap());
        // three owners send a share of 118,282 words each; the model owner receives two
        assert!(bytes > 5 * 118_282 * 8, "{bytes}");
        assert!(r["bytes_per_owner"].as_u64().unwrap() > 118_282 * 8);
        let per_round = r["per_round"].as_array().unwrap();
        assert_eq!(per_round.len(), 2);
        for round in per_round {
            assert_eq!(round["bytes"].as_u64(), Some(bytes), "{transport}");
            assert_eq!(round["rounds"].as_u64(), Some(rounds), "{transport}");
            assert_eq!(round["contributors"], 3);
            let err = round["max_error"].as_f64().unwrap();
            assert!(err <= TOLERANCE, "{transport}: {err}");
        }
        let acc = r["accuracy"].as_f64().unwrap();
        assert!(acc > 0.3, "{transport}: accuracy {acc}");
        assert!(r["pooled_accuracy"].as_f64().unwrap() > 0.3);
        // nothing left behind: keys, updates and the mean
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "{transport}: {left:?}");
    }
}

#[test]
fn owners_that_miss_a_round_are_left_out_and_counted_over_quic() {
    let tmp = tempfile::tempdir().unwrap();
    let more = [
        "--owners", "4", "--rounds", "4", "--absent", "0.4", "--seed", "3",
    ];
    let r = fedavg("quic", tmp.path(), &more);
    let full = r["bytes"].as_u64().unwrap();
    let per_round = r["per_round"].as_array().unwrap();
    let counts: Vec<u64> = per_round
        .iter()
        .map(|p| p["contributors"].as_u64().unwrap())
        .collect();
    assert!(counts.iter().any(|&c| c < 4), "{counts:?}");
    for p in per_round {
        let (c, bytes) = (
            p["contributors"].as_u64().unwrap(),
            p["bytes"].as_u64().unwrap(),
        );
        // fewer contributors send fewer shares; none, nothing
        assert_eq!(c == 4, bytes == full, "{p}");
        assert_eq!(c == 0, bytes == 0, "{p}");
        assert!(p["max_error"].as_f64().unwrap() <= TOLERANCE, "{p}");
    }
    assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none());
}

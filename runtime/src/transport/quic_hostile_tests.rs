//! A hostile peer on loopback QUIC: it passes the handshake and the hello (it has a certificate
//! of the cluster), then writes frames of its own. The party it talks to refuses, naming it,
//! whatever it announces or floods, without buffering what the program does not expect.

use std::thread;
use std::time::Duration;

use ndarray::{ArrayD, IxDyn};
use shareflow_ops::Value;

use super::QuicTransport;
use crate::cluster::ClusterConfig;
use crate::round::RUN_ROUNDS;
use crate::transport::Transport;

const DIGEST: [u8; 32] = [9; 32];

/// Connects an honest `server0` and a hostile `server1`; the honest one may receive frames of
/// at most 1 MiB from it and waits for its batch of round 0, the hostile one runs `attack`.
/// Returns the honest party's error.
fn attacked(attack: impl FnOnce(&mut QuicTransport) + Send + 'static) -> String {
    let names: Vec<String> = ["server0", "server1"].map(String::from).to_vec();
    let dir = tempfile::tempdir().unwrap();
    let cluster = ClusterConfig::local(&names, dir.path(), 0).unwrap();
    let (c, n) = (cluster.clone(), names.clone());
    let hostile = thread::spawn(move || {
        let mut t =
            QuicTransport::connect(&c, "server1", &n, DIGEST, Duration::from_secs(20)).unwrap();
        attack(&mut t);
        // until the honest party hangs up
        let _ = t.recv(0, 0);
    });
    let limits = [0, 1 << 20];
    let timeout = Duration::from_secs(20);
    let mut t =
        QuicTransport::connect_limited(&cluster, "server0", &names, DIGEST, timeout, &limits)
            .unwrap();
    let err = t.recv(1, 0).unwrap_err();
    t.abort(&err);
    hostile.join().unwrap();
    err.to_string()
}

/// Writes raw bytes on the hostile party's stream to server0.
fn write_raw(t: &mut QuicTransport, bytes: &[u8]) {
    let rt = t.rt.as_ref().unwrap();
    let link = t.links[0].as_mut().unwrap();
    rt.block_on(link.send.write_all(bytes)).unwrap();
}

#[test]
fn a_frame_longer_than_any_expected_batch_is_refused_from_its_length() {
    for announced in [512u64 << 20, 4 << 30] {
        let err = attacked(move |t| {
            let mut frame = announced.to_le_bytes().to_vec();
            frame.extend_from_slice(&[0xab; 100]);
            write_raw(t, &frame);
        });
        assert!(err.starts_with("peer server1: "), "{err}");
        assert!(
            err.contains(&format!(
                "announced a frame of {announced} bytes (at most 1048576)"
            )),
            "{err}"
        );
    }
}

#[test]
fn batches_of_far_future_rounds_are_refused_naming_the_round() {
    for (round, shown) in [
        (1000, "round 1000".to_string()),
        (
            91 * RUN_ROUNDS + 1000,
            format!(
                "round 1000 of prediction 90 (wire round {})",
                91 * RUN_ROUNDS + 1000
            ),
        ),
    ] {
        let err = attacked(move |t| {
            let mut b = t.batch(0, round);
            b.entries.push((1, Value::Ring(ArrayD::zeros(IxDyn(&[4])))));
            t.send(0, b).unwrap();
        });
        assert!(err.starts_with("peer server1: "), "{err}");
        assert!(
            err.contains(&format!(
                "sent a batch of {shown} while server0 waits for round 0"
            )),
            "{err}"
        );
    }
}

#[test]
fn a_flood_of_batches_is_refused_past_the_window() {
    let err = attacked(|t| {
        for round in 1..200 {
            let mut b = t.batch(0, round);
            b.entries
                .push((1, Value::Ring(ArrayD::zeros(IxDyn(&[1024])))));
            if t.send(0, b).is_err() {
                break;
            }
        }
    });
    assert!(err.starts_with("peer server1: "), "{err}");
    assert!(
        err.contains("sent a batch of round 9 while server0 waits for round 0"),
        "{err}"
    );
}

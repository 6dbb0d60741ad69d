//! A hostile peer on loopback QUIC: it passes the handshake and the hello (it has a certificate
//! of the cluster), then writes frames of its own. The party it talks to refuses, naming it,
//! whatever it announces, without buffering what the program does not expect; batches it may
//! still expect (of later predictions) it holds at most `QUEUE_PER_PEER` of, leaving the rest
//! unread. Honest parties, one of them far ahead of the others, still run to the end.

use std::thread;
use std::time::Duration;

use ndarray::{ArrayD, IxDyn};
use shareflow_ops::Value;

use super::QuicTransport;
use crate::cluster::ClusterConfig;
use crate::round::RUN_ROUNDS;
use crate::transport::quic_frame::QUEUE_PER_PEER;
use crate::transport::Transport;

const DIGEST: [u8; 32] = [9; 32];

/// Connects an honest `server0` and a hostile `server1`; the honest one may receive frames of
/// at most 1 MiB from it and waits for its batch of round 0, the hostile one runs `attack`.
/// Returns the honest party's error.
fn attacked(attack: impl FnOnce(&mut QuicTransport) + Send + 'static) -> String {
    attacked_holding(attack).0
}

/// [`attacked`], also returning the most batches and frame bytes the honest party held at once
/// (read, not taken).
fn attacked_holding(
    attack: impl FnOnce(&mut QuicTransport) + Send + 'static,
) -> (String, (usize, usize)) {
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
    let held = t.held.peak();
    t.abort(&err);
    hostile.join().unwrap();
    (err.to_string(), held)
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

/// A ring vector of `n` words, all `v`.
fn words(n: usize, v: u64) -> Value {
    Value::Ring(ArrayD::from_elem(IxDyn(&[n]), v))
}

#[test]
fn a_flood_of_batches_the_party_may_still_ask_for_is_held_back_not_buffered() {
    // the first round of each of many later predictions, or the next rounds of this run
    type Flood = (&'static str, fn(u32) -> u32);
    let floods: [Flood; 2] = [
        ("later predictions", |k| k * RUN_ROUNDS),
        ("rounds of this run", |k| k),
    ];
    const BATCHES: u32 = 100;
    const WORDS: usize = 8 << 10;
    for (what, round) in floods {
        let (err, (batches, bytes)) = attacked_holding(move |t| {
            t.book.timeout = Duration::from_secs(1);
            for k in 1..=BATCHES {
                let mut b = t.batch(0, round(k));
                b.entries.push((1, words(WORDS, 1)));
                if t.send(0, b).is_err() {
                    break;
                }
            }
        });
        assert!(err.starts_with("peer server1: "), "{what}: {err}");
        let frame = 8 * WORDS + 64;
        assert!(
            batches <= QUEUE_PER_PEER && bytes <= QUEUE_PER_PEER * frame,
            "{what}: held {batches} batches, {bytes} bytes at once ({err})"
        );
    }
}

#[test]
fn an_honest_party_far_ahead_is_held_back_and_every_run_completes() {
    // the dealer sends each server a batch of 1 MiB per prediction and receives nothing: it
    // runs ahead until the servers' queues and flow-control windows are full
    const PREDICTIONS: u32 = 24;
    const WORDS: usize = 128 << 10;
    let names: Vec<String> = ["server0", "server1", "dealer"].map(String::from).to_vec();
    let dir = tempfile::tempdir().unwrap();
    let cluster = ClusterConfig::local(&names, dir.path(), 0).unwrap();
    let timeout = Duration::from_secs(20);
    let parties: Vec<_> = (0..3)
        .map(|me| {
            let (c, n) = (cluster.clone(), names.clone());
            thread::spawn(move || {
                let mut t = QuicTransport::connect(&c, &n[me], &n, DIGEST, timeout).unwrap();
                let mut seen = Vec::new();
                for k in 1..=PREDICTIONS {
                    let round = k * RUN_ROUNDS;
                    if me == 2 {
                        for to in 0..2 {
                            let mut b = t.batch(to, round);
                            b.entries.push((1, words(WORDS, u64::from(k))));
                            t.send(to, b).unwrap();
                        }
                        continue;
                    }
                    let peer = 1 - me;
                    let mut b = t.batch(peer, round + 1);
                    b.entries.push((2, words(4, u64::from(k) + 1000)));
                    t.send(peer, b).unwrap();
                    let from_dealer = t.recv(2, round).unwrap();
                    let from_peer = t.recv(peer, round + 1).unwrap();
                    for (batch, id) in [(from_dealer, 1), (from_peer, 2)] {
                        let [(got, Value::Ring(a))] = batch.entries.as_slice() else {
                            panic!("prediction {k}: {:?}", batch.entries.len());
                        };
                        assert_eq!(*got, id);
                        seen.push(a[0]);
                    }
                }
                let held = t.held.peak();
                t.finish().unwrap();
                (seen, held)
            })
        })
        .collect();
    for (me, p) in parties.into_iter().enumerate() {
        let (seen, (batches, _)) = p.join().unwrap();
        if me < 2 {
            let want: Vec<u64> = (1..=u64::from(PREDICTIONS))
                .flat_map(|k| [k, k + 1000])
                .collect();
            assert_eq!(seen, want, "{}", names[me]);
            assert!(batches <= 2 * QUEUE_PER_PEER, "{}: {batches}", names[me]);
        }
    }
}

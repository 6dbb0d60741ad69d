//! QUIC transport on loopback: exchange, refusals (CA, graph digest), failing peers, bad setups.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use ndarray::{ArrayD, IxDyn};
use shareflow_ops::Value;
use shareflow_runtime::cluster::ClusterConfig;
use shareflow_runtime::transport::{QuicTransport, Transport};
use shareflow_runtime::{keys, wire, Result, RuntimeError};

const DIGEST: [u8; 32] = [7; 32];

fn names() -> Vec<String> {
    ["server0", "server1", "helper"].map(String::from).to_vec()
}

fn local(dir: &Path) -> ClusterConfig {
    ClusterConfig::local(&names(), dir, 0).unwrap()
}

/// Runs one thread per party: `connect` with the given cluster and digest, then `body`.
fn run<R: Send + 'static>(
    setups: Vec<(ClusterConfig, [u8; 32])>,
    timeout: Duration,
    body: impl Fn(QuicTransport) -> R + Send + Sync + Clone + 'static,
) -> Vec<Result<R>> {
    let handles: Vec<_> = setups
        .into_iter()
        .zip(names())
        .map(|((cluster, digest), me)| {
            let body = body.clone();
            thread::spawn(move || {
                QuicTransport::connect(&cluster, &me, &names(), digest, timeout).map(body)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn value(from: usize, to: usize, round: u32, len: usize) -> Value {
    let data = (0..len as u64)
        .map(|i| {
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((from * 16 + to) as u64) ^ u64::from(round)
        })
        .collect();
    Value::Ring(ArrayD::from_shape_vec(IxDyn(&[len]), data).unwrap())
}

#[test]
fn three_parties_exchange_batches_over_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = local(dir.path());
    let out = run(
        vec![(cluster.clone(), DIGEST); 3],
        Duration::from_secs(10),
        |mut t| {
            let me = t.me();
            let (mut sent, mut received) = (0, 0);
            for round in 0..4u32 {
                // round 2 carries a 8 MiB tensor
                let len = if round == 2 {
                    1 << 20
                } else {
                    3 + round as usize
                };
                for to in (0..3).filter(|&p| p != me) {
                    let mut b = t.batch(to, round);
                    b.entries
                        .push((10 + u64::from(round), value(me, to, round, len)));
                    b.entries
                        .push((1, Value::Small(ArrayD::from_elem(IxDyn(&[2, 2]), me as u8))));
                    sent += wire::encoded_len(&b) as u64;
                    t.send(to, b).unwrap();
                }
                for from in (0..3).rev().filter(|&p| p != me) {
                    let b = t.recv(from, round).unwrap();
                    assert_eq!(
                        b.get(10 + u64::from(round)),
                        Some(&value(from, me, round, len))
                    );
                    assert_eq!(
                        b.get(1),
                        Some(&Value::Small(ArrayD::from_elem(IxDyn(&[2, 2]), from as u8)))
                    );
                    received += wire::encoded_len(&b) as u64;
                }
            }
            assert_eq!(t.stats().bytes_sent(), sent);
            assert_eq!(t.stats().bytes_received(), received);
            assert_eq!(t.stats().messages_sent(), 8);
            let session = t.session();
            t.finish().unwrap();
            session
        },
    );
    let sessions: Vec<_> = out.into_iter().map(|r| r.unwrap()).collect();
    assert!(sessions.iter().all(|s| *s == sessions[0]));
    assert_ne!(sessions[0], [0; 16]);
}

#[test]
fn a_party_that_finishes_early_still_delivers_its_frames() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = local(dir.path());
    let out = run(
        vec![(cluster, DIGEST); 3],
        Duration::from_secs(10),
        |mut t| {
            if t.me() == 0 {
                let mut b = t.batch(1, 0);
                b.entries.push((5, value(0, 1, 0, 2 << 20)));
                t.send(1, b).unwrap();
                t.send(2, t.batch(2, 0)).unwrap();
                drop(t); // returns once everything is acknowledged
                return true;
            }
            thread::sleep(Duration::from_millis(300));
            let b = t.recv(0, 0).unwrap();
            if t.me() == 1 {
                assert_eq!(b.get(5), Some(&value(0, 1, 0, 2 << 20)));
            }
            // server0 is gone now: asking for more names it at once
            let start = Instant::now();
            let e = t.recv(0, 1).unwrap_err().to_string();
            assert!(e.contains("server0"), "{e}");
            start.elapsed() < Duration::from_secs(5)
        },
    );
    for (i, r) in out.iter().enumerate() {
        println!("{i}: {r:?}");
    }
    assert!(out.into_iter().all(|r| r.unwrap()));
}

#[test]
fn a_batch_of_another_session_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        vec![(local(dir.path()), DIGEST); 3],
        Duration::from_secs(5),
        |mut t| match t.me() {
            0 => {
                let mut b = t.batch(1, 0);
                b.session = 0xeeee_eeee;
                t.send(1, b).unwrap();
                None
            }
            1 => Some(t.recv(0, 0).unwrap_err().to_string()),
            _ => None,
        },
    );
    let e = out.into_iter().nth(1).unwrap().unwrap().unwrap();
    assert!(e.contains("server0") && e.contains("session eeee"), "{e}");
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let cluster = local(dir.path());
    keys::generate(&names(), other.path(), keys::Existing::Refuse).unwrap();
    // server1 has the right name but a certificate (and CA) of another cluster
    let mut rogue = cluster.clone();
    rogue.ca = other.path().join("ca.pem");
    let p = rogue.parties.get_mut("server1").unwrap();
    p.cert = other.path().join("server1.pem");
    p.key = other.path().join("server1.key");
    let setups = vec![
        (cluster.clone(), DIGEST),
        (rogue, DIGEST),
        (cluster, DIGEST),
    ];
    // The refusal comes at the handshake, long before the timeout; a generous one keeps a
    // loaded machine from turning it into a time-out.
    let out = run(setups, Duration::from_secs(10), |_| ());
    let errs: Vec<String> = out
        .into_iter()
        .map(|r| r.unwrap_err().to_string())
        .collect();
    assert!(errs[0].contains("server1"), "{errs:#?}");
    assert!(errs[2].contains("server1"), "{errs:#?}");
    assert!(
        errs.iter()
            .all(|e| e.to_lowercase().contains("certificate") || e.contains("refuses")),
        "{errs:#?}"
    );
}

#[test]
fn a_peer_with_another_graph_is_refused_by_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = local(dir.path());
    let setups = vec![
        (cluster.clone(), DIGEST),
        (cluster.clone(), DIGEST),
        (cluster, [8; 32]),
    ];
    let out = run(setups, Duration::from_secs(3), |_| ());
    let errs: Vec<String> = out
        .into_iter()
        .map(|r| r.unwrap_err().to_string())
        .collect();
    for (i, e) in errs.iter().enumerate() {
        println!("{i}: {e}");
        assert!(e.contains("graph"), "{e}");
    }
    assert!(
        errs[0].contains("helper") && errs[1].contains("helper"),
        "{errs:?}"
    );
    assert!(errs[2].contains("server0"), "{}", errs[2]);
}

#[test]
fn a_peer_that_drops_mid_run_is_named_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = Duration::from_secs(3);
    let out = run(vec![(local(dir.path()), DIGEST); 3], timeout, |mut t| {
        let me = t.me();
        for to in (0..3).filter(|&p| p != me) {
            t.send(to, t.batch(to, 0)).unwrap();
        }
        for from in (0..3).filter(|&p| p != me) {
            t.recv(from, 0).unwrap();
        }
        if me == 2 {
            return None; // the helper quits (its transport is dropped)
        }
        let start = Instant::now();
        let e = t.recv(2, 1).unwrap_err().to_string();
        Some((e, start.elapsed()))
    });
    for r in out.into_iter().take(2) {
        let (e, took) = r.unwrap().unwrap();
        assert!(e.contains("helper") && e.contains("round 1"), "{e}");
        assert!(took < timeout, "{took:?}");
    }
}

/// A party busy with other work than the transport for longer than the QUIC idle timeout
/// (half of `timeout`) stays connected: its transport keeps answering its peers meanwhile.
#[test]
fn a_party_busy_past_the_idle_timeout_stays_connected() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = Duration::from_millis(1600);
    let out = run(
        vec![(local(dir.path()), DIGEST); 3],
        timeout,
        move |mut t| -> Result<Option<Value>> {
            let me = t.me();
            for to in (0..3).filter(|&p| p != me) {
                let mut b = t.batch(to, 0);
                b.entries.push((1, value(me, to, 0, 1000)));
                t.send(to, b)?;
            }
            if me == 2 {
                // busy (not in the transport) for 1.2 s, past the idle timeout of 0.8 s
                thread::sleep(Duration::from_millis(1200));
                for from in 0..2 {
                    t.recv(from, 0)?;
                }
                for to in 0..2 {
                    let mut b = t.batch(to, 1);
                    b.entries.push((2, value(me, to, 1, 3)));
                    t.send(to, b)?;
                }
                t.finish()?;
                return Ok(None);
            }
            for from in (0..3).filter(|&p| p != me) {
                t.recv(from, 0)?;
            }
            let got = t.recv(2, 1)?.get(2).cloned();
            t.finish()?;
            Ok(got)
        },
    );
    for (me, r) in out.into_iter().enumerate().take(2) {
        let got = r.unwrap().unwrap();
        assert_eq!(got, Some(value(2, me, 1, 3)), "party {me}");
    }
}

#[test]
fn a_silent_peer_times_out_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = Duration::from_millis(1500);
    let out = run(
        vec![(local(dir.path()), DIGEST); 3],
        timeout,
        move |mut t| {
            if t.me() == 2 {
                thread::sleep(timeout * 2); // connected, but never sends
                return None;
            }
            let start = Instant::now();
            let e = t.recv(2, 0).unwrap_err().to_string();
            Some((e, start.elapsed()))
        },
    );
    for r in out.into_iter().take(2) {
        let (e, took) = r.unwrap().unwrap();
        assert!(e.contains("helper") && e.contains("round 0"), "{e}");
        assert!(took >= timeout && took < timeout * 2, "{took:?}");
    }
}

#[test]
fn a_peer_that_never_starts_is_named_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = local(dir.path());
    let start = Instant::now();
    let e = QuicTransport::connect(
        &cluster,
        "server0",
        &names(),
        DIGEST,
        Duration::from_secs(1),
    )
    .unwrap_err()
    .to_string();
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(e.contains("server1") || e.contains("helper"), "{e}");
}

#[test]
fn setup_errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = local(dir.path());
    let t = Duration::from_secs(1);
    let connect = |c: &ClusterConfig, me: &str, parties: &[String]| {
        QuicTransport::connect(c, me, parties, DIGEST, t)
            .unwrap_err()
            .to_string()
    };

    let e = connect(&cluster, "nobody", &names());
    assert!(e.contains("nobody"), "{e}");
    let mut with_stranger = names();
    with_stranger.push("stranger".into());
    let e = connect(&cluster, "server0", &with_stranger);
    assert!(e.contains("stranger"), "{e}");

    let addr = cluster.socket_addr("server0").unwrap();
    let squatter = std::net::UdpSocket::bind(addr).unwrap();
    let e = connect(&cluster, "server0", &names());
    assert!(
        e.contains("server0") && e.contains(&addr.to_string()),
        "{e}"
    );
    drop(squatter);

    std::fs::remove_file(dir.path().join("server1.pem")).unwrap();
    let e = connect(&cluster, "server1", &names());
    assert!(
        e.contains("server1.pem") && e.contains("parties.server1.cert"),
        "{e}"
    );

    // server0's certificate does not name helper
    let mut wrong = cluster.clone();
    wrong.parties.get_mut("helper").unwrap().cert = dir.path().join("server0.pem");
    let e = connect(&wrong, "helper", &names());
    assert!(e.contains("helper"), "{e}");
}

#[test]
fn finish_waits_until_every_party_has_finished() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        vec![(local(dir.path()), DIGEST); 3],
        Duration::from_secs(5),
        |mut t| {
            let me = t.me();
            if me == 2 {
                thread::sleep(Duration::from_millis(400)); // the helper is slow
            }
            // server0 and server1 exchange a round; the helper only finishes, late
            if me < 2 {
                t.send(1 - me, t.batch(1 - me, 0)).unwrap();
                t.recv(1 - me, 0).unwrap();
            }
            let start = Instant::now();
            t.finish().map(|()| start.elapsed())
        },
    );
    let took: Vec<Duration> = out.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert!(took[0] >= Duration::from_millis(300), "{took:?}");
    assert!(took[1] >= Duration::from_millis(300), "{took:?}");
}

#[test]
fn a_failing_party_tells_every_peer_why() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = Duration::from_secs(5);
    let out = run(vec![(local(dir.path()), DIGEST); 3], timeout, |mut t| {
        let start = Instant::now();
        match t.me() {
            // finished its part: waits for the others, and learns that the helper failed
            0 => {
                t.send(1, t.batch(1, 0)).unwrap();
                Some((t.finish().unwrap_err().to_string(), start.elapsed()))
            }
            // waits for the helper's batch
            1 => {
                t.recv(0, 0).unwrap();
                Some((t.recv(2, 0).unwrap_err().to_string(), start.elapsed()))
            }
            _ => {
                thread::sleep(Duration::from_millis(300));
                t.abort(&RuntimeError::Node {
                    node: "relu/7".into(),
                    message: "boom".into(),
                });
                None
            }
        }
    });
    for r in out.into_iter().take(2) {
        let (e, took) = r.unwrap().unwrap();
        assert!(
            e.contains("peer helper") && e.contains("helper failed: its program or its inputs"),
            "{e}"
        );
        // the kind travels, not the message
        assert!(!e.contains("boom") && !e.contains("relu/7"), "{e}");
        assert!(took < timeout / 2, "{took:?}");
    }
}

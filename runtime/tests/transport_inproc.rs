//! In-process transport: rounds, early batches, stats, dropped peers, timeouts, sessions.

use std::thread;
use std::time::{Duration, Instant};

use ndarray::{ArrayD, IxDyn};
use shareflow_ops::Value;
use shareflow_runtime::transport::{InProcNetwork, InProcTransport, Transport};
use shareflow_runtime::wire;

fn names() -> Vec<String> {
    ["server0", "server1", "helper"].map(String::from).to_vec()
}

fn ring(me: usize, to: usize, round: u32) -> Value {
    let n = 1 + round as usize;
    let data = (0..n as u64)
        .map(|i| i * 1000 + (me * 10 + to) as u64)
        .collect();
    Value::Ring(ArrayD::from_shape_vec(IxDyn(&[n]), data).unwrap())
}

/// Every party sends every other a batch per round, then receives all of them (in reverse
/// order of peers, so some batches wait in the buffer); returns stats and the bytes it expected.
fn run_party(mut t: InProcTransport, rounds: u32) -> (InProcTransport, u64, u64) {
    let me = t.me();
    let n = t.num_parties();
    let (mut sent, mut received) = (0u64, 0u64);
    for round in 0..rounds {
        for to in (0..n).filter(|&p| p != me) {
            let mut b = t.batch(to, round);
            b.entries.push((round as u64, ring(me, to, round)));
            b.entries.push((99, Value::Seed([me as u8; 32])));
            sent += wire::encoded_len(&b) as u64;
            t.send(to, b).unwrap();
        }
        for from in (0..n).rev().filter(|&p| p != me) {
            let b = t.recv(from, round).unwrap();
            assert_eq!(b.round, round);
            assert_eq!(b.get(round as u64), Some(&ring(from, me, round)));
            assert_eq!(b.get(99), Some(&Value::Seed([from as u8; 32])));
            received += wire::encoded_len(&b) as u64;
        }
    }
    (t, sent, received)
}

#[test]
fn three_parties_exchange_over_rounds_and_count_encoded_bytes() {
    let nets = InProcNetwork::new(names(), [1; 16], Duration::from_secs(3));
    let handles: Vec<_> = nets
        .into_iter()
        .map(|t| thread::spawn(move || run_party(t, 5)))
        .collect();
    for h in handles {
        let (t, sent, received) = h.join().unwrap();
        let s = t.stats();
        assert_eq!(s.bytes_sent(), sent);
        assert_eq!(s.bytes_received(), received);
        assert_eq!(s.messages_sent(), 10);
        assert_eq!(s.messages_received(), 10);
        assert_eq!(s.peers[t.me()], Default::default());
    }
}

#[test]
fn later_rounds_arriving_early_are_buffered() {
    let mut ts = InProcNetwork::new(names(), [2; 16], Duration::from_secs(2));
    let mut t1 = ts.remove(1);
    let mut t0 = ts.remove(0);
    for round in 0..3 {
        t0.send(1, t0.batch(1, round)).unwrap();
    }
    assert_eq!(t1.recv(0, 2).unwrap().round, 2);
    assert_eq!(t1.recv(0, 0).unwrap().round, 0);
    assert_eq!(t1.recv(0, 1).unwrap().round, 1);
    assert_eq!(t1.stats().peers[0].messages_received, 3);
    // a second batch in a round already sent is refused at the sender
    let e = t0.send(1, t0.batch(1, 1)).unwrap_err().to_string();
    assert!(e.contains("server1") && e.contains("round 1"), "{e}");
}

#[test]
fn a_dropped_peer_is_named_not_waited_for() {
    let mut ts = InProcNetwork::new(names(), [3; 16], Duration::from_secs(20));
    let helper = ts.pop().unwrap();
    let mut t0 = ts.remove(0);
    let h = thread::spawn(move || {
        let mut helper = helper;
        helper.send(0, helper.batch(0, 0)).unwrap();
        // the thread ends: its transport is dropped
    });
    h.join().unwrap();
    assert_eq!(t0.recv(2, 0).unwrap().round, 0);
    let start = Instant::now();
    let e = t0.recv(2, 1).unwrap_err().to_string();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(e.contains("helper") && e.contains("round 1"), "{e}");
    let e = t0.send(2, t0.batch(2, 0)).unwrap_err().to_string();
    assert!(e.contains("helper"), "{e}");
}

#[test]
fn a_silent_peer_times_out_naming_peer_and_round() {
    let mut ts = InProcNetwork::new(names(), [4; 16], Duration::from_millis(300));
    let _keep_alive = ts.pop();
    let mut t0 = ts.remove(0);
    let start = Instant::now();
    let e = t0.recv(2, 7).unwrap_err().to_string();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(e.contains("helper") && e.contains("round 7"), "{e}");
}

#[test]
fn a_batch_of_another_session_is_rejected() {
    let mut ts = InProcNetwork::new(names(), [5; 16], Duration::from_secs(2));
    let mut t1 = ts.remove(1);
    let mut t0 = ts.remove(0);
    let mut b = t0.batch(1, 0);
    b.session = 0x0606_0606;
    t0.send(1, b).unwrap();
    let e = t1.recv(0, 0).unwrap_err().to_string();
    assert!(e.contains("server0") && e.contains("session"), "{e}");
}

#[test]
fn misaddressed_sends_are_refused() {
    let mut ts = InProcNetwork::new(names(), [7; 16], Duration::from_secs(2));
    let mut t0 = ts.remove(0);
    assert!(t0.send(0, t0.batch(0, 0)).is_err());
    assert!(t0.send(5, t0.batch(1, 0)).is_err());
    assert!(t0.send(2, t0.batch(1, 0)).is_err());
    assert!(t0.recv(9, 0).is_err());
    assert_eq!(t0.party_name(2), "helper");
    assert_eq!(t0.party_name(9), "?");
}

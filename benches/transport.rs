//! Transports on one machine: the latency of an empty round (ping-pong of an empty batch between
//! two parties) and the throughput of a 64 MiB message (a ring tensor of 8M words, echoed back,
//! so one iteration moves 128 MiB), in-process and over QUIC with mutual TLS on 127.0.0.1.
//!
//! `cargo bench --bench transport` (about a minute).

use std::thread::{self, JoinHandle};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use ndarray::{ArrayD, IxDyn};
use shareflow_ops::Value;
use shareflow_runtime::cluster::ClusterConfig;
use shareflow_runtime::transport::{InProcNetwork, QuicTransport, Transport};

/// The key of the batch entry that tells the echo party to stop.
const STOP: u64 = u64::MAX;
const WORDS: usize = 8 << 20;
const TIMEOUT: Duration = Duration::from_secs(60);

/// Party 0 of a pair whose party 1 echoes every batch back.
struct Pair {
    t0: Box<dyn Transport>,
    echo: Option<JoinHandle<()>>,
    round: u32,
}

fn echo(mut t1: impl Transport) {
    for round in 0.. {
        let Ok(b) = t1.recv(0, round) else { return };
        if b.get(STOP).is_some() {
            return;
        }
        let mut reply = t1.batch(0, round);
        reply.entries = b.entries;
        if t1.send(0, reply).is_err() {
            return;
        }
    }
}

impl Pair {
    fn inproc() -> Pair {
        let names = vec!["server0".to_string(), "server1".to_string()];
        let mut ts = InProcNetwork::new(names, [1; 16], TIMEOUT);
        let t1 = ts.pop().expect("two transports");
        let t0 = ts.pop().expect("two transports");
        Pair {
            t0: Box::new(t0),
            echo: Some(thread::spawn(move || echo(t1))),
            round: 0,
        }
    }

    fn quic(dir: &std::path::Path) -> Pair {
        let names = vec!["server0".to_string(), "server1".to_string()];
        let cluster = ClusterConfig::local(&names, dir, 0).expect("loopback cluster");
        let (c1, n1) = (cluster.clone(), names.clone());
        let echo = thread::spawn(move || {
            let t1 = QuicTransport::connect(&c1, "server1", &n1, [0; 32], TIMEOUT)
                .expect("server1 connects");
            echo(t1);
        });
        let t0 = QuicTransport::connect(&cluster, "server0", &names, [0; 32], TIMEOUT)
            .expect("server0 connects");
        Pair {
            t0: Box::new(t0),
            echo: Some(echo),
            round: 0,
        }
    }

    /// Sends `entries` to party 1 and returns what it echoes.
    fn round_trip(&mut self, entries: Vec<(u64, Value)>) -> Vec<(u64, Value)> {
        let mut b = self.t0.batch(1, self.round);
        b.entries = entries;
        self.t0.send(1, b).expect("send");
        let back = self.t0.recv(1, self.round).expect("recv");
        self.round += 1;
        back.entries
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let mut b = self.t0.batch(1, self.round);
        b.entries.push((STOP, Value::Seed([0; 32])));
        let _ = self.t0.send(1, b);
        if let Some(h) = self.echo.take() {
            let _ = h.join();
        }
    }
}

fn bench_pair(c: &mut Criterion, name: &str, pair: &mut Pair) {
    let mut g = c.benchmark_group(format!("transport/{name}"));
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("empty round", |b| {
        b.iter(|| pair.round_trip(Vec::new()));
    });

    let big = Value::Ring(ArrayD::from_shape_fn(IxDyn(&[WORDS]), |i| i[0] as u64));
    let mut payload = Some(vec![(1, big)]);
    g.throughput(Throughput::Bytes(2 * 8 * WORDS as u64))
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(6));
    g.bench_function("64 MiB echo", |b| {
        b.iter(|| {
            let entries = payload.take().unwrap_or_default();
            payload = Some(pair.round_trip(entries));
        });
    });
    g.finish();
}

fn transports(c: &mut Criterion) {
    let mut pair = Pair::inproc();
    bench_pair(c, "inproc", &mut pair);
    drop(pair);

    let dir = tempfile::tempdir().expect("temporary directory");
    let mut pair = Pair::quic(dir.path());
    bench_pair(c, "quic", &mut pair);
}

criterion_group!(benches, transports);
criterion_main!(benches);

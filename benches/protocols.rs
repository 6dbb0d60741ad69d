//! Protocol layers, every party in this process: one SecureNN DReLU (ReLU) over 10^5 shared
//! elements, one SecureNN 2x2 max-pool layer, and a Pond matmul, each against the plaintext
//! evaluation of the same graph in the same run (and ReLU also against Pond's polynomial).
//! The layer's input is the sum of the client's and the model owner's (a local addition of
//! shares), so that no single party could compute it in the clear. Each secure run includes
//! sharing the inputs and revealing the output to the client, as a layer inside a private
//! prediction does not, so the figures are an upper bound of the layer itself.
//!
//! `cargo bench --bench protocols` (about a minute and a half).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shareflow::compiler::{compile, CompileOptions, CompiledGraph, ProtocolKind};
use shareflow::graphs::{Graph, GraphBuilder, Padding, Tensor};
use shareflow::runtime::exec::{run_in_process, Plan};
use shareflow::runtime::plain::forward;

type Inputs = HashMap<String, HashMap<String, ArrayD<f32>>>;

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(-2.0f32..2.0))
}

/// A graph of `layer` applied to the client's input `x` (and the model owner's `w`, if any),
/// revealed to the client, with random inputs.
fn layer_graph(
    xs: &[usize],
    ws: Option<&[usize]>,
    layer: impl Fn(&Tensor, Option<&Tensor>) -> Tensor,
) -> (Graph, Inputs) {
    let g = GraphBuilder::new();
    let owner = g.party("model-owner");
    let client = g.party("client");
    let x = g.input(client, "x", xs.to_vec());
    let w = ws.map(|ws| g.input(owner, "w", ws.to_vec()));
    layer(&x, w.as_ref()).output_to(client, "y");
    let graph = g.build().unwrap();
    let mut inputs: Inputs = HashMap::new();
    inputs.insert(
        "client".into(),
        HashMap::from([("x".to_string(), random(xs, 1))]),
    );
    inputs.insert(
        "model-owner".into(),
        ws.map(|ws| HashMap::from([("w".to_string(), random(ws, 2))]))
            .unwrap_or_default(),
    );
    (graph, inputs)
}

fn compiled(graph: &Graph, protocol: ProtocolKind) -> (CompiledGraph, Vec<Plan>) {
    let c = compile(graph, protocol, CompileOptions::default()).unwrap();
    let plans = c.programs.iter().map(|p| Plan::new(p).unwrap()).collect();
    (c, plans)
}

/// Benchmarks the graph under each protocol and in plaintext, in one group.
fn group(
    c: &mut Criterion,
    name: &str,
    elements: u64,
    graph: &Graph,
    inputs: &Inputs,
    protocols: &[ProtocolKind],
) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(elements));
    for &p in protocols {
        let (cg, plans) = compiled(graph, p);
        let run = run_in_process(&cg, &plans, inputs, Duration::from_secs(60)).unwrap();
        assert!(
            run.rounds() > 0,
            "{name}/{}: nothing secure left to measure",
            p.name()
        );
        eprintln!(
            "{name}/{}: {} rounds, {:.2} MB sent by all parties",
            p.name(),
            run.rounds(),
            run.bytes() as f64 / 1e6
        );
        g.bench_function(p.name(), |b| {
            b.iter(|| {
                black_box(run_in_process(&cg, &plans, inputs, Duration::from_secs(60)).unwrap())
            })
        });
    }
    let flat: HashMap<String, ArrayD<f32>> = inputs.values().flat_map(|m| m.clone()).collect();
    g.bench_function("plaintext", |b| {
        b.iter(|| black_box(forward(graph, &flat).unwrap()))
    });
    g.finish();
}

fn drelu(c: &mut Criterion) {
    let n = 100_000;
    let (graph, inputs) = layer_graph(&[n], Some(&[n]), |x, w| (x + w.unwrap()).relu());
    group(
        c,
        "relu_1e5",
        n as u64,
        &graph,
        &inputs,
        &[ProtocolKind::SecureNN, ProtocolKind::Pond],
    );
}

fn maxpool(c: &mut Criterion) {
    let shape = [1, 24, 24, 20];
    let (graph, inputs) = layer_graph(&shape, Some(&shape), |x, w| {
        (x + w.unwrap()).maxpool2d([2, 2], [2, 2], Padding::Valid)
    });
    let windows = (12 * 12 * 20) as u64;
    group(
        c,
        "maxpool2x2_1x24x24x20",
        windows,
        &graph,
        &inputs,
        &[ProtocolKind::SecureNN],
    );
}

fn matmul(c: &mut Criterion) {
    let (m, k, n) = (128, 784, 128);
    let (graph, inputs) = layer_graph(&[m, k], Some(&[k, n]), |x, w| x.matmul(w.unwrap()));
    group(
        c,
        "matmul_128x784x128",
        (m * k * n) as u64,
        &graph,
        &inputs,
        &[ProtocolKind::Pond, ProtocolKind::SecureNN],
    );
}

criterion_group! {
    name = protocols;
    config = config();
    targets = drelu, maxpool, matmul
}
criterion_main!(protocols);

//! The QUIC transport changes nothing in a run: with the same (test-only, replayable)
//! randomness, every party over QUIC computes what it computes in process, bit for bit.
//! `Randomness::Replay` exists only with the runtime's `test-randomness` feature, which these
//! tests enable; the binaries cannot fix their randomness, so the process-level tests compare
//! revealed results instead.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::random_inputs;
use shareflow::compiler::{compile, CompileOptions, ProtocolKind};
use shareflow::graphs::GraphBuilder;
use shareflow::runtime::cluster::ClusterConfig;
use shareflow::runtime::exec::{run_in_process_full, Plan, Randomness, Store};
use shareflow::runtime::party::run_over_quic;

#[test]
fn a_run_over_quic_equals_the_in_process_run_bit_for_bit() {
    let g = GraphBuilder::new();
    let owner = g.party("model-owner");
    let client = g.party("client");
    let x = g.input(client, "x", [2, 6]);
    let w = g.input(owner, "w", [6, 3]);
    x.matmul(&w).relu().output_to(client, "y");
    let graph = g.build().unwrap();
    let inputs = random_inputs(&graph, -1.0, 1.0, 9);
    let compiled = compile(&graph, ProtocolKind::SecureNN, CompileOptions::default()).unwrap();
    let randomness = Randomness::Replay([0x5a; 32]);

    let plans: Vec<Plan> = compiled
        .programs
        .iter()
        .map(|p| Plan::new(p).unwrap())
        .collect();
    let mut stores = vec![Store::new(); compiled.parties.len()];
    let timeout = Duration::from_secs(10);
    let local = run_in_process_full(
        &compiled,
        &plans,
        &inputs,
        timeout,
        &mut stores,
        &randomness,
    )
    .unwrap();
    let expected = local.float("client", "y").unwrap();

    let dir = tempfile::tempdir().unwrap();
    let cluster = ClusterConfig::local(&compiled.parties, dir.path(), 0).unwrap();
    let empty = HashMap::new();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = compiled
            .parties
            .iter()
            .map(|party| {
                let (compiled, cluster, randomness) = (&compiled, &cluster, &randomness);
                let inputs = inputs.get(party).unwrap_or(&empty);
                s.spawn(move || {
                    run_over_quic(compiled, party, cluster, inputs, timeout, randomness).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let client = results
        .iter()
        .find(|r| r.metrics.party == "client")
        .unwrap();
    let got = client.float("y").unwrap();
    let bits = |a: &ndarray::ArrayD<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(got),
        bits(expected),
        "over QUIC {got} vs in process {expected}"
    );
    let sent: u64 = results.iter().map(|r| r.metrics.bytes_sent).sum();
    assert_eq!(sent, local.bytes());
}

//! Secure aggregation for federated learning (`runtime::federated`), on a small slice: the
//! securely averaged update equals the plaintext mean within the fixed-point tolerance, only
//! the model owner receives an output, an owner's update reaches the servers only as seeds and
//! shares, a missing owner is left out and counted, and a few FedAvg rounds of network A learn.
//!
//! Tolerance at `f = 16` fractional bits: every input is rounded to the nearest ulp (at most
//! 2^-17, and the mean of K such errors is at most 2^-17), the public 1/K is encoded with an
//! error of at most 2^-17 (times the sum), and the truncation after the scaling adds at most
//! one ulp, so `|secure - plain| <= (3 + |sum|) * 2^-17`; the tests take `(4 + K max|u|) *
//! 2^-17`.

mod common;

use shareflow::compiler::ir::{Exchange, Kernel};
use shareflow::compiler::{compile, verify, CompileOptions, CompiledGraph, ProtocolKind};
use shareflow::graphs::zoo::{ModelKind, MODEL_OWNER};
use shareflow::runtime::data::{data_dir, Mnist, Split, Weights};
use shareflow::runtime::federated::aggregator::Aggregator;
use shareflow::runtime::federated::rounds::{max_abs_diff, plain_mean, tensors};
use shareflow::runtime::federated::{
    aggregation_graph, federated_averaging, owner_name, Contribution, FedConfig, InProcess,
    LocalConfig, LocalTrainer, TensorSpec,
};

const ULP_HALF: f32 = 1.0 / (1 << 17) as f32;

fn specs() -> Vec<TensorSpec> {
    vec![
        TensorSpec {
            name: "dense1/kernel".into(),
            shape: vec![7, 5],
        },
        TensorSpec {
            name: "dense1/bias".into(),
            shape: vec![5],
        },
    ]
}

/// The updates of owners `ids` (from 0): uniform in [-1, 1), owner by owner.
fn updates(ids: &[usize]) -> Vec<Contribution> {
    ids.iter()
        .map(|&i| {
            let mut w = Weights::default();
            for (j, t) in specs().iter().enumerate() {
                let seed = 10 * i as u64 + j as u64;
                w.arrays
                    .insert(t.name.clone(), common::uniform(&t.shape, -1.0, 1.0, seed));
            }
            (owner_name(i), w)
        })
        .collect()
}

fn names(owners: usize) -> Vec<String> {
    (0..owners).map(owner_name).collect()
}

fn compiled(owners: usize, protocol: ProtocolKind) -> CompiledGraph {
    let spec = aggregation_graph(&specs(), &names(owners)).unwrap();
    compile(&spec.graph, protocol, CompileOptions::default()).unwrap()
}

fn plain(contributions: &[Contribution]) -> Weights {
    let u: Vec<Weights> = contributions.iter().map(|(_, w)| w.clone()).collect();
    plain_mean(&u)
}

#[test]
fn the_secure_mean_is_the_plaintext_mean() {
    for protocol in [ProtocolKind::SecureNN, ProtocolKind::Pond] {
        let mut agg = InProcess::new(&specs(), protocol, CompileOptions::default());
        for owners in [1, 3, 7] {
            let ids: Vec<usize> = (0..owners).collect();
            let u = updates(&ids);
            let got = agg.aggregate(&u).unwrap();
            let want = plain(&u);
            let err = max_abs_diff(&want, &got.mean);
            let tol = (4.0 + owners as f32) * ULP_HALF;
            assert!(
                err <= tol,
                "{} with {owners} owners: {err} > {tol}",
                protocol.name()
            );
            // the measured traffic is the compiler's cost report
            let cost = agg.compiled(&names(owners)).unwrap().cost();
            assert_eq!((got.bytes, got.rounds), (cost.bytes, cost.rounds));
        }
    }
}

#[test]
fn a_hundred_owners_aggregate_in_process() {
    // 104 parties: more than the 64 a compiled graph once allowed
    let owners = 100;
    let mut agg = InProcess::new(&specs(), ProtocolKind::SecureNN, CompileOptions::default());
    let ids: Vec<usize> = (0..owners).collect();
    let u = updates(&ids);
    let got = agg.aggregate(&u).unwrap();
    let err = max_abs_diff(&plain(&u), &got.mean);
    let tol = (4.0 + owners as f32) * ULP_HALF;
    assert!(err <= tol, "{owners} owners: {err} > {tol}");
    let compiled = agg.compiled(&names(owners)).unwrap();
    assert_eq!(compiled.parties.len(), owners + 4);
    let cost = compiled.cost();
    assert_eq!((got.bytes, got.rounds), (cost.bytes, cost.rounds));
    // a loaded graph is validated against the bound: 256 parties at most
    assert!(CompiledGraph::from_json(&compiled.to_json().unwrap()).is_ok());
    let names: Vec<String> = (0..253).map(owner_name).collect();
    let spec = aggregation_graph(&specs(), &names).unwrap();
    let e = compile(
        &spec.graph,
        ProtocolKind::SecureNN,
        CompileOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("257 parties (at most 256)"), "{e}");
}

#[test]
fn a_missing_owner_is_left_out_and_counted() {
    let mut agg = InProcess::new(&specs(), ProtocolKind::SecureNN, CompileOptions::default());
    // owner-2 did not show up: the mean is over owner-1 and owner-3, divided by 2
    let u = updates(&[0, 2]);
    let got = agg.aggregate(&u).unwrap();
    let err = max_abs_diff(&plain(&u), &got.mean);
    assert!(err <= 6.0 * ULP_HALF, "{err}");
    let g = agg.compiled(&contributors_of(&u)).unwrap();
    assert!(g.parties.iter().any(|p| p == "owner-3"));
    assert!(!g.parties.iter().any(|p| p == "owner-2"), "{:?}", g.parties);
    // updates that do not match the graph's owners are refused, not misattributed
    let spec = aggregation_graph(&specs(), &names(3)).unwrap();
    let e = shareflow::runtime::federated::aggregator::owner_inputs(&spec, &u).unwrap_err();
    assert!(e.to_string().contains("owner-2"), "{e}");

    // in the loop: with owners missing rounds, the count is reported and the model still learns
    let dir = data_dir(None);
    let train = Mnist::load(&dir, Split::Train, Some(1200)).unwrap();
    let test = Mnist::load(&dir, Split::Test, Some(300)).unwrap();
    let cfg = FedConfig {
        kind: ModelKind::A,
        owners: 4,
        rounds: 4,
        local: LocalConfig {
            steps: 3,
            ..LocalConfig::default()
        },
        absent: 0.4,
        seed: 3,
    };
    let trainer = LocalTrainer::new(cfg.kind, cfg.local).unwrap();
    let mut agg = InProcess::new(
        &tensors(&trainer),
        ProtocolKind::SecureNN,
        CompileOptions::default(),
    );
    let mut counts = Vec::new();
    federated_averaging(&cfg, &train, &test, &mut agg, |r| {
        counts.push(r.contributors);
        assert_eq!(r.aggregate.is_some(), r.contributors > 0);
    })
    .unwrap();
    assert_eq!(counts.len(), 4);
    assert!(counts.iter().any(|&c| c < 4), "{counts:?}");
    assert!(counts.iter().all(|&c| c <= 4), "{counts:?}");
}

fn contributors_of(u: &[Contribution]) -> Vec<String> {
    u.iter().map(|(o, _)| o.clone()).collect()
}

#[test]
fn only_the_model_owner_receives_an_output() {
    for protocol in [ProtocolKind::SecureNN, ProtocolKind::Pond] {
        let g = compiled(3, protocol);
        assert_eq!(g.outputs.len(), specs().len());
        assert!(g.outputs.iter().all(|o| o.party == MODEL_OWNER), "{g:?}");
        for p in &g.programs {
            let outputs = p
                .instrs
                .iter()
                .filter(|i| matches!(i.kernel, Kernel::Output { .. }))
                .count();
            let expected = if p.party == MODEL_OWNER {
                specs().len()
            } else {
                0
            };
            assert_eq!(outputs, expected, "party {}", p.party);
            // a reveal goes only to the model owner
            for i in &p.instrs {
                if let Kernel::Send {
                    to,
                    exchange: Exchange::Reveal,
                } = i.kernel
                {
                    assert_eq!(g.parties[to], MODEL_OWNER, "{} reveals", p.party);
                }
            }
        }
    }
}

#[test]
fn owners_send_only_seeds_and_shares_to_the_servers() {
    for protocol in [ProtocolKind::SecureNN, ProtocolKind::Pond] {
        let g = compiled(3, protocol);
        // the taint check of loading: every private input leaves masked by fresh randomness
        verify(&g).unwrap();
        for owner in ["owner-1", "owner-2", "owner-3"] {
            let host = g.host(owner).unwrap();
            let mut kinds = Vec::new();
            for i in &g.programs[host].instrs {
                match i.kernel {
                    Kernel::Send { to, exchange } => {
                        assert!(
                            g.parties[to].starts_with("server"),
                            "{owner} sends to {}",
                            g.parties[to]
                        );
                        kinds.push(exchange);
                    }
                    Kernel::Recv { .. } | Kernel::Output { .. } => {
                        panic!("{owner} receives something")
                    }
                    _ => {}
                }
            }
            assert!(kinds.contains(&Exchange::Share), "{owner}: {kinds:?}");
            assert!(
                kinds
                    .iter()
                    .all(|k| matches!(k, Exchange::Share | Exchange::Seed)),
                "{owner}: {kinds:?}"
            );
        }
    }
}

#[test]
fn a_few_federated_rounds_of_network_a_learn() {
    let dir = data_dir(None);
    let train = Mnist::load(&dir, Split::Train, Some(1200)).unwrap();
    let test = Mnist::load(&dir, Split::Test, Some(500)).unwrap();
    let cfg = FedConfig {
        kind: ModelKind::A,
        owners: 3,
        rounds: 3,
        local: LocalConfig {
            steps: 5,
            ..LocalConfig::default()
        },
        absent: 0.0,
        seed: 1,
    };
    let trainer = LocalTrainer::new(cfg.kind, cfg.local).unwrap();
    let mut agg = InProcess::new(
        &tensors(&trainer),
        ProtocolKind::SecureNN,
        CompileOptions::default(),
    );
    let mut reports = Vec::new();
    let w =
        federated_averaging(&cfg, &train, &test, &mut agg, |r| reports.push(r.clone())).unwrap();
    assert_eq!(reports.len(), 3);
    let params: usize = w.arrays.values().map(|a| a.len()).sum();
    assert_eq!(params, 118_282);
    for r in &reports {
        assert_eq!(r.contributors, 3);
        // updates of a few steps stay well below 1 in magnitude
        assert!(
            r.max_error <= 8.0 * ULP_HALF,
            "round {}: {}",
            r.round,
            r.max_error
        );
        let cost = agg.compiled(&names(3)).unwrap().cost();
        let a = r.aggregate.as_ref().unwrap();
        assert_eq!((a.bytes, a.rounds), (cost.bytes, cost.rounds));
    }
    let last = reports.last().map(|r| r.accuracy).unwrap_or(0.0);
    assert!(last > 0.7, "accuracy after 3 rounds: {last}");
}

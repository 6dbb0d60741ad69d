//! Joint training on several owners' data (`graphs::joint`, `runtime::train::joint`), on small
//! slices: `concat` and `slice` forward and backward in plaintext and on shares; private joint
//! training, by rows and by columns, gives the weights of the plaintext run of the same graph
//! on the same batches; and the owners' parts reach the servers only as seeds and shares.

mod common;

use std::collections::HashMap;

use ndarray::{ArrayD, Axis, IxDyn};
use shareflow::compiler::ir::{Exchange, Kernel};
use shareflow::compiler::{compile, compile_init, verify, CompileOptions, ProtocolKind};
use shareflow::graphs::joint::{Joint, Split};
use shareflow::graphs::zoo::ModelKind;
use shareflow::graphs::zoo_train::TrainSpec;
use shareflow::graphs::GraphBuilder;
use shareflow::runtime::data::{data_dir, Mnist, Split as DataSplit};
use shareflow::runtime::plain::forward;
use shareflow::runtime::plain::train::TrainConfig;
use shareflow::runtime::train::joint::{joint_schedule, train_plain, train_private};

#[test]
fn concat_and_slice_forward_and_backward() {
    let g = GraphBuilder::new();
    let a_owner = g.party("a");
    let b_owner = g.party("b");
    let a = g.input(a_owner, "a", [2, 3]);
    let b = g.input(b_owner, "b", [2, 2]);
    let c = g.input(a_owner, "c", [2, 5]);
    let joined = a.concat(&b, 1);
    // loss = sum(joined * c): d/da = c[:, :3], d/db = c[:, 3:].
    let loss = joined.mul(&c).reduce_sum(1).reduce_sum(0);
    let grads = g.gradients(&loss, &[a.clone(), b.clone()]).unwrap();
    joined.output_to(a_owner, "joined");
    grads[0].output_to(a_owner, "da");
    grads[1].output_to(a_owner, "db");
    joined.slice(1, 1, 3).output_to(b_owner, "middle");
    let graph = g.build().unwrap();
    let inputs = common::random_inputs(&graph, -2.0, 2.0, 7);
    let plain = common::plaintext(&graph, &inputs);
    let (x, y, z) = (&inputs["a"]["a"], &inputs["b"]["b"], &inputs["a"]["c"]);
    let want = ndarray::concatenate(Axis(1), &[x.view(), y.view()]).unwrap();
    assert_eq!(plain["joined"], want);
    assert_eq!(plain["da"], z.slice_axis(Axis(1), (0..3).into()).to_owned());
    assert_eq!(plain["db"], z.slice_axis(Axis(1), (3..5).into()).to_owned());
    assert_eq!(
        plain["middle"],
        want.slice_axis(Axis(1), (1..4).into()).to_owned()
    );
    for protocol in [ProtocolKind::SecureNN, ProtocolKind::Pond] {
        let (run, _) = common::secure(&graph, protocol, CompileOptions::default(), &inputs);
        for (party, name) in [("a", "joined"), ("a", "da"), ("a", "db"), ("b", "middle")] {
            let got = run.float(party, name).unwrap();
            let err = common::max_abs_diff(got, &plain[name]);
            assert!(err <= 2e-4, "{protocol:?} {name}: {err}");
        }
    }

    // The gradient of a slice puts dy in its place and zeros around it.
    let g = GraphBuilder::new();
    let p = g.party("p");
    let x = g.input(p, "x", [4, 2]);
    let loss = x.slice(0, 1, 2).reduce_sum(1).reduce_sum(0);
    g.gradients(&loss, &[x]).unwrap()[0].output_to(p, "dx");
    let graph = g.build().unwrap();
    let x = ArrayD::zeros(IxDyn(&[4, 2]));
    let eval = forward(&graph, &HashMap::from([("x".to_string(), x)])).unwrap();
    let (_, _, dx) = eval.outputs(&graph).remove(0);
    assert_eq!(
        dx.iter().copied().collect::<Vec<f32>>(),
        [0., 0., 1., 1., 1., 1., 0., 0.]
    );
}

fn data() -> Mnist {
    Mnist::load(&data_dir(None), DataSplit::Train, Some(256)).unwrap()
}

#[test]
fn private_joint_training_gives_the_plaintext_weights_of_the_same_graph() {
    let data = data();
    let cfg = TrainConfig {
        epochs: 1,
        batch: 24,
        ..TrainConfig::default()
    };
    for (owners, split) in [(3, Split::Rows), (3, Split::Columns), (2, Split::Columns)] {
        let j = Joint {
            kind: ModelKind::A,
            owners,
            split,
        };
        let steps = 3;
        let mut reports = Vec::new();
        let mut model = train_private(
            &j,
            &data,
            &cfg,
            ProtocolKind::SecureNN,
            CompileOptions::default(),
            Some(steps),
            |r| reports.push(r),
        )
        .unwrap();
        assert_eq!(reports.len(), steps);
        let cost = model.step_graph().cost();
        assert!(reports
            .iter()
            .all(|r| r.bytes == cost.bytes && r.rounds == cost.rounds));
        let private = model.reveal().unwrap();
        let plain = train_plain(&j, &data, &cfg, Some(steps)).unwrap();
        assert_eq!(private.arrays.len(), 6);
        for (name, p) in &plain.arrays {
            let err = common::max_abs_diff(&private.arrays[name], p);
            assert!(
                err < 2e-3,
                "{owners} owners, {split:?}: {name} differs by {err}"
            );
        }
    }
}

#[test]
fn owners_rows_are_disjoint_and_the_batches_are_the_pooled_ones() {
    let cfg = TrainConfig {
        epochs: 2,
        batch: 12,
        ..TrainConfig::default()
    };
    let rows = Joint {
        kind: ModelKind::A,
        owners: 3,
        split: Split::Rows,
    };
    let steps = joint_schedule(&rows, 100, &cfg);
    // Shards of 34, 33 and 33 rows, 4 of each per step: 8 steps per epoch.
    assert_eq!(steps.len(), 16);
    for s in &steps {
        assert_eq!(s.indices.len(), 12);
        for (k, part) in s.indices.chunks(4).enumerate() {
            let shard = shareflow::runtime::train::joint::shard(100, 3, k);
            assert!(part.iter().all(|i| shard.contains(i)), "step {}", s.step);
        }
    }
    let columns = Joint {
        split: Split::Columns,
        ..rows
    };
    let pooled = shareflow::runtime::plain::train::schedule(100, &cfg);
    let joint: Vec<Vec<usize>> = joint_schedule(&columns, 100, &cfg)
        .into_iter()
        .map(|s| s.indices)
        .collect();
    assert_eq!(
        joint,
        pooled.into_iter().map(|s| s.indices).collect::<Vec<_>>()
    );
}

#[test]
fn the_owners_parts_reach_the_servers_only_as_seeds_and_shares() {
    let spec = TrainSpec {
        seed: 1,
        momentum: 0.9,
        reveal_loss: false,
    };
    for split in [Split::Columns, Split::Rows] {
        let j = Joint {
            kind: ModelKind::A,
            owners: 3,
            split,
        };
        let graph = j.training(6, &spec).unwrap().graph;
        // Pond cannot train A (its softmax gradient needs comparisons).
        for protocol in [ProtocolKind::SecureNN] {
            let o = CompileOptions::default();
            for (name, g) in [
                ("init", compile_init(&graph, protocol, o).unwrap()),
                ("step", compile(&graph, protocol, o).unwrap()),
            ] {
                verify(&g).unwrap();
                assert!(g.outputs.is_empty(), "{:?}", g.outputs);
                let mut senders = std::collections::BTreeSet::new();
                for p in &g.programs {
                    for i in &p.instrs {
                        let Kernel::Send { to, exchange } = i.kernel else {
                            continue;
                        };
                        let to = &g.parties[to];
                        assert_ne!(exchange, Exchange::Reveal, "{} reveals to {to}", p.party);
                        if p.party.starts_with("owner-") {
                            senders.insert(p.party.clone());
                            assert!(
                                matches!(exchange, Exchange::Seed | Exchange::Share),
                                "{split:?}: {} sends {to} a {exchange:?}",
                                p.party
                            );
                            assert!(
                                ["server0", "server1"].contains(&to.as_str()),
                                "{} sends to {to}",
                                p.party
                            );
                        }
                        // No owner receives anything.
                        assert!(!to.starts_with("owner-"), "{} sends to {to}", p.party);
                    }
                }
                // Every owner shares its part of each step, and nothing at init.
                let expected = if name == "step" {
                    j.owner_names()
                } else {
                    vec![]
                };
                assert_eq!(senders.into_iter().collect::<Vec<_>>(), expected, "{name}");
            }
        }
    }
}

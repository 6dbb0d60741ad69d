//! The optimisations of the compiler on small graphs whose optimum is known by hand: round
//! counts, batching, values masked and opened once, constants emitted once.
//!
//! Under Pond a product of a client's `x` and a model owner's `w` takes, round by round:
//! 0. both share their input with the servers;
//! 1. the servers open `x - a` and `w - b` (dealer masks);
//! 2. they open the truncation mask `z + r`;
//! 3. they reveal the result to the client.
//!
//! So one product is 4 rounds, and every product that depends on another adds 2.

use std::collections::{BTreeMap, HashMap, HashSet};

use shareflow_compiler::ir::{Exchange, Kernel, ValueId};
use shareflow_compiler::lower::{HELPER, S0, S1};
use shareflow_compiler::{compile, compile_serving, CompileOptions, CompiledGraph, ProtocolKind};
use shareflow_graphs::zoo::{ModelKind, ZooModel};
use shareflow_graphs::{GraphBuilder, Tensor};

/// Compiles under Pond a graph of a client's `x` [2, 3] and the model owner's `w1`, `w2`
/// [3, 3], built by `f`.
fn pond(f: impl Fn(&GraphBuilder, &Tensor, &Tensor, &Tensor) -> Vec<Tensor>) -> CompiledGraph {
    let g = GraphBuilder::new();
    let owner = g.party("model-owner");
    let client = g.party("client");
    let x = g.input(client, "x", [2, 3]);
    let w1 = g.input(owner, "w1", [3, 3]);
    let w2 = g.input(owner, "w2", [3, 3]);
    for (i, y) in f(&g, &x, &w1, &w2).iter().enumerate() {
        y.output_to(client, &format!("y{i}"));
    }
    compile(
        &g.build().unwrap(),
        ProtocolKind::Pond,
        CompileOptions::default(),
    )
    .unwrap()
}

/// The sends of `host` for `exchange`: (round, shape).
fn sends(g: &CompiledGraph, host: usize, exchange: Exchange) -> Vec<(u32, Vec<usize>)> {
    g.programs[host]
        .instrs
        .iter()
        .filter(|i| matches!(i.kernel, Kernel::Send { exchange: e, .. } if e == exchange))
        .map(|i| (i.round, i.shape.clone()))
        .collect()
}

/// The prediction of `batch` images by network `kind`, compiled for SecureNN.
fn securenn(kind: ModelKind, batch: usize) -> CompiledGraph {
    let zoo = ZooModel::build(kind, batch).unwrap();
    compile(
        &zoo.graph,
        ProtocolKind::SecureNN,
        CompileOptions::default(),
    )
    .unwrap()
}

/// [`securenn`]'s serving programs: setup and prediction.
fn securenn_serving(kind: ModelKind, batch: usize) -> shareflow_compiler::ServingGraph {
    let zoo = ZooModel::build(kind, batch).unwrap();
    compile_serving(
        &zoo.graph,
        ProtocolKind::SecureNN,
        CompileOptions::default(),
    )
    .unwrap()
}

/// Checks that every instruction runs in the earliest round its inputs allow: a local kernel
/// in the last round of its inputs, a send in the round its value is ready, and a receive is
/// ready the round after its send (no batch of these small graphs is split, see
/// `passes::schedule`). Returns the communication depth.
fn assert_earliest(g: &CompiledGraph) -> u32 {
    let mut ready: HashMap<ValueId, u32> = HashMap::new();
    let mut sent: HashMap<ValueId, u32> = HashMap::new();
    // Receives depend on sends of other parties: repeat until every instruction is placed.
    let mut placed = HashSet::new();
    let total: usize = g.programs.iter().map(|p| p.instrs.len()).sum();
    let mut depth = 0;
    while placed.len() < total {
        let before = placed.len();
        for p in &g.programs {
            for i in &p.instrs {
                if placed.contains(&i.id) {
                    continue;
                }
                let earliest = match i.kernel {
                    Kernel::Recv { send, .. } => match sent.get(&send) {
                        Some(&r) => r,
                        None => continue,
                    },
                    _ => match i
                        .inputs
                        .iter()
                        .map(|v| ready.get(v).copied())
                        .collect::<Option<Vec<_>>>()
                    {
                        Some(rs) => rs.into_iter().max().unwrap_or(0),
                        None => continue,
                    },
                };
                assert_eq!(
                    i.round,
                    earliest,
                    "{} ({}) of {} could run in round {earliest}",
                    i.id,
                    i.kernel.name(),
                    p.party
                );
                let is_recv = matches!(i.kernel, Kernel::Recv { .. });
                ready.insert(i.id, if is_recv { earliest + 1 } else { earliest });
                if let Kernel::Send { .. } = i.kernel {
                    sent.insert(i.id, earliest);
                    depth = depth.max(earliest + 1);
                }
                placed.insert(i.id);
            }
        }
        assert!(placed.len() > before, "a receive whose send never runs");
    }
    assert_eq!(g.rounds, depth, "rounds are the communication depth");
    depth
}

#[test]
fn one_product_takes_four_rounds() {
    let g = pond(|_, x, w1, _| vec![x.matmul(w1)]);
    assert_eq!(g.rounds, 4);
    assert_earliest(&g);
}

#[test]
fn independent_products_take_the_rounds_of_one() {
    let g = pond(|_, x, w1, w2| vec![x.matmul(w1), x.matmul(w2)]);
    assert_eq!(g.rounds, 4);
    let g = pond(|_, x, w1, w2| vec![&x.matmul(w1) + &x.matmul(w2)]);
    assert_eq!(g.rounds, 4);
    assert_earliest(&g);
}

#[test]
fn a_chain_of_two_products_takes_twice_the_rounds() {
    let one = pond(|_, x, w1, _| vec![x.matmul(w1)]);
    let chain = pond(|_, x, w1, w2| vec![x.matmul(w1).matmul(w2)]);
    // Sharing and the reveal are one round each; the products 2 and 4.
    assert_eq!((one.rounds, chain.rounds), (4, 6));
    // The model owner sends w2 masked in round 0, with w1 (to both servers), not when the
    // first product is done; the client sends x masked then too.
    let owner = chain.host("model-owner").unwrap();
    let masked = sends(&chain, owner, Exchange::MaskedOpening);
    assert_eq!(masked.iter().filter(|(r, _)| *r == 0).count(), 4);
    assert_eq!(masked.len(), 4);
    assert_earliest(&chain);
}

#[test]
fn reveals_travel_in_one_batch_per_party_pair_and_round() {
    let g = pond(|_, x, w1, w2| {
        let y = x.matmul(w1);
        vec![y.clone(), x.matmul(w2), y.matmul(w2)]
    });
    assert_eq!(g.rounds, 6);
    // The first two outputs are revealed in round 3, with the opening of the third's mask.
    let reveals = sends(&g, S0, Exchange::Reveal);
    assert_eq!(
        reveals.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        vec![3, 3, 5]
    );
    assert!(sends(&g, S0, Exchange::MaskedOpening)
        .iter()
        .any(|(r, _)| *r == 3));
    let cost = g.cost();
    let link = |from: &str, to: &str| {
        cost.links
            .iter()
            .find(|l| l.from == from && l.to == to)
            .unwrap()
            .messages
    };
    // Server 0 sends the client one batch per round it reveals in (3 and 5), not one per output.
    assert_eq!(link("server0", "client"), 2);
    assert_eq!(link("server1", "client"), 2);
    // Server 0 sends server 1 one batch in each round it opens something in: x, w1 and w2
    // come masked from their owners, so only the truncations and y's mask are opened, in
    // rounds 1 and 3.
    let opened: HashSet<u32> = sends(&g, S0, Exchange::MaskedOpening)
        .iter()
        .map(|(r, _)| *r)
        .collect();
    assert_eq!(opened, HashSet::from([1, 3]));
    assert_eq!(link("server0", "server1"), 2);
    assert_earliest(&g);
}

#[test]
fn networks_a_and_d_send_everything_at_the_earliest_round() {
    for kind in [ModelKind::A, ModelKind::D] {
        let zoo = ZooModel::build(kind, 1).unwrap();
        let g = compile(&zoo.graph, ProtocolKind::Pond, CompileOptions::default()).unwrap();
        assert_earliest(&g);
        let s = compile_serving(&zoo.graph, ProtocolKind::Pond, CompileOptions::default()).unwrap();
        assert_earliest(&s.setup);
        // A round fewer: the client's seeds are the setup's, so the dealer's correction of
        // the first product leaves in round 0.
        assert_eq!(
            assert_earliest(&s.predict) + 1,
            g.rounds,
            "network {kind}: serving saves a round"
        );
    }
}

#[test]
fn a_single_prediction_of_every_network_sends_everything_at_the_earliest_round() {
    // No batch of a single prediction holds enough work to be split (`passes::schedule`):
    // SecureNN's programs, single and serving, keep every exchange at its earliest round.
    for kind in [ModelKind::A, ModelKind::B, ModelKind::C, ModelKind::D] {
        assert_earliest(&securenn(kind, 1));
        let s = securenn_serving(kind, 1);
        assert_earliest(&s.setup);
        assert_earliest(&s.predict);
    }
}

#[test]
fn a_value_in_two_products_is_shared_and_opened_once() {
    let g = pond(|_, x, w1, w2| vec![x.matmul(w1), x.matmul(w2)]);
    // The servers open the two truncations only: x, w1 and w2 come masked from their owners.
    assert_eq!(sends(&g, S0, Exchange::MaskedOpening).len(), 2);
    // The client sends x masked once (to each server), however many ops use it.
    let client = g.host("client").unwrap();
    assert_eq!(sends(&g, client, Exchange::MaskedOpening).len(), 2);
    assert_eq!(sends(&g, client, Exchange::Share).len(), 0);
    // Both products use the same opened x and the same share of its mask: on each server the
    // terms e*b_i, a_i*f (and e*f on server 0) of both products read two distinct x-side values.
    for host in [S0, S1] {
        let firsts: HashSet<ValueId> = g.programs[host]
            .instrs
            .iter()
            .filter(|i| i.kernel == Kernel::MatMul)
            .map(|i| i.inputs[0])
            .collect();
        assert_eq!(firsts.len(), 2, "host {host}");
    }
}

#[test]
fn a_square_opens_its_operand_once() {
    let g = pond(|_, x, w1, _| {
        let y = x.matmul(w1);
        vec![&y * &y]
    });
    // A truncation for y (x and w1 come masked from their owners); then y - a once (the
    // dealer's triple is (a, a, a*a)) and a truncation for the square (y twice would make 4).
    assert_eq!(sends(&g, S0, Exchange::MaskedOpening).len(), 3);
    assert_eq!(sends(&g, S1, Exchange::MaskedOpening).len(), 3);
    assert_eq!(g.rounds, 6);
}

#[test]
fn constants_are_emitted_once_per_party() {
    // A Pond ReLU: a polynomial with one truncation (and its constants) per power.
    let g = pond(|_, x, w1, _| vec![x.matmul(w1).relu()]);
    for host in [S0, S1, HELPER] {
        let mut seen = HashSet::new();
        for i in &g.programs[host].instrs {
            if let Kernel::RingConst { values } = &i.kernel {
                assert!(
                    seen.insert((values.clone(), i.shape.clone())),
                    "constant {values:?} twice on host {host}"
                );
            }
        }
    }
}

/// The training step of network `kind` at `batch`, compiled for SecureNN.
fn training_step(kind: ModelKind, batch: usize) -> CompiledGraph {
    let spec = shareflow_graphs::zoo_train::TrainSpec {
        seed: 1,
        momentum: 0.9,
        reveal_loss: false,
    };
    let training = ZooModel::build_training(kind, batch, &spec).unwrap().graph;
    compile(&training, ProtocolKind::SecureNN, CompileOptions::default()).unwrap()
}

#[test]
fn a_training_step_sends_the_image_masked_once_and_opens_none_of_it() {
    // Network A's first layer takes the image in `x.W` and, transposed, in `x^T.dy`: the
    // transpose is done on the shares, so the client sends the image masked once and nothing
    // of it is shared or opened again.
    let g = training_step(ModelKind::A, 4);
    let client = g.parties.iter().position(|p| p == "client").unwrap();
    let image_sized = |host: usize, exchange: Exchange| {
        sends(&g, host, exchange)
            .into_iter()
            .filter(|(_, shape)| shape.iter().product::<usize>() == 4 * 784)
            .count()
    };
    // The image, masked by the client for both servers, and nothing else of its size: the
    // servers open nothing of it.
    assert_eq!(image_sized(client, Exchange::MaskedOpening), 2);
    assert_eq!(image_sized(client, Exchange::Share), 0);
    assert_eq!(image_sized(S0, Exchange::MaskedOpening), 0);
    assert_eq!(image_sized(S1, Exchange::MaskedOpening), 0);
}

/// The convolutions of `program` that take `origin`'s operands: the number of input channels
/// of each (the last axis of its first operand).
fn conv_channels(program: &shareflow_compiler::Program, origin: &str) -> Vec<usize> {
    let shapes: HashMap<ValueId, &[usize]> = program
        .instrs
        .iter()
        .map(|i| (i.id, i.shape.as_slice()))
        .collect();
    program
        .instrs
        .iter()
        .filter(|i| matches!(i.kernel, Kernel::Conv2d { .. }))
        .filter(|i| i.origin.as_deref().is_some_and(|o| o.contains(origin)))
        .map(|i| shapes[&i.inputs[0]][3])
        .collect()
}

/// The shapes of the concatenations in `program`.
fn concats(program: &shareflow_compiler::Program) -> Vec<Vec<usize>> {
    program
        .instrs
        .iter()
        .filter(|i| matches!(i.kernel, Kernel::Concat { .. }))
        .map(|i| i.shape.clone())
        .collect()
}

#[test]
fn a_first_convolution_takes_its_two_beaver_terms_in_one_convolution() {
    // Network B's first convolution (1 input channel, 16 outputs): each server's
    // `conv(e, b_i) + conv(a_i, f)` is one convolution of the inputs concatenated along the
    // channels (2) with the filters concatenated along theirs. Its second (16 -> 16, an
    // output smaller than the operands) keeps two. The helper's dealt `conv(a, b)` is one.
    let g = securenn(ModelKind::B, 2);
    for server in [S0, S1] {
        assert_eq!(conv_channels(&g.programs[server], "'conv1/"), vec![2]);
        assert_eq!(conv_channels(&g.programs[server], "'conv2/"), vec![16, 16]);
    }
    assert_eq!(conv_channels(&g.programs[HELPER], "'conv1/"), vec![1]);
    // Serving: the filters (setup values) are concatenated once, at setup; a prediction
    // concatenates its inputs only.
    let s = securenn_serving(ModelKind::B, 1);
    for server in [S0, S1] {
        assert_eq!(concats(&s.setup.programs[server]), vec![vec![5, 5, 2, 16]]);
        assert_eq!(
            concats(&s.predict.programs[server]),
            vec![vec![1, 28, 28, 2]]
        );
        assert_eq!(
            conv_channels(&s.predict.programs[server], "'conv1/"),
            vec![2]
        );
    }
}

/// The last round in which `program` runs a convolution's gradient, per layer (the earlier ones
/// compute terms of the masks alone).
fn gradient_rounds(program: &shareflow_compiler::Program) -> BTreeMap<String, u32> {
    let mut rounds = BTreeMap::new();
    for i in &program.instrs {
        if matches!(
            i.kernel,
            Kernel::Conv2dBackpropInput { .. } | Kernel::Conv2dBackpropFilter { .. }
        ) {
            let last = rounds
                .entry(i.origin.clone().unwrap_or_default())
                .or_insert(0);
            *last = i.round.max(*last);
        }
    }
    rounds
}

#[test]
fn the_servers_compute_a_training_steps_convolution_gradients_in_the_same_round() {
    // In B's backward pass each server's share of an output gradient's opening is cheap, and
    // the share of the next opening needs the server's convolutions. Sent in one batch, the
    // cheap share would wait for the convolutions and the two servers would compute one after
    // the other; it leaves alone, a round before, and both compute at the same time.
    let g = training_step(ModelKind::B, 128);
    let (s0, s1) = (
        gradient_rounds(&g.programs[S0]),
        gradient_rounds(&g.programs[S1]),
    );
    // the two gradients of the second convolution, the filter's of the first
    assert_eq!(s0.len(), 3, "{s0:?}");
    assert_eq!(s0, s1);
    assert_eq!(g.rounds, 101);
}

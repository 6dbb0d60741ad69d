//! The load-time check of what leaves a party: the zoo's compiled graphs pass it; a graph
//! edited to send the client's image in the clear, or to reveal an output to a party the graph
//! does not name, is refused with an error naming the instruction, the input and the peer.

use shareflow_compiler::ir::{Exchange, Kernel, StoreKey, ValueId};
use shareflow_compiler::lower::{S0, S1};
use shareflow_compiler::{
    compile, compile_init, compile_serving, verify, verify_serving, CompileError, CompileOptions,
    CompiledGraph, Instr, ProtocolKind, ServingGraph,
};
use shareflow_graphs::zoo::{ModelKind, ZooModel, CLIENT, IMAGE, MODEL_OWNER};

/// The networks each protocol compiles (Pond has no max pooling).
fn cases() -> Vec<(ModelKind, ProtocolKind)> {
    let mut out = vec![
        (ModelKind::A, ProtocolKind::Pond),
        (ModelKind::D, ProtocolKind::Pond),
    ];
    out.extend(ModelKind::ALL.iter().map(|&k| (k, ProtocolKind::SecureNN)));
    out
}

fn compiled(kind: ModelKind, protocol: ProtocolKind) -> CompiledGraph {
    let zoo = ZooModel::build(kind, 1).unwrap();
    compile(&zoo.graph, protocol, CompileOptions::default()).unwrap()
}

#[test]
fn the_zoo_graphs_pass_single_and_serving() {
    for (kind, protocol) in cases() {
        let zoo = ZooModel::build(kind, 1).unwrap();
        let single = compile(&zoo.graph, protocol, CompileOptions::default()).unwrap();
        verify(&single).unwrap_or_else(|e| panic!("{kind} {}: {e}", protocol.name()));
        let serving = compile_serving(&zoo.graph, protocol, CompileOptions::default()).unwrap();
        verify_serving(&serving)
            .unwrap_or_else(|e| panic!("{kind} {} serving: {e}", protocol.name()));
    }
}

#[test]
fn the_zoo_training_graphs_pass_init_step_and_reveal() {
    use shareflow_graphs::zoo_train::{reveal_graph, TrainSpec};
    let spec = TrainSpec {
        seed: 1,
        momentum: 0.9,
        reveal_loss: true,
    };
    let o = CompileOptions::default();
    // Pond cannot train the zoo (its softmax gradient needs comparisons); it reveals weights
    for protocol in [ProtocolKind::Pond, ProtocolKind::SecureNN] {
        let reveal = compile(&reveal_graph(ModelKind::D).unwrap(), protocol, o).unwrap();
        verify(&reveal).unwrap_or_else(|e| panic!("D {} reveal: {e}", protocol.name()));
    }
    for (kind, protocol) in [
        (ModelKind::A, ProtocolKind::SecureNN),
        (ModelKind::C, ProtocolKind::SecureNN),
    ] {
        for (build, name) in [
            (ZooModel::build_training as fn(_, _, _) -> _, "seeded"),
            (ZooModel::build_training_from_owner, "from the owner"),
        ] {
            let graph = build(kind, 2, &spec).unwrap().graph;
            for g in [
                compile_init(&graph, protocol, o).unwrap(),
                compile(&graph, protocol, o).unwrap(),
            ] {
                verify(&g).unwrap_or_else(|e| panic!("{kind} {} {name}: {e}", protocol.name()));
            }
        }
        let reveal = compile(&reveal_graph(kind).unwrap(), protocol, o).unwrap();
        verify(&reveal).unwrap_or_else(|e| panic!("{kind} {} reveal: {e}", protocol.name()));
    }
}

/// Adds a send of `value` from `from` to `to` in `round` and its receive, as an editor of the
/// JSON file would: the graph stays well formed (its structural check passes).
fn add_send(g: &mut CompiledGraph, from: usize, to: usize, value: ValueId, exchange: Exchange) {
    let next = g
        .programs
        .iter()
        .flat_map(|p| &p.instrs)
        .map(|i| i.id.0)
        .max()
        .unwrap();
    let source = g.programs[from]
        .instrs
        .iter()
        .find(|i| i.id == value)
        .unwrap()
        .clone();
    let send = Instr {
        id: ValueId(next + 1),
        kernel: Kernel::Send { to, exchange },
        inputs: vec![value],
        kind: source.kind,
        shape: source.shape.clone(),
        // a received value is ready the round after it travels
        round: source.round + u32::from(matches!(source.kernel, Kernel::Recv { .. })),
        origin: None,
    };
    let recv = Instr {
        id: ValueId(next + 2),
        kernel: Kernel::Recv {
            from,
            send: send.id,
        },
        inputs: vec![],
        ..send.clone()
    };
    g.programs[from].instrs.push(send);
    g.programs[to].instrs.push(recv);
    let reloaded = CompiledGraph::from_json(&g.to_json().unwrap()).unwrap();
    assert_eq!(&reloaded, g);
}

#[test]
fn the_clients_image_sent_in_the_clear_to_server0_is_refused() {
    for (kind, protocol) in [
        (ModelKind::A, ProtocolKind::Pond),
        (ModelKind::C, ProtocolKind::SecureNN),
    ] {
        let clean = compiled(kind, protocol);
        let client = clean.host(CLIENT).unwrap();
        let program = &clean.programs[client];
        let input =
            |pred: &dyn Fn(&Instr) -> bool| program.instrs.iter().find(|i| pred(i)).unwrap().id;
        let image = input(&|i| matches!(&i.kernel, Kernel::Input { name } if name == IMAGE));
        let encoded = input(&|i| matches!(i.kernel, Kernel::Encode { .. }));
        // the image itself as a reveal, its encoding under any name
        for (value, exchange) in [
            (image, Exchange::Reveal),
            (encoded, Exchange::Share),
            (encoded, Exchange::MaskedOpening),
        ] {
            let mut g = clean.clone();
            add_send(&mut g, client, S0, value, exchange);
            let err = verify(&g).unwrap_err();
            match &err {
                CompileError::InputLeak {
                    party,
                    input,
                    peer,
                    instr,
                    ..
                } => {
                    assert_eq!((party.as_str(), input.as_str()), (CLIENT, IMAGE));
                    assert_eq!(peer, "server0");
                    assert_eq!(g.programs[client].instrs.last().unwrap().id, *instr);
                }
                other => panic!("{other}"),
            }
            let text = err.to_string();
            assert!(
                text.contains("in the clear") && text.contains("server0"),
                "{text}"
            );
        }
    }
}

#[test]
fn a_share_sent_to_the_party_that_holds_its_mask_is_refused() {
    // the client's masked image goes to server1; server0 holds the seed of the mask
    let clean = compiled(ModelKind::A, ProtocolKind::SecureNN);
    let client = clean.host(CLIENT).unwrap();
    let masked = clean.programs[client]
        .instrs
        .iter()
        .find(|i| matches!(i.kernel, Kernel::Send { to, .. } if to == S1))
        .unwrap()
        .inputs[0];
    let mut g = clean.clone();
    add_send(&mut g, client, S0, masked, Exchange::Share);
    let err = verify(&g).unwrap_err().to_string();
    assert!(err.contains("the receiver holds"), "{err}");
    assert!(err.contains(IMAGE) && err.contains("server0"), "{err}");
}

#[test]
fn an_output_revealed_to_a_party_the_graph_does_not_name_is_refused() {
    for protocol in [ProtocolKind::Pond, ProtocolKind::SecureNN] {
        let clean = compiled(ModelKind::A, protocol);
        let client = clean.host(CLIENT).unwrap();
        let owner = clean.host(MODEL_OWNER).unwrap();
        // server0's share of the logits, which it reveals to the client
        let share = clean.programs[S0]
            .instrs
            .iter()
            .find(|i| {
                matches!(i.kernel, Kernel::Send { to, exchange: Exchange::Reveal } if to == client)
            })
            .unwrap()
            .inputs[0];
        for exchange in [Exchange::Reveal, Exchange::MaskedOpening] {
            let mut g = clean.clone();
            add_send(&mut g, S0, owner, share, exchange);
            let err = verify(&g).unwrap_err();
            assert!(
                matches!(&err, CompileError::OutputLeak { party, peer, .. }
                    if party == "server0" && peer == MODEL_OWNER),
                "{err}"
            );
        }
        // the client keeping an output under another name
        let mut g = clean.clone();
        for i in &mut g.programs[client].instrs {
            if let Kernel::Output { name } = &mut i.kernel {
                *name = "weights".into();
            }
        }
        let err = verify(&g).unwrap_err().to_string();
        assert!(err.contains("\"weights\""), "{err}");
    }
}

#[test]
fn a_huge_shape_is_refused_at_load_with_the_limit() {
    let mut g = compiled(ModelKind::A, ProtocolKind::SecureNN);
    let json = g.to_json().unwrap();
    // an expansion of a trillion words, as in a hand-edited file
    let instr = g.programs[S0]
        .instrs
        .iter_mut()
        .find(|i| matches!(i.kernel, Kernel::Expand { .. }))
        .unwrap();
    let id = instr.id;
    if let Kernel::Expand { shape, .. } = &mut instr.kernel {
        *shape = vec![1_000_000, 1_000_000];
    }
    instr.shape = vec![1_000_000, 1_000_000];
    let err = CompiledGraph::from_json(&g.to_json().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{id} (expand) of party server0")),
        "{err}"
    );
    assert!(err.contains("limit of 4294967296 bytes"), "{err}");
    // dimensions whose product overflows
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["programs"][0]["instrs"][0]["shape"] = serde_json::json!([u64::MAX, u64::MAX]);
    let err = CompiledGraph::from_json(&value.to_string())
        .unwrap_err()
        .to_string();
    assert!(err.contains("limit"), "{err}");
    // a round far beyond any program
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["programs"][0]["instrs"][0]["round"] = serde_json::json!(u32::MAX);
    let err = CompiledGraph::from_json(&value.to_string())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("round 4294967295") && err.contains("65536"),
        "{err}"
    );
}

/// Each server's share of the model owner's weights: the first value it receives from the
/// owner that is not a seed, else the first expansion of a seed the owner sent it.
fn weight_share(g: &CompiledGraph, server: usize) -> ValueId {
    let owner = g.host(MODEL_OWNER).unwrap();
    let instrs = &g.programs[server].instrs;
    let from_owner = |i: &Instr| matches!(i.kernel, Kernel::Recv { from, .. } if from == owner);
    if let Some(i) = instrs
        .iter()
        .find(|i| from_owner(i) && i.kind != shareflow_ops::ValueKind::Seed)
    {
        return i.id;
    }
    let seed = instrs.iter().find(|i| from_owner(i)).unwrap().id;
    instrs
        .iter()
        .find(|i| matches!(i.kernel, Kernel::Expand { .. }) && i.inputs.first() == Some(&seed))
        .unwrap()
        .id
}

/// Asserts that `err` refuses server0's program at the send added last, naming its value.
fn refused_at_server0(g: &CompiledGraph, err: &CompileError) {
    let send = g.programs[S0].instrs.last().unwrap();
    match err {
        CompileError::NotRecompiled { party, instr, .. } => {
            assert_eq!(party, "server0", "{err}");
            assert_eq!(*instr, Some(send.id), "{err}");
        }
        other => panic!("{other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("server0") && text.contains(&send.id.to_string()),
        "{text}"
    );
    assert!(text.contains(&send.inputs[0].to_string()), "{text}");
}

#[test]
fn the_weights_revealed_to_the_client_by_both_servers_are_refused() {
    // the client receives an output, the servers hold no private input: only the logical
    // graph says that what they reveal is not the logits
    for (kind, protocol) in [
        (ModelKind::A, ProtocolKind::Pond),
        (ModelKind::C, ProtocolKind::SecureNN),
    ] {
        let clean = compiled(kind, protocol);
        let client = clean.host(CLIENT).unwrap();
        let mut g = clean.clone();
        for server in [S1, S0] {
            let share = weight_share(&clean, server);
            add_send(&mut g, server, client, share, Exchange::Reveal);
        }
        let err = verify(&g).unwrap_err();
        refused_at_server0(&g, &err);
    }
}

/// The serving graphs of A under Pond and C under SecureNN.
fn served() -> Vec<(ModelKind, ServingGraph)> {
    [
        (ModelKind::A, ProtocolKind::Pond),
        (ModelKind::C, ProtocolKind::SecureNN),
    ]
    .into_iter()
    .map(|(kind, protocol)| {
        let zoo = ZooModel::build(kind, 1).unwrap();
        let g = compile_serving(&zoo.graph, protocol, CompileOptions::default()).unwrap();
        (kind, g)
    })
    .collect()
}

#[test]
fn the_stored_weights_revealed_to_the_client_in_a_prediction_are_refused() {
    for (_, clean) in served() {
        let client = clean.predict.host(CLIENT).unwrap();
        let mut g = clean.clone();
        for server in [S1, S0] {
            let load = clean.predict.programs[server]
                .instrs
                .iter()
                .find(|i| {
                    matches!(i.kernel, Kernel::Load { .. })
                        && i.kind != shareflow_ops::ValueKind::Seed
                })
                .unwrap()
                .id;
            add_send(&mut g.predict, server, client, load, Exchange::Reveal);
        }
        let err = verify_serving(&g).unwrap_err();
        refused_at_server0(&g.predict, &err);
    }
}

/// The client's masks drawn once at setup and loaded by every prediction: each prediction's
/// `x - a` would share `a` with the others (their difference is `x1 - x2`). The load-time
/// check refuses the client's send itself, before the recompilation would.
#[test]
fn the_clients_masks_fixed_at_setup_are_refused() {
    for (kind, mut g) in served() {
        let client = g.predict.host(CLIENT).unwrap();
        let mut next = [&g.setup, &g.predict]
            .iter()
            .flat_map(|c| c.programs.iter().flat_map(|p| &p.instrs))
            .map(|i| i.id.0)
            .max()
            .unwrap();
        let draws: Vec<Instr> = g.predict.programs[client]
            .instrs
            .iter()
            .filter(|i| matches!(i.kernel, Kernel::Expand { .. }))
            .cloned()
            .collect();
        assert!(!draws.is_empty(), "{kind}: the client draws its masks");
        for draw in draws {
            // Setup draws it (the seed's id is the same there) and stores it ...
            next += 1;
            let store = Instr {
                id: ValueId(next),
                kernel: Kernel::Store {
                    key: StoreKey::Value(draw.id),
                },
                inputs: vec![draw.id],
                ..draw.clone()
            };
            let setup = &mut g.setup.programs[client].instrs;
            setup.push(Instr {
                round: 0,
                ..draw.clone()
            });
            setup.push(Instr { round: 0, ..store });
            // ... and every prediction loads it.
            let predict = &mut g.predict.programs[client].instrs;
            let at = predict.iter().position(|i| i.id == draw.id).unwrap();
            predict[at].kernel = Kernel::Load {
                key: StoreKey::Value(draw.id),
            };
            predict[at].inputs.clear();
        }
        match verify_serving(&g).unwrap_err() {
            CompileError::InputLeak { party, input, .. } => {
                assert_eq!((party.as_str(), input.as_str()), (CLIENT, IMAGE), "{kind}");
            }
            other => panic!("{kind}: {other}"),
        }
    }
}

#[test]
fn a_graph_without_its_logical_graph_is_refused() {
    let mut g = compiled(ModelKind::A, ProtocolKind::Pond);
    g.source = None;
    let err = verify(&g).unwrap_err().to_string();
    assert!(err.contains("logical graph"), "{err}");
}

//! Drawings of compiled graphs: one box per layer and party, exchanges aggregated per round
//! and adding up to the cost report, layers drawn in detail on request.

use shareflow_compiler::dot::{to_dot_with, Detail, Key, View};
use shareflow_compiler::ir::Exchange;
use shareflow_compiler::{
    compile, compile_serving, CompileError, CompileOptions, CompiledGraph, ProtocolKind,
};
use shareflow_graphs::zoo::{ModelKind, ZooModel};

fn compiled(kind: ModelKind, protocol: ProtocolKind) -> CompiledGraph {
    let zoo = ZooModel::build(kind, 1).unwrap();
    compile(&zoo.graph, protocol, CompileOptions::default()).unwrap()
}

/// The flows of each round add up, with one frame header per message, to the cost report's
/// bytes of that round; every round's messages are drawn.
fn assert_rounds_add_up(g: &CompiledGraph, view: &View) {
    let cost = g.cost();
    assert_eq!(cost.bytes_per_round.len(), g.rounds as usize);
    for (r, &bytes) in cost.bytes_per_round.iter().enumerate() {
        let r = r as u32;
        let flows: u64 = view
            .flows
            .iter()
            .filter(|((_, _, round), _)| *round == r)
            .map(|(_, f)| f.bytes)
            .sum();
        assert_eq!(flows + view.frame_bytes(r), bytes, "round {r}");
    }
    let values: u32 = view.flows.values().map(|f| f.count()).sum();
    let sends = g
        .programs
        .iter()
        .flat_map(|p| &p.instrs)
        .filter(|i| matches!(i.kernel, shareflow_compiler::ir::Kernel::Send { .. }))
        .count();
    assert_eq!(values as usize, sends);
}

#[test]
fn securenn_a_is_one_box_per_layer_and_party() {
    let g = compiled(ModelKind::A, ProtocolKind::SecureNN);
    let view = View::of(&g, &Detail::Layers).unwrap();
    let names: Vec<&str> = view.layers.names().iter().map(String::as_str).collect();
    for layer in [
        "image", "dense1", "relu1", "dense2", "relu2", "dense3", "logits",
    ] {
        assert!(names.contains(&layer), "no layer {layer} in {names:?}");
    }
    // Every party has boxes, and no box is a single kernel.
    for host in 0..g.parties.len() {
        assert!(
            view.vertices.values().any(|v| v.host == host),
            "party {host}"
        );
    }
    assert!(view.vertices.keys().all(|k| matches!(k, Key::Group { .. })));
    assert!(view.vertices.len() <= names.len() * g.parties.len());
    let kernels: usize = view.vertices.values().map(|v| v.kernels).sum();
    assert_eq!(
        kernels,
        g.programs.iter().map(|p| p.instrs.len()).sum::<usize>()
    );
    assert_rounds_add_up(&g, &view);
    // The logits are revealed to the client, by both servers, in the last rounds.
    let logits = view.layers.find("logits").unwrap();
    let client_logits = Key::Group {
        layer: logits,
        host: 4,
    };
    let reveals: Vec<_> = view
        .flows
        .iter()
        .filter(|((a, b, _), _)| *a == client_logits || *b == client_logits)
        .collect();
    assert_eq!(reveals.len(), 2, "{reveals:?}");
    for ((a, _, round), flow) in reveals {
        // Towards the client's box only.
        assert_eq!(
            (flow.forward, flow.backward),
            (*a != client_logits, *a == client_logits)
        );
        // One share of the [1, 10] logits: an entry header, two dimensions (a byte each),
        // ten words.
        assert_eq!(flow.bytes, 6 + 2 + 10 * 8);
        assert!(*round + 2 >= g.rounds, "round {round} of {}", g.rounds);
        assert_eq!(
            flow.kinds.keys().copied().collect::<Vec<_>>(),
            [Exchange::Reveal]
        );
    }
}

#[test]
fn securenn_c_and_pond_serving_add_up_per_round() {
    let g = compiled(ModelKind::C, ProtocolKind::SecureNN);
    let view = View::of(&g, &Detail::Layers).unwrap();
    assert_rounds_add_up(&g, &view);
    // Far fewer boxes and edges than kernels and exchanges.
    assert!(view.vertices.len() <= 60, "{} boxes", view.vertices.len());
    assert!(
        view.flows.len() + view.data.len() <= 250,
        "{} exchange and {} data edges",
        view.flows.len(),
        view.data.len()
    );
    let zoo = ZooModel::build(ModelKind::A, 1).unwrap();
    let s = compile_serving(&zoo.graph, ProtocolKind::Pond, CompileOptions::default()).unwrap();
    for g in [&s.setup, &s.predict] {
        assert_rounds_add_up(g, &View::of(g, &Detail::Layers).unwrap());
    }
}

#[test]
fn one_layer_or_every_layer_in_detail() {
    let g = compiled(ModelKind::A, ProtocolKind::Pond);
    let layers = View::of(&g, &Detail::Layers).unwrap();
    let dense2 = layers.layers.find("dense2").unwrap();
    let one = View::of(&g, &Detail::Layer("dense2".into())).unwrap();
    assert_rounds_add_up(&g, &one);
    // dense2's kernels, sends excepted (drawn as their exchange edges), are single vertices;
    // the other layers stay boxes.
    let sends = |layer_kernels: &dyn Fn(&shareflow_compiler::Instr) -> bool| {
        g.programs
            .iter()
            .flat_map(|p| &p.instrs)
            .filter(|i| layer_kernels(i))
            .count()
    };
    let in_dense2 =
        |i: &shareflow_compiler::Instr| i.origin.as_deref().is_some_and(|o| o.contains("'dense2/"));
    let dense2_kernels = sends(&|i| {
        in_dense2(i) && !matches!(i.kernel, shareflow_compiler::ir::Kernel::Send { .. })
    });
    let singles = one
        .vertices
        .iter()
        .filter(|(k, v)| matches!(k, Key::Kernel(_)) && v.layer == dense2)
        .count();
    assert_eq!(singles, dense2_kernels);
    assert_eq!(
        one.vertices.len(),
        layers.vertices.len()
            - layers
                .vertices
                .values()
                .filter(|v| v.layer == dense2)
                .count()
            + singles
    );
    let all = View::of(&g, &Detail::All).unwrap();
    assert_rounds_add_up(&g, &all);
    assert!(all.vertices.keys().all(|k| matches!(k, Key::Kernel(_))));
    // A layer that is not there is an error naming it and the layers that are.
    match to_dot_with(&g, &Detail::Layer("conv9".into())) {
        Err(CompileError::Layer { layer, known }) => {
            assert_eq!(layer, "conv9");
            assert!(known.contains("dense2"), "{known}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_text_has_a_cluster_per_party_and_a_rank_per_round() {
    let g = compiled(ModelKind::D, ProtocolKind::SecureNN);
    let text = to_dot_with(&g, &Detail::Layers).unwrap();
    for (host, party) in g.parties.iter().enumerate() {
        assert!(
            text.contains(&format!("subgraph cluster_p{host} {{ label=\"{party}\"")),
            "no cluster for {party}"
        );
    }
    for r in 0..=g.rounds {
        assert!(text.contains(&format!("round{r} [")), "no round {r}");
    }
    // The round axis, and every box between two of its headings.
    assert!(text.contains("round0 -> round1 -> "));
    let view = View::of(&g, &Detail::Layers).unwrap();
    let placed = text.matches(" [style=invis, weight=0];").count();
    assert_eq!(placed, view.vertices.len());
    // Labels of exchange edges: round, bytes, kinds.
    assert!(text.contains("label=\"r0: "));
    assert!(text.contains(" masked opening"));
}

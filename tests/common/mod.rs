//! Helpers shared by the integration tests: run a graph in plaintext and under a protocol,
//! with inputs drawn deterministically.

#![allow(dead_code)]

pub mod lowered;

use std::collections::HashMap;
use std::time::Duration;

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use shareflow::compiler::{compile, CompileOptions, CompiledGraph, ProtocolKind};
use shareflow::graphs::{Graph, Op};
use shareflow::runtime::exec::{run_in_process, InProcessRun, Plan};
use shareflow::runtime::plain::forward;

/// Uniform values in `[lo, hi)`.
pub fn uniform(shape: &[usize], lo: f32, hi: f32, seed: u64) -> ArrayD<f32> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.random_range(lo..hi))
}

/// Inputs for every input node of `graph`, uniform in `[lo, hi)`, keyed by party then name.
pub fn random_inputs(
    graph: &Graph,
    lo: f32,
    hi: f32,
    seed: u64,
) -> HashMap<String, HashMap<String, ArrayD<f32>>> {
    let mut out: HashMap<String, HashMap<String, ArrayD<f32>>> = HashMap::new();
    for (i, id) in graph.input_nodes().into_iter().enumerate() {
        let node = graph.node(id).unwrap();
        let Op::Input { party, name } = &node.op else {
            unreachable!()
        };
        out.entry(graph.party_name(*party).to_string())
            .or_default()
            .insert(
                name.clone(),
                uniform(node.shape.dims(), lo, hi, seed + i as u64),
            );
    }
    out
}

/// The plaintext outputs (by output name).
pub fn plaintext(
    graph: &Graph,
    inputs: &HashMap<String, HashMap<String, ArrayD<f32>>>,
) -> HashMap<String, ArrayD<f32>> {
    let flat: HashMap<String, ArrayD<f32>> = inputs.values().flat_map(|m| m.clone()).collect();
    let eval = forward(graph, &flat).unwrap();
    eval.outputs(graph)
        .into_iter()
        .map(|(name, _, v)| (name, v))
        .collect()
}

/// Compiles and runs in process; returns the run and the compiled graph.
pub fn secure(
    graph: &Graph,
    protocol: ProtocolKind,
    options: CompileOptions,
    inputs: &HashMap<String, HashMap<String, ArrayD<f32>>>,
) -> (InProcessRun, CompiledGraph) {
    let compiled = compile(graph, protocol, options).unwrap();
    let plans: Vec<Plan> = compiled
        .programs
        .iter()
        .map(|p| Plan::new(p).unwrap())
        .collect();
    let run = run_in_process(&compiled, &plans, inputs, Duration::from_secs(30)).unwrap();
    (run, compiled)
}

/// The largest absolute difference.
pub fn max_abs_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

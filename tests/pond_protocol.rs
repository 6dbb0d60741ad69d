//! Pond as a protocol: what the servers see, what the dealer sends, and what it refuses.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use ndarray::ArrayD;
use shareflow::compiler::ir::{Exchange, Kernel, ValueId};
use shareflow::compiler::lower::{Lowerer, COMPUTE_PARTIES, HELPER, S0, S1};
use shareflow::compiler::{
    compile, CompileError, CompileOptions, CompiledGraph, Instr, ProtocolKind, Truncation,
};
use shareflow::graphs::zoo::{ModelKind, ZooModel};
use shareflow::graphs::{GraphBuilder, Padding};
use shareflow::ops::ValueKind;
use shareflow::runtime::exec::{run_in_process, Plan};

fn plans(g: &CompiledGraph) -> Vec<Plan> {
    g.programs.iter().map(|p| Plan::new(p).unwrap()).collect()
}

/// Chi-square statistic of the top byte of `words` against the uniform distribution.
fn chi_square_top_byte(words: &[u64]) -> f64 {
    let mut counts = [0usize; 256];
    for w in words {
        counts[(w >> 56) as usize] += 1;
    }
    let expected = words.len() as f64 / 256.0;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

#[test]
fn each_servers_share_of_an_input_is_uniform() {
    // A hand-built program: the client shares 10k zeros (the worst case for a bad mask) and
    // each server outputs its raw share.
    let mut parties: Vec<String> = COMPUTE_PARTIES.iter().map(|s| s.to_string()).collect();
    parties.push("client".into());
    let mut cx = Lowerer::new(parties.clone(), CompileOptions::default());
    let client = 3;
    let n = 10_000;
    let x = cx.emit(
        client,
        Kernel::Input { name: "x".into() },
        &[],
        ValueKind::Float,
        &[n],
    );
    let shared = cx.share(x);
    for (i, host) in [(0, S0), (1, S1)] {
        cx.emit(
            host,
            Kernel::Output {
                name: "share".into(),
            },
            &[shared.s[i]],
            ValueKind::Ring,
            &[n],
        );
    }
    let g = shareflow::compiler::assemble(
        cx.low,
        parties,
        ProtocolKind::Pond,
        CompileOptions::default(),
    )
    .unwrap();
    let inputs = HashMap::from([(
        "client".to_string(),
        HashMap::from([("x".to_string(), ArrayD::zeros(vec![n]))]),
    )]);
    let run = run_in_process(&g, &plans(&g), &inputs, Duration::from_secs(10)).unwrap();
    // 255 degrees of freedom: the 0.1% critical value is 330.5.
    let mut sums = vec![0u64; n];
    for server in ["server0", "server1"] {
        let share = run.party(server).unwrap().outputs["share"]
            .as_ring("test")
            .unwrap();
        let words: Vec<u64> = share.iter().copied().collect();
        let chi = chi_square_top_byte(&words);
        assert!(chi < 330.5, "{server}: chi-square {chi}");
        for (s, w) in sums.iter_mut().zip(&words) {
            *s = s.wrapping_add(*w);
        }
    }
    assert!(
        sums.iter().all(|&s| s == 0),
        "the shares add up to the input"
    );
}

/// The instruction that makes `id`, with its host.
fn find_instr(g: &CompiledGraph, id: ValueId) -> Option<(usize, &Instr)> {
    g.programs
        .iter()
        .flat_map(|p| p.instrs.iter().map(move |i| (p.host, i)))
        .find(|(_, i)| i.id == id)
}

/// Walks back from `v` through the additive ops of its host to an `Expand` of a seed that
/// the receiver `to` does not hold.
fn masked_by_foreign_seed(g: &CompiledGraph, v: ValueId, to: usize) -> bool {
    let instr = |id: ValueId| find_instr(g, id);
    let Some((host, i)) = instr(v) else {
        return false;
    };
    match &i.kernel {
        Kernel::Expand { .. } => {
            // The seed is either sampled here or received: the other end must not be `to`.
            let Some((_, seed)) = instr(i.inputs[0]) else {
                return false;
            };
            match &seed.kernel {
                Kernel::SampleSeed => g.programs.iter().all(|p| {
                    p.instrs.iter().all(|r| match r.kernel {
                        Kernel::Recv { send, .. } => {
                            instr(send).is_none_or(|(_, s)| s.inputs[0] != seed.id) || p.host != to
                        }
                        _ => true,
                    })
                }),
                Kernel::Recv { from, .. } => *from != to,
                _ => false,
            }
        }
        // The low bytes of a masked word are masked by the mask's low bytes.
        Kernel::LowBytes { .. } => masked_by_foreign_seed(g, i.inputs[0], to),
        Kernel::Add | Kernel::Sub => {
            let here = |a: &ValueId| instr(*a).is_some_and(|(h, _)| h == host);
            if i.inputs
                .iter()
                .any(|a| here(a) && masked_by_foreign_seed(g, *a, to))
            {
                return true;
            }
            // A truncation's mask `R 2^f + lambda` folded into a dealer product: the high
            // bits by a foreign draw shifted left by f, the low f bits by the helper's own
            // lambda, within the product's share.
            i.inputs.iter().any(|&a| {
                let Some((h, shl)) = instr(a) else {
                    return false;
                };
                let Kernel::Shl { bits } = shl.kernel else {
                    return false;
                };
                h == host
                    && masked_by_foreign_seed(g, shl.inputs[0], to)
                    && i.inputs
                        .iter()
                        .any(|&b| b != a && low_bits_by_helper_draw(g, b, bits))
            })
        }
        _ => false,
    }
}

/// Whether `v` is a sum with a term the helper dealt that holds `x & (2^bits - 1)` of a draw
/// of a seed the helper keeps to itself (so the low `bits` bits of `v` are uniform to anyone
/// else).
fn low_bits_by_helper_draw(g: &CompiledGraph, v: ValueId, bits: u32) -> bool {
    let instr = |id: ValueId| find_instr(g, id);
    let Some((host, i)) = instr(v) else {
        return false;
    };
    match &i.kernel {
        Kernel::Add | Kernel::Sub => i
            .inputs
            .iter()
            .any(|&a| low_bits_by_helper_draw(g, a, bits)),
        Kernel::Recv { from, send } if *from == HELPER => {
            instr(*send).is_some_and(|(_, s)| low_bits_by_helper_draw(g, s.inputs[0], bits))
        }
        Kernel::AndConst { value } if host == HELPER && *value == (1u64 << bits) - 1 => {
            let Some((_, draw)) = instr(i.inputs[0]) else {
                return false;
            };
            let Kernel::Expand { .. } = draw.kernel else {
                return false;
            };
            let seed = draw.inputs[0];
            let sampled = instr(seed).is_some_and(|(_, s)| matches!(s.kernel, Kernel::SampleSeed));
            let sent = g
                .programs
                .iter()
                .flat_map(|p| &p.instrs)
                .any(|r| matches!(r.kernel, Kernel::Send { .. }) && r.inputs[0] == seed);
            sampled && !sent
        }
        _ => false,
    }
}

#[test]
fn servers_only_receive_seeds_shares_and_masked_openings() {
    for kind in [ModelKind::A, ModelKind::D] {
        let zoo = ZooModel::build(kind, 2).unwrap();
        let g = compile(&zoo.graph, ProtocolKind::Pond, CompileOptions::default()).unwrap();
        let mut checked = 0;
        for p in &g.programs {
            for i in &p.instrs {
                let Kernel::Send { to, exchange } = i.kernel else {
                    continue;
                };
                if to == HELPER {
                    // The dealer receives the seeds of the masks an input owner sends with.
                    assert_eq!(exchange, Exchange::Seed, "{} to the helper", i.id);
                    assert_eq!(i.kind, ValueKind::Seed, "{} to the helper", i.id);
                    continue;
                }
                if to != S0 && to != S1 {
                    // Only the client receives anything else: its logits.
                    assert_eq!(exchange, Exchange::Reveal, "{} to {}", i.id, g.parties[to]);
                    assert_eq!(g.parties[to], "client");
                    continue;
                }
                assert_ne!(
                    i.kind,
                    ValueKind::Float,
                    "{}: a server receives a float",
                    i.id
                );
                match exchange {
                    Exchange::Seed => assert_eq!(i.kind, ValueKind::Seed),
                    Exchange::Share | Exchange::MaskedOpening => {
                        // A share of a masked value: its own share is masked by a seed the
                        // receiver does not hold, or it is the other server's share of a value
                        // masked by the dealer.
                        let src = i.inputs[0];
                        assert!(
                            masked_by_foreign_seed(&g, src, to),
                            "{} ({:?}) from {} to {} is not masked by a seed the receiver lacks",
                            i.id,
                            exchange,
                            p.party,
                            g.parties[to]
                        );
                    }
                    Exchange::Reveal => panic!("{} reveals a value to a server", i.id),
                }
                checked += 1;
            }
        }
        assert!(checked > 10);
    }
}

#[test]
fn dealer_bytes_of_a_matmul_triple() {
    let (m, k, n) = (16, 32, 8);
    let g = GraphBuilder::new();
    let owner = g.party("model-owner");
    let client = g.party("client");
    let x = g.input(client, "x", [m, k]);
    let w = g.input(owner, "w", [k, n]);
    x.matmul(&w).output_to(client, "y");
    let graph = g.build().unwrap();
    let options = CompileOptions {
        truncation: Truncation::Local,
        ..Default::default()
    };
    let inputs = random_inputs(&graph, -1.0, 1.0, 3);
    let (run, _) = secure(&graph, ProtocolKind::Pond, options, &inputs);
    let helper = run.party("helper").unwrap();
    let seeds = 2 * 32;
    // Two frames (round 0: seeds and the triple's correction) at most, each with a header,
    // entry headers with their dimensions.
    let headers = 2 * 36 + 6 * (10 + 2 * 8);
    let bound = ((m * k + k * n + m * n) * 8 + seeds + headers) as u64;
    assert!(
        helper.metrics.bytes_sent <= bound,
        "helper sent {} bytes, bound {bound}",
        helper.metrics.bytes_sent
    );
    // In fact only c's correction (m*n words) travels, besides the seeds.
    assert!(helper.metrics.bytes_sent <= ((m * n) * 8 + seeds + headers) as u64);
}

#[test]
fn compiled_graphs_round_trip_through_json() {
    let zoo = ZooModel::build(ModelKind::A, 1).unwrap();
    let g = compile(&zoo.graph, ProtocolKind::Pond, CompileOptions::default()).unwrap();
    let text = g.to_json().unwrap();
    let back = CompiledGraph::from_json(&text).unwrap();
    assert_eq!(back, g);
    // Damage: a receive of a send that does not exist is refused, naming the party.
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let prog = v["programs"][1]["instrs"].as_array_mut().unwrap();
    let recv = prog
        .iter_mut()
        .find(|i| i["kernel"]["kernel"] == "recv")
        .unwrap();
    recv["kernel"]["send"] = serde_json::json!(999_999);
    let err = CompiledGraph::from_json(&v.to_string())
        .unwrap_err()
        .to_string();
    assert!(err.contains("server1") && err.contains("v999999"), "{err}");
}

#[test]
fn maxpool_under_pond_is_a_compile_error_naming_the_node() {
    let zoo = ZooModel::build(ModelKind::B, 1).unwrap();
    let err = compile(&zoo.graph, ProtocolKind::Pond, CompileOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            CompileError::Unsupported {
                op: "maxpool2d",
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("maxpool2d_") && msg.contains("securenn"),
        "{msg}"
    );
    // The same for a hand-built graph with an avgpool-free max pool.
    let g = GraphBuilder::new();
    let a = g.party("a");
    let b = g.party("b");
    let x = g.input(a, "x", [1, 4, 4, 1]);
    let y = g.input(b, "y", [1, 4, 4, 1]);
    (x + y)
        .maxpool2d([2, 2], [2, 2], Padding::Valid)
        .output_to(a, "m");
    let err = compile(
        &g.build().unwrap(),
        ProtocolKind::Pond,
        CompileOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("securenn"), "{err}");
}

#[test]
fn polynomial_relu_and_sigmoid_within_their_documented_error() {
    use shareflow::compiler::lower::poly::{Fit, Target};
    let options = CompileOptions::default();
    for (target, approx) in [
        (Target::Relu, options.relu),
        (Target::Sigmoid, options.sigmoid),
    ] {
        let fit = Fit::new(target, &approx);
        let g = GraphBuilder::new();
        let a = g.party("model-owner");
        let c = g.party("client");
        let x = g.input(c, "x", [64]);
        let b = g.input(a, "b", [64]);
        let s = &x + &b;
        let y = match target {
            Target::Relu => s.relu(),
            Target::Sigmoid | Target::LnOfSum { .. } => s.sigmoid(),
        };
        y.output_to(c, "y");
        let graph = g.build().unwrap();
        let lim = approx.interval as f32 / 2.0;
        let inputs = random_inputs(&graph, -lim, lim, 11);
        let expected = plaintext(&graph, &inputs);
        let (run, _) = secure(&graph, ProtocolKind::Pond, options, &inputs);
        let err = max_abs_diff(run.float("client", "y").unwrap(), &expected["y"]);
        // The fit's error plus fixed-point error (a few ulps per power, times the coefficients).
        let tol = fit.max_error as f32 + 0.01;
        assert!(
            err <= tol,
            "{target:?}: error {err} > {tol} (fit {})",
            fit.max_error
        );
    }
}

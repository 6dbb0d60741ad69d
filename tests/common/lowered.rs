//! Hand-lowered programs: shares of chosen values as constants on the servers, protocol
//! functions of the `Lowerer` applied to them, results revealed to server 0, run in process.

use std::collections::HashMap;
use std::time::Duration;

use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use shareflow::compiler::cost::CostReport;
use shareflow::compiler::ir::{Exchange, Kernel};
use shareflow::compiler::lower::{Lowerer, Shared, COMPUTE_PARTIES, S0, S1};
use shareflow::compiler::{assemble, CompileOptions, ProtocolKind};
use shareflow::ops::fixed::FixedPoint;
use shareflow::ops::{Value, ValueKind};
use shareflow::runtime::exec::{run_in_process, InProcessRun, Plan};

pub fn parties() -> Vec<String> {
    COMPUTE_PARTIES.iter().map(|p| p.to_string()).collect()
}

pub fn run(cx: Lowerer, protocol: ProtocolKind) -> (InProcessRun, CostReport) {
    let g = assemble(cx.low, parties(), protocol, CompileOptions::default()).unwrap();
    let plans: Vec<Plan> = g.programs.iter().map(|p| Plan::new(p).unwrap()).collect();
    let cost = CostReport::of(&g);
    let run = run_in_process(&g, &plans, &HashMap::new(), Duration::from_secs(60)).unwrap();
    (run, cost)
}

/// Random shares of the fixed-point encoding of `x`, as ring constants on the servers.
pub fn share(cx: &mut Lowerer, x: &ArrayD<f32>, seed: u64) -> Shared {
    let fp = FixedPoint::new(cx.frac_bits()).unwrap();
    let words = fp.encode(x).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let r: Vec<u64> = words.iter().map(|_| rng.random()).collect();
    let other: Vec<u64> = words
        .iter()
        .zip(&r)
        .map(|(w, r)| w.wrapping_sub(*r))
        .collect();
    Shared {
        s: [
            cx.ring_words(S0, x.shape(), r),
            cx.ring_words(S1, x.shape(), other),
        ],
    }
}

/// Reveals `x` to server 0 as the ring output `name`.
pub fn reveal(cx: &mut Lowerer, x: &Shared, name: &str) {
    let other = cx.send(x.s[1], S0, Exchange::Reveal);
    let sum = cx.emit_like(Kernel::Add, &[x.s[0], other]);
    let shape = cx.shape(sum).to_vec();
    cx.emit(
        S0,
        Kernel::Output { name: name.into() },
        &[sum],
        ValueKind::Ring,
        &shape,
    );
}

/// The fixed-point output `name` of server 0, decoded.
pub fn output(run: &InProcessRun, name: &str) -> ArrayD<f32> {
    match &run.party("server0").unwrap().outputs[name] {
        Value::Ring(a) => FixedPoint::new(16).unwrap().decode_f32(a),
        other => panic!("unexpected output {other:?}"),
    }
}

/// Words sent with `exchange` from `from` to `to` by the nodes `first..` of the lowering.
pub fn words_sent(cx: &Lowerer, first: usize, exchange: Exchange, from: usize, to: usize) -> usize {
    cx.low.nodes[first..]
        .iter()
        .filter(|n| n.host == from && n.kernel == Kernel::Send { to, exchange })
        .map(|n| n.shape.iter().product::<usize>())
        .sum()
}

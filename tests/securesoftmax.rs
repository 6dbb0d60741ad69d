//! Softmax on SecureNN shares against the plaintext reference: the probabilities of
//! `softmax(z) - y` (the gradient of softmax cross-entropy, up to the batch scale) with no
//! logit revealed, within the error that `compiler/src/lower/securenn/softmax.rs` states;
//! what it costs on `[128, 10]`; and Pond refusing it with a hint.

mod common;

use std::collections::HashMap;

use common::*;
use ndarray::{ArrayD, Axis, IxDyn};
use shareflow::compiler::ir::{Exchange, Kernel};
use shareflow::compiler::lower::securenn::softmax::division_plan;
use shareflow::compiler::options::{Comparison, Truncation};
use shareflow::compiler::{compile, CompileError, CompileOptions, ProtocolKind};
use shareflow::graphs::{Graph, GraphBuilder, Tensor};

/// The bound on the probabilities' absolute error that the module documents.
const TOLERANCE: f32 = 2e-3;
/// The bound on the distance to the same approximation computed in `f64` (the fixed point's
/// share of the error).
const FIXED_POINT: f32 = 1e-4;

/// The module's approximation in `f64`: `max(x - max x, -16)`, `(1 + y + y^2 / 2)^(2^5)`
/// with `y = d / 2^5`, normalised per row.
fn approximation(x: &ArrayD<f32>) -> ArrayD<f32> {
    let mut out = x.clone();
    for mut row in out.axis_iter_mut(Axis(0)) {
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let e: Vec<f64> = row
            .iter()
            .map(|&v| {
                let y = f64::from(v - m).max(-16.0) / 32.0;
                (1.0 + y + y * y / 2.0).powi(32)
            })
            .collect();
        let s: f64 = e.iter().sum();
        for (o, e) in row.iter_mut().zip(&e) {
            *o = (e / s) as f32;
        }
    }
    out
}

type Inputs = HashMap<String, HashMap<String, ArrayD<f32>>>;

/// `f(x + w)` minus the client's `y`, to the client: `x` from the client and `w` from the
/// model owner, so that the logits are shared and the softmax is not an output's.
fn graph(shape: &[usize], f: impl Fn(&Tensor) -> Tensor) -> Graph {
    let g = GraphBuilder::new();
    let owner = g.party("model-owner");
    let client = g.party("client");
    let x = g.input(client, "x", shape.to_vec());
    let y = g.input(client, "y", shape.to_vec());
    let w = g.input(owner, "w", shape.to_vec());
    (&f(&(&x + &w)) - &y).output_to(client, "out");
    g.build().unwrap()
}

/// Logits `x` (split as `x - w` and `w`), and one-hot labels `y`.
fn inputs(x: &ArrayD<f32>, seed: u64) -> Inputs {
    let shape = x.shape().to_vec();
    let w = uniform(&shape, -1.0, 1.0, seed);
    let k = shape[shape.len() - 1];
    let y = ArrayD::from_shape_fn(IxDyn(&shape), |i| f32::from(i[1] == (i[0] * 7) % k));
    HashMap::from([
        (
            "client".to_string(),
            HashMap::from([("x".to_string(), x - &w), ("y".to_string(), y)]),
        ),
        (
            "model-owner".to_string(),
            HashMap::from([("w".to_string(), w)]),
        ),
    ])
}

/// `[8, 10]` logits: random in `[-10, 10]`, a row with a spread of 60 (the clamp), a row of
/// equal values (ties for the maximum).
fn logits() -> ArrayD<f32> {
    let mut x = uniform(&[8, 10], -10.0, 10.0, 1);
    let spread = [30.0, -30.0, 0.0, 29.5, -12.0, 5.0, 30.0, -29.0, 1.0, 28.0];
    for (k, v) in spread.iter().enumerate() {
        x[[6, k]] = *v;
        x[[7, k]] = 3.25;
    }
    x
}

#[test]
fn securenn_softmax_on_shares_matches_the_plaintext() {
    for comparison in [Comparison::Opened, Comparison::Paper] {
        let options = CompileOptions {
            comparison,
            ..CompileOptions::default()
        };
        matches_the_plaintext(options);
    }
}

/// At 24 fractional bits too, where the division's factors work at 29 bits.
#[test]
fn securenn_softmax_on_shares_holds_at_24_fractional_bits() {
    matches_the_plaintext(CompileOptions {
        frac_bits: 24,
        ..CompileOptions::default()
    });
}

fn matches_the_plaintext(options: CompileOptions) {
    let x = logits();
    let graph = graph(x.shape(), |z| z.softmax());
    let inputs = inputs(&x, 2);
    let expected = plaintext(&graph, &inputs).remove("out").unwrap();
    let (run, compiled) = secure(&graph, ProtocolKind::SecureNN, options, &inputs);
    // No logit is revealed: nothing reaches the client but its output.
    for p in &compiled.programs {
        for i in &p.instrs {
            if let Kernel::Send { to, exchange } = &i.kernel {
                let to = &compiled.parties[*to];
                assert!(
                    *exchange != Exchange::Reveal || to == "client",
                    "a reveal to {to}"
                );
            }
        }
    }
    let got = run.float("client", "out").unwrap();
    let err = max_abs_diff(got, &expected);
    // The probabilities (out + y).
    let y = &inputs["client"]["y"];
    let p = got + y;
    let fixed = max_abs_diff(&p, &approximation(&x));
    println!(
        "softmax [8, 10], {:?}: max abs error {err:.2e}, {fixed:.2e} from the approximation",
        options.comparison
    );
    assert!(err <= TOLERANCE, "error {err}");
    assert!(fixed <= FIXED_POINT, "fixed point error {fixed}");
    // They sum to 1 in every row.
    for (row, sum) in p.sum_axis(Axis(1)).iter().enumerate() {
        assert!((sum - 1.0).abs() <= TOLERANCE, "row {row} sums to {sum}");
    }
    // The equal row is uniform.
    for v in p.index_axis(Axis(0), 7).iter() {
        assert!((v - 0.1).abs() <= TOLERANCE, "equal row: {v}");
    }
}

#[test]
fn securenn_softmax_of_128_by_10_costs_what_the_module_says() {
    let x = uniform(&[128, 10], -10.0, 10.0, 3);
    let inputs = inputs(&x, 4);
    let cost = |with_softmax: bool| {
        let graph = graph(x.shape(), |z| {
            if with_softmax {
                z.softmax()
            } else {
                z.clone()
            }
        });
        let (run, _) = secure(
            &graph,
            ProtocolKind::SecureNN,
            CompileOptions::default(),
            &inputs,
        );
        (run.rounds(), run.bytes(), run)
    };
    let (full_rounds, full_bytes, run) = cost(true);
    let (base_rounds, base_bytes, _) = cost(false);
    let (rounds, bytes) = (full_rounds - base_rounds, full_bytes - base_bytes);
    let graph = graph(x.shape(), |z| z.softmax());
    let expected = plaintext(&graph, &inputs).remove("out").unwrap();
    let got = run.float("client", "out").unwrap();
    let err = max_abs_diff(got, &expected);
    let fixed = max_abs_diff(&(got + &inputs["client"]["y"]), &approximation(&x));
    println!(
        "softmax [128, 10]: {rounds} rounds, {bytes} bytes, max abs error {err:.2e}, \
         {fixed:.2e} from the approximation"
    );
    assert!(err <= TOLERANCE, "error {err}");
    assert!(fixed <= FIXED_POINT, "fixed point error {fixed}");
    assert_eq!((rounds, bytes), (29, 1_173_208));
}

/// One class: the probabilities are 1, public, with no division.
#[test]
fn a_softmax_over_one_class_is_one() {
    let x = uniform(&[4, 1], -10.0, 10.0, 5);
    let graph = graph(x.shape(), |z| z.softmax());
    let inputs = inputs(&x, 6);
    let (run, _) = secure(
        &graph,
        ProtocolKind::SecureNN,
        CompileOptions::default(),
        &inputs,
    );
    // out = softmax - y, and y is 1 in every row.
    let got = run.float("client", "out").unwrap();
    assert!(got.iter().all(|v| *v == 0.0), "{got}");
}

#[test]
fn the_division_takes_enough_iterations_for_the_widest_rows() {
    let plan = |k, f| division_plan(k, f, Truncation::Dealer);
    // (fractional bits of the factors, iterations)
    assert_eq!(plan(1, 16), Some((24, 0)));
    assert_eq!(plan(10, 16), Some((24, 6)));
    assert_eq!(plan(1000, 16), Some((29, 13)));
    assert_eq!(plan(10, 24), Some((29, 7)));
    assert_eq!(plan(10_000, 24), Some((29, 17)));
    // y0 = 2 / (2^25 + 1) rounds to 2^-24 at g = 29 bits, and k y0 = 2: no convergence.
    assert_eq!(plan(1 << 25, 12), None);
    // SecureML's local truncation keeps the factors at the result's bits.
    assert_eq!(division_plan(10, 16, Truncation::Local), Some((16, 6)));
}

#[test]
fn a_softmax_on_shares_must_be_rank_2() {
    let graph = graph(&[2, 3, 4], |z| z.softmax());
    let err = compile(&graph, ProtocolKind::SecureNN, CompileOptions::default()).unwrap_err();
    assert!(err.to_string().contains("rank-2"), "{err}");
}

#[test]
fn pond_refuses_a_softmax_on_shares_with_a_hint() {
    let graph = graph(&[4, 10], |z| z.softmax());
    match compile(&graph, ProtocolKind::Pond, CompileOptions::default()) {
        Err(CompileError::Unsupported { op, hint, .. }) => {
            assert_eq!(op, "softmax");
            assert!(hint.contains("sigmoid"), "{hint}");
            assert!(hint.contains("securenn"), "{hint}");
        }
        other => panic!("expected Unsupported, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_softmax_output_to_one_party_is_still_computed_by_it() {
    // Pond too: the receiver gets the logits and computes the softmax in the clear.
    let g = GraphBuilder::new();
    let owner = g.party("model-owner");
    let client = g.party("client");
    let x = g.input(client, "x", vec![4, 10]);
    let w = g.input(owner, "w", vec![4, 10]);
    (&x + &w).softmax().output_to(client, "p");
    let graph = g.build().unwrap();
    for protocol in [ProtocolKind::Pond, ProtocolKind::SecureNN] {
        let compiled = compile(&graph, protocol, CompileOptions::default()).unwrap();
        let plain = compiled
            .programs
            .iter()
            .flat_map(|p| &p.instrs)
            .filter(|i| matches!(&i.kernel, Kernel::Plain { .. }))
            .count();
        assert_eq!(plain, 1, "{protocol:?}");
    }
}

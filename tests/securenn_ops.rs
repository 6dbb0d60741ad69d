//! Every SecureNN op against the plaintext reference: ReLU, max pooling and argmax are
//! exact (bit for bit, for inputs that are exact fixed-point values), sigmoid is Pond's
//! polynomial. And what the communication of one DReLU and one max-pooling window costs,
//! next to the paper's Table 2.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use shareflow::compiler::ir::{Exchange, Kernel};
use shareflow::compiler::lower::poly::{Fit, Target};
use shareflow::compiler::lower::securenn::relu::drelu;
use shareflow::compiler::lower::{Lowerer, Shared, COMPUTE_PARTIES, S0, S1};
use shareflow::compiler::options::Comparison;
use shareflow::compiler::{assemble, compile, CompileOptions, ProtocolKind};
use shareflow::graphs::zoo::{ModelKind, ZooModel};
use shareflow::graphs::{GraphBuilder, Padding, Tensor};
use shareflow::ops::ValueKind;
use shareflow::runtime::exec::{run_in_process, InProcessRun, Plan};

/// One unit in the last place of fixed point with 16 fractional bits.
const ULP: f32 = 1.0 / 65536.0;
/// The largest magnitude the encoder takes whose float is exact: `2^15 - 2^-9` (the encoder
/// takes `|x| < 2^15`; floats near 2^15 are 2^-9 apart).
const BIG: f32 = 32768.0 - 1.0 / 512.0;

/// Exact fixed-point values: multiples of 2^-16 in about [-16, 16], with ties (every value
/// appears several times), the extremes and the values around 0.
fn exact(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let specials = [0.0, ULP, -ULP, BIG, -BIG, 2.0 * ULP, -2.0 * ULP];
    let mut i = 0;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        i += 1;
        if i % 5 == 0 {
            specials[rng.random_range(0..specials.len())]
        } else {
            // Few distinct values: ties are common.
            rng.random_range(-(1 << 20)..(1 << 20)) as f32
                * ULP
                * if i % 3 == 0 { 1.0 } else { 0.0 }
                + rng.random_range(-3..=3) as f32 * ULP
        }
    })
}

/// `f(x + w)` with `x` from the client and `w = 0` from the model owner (so the sum is
/// shared), revealed to the client; the inputs are exact; returns secure and plaintext.
fn run_exact(
    f: impl Fn(&Tensor) -> Tensor,
    shape: &[usize],
    seed: u64,
) -> (ArrayD<f32>, ArrayD<f32>, InProcessRun) {
    run_exact_with(CompileOptions::default(), f, shape, seed, 1.0)
}

/// [`run_exact`] with `options`, the extremes (`|x| > 2^14`) scaled by `scale` (0.5 keeps them
/// exact: `BIG / 2 = 2^14 - 2^-10`).
fn run_exact_with(
    options: CompileOptions,
    f: impl Fn(&Tensor) -> Tensor,
    shape: &[usize],
    seed: u64,
    scale: f32,
) -> (ArrayD<f32>, ArrayD<f32>, InProcessRun) {
    let g = GraphBuilder::new();
    let owner = g.party("model-owner");
    let client = g.party("client");
    let x = g.input(client, "x", shape.to_vec());
    let w = g.input(owner, "w", shape.to_vec());
    f(&(&x + &w)).output_to(client, "y");
    let graph = g.build().unwrap();
    let inputs = HashMap::from([
        (
            "client".to_string(),
            HashMap::from([(
                "x".to_string(),
                exact(shape, seed).mapv(|v| if v.abs() > 16384.0 { v * scale } else { v }),
            )]),
        ),
        (
            "model-owner".to_string(),
            HashMap::from([("w".to_string(), ArrayD::zeros(IxDyn(shape)))]),
        ),
    ]);
    let expected = plaintext(&graph, &inputs).remove("y").unwrap();
    let (run, _) = secure(&graph, ProtocolKind::SecureNN, options, &inputs);
    (run.float("client", "y").unwrap().clone(), expected, run)
}

/// Every way of taking signs: the paper's, and from an opening with PrivateCompare (small
/// tensors by default) or with the carry circuit (large tensors by default, here every one).
fn all_methods() -> [(&'static str, CompileOptions); 3] {
    [
        ("paper", with(Comparison::Paper)),
        ("opened", with(Comparison::Opened)),
        (
            "opened, carry circuit",
            CompileOptions {
                carry_min_words: 0,
                ..with(Comparison::Opened)
            },
        ),
    ]
}

fn with(comparison: Comparison) -> CompileOptions {
    CompileOptions {
        comparison,
        ..CompileOptions::default()
    }
}

#[test]
fn relu_is_exact() {
    for (method, options) in all_methods() {
        let (got, expected, _) = run_exact_with(options, |x| x.relu(), &[6, 50], 1, 1.0);
        assert_eq!(got, expected, "{method}");
    }
}

/// `f(x + w)` for the client's `x` and the model owner's `w`, both given, under the default
/// options; returns secure and plaintext.
fn run_sum(
    f: impl Fn(&Tensor) -> Tensor,
    shape: &[usize],
    x: &[f32],
    w: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (got, expected, _) = run_two(|x, w| x + w, f, shape, x.to_vec(), w.to_vec());
    (got, expected)
}

/// `f(combine(x, w))` for the client's `x` and the model owner's `w`, under the default
/// options: secure, plaintext and the run.
fn run_two(
    combine: impl Fn(&Tensor, &Tensor) -> Tensor,
    f: impl Fn(&Tensor) -> Tensor,
    shape: &[usize],
    x: Vec<f32>,
    w: Vec<f32>,
) -> (Vec<f32>, Vec<f32>, InProcessRun) {
    run_two_with(CompileOptions::default(), combine, f, shape, x, w)
}

/// [`run_two`] with `options`.
fn run_two_with(
    options: CompileOptions,
    combine: impl Fn(&Tensor, &Tensor) -> Tensor,
    f: impl Fn(&Tensor) -> Tensor,
    shape: &[usize],
    x: Vec<f32>,
    w: Vec<f32>,
) -> (Vec<f32>, Vec<f32>, InProcessRun) {
    let g = GraphBuilder::new();
    let owner = g.party("model-owner");
    let client = g.party("client");
    let xt = g.input(client, "x", shape.to_vec());
    let wt = g.input(owner, "w", shape.to_vec());
    f(&combine(&xt, &wt)).output_to(client, "y");
    let graph = g.build().unwrap();
    let array = |v: Vec<f32>| ArrayD::from_shape_vec(IxDyn(shape), v).unwrap();
    let inputs = HashMap::from([
        (
            "client".to_string(),
            HashMap::from([("x".to_string(), array(x))]),
        ),
        (
            "model-owner".to_string(),
            HashMap::from([("w".to_string(), array(w))]),
        ),
    ]);
    let expected = plaintext(&graph, &inputs).remove("y").unwrap();
    let (run, _) = secure(&graph, ProtocolKind::SecureNN, options, &inputs);
    let got = run.float("client", "y").unwrap().iter().copied().collect();
    (got, expected.iter().copied().collect(), run)
}

#[test]
fn hidden_values_beyond_the_encoders_range_keep_their_sign() {
    // Each input encodes (|x| < 2^15), their sum does not: 40000 and -40000 are hidden values
    // that signs in Z_2^32 got wrong (relu gave [0, -40000], max pooling -20000).
    let (x, w) = ([20000.0, -20000.0], [20000.0, -20000.0]);
    let (got, expected) = run_sum(|s| s.relu(), &[2], &x, &w);
    assert_eq!(got, vec![40000.0, 0.0]);
    assert_eq!(got, expected);
    // max(20000, -20000) over a 1x2 window; and of 40000 and -40000.
    let pool = |s: &Tensor| s.maxpool2d([1, 2], [1, 2], Padding::Valid);
    let zeros = [0.0, 0.0];
    let (got, expected) = run_sum(pool, &[1, 1, 2, 1], &[20000.0, -20000.0], &zeros);
    assert_eq!(got, vec![20000.0]);
    assert_eq!(got, expected);
    let (got, _) = run_sum(pool, &[1, 1, 2, 1], &x, &w);
    assert_eq!(got, vec![40000.0]);
    // argmax of [-40000, 40000]: index 1.
    let (got, _) = run_sum(
        |s| s.argmax(),
        &[1, 2],
        &[-20000.0, 20000.0],
        &[-20000.0, 20000.0],
    );
    assert_eq!(got, vec![1.0]);
}

#[test]
fn maxpool_is_exact_for_every_window_and_padding() {
    // (input, window, stride, padding)
    type Case = ([usize; 4], [usize; 2], [usize; 2], Padding);
    let cases: [Case; 5] = [
        ([2, 6, 6, 3], [2, 2], [2, 2], Padding::Valid),
        ([1, 5, 5, 2], [2, 2], [2, 2], Padding::Same),
        ([1, 7, 7, 2], [3, 3], [2, 2], Padding::Valid),
        ([1, 7, 7, 2], [3, 3], [2, 2], Padding::Same),
        ([1, 6, 6, 2], [3, 3], [2, 2], Padding::Same),
    ];
    for (method, options) in all_methods() {
        for (i, (shape, size, stride, padding)) in cases.into_iter().enumerate() {
            let (got, expected, _) = run_exact_with(
                options,
                |x| x.maxpool2d(size, stride, padding),
                &shape,
                10 + i as u64,
                1.0,
            );
            let case = format!("{method} {shape:?} {size:?} {stride:?} {padding:?}");
            assert_eq!(got, expected, "{case}");
        }
    }
}

/// `f(x w)` (elementwise: a product and its dealer truncation), as [`run_two_with`].
fn run_product(
    options: CompileOptions,
    f: impl Fn(&Tensor) -> Tensor,
    shape: &[usize],
    x: Vec<f32>,
    w: Vec<f32>,
) -> (Vec<f32>, Vec<f32>, InProcessRun) {
    run_two_with(options, |x, w| x.mul(w), f, shape, x, w)
}

/// Equal up to an ulp of the truncation or of the float.
fn assert_close(got: &[f32], expected: &[f32], case: &str) {
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        let tolerance = 1.5 * ULP + e.abs() * 1e-7;
        assert!((g - e).abs() <= tolerance, "{case}[{i}]: {g} vs {e}");
    }
}

#[test]
fn signs_after_a_truncation_take_its_width_and_stay_exact() {
    // Products just under the truncation's limit (|x w| < 2^(62 - 2f) = 2^30): BIG^2 = 2^30 -
    // 2^7 + 2^-18, and values of a few ulps around 0. Channel 1 is negative everywhere, so that a padding
    // cell of a SAME pool would win if it were not below every value of the narrower width.
    let shape = [1, 5, 5, 2];
    let n = shape.iter().product::<usize>();
    let mut rng = ChaCha20Rng::seed_from_u64(50);
    let (mut x, mut w) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let (a, b) = match i % 5 {
            0 => (BIG, BIG),
            1 => (-BIG, BIG),
            2 => (rng.random_range(-3..=3) as f32 * ULP, 1.0),
            _ => (rng.random_range(-20000..20000) as f32, 16384.0),
        };
        // Odd elements (channel 1) negative (the ulp for a = 0).
        x.push(if i % 2 == 1 { -a.abs() - ULP } else { a });
        w.push(b);
    }
    // The ReLU's sign reuses the truncation's opening: 2 rounds (the comparison and the
    // helper's shares) instead of 3, and 47 bits (Z_53, 6 bits each) instead of 63 (Z_67, 7
    // bits) per element from each server; with the carry circuit, 5 rounds more (its levels
    // after the pairs). Bytes per ReLU and per pool comparison with the headers: PrivateCompare
    // 135 and 134-148; the circuit 72.5 and 113-206 (its planes hold 64 values, so these 50
    // values, and the 24 comparisons of the 2x2 pool, pay for whole blocks).
    for (method, options, extra, relu_bytes, pool_bytes) in [
        ("opened", CompileOptions::default(), 2, 150.0, 170.0),
        (
            "carry circuit",
            CompileOptions {
                carry_min_words: 0,
                ..CompileOptions::default()
            },
            7,
            100.0,
            230.0,
        ),
    ] {
        let relu = |p: &Tensor| p.relu();
        let (got, expected, run) = run_product(options, relu, &shape, x.clone(), w.clone());
        assert_close(&got, &expected, &format!("{method} relu"));
        assert!(got
            .iter()
            .zip(&expected)
            .all(|(g, e)| (*g > 0.0) == (*e > 0.0)));
        let (_, _, product) = run_product(options, |p| p.clone(), &shape, x.clone(), w.clone());
        assert_eq!(run.rounds(), product.rounds() + extra, "{method}");
        let per_element = (run.bytes() - product.bytes()) as f64 / n as f64;
        assert!(
            per_element < relu_bytes,
            "{method}: {per_element} bytes per ReLU"
        );
        for (pool, padding) in [(3, Padding::Same), (2, Padding::Valid)] {
            let pool_relu = |p: &Tensor| p.maxpool2d([pool, pool], [2, 2], padding).relu();
            let (got, expected, _) = run_product(options, pool_relu, &shape, x.clone(), w.clone());
            let case = format!("{method} {pool}x{pool} {padding:?}");
            assert_close(&got, &expected, &case);
            let pool_only = |p: &Tensor| p.maxpool2d([pool, pool], [2, 2], padding);
            let (got, expected, pooled) =
                run_product(options, pool_only, &shape, x.clone(), w.clone());
            // The differences' signs over 49 bits (PrivateCompare over 64 bits: 192-207 bytes).
            let comparisons = if pool == 3 { 18 * 8 } else { 8 * 3 };
            let per = (pooled.bytes() - product.bytes()) as f64 / comparisons as f64;
            assert!(per < pool_bytes, "{case}: {per} bytes per comparison");
            assert_close(&got, &expected, &format!("{case}, no ReLU"));
            assert!(got.iter().skip(1).step_by(2).all(|&v| v < 0.0), "{got:?}");
        }
    }
}

#[test]
fn argmax_is_exact_and_takes_the_first_of_ties() {
    for (method, options) in all_methods() {
        for (shape, seed) in [([7, 10], 20), ([4, 3], 21), ([3, 1], 22)] {
            let argmax = |x: &Tensor| x.argmax();
            let (got, expected, _) = run_exact_with(options, argmax, &shape, seed, 1.0);
            assert_eq!(got, expected, "{method} {shape:?}");
        }
    }
    // All equal: index 0.
    let (got, _, _) = run_exact(|x| (x - x).argmax(), &[2, 5], 23);
    assert_eq!(got, ArrayD::<f32>::zeros(IxDyn(&[2])));
}

#[test]
fn drelu_is_exact_as_a_greater_equal_zero_comparison() {
    // There is no graph op for a comparison: a hand-built program in which the client shares
    // exact values, the servers compute DReLU, and the client receives the bits (scaled to
    // fixed point 1.0 to decode).
    let shape = [8, 25];
    let x = exact(&shape, 50);
    // The inputs hold the values around 0.
    assert!(
        x.iter().any(|&v| v == ULP) && x.iter().any(|&v| v == -ULP) && x.iter().any(|&v| v == 0.0)
    );
    for (method, options) in all_methods() {
        let mut parties: Vec<String> = COMPUTE_PARTIES.iter().map(|p| p.to_string()).collect();
        parties.push("client".into());
        let client = 3;
        let mut cx = Lowerer::new(parties.clone(), options);
        let input = cx.emit(
            client,
            Kernel::Input { name: "x".into() },
            &[],
            ValueKind::Float,
            &shape,
        );
        let shared = cx.share(input);
        let bit = drelu(&mut cx, &shared);
        let one = cx.local(Kernel::Shl { bits: 16 }, &bit, &shape);
        let y = cx.reveal(&one, client);
        cx.emit(
            client,
            Kernel::Output { name: "y".into() },
            &[y],
            ValueKind::Float,
            &shape,
        );
        let g = assemble(cx.low, parties, ProtocolKind::SecureNN, options).unwrap();
        let plans: Vec<Plan> = g.programs.iter().map(|p| Plan::new(p).unwrap()).collect();
        let inputs = HashMap::from([(
            "client".to_string(),
            HashMap::from([("x".to_string(), x.clone())]),
        )]);
        let run = run_in_process(&g, &plans, &inputs, Duration::from_secs(60)).unwrap();
        let expected = x.mapv(|v| if v >= 0.0 { 1.0f32 } else { 0.0 });
        assert_eq!(run.float("client", "y").unwrap(), &expected, "{method}");
    }
}

#[test]
fn relu_then_maxpool_is_pooled_first() {
    let shape = [2, 8, 8, 3];
    let (got, expected, swapped) = run_exact(
        |x| x.relu().maxpool2d([2, 2], [2, 2], Padding::Valid),
        &shape,
        30,
    );
    assert_eq!(got, expected);
    let (_, _, pooled_first) = run_exact(
        |x| x.maxpool2d([2, 2], [2, 2], Padding::Valid).relu(),
        &shape,
        30,
    );
    // Both orders cost the same: the ReLU runs on the 4x smaller pooled tensor.
    assert_eq!(swapped.bytes(), pooled_first.bytes());
    assert_eq!(swapped.rounds(), pooled_first.rounds());
}

#[test]
fn sigmoid_is_ponds_polynomial() {
    let g = GraphBuilder::new();
    let owner = g.party("model-owner");
    let client = g.party("client");
    let x = g.input(client, "x", [4, 25]);
    let w = g.input(owner, "w", [25]);
    (&x + &w).sigmoid().output_to(client, "y");
    let graph = g.build().unwrap();
    let inputs = random_inputs(&graph, -3.0, 3.0, 5);
    let expected = plaintext(&graph, &inputs);
    let (run, _) = secure(
        &graph,
        ProtocolKind::SecureNN,
        CompileOptions::default(),
        &inputs,
    );
    let err = max_abs_diff(run.float("client", "y").unwrap(), &expected["y"]);
    // Within the fit's own error of the sigmoid, plus fixed-point rounding (a few ulps per
    // product of the degree-7 evaluation).
    let fit = Fit::new(Target::Sigmoid, &CompileOptions::default().sigmoid);
    let bound = fit.max_error as f32 + 64.0 * ULP;
    assert!(err <= bound, "error {err} > {bound}");
}

/// Bytes and rounds of one DReLU on `n` elements, from shares on the servers to shares on
/// the servers; the pair seeds (a one-time setup of a session) are not counted.
fn drelu_cost(options: CompileOptions, n: usize) -> (u64, u32) {
    let parties: Vec<String> = COMPUTE_PARTIES.iter().map(|p| p.to_string()).collect();
    let run = |with_drelu: bool| {
        let mut cx = Lowerer::new(parties.clone(), options);
        let a0 = cx.ring_words(S0, &[n], (0..n as u64).collect());
        let a1 = cx.ring_words(S1, &[n], vec![7; n]);
        let a = Shared { s: [a0, a1] };
        // The baseline draws from every pair seed and nothing else.
        let base = cx.rerandomise_for_test(&a);
        let out = if with_drelu {
            drelu(&mut cx, &base)
        } else {
            base
        };
        for (j, host) in [S0, S1].into_iter().enumerate() {
            cx.emit(
                host,
                Kernel::Output { name: "d".into() },
                &[out.s[j]],
                ValueKind::Ring,
                &[n],
            );
        }
        let g = assemble(cx.low, parties.clone(), ProtocolKind::SecureNN, options).unwrap();
        let plans: Vec<Plan> = g.programs.iter().map(|p| Plan::new(p).unwrap()).collect();
        run_in_process(&g, &plans, &HashMap::new(), Duration::from_secs(60)).unwrap()
    };
    let (full, base) = (run(true), run(false));
    (full.bytes() - base.bytes(), full.rounds() - base.rounds())
}

/// Re-randomising with every pair seed: makes the baseline exchange all the seeds.
trait Rerandomise {
    fn rerandomise_for_test(&mut self, a: &Shared) -> Shared;
}

impl Rerandomise for Lowerer {
    fn rerandomise_for_test(&mut self, a: &Shared) -> Shared {
        use shareflow::compiler::lower::HELPER;
        let shape = self.shape(a.s[0]).to_vec();
        let mut s = a.s;
        for (x, y) in [(S0, S1), (HELPER, S0), (HELPER, S1)] {
            let (_, r) = self.common_random(x, y, shareflow::compiler::ir::Draw::Ring, &shape);
            let j = usize::from(self.host(r) == S1);
            s[j] = self.emit(
                self.host(r),
                Kernel::Add,
                &[s[j], r],
                ValueKind::Ring,
                &shape,
            );
            s[j] = self.emit(
                self.host(r),
                Kernel::Sub,
                &[s[j], r],
                ValueKind::Ring,
                &shape,
            );
        }
        Shared { s }
    }
}

/// Bytes and rounds that a 2x2 max pooling adds to a graph that shares `x` (NHWC) and
/// reveals the pooled result, over a baseline that sums the windows instead (locally).
fn pool_cost(options: CompileOptions, shape: [usize; 4]) -> (u64, u32) {
    let [n, h, w, c] = shape;
    let pool = |x: &Tensor| x.maxpool2d([2, 2], [2, 2], Padding::Valid);
    let (_, _, full) = run_exact_with(options, pool, &shape, 40, 1.0);
    let sum = |x: &Tensor| {
        x.reshape([n, h / 2, 2, w / 2, 2, c])
            .reduce_sum(4)
            .reduce_sum(2)
    };
    let (_, _, base) = run_exact_with(options, sum, &shape, 40, 1.0);
    (full.bytes() - base.bytes(), full.rounds() - base.rounds())
}

#[test]
fn communication_of_drelu_and_maxpool_next_to_the_paper() {
    // The paper's Table 2 with l = 64 and p = 67 (log p = 7 bits): DReLU 8 rounds and
    // 8 l log p + 19 l bits = 600 bytes; MaxPool over n = 4 cells (their linear chain of
    // DReLU and two SelectShares) 9 (n - 1) = 27 rounds and (8 l log p + 29 l)(n - 1) bits =
    // 2040 bytes.
    const PAPER_DRELU_BYTES: f64 = (8.0 * 64.0 * 7.0 + 19.0 * 64.0) / 8.0;
    const PAPER_POOL_BYTES: f64 = (8.0 * 64.0 * 7.0 + 29.0 * 64.0) * 3.0 / 8.0;
    // Ours, per element, payload only (Z_p elements packed 7 bits each, words as 8 bytes, and
    // everything the helper deals to server 0 is a seed): ShareConvert 2*8 (a~) + 64 (bits)
    // + 8 (delta) + 2*64 (PrivateCompare) + 8 (eta'); ComputeMSB 64 + 8 (bits, x[0]) + 2*8
    // (r) + 128 + 8 (beta') + 40 (a product: c, and two openings both ways): 440 bytes.
    const fn small(n: u64) -> f64 {
        (n * 7) as f64 / 8.0
    }
    const DRELU_PAYLOAD: f64 = 32.0 + small(64 + 128) + 72.0 + small(64 + 128);
    // A window of 4: three comparisons, each a DReLU and a SelectShare (a product, 40).
    const POOL_PAYLOAD: f64 = 3.0 * (DRELU_PAYLOAD + 40.0);

    // From an opening (64 bits): 2*8 (c) + 63 (bits of r) + 2*63 (PrivateCompare) + 8 (s) =
    // 189.4; the product with the value in the same rounds adds 2*8 (a + m) + 8 (s (a + m)).
    const OPENED_DRELU_PAYLOAD: f64 = 16.0 + small(63 + 126) + 8.0;
    const OPENED_POOL_PAYLOAD: f64 = 3.0 * (OPENED_DRELU_PAYLOAD + 24.0);
    // By the carry circuit (63 bits: pairs, then 5 levels: 5 rounds more): 2*8 (c) + 63 bits of
    // r's planes and 31 of their pairs' products + 57 bits of the levels' products + 2*88 bits
    // of openings + 2 bits to the helper + 8 (s) = 65.1.
    const CARRY_BITS: u64 = 63 + 31 + 57 + 2 * 88 + 2;
    const CARRY_DRELU_PAYLOAD: f64 = 24.0 + CARRY_BITS as f64 / 8.0;
    const CARRY_POOL_PAYLOAD: f64 = 3.0 * (CARRY_DRELU_PAYLOAD + 24.0);
    let levels = shareflow_ops::ring::carry_levels(63);
    let opened: usize = levels
        .iter()
        .map(|&g| shareflow_ops::ring::carry_opened(g))
        .sum();
    let dealt: usize = levels
        .iter()
        .map(|&g| shareflow_ops::ring::carry_products(g))
        .sum();
    assert_eq!((levels.len(), opened, dealt), (5, 88, 57));
    let circuit = CompileOptions {
        carry_min_words: 0,
        ..with(Comparison::Opened)
    };
    let cases = [
        (
            "paper",
            with(Comparison::Paper),
            8,
            DRELU_PAYLOAD,
            18,
            POOL_PAYLOAD,
        ),
        (
            "opened",
            with(Comparison::Opened),
            3,
            OPENED_DRELU_PAYLOAD,
            6,
            OPENED_POOL_PAYLOAD,
        ),
        (
            "carry circuit",
            circuit,
            8,
            CARRY_DRELU_PAYLOAD,
            16,
            CARRY_POOL_PAYLOAD,
        ),
    ];
    for (method, options, drelu_rounds, drelu_payload, pool_rounds, pool_payload) in cases {
        let (one_bytes, one_rounds) = drelu_cost(options, 1);
        let n = 4096;
        let (many_bytes, many_rounds) = drelu_cost(options, n);
        let per = many_bytes as f64 / n as f64;
        println!(
            "{method} DReLU: one element {one_bytes} bytes, {one_rounds} rounds; {n} elements \
             {per:.1} bytes each, {many_rounds} rounds; paper: {PAPER_DRELU_BYTES} bytes, 8 rounds"
        );
        assert_eq!(one_rounds, drelu_rounds, "{method}");
        assert_eq!(many_rounds, drelu_rounds, "{method}");
        // Headers: at most 36 per message and 10 + 8 * rank per value, over 8 rounds of at
        // most 6 links and a few dozen values (the circuit's planes: a block of 64 values
        // for one).
        let one_payload = if method == "carry circuit" {
            24.0 + (CARRY_BITS * 64) as f64 / 8.0
        } else {
            drelu_payload
        };
        assert!(
            one_bytes as f64 <= one_payload + (9 * 6 * 36 + 60 * 26) as f64,
            "{method} {one_bytes}"
        );
        assert!(per <= drelu_payload + 1.0, "{method} {per}");
        assert!(per < PAPER_DRELU_BYTES);

        let (win_bytes, win_rounds) = pool_cost(options, [1, 2, 2, 1]);
        let (c, hw) = (16, 32);
        let windows = c * hw * hw / 4;
        let (many_bytes, many_rounds) = pool_cost(options, [1, hw, hw, c]);
        let per = many_bytes as f64 / windows as f64;
        println!(
            "{method} MaxPool 2x2: one window {win_bytes} bytes, {win_rounds} rounds; \
             {windows} windows {per:.1} bytes each, {many_rounds} rounds; paper: \
             {PAPER_POOL_BYTES} bytes, 27 rounds"
        );
        // Two levels of comparisons.
        assert_eq!(win_rounds, pool_rounds, "{method}");
        assert_eq!(many_rounds, pool_rounds, "{method}");
        assert!(per <= pool_payload + 1.0, "{method} {per}");
        assert!(per < PAPER_POOL_BYTES);
    }
}

#[test]
fn servers_receive_only_seeds_shares_and_masked_openings() {
    let circuit = CompileOptions {
        carry_min_words: 0,
        ..CompileOptions::default()
    };
    for (kind, options) in [
        (ModelKind::B, CompileOptions::default()),
        (ModelKind::D, CompileOptions::default()),
        (ModelKind::B, circuit),
    ] {
        let zoo = ZooModel::build(kind, 1).unwrap();
        let g = compile(&zoo.graph, ProtocolKind::SecureNN, options).unwrap();
        for p in &g.programs {
            for i in &p.instrs {
                let Kernel::Send { to, exchange } = i.kernel else {
                    continue;
                };
                let receiver = g.parties[to].as_str();
                let ok = match receiver {
                    "server0" | "server1" => {
                        matches!(
                            exchange,
                            Exchange::Seed | Exchange::Share | Exchange::MaskedOpening
                        )
                    }
                    // The helper learns masked values and seeds, never a share pair.
                    "helper" => matches!(exchange, Exchange::Seed | Exchange::MaskedOpening),
                    _ => exchange == Exchange::Reveal && receiver == "client",
                };
                assert!(ok, "{} sends {exchange:?} to {receiver}", p.party);
            }
        }
    }
}

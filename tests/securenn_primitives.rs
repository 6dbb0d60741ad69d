//! SecureNN's building blocks against their definitions, on hand-built programs whose shares
//! and common randomness are chosen to hit every wrap-around: PrivateCompare, ShareConvert,
//! ComputeMSB, DReLU and the comparisons with zero, ReLU, SelectShare, DMaxPool, and the signs
//! from an opening on the whole of Z_2^64 and Z_2^32.

use std::collections::HashMap;
use std::time::Duration;

use shareflow::compiler::ir::{Draw, Exchange, Kernel, ValueId};
use shareflow::compiler::lower::securenn::compute_msb::compute_msb;
use shareflow::compiler::lower::securenn::maxpool::dmaxpool;
use shareflow::compiler::lower::securenn::private_compare::private_compare;
use shareflow::compiler::lower::securenn::relu::{
    drelu, equal_zero, greater_zero, less_zero, relu, select_share,
};
use shareflow::compiler::lower::securenn::share_convert::share_convert_with;
use shareflow::compiler::lower::securenn::{BitShares, OddShared, PRIME};
use shareflow::compiler::lower::{Lowerer, Shared, COMPUTE_PARTIES, HELPER, S0, S1};
use shareflow::compiler::options::Comparison;
use shareflow::compiler::{assemble, CompileOptions, ProtocolKind};
use shareflow::ops::{Value, ValueKind};
use shareflow::runtime::exec::{run_in_process, InProcessRun, Plan};

const MAX: u64 = u64::MAX;
const HALF: u64 = 1 << 63;

fn parties() -> Vec<String> {
    COMPUTE_PARTIES.iter().map(|p| p.to_string()).collect()
}

fn lowerer() -> Lowerer {
    Lowerer::new(parties(), CompileOptions::default())
}

fn lowerer_with(comparison: Comparison) -> Lowerer {
    let options = CompileOptions {
        comparison,
        ..CompileOptions::default()
    };
    Lowerer::new(parties(), options)
}

fn run(cx: Lowerer) -> InProcessRun {
    let g = assemble(
        cx.low,
        parties(),
        ProtocolKind::SecureNN,
        CompileOptions::default(),
    )
    .unwrap();
    let plans: Vec<Plan> = g.programs.iter().map(|p| Plan::new(p).unwrap()).collect();
    run_in_process(&g, &plans, &HashMap::new(), Duration::from_secs(60)).unwrap()
}

/// Words as a ring constant on `host`.
fn words(cx: &mut Lowerer, host: usize, v: &[u64]) -> ValueId {
    cx.ring_words(host, &[v.len()], v.to_vec())
}

/// The same words on both servers.
fn public(cx: &mut Lowerer, v: &[u64]) -> [ValueId; 2] {
    [words(cx, S0, v), words(cx, S1, v)]
}

/// Bits (the lowest bit of each word) as `Small` values on both servers.
fn public_bits(cx: &mut Lowerer, v: &[u64]) -> [ValueId; 2] {
    let w = public(cx, v);
    w.map(|x| cx.emit_like_kind(Kernel::Lsb, x, ValueKind::Small))
}

trait EmitKind {
    fn emit_like_kind(&mut self, k: Kernel, x: ValueId, kind: ValueKind) -> ValueId;
}

impl EmitKind for Lowerer {
    fn emit_like_kind(&mut self, k: Kernel, x: ValueId, kind: ValueKind) -> ValueId {
        let (host, shape) = (self.host(x), self.shape(x).to_vec());
        self.emit(host, k, &[x], kind, &shape)
    }
}

fn shared(cx: &mut Lowerer, a0: &[u64], a1: &[u64]) -> Shared {
    Shared {
        s: [words(cx, S0, a0), words(cx, S1, a1)],
    }
}

/// Reveals shares to server 0 under `name` (reconstructed with `add`).
fn reveal(cx: &mut Lowerer, s: [ValueId; 2], add: Kernel, name: &str) {
    let other = cx.send(s[1], S0, Exchange::Reveal);
    let sum = cx.emit_like(add, &[s[0], other]);
    let (kind, shape) = (cx.low.node(sum).kind, cx.shape(sum).to_vec());
    cx.emit(
        S0,
        Kernel::Output { name: name.into() },
        &[sum],
        kind,
        &shape,
    );
}

/// Runs `cx` with PrivateCompare's result `out` as the helper's output and checks that it is
/// `beta XOR (x > r)` for every case `(x, r, beta)`.
fn assert_helper_learns_beta_xor_greater(mut cx: Lowerer, out: ValueId, cases: &[(u64, u64, u64)]) {
    cx.emit(
        HELPER,
        Kernel::Output {
            name: "beta'".into(),
        },
        &[out],
        ValueKind::Small,
        &[cases.len()],
    );
    let got = output(&run(cx), "helper", "beta'");
    for ((x, r, beta), g) in cases.iter().zip(got) {
        assert_eq!(g, beta ^ u64::from(x > r), "x={x:#x} r={r:#x} beta={beta}");
    }
}

fn output(run: &InProcessRun, party: &str, name: &str) -> Vec<u64> {
    match &run.party(party).unwrap().outputs[name] {
        Value::Ring(a) | Value::OddRing(a) => a.iter().copied().collect(),
        Value::Small(a) => a.iter().map(|&b| u64::from(b)).collect(),
        other => panic!("unexpected output {other:?}"),
    }
}

/// Splits of `a` into two shares: with and without a wrap around 2^64.
fn splits(a: u64) -> [(u64, u64); 4] {
    let r = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(a | 1);
    [
        (a, 0),
        (0, a),
        (MAX, a.wrapping_add(1)),
        (r, a.wrapping_sub(r)),
    ]
}

#[test]
fn private_compare_is_beta_xor_x_greater_than_r() {
    let w = [0, 1, 2, 0xffff, HALF - 1, HALF, HALF + 1, MAX - 1, MAX];
    let mut cases = Vec::new();
    for &x in &w {
        for &r in &w {
            for beta in [0, 1] {
                cases.push((x, r, beta));
            }
        }
    }
    let n = cases.len();
    let mut cx = lowerer();
    // The helper deals the bits of x over Z_p.
    let x = words(
        &mut cx,
        HELPER,
        &cases.iter().map(|c| c.0).collect::<Vec<_>>(),
    );
    let bits = cx.emit(
        HELPER,
        Kernel::BitDecompose { bits: 64 },
        &[x],
        ValueKind::Small,
        &[n, 64],
    );
    let (h0, x0) = cx.common_random(HELPER, S0, Draw::Field { p: PRIME }, &[n, 64]);
    let diff = cx.emit(
        HELPER,
        Kernel::FieldSub { p: PRIME },
        &[bits, h0],
        ValueKind::Small,
        &[n, 64],
    );
    let x1 = cx.send(diff, S1, Exchange::Share);
    let r = public(&mut cx, &cases.iter().map(|c| c.1).collect::<Vec<_>>());
    let beta = public_bits(&mut cx, &cases.iter().map(|c| c.2).collect::<Vec<_>>());
    let out = private_compare(
        &mut cx,
        &BitShares {
            s: [x0, x1],
            p: PRIME,
        },
        r,
        beta,
    );
    assert_helper_learns_beta_xor_greater(cx, out, &cases);
}

#[test]
fn private_compare_of_21_bits_over_a_small_packed_field() {
    // The narrowed comparisons' PrivateCompare: the helper deals 21 bits over Z_23 (packed in
    // 5 bits each on the wire, as the servers' messages to it), r read mod 2^21.
    let top = (1 << 21) - 1;
    let w = [0, 1, 2, 0xffff, 1 << 20, top - 1, top];
    let mut cases = Vec::new();
    for &x in &w {
        for &r in &w {
            for beta in [0, 1] {
                cases.push((x, r, beta));
            }
        }
    }
    let mut cx = lowerer();
    let x = words(
        &mut cx,
        HELPER,
        &cases.iter().map(|c| c.0).collect::<Vec<_>>(),
    );
    let bits = cx.helper_share_bits(x, 21);
    assert_eq!(bits.p, 23);
    // Words above 2^21 in r: only their low 21 bits count.
    let r = public(
        &mut cx,
        &cases.iter().map(|c| c.1 | 0xabc << 40).collect::<Vec<_>>(),
    );
    let beta = public_bits(&mut cx, &cases.iter().map(|c| c.2).collect::<Vec<_>>());
    let out = private_compare(&mut cx, &bits, r, beta);
    assert_helper_learns_beta_xor_greater(cx, out, &cases);
}

#[test]
fn share_convert_keeps_the_value_for_every_wrap_of_a_and_r() {
    // (a0, a1, r0, r1, eta''): a = a0 + a1 != 2^64 - 1, r = r0 + r1, each split with and
    // without a wrap, r = 0 (where the paper's r - 1 wraps), r = 2^64 - 1, x = a + r = r.
    let mut cases = Vec::new();
    for a in [0, 1, 12345, HALF - 1, HALF, MAX - 1] {
        for (a0, a1) in splits(a) {
            for r in [0, 1, HALF, MAX - 1, MAX, 0x0123_4567_89ab_cdef] {
                for (r0, r1) in [splits(r)[0], splits(r)[2], splits(r)[3]] {
                    cases.push((a0, a1, r0, r1, (a0 ^ r1) & 1));
                }
            }
        }
    }
    let col = |f: fn(&(u64, u64, u64, u64, u64)) -> u64| cases.iter().map(f).collect::<Vec<_>>();
    let mut cx = lowerer();
    let a = shared(&mut cx, &col(|c| c.0), &col(|c| c.1));
    let r_share = [
        public(&mut cx, &col(|c| c.2)),
        public(&mut cx, &col(|c| c.3)),
    ];
    let eta = public_bits(&mut cx, &col(|c| c.4));
    let y = share_convert_with(&mut cx, &a, r_share, eta);
    reveal(&mut cx, y.s, Kernel::OddAdd, "y");
    let got = output(&run(cx), "server0", "y");
    for (c, y) in cases.iter().zip(got) {
        assert_eq!(
            y,
            c.0.wrapping_add(c.1),
            "a0={:#x} a1={:#x} r0={:#x} r1={:#x}",
            c.0,
            c.1,
            c.2,
            c.3
        );
    }
}

#[test]
fn compute_msb_of_odd_ring_values() {
    let values = [
        0,
        1,
        2,
        HALF - 2,
        HALF - 1,
        HALF,
        HALF + 1,
        MAX - 2,
        MAX - 1,
    ];
    let mut a0 = Vec::new();
    let mut a1 = Vec::new();
    for &a in &values {
        // Shares over Z_{2^64-1}: (a, 0), (0, a) and a pair that wraps the odd modulus.
        for (s0, s1) in [
            (a, 0),
            (0, a),
            (MAX - 1, if a == MAX - 1 { 0 } else { a + 1 }),
        ] {
            a0.push(s0);
            a1.push(s1);
        }
    }
    let mut cx = lowerer();
    let a = shared(&mut cx, &a0, &a1);
    let odd = OddShared {
        s: a.s
            .map(|v| cx.emit_like_kind(Kernel::RingToOdd, v, ValueKind::OddRing)),
    };
    let msb = compute_msb(&mut cx, &odd);
    reveal(&mut cx, msb.s, Kernel::Add, "msb");
    let got = output(&run(cx), "server0", "msb");
    let expected: Vec<u64> = values.iter().flat_map(|&a| [a >> 63; 3]).collect();
    assert_eq!(got, expected);
}

#[test]
fn drelu_and_comparisons_with_zero_at_the_edges_of_the_range() {
    let top = (1u64 << 62) - 1; // the largest positive value, 2^62 - 1
    let bottom = (1u64 << 62).wrapping_neg(); // the most negative, -2^62
    let values = [
        0,
        1,
        MAX,
        2,
        MAX - 1,
        12345,
        12345u64.wrapping_neg(),
        top,
        top.wrapping_neg(),
        bottom,
    ];
    let (mut a0, mut a1, mut signed) = (Vec::new(), Vec::new(), Vec::new());
    for &a in &values {
        for (s0, s1) in splits(a) {
            a0.push(s0);
            a1.push(s1);
            signed.push(a as i64);
        }
    }
    // The paper's DReLU here; the default (from an opening) in the tests below.
    let mut cx = lowerer_with(Comparison::Paper);
    let a = shared(&mut cx, &a0, &a1);
    let ge = drelu(&mut cx, &a);
    reveal(&mut cx, ge.s, Kernel::Add, "ge");
    let lt = less_zero(&mut cx, &a);
    reveal(&mut cx, lt.s, Kernel::Add, "lt");
    // `a > 0` and `a = 0` negate a: -(-2^62) = 2^62 is out of range, so leave it out.
    let inner: Vec<usize> = (0..signed.len())
        .filter(|&i| signed[i] != bottom as i64)
        .collect();
    let b = shared(
        &mut cx,
        &inner.iter().map(|&i| a0[i]).collect::<Vec<_>>(),
        &inner.iter().map(|&i| a1[i]).collect::<Vec<_>>(),
    );
    let gt = greater_zero(&mut cx, &b);
    reveal(&mut cx, gt.s, Kernel::Add, "gt");
    let eq = equal_zero(&mut cx, &b);
    reveal(&mut cx, eq.s, Kernel::Add, "eq");
    let r = run(cx);
    let bit = |b: bool| u64::from(b);
    assert_eq!(
        output(&r, "server0", "ge"),
        signed.iter().map(|&a| bit(a >= 0)).collect::<Vec<_>>()
    );
    assert_eq!(
        output(&r, "server0", "lt"),
        signed.iter().map(|&a| bit(a < 0)).collect::<Vec<_>>()
    );
    let inner_signed: Vec<i64> = inner.iter().map(|&i| signed[i]).collect();
    assert_eq!(
        output(&r, "server0", "gt"),
        inner_signed.iter().map(|&a| bit(a > 0)).collect::<Vec<_>>()
    );
    assert_eq!(
        output(&r, "server0", "eq"),
        inner_signed
            .iter()
            .map(|&a| bit(a == 0))
            .collect::<Vec<_>>()
    );
}

#[test]
fn signs_from_an_opening_are_exact_on_the_whole_ring() {
    // Every word of Z_2^64, the extremes included, with every kind of wrap of its shares.
    let cases: [(u32, Vec<u64>); 1] = [(
        64,
        vec![
            0,
            1,
            MAX,
            HALF,
            HALF - 1,
            HALF + 1,
            HALF >> 1,
            (HALF >> 1).wrapping_neg(),
            9,
        ],
    )];
    for (bits, values) in cases {
        let (mut a0, mut a1, mut signed) = (Vec::new(), Vec::new(), Vec::new());
        for &a in &values {
            for (s0, s1) in splits(a) {
                a0.push(s0);
                a1.push(s1);
                signed.push(a as i64);
            }
        }
        let mut cx = lowerer_with(Comparison::Opened);
        let a = shared(&mut cx, &a0, &a1);
        let ge = drelu(&mut cx, &a);
        reveal(&mut cx, ge.s, Kernel::Add, "ge");
        let z = relu(&mut cx, &a);
        reveal(&mut cx, z.s, Kernel::Add, "relu");
        let r = run(cx);
        let ge_expected: Vec<u64> = signed.iter().map(|&a| u64::from(a >= 0)).collect();
        assert_eq!(output(&r, "server0", "ge"), ge_expected, "{bits} bits");
        let relu_expected: Vec<u64> = signed.iter().map(|&a| a.max(0) as u64).collect();
        assert_eq!(output(&r, "server0", "relu"), relu_expected, "{bits} bits");
    }
}

#[test]
fn relu_and_select_share_are_exact_words() {
    let values = [
        0,
        1,
        MAX,
        (HALF >> 1) - 1,
        (HALF >> 1).wrapping_neg(),
        77,
        77u64.wrapping_neg(),
    ];
    let (mut a0, mut a1, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for &a in &values {
        for (s0, s1) in splits(a) {
            a0.push(s0);
            a1.push(s1);
            y.push(a.wrapping_mul(3));
        }
    }
    let n = a0.len();
    let mut cx = lowerer();
    let a = shared(&mut cx, &a0, &a1);
    let z = relu(&mut cx, &a);
    reveal(&mut cx, z.s, Kernel::Add, "relu");
    // Select between a and 3a by alternating bits (shared with a wrap).
    let bits: Vec<u64> = (0..n as u64).map(|i| i % 2).collect();
    let alpha = shared(
        &mut cx,
        &bits.iter().map(|b| b.wrapping_add(5)).collect::<Vec<_>>(),
        &vec![5u64.wrapping_neg(); n],
    );
    let ys = shared(&mut cx, &y, &vec![0; n]);
    let s = select_share(&mut cx, &alpha, &a, &ys, &[n]);
    reveal(&mut cx, s.s, Kernel::Add, "select");
    let r = run(cx);
    let full: Vec<u64> = a0
        .iter()
        .zip(&a1)
        .map(|(x, y)| x.wrapping_add(*y))
        .collect();
    let relu_expected: Vec<u64> = full
        .iter()
        .map(|&a| if (a as i64) >= 0 { a } else { 0 })
        .collect();
    assert_eq!(output(&r, "server0", "relu"), relu_expected);
    let select_expected: Vec<u64> = (0..n)
        .map(|i| if bits[i] == 1 { y[i] } else { full[i] })
        .collect();
    assert_eq!(output(&r, "server0", "select"), select_expected);
}

#[test]
fn dmaxpool_is_the_one_hot_of_the_index() {
    for n in [4usize, 9] {
        let ind: Vec<u64> = (0..n as u64).collect();
        let r: Vec<u64> = ind
            .iter()
            .map(|i| 0x5555_0000_0000_0000u64.wrapping_mul(i + 3))
            .collect();
        let s1: Vec<u64> = ind
            .iter()
            .zip(&r)
            .map(|(i, r)| i.wrapping_sub(*r))
            .collect();
        let mut cx = lowerer();
        let x = shared(&mut cx, &r, &s1);
        let d = dmaxpool(&mut cx, &x, n);
        reveal(&mut cx, d.s, Kernel::Add, "onehot");
        let got = output(&run(cx), "server0", "onehot");
        let expected: Vec<u64> = (0..n)
            .flat_map(|i| (0..n).map(move |k| u64::from(i == k)))
            .collect();
        assert_eq!(got, expected, "n = {n}");
    }
}

#[test]
fn dmaxpool2d_marks_the_cell_that_won_as_the_reference_does() {
    use shareflow::compiler::lower::securenn::maxpool::dmaxpool2d;
    use shareflow::graphs::op::Window;
    use shareflow::graphs::Padding;
    use shareflow::ops::im2col::{Padding as P, Window2d};
    use shareflow::ops::plain::maxpool2d;
    let cases = [
        ([1, 4, 4, 2], 2, Padding::Valid, P::Valid),
        ([1, 5, 5, 1], 3, Padding::Same, P::Same),
        ([2, 6, 6, 1], 3, Padding::Same, P::Same),
    ];
    for (shape, k, padding, p) in cases {
        let len: usize = shape.iter().product();
        // Few distinct values (ties), some negative, as fixed point.
        let ints: Vec<i64> = (0..len as i64).map(|i| (i * 7 % 5) - 2).collect();
        let x = ndarray::ArrayD::from_shape_vec(
            ndarray::IxDyn(&shape),
            ints.iter().map(|&i| i as f32).collect(),
        )
        .unwrap();
        let win = Window2d::new((k, k), (2, 2), p);
        let reference = maxpool2d(x.view().into_dimensionality().unwrap(), &win).unwrap();
        let out = reference.argmax.shape().to_vec();
        let words: Vec<u64> = ints.iter().map(|&i| (i << 16) as u64).collect();
        let s1: Vec<u64> = words.iter().map(|w| w.wrapping_mul(3)).collect();
        let s0: Vec<u64> = words
            .iter()
            .zip(&s1)
            .map(|(w, r)| w.wrapping_sub(*r))
            .collect();
        let mut cx = lowerer();
        let a = Shared {
            s: [cx.ring_words(S0, &shape, s0), cx.ring_words(S1, &shape, s1)],
        };
        let window = Window {
            size: [k, k],
            stride: [2, 2],
            padding,
        };
        let d = dmaxpool2d(&mut cx, &a, &window, &out).unwrap();
        reveal(&mut cx, d.s, Kernel::Add, "onehot");
        let got = output(&run(cx), "server0", "onehot");
        let (top, left) = win.pads(shape[1], shape[2]);
        let mut expected = Vec::new();
        for ((n, oy, ox, c), &flat) in reference.argmax.indexed_iter() {
            let (iy, ix) = (
                flat / (shape[2] * shape[3]) % shape[1],
                flat / shape[3] % shape[2],
            );
            assert_eq!(
                (flat / (shape[1] * shape[2] * shape[3]), flat % shape[3]),
                (n, c)
            );
            let cell = (iy + top - oy * 2) * k + (ix + left - ox * 2);
            expected.extend((0..k * k).map(|i| u64::from(i == cell)));
        }
        assert_eq!(got, expected, "{shape:?} {k}x{k} {padding:?}");
    }
}

//! The protocol pieces of private training, each on hand-lowered programs against the
//! plaintext reference: the convolution gradients as dealer products (SecureNN and Pond
//! contexts), and the generalised triples (each shared operand of a training step's products
//! opened once, through transposes and reshapes).
//!
//! Tolerances: f = 16 fractional bits, one ulp 2^-16. Operands in [-2, 2) are encoded with an
//! error of half an ulp; a product summing `k` terms is then off by < 2k ulps before the
//! truncation's one ulp.

mod common;

use ndarray::{ArrayD, Ix2, Ix4};
use shareflow::compiler::ir::{Exchange, Kernel};
use shareflow::compiler::lower::{Lowerer, Shared, HELPER, S0, S1};
use shareflow::compiler::{CompileOptions, ProtocolKind};
use shareflow::graphs::Padding as GraphPadding;
use shareflow::ops::plain::{self, Padding};

use common::lowered::{output, parties, reveal, run, share, words_sent};
use common::{max_abs_diff, uniform};

const ULP: f32 = 1.0 / 65536.0;
const PROTOCOLS: [ProtocolKind; 2] = [ProtocolKind::SecureNN, ProtocolKind::Pond];

/// `(x shape, filter shape, stride, padding)`: both paddings, stride 1 and 2.
fn conv_cases() -> [([usize; 4], [usize; 4], usize, Padding); 4] {
    [
        ([2, 5, 5, 2], [3, 3, 2, 3], 1, Padding::Same),
        ([2, 6, 6, 2], [3, 3, 2, 2], 2, Padding::Same),
        ([1, 6, 5, 3], [2, 2, 3, 2], 1, Padding::Valid),
        ([2, 7, 7, 1], [3, 3, 1, 2], 2, Padding::Valid),
    ]
}

fn graph_padding(p: Padding) -> GraphPadding {
    match p {
        Padding::Same => GraphPadding::Same,
        Padding::Valid => GraphPadding::Valid,
    }
}

#[test]
fn conv2d_gradients_are_dealer_products_with_traffic_of_the_operands() {
    for protocol in PROTOCOLS {
        for (i, (xs, ws, s, pad)) in conv_cases().into_iter().enumerate() {
            let seed = 10 * i as u64;
            let x = uniform(&xs, -2.0, 2.0, seed);
            let w = uniform(&ws, -2.0, 2.0, seed + 1);
            let x4 = x.view().into_dimensionality::<Ix4>().unwrap();
            let w4 = w.view().into_dimensionality::<Ix4>().unwrap();
            let ys = plain::conv2d(x4, w4, (s, s), pad).unwrap().dim();
            let dy = uniform(&[ys.0, ys.1, ys.2, ys.3], -2.0, 2.0, seed + 2);
            let dy4 = dy.view().into_dimensionality::<Ix4>().unwrap();
            let gx = plain::conv2d_backward_input(xs, w4, dy4, (s, s), pad).unwrap();
            let gw = plain::conv2d_backward_filter(x4, ws, dy4, (s, s), pad).unwrap();

            let mut cx = Lowerer::new(parties(), CompileOptions::default());
            let (xsh, wsh, dysh) = (
                share(&mut cx, &x, seed + 3),
                share(&mut cx, &w, seed + 4),
                share(&mut cx, &dy, seed + 5),
            );
            let (stride, padding) = ([s, s], graph_padding(pad));
            let first = cx.low.nodes.len();
            let k = Kernel::Conv2dBackpropInput {
                stride,
                padding,
                input_shape: xs,
            };
            let dx_sh = cx.beaver(&dysh, &wsh, k, &xs);
            let opened = words_sent(&cx, first, Exchange::MaskedOpening, S0, S1);
            let dealt = words_sent(&cx, first, Exchange::Share, 2, S1);
            assert_eq!(
                opened,
                dy.len() + w.len(),
                "{protocol:?} case {i}: openings"
            );
            assert_eq!(dealt, gx.len(), "{protocol:?} case {i}: dealer share");
            let first = cx.low.nodes.len();
            let k = Kernel::Conv2dBackpropFilter {
                stride,
                padding,
                filter_shape: ws,
            };
            let dw_sh = cx.beaver(&xsh, &dysh, k, &ws);
            // dy is opened already: only x is new.
            let opened = words_sent(&cx, first, Exchange::MaskedOpening, S0, S1);
            assert_eq!(opened, x.len(), "{protocol:?} case {i}: openings");
            let (dx_sh, dw_sh) = (cx.truncate(&dx_sh), cx.truncate(&dw_sh));
            reveal(&mut cx, &dx_sh, "dx");
            reveal(&mut cx, &dw_sh, "dw");
            let (run, _) = run(cx, protocol);
            // Inner dimensions: Cout * KH * KW for dx (at most), N * OH * OW for dw.
            let kx = (ws[3] * ws[0] * ws[1]) as f32;
            let kw = (ys.0 * ys.1 * ys.2) as f32;
            let ex = max_abs_diff(&output(&run, "dx"), &gx.into_dyn());
            let ew = max_abs_diff(&output(&run, "dw"), &gw.into_dyn());
            assert!(
                ex <= (2.0 * kx + 1.0) * ULP,
                "{protocol:?} case {i}: dx {ex}"
            );
            assert!(
                ew <= (2.0 * kw + 1.0) * ULP,
                "{protocol:?} case {i}: dw {ew}"
            );
        }
    }
}

/// `z = x.W; gW = x^T.dy; gx = dy.W^T` with the transposes on shares, as a training step's
/// dense layer lowers them.
fn dense_step(cx: &mut Lowerer, x: &Shared, w: &Shared, dy: &Shared, dims: [usize; 3]) {
    let [b, n, m] = dims;
    let t = Kernel::Transpose { perm: vec![1, 0] };
    let z = cx.beaver(x, w, Kernel::MatMul, &[b, m]);
    let xt = cx.local(t.clone(), x, &[n, b]);
    let gw = cx.beaver(&xt, dy, Kernel::MatMul, &[n, m]);
    let wt = cx.local(t, w, &[m, n]);
    let gx = cx.beaver(dy, &wt, Kernel::MatMul, &[b, n]);
    for (v, name) in [(z, "z"), (gw, "gw"), (gx, "gx")] {
        let v = cx.truncate(&v);
        reveal(cx, &v, name);
    }
}

#[test]
fn a_training_step_opens_x_w_and_dy_once() {
    let (b, n, m) = (4, 6, 3);
    let x = uniform(&[b, n], -2.0, 2.0, 1);
    let w = uniform(&[n, m], -2.0, 2.0, 2);
    let dy = uniform(&[b, m], -2.0, 2.0, 3);
    let mat = |a: &ArrayD<f32>| a.clone().into_dimensionality::<Ix2>().unwrap();
    let (x2, w2, dy2) = (mat(&x), mat(&w), mat(&dy));
    let expected = [
        ("z", x2.dot(&w2)),
        ("gw", x2.t().dot(&dy2)),
        ("gx", dy2.dot(&w2.t())),
    ];
    for protocol in PROTOCOLS {
        let mut cx = Lowerer::new(parties(), CompileOptions::default());
        let (xs, ws, dys) = (
            share(&mut cx, &x, 4),
            share(&mut cx, &w, 5),
            share(&mut cx, &dy, 6),
        );
        let first = cx.low.nodes.len();
        dense_step(&mut cx, &xs, &ws, &dys, [b, n, m]);
        let opened_words = x.len() + w.len() + dy.len();
        // The products' openings, then one per truncation (dealer truncation opens z + r).
        let truncated = b * m + n * m + b * n;
        for (from, to) in [(S0, S1), (S1, S0)] {
            let opened = words_sent(&cx, first, Exchange::MaskedOpening, from, to);
            assert_eq!(opened, opened_words + truncated, "{protocol:?}");
        }
        let (run, cost) = run(cx, protocol);
        for (name, want) in &expected {
            let err = max_abs_diff(&output(&run, name), &want.clone().into_dyn());
            assert!(err <= (2.0 * 6.0 + 1.0) * ULP, "{protocol:?} {name}: {err}");
        }
        // On the wire from server 0 to server 1: the three openings in one batch, then the
        // three truncations' in another (server 1 also reveals the results to server 0).
        let link = |from: &str, to: &str| {
            cost.links
                .iter()
                .find(|l| l.from == from && l.to == to)
                .map(|l| (l.bytes, l.messages))
                .unwrap_or_default()
        };
        let entry = |shape: &[usize]| {
            shareflow::compiler::cost::entry_bytes(shareflow::ops::ValueKind::Ring, shape)
        };
        let payload = entry(&[b, n])
            + entry(&[n, m])
            + entry(&[b, m])
            + entry(&[b, m])
            + entry(&[n, m])
            + entry(&[b, n]);
        let frames = 2 * shareflow::compiler::cost::FRAME_HEADER_BYTES;
        assert_eq!(link("server0", "server1"), ((payload + frames) as u64, 2));
    }
}

/// A truncated product times a public scalar (SGD's learning rate times a fused gradient)
/// reuses the truncation's opening: nothing more is opened, and the result is the product
/// to within the operands' encoding error, for rates of either sign, below and above 1; in
/// affine form, it is multiplied without an opening of either factor.
#[test]
fn a_truncation_times_a_public_scalar_opens_nothing_more() {
    let (b, n, m) = (8, 6, 5);
    let x = uniform(&[b, n], -2.0, 2.0, 21);
    let w = uniform(&[n, m], -2.0, 2.0, 22);
    let mat = |a: &ArrayD<f32>| a.clone().into_dimensionality::<Ix2>().unwrap();
    let xw = mat(&x).dot(&mat(&w)).into_dyn();
    let largest = xw.iter().fold(0f32, |a, v| a.max(v.abs()));
    for protocol in PROTOCOLS {
        for (i, rate) in [0.05f32, -0.3, 1.5].into_iter().enumerate() {
            let mut cx = Lowerer::new(parties(), CompileOptions::default());
            let (xs, ws) = (share(&mut cx, &x, 23 + i as u64), share(&mut cx, &w, 24));
            let z = cx.product_truncated(&xs, &ws, Kernel::MatMul, &[b, m], 16, None);
            let scalar = ArrayD::from_elem(vec![], rate);
            let public = [S0, S1].map(|h| cx.public_ring(h, &scalar).unwrap());
            let on_helper = cx.public_ring(HELPER, &scalar).unwrap();
            let first = cx.low.nodes.len();
            let y = cx
                .rescaled_truncation(&z, (public, on_helper), rate.abs() <= 1.0, &[b, m])
                .expect("a dealer truncation's output");
            for (from, to) in [(S0, S1), (S1, S0)] {
                let opened = words_sent(&cx, first, Exchange::MaskedOpening, from, to);
                assert_eq!(opened, 0, "{protocol:?} rate {rate}");
            }
            // D in whole words, msb(r) in its low 4 bytes (b = 32 bits; an element per byte).
            let dealt = words_sent(&cx, first, Exchange::Share, HELPER, S1);
            assert_eq!(dealt, b * m + 4 * b * m, "{protocol:?} rate {rate}");
            // Its affine form: a product with the truncation's output opens neither factor,
            // only its own truncation's input.
            let first = cx.low.nodes.len();
            let yz = cx.product_truncated_affine(&y, &z, &[b, m], 16);
            for (from, to) in [(S0, S1), (S1, S0)] {
                let opened = words_sent(&cx, first, Exchange::MaskedOpening, from, to);
                assert_eq!(opened, b * m, "{protocol:?} rate {rate}");
            }
            reveal(&mut cx, &y, "y");
            reveal(&mut cx, &yz, "yz");
            let (run, _) = run(cx, protocol);
            let want = xw.mapv(|v| v * rate);
            let err = max_abs_diff(&output(&run, "y"), &want);
            // The product's error (2n + 1 ulps) times the rate, the rate's encoding (half an
            // ulp) times the product, one ulp of truncation.
            let bound = ((2 * n + 1) as f32 * rate.abs() + 0.5 * largest + 1.0) * ULP;
            assert!(err <= bound, "{protocol:?} rate {rate}: {err} > {bound}");
            // y z: each factor's error times the other, one ulp of truncation.
            let err = max_abs_diff(&output(&run, "yz"), &(&want * &xw));
            let z_err = (2 * n + 1) as f32 * ULP;
            let bound = (bound * largest) + z_err * largest * rate.abs() + 2.0 * ULP;
            assert!(
                err <= bound,
                "{protocol:?} rate {rate}: y z {err} > {bound}"
            );
        }
    }
}

/// A reshape of a masked value reuses its opening, whichever is masked first.
#[test]
fn reshapes_reuse_the_opening_in_either_order() {
    let x = uniform(&[2, 3, 4], -2.0, 2.0, 7);
    let w = uniform(&[12, 2], -2.0, 2.0, 8);
    let v = uniform(&[2, 3, 4], -2.0, 2.0, 9);
    for reshape_first in [true, false] {
        let mut cx = Lowerer::new(parties(), CompileOptions::default());
        let (xs, ws, vs) = (
            share(&mut cx, &x, 1),
            share(&mut cx, &w, 2),
            share(&mut cx, &v, 3),
        );
        let first = cx.low.nodes.len();
        let flat = cx.local(Kernel::Reshape { shape: vec![2, 12] }, &xs, &[2, 12]);
        let (p, q) = if reshape_first {
            let p = cx.beaver(&flat, &ws, Kernel::MatMul, &[2, 2]);
            (p, cx.beaver(&xs, &vs, Kernel::Mul, &[2, 3, 4]))
        } else {
            let q = cx.beaver(&xs, &vs, Kernel::Mul, &[2, 3, 4]);
            (cx.beaver(&flat, &ws, Kernel::MatMul, &[2, 2]), q)
        };
        let opened = words_sent(&cx, first, Exchange::MaskedOpening, S0, S1);
        assert_eq!(opened, x.len() + w.len() + v.len());
        let (p, q) = (cx.truncate(&p), cx.truncate(&q));
        reveal(&mut cx, &p, "p");
        reveal(&mut cx, &q, "q");
        let (run, _) = run(cx, ProtocolKind::SecureNN);
        let x2 = x.clone().into_shape_with_order((2, 12)).unwrap();
        let w2 = w.clone().into_dimensionality::<Ix2>().unwrap();
        let ep = max_abs_diff(&output(&run, "p"), &x2.dot(&w2).into_dyn());
        let eq = max_abs_diff(&output(&run, "q"), &(&x * &v));
        assert!(ep <= 25.0 * ULP && eq <= 5.0 * ULP, "{ep} {eq}");
    }
}

//! Every op under Pond against the plaintext reference, with stated tolerances.
//!
//! Fixed point has f = 16 fractional bits: one ulp is 2^-16 ~ 1.5e-5. Dealer truncation is
//! exact up to one ulp per truncation, so a product whose inputs are exact is within
//! (inner dimension + 1) ulps of the float result plus the encoding error of its inputs.

mod common;

use common::*;
use shareflow::compiler::{CompileOptions, ProtocolKind, Truncation};
use shareflow::graphs::{GraphBuilder, Padding, Tensor};

const ULP: f32 = 1.0 / 65536.0;

fn check(
    build: impl Fn(&GraphBuilder, &Tensor, &Tensor) -> Tensor,
    xs: &[usize],
    ws: &[usize],
    tol: f32,
) {
    for truncation in [Truncation::Dealer, Truncation::Local] {
        let g = GraphBuilder::new();
        let owner = g.party("model-owner");
        let client = g.party("client");
        let x = g.input(client, "x", xs.to_vec());
        let w = g.input(owner, "w", ws.to_vec());
        build(&g, &x, &w).output_to(client, "y");
        let graph = g.build().unwrap();
        let inputs = random_inputs(&graph, -2.0, 2.0, 7);
        let expected = plaintext(&graph, &inputs);
        let options = CompileOptions {
            truncation,
            ..Default::default()
        };
        let (run, _) = secure(&graph, ProtocolKind::Pond, options, &inputs);
        let got = run.float("client", "y").unwrap();
        let err = max_abs_diff(got, &expected["y"]);
        assert!(err <= tol, "{truncation:?}: error {err} > {tol}");
    }
}

#[test]
fn add_sub_neg_are_exact_up_to_encoding() {
    check(|_, x, w| (x + w) - &(-x), &[3, 4], &[3, 4], 2.0 * ULP);
    check(|_, x, w| x - w, &[2, 3, 4], &[4], 2.0 * ULP);
}

#[test]
fn mul_and_square() {
    // |x|, |w| < 2: the product of two encodings is off by < 4 ulps, plus 1 for truncation.
    check(|_, x, w| x * w, &[5, 6], &[5, 6], 6.0 * ULP);
    check(|_, x, _| x * x, &[5, 6], &[5, 6], 6.0 * ULP);
}

#[test]
fn matmul_within_inner_dimension_ulps() {
    // k = 7 products of encodings off by < 4 ulps each, plus 1 for truncation.
    check(|_, x, w| x.matmul(w), &[4, 7], &[7, 3], 29.0 * ULP);
}

#[test]
fn conv2d_valid_same_and_strided() {
    // k = 3*3*2 = 18 products per output.
    let tol = 73.0 * ULP;
    check(
        |_, x, w| x.conv2d(w, [1, 1], Padding::Valid),
        &[2, 6, 6, 2],
        &[3, 3, 2, 3],
        tol,
    );
    check(
        |_, x, w| x.conv2d(w, [1, 1], Padding::Same),
        &[1, 5, 5, 2],
        &[3, 3, 2, 2],
        tol,
    );
    check(
        |_, x, w| x.conv2d(w, [2, 2], Padding::Same),
        &[1, 7, 7, 2],
        &[3, 3, 2, 2],
        tol,
    );
}

#[test]
fn avgpool_and_batchnorm() {
    // 1/4 is exact in fixed point: the sum's encoding error and one truncation.
    check(
        |_, x, w| (x + w).avgpool2d([2, 2], [2, 2], Padding::Valid),
        &[2, 4, 4, 3],
        &[3],
        4.0 * ULP,
    );
    // 1/9, 1/6 and 1/4 are encoded within half an ulp, times a window sum of at most 36.
    check(
        |_, x, w| (x + w).avgpool2d([3, 3], [2, 2], Padding::Same),
        &[1, 5, 5, 2],
        &[2],
        24.0 * ULP,
    );
    check(
        |g, x, w| {
            let c = |v: Vec<f32>| g.constant([3], v);
            (x + w).batchnorm(
                &c(vec![0.5, -1.0, 0.0]),
                &c(vec![1.0, 4.0, 0.25]),
                &c(vec![1.0, 2.0, -1.0]),
                &c(vec![0.0, 0.5, 1.0]),
                1e-3,
            )
        },
        &[2, 3],
        &[3],
        8.0 * ULP,
    );
}

#[test]
fn reshape_transpose_reduce_are_local() {
    check(
        |_, x, w| (x * w).transpose(&[1, 0]).reshape([2, 6]).reduce_sum(1),
        &[3, 4],
        &[3, 4],
        30.0 * ULP,
    );
}

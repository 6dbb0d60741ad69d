//! The ring convolution gradients against the f32 reference on integer-valued inputs (exact),
//! and their linearity in shares that wrap around 2^64.

use ndarray::{Array, Array4, ArrayD};

use super::{add, conv2d_backprop_filter, conv2d_backprop_input, from_i64, matmul_naive, to_i64};
use crate::im2col::{col2im_add, im2col, Padding, Window2d};
use crate::plain::{conv2d_backward_filter, conv2d_backward_input};

/// Small integers in `[-4, 4]`, a fixed pattern per `seed`.
fn ints(shape: [usize; 4], seed: usize) -> Array4<f32> {
    Array::from_shape_fn(shape, |(a, b, c, d)| {
        ((((a * 31 + b * 17 + c * 7 + d * 3 + seed * 13) * 2_654_435_761usize) >> 7) % 9) as f32
            - 4.0
    })
}

fn ring(x: &Array4<f32>) -> ArrayD<u64> {
    from_i64(&x.mapv(|v| v as i64).into_dyn())
}

fn words(x: &ArrayD<u64>, salt: u64) -> ArrayD<u64> {
    let mut i = salt;
    x.mapv(|_| {
        i = i
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        i
    })
}

/// `(x shape, filter shape, strides, padding)`.
type Case = ([usize; 4], [usize; 4], (usize, usize), Padding);

/// Both paddings, stride 1 and 2, odd sizes.
fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for padding in [Padding::Same, Padding::Valid] {
        out.push(([2, 5, 5, 2], [3, 3, 2, 3], (1, 1), padding));
        out.push(([1, 6, 7, 3], [3, 2, 3, 2], (2, 2), padding));
        out.push(([2, 7, 6, 1], [5, 5, 1, 4], (2, 1), padding));
        // More output channels than window cells: the filter gradient's other product order.
        out.push(([2, 4, 5, 1], [1, 2, 1, 3], (1, 1), padding));
    }
    out
}

#[test]
fn backprop_input_equals_the_float_reference_exactly() {
    for (xs, ws, s, pad) in cases() {
        let w = ints(ws, 1);
        let dy_shape = crate::plain::conv2d(ints(xs, 0).view(), w.view(), s, pad)
            .unwrap()
            .dim();
        let dy = ints(dy_shape.into(), 2);
        let expected = conv2d_backward_input(xs, w.view(), dy.view(), s, pad).unwrap();
        let got = conv2d_backprop_input(&ring(&dy), &ring(&w), &xs, s, pad).unwrap();
        assert_eq!(got.shape(), &xs);
        assert_eq!(
            to_i64(&got),
            expected.mapv(|v| v as i64).into_dyn(),
            "{xs:?} {ws:?} {s:?} {pad:?}"
        );
    }
}

#[test]
fn backprop_filter_equals_the_float_reference_exactly() {
    for (xs, ws, s, pad) in cases() {
        let x = ints(xs, 3);
        let dy_shape = crate::plain::conv2d(x.view(), ints(ws, 0).view(), s, pad)
            .unwrap()
            .dim();
        let dy = ints(dy_shape.into(), 4);
        let expected = conv2d_backward_filter(x.view(), ws, dy.view(), s, pad).unwrap();
        let got = conv2d_backprop_filter(&ring(&x), &ring(&dy), &ws, s, pad).unwrap();
        assert_eq!(got.shape(), &ws);
        assert_eq!(
            to_i64(&got),
            expected.mapv(|v| v as i64).into_dyn(),
            "{xs:?} {ws:?} {s:?} {pad:?}"
        );
    }
}

/// Inputs large enough that the filter gradient's product runs over many blocks of rows and
/// is split across threads, in both product orders, on uniform words: the same as `im2col`
/// and the naive product.
#[test]
fn backprop_filter_over_many_blocks_equals_the_naive_product() {
    let cases: [Case; 3] = [
        ([16, 20, 20, 4], [5, 5, 4, 8], (1, 1), Padding::Same),
        ([24, 17, 16, 1], [5, 5, 1, 20], (1, 1), Padding::Same),
        ([32, 15, 15, 3], [3, 3, 3, 6], (2, 2), Padding::Valid),
    ];
    for (xs, ws, s, pad) in cases {
        let x = words(&ArrayD::zeros(xs.to_vec()), 5);
        let win = Window2d::new((ws[0], ws[1]), s, pad);
        let cols = im2col(x.view().into_dimensionality().unwrap(), &win).unwrap();
        let dy_rows = cols.nrows();
        let dy = words(&ArrayD::zeros(vec![dy_rows, ws[3]]), 6);
        let expected = matmul_naive(cols.t(), dy.view().into_dimensionality().unwrap()).unwrap();
        let (oh, ow) = win.output_hw(xs[1], xs[2]).unwrap();
        let dy4 = dy
            .into_shape_with_order(vec![xs[0], oh, ow, ws[3]])
            .unwrap();
        let got = conv2d_backprop_filter(&x, &dy4, &ws, s, pad).unwrap();
        assert_eq!(
            got.into_shape_with_order(expected.dim()).unwrap(),
            expected,
            "{xs:?} {ws:?} {s:?} {pad:?}"
        );
    }
}

/// Images of more output positions than one block of the product's rows, and enough work
/// to be split across threads, on uniform words: the same as the naive product and
/// `col2im`.
#[test]
fn backprop_input_over_many_blocks_equals_the_naive_product() {
    let cases: [Case; 3] = [
        ([16, 20, 20, 4], [5, 5, 4, 8], (1, 1), Padding::Same),
        ([6, 28, 28, 1], [5, 5, 1, 16], (1, 1), Padding::Valid),
        ([32, 15, 15, 3], [3, 3, 3, 6], (2, 2), Padding::Valid),
    ];
    for (xs, ws, s, pad) in cases {
        let win = Window2d::new((ws[0], ws[1]), s, pad);
        let (oh, ow) = win.output_hw(xs[1], xs[2]).unwrap();
        let w = words(&ArrayD::zeros(ws.to_vec()), 7);
        let dy = words(&ArrayD::zeros(vec![xs[0] * oh * ow, ws[3]]), 8);
        let wm = w
            .view()
            .into_shape_with_order((ws[0] * ws[1] * ws[2], ws[3]))
            .unwrap();
        let dcols = matmul_naive(dy.view().into_dimensionality().unwrap(), wm.t()).unwrap();
        let expected = col2im_add(dcols.view(), xs, &win).unwrap().into_dyn();
        let dy4 = dy
            .into_shape_with_order(vec![xs[0], oh, ow, ws[3]])
            .unwrap();
        let got = conv2d_backprop_input(&dy4, &w, &xs, s, pad).unwrap();
        assert_eq!(got, expected, "{xs:?} {ws:?} {s:?} {pad:?}");
    }
}

#[test]
fn gradients_are_linear_in_wrapping_shares() {
    // k(a0 + a1, b) = k(a0, b) + k(a1, b) mod 2^64 for uniform words a0, a1, b.
    let (xs, ws, s, pad) = ([1, 6, 5, 2], [3, 3, 2, 2], (2, 2), Padding::Same);
    let x = words(&ArrayD::zeros(xs.to_vec()), 1);
    let x1 = words(&x, 2);
    let dy = words(&ArrayD::zeros(vec![1, 3, 3, 2]), 3);
    let w = words(&ArrayD::zeros(ws.to_vec()), 4);
    let w1 = words(&w, 5);
    let sum = |a: &ArrayD<u64>, b: &ArrayD<u64>| add(a, b).unwrap();
    let f = |x: &ArrayD<u64>| conv2d_backprop_filter(x, &dy, &ws, s, pad).unwrap();
    assert_eq!(f(&sum(&x, &x1)), sum(&f(&x), &f(&x1)));
    let g = |w: &ArrayD<u64>| conv2d_backprop_input(&dy, w, &xs, s, pad).unwrap();
    assert_eq!(g(&sum(&w, &w1)), sum(&g(&w), &g(&w1)));
}

#[test]
fn shape_errors_are_errors() {
    let dy = ArrayD::<u64>::zeros(vec![1, 3, 3, 2]);
    let w = ArrayD::<u64>::zeros(vec![3, 3, 2, 2]);
    // Wrong output shape for the input, 3-D input shape, channel mismatch.
    assert!(conv2d_backprop_input(&dy, &w, &[1, 4, 4, 2], (1, 1), Padding::Valid).is_err());
    assert!(conv2d_backprop_input(&dy, &w, &[5, 5, 2], (1, 1), Padding::Valid).is_err());
    let x = ArrayD::<u64>::zeros(vec![1, 5, 5, 3]);
    assert!(conv2d_backprop_filter(&x, &dy, &[3, 3, 2, 2], (1, 1), Padding::Valid).is_err());
    assert!(conv2d_backprop_filter(&x, &dy, &[3, 3, 3, 2], (0, 1), Padding::Valid).is_err());
}

#[test]
fn windows_add_is_the_adjoint_of_windows() {
    // <windows(x), c> = <x, windows_add(c)> mod 2^64, overlapping and padded windows.
    use super::{mul, sum_all, windows, windows_add};
    use crate::im2col::Window2d;
    for (shape, win) in [
        ([2, 4, 4, 3], Window2d::new((2, 2), (2, 2), Padding::Valid)),
        ([1, 5, 5, 2], Window2d::new((3, 3), (2, 2), Padding::Valid)),
        ([2, 6, 5, 1], Window2d::new((3, 3), (2, 2), Padding::Same)),
    ] {
        let x = words(&ArrayD::zeros(shape.to_vec()), 7);
        let wx = windows(&x, &win, 0).unwrap();
        let c = words(&wx, 8);
        let back = windows_add(&c, &shape, &win).unwrap();
        assert_eq!(
            sum_all(&mul(&wx, &c).unwrap()),
            sum_all(&mul(&x, &back).unwrap()),
            "{win:?}"
        );
    }
    let c = ArrayD::<u64>::zeros(vec![1, 2, 2, 1, 3]);
    let win = Window2d::new((2, 2), (2, 2), Padding::Valid);
    assert!(windows_add(&c, &[1, 4, 4, 1], &win).is_err());
}

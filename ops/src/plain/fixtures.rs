//! Small NHWC test images shared by the convolution and pooling tests.

use ndarray::{Array, Array4};

/// A 1xHxWxC image from row-major values.
pub fn image(v: &[f32], h: usize, w: usize, c: usize) -> Array4<f32> {
    Array::from_shape_vec((1, h, w, c), v.to_vec()).unwrap()
}

/// 1x4x4x1: rows 3 1 4 1 / 5 9 2 6 / 5 3 5 8 / 9 7 9 3.
pub fn p4() -> Array4<f32> {
    image(
        &[
            3., 1., 4., 1., 5., 9., 2., 6., 5., 3., 5., 8., 9., 7., 9., 3.,
        ],
        4,
        4,
        1,
    )
}

/// 1x5x5x2: channel 0 is `(7i + 3j) mod 11 - 5`, channel 1 is `-((7i + 3j) mod 11) - 1`
/// (all negative, so a zero-padded max would be wrong).
pub fn q5() -> Array4<f32> {
    Array::from_shape_fn((1, 5, 5, 2), |(_, i, j, c)| {
        let t = ((7 * i + 3 * j) % 11) as f32;
        if c == 0 {
            t - 5.0
        } else {
            -t - 1.0
        }
    })
}

/// Elementwise equality within 1e-5.
pub fn assert_near(a: &Array4<f32>, b: &Array4<f32>) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5, "{a:?} != {b:?}");
    }
}

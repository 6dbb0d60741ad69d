//! Elementwise activations (relu, sigmoid) and the row-wise softmax, with their gradients.

use ndarray::{Array, ArrayView, Axis, Dimension, Zip};

use super::same_shape;
use crate::{OpsError, Result};

/// `max(x, 0)` elementwise.
pub fn relu<D: Dimension>(x: ArrayView<f32, D>) -> Array<f32, D> {
    x.mapv(|v| v.max(0.0))
}

/// Gradient of [`relu`] given its input `x`: `dy` where `x > 0`, else 0 (0 at `x == 0`, as in
/// TensorFlow).
pub fn relu_backward<D: Dimension>(
    x: ArrayView<f32, D>,
    dy: ArrayView<f32, D>,
) -> Result<Array<f32, D>> {
    same_shape("relu_backward", x.shape(), dy.shape())?;
    Ok(Zip::from(&x)
        .and(&dy)
        .map_collect(|&x, &g| if x > 0.0 { g } else { 0.0 }))
}

/// The logistic function `1 / (1 + exp(-x))` elementwise.
pub fn sigmoid<D: Dimension>(x: ArrayView<f32, D>) -> Array<f32, D> {
    x.mapv(|v| 1.0 / (1.0 + (-v).exp()))
}

/// Gradient of [`sigmoid`] given its output `y`: `dy * y * (1 - y)`.
pub fn sigmoid_backward<D: Dimension>(
    y: ArrayView<f32, D>,
    dy: ArrayView<f32, D>,
) -> Result<Array<f32, D>> {
    same_shape("sigmoid_backward", y.shape(), dy.shape())?;
    Ok(Zip::from(&y)
        .and(&dy)
        .map_collect(|&y, &g| g * y * (1.0 - y)))
}

/// Softmax along the last axis, stabilised by subtracting each row's maximum. Errors on a
/// scalar.
pub fn softmax<D: Dimension>(x: ArrayView<f32, D>) -> Result<Array<f32, D>> {
    if x.ndim() == 0 {
        return Err(OpsError::InvalidArgument {
            op: "softmax",
            message: "softmax of a scalar".into(),
        });
    }
    let last = Axis(x.ndim() - 1);
    let mut y = x.to_owned();
    for mut row in y.lanes_mut(last) {
        let m = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sum = 0.0f32;
        row.mapv_inplace(|v| {
            let e = (v - m).exp();
            sum += e;
            e
        });
        let inv = 1.0 / sum;
        row.mapv_inplace(|v| v * inv);
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plain::gradcheck::{check_grad, distinct, random};
    use ndarray::{array, ArrayD};

    #[test]
    fn relu_values() {
        let x = array![[-1.0f32, 0.0, 2.0]];
        assert_eq!(relu(x.view()), array![[0.0f32, 0.0, 2.0]]);
        let dy = array![[5.0f32, 6.0, 7.0]];
        assert_eq!(
            relu_backward(x.view(), dy.view()).unwrap(),
            array![[0.0f32, 0.0, 7.0]]
        );
        let bad = array![[1.0f32, 2.0]];
        assert!(relu_backward(x.view(), bad.view()).is_err());
    }

    #[test]
    fn sigmoid_values() {
        let x = array![0.0f32, 2.0, -2.0, 100.0, -100.0];
        let y = sigmoid(x.view());
        let expected = [0.5f32, 0.880_797, 0.119_203, 1.0, 0.0];
        for (a, b) in y.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6);
        }
        assert!(sigmoid_backward(y.view(), x.slice(ndarray::s![..2])).is_err());
    }

    #[test]
    fn softmax_values_and_stability() {
        let x = array![[1.0f32, 2.0, 3.0], [1000.0, 1000.0, -1000.0]];
        let y = softmax(x.view()).unwrap();
        let e = [1.0f32, 1.0f32.exp(), 2.0f32.exp()];
        let s: f32 = e.iter().sum();
        let expected = array![[e[0] / s, e[1] / s, e[2] / s], [0.5, 0.5, 0.0]];
        for (a, b) in y.iter().zip(expected.iter()) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
        let scalar = ndarray::arr0(1.0f32);
        assert!(softmax(scalar.view()).is_err());
    }

    #[test]
    fn activation_gradcheck() {
        // Entries at least 0.05 from zero, so the relu kink is never crossed.
        let x = distinct(&[3, 5], 51);
        let r = random(&[3, 5], 52);
        let dx = relu_backward(x.view(), r.view()).unwrap();
        check_grad("relu", &x, &dx, &r, |x: &ArrayD<f32>| relu(x.view()));

        let x = random(&[3, 5], 53);
        let y = sigmoid(x.view());
        let dx = sigmoid_backward(y.view(), r.view()).unwrap();
        check_grad("sigmoid", &x, &dx, &r, |x: &ArrayD<f32>| sigmoid(x.view()));
    }
}

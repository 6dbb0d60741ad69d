//! Losses: softmax cross-entropy (with integer labels fused with its gradient, or with
//! one-hot labels), sigmoid cross-entropy and the mean squared error.

use ndarray::{Array2, ArrayView2, ArrayViewD, Axis, Zip};

use crate::{OpsError, Result};

/// Mean softmax cross-entropy of `logits` `[N, K]` against class `labels` (`N` of them, each
/// below `K`), and its gradient with respect to the logits, `(softmax - onehot) / N`.
/// Stable for large logits (log-sum-exp with the row maximum subtracted).
pub fn softmax_cross_entropy(
    logits: ArrayView2<f32>,
    labels: &[usize],
) -> Result<(f32, Array2<f32>)> {
    let op = "softmax_cross_entropy";
    let (n, k) = logits.dim();
    if labels.len() != n {
        return Err(OpsError::ShapeMismatch {
            op,
            left: logits.shape().to_vec(),
            right: vec![labels.len()],
        });
    }
    if n == 0 || k == 0 {
        return Err(OpsError::InvalidArgument {
            op,
            message: format!("empty logits of shape {:?}", logits.shape()),
        });
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= k) {
        return Err(OpsError::InvalidArgument {
            op,
            message: format!("label {l} of example {i} is not below the {k} classes"),
        });
    }
    let inv_n = 1.0 / n as f32;
    let mut grad = logits.to_owned();
    let mut total = 0.0f64;
    for (mut row, &label) in grad.axis_iter_mut(Axis(0)).zip(labels) {
        let m = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let sum: f32 = row.iter().map(|&v| (v - m).exp()).sum();
        let log_sum = sum.ln();
        // loss = log(sum exp(z - m)) - (z_label - m)
        total += (log_sum - (row[label] - m)) as f64;
        row.mapv_inplace(|v| (v - m - log_sum).exp() * inv_n);
        row[label] -= inv_n;
    }
    Ok(((total / n as f64) as f32, grad))
}

/// Mean softmax cross-entropy of `logits` `[N, K]` against one-hot (or any probability)
/// `labels` `[N, K]`: the mean over rows of `-sum(labels * log_softmax(logits))`, stable for
/// large logits.
pub fn softmax_cross_entropy_onehot(
    logits: ArrayView2<f32>,
    labels: ArrayView2<f32>,
) -> Result<f32> {
    let op = "softmax_cross_entropy";
    if logits.shape() != labels.shape() || logits.is_empty() {
        return Err(OpsError::ShapeMismatch {
            op,
            left: logits.shape().to_vec(),
            right: labels.shape().to_vec(),
        });
    }
    let mut total = 0.0f64;
    for (row, y) in logits.outer_iter().zip(labels.outer_iter()) {
        let m = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let log_sum = row.iter().map(|&v| (v - m).exp()).sum::<f32>().ln();
        total -= Zip::from(&row)
            .and(&y)
            .fold(0.0f64, |acc, &z, &t| acc + (t * (z - m - log_sum)) as f64);
    }
    Ok((total / logits.nrows() as f64) as f32)
}

/// Sigmoid cross-entropy of `logits` `[N, K]` against `labels` `[N, K]` (each in `[0, 1]`):
/// the mean over rows of the sum over classes of
/// `-(y log(sigmoid(z)) + (1 - y) log(1 - sigmoid(z)))`, computed as
/// `max(z, 0) - z y + log(1 + exp(-|z|))`, stable for large logits.
pub fn sigmoid_cross_entropy(logits: ArrayView2<f32>, labels: ArrayView2<f32>) -> Result<f32> {
    if logits.shape() != labels.shape() || logits.is_empty() {
        return Err(OpsError::ShapeMismatch {
            op: "sigmoid_cross_entropy",
            left: logits.shape().to_vec(),
            right: labels.shape().to_vec(),
        });
    }
    let total = Zip::from(&logits).and(&labels).fold(0.0f64, |acc, &z, &y| {
        let (z, y) = (f64::from(z), f64::from(y));
        acc + z.max(0.0) - z * y + (-z.abs()).exp().ln_1p()
    });
    Ok((total / logits.nrows() as f64) as f32)
}

/// Mean of `(prediction - target)^2` over every element.
pub fn mean_squared_error(prediction: ArrayViewD<f32>, target: ArrayViewD<f32>) -> Result<f32> {
    if prediction.shape() != target.shape() || prediction.is_empty() {
        return Err(OpsError::ShapeMismatch {
            op: "mean_squared_error",
            left: prediction.shape().to_vec(),
            right: target.shape().to_vec(),
        });
    }
    let sum = Zip::from(&prediction)
        .and(&target)
        .fold(0.0f64, |acc, &p, &t| acc + ((p - t) as f64).powi(2));
    Ok((sum / prediction.len() as f64) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plain::gradcheck::{assert_close, numeric_grad, random};
    use ndarray::{array, ArrayD, Ix2};

    #[test]
    fn values() {
        // Uniform logits: loss ln 3, gradient (1/3 - onehot) / 2.
        let z = array![[0.0f32, 0.0, 0.0], [5.0, 5.0, 5.0]];
        let (loss, g) = softmax_cross_entropy(z.view(), &[0, 2]).unwrap();
        assert!((loss - 3.0f32.ln()).abs() < 1e-6);
        let t = 1.0 / 6.0;
        let expected = array![[t - 0.5, t, t], [t, t, t - 0.5]];
        assert!(g
            .iter()
            .zip(expected.iter())
            .all(|(a, b)| (a - b).abs() < 1e-6));
        // Huge logits stay finite: loss of [1000, 0] with label 1 is 1000.
        let z = array![[1000.0f32, 0.0]];
        let (loss, g) = softmax_cross_entropy(z.view(), &[1]).unwrap();
        assert!((loss - 1000.0).abs() < 1e-3);
        assert_eq!(g, array![[1.0f32, -1.0]]);
    }

    #[test]
    fn errors() {
        let z = array![[0.0f32, 1.0]];
        assert!(softmax_cross_entropy(z.view(), &[2]).is_err());
        assert!(softmax_cross_entropy(z.view(), &[0, 1]).is_err());
        let empty = Array2::<f32>::zeros((0, 2));
        assert!(softmax_cross_entropy(empty.view(), &[]).is_err());
    }

    #[test]
    fn sigmoid_cross_entropy_values_and_gradient() {
        // z = 0: ln 2 per class whatever the label; two classes per row.
        let z = array![[0.0f32, 0.0], [0.0, 0.0]];
        let y = array![[1.0f32, 0.0], [0.0, 1.0]];
        let loss = sigmoid_cross_entropy(z.view(), y.view()).unwrap();
        assert!((loss - 2.0 * 2.0f32.ln()).abs() < 1e-6, "{loss}");
        // Huge logits stay finite: right with certainty costs 0, wrong costs |z|.
        let z = array![[1000.0f32, -1000.0]];
        let right = sigmoid_cross_entropy(z.view(), array![[1.0f32, 0.0]].view()).unwrap();
        let wrong = sigmoid_cross_entropy(z.view(), array![[0.0f32, 1.0]].view()).unwrap();
        assert!(
            right.abs() < 1e-6 && (wrong - 2000.0).abs() < 1e-2,
            "{right} {wrong}"
        );
        assert!(sigmoid_cross_entropy(z.view(), array![[1.0f32]].view()).is_err());
        // The gradient (sigmoid(z) - y) / N of the graph's backward rule.
        let z = random(&[4, 5], 62).mapv(|v| 3.0 * v);
        let y = random(&[4, 5], 63).mapv(|v| (v > 0.0) as u8 as f32);
        let y2 = y.view().into_dimensionality::<Ix2>().unwrap();
        let analytic = ndarray::Zip::from(&z)
            .and(&y)
            .map_collect(|&z, &y| (1.0 / (1.0 + (-z).exp()) - y) / 4.0);
        let numeric = numeric_grad(&z, |z: &ArrayD<f32>| {
            sigmoid_cross_entropy(z.view().into_dimensionality().unwrap(), y2).unwrap() as f64
        });
        assert_close("sigmoid cross-entropy", &analytic, &numeric);
    }

    #[test]
    fn gradcheck() {
        let z = random(&[4, 5], 61).mapv(|v| 3.0 * v);
        let labels = [0usize, 4, 2, 2];
        let (_, g) =
            softmax_cross_entropy(z.view().into_dimensionality::<Ix2>().unwrap(), &labels).unwrap();
        let numeric = numeric_grad(&z, |z: &ArrayD<f32>| {
            let (loss, _) =
                softmax_cross_entropy(z.view().into_dimensionality().unwrap(), &labels).unwrap();
            loss as f64
        });
        assert_close("softmax cross-entropy", &g.into_dyn(), &numeric);
    }
}

//! Batch normalisation at inference, with frozen statistics, over the last (channel) axis.

use ndarray::{Array1, ArrayD, ArrayView1, ArrayViewD, Axis, Zip};

use crate::{OpsError, Result};

/// `(x - mean) / sqrt(var + eps) * gamma + beta`, the parameters indexed by the last axis of
/// `x` (channels in NHWC, features in `[N, F]`). All four parameters must have that length.
pub fn batchnorm_inference(
    x: ArrayViewD<f32>,
    mean: ArrayView1<f32>,
    var: ArrayView1<f32>,
    gamma: ArrayView1<f32>,
    beta: ArrayView1<f32>,
    eps: f32,
) -> Result<ArrayD<f32>> {
    let op = "batchnorm";
    let Some(&c) = x.shape().last() else {
        return Err(OpsError::InvalidArgument {
            op,
            message: "batch normalisation of a scalar".into(),
        });
    };
    for (name, p) in [
        ("mean", &mean),
        ("var", &var),
        ("gamma", &gamma),
        ("beta", &beta),
    ] {
        if p.len() != c {
            return Err(OpsError::InvalidArgument {
                op,
                message: format!(
                    "{name} has {} entries but the input {:?} has {c} channels",
                    p.len(),
                    x.shape()
                ),
            });
        }
    }
    if eps.is_nan() || eps < 0.0 {
        return Err(OpsError::InvalidArgument {
            op,
            message: format!("epsilon {eps} must be non-negative"),
        });
    }
    // y = x * scale + shift with scale = gamma / sqrt(var + eps), shift = beta - mean * scale.
    let scale: Array1<f32> = Zip::from(&gamma)
        .and(&var)
        .map_collect(|&g, &v| g / (v + eps).sqrt());
    let shift: Array1<f32> = Zip::from(&beta)
        .and(&mean)
        .and(&scale)
        .map_collect(|&b, &m, &s| b - m * s);
    let mut y = x.to_owned();
    let last = Axis(y.ndim() - 1);
    for mut lane in y.lanes_mut(last) {
        Zip::from(&mut lane)
            .and(&scale)
            .and(&shift)
            .for_each(|v, &s, &t| *v = *v * s + t);
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn values() {
        let x = array![[1.0f32, 10.0], [3.0, 20.0]].into_dyn();
        let mean = array![2.0f32, 10.0];
        let var = array![4.0f32, 100.0];
        let gamma = array![1.0f32, 2.0];
        let beta = array![0.5f32, -1.0];
        let y = batchnorm_inference(
            x.view(),
            mean.view(),
            var.view(),
            gamma.view(),
            beta.view(),
            0.0,
        )
        .unwrap();
        // Channel 0: (x - 2) / 2 + 0.5; channel 1: (x - 10) / 10 * 2 - 1.
        assert_eq!(y, array![[0.0f32, -1.0], [1.0, 1.0]].into_dyn());
        let short = array![1.0f32];
        assert!(batchnorm_inference(
            x.view(),
            short.view(),
            var.view(),
            gamma.view(),
            beta.view(),
            0.0
        )
        .is_err());
        assert!(batchnorm_inference(
            x.view(),
            mean.view(),
            var.view(),
            gamma.view(),
            beta.view(),
            f32::NAN
        )
        .is_err());
    }
}

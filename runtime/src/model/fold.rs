//! Batch-norm folding on the model owner's weights: the numbers behind
//! [`Network::fold_batchnorm`], applied before the weights are secret-shared, so that a
//! private model never computes a batch normalisation.

use ndarray::{Axis, IxDyn};
use shareflow_graphs::network::{Fold, Network};

use crate::data::Weights;
use crate::{Result, RuntimeError};

/// The folded network and its weights: every batch normalisation of `network` folded into
/// the linear layer before it or into a `Scale` (see [`Network::fold_batchnorm`]).
pub fn fold_batchnorm(network: &Network, weights: &Weights) -> Result<(Network, Weights)> {
    let (folded, folds) = network.fold_batchnorm();
    let mut out = weights.clone();
    for fold in &folds {
        let bn = match fold {
            Fold::IntoLinear { bn, .. } | Fold::IntoScale { bn } => bn,
        };
        let [gamma, beta, mean, var] = bn
            .names()
            .map(|name| weights.get(&name, &[bn.channels]).cloned());
        let (gamma, beta, mean, var) = (gamma?, beta?, mean?, var?);
        let scale = (&var + bn.epsilon).mapv(|v| 1.0 / v.sqrt()) * &gamma;
        for name in bn.names() {
            out.arrays.remove(&name);
        }
        match fold {
            Fold::IntoLinear { layer, .. } => {
                let kernel_name = format!("{layer}/kernel");
                let bias_name = format!("{layer}/bias");
                let kernel = weights
                    .arrays
                    .get(&kernel_name)
                    .ok_or_else(|| missing(&kernel_name))?;
                let bias = weights.get(&bias_name, &[bn.channels])?;
                if kernel.shape().last() != Some(&bn.channels) {
                    return Err(RuntimeError::Node {
                        node: kernel_name,
                        message: format!(
                            "shape {:?} does not end in the {} channels of batchnorm '{}'",
                            kernel.shape(),
                            bn.channels,
                            bn.name
                        ),
                    });
                }
                let last = Axis(kernel.ndim() - 1);
                let mut k = kernel.clone();
                for (mut lane, &s) in k.axis_iter_mut(last).zip(scale.iter()) {
                    lane.mapv_inplace(|v| v * s);
                }
                let b = (bias - &mean) * &scale + &beta;
                out.arrays.insert(kernel_name, k);
                out.arrays.insert(bias_name, b);
            }
            Fold::IntoScale { .. } => {
                let shift = &beta - &(&mean * &scale);
                let dims = IxDyn(&[bn.channels]);
                out.arrays.insert(
                    format!("{}/scale", bn.name),
                    scale
                        .clone()
                        .into_shape_with_order(dims.clone())
                        .map_err(shape_err)?,
                );
                out.arrays.insert(
                    format!("{}/shift", bn.name),
                    shift.into_shape_with_order(dims).map_err(shape_err)?,
                );
            }
        }
    }
    Ok((folded, out))
}

fn missing(name: &str) -> RuntimeError {
    RuntimeError::Node {
        node: name.to_string(),
        message: "no such weight".into(),
    }
}

fn shape_err(e: ndarray::ShapeError) -> RuntimeError {
    RuntimeError::Node {
        node: "batchnorm".into(),
        message: e.to_string(),
    }
}

/// `ArrayD` of one axis (used by tests).
#[cfg(test)]
fn vector(values: &[f32]) -> ndarray::ArrayD<f32> {
    ndarray::ArrayD::from_shape_vec(IxDyn(&[values.len()]), values.to_vec()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shareflow_graphs::nn::{BatchNorm, Dense, Sequential};

    #[test]
    fn a_folded_dense_layer_has_the_scaled_kernel_and_shifted_bias() {
        let net = Network::new(
            [2],
            Sequential::new()
                .push(Dense::new("d", 2, 2))
                .push(BatchNorm::new("bn", 2).with_epsilon(0.0)),
        );
        let mut w = Weights::default();
        let k = ndarray::ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        w.arrays.insert("d/kernel".into(), k);
        w.arrays.insert("d/bias".into(), vector(&[1.0, 1.0]));
        w.arrays.insert("bn/gamma".into(), vector(&[2.0, 1.0]));
        w.arrays.insert("bn/beta".into(), vector(&[0.5, 0.0]));
        w.arrays
            .insert("bn/moving_mean".into(), vector(&[1.0, 0.0]));
        w.arrays
            .insert("bn/moving_variance".into(), vector(&[4.0, 1.0]));
        let (folded, fw) = fold_batchnorm(&net, &w).unwrap();
        assert_eq!(folded.layers.layers.len(), 1);
        // s = [2 / 2, 1 / 1] = [1, 1]
        assert_eq!(
            fw.arrays["d/kernel"].as_slice().unwrap(),
            &[1.0, 2.0, 3.0, 4.0]
        );
        assert_eq!(fw.arrays["d/bias"].as_slice().unwrap(), &[0.5, 1.0]);
        assert!(!fw.arrays.contains_key("bn/gamma"));
    }
}

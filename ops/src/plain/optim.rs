//! Stochastic gradient descent with momentum.

use ndarray::{ArrayD, Zip};

use crate::{OpsError, Result};

/// SGD with (heavy-ball) momentum, as TensorFlow's `MomentumOptimizer` and PyTorch's `SGD`:
/// `v <- momentum * v + g`, then `p <- p - lr * v`. With `momentum = 0` it is plain SGD.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum coefficient, usually in `[0, 1)`.
    pub momentum: f32,
}

impl Sgd {
    /// An optimiser with this learning rate and momentum.
    pub fn new(lr: f32, momentum: f32) -> Self {
        Sgd { lr, momentum }
    }

    /// Zero velocities shaped like `params`, to pass to [`Sgd::step`].
    pub fn zero_velocity(params: &[ArrayD<f32>]) -> Vec<ArrayD<f32>> {
        params.iter().map(|p| ArrayD::zeros(p.raw_dim())).collect()
    }

    /// One update of every parameter with its gradient and velocity (same order and shapes).
    /// Checks everything before changing anything.
    pub fn step(
        &self,
        params: &mut [ArrayD<f32>],
        grads: &[ArrayD<f32>],
        velocity: &mut [ArrayD<f32>],
    ) -> Result<()> {
        let op = "sgd";
        if params.len() != grads.len() || params.len() != velocity.len() {
            return Err(OpsError::InvalidArgument {
                op,
                message: format!(
                    "{} parameters, {} gradients and {} velocities",
                    params.len(),
                    grads.len(),
                    velocity.len()
                ),
            });
        }
        for (i, ((p, g), v)) in params.iter().zip(grads).zip(velocity.iter()).enumerate() {
            if p.shape() != g.shape() || p.shape() != v.shape() {
                return Err(OpsError::InvalidArgument {
                    op,
                    message: format!(
                        "parameter {i} has shape {:?}, its gradient {:?}, its velocity {:?}",
                        p.shape(),
                        g.shape(),
                        v.shape()
                    ),
                });
            }
        }
        let (lr, mu) = (self.lr, self.momentum);
        for ((p, g), v) in params.iter_mut().zip(grads).zip(velocity.iter_mut()) {
            Zip::from(p).and(v).and(g).for_each(|p, v, &g| {
                *v = mu * *v + g;
                *p -= lr * *v;
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn momentum_updates() {
        let sgd = Sgd::new(0.1, 0.9);
        let mut params = vec![array![1.0f32, 2.0].into_dyn()];
        let mut vel = Sgd::zero_velocity(&params);
        let grads = vec![array![1.0f32, -1.0].into_dyn()];
        sgd.step(&mut params, &grads, &mut vel).unwrap();
        // v = g; p = p - 0.1 g.
        assert_eq!(vel[0], array![1.0f32, -1.0].into_dyn());
        assert!((params[0][[0]] - 0.9).abs() < 1e-6 && (params[0][[1]] - 2.1).abs() < 1e-6);
        sgd.step(&mut params, &grads, &mut vel).unwrap();
        // v = 0.9 + 1 = 1.9; p = 0.9 - 0.19 = 0.71.
        assert!((vel[0][[0]] - 1.9).abs() < 1e-6);
        assert!((params[0][[0]] - 0.71).abs() < 1e-6 && (params[0][[1]] - 2.29).abs() < 1e-6);
    }

    #[test]
    fn mismatches_change_nothing() {
        let sgd = Sgd::new(0.1, 0.0);
        let mut params = vec![array![1.0f32].into_dyn(), array![2.0f32].into_dyn()];
        let mut vel = Sgd::zero_velocity(&params);
        let grads = vec![array![1.0f32].into_dyn(), array![1.0f32, 1.0].into_dyn()];
        assert!(sgd.step(&mut params, &grads, &mut vel).is_err());
        assert_eq!(params[0], array![1.0f32].into_dyn());
        assert!(sgd.step(&mut params, &grads[..1], &mut vel).is_err());
    }
}

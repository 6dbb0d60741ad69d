//! The f32 plaintext reference kernels, forward and backward, on `ndarray`.
//!
//! Conventions, shared with the protocols that these kernels are the oracle of:
//!
//! - Activations are NHWC (`[N, H, W, C]`), filters HWIO (`[KH, KW, Cin, Cout]`).
//! - Padding follows TensorFlow ([`Padding`]): "SAME" gives `ceil(in / stride)` outputs and puts
//!   the extra padding cell, when the total is odd, at the bottom / right; "VALID" pads nothing.
//! - Convolution is cross-correlation (no filter flip), as in TensorFlow and PyTorch; it runs as
//!   [`im2col`](crate::im2col::im2col) followed by one GEMM.
//! - Every kernel checks its shapes and returns [`crate::OpsError`] instead of
//!   panicking.
//!
//! Modules: [`linalg`] (matmul, broadcasting arithmetic, reductions), [`conv`], [`maxpool`],
//! [`avgpool`], [`activation`] (relu, sigmoid, softmax), [`loss`]
//! (softmax cross-entropy, mean squared error), [`init`] (seeded normal samples), [`norm`] (batch normalisation at inference), [`optim`] (SGD with
//! momentum), [`gradcheck`] (central differences for tests).

pub mod activation;
pub mod avgpool;
pub mod conv;
pub mod init;
pub mod linalg;
pub mod loss;
pub mod maxpool;
pub mod norm;
pub mod optim;

#[cfg(test)]
pub(crate) mod fixtures;
pub mod gradcheck;

pub use crate::im2col::{Padding, Window2d};
pub use activation::{relu, relu_backward, sigmoid, sigmoid_backward, softmax};
pub use avgpool::{avgpool2d, avgpool2d_backward};
pub use conv::{
    conv2d, conv2d_backward, conv2d_backward_filter, conv2d_backward_input, Conv2dGrads,
};
pub use linalg::{
    add, argmax_last, broadcast_shape, matmul, matmul_backward, mul, reduce_sum, reduce_to_shape,
    sub,
};
pub use loss::{
    mean_squared_error, sigmoid_cross_entropy, softmax_cross_entropy, softmax_cross_entropy_onehot,
};
pub use maxpool::{maxpool2d, maxpool2d_backward, MaxPoolOutput, NO_ARGMAX};
pub use norm::batchnorm_inference;
pub use optim::Sgd;

use ndarray::{ArrayView, ArrayViewD, Dimension};

use crate::{OpsError, Result};

/// Views a dynamic-rank array as a fixed rank `D` (e.g. `Ix2`, `Ix4`), or a typed error naming
/// `op` when the rank differs.
pub fn to_rank<'a, T, D: Dimension>(
    x: ArrayViewD<'a, T>,
    op: &'static str,
) -> Result<ArrayView<'a, T, D>> {
    let rank = x.ndim();
    let shape = x.shape().to_vec();
    x.into_dimensionality::<D>()
        .map_err(|_| OpsError::InvalidArgument {
            op,
            message: format!(
                "expected a tensor of rank {}, got rank {rank} with shape {shape:?}",
                D::NDIM.map_or_else(|| "any".to_string(), |n| n.to_string())
            ),
        })
}

/// Checks that two shapes are equal, or returns a [`OpsError::ShapeMismatch`] for `op`.
pub(crate) fn same_shape(op: &'static str, left: &[usize], right: &[usize]) -> Result<()> {
    if left == right {
        Ok(())
    } else {
        Err(OpsError::ShapeMismatch {
            op,
            left: left.to_vec(),
            right: right.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, Ix2, Ix4, IxDyn};

    #[test]
    fn to_rank_checks_the_rank() {
        let x = ArrayD::<f32>::zeros(IxDyn(&[2, 3]));
        assert_eq!(to_rank::<_, Ix2>(x.view(), "t").unwrap().dim(), (2, 3));
        assert!(matches!(
            to_rank::<_, Ix4>(x.view(), "t"),
            Err(OpsError::InvalidArgument { .. })
        ));
    }
}

//! Layers without parameters that reshape or normalise: global average pooling, reshape,
//! softmax.

use super::{Layer, LayerKind, Params};
use crate::builder::{GraphBuilder, Tensor};
use crate::error::GraphError;
use crate::types::Padding;

/// The mean over height and width of NHWC `[n, h, w, c]`, giving `[n, c]` (an average pool
/// over the whole image, then a reshape).
#[derive(Debug, Clone, Copy)]
pub struct GlobalAveragePool;

impl Layer for GlobalAveragePool {
    fn apply(&self, g: &GraphBuilder, _params: &Params, x: &Tensor) -> Tensor {
        let dims = x.shape().0;
        let &[n, h, w, c] = dims.as_slice() else {
            g.fail(GraphError::Invalid {
                node: x.label(),
                message: format!("global average pooling needs NHWC [n, h, w, c], not {dims:?}"),
            });
            return x.clone();
        };
        x.avgpool2d([h, w], [h, w], Padding::Valid).reshape([n, c])
    }
    fn describe(&self) -> String {
        "global average pool".into()
    }
}

/// Another shape for each example: `[n, ...]` to `[n, shape...]`, row-major (NHWC order,
/// as TensorFlow).
#[derive(Debug, Clone)]
pub struct Reshape {
    /// The shape of one example (without the batch axis).
    pub shape: Vec<usize>,
}

impl Reshape {
    /// Reshapes every example to `shape`.
    pub fn new(shape: impl Into<Vec<usize>>) -> Self {
        Reshape {
            shape: shape.into(),
        }
    }
}

impl Layer for Reshape {
    fn apply(&self, _g: &GraphBuilder, _params: &Params, x: &Tensor) -> Tensor {
        let batch = x.shape().dims().first().copied().unwrap_or(1);
        let mut dims = vec![batch];
        dims.extend_from_slice(&self.shape);
        x.reshape(dims)
    }
    fn describe(&self) -> String {
        format!("reshape {:?}", self.shape)
    }
}

/// Softmax over the last axis. As the last layer of a network it gives probabilities at
/// inference; in a training graph that last softmax is part of the softmax cross-entropy
/// loss (the loss takes the logits before it, as Keras's `from_logits`). A softmax whose only
/// user is the output is computed by the receiver from the revealed logits under SecureNN.
#[derive(Debug, Clone, Copy)]
pub struct Softmax;

impl Layer for Softmax {
    fn apply(&self, _g: &GraphBuilder, _params: &Params, x: &Tensor) -> Tensor {
        x.softmax()
    }
    fn describe(&self) -> String {
        "softmax".into()
    }
    fn kind(&self) -> LayerKind<'_> {
        LayerKind::Softmax
    }
}

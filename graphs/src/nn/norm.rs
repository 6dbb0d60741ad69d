//! Batch normalisation (folded at inference), the per-channel affine map it folds into when
//! no linear layer precedes it, and dropout.

use super::{Layer, LayerKind, ParamSpec, Params};
use crate::builder::{GraphBuilder, Tensor};
use crate::error::GraphError;

/// Inference batch normalisation over the last axis (channels), with Keras's parameters
/// `<name>/gamma`, `<name>/beta`, `<name>/moving_mean` and `<name>/moving_variance`, each
/// `[channels]`: `gamma * (x - mean) / sqrt(var + epsilon) + beta`.
///
/// Its statistics must be public to the op, so a private model folds it before it is built:
/// into the kernel and bias of the [`super::Dense`] or [`super::Conv2D`] before it, or else into
/// a [`Scale`] (see `Network::fold_batchnorm`). Unfolded, it builds only with public
/// parameters ([`Params::Constants`]: the plaintext reference); training it is refused.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    /// The layer's name.
    pub name: String,
    /// The channels (the last axis).
    pub channels: usize,
    /// Added to the variance.
    pub epsilon: f32,
}

impl BatchNorm {
    /// Batch normalisation of `channels` channels with Keras's default epsilon (1e-3).
    pub fn new(name: &str, channels: usize) -> Self {
        BatchNorm {
            name: name.into(),
            channels,
            epsilon: 1e-3,
        }
    }

    /// The same with another epsilon (PyTorch's default is 1e-5).
    pub fn with_epsilon(mut self, epsilon: f32) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// The parameter names: gamma, beta, moving mean, moving variance.
    pub fn names(&self) -> [String; 4] {
        ["gamma", "beta", "moving_mean", "moving_variance"].map(|p| format!("{}/{p}", self.name))
    }
}

impl Layer for BatchNorm {
    fn apply(&self, g: &GraphBuilder, params: &Params, x: &Tensor) -> Tensor {
        if !params.is_public() {
            g.fail(GraphError::Invalid {
                node: format!("batchnorm '{}'", self.name),
                message: "its statistics are private: fold it into the layer before it \
                          (Network::fold_batchnorm) or give public parameters"
                    .into(),
            });
            return x.clone();
        }
        let [gamma, beta, mean, var] = self.params_array().map(|p| params.tensor(g, &p));
        g.scoped(&self.name, || {
            x.batchnorm(&mean, &var, &gamma, &beta, self.epsilon)
        })
    }
    fn apply_training(&self, g: &GraphBuilder, _params: &Params, x: &Tensor) -> Tensor {
        g.fail(GraphError::Invalid {
            node: format!("batchnorm '{}'", self.name),
            message: "batch normalisation is not trainable here (batch statistics are not \
                      implemented): train without it, or fold a trained one for inference"
                .into(),
        });
        x.clone()
    }
    fn params(&self) -> Vec<ParamSpec> {
        self.params_array().to_vec()
    }
    fn describe(&self) -> String {
        format!(
            "{}: batchnorm {} channels, epsilon {}",
            self.name, self.channels, self.epsilon
        )
    }
    fn kind(&self) -> LayerKind<'_> {
        LayerKind::BatchNorm(self)
    }
}

impl BatchNorm {
    fn params_array(&self) -> [ParamSpec; 4] {
        self.names().map(|name| ParamSpec {
            name,
            shape: vec![self.channels],
            fan_in: self.channels,
        })
    }
}

/// A per-channel affine map over the last axis: `x * scale + shift`, with parameters
/// `<name>/scale` and `<name>/shift` of shape `[channels]` (what a [`BatchNorm`] with no
/// linear layer before it folds into).
#[derive(Debug, Clone)]
pub struct Scale {
    /// The layer's name.
    pub name: String,
    /// The channels (the last axis).
    pub channels: usize,
}

impl Scale {
    /// An affine map of `channels` channels.
    pub fn new(name: &str, channels: usize) -> Self {
        Scale {
            name: name.into(),
            channels,
        }
    }
}

impl Layer for Scale {
    fn apply(&self, g: &GraphBuilder, params: &Params, x: &Tensor) -> Tensor {
        let [scale, shift] = self.params_array().map(|p| params.tensor(g, &p));
        g.scoped(&self.name, || x * &scale + &shift)
    }
    fn params(&self) -> Vec<ParamSpec> {
        self.params_array().to_vec()
    }
    fn describe(&self) -> String {
        format!("{}: scale and shift {} channels", self.name, self.channels)
    }
}

impl Scale {
    fn params_array(&self) -> [ParamSpec; 2] {
        ["scale", "shift"].map(|p| ParamSpec {
            name: format!("{}/{p}", self.name),
            shape: vec![self.channels],
            fan_in: self.channels,
        })
    }
}

/// Dropout: the identity at inference; in a training graph each value is kept with
/// probability `1 - rate` and scaled by `1 / (1 - rate)` (inverted dropout). The mask is the
/// public run-time parameter `<name>/mask` of the input's shape: the session draws it for
/// every step from the training run's public seed, so both servers multiply their shares by
/// the same mask (a product by a public value, no communication). The mask depends on the
/// seed and the step only, never on the data.
#[derive(Debug, Clone)]
pub struct Dropout {
    /// The layer's name (its mask is `<name>/mask`).
    pub name: String,
    /// The fraction of values dropped, in `[0, 1)`.
    pub rate: f32,
}

impl Dropout {
    /// Drops a fraction `rate` of the values in training.
    pub fn new(name: &str, rate: f32) -> Self {
        Dropout {
            name: name.into(),
            rate,
        }
    }

    /// The name of the mask parameter.
    pub fn mask_name(&self) -> String {
        format!("{}/mask", self.name)
    }
}

impl Layer for Dropout {
    fn apply(&self, _g: &GraphBuilder, _params: &Params, x: &Tensor) -> Tensor {
        x.clone()
    }
    fn apply_training(&self, g: &GraphBuilder, _params: &Params, x: &Tensor) -> Tensor {
        if !(0.0..1.0).contains(&self.rate) {
            g.fail(GraphError::Invalid {
                node: format!("dropout '{}'", self.name),
                message: format!("rate {} is not in [0, 1)", self.rate),
            });
            return x.clone();
        }
        let mask = g.parameter(&self.mask_name(), x.shape());
        x * &mask
    }
    fn describe(&self) -> String {
        format!("{}: dropout {}", self.name, self.rate)
    }
    fn kind(&self) -> LayerKind<'_> {
        LayerKind::Dropout(self)
    }
}

//! Layer lists: [`Sequential`] applies layers in order; [`Residual`] adds a branch to its
//! input (a skip connection).

use std::sync::Arc;

use super::{Layer, LayerKind, ParamSpec, Params};
use crate::builder::{GraphBuilder, Tensor};

/// Layers applied in order.
///
/// ```
/// use shareflow_graphs::nn::{Dense, Flatten, ReLU, Sequential, Softmax};
/// let layers = Sequential::new()
///     .push(Flatten)
///     .push(Dense::new("dense1", 784, 128))
///     .push(ReLU)
///     .push(Dense::new("dense2", 128, 10))
///     .push(Softmax);
/// assert_eq!(layers.params().len(), 4);
/// ```
#[derive(Default, Clone)]
pub struct Sequential {
    /// The layers, in order.
    pub layers: Vec<Arc<dyn Layer>>,
}

impl std::fmt::Debug for Sequential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.layers.iter().map(|l| l.describe()))
            .finish()
    }
}

impl Sequential {
    /// No layers.
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends a layer.
    pub fn push(mut self, layer: impl Layer + 'static) -> Self {
        self.layers.push(Arc::new(layer));
        self
    }
    /// Every parameter of every layer, in order.
    /// These layers, then those of `next`.
    pub fn then(mut self, next: Sequential) -> Self {
        self.layers.extend(next.layers);
        self
    }

    /// The parameters of every layer, in layer order.
    pub fn params(&self) -> Vec<ParamSpec> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }
    /// Applies every layer to `x` (inference).
    pub fn apply(&self, g: &GraphBuilder, params: &Params, x: &Tensor) -> Tensor {
        self.layers
            .iter()
            .fold(x.clone(), |h, layer| layer.apply(g, params, &h))
    }
    /// Applies every layer to `x` in a training graph ([`Layer::apply_training`]).
    pub fn apply_training(&self, g: &GraphBuilder, params: &Params, x: &Tensor) -> Tensor {
        self.layers
            .iter()
            .fold(x.clone(), |h, layer| layer.apply_training(g, params, &h))
    }
    /// Every layer, with those of residual blocks in place of the block, in order.
    pub fn flat(&self) -> Vec<Arc<dyn Layer>> {
        let mut out = Vec::new();
        for l in &self.layers {
            match l.kind() {
                LayerKind::Residual(inner) => out.extend(inner.flat()),
                _ => out.push(l.clone()),
            }
        }
        out
    }
}

/// A residual block: `x + branch(x)` (the branch must keep the shape of `x`). A network with
/// skip connections is a [`Sequential`] whose items may be residual blocks.
///
/// ```
/// use shareflow_graphs::nn::{Conv2D, ReLU, Residual, Sequential};
/// use shareflow_graphs::Padding;
/// let block = Residual::new(
///     Sequential::new()
///         .push(Conv2D::new("res1/conv1", [3, 3], 8, 8, [1, 1], Padding::Same))
///         .push(ReLU)
///         .push(Conv2D::new("res1/conv2", [3, 3], 8, 8, [1, 1], Padding::Same)),
/// );
/// let net = Sequential::new().push(block).push(ReLU);
/// assert_eq!(net.params().len(), 4);
/// ```
#[derive(Clone)]
pub struct Residual {
    /// The branch whose output is added to the block's input.
    pub branch: Sequential,
}

impl Residual {
    /// The block `x + branch(x)`.
    pub fn new(branch: Sequential) -> Self {
        Residual { branch }
    }
}

impl Layer for Residual {
    fn apply(&self, g: &GraphBuilder, params: &Params, x: &Tensor) -> Tensor {
        x + &self.branch.apply(g, params, x)
    }
    fn apply_training(&self, g: &GraphBuilder, params: &Params, x: &Tensor) -> Tensor {
        x + &self.branch.apply_training(g, params, x)
    }
    fn params(&self) -> Vec<ParamSpec> {
        self.branch.params()
    }
    fn describe(&self) -> String {
        let inner: Vec<String> = self.branch.layers.iter().map(|l| l.describe()).collect();
        format!("residual: x + [{}]", inner.join(", "))
    }
    fn kind(&self) -> LayerKind<'_> {
        LayerKind::Residual(&self.branch)
    }
}

//! Neural-network layers on the builder. A layer's parameters are named `<layer>/kernel` and
//! `<layer>/bias` (batch normalisation: `<layer>/gamma`, `/beta`, `/moving_mean`,
//! `/moving_variance`, as Keras); [`Params`] says whether they are private inputs of the model
//! owner (for prediction), variables (for training) or public constants, so one layer list
//! builds every graph. Every layer is made from plain shapes and numbers (no weights): the
//! weights are given apart, by name.
//!
//! [`Sequential`] applies layers in order; [`Residual`] adds a branch's output to its input
//! (the skip connection of a residual network), so a DAG of residual blocks is a
//! `Sequential` of `Residual`s. [`crate::network::Network`] puts a layer list, its input
//! shape and its loss together and builds the prediction, training and reveal graphs.

use std::cell::Cell;
use std::collections::BTreeMap;

use crate::builder::{GraphBuilder, Tensor};
use crate::error::GraphError;
use crate::op::Init;
use crate::types::Padding;
use crate::PartyId;

mod norm;
mod sequential;
mod shape;

pub use norm::{BatchNorm, Dropout, Scale};
pub use sequential::{Residual, Sequential};
pub use shape::{GlobalAveragePool, Reshape, Softmax};

/// Where the parameters of layers come from.
#[derive(Debug)]
pub enum Params {
    /// Private inputs of this party (the model owner), for prediction.
    Inputs(PartyId),
    /// Trainable variables: He-normal kernels drawn in layer order from one ChaCha20 stream
    /// seeded with `seed` (each kernel takes the next part of the stream), zero biases.
    Variables {
        /// Seed of the ChaCha20 stream.
        seed: u64,
        /// Samples of the stream that the kernels so far took.
        drawn: Cell<u64>,
    },
    /// Trainable variables whose first value this party gives by name (a global model handed
    /// to a data owner that trains it further, as in federated learning).
    OwnerVariables(PartyId),
    /// Frozen variables (`trainable: false`) whose first value this party gives by name:
    /// pre-trained layers kept secret-shared but neither differentiated nor updated.
    Frozen(PartyId),
    /// Public constants of the graph, by parameter name (row-major values): a public model,
    /// and the plaintext reference of layers that need public parameters (an unfolded
    /// [`BatchNorm`]).
    Constants(BTreeMap<String, Vec<f32>>),
}

impl Params {
    /// Variables initialised from `seed`.
    pub fn variables(seed: u64) -> Self {
        Params::Variables {
            seed,
            drawn: Cell::new(0),
        }
    }

    /// The tensor of the parameter `spec`.
    pub fn tensor(&self, g: &GraphBuilder, spec: &ParamSpec) -> Tensor {
        match self {
            Params::Inputs(owner) => g.input(*owner, &spec.name, spec.shape.clone()),
            Params::Variables { seed, drawn } => {
                let init = if spec.name.ends_with("/bias") {
                    Init::Zeros
                } else {
                    let offset = drawn.get();
                    drawn.set(offset + spec.shape.iter().product::<usize>() as u64);
                    Init::HeNormal {
                        fan_in: spec.fan_in,
                        seed: *seed,
                        offset,
                    }
                };
                g.variable(&spec.name, spec.shape.clone(), init)
            }
            Params::OwnerVariables(party) => g.variable(
                &spec.name,
                spec.shape.clone(),
                Init::Owner { party: *party },
            ),
            Params::Frozen(party) => g.variable_with(
                &spec.name,
                spec.shape.clone(),
                Init::Owner { party: *party },
                false,
            ),
            Params::Constants(values) => {
                let numel = spec.shape.iter().product::<usize>();
                match values.get(&spec.name) {
                    Some(v) if v.len() == numel => g.constant(spec.shape.clone(), v.clone()),
                    found => {
                        let message = match found {
                            Some(v) => format!("{} values for shape {:?}", v.len(), spec.shape),
                            None => "no value given".into(),
                        };
                        g.fail(GraphError::Invalid {
                            node: format!("parameter '{}'", spec.name),
                            message,
                        });
                        g.constant(spec.shape.clone(), vec![0.0; numel])
                    }
                }
            }
        }
    }

    /// Whether the parameters are public constants.
    pub fn is_public(&self) -> bool {
        matches!(self, Params::Constants(_))
    }
}

/// A trainable parameter of a layer: its input name, shape and fan-in (for initialisation).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// The input (or variable) name, `<layer>/<parameter>`.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// The fan-in of the layer's kernel (the He-normal initialisation's scale).
    pub fan_in: usize,
}

/// What a layer is, for the passes that look at a layer list as a whole (batch-norm
/// folding, dropout masks, the loss of a softmax output).
#[derive(Debug, Clone, Copy)]
pub enum LayerKind<'a> {
    /// A linear layer whose kernel's last axis and whose bias are its output channels
    /// ([`Dense`], [`Conv2D`]): a following [`BatchNorm`] folds into them.
    Linear {
        /// The layer's name: its parameters are `<name>/kernel` and `<name>/bias`.
        name: &'a str,
    },
    /// A [`BatchNorm`].
    BatchNorm(&'a BatchNorm),
    /// A [`Dropout`].
    Dropout(&'a Dropout),
    /// A [`Softmax`].
    Softmax,
    /// A [`Residual`] block around these layers.
    Residual(&'a Sequential),
    /// Any other layer.
    Other,
}

/// A layer: adds its nodes after `x`, with parameters from `params`. Layers are plain data
/// (shapes and numbers), shared between threads.
pub trait Layer: Send + Sync {
    /// Adds the layer's nodes (for inference).
    fn apply(&self, g: &GraphBuilder, params: &Params, x: &Tensor) -> Tensor;
    /// Adds the layer's nodes in a training graph (the same as [`Layer::apply`] except for
    /// layers that train differently, such as [`Dropout`]).
    fn apply_training(&self, g: &GraphBuilder, params: &Params, x: &Tensor) -> Tensor {
        self.apply(g, params, x)
    }
    /// The parameters it declares (empty for parameter-free layers).
    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    /// A one-line description for `inspect`.
    fn describe(&self) -> String;
    /// What the layer is (see [`LayerKind`]).
    fn kind(&self) -> LayerKind<'_> {
        LayerKind::Other
    }
}

/// Fully connected: `x [n, inputs] x kernel [inputs, units] + bias [units]`.
///
/// ```
/// use shareflow_graphs::nn::{Dense, Layer};
/// let d = Dense::new("dense1", 784, 128);
/// assert_eq!(d.params()[0].shape, vec![784, 128]);
/// ```
#[derive(Debug, Clone)]
pub struct Dense {
    /// The layer's name (its parameters are `<name>/kernel` and `<name>/bias`).
    pub name: String,
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub units: usize,
}

impl Dense {
    /// A dense layer from `inputs` to `units` features.
    pub fn new(name: &str, inputs: usize, units: usize) -> Self {
        Dense {
            name: name.into(),
            inputs,
            units,
        }
    }
}

impl Layer for Dense {
    fn apply(&self, g: &GraphBuilder, params: &Params, x: &Tensor) -> Tensor {
        let [w, b] = self.param_specs().map(|p| params.tensor(g, &p));
        g.scoped(&self.name, || x.matmul(&w) + &b)
    }
    fn params(&self) -> Vec<ParamSpec> {
        self.param_specs().to_vec()
    }
    fn describe(&self) -> String {
        format!("{}: dense {} -> {}", self.name, self.inputs, self.units)
    }
    fn kind(&self) -> LayerKind<'_> {
        linear_kind(&self.name)
    }
}

/// The [`LayerKind::Linear`] of the layer `name`.
fn linear_kind(name: &str) -> LayerKind<'_> {
    LayerKind::Linear { name }
}

impl Dense {
    /// The kernel and the bias.
    pub fn param_specs(&self) -> [ParamSpec; 2] {
        [
            ParamSpec {
                name: format!("{}/kernel", self.name),
                shape: vec![self.inputs, self.units],
                fan_in: self.inputs,
            },
            ParamSpec {
                name: format!("{}/bias", self.name),
                shape: vec![self.units],
                fan_in: self.inputs,
            },
        ]
    }
}

/// 2-D convolution, NHWC by HWIO, plus a bias per output channel.
#[derive(Debug, Clone)]
pub struct Conv2D {
    /// The layer's name (its parameters are `<name>/kernel` and `<name>/bias`).
    pub name: String,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Input channels.
    pub in_channels: usize,
    /// Output channels (filters).
    pub out_channels: usize,
    /// Stride (height, width).
    pub stride: [usize; 2],
    /// `Same` or `Valid`.
    pub padding: Padding,
}

impl Conv2D {
    /// A convolution with `kernel` `[kh, kw]` from `in_channels` to `out_channels`.
    pub fn new(
        name: &str,
        kernel: [usize; 2],
        in_channels: usize,
        out_channels: usize,
        stride: [usize; 2],
        padding: Padding,
    ) -> Self {
        Conv2D {
            name: name.into(),
            kernel,
            in_channels,
            out_channels,
            stride,
            padding,
        }
    }
}

impl Layer for Conv2D {
    fn apply(&self, g: &GraphBuilder, params: &Params, x: &Tensor) -> Tensor {
        let [w, b] = self.param_specs().map(|p| params.tensor(g, &p));
        g.scoped(&self.name, || x.conv2d(&w, self.stride, self.padding) + &b)
    }
    fn params(&self) -> Vec<ParamSpec> {
        self.param_specs().to_vec()
    }
    fn describe(&self) -> String {
        format!(
            "{}: conv2d {}x{} {} -> {}, stride {:?}, {:?}",
            self.name,
            self.kernel[0],
            self.kernel[1],
            self.in_channels,
            self.out_channels,
            self.stride,
            self.padding
        )
    }
    fn kind(&self) -> LayerKind<'_> {
        linear_kind(&self.name)
    }
}

impl Conv2D {
    /// The kernel and the bias.
    pub fn param_specs(&self) -> [ParamSpec; 2] {
        let [kh, kw] = self.kernel;
        let fan_in = kh * kw * self.in_channels;
        [
            ParamSpec {
                name: format!("{}/kernel", self.name),
                shape: vec![kh, kw, self.in_channels, self.out_channels],
                fan_in,
            },
            ParamSpec {
                name: format!("{}/bias", self.name),
                shape: vec![self.out_channels],
                fan_in,
            },
        ]
    }
}

/// Max pooling.
#[derive(Debug, Clone)]
pub struct MaxPool2D {
    /// Window height and width.
    pub size: [usize; 2],
    /// Stride (height, width).
    pub stride: [usize; 2],
    /// `Same` or `Valid`.
    pub padding: Padding,
}

impl Layer for MaxPool2D {
    fn apply(&self, _g: &GraphBuilder, _params: &Params, x: &Tensor) -> Tensor {
        x.maxpool2d(self.size, self.stride, self.padding)
    }
    fn describe(&self) -> String {
        format!(
            "maxpool {}x{}, stride {:?}, {:?}",
            self.size[0], self.size[1], self.stride, self.padding
        )
    }
}

/// Average pooling.
#[derive(Debug, Clone)]
pub struct AvgPool2D {
    /// Window height and width.
    pub size: [usize; 2],
    /// Stride (height, width).
    pub stride: [usize; 2],
    /// `Same` or `Valid`.
    pub padding: Padding,
}

impl Layer for AvgPool2D {
    fn apply(&self, _g: &GraphBuilder, _params: &Params, x: &Tensor) -> Tensor {
        x.avgpool2d(self.size, self.stride, self.padding)
    }
    fn describe(&self) -> String {
        format!(
            "avgpool {}x{}, stride {:?}, {:?}",
            self.size[0], self.size[1], self.stride, self.padding
        )
    }
}

/// Rectified linear unit.
#[derive(Debug, Clone, Copy)]
pub struct ReLU;

impl Layer for ReLU {
    fn apply(&self, _g: &GraphBuilder, _params: &Params, x: &Tensor) -> Tensor {
        x.relu()
    }
    fn describe(&self) -> String {
        "relu".into()
    }
}

/// The logistic sigmoid (a polynomial on shares under both protocols: no comparison).
#[derive(Debug, Clone, Copy)]
pub struct Sigmoid;

impl Layer for Sigmoid {
    fn apply(&self, _g: &GraphBuilder, _params: &Params, x: &Tensor) -> Tensor {
        x.sigmoid()
    }
    fn describe(&self) -> String {
        "sigmoid".into()
    }
}

/// The logistic sigmoid shifted to be centred on zero: `sigmoid(x) - 1/2` (that is
/// `tanh(x / 2) / 2`), in `(-1/2, 1/2)`. The same polynomial on shares as [`Sigmoid`], the shift
/// a public constant (no communication). Centred activations train far better than
/// [`Sigmoid`]'s, which are all positive: a dense layer after `n` of them sees inputs of mean
/// about 1/2, so one SGD step moves all `n` weights of a unit alike and its pre-activation by
/// about `n / 4` times the step, which saturates the next sigmoid within a few steps.
#[derive(Debug, Clone, Copy)]
pub struct CentredSigmoid;

impl Layer for CentredSigmoid {
    fn apply(&self, g: &GraphBuilder, _params: &Params, x: &Tensor) -> Tensor {
        x.sigmoid().sub(&g.constant([], vec![0.5]))
    }
    fn describe(&self) -> String {
        "sigmoid - 0.5".into()
    }
}

/// Flattens all axes but the first (NHWC row-major order, as TensorFlow).
#[derive(Debug, Clone, Copy)]
pub struct Flatten;

impl Layer for Flatten {
    fn apply(&self, _g: &GraphBuilder, _params: &Params, x: &Tensor) -> Tensor {
        x.flatten()
    }
    fn describe(&self) -> String {
        "flatten".into()
    }
}

//! Neural-network layers on the builder. A layer's parameters are named `<layer>/kernel` and
//! `<layer>/bias`; [`Params`] says whether they are private inputs of the model owner (for
//! prediction) or variables (for training), so one layer list builds both graphs.

use std::cell::Cell;

use crate::builder::{GraphBuilder, Tensor};
use crate::op::Init;
use crate::types::Padding;
use crate::PartyId;

/// Where the parameters of layers come from.
#[derive(Debug)]
pub enum Params {
    /// Private inputs of this party (the model owner), for prediction.
    Inputs(PartyId),
    /// Trainable variables: He-normal kernels drawn in layer order from one ChaCha20 stream
    /// seeded with `seed` (each kernel takes the next part of the stream), zero biases.
    Variables {
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
        }
    }
}

/// A trainable parameter of a layer: its input name, shape and fan-in (for initialisation).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub fan_in: usize,
}

/// A layer: adds its nodes after `x`, with parameters from `params`.
pub trait Layer {
    /// Adds the layer's nodes.
    fn apply(&self, g: &GraphBuilder, params: &Params, x: &Tensor) -> Tensor;
    /// The parameters it declares (empty for parameter-free layers).
    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    /// A one-line description for `inspect`.
    fn describe(&self) -> String;
}

/// Fully connected: `x [n, inputs] x kernel [inputs, units] + bias [units]`.
#[derive(Debug, Clone)]
pub struct Dense {
    pub name: String,
    pub inputs: usize,
    pub units: usize,
}

impl Dense {
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
    pub name: String,
    pub kernel: [usize; 2],
    pub in_channels: usize,
    pub out_channels: usize,
    pub stride: [usize; 2],
    pub padding: Padding,
}

impl Conv2D {
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
    pub size: [usize; 2],
    pub stride: [usize; 2],
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
    pub size: [usize; 2],
    pub stride: [usize; 2],
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

/// Layers applied in order.
#[derive(Default)]
pub struct Sequential {
    pub layers: Vec<Box<dyn Layer>>,
}

impl Sequential {
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends a layer.
    pub fn push(mut self, layer: impl Layer + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }
    /// Every parameter of every layer, in order.
    pub fn params(&self) -> Vec<ParamSpec> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }
    /// These layers, then those of `next`.
    pub fn then(mut self, next: Sequential) -> Self {
        self.layers.extend(next.layers);
        self
    }
    /// Applies every layer to `x`.
    pub fn apply(&self, g: &GraphBuilder, params: &Params, x: &Tensor) -> Tensor {
        self.layers
            .iter()
            .fold(x.clone(), |h, layer| layer.apply(g, params, &h))
    }
}

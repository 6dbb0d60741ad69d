//! The operations of the logical graph.

use serde::{Deserialize, Serialize};

use crate::types::Padding;
use crate::PartyId;

/// A 2-D window: kernel size and stride (height, width), and padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    /// Window height and width.
    pub size: [usize; 2],
    /// Step between two windows (height, width).
    pub stride: [usize; 2],
    /// Same or valid padding.
    pub padding: Padding,
}

/// How a [`Op::Variable`] gets its first value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Init {
    /// The owner provides the first value under the variable's name, like an input.
    Owner {
        /// The party giving the first value.
        party: PartyId,
    },
    /// All zeros (momentum velocities, biases).
    Zeros,
    /// Normal samples with standard deviation `sqrt(2 / fan_in)` (He initialisation); see
    /// [`Init::Normal`] for the stream.
    HeNormal {
        /// Inputs per output unit (e.g. `kh * kw * c_in` for a filter).
        fan_in: usize,
        /// Seed of the ChaCha20 stream.
        seed: u64,
        /// Samples of the stream skipped.
        offset: u64,
    },
    /// Normal samples with standard deviation `std`, drawn by Box-Muller from the ChaCha20
    /// stream seeded with `seed`, skipping the first `offset` samples (so that several
    /// variables can take consecutive parts of one stream, as the plaintext trainer always
    /// did). Public: every party computes the same value.
    Normal {
        /// Standard deviation.
        std: f32,
        /// Seed of the ChaCha20 stream.
        seed: u64,
        /// Samples of the stream skipped.
        offset: u64,
    },
}

/// An operation of the logical graph. Inputs are the node's input list, in the order given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A public constant (row-major values of the node's shape). No inputs.
    Constant {
        /// The values, row-major.
        values: Vec<f32>,
    },
    /// A private input that `party` provides at run time under `name`. No inputs.
    Input {
        /// The party providing it.
        party: PartyId,
        /// The name it is given under.
        name: String,
    },
    /// Elementwise `a + b`; `b` may also be a trailing bias (shape = last dims of `a`).
    Add,
    /// Elementwise `a - b`, broadcasting as [`Op::Add`].
    Sub,
    /// Elementwise `-a`.
    Neg,
    /// Elementwise `a * b`, broadcasting as [`Op::Add`].
    Mul,
    /// `[m,k] x [k,n]`.
    MatMul,
    /// NHWC input `x` by HWIO filter `w`.
    Conv2d {
        /// Stride along height and width.
        stride: [usize; 2],
        /// Same or valid padding.
        padding: Padding,
    },
    /// Average pooling over NHWC windows.
    AvgPool2d {
        /// The pooling window.
        window: Window,
    },
    /// Max pooling over NHWC windows.
    MaxPool2d {
        /// The pooling window.
        window: Window,
    },
    /// Elementwise `max(x, 0)`.
    Relu,
    /// Elementwise `1 / (1 + e^-x)`.
    Sigmoid,
    /// Softmax over the last axis.
    Softmax,
    /// Inference batch normalisation over the last axis: inputs `x, mean, var, gamma, beta`,
    /// the last four public.
    BatchNorm {
        /// Added to the variance before its square root.
        epsilon: f32,
    },
    /// Same elements, another shape (row-major order).
    Reshape {
        /// The new shape.
        shape: Vec<usize>,
    },
    /// Permutes the axes.
    Transpose {
        /// Axis `i` of the result is axis `perm[i]` of the input.
        perm: Vec<usize>,
    },
    /// Inputs `a, b`: joined along `axis` (every other dimension equal); `a` first. Joins
    /// the parts that several owners hold (their rows, or their feature columns); more than
    /// two parts are joined by chaining.
    Concat {
        /// The axis joined along.
        axis: usize,
    },
    /// `len` consecutive elements of `axis` from `start` (the gradient of [`Op::Concat`]).
    Slice {
        /// The axis sliced.
        axis: usize,
        /// The first index taken.
        start: usize,
        /// The number of indices taken.
        len: usize,
    },
    /// Sums over one axis, which disappears.
    ReduceSum {
        /// The axis summed.
        axis: usize,
    },
    /// Index of the largest element of the last axis, which disappears (a float index).
    Argmax,
    /// Reveals the input to `party` under `name`: the only way a value leaves the graph.
    Output {
        /// The receiving party.
        party: PartyId,
        /// The output's name.
        name: String,
    },
    /// A value held by the servers across the runs of a session (secret-shared under a
    /// protocol, never opened unless the graph says so). No inputs; its first value comes
    /// from `init`, later ones from its [`Op::Assign`].
    Variable {
        /// The variable's name, the same in every program of a session.
        name: String,
        /// How it gets its first value.
        init: Init,
        /// Whether [`crate::GraphBuilder::gradients`] may differentiate with respect to it.
        trainable: bool,
    },
    /// Inputs `variable, value`: `value` becomes the variable's value for the next run. A root
    /// of the graph, like an output; at most one per variable.
    Assign,
    /// A public value that the session gives every party at each run under `name` (a
    /// learning rate that changes per step). No inputs.
    Parameter {
        /// The parameter's name.
        name: String,
    },
    /// Inputs `dy, w`: the gradient of a [`Op::Conv2d`] with respect to its input, whose
    /// shape is `input_shape`.
    Conv2dBackpropInput {
        /// Stride of the forward convolution.
        stride: [usize; 2],
        /// Padding of the forward convolution.
        padding: Padding,
        /// Shape of the forward input (NHWC).
        input_shape: Vec<usize>,
    },
    /// Inputs `x, dy`: the gradient of a [`Op::Conv2d`] with respect to its filter, whose
    /// shape is `filter_shape`.
    Conv2dBackpropFilter {
        /// Stride of the forward convolution.
        stride: [usize; 2],
        /// Padding of the forward convolution.
        padding: Padding,
        /// Shape of the filter (HWIO).
        filter_shape: Vec<usize>,
    },
    /// Inputs `x, dy`: `dy` where `x > 0`, else 0 (the gradient of [`Op::Relu`]).
    ReluGrad,
    /// Inputs `x, dy`: routes each `dy` to the arg max of its window of `x` (the first on
    /// ties), summing where windows overlap (the gradient of [`Op::MaxPool2d`]).
    MaxPoolGrad {
        /// The forward pooling window.
        window: Window,
    },
    /// Input `dy`: spreads each `dy` evenly over its window (the gradient of
    /// [`Op::AvgPool2d`] of an input of shape `input_shape`).
    AvgPoolGrad {
        /// The forward pooling window.
        window: Window,
        /// Shape of the forward input (NHWC).
        input_shape: Vec<usize>,
    },
    /// Repeats the input to `shape`: aligned at the last axis, each input dimension equals
    /// the target's or is 1, missing leading dimensions are added (NumPy's `broadcast_to`).
    BroadcastTo {
        /// The target shape.
        shape: Vec<usize>,
    },
    /// Inputs `logits [N, K]`, one-hot `labels [N, K]`: the mean over the rows of
    /// `-sum(labels * log_softmax(logits))`, a scalar.
    SoftmaxCrossEntropy,
    /// Inputs `logits [N, K]`, `labels [N, K]` (each in `[0, 1]`): every class an independent
    /// binary decision, the mean over the rows of
    /// `-sum(labels * log(sigmoid(logits)) + (1 - labels) * log(1 - sigmoid(logits)))`, a
    /// scalar. Its gradient needs only a sigmoid, which both protocols compute on shares
    /// (the loss of networks trained without comparisons, under Pond).
    SigmoidCrossEntropy,
    /// Inputs `prediction, target` of one shape: the mean of `(prediction - target)^2` over
    /// every element, a scalar.
    MeanSquaredError,
}

impl Op {
    /// Short name for messages, JSON and drawings.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Constant { .. } => "constant",
            Op::Input { .. } => "input",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Neg => "neg",
            Op::Mul => "mul",
            Op::MatMul => "matmul",
            Op::Conv2d { .. } => "conv2d",
            Op::AvgPool2d { .. } => "avgpool2d",
            Op::MaxPool2d { .. } => "maxpool2d",
            Op::Relu => "relu",
            Op::Sigmoid => "sigmoid",
            Op::Softmax => "softmax",
            Op::BatchNorm { .. } => "batchnorm",
            Op::Reshape { .. } => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Concat { .. } => "concat",
            Op::Slice { .. } => "slice",
            Op::ReduceSum { .. } => "reduce_sum",
            Op::Argmax => "argmax",
            Op::Output { .. } => "output",
            Op::Variable { .. } => "variable",
            Op::Assign => "assign",
            Op::Parameter { .. } => "parameter",
            Op::Conv2dBackpropInput { .. } => "conv2d_backprop_input",
            Op::Conv2dBackpropFilter { .. } => "conv2d_backprop_filter",
            Op::ReluGrad => "relu_grad",
            Op::MaxPoolGrad { .. } => "maxpool_grad",
            Op::AvgPoolGrad { .. } => "avgpool_grad",
            Op::BroadcastTo { .. } => "broadcast_to",
            Op::SoftmaxCrossEntropy => "softmax_cross_entropy",
            Op::SigmoidCrossEntropy => "sigmoid_cross_entropy",
            Op::MeanSquaredError => "mean_squared_error",
        }
    }

    /// How many inputs the op takes.
    pub fn arity(&self) -> usize {
        match self {
            Op::Constant { .. } | Op::Input { .. } | Op::Variable { .. } | Op::Parameter { .. } => {
                0
            }
            Op::Neg
            | Op::AvgPool2d { .. }
            | Op::MaxPool2d { .. }
            | Op::Relu
            | Op::Sigmoid
            | Op::Softmax
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::ReduceSum { .. }
            | Op::Argmax
            | Op::Output { .. }
            | Op::AvgPoolGrad { .. }
            | Op::BroadcastTo { .. } => 1,
            Op::Add
            | Op::Sub
            | Op::Mul
            | Op::MatMul
            | Op::Conv2d { .. }
            | Op::Concat { .. }
            | Op::Assign
            | Op::Conv2dBackpropInput { .. }
            | Op::Conv2dBackpropFilter { .. }
            | Op::ReluGrad
            | Op::MaxPoolGrad { .. }
            | Op::SoftmaxCrossEntropy
            | Op::SigmoidCrossEntropy
            | Op::MeanSquaredError => 2,
            Op::BatchNorm { .. } => 5,
        }
    }

    /// The party this op names (an input's or a variable's owner, an output's receiver).
    pub fn party(&self) -> Option<PartyId> {
        match self {
            Op::Input { party, .. } | Op::Output { party, .. } => Some(*party),
            Op::Variable {
                init: Init::Owner { party },
                ..
            } => Some(*party),
            _ => None,
        }
    }
}

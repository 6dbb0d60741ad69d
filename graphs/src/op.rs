//! The operations of the logical graph.

use serde::{Deserialize, Serialize};

use crate::types::Padding;
use crate::PartyId;

/// A 2-D window: kernel size and stride (height, width), and padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    pub size: [usize; 2],
    pub stride: [usize; 2],
    pub padding: Padding,
}

/// An operation of the logical graph. Inputs are the node's input list, in the order given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A public constant (row-major values of the node's shape). No inputs.
    Constant {
        values: Vec<f32>,
    },
    /// A private input that `party` provides at run time under `name`. No inputs.
    Input {
        party: PartyId,
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
        stride: [usize; 2],
        padding: Padding,
    },
    /// Average pooling over NHWC windows.
    AvgPool2d {
        window: Window,
    },
    /// Max pooling over NHWC windows.
    MaxPool2d {
        window: Window,
    },
    Relu,
    Sigmoid,
    /// Softmax over the last axis.
    Softmax,
    /// Inference batch normalisation over the last axis: inputs `x, mean, var, gamma, beta`,
    /// the last four public.
    BatchNorm {
        epsilon: f32,
    },
    /// Same elements, another shape (row-major order).
    Reshape {
        shape: Vec<usize>,
    },
    /// Permutes the axes.
    Transpose {
        perm: Vec<usize>,
    },
    /// Sums over one axis, which disappears.
    ReduceSum {
        axis: usize,
    },
    /// Index of the largest element of the last axis, which disappears (a float index).
    Argmax,
    /// Reveals the input to `party` under `name`: the only way a value leaves the graph.
    Output {
        party: PartyId,
        name: String,
    },
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
            Op::ReduceSum { .. } => "reduce_sum",
            Op::Argmax => "argmax",
            Op::Output { .. } => "output",
        }
    }

    /// How many inputs the op takes.
    pub fn arity(&self) -> usize {
        match self {
            Op::Constant { .. } | Op::Input { .. } => 0,
            Op::Neg
            | Op::AvgPool2d { .. }
            | Op::MaxPool2d { .. }
            | Op::Relu
            | Op::Sigmoid
            | Op::Softmax
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::ReduceSum { .. }
            | Op::Argmax
            | Op::Output { .. } => 1,
            Op::Add | Op::Sub | Op::Mul | Op::MatMul | Op::Conv2d { .. } => 2,
            Op::BatchNorm { .. } => 5,
        }
    }

    /// The party this op names (an input's owner or an output's receiver).
    pub fn party(&self) -> Option<PartyId> {
        match self {
            Op::Input { party, .. } | Op::Output { party, .. } => Some(*party),
            _ => None,
        }
    }
}

//! The logical graph of shareflow.
//!
//! A user builds a static dataflow graph with [`GraphBuilder`]: every node has an [`Op`], its
//! inputs, a static [`Shape`], a [`DType`] and a [`Visibility`] (public, private to one party, or
//! secret-shared). Outputs name the party that receives them. Graphs are validated with typed
//! errors that name the node ([`GraphError`]), serialise to versioned JSON ([`json`]) and draw as
//! Graphviz DOT ([`dot`]). [`nn`] has the usual layers, [`network`] puts them together with an
//! input shape and a loss, and [`zoo`] has the four MNIST networks of the SecureNN paper, built
//! as networks.
//!
//! Training is part of the graph: [`Op::Variable`] values live across the runs of a session,
//! [`Op::Assign`] writes their next values, [`GraphBuilder::gradients`] ([`autodiff`]) adds the
//! backward pass as ordinary nodes and [`optim`] the updates, so one training graph runs on
//! every backend ([`zoo_train`] builds the zoo networks' training graphs).
//!
//! This crate knows nothing of protocols: it says *what* is computed and *who* owns what.
//!
//! Layout conventions (as TensorFlow): images are NHWC, convolution filters HWIO, and
//! `Padding::Same` puts the extra row/column of padding at the bottom/right.

#![warn(missing_docs)]

pub mod autodiff;
mod autodiff_rules;
pub mod builder;
pub mod dot;
pub mod error;
pub mod graph;
pub mod ids;
pub mod infer;
mod infer_grad;
pub mod joint;
pub mod json;
pub mod network;
pub mod nn;
pub mod op;
pub mod optim;
pub mod transfer;
pub mod types;
mod variables;
pub mod zoo;
pub mod zoo_train;

pub use builder::{GraphBuilder, Tensor};
pub use error::GraphError;
pub use graph::{Graph, Node};
pub use ids::{NodeId, PartyId};
pub use op::{Init, Op};
pub use types::{DType, Padding, Shape, Visibility};

/// Result of this crate.
pub type Result<T> = std::result::Result<T, GraphError>;

/// The names most programs need.
pub mod prelude {
    pub use crate::builder::{GraphBuilder, Tensor};
    pub use crate::network::Network;
    pub use crate::nn::{
        AvgPool2D, BatchNorm, CentredSigmoid, Conv2D, Dense, Dropout, Flatten, GlobalAveragePool,
        Layer, MaxPool2D, ReLU, Reshape, Residual, Scale, Sequential, Sigmoid, Softmax,
    };
    pub use crate::types::{DType, Padding, Shape, Visibility};
    pub use crate::zoo::{ModelKind, ZooModel};
    pub use crate::{Graph, GraphError, Init, NodeId, Op, PartyId};
}

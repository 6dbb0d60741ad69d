//! shareflow: deep learning on encrypted data.
//!
//! Write a model as a static dataflow graph ([`graphs`]), say which party owns each input and
//! who may see each output, compile it for a secure protocol ([`compiler`]: Pond or SecureNN)
//! and run each party's program ([`runtime`]), in one process or one process per party over
//! QUIC. [`ops`] holds the local kernels; [`onnx`] imports a model exported to ONNX (from PyTorch
//! or Keras) as a graph.
//!
//! The Keras-like model API ([`runtime::model::Model`]) builds, trains, evaluates and serves a
//! network written as a list of layers, privately:
//!
//! ```
//! use shareflow::prelude::*;
//!
//! let mut model = Model::new(
//!     [28, 28, 1],
//!     Sequential::new()
//!         .push(Conv2D::new("conv1", [5, 5], 1, 8, [2, 2], Padding::Same))
//!         .push(ReLU)
//!         .push(Flatten)
//!         .push(Dense::new("dense1", 14 * 14 * 8, 10))
//!         .push(Softmax),
//! );
//! model.compile(Protocol::SecureNN, Optimizer::momentum(0.05, 0.9), Loss::SoftmaxCrossEntropy);
//! let summary = model.summary(Some(ProtocolKind::SecureNN)).unwrap();
//! assert_eq!(summary.parameters, 5 * 5 * 8 + 8 + 1568 * 10 + 10);
//! ```
//!
//! ```
//! use shareflow::prelude::*;
//!
//! let g = GraphBuilder::new();
//! let owner = g.party("model-owner");
//! let client = g.party("client");
//! let x = g.input(client, "x", [1, 3]);
//! let w = g.input(owner, "w", [3, 2]);
//! x.matmul(&w).relu().output_to(client, "y");
//! let graph = g.build().unwrap();
//! let compiled = compile(&graph, ProtocolKind::Pond, CompileOptions::default()).unwrap();
//! assert!(compiled.rounds > 0);
//! ```

pub use shareflow_compiler as compiler;
pub use shareflow_graphs as graphs;
pub use shareflow_onnx as onnx;
pub use shareflow_ops as ops;
pub use shareflow_runtime as runtime;

/// The names most programs need.
pub mod prelude {
    pub use shareflow_compiler::{
        compile, CompileOptions, CompiledGraph, ProtocolKind, Truncation,
    };
    pub use shareflow_graphs::prelude::*;
    pub use shareflow_graphs::zoo::Loss;
    pub use shareflow_runtime::exec::{run_in_process, Plan};
    pub use shareflow_runtime::model::{Model, Optimizer, Protocol};
}

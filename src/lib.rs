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
//! use std::collections::HashMap;
//!
//! let g = GraphBuilder::new();
//! let owner = g.party("model-owner");
//! let client = g.party("client");
//! let x = g.input(client, "x", [1, 3]);
//! let w = g.input(owner, "w", [3, 2]);
//! x.matmul(&w).relu().output_to(client, "y");
//! let graph = g.build().unwrap();
//! let compiled = compile(&graph, ProtocolKind::SecureNN, CompileOptions::default()).unwrap();
//! assert!(compiled.rounds > 0);
//!
//! // Every party a thread of this process: inputs by party, then by name.
//! let mut session = Session::new(compiled.parties.clone(), std::time::Duration::from_secs(30));
//! let program = SessionProgram::new(compiled).unwrap();
//! let array = |shape: &[usize], v: Vec<f32>| ArrayD::from_shape_vec(IxDyn(shape), v).unwrap();
//! let inputs = HashMap::from([
//!     ("client".to_string(), HashMap::from([("x".to_string(), array(&[1, 3], vec![1.0, 2.0, 3.0]))])),
//!     ("model-owner".to_string(), HashMap::from([("w".to_string(), array(&[3, 2], vec![1.0, -1.0, 1.0, -1.0, 1.0, -1.0]))])),
//! ]);
//! let run = session.run(&program, &inputs).unwrap();
//! let y = run.float("client", "y").unwrap(); // relu([6, -6]), to the client only
//! assert!((y[[0, 0]] - 6.0).abs() < 1e-2 && y[[0, 1]].abs() < 1e-2);
//! ```
//!
//! The servers' names `server0`, `server1` and `helper` are reserved (the compiler adds them);
//! a party that receives an output learns that value in the clear, e.g. the logits of a
//! prediction, not only the predicted class.

/// The n-dimensional arrays of every input and output.
pub use ndarray;
pub use shareflow_compiler as compiler;
pub use shareflow_graphs as graphs;
pub use shareflow_onnx as onnx;
pub use shareflow_ops as ops;
pub use shareflow_runtime as runtime;

/// The names most programs need.
pub mod prelude {
    pub use ndarray::{ArrayD, IxDyn};
    pub use shareflow_compiler::{
        compile, CompileOptions, CompiledGraph, ProtocolKind, Truncation,
    };
    pub use shareflow_graphs::prelude::*;
    pub use shareflow_graphs::zoo::Loss;
    pub use shareflow_runtime::exec::{run_in_process, Plan, Session, SessionProgram};
    pub use shareflow_runtime::model::{Model, Optimizer, Protocol};
}

//! shareflow: deep learning on encrypted data.
//!
//! Write a model as a static dataflow graph ([`graphs`]), say which party owns each input and
//! who may see each output, compile it for a secure protocol ([`compiler`]: Pond or SecureNN)
//! and run each party's program ([`runtime`]), in one process or one process per party over
//! QUIC. [`ops`] holds the local kernels; [`onnx`] imports a model exported to ONNX (from PyTorch
//! or Keras) as a graph.
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
    pub use shareflow_runtime::exec::{run_in_process, Plan};
}

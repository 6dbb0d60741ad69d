//! `shareflow dot`: a network's graph as Graphviz DOT on stdout: the logical graph, or with
//! `--protocol` the compiled graph (one cluster per party, share exchanges labelled with their
//! size).

use shareflow_compiler::{compile, ProtocolKind};
use shareflow_graphs::zoo::{ModelKind, ZooModel};

use crate::Result;

/// Prints the logical graph of `model` (batch 1) or its graph compiled for `protocol`.
pub fn run(model: ModelKind, protocol: Option<&str>, options: super::Options) -> Result<()> {
    let zoo = ZooModel::build(model, 1)?;
    match protocol {
        None | Some("plaintext") => print!("{}", zoo.graph.to_dot()),
        Some(p) => {
            let kind: ProtocolKind = p.parse::<ProtocolKind>()?;
            let compiled = compile(&zoo.graph, kind, options.for_model(model))?;
            print!("{}", shareflow_compiler::dot::to_dot(&compiled));
        }
    }
    Ok(())
}

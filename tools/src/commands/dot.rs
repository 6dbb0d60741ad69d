//! `shareflow dot`: a network's graph as Graphviz DOT on stdout: the logical graph, or with
//! `--protocol` the compiled graph (one cluster per party, one box per layer and party, rounds
//! top to bottom, exchanges labelled with their round, kind and bytes; `--detail` draws one
//! layer or all of them kernel by kernel).

use shareflow_compiler::dot::{to_dot_with, Detail};
use shareflow_compiler::{compile, compile_serving, ProtocolKind};

use super::network::Network;
use crate::{Result, ToolError};

/// What `shareflow dot` draws.
#[derive(Clone)]
pub struct DotArgs {
    /// A zoo network, an ONNX model or a user's graph.
    pub model: Network,
    /// `None` or `plaintext`: the logical graph.
    pub protocol: Option<String>,
    pub detail: Detail,
    /// The per-prediction program of a serving session (`setup`: its setup program).
    pub serving: bool,
    pub setup: bool,
    pub options: super::Options,
}

/// The DOT text that `shareflow dot` prints.
pub fn dot_text(args: &DotArgs) -> Result<String> {
    let zoo = args.model.build(args.model.fixed_batch().unwrap_or(1))?;
    let protocol = match args.protocol.as_deref() {
        None | Some("plaintext") => {
            if args.serving || args.setup || args.detail != Detail::Layers {
                return Err(ToolError::Usage(
                    "--serving, --setup and --detail draw a compiled graph: \
                     add --protocol pond or --protocol securenn"
                        .into(),
                ));
            }
            return Ok(zoo.graph.to_dot());
        }
        Some(p) => p.parse::<ProtocolKind>()?,
    };
    if args.setup && !args.serving {
        return Err(ToolError::Usage(
            "--setup draws the setup program of a serving session: add --serving".into(),
        ));
    }
    let options = args.model.options(&args.options);
    let compiled = if args.serving {
        let s = compile_serving(&zoo.graph, protocol, options)?;
        if args.setup {
            s.setup
        } else {
            s.predict
        }
    } else {
        compile(&zoo.graph, protocol, options)?
    };
    Ok(to_dot_with(&compiled, &args.detail)?)
}

/// Prints the logical graph of the network (batch 1, or a user's graph's batch) or its
/// compiled graph.
pub fn run(args: DotArgs) -> Result<()> {
    print!("{}", dot_text(&args)?);
    Ok(())
}

//! Compiling for serving: a model whose owner's inputs (the weights) persist across many
//! predictions compiles to a *setup* program, run once, that shares the weights, masks them
//! with dealer randomness and opens the masked weights, and a *per-prediction* program that
//! loads those shares and openings, so that each prediction only masks its fresh inputs and
//! the dealer only produces what they need (the product triple for the fresh mask).

use serde::{Deserialize, Serialize};
use shareflow_graphs::{Graph, Op};

use crate::ir::Host;
use crate::passes::persist;
use crate::program::CompiledGraph;
use crate::{lower_and_optimise, partition, CompileError, CompileOptions, ProtocolKind, Result};

/// The two programs of a serving session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingGraph {
    /// The parties whose inputs persist (they take part in setup only).
    pub persistent: Vec<String>,
    /// Run once: its inputs are the persistent parties'; it stores what predictions load.
    pub setup: CompiledGraph,
    /// Run for every prediction: its inputs are the other parties'.
    pub predict: CompiledGraph,
}

/// The parties whose inputs persist by default: every party with inputs that receives no
/// output (for the zoo: the model owner; the client gives images and gets logits).
pub fn default_persistent(graph: &Graph) -> Vec<String> {
    let mut has_input = Vec::new();
    let mut receives = Vec::new();
    for (_, n) in graph.nodes() {
        match &n.op {
            Op::Input { party, .. } => has_input.push(*party),
            Op::Output { party, .. } => receives.push(*party),
            _ => {}
        }
    }
    let mut out: Vec<String> = has_input
        .into_iter()
        .filter(|p| !receives.contains(p))
        .map(|p| graph.party_name(p).to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Compiles `graph` for serving with the default persistent parties
/// ([`default_persistent`]).
pub fn compile_serving(
    graph: &Graph,
    protocol: ProtocolKind,
    options: CompileOptions,
) -> Result<ServingGraph> {
    compile_serving_with(graph, protocol, options, &default_persistent(graph))
}

/// Compiles `graph` for serving: the inputs of the `persistent` parties are given once, to the
/// setup program; the other inputs to every prediction.
pub fn compile_serving_with(
    graph: &Graph,
    protocol: ProtocolKind,
    options: CompileOptions,
    persistent: &[String],
) -> Result<ServingGraph> {
    compile_serving_narrowed(graph, protocol, options, persistent, None)
}

/// [`compile_serving_with`] with the comparison widths of `narrowing` (see
/// [`crate::compile_narrowed`]), recorded in both programs.
pub fn compile_serving_narrowed(
    graph: &Graph,
    protocol: ProtocolKind,
    options: CompileOptions,
    persistent: &[String],
    narrowing: Option<&crate::bounds::Narrowing>,
) -> Result<ServingGraph> {
    let parties = crate::lower::compiled_parties(graph)?;
    let hosts = persistent
        .iter()
        .map(|name| {
            parties
                .iter()
                .position(|p| p == name)
                .filter(|&h| h >= crate::lower::COMPUTE_PARTIES.len())
                .ok_or_else(|| CompileError::Party {
                    party: name.clone(),
                    message: format!(
                        "cannot persist: not an input party of the graph (parties: {})",
                        graph.parties().join(", ")
                    ),
                })
        })
        .collect::<Result<Vec<Host>>>()?;
    let (cx, low) = lower_and_optimise(graph, protocol, options, Some(&hosts), narrowing)?;
    let split = persist::split(&low, &cx.pinned(), &cx.fresh_parties())?;
    let persists = |party: &str| persistent.iter().any(|p| p == party);
    let mut setup = partition(
        graph,
        protocol,
        cx.parties.clone(),
        cx.options,
        &split.setup,
    );
    setup.inputs.retain(|io| persists(&io.party));
    setup.outputs.clear();
    let mut predict = partition(graph, protocol, cx.parties, cx.options, &split.predict);
    predict.inputs.retain(|io| !persists(&io.party));
    let source = crate::source::Source::of(
        graph,
        crate::source::Entry::Serving {
            persistent: persistent.to_vec(),
        },
    )?;
    setup.source = Some(source.clone());
    predict.source = Some(source);
    setup.narrowing = narrowing.cloned();
    predict.narrowing = narrowing.cloned();
    let serving = ServingGraph {
        persistent: persistent.to_vec(),
        setup,
        predict,
    };
    // refused here rather than by every party at load
    serving.validate()?;
    Ok(serving)
}

//! What a compiled graph was compiled from, and the check that it is what that compiles to.
//!
//! The taint pass of [`crate::verify()`] follows a party's own inputs, and the exchange labels
//! of the other programs: it cannot tell a reveal of the logits from a "reveal" of shares of
//! the weights to the same receiver. What a reveal is is said only by the logical graph. So
//! every compiled graph carries its [`Source`] (the logical graph as graph JSON, and the
//! compiler entry point it went through; the protocol and options are the graph's own), and
//! a party recompiles it at load and refuses programs that differ from the recompilation,
//! naming the first party and instruction that does. Compilation is deterministic and fast
//! (network C under SecureNN, serving: a few milliseconds), so the logical graph's outputs
//! and their receivers are the only source of truth.

use serde::{Deserialize, Serialize};
use shareflow_graphs::Graph;

use crate::ir::Kernel;
use crate::program::{CompiledGraph, Instr, Program};
use crate::{CompileError, ProtocolKind, ServingGraph};

/// The compiler entry point a compiled graph went through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "entry")]
pub enum Entry {
    /// [`crate::compile`].
    Compile,
    /// [`crate::compile_init`].
    Init,
    /// One program of [`crate::compile_serving_with`] with these persistent parties.
    Serving {
        /// The parties whose inputs persist.
        persistent: Vec<String>,
    },
}

/// What a compiled graph was compiled from: its logical graph (graph JSON) and entry point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The compiler entry point.
    #[serde(flatten)]
    pub entry: Entry,
    /// The logical graph, as [`shareflow_graphs::json`] writes it.
    pub graph: serde_json::Value,
}

impl Source {
    /// The source of a graph compiled from `graph` through `entry`.
    pub(crate) fn of(graph: &Graph, entry: Entry) -> Result<Source, CompileError> {
        let text = graph.to_json()?;
        let graph = serde_json::from_str(&text).map_err(|e| CompileError::Json {
            message: format!("the logical graph as JSON: {e}"),
        })?;
        Ok(Source { entry, graph })
    }

    /// The logical graph.
    fn graph(&self) -> Result<Graph, CompileError> {
        Ok(Graph::from_json(&self.graph.to_string())?)
    }
}

/// A compiled graph's source, or an error saying that it has none.
fn source_of(g: &CompiledGraph) -> Result<&Source, CompileError> {
    g.source
        .as_ref()
        .ok_or_else(|| CompileError::NotRecompiled {
            party: g.parties.first().cloned().unwrap_or_default(),
            instr: None,
            message: "the compiled graph carries no logical graph to recompile (compiled by an \
                  older build, or assembled by hand?): recompile it with this build"
                .into(),
        })
}

fn protocol_of(g: &CompiledGraph) -> Result<ProtocolKind, CompileError> {
    g.protocol.parse()
}

/// Recompiles `g` (a graph of [`crate::compile`] or [`crate::compile_init`]) from its source
/// and refuses it if it differs.
pub(crate) fn check(g: &CompiledGraph) -> Result<(), CompileError> {
    let source = source_of(g)?;
    let graph = source.graph()?;
    let protocol = protocol_of(g)?;
    let again = match &source.entry {
        Entry::Compile => {
            crate::compile_narrowed(&graph, protocol, g.options, g.narrowing.as_ref())?
        }
        Entry::Init => crate::compile_init(&graph, protocol, g.options)?,
        Entry::Serving { .. } => {
            return Err(not_recompiled(
                g,
                None,
                "is one program of a serving graph: load it as a serving graph".into(),
            ))
        }
    };
    same(g, &again)
}

/// Recompiles a serving graph from the source of its setup program and refuses it if either
/// program differs.
pub(crate) fn check_serving(s: &ServingGraph) -> Result<(), CompileError> {
    let source = source_of(&s.setup)?;
    let Entry::Serving { persistent } = &source.entry else {
        return Err(not_recompiled(
            &s.setup,
            None,
            "the setup program is not one of a serving graph".into(),
        ));
    };
    let graph = source.graph()?;
    let protocol = protocol_of(&s.setup)?;
    let again = crate::compile_serving_narrowed(
        &graph,
        protocol,
        s.setup.options,
        persistent,
        s.setup.narrowing.as_ref(),
    )?;
    if s.persistent != again.persistent {
        return Err(not_recompiled(
            &s.setup,
            None,
            format!(
                "persists the inputs of {:?}, the recompiled graph of {:?}",
                s.persistent, again.persistent
            ),
        ));
    }
    same(&s.setup, &again.setup)?;
    same(&s.predict, &again.predict)
}

fn not_recompiled(g: &CompiledGraph, instr: Option<&Instr>, why: String) -> CompileError {
    CompileError::NotRecompiled {
        party: g.parties.first().cloned().unwrap_or_default(),
        instr: instr.map(|i| i.id),
        message: why,
    }
}

/// An instruction in words: its value, kernel (naming the peer of an exchange), operands and
/// round.
fn show(i: &Instr, parties: &[String]) -> String {
    let inputs: Vec<String> = i.inputs.iter().map(ToString::to_string).collect();
    let name = |h: usize| parties.get(h).map_or("?", String::as_str);
    let kernel = match &i.kernel {
        Kernel::Send { to, exchange } => format!("{exchange:?} send to {}", name(*to)),
        Kernel::Recv { from, send } => format!("receive of {send} from {}", name(*from)),
        other => format!("{other:?}"),
    };
    format!(
        "{} = {kernel}({}) in round {}",
        i.id,
        inputs.join(", "),
        i.round
    )
}

/// Refuses `g` if it differs from its recompilation `again`, naming the first difference.
fn same(g: &CompiledGraph, again: &CompiledGraph) -> Result<(), CompileError> {
    if g == again {
        return Ok(());
    }
    for (p, q) in g.programs.iter().zip(&again.programs) {
        if let Some(err) = first_difference(p, q, &g.parties) {
            return Err(err);
        }
    }
    let field = if g.parties != again.parties || g.programs.len() != again.programs.len() {
        "parties"
    } else if g.inputs != again.inputs {
        "inputs"
    } else if g.outputs != again.outputs {
        "outputs"
    } else if g.rounds != again.rounds {
        "rounds"
    } else {
        "header"
    };
    Err(not_recompiled(
        g,
        None,
        format!("its {field} differ from those of its recompiled logical graph"),
    ))
}

/// The first instruction of `p` that differs from the recompiled program `q`.
fn first_difference(p: &Program, q: &Program, parties: &[String]) -> Option<CompileError> {
    let refuse = |instr: Option<&Instr>, message: String| CompileError::NotRecompiled {
        party: p.party.clone(),
        instr: instr.map(|i| i.id),
        message,
    };
    if p.party != q.party {
        return Some(refuse(None, format!("is in the place of {}", q.party)));
    }
    for (k, i) in p.instrs.iter().enumerate() {
        match q.instrs.get(k) {
            Some(j) if i == j => {}
            Some(j) => {
                return Some(refuse(
                    Some(i),
                    format!(
                        "instruction {} (#{k} of its program) is `{}`, the recompiled \
                         program's `{}`",
                        i.id,
                        show(i, parties),
                        show(j, parties)
                    ),
                ))
            }
            None => {
                return Some(refuse(
                    Some(i),
                    format!(
                        "instruction {} (#{k} of its program) `{}` is not in the recompiled \
                         program ({} instructions)",
                        i.id,
                        show(i, parties),
                        q.instrs.len()
                    ),
                ))
            }
        }
    }
    (p.instrs.len() < q.instrs.len()).then(|| {
        refuse(
            None,
            format!(
                "has {} instructions, the recompiled program {}",
                p.instrs.len(),
                q.instrs.len()
            ),
        )
    })
}

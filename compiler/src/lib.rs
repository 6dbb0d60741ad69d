//! Compiles a shareflow logical graph into one program per party.
//!
//! 1. **Lower** ([`lower`]): a [`lower::Protocol`] rewrites each op into kernels placed on one
//!    party each ([`ir`]), with explicit `Send`/`Recv` share exchanges. Public subgraphs are
//!    folded at compile time; private subgraphs run in the clear on their owner.
//! 2. **Optimise** ([`passes`]): dead code and common subexpressions are removed; every
//!    exchange is scheduled in the earliest round its data allows. For serving
//!    ([`compile_serving`]), the graph is split into a setup program that masks the persistent
//!    weights once and a per-prediction program that reuses them.
//! 3. **Partition**: one [`Program`] per party, its instructions tagged with their round.
//!    [`CompiledGraph::cost`] gives rounds and bytes per party pair without running anything.

#![warn(missing_docs)]

pub mod bounds;
pub mod cost;
pub mod dot;
pub mod error;
pub mod ir;
pub mod limits;
pub mod lower;
pub mod options;
pub mod passes;
mod plain_grad;
pub mod plain_op;
pub mod program;
pub mod serving;
pub mod source;
pub mod validate;
pub mod verify;

use serde::{Deserialize, Serialize};
use shareflow_graphs::{Graph, Op};

pub use cost::CostReport;
pub use error::CompileError;
pub use options::{CompileOptions, PolyApprox, Truncation};
pub use program::{CompiledGraph, Instr, IoSpec, Program};
pub use serving::{compile_serving, compile_serving_narrowed, compile_serving_with, ServingGraph};
pub use verify::{verify, verify_serving};

use ir::LowGraph;
use lower::{compiled_parties, Lowerer, Protocol};

/// Result of this crate.
pub type Result<T> = std::result::Result<T, CompileError>;

/// The protocols a graph compiles to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolKind {
    /// Pond: two servers, the helper as crypto producer (triples, truncation pairs); activations
    /// are polynomials.
    Pond,
    /// SecureNN: two servers, the helper as dealer and comparison helper (exact ReLU and max
    /// pool).
    SecureNN,
}

impl ProtocolKind {
    /// The protocol's name in files and on the command line (`pond`, `securenn`).
    pub fn name(self) -> &'static str {
        match self {
            ProtocolKind::Pond => "pond",
            ProtocolKind::SecureNN => "securenn",
        }
    }
}

impl std::str::FromStr for ProtocolKind {
    type Err = CompileError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "pond" => Ok(ProtocolKind::Pond),
            "securenn" => Ok(ProtocolKind::SecureNN),
            other => Err(CompileError::UnknownProtocol {
                name: other.to_string(),
            }),
        }
    }
}

/// Compiles `graph` for `protocol`. Errors: [`CompileError::Option`] for an option outside
/// its range ([`CompileOptions::validate`]), or an error naming the node or party at fault.
pub fn compile(
    graph: &Graph,
    protocol: ProtocolKind,
    options: CompileOptions,
) -> Result<CompiledGraph> {
    compile_narrowed(graph, protocol, options, None)
}

/// [`compile`] with the comparison widths of `narrowing` (from [`bounds::Narrowing::analyse`]
/// on this graph; `None`: 64 bits everywhere), recorded in the compiled graph with their
/// assumptions, which the inputs' owners check at run time. SecureNN's opened comparisons
/// only: [`CompileError::Option`] otherwise.
pub fn compile_narrowed(
    graph: &Graph,
    protocol: ProtocolKind,
    options: CompileOptions,
    narrowing: Option<&bounds::Narrowing>,
) -> Result<CompiledGraph> {
    let (cx, low) = lower_and_optimise(graph, protocol, options, None, narrowing)?;
    let mut compiled = partition(graph, protocol, cx.parties, cx.options, &low);
    compiled.narrowing = narrowing.cloned();
    compiled.source = Some(source::Source::of(graph, source::Entry::Compile)?);
    // What the compiler writes, `run-graph` loads: refuse here what loading would refuse
    // (a tensor over the size limit of `limits`, say), not on every party at run time.
    compiled.validate()?;
    Ok(compiled)
}

/// Compiles the program that starts a session of `graph`: the first value of every variable
/// is secret-shared into the servers' stores (an owner's value is that owner's input named
/// like the variable; see [`lower::session`]). The session's other programs are the graphs
/// that read and assign its variables, compiled with [`compile`].
pub fn compile_init(
    graph: &Graph,
    protocol: ProtocolKind,
    options: CompileOptions,
) -> Result<CompiledGraph> {
    options.validate()?;
    let parties = compiled_parties(graph)?;
    let mut cx = Lowerer::new(parties, options);
    lower::session::lower_init(graph, &mut cx)?;
    let mut low = std::mem::take(&mut cx.low);
    passes::dce::remove_dead(&mut low);
    passes::cse::run(&mut low);
    passes::dce::remove_dead(&mut low);
    let mut compiled = partition(graph, protocol, cx.parties, cx.options, &low);
    compiled.inputs = graph
        .nodes()
        .filter_map(|(_, n)| match &n.op {
            Op::Variable {
                name,
                init: shareflow_graphs::Init::Owner { party },
                ..
            } => Some(IoSpec {
                party: graph.party_name(*party).to_string(),
                name: name.clone(),
                shape: n.shape.dims().to_vec(),
            }),
            _ => None,
        })
        .collect();
    compiled.outputs.clear();
    compiled.source = Some(source::Source::of(graph, source::Entry::Init)?);
    compiled.validate()?;
    Ok(compiled)
}

/// Validates `options`, lowers `graph` (for serving if `persistent` names the hosts whose
/// inputs persist), then removes dead code and common subexpressions. Returns the lowering context (parties,
/// options, serving pins) and the optimised graph.
fn lower_and_optimise(
    graph: &Graph,
    protocol: ProtocolKind,
    options: CompileOptions,
    persistent: Option<&[ir::Host]>,
    narrowing: Option<&bounds::Narrowing>,
) -> Result<(Lowerer, LowGraph)> {
    options.validate()?;
    if narrowing.is_some()
        && (protocol != ProtocolKind::SecureNN || options.comparison != options::Comparison::Opened)
    {
        return Err(CompileError::Option {
            field: "narrowing",
            value: format!(
                "{} with {:?} comparisons",
                protocol.name(),
                options.comparison
            ),
            allowed: "SecureNN's opened comparisons only".into(),
        });
    }
    let parties = compiled_parties(graph)?;
    let mut cx = Lowerer::new(parties, options);
    cx.narrowing = narrowing.cloned();
    if let Some(hosts) = persistent {
        cx.serve(hosts);
    }
    let p: &dyn Protocol = match protocol {
        ProtocolKind::Pond => &lower::pond::Pond,
        ProtocolKind::SecureNN => &lower::securenn::SecureNN,
    };
    lower::lower(graph, p, &mut cx)?;
    let mut low = std::mem::take(&mut cx.low);
    passes::dce::remove_dead(&mut low);
    passes::cse::run(&mut low);
    passes::dce::remove_dead(&mut low);
    Ok((cx, low))
}

/// Splits the compiled graph into one program per party.
fn partition(
    graph: &Graph,
    protocol: ProtocolKind,
    parties: Vec<String>,
    options: CompileOptions,
    low: &LowGraph,
) -> CompiledGraph {
    let rounds = passes::schedule::schedule(low);
    let mut programs: Vec<Program> = parties
        .iter()
        .enumerate()
        .map(|(host, party)| Program {
            party: party.clone(),
            host,
            instrs: Vec::new(),
        })
        .collect();
    for id in low.live() {
        let node = low.node(id);
        programs[node.host].instrs.push(Instr {
            id,
            kernel: node.kernel.clone(),
            inputs: node.inputs.clone(),
            kind: node.kind,
            shape: node.shape.clone(),
            round: rounds[id.0 as usize],
            origin: node.origin.clone(),
        });
    }
    let io = |want_input: bool| {
        graph
            .nodes()
            .filter_map(|(_, n)| match &n.op {
                Op::Input { party, name } if want_input => Some((party, name, n)),
                Op::Output { party, name } if !want_input => Some((party, name, n)),
                _ => None,
            })
            .map(|(party, name, n)| IoSpec {
                party: graph.party_name(*party).to_string(),
                name: name.clone(),
                shape: n.shape.dims().to_vec(),
            })
            .collect()
    };
    CompiledGraph {
        format: program::FORMAT.into(),
        version: program::VERSION,
        protocol: protocol.name().into(),
        rounds: passes::schedule::round_count(low, &rounds),
        parties,
        options,
        inputs: io(true),
        outputs: io(false),
        programs,
        source: None,
        narrowing: None,
    }
}

/// Removes dead code from a hand-built lowered graph (one with no logical graph behind it, as
/// in protocol tests) and splits it into per-party programs.
pub fn assemble(
    mut low: LowGraph,
    parties: Vec<String>,
    protocol: ProtocolKind,
    options: CompileOptions,
) -> Result<CompiledGraph> {
    options.validate()?;
    passes::dce::remove_dead(&mut low);
    let empty = shareflow_graphs::GraphBuilder::new().build()?;
    Ok(partition(&empty, protocol, parties, options, &low))
}

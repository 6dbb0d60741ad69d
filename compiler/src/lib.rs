//! Compiles a shareflow logical graph into one program per party.
//!
//! 1. **Lower** ([`lower`]): a [`lower::Protocol`] rewrites each op into kernels placed on one
//!    party each ([`ir`]), with explicit `Send`/`Recv` share exchanges. Public subgraphs are
//!    folded at compile time; private subgraphs run in the clear on their owner.
//! 2. **Optimise** ([`passes`]): dead code is removed; every exchange is scheduled in the
//!    earliest round its data allows.
//! 3. **Partition**: one [`Program`] per party, its instructions tagged with their round.
//!    [`CompiledGraph::cost`] gives rounds and bytes per party pair without running anything.

pub mod cost;
pub mod dot;
pub mod error;
pub mod ir;
pub mod lower;
pub mod options;
pub mod passes;
pub mod plain_op;
pub mod program;

use serde::{Deserialize, Serialize};
use shareflow_graphs::{Graph, Op};

pub use cost::CostReport;
pub use error::CompileError;
pub use options::{CompileOptions, PolyApprox, Truncation};
pub use program::{CompiledGraph, Instr, IoSpec, Program};

use ir::{Kernel, LowGraph};
use lower::{compiled_parties, Lowerer, Protocol};

/// Result of this crate.
pub type Result<T> = std::result::Result<T, CompileError>;

/// The protocols a graph compiles to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolKind {
    Pond,
    SecureNN,
}

impl ProtocolKind {
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
            other => Err(CompileError::Json {
                message: format!("unknown protocol {other:?} (pond, securenn)"),
            }),
        }
    }
}

/// Compiles `graph` for `protocol`.
pub fn compile(graph: &Graph, protocol: ProtocolKind, options: CompileOptions) -> Result<CompiledGraph> {
    let parties = compiled_parties(graph)?;
    let mut options = options;
    options.frac_bits = graph.frac_bits;
    let mut cx = Lowerer::new(parties.clone(), options);
    let p: &dyn Protocol = match protocol {
        ProtocolKind::Pond => &lower::pond::Pond,
        ProtocolKind::SecureNN => &lower::securenn::SecureNN,
    };
    lower::lower(graph, p, &mut cx)?;
    let mut low = cx.low;
    passes::dce::remove_dead(&mut low);
    Ok(partition(graph, protocol, parties, options, &low))
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
    }
}

/// Whether a kernel is a share exchange.
pub fn is_exchange(k: &Kernel) -> bool {
    matches!(k, Kernel::Send { .. } | Kernel::Recv { .. })
}

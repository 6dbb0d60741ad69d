//! The output of the compiler: one program per party, and what they share.

use serde::{Deserialize, Serialize};
use shareflow_ops::ValueKind;

use crate::cost::CostReport;
use crate::ir::{Host, Kernel, ValueId};
use crate::options::CompileOptions;
use crate::CompileError;

/// The format name in every compiled-graph file.
pub const FORMAT: &str = "shareflow-compiled";
/// The version this build writes and reads (2: session stores keyed by value or variable,
/// run-time parameters and initialisers; 3: the logical graph each party recompiles at load,
/// [`crate::source`]; 4: SecureNN's field elements packed in their bits before they are sent,
/// and the comparison widths proven by [`crate::bounds`] with what they assumed; 5:
/// PrivateCompare's masked shares packed by the kernel that makes them and read packed by the
/// helper's `AnyZeroSum`; 6: the carry circuit's kernels for large comparisons).
pub const VERSION: u32 = 6;

/// One instruction of a party's program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instr {
    /// The instruction's value (its node id in the compiled graph).
    pub id: ValueId,
    /// What it computes.
    pub kernel: Kernel,
    /// Its operands, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<ValueId>,
    /// The kind of its value (float, ring, odd ring, small, seed).
    pub kind: ValueKind,
    /// The shape of its value.
    pub shape: Vec<usize>,
    /// The round it runs in (for a send or receive: the round the message travels in).
    pub round: u32,
    /// The logical node it was lowered from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// A party's program: its instructions in an order where inputs come first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// The party running it.
    pub party: String,
    /// The party's index in [`CompiledGraph::parties`].
    pub host: Host,
    /// The instructions.
    pub instrs: Vec<Instr>,
}

/// An input a party provides, or an output it receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoSpec {
    /// The party.
    pub party: String,
    /// The input's or output's name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
}

/// A compiled graph: every party's program, the parties, and the static costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompiledGraph {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format version ([`VERSION`]).
    pub version: u32,
    /// The protocol's name (`pond` or `securenn`).
    pub protocol: String,
    /// Every party by host: the compute parties, then the graph's own.
    pub parties: Vec<String>,
    /// The options compiled with.
    pub options: CompileOptions,
    /// The inputs the parties provide at run time.
    pub inputs: Vec<IoSpec>,
    /// The outputs the parties receive.
    pub outputs: Vec<IoSpec>,
    /// Communication rounds.
    pub rounds: u32,
    /// Each party's program, by host.
    pub programs: Vec<Program>,
    /// What it was compiled from: every party recompiles it at load ([`crate::verify()`]).
    /// `None` only for a graph assembled by hand ([`crate::assemble`]), which no party loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::source::Source>,
    /// Comparisons narrower than 64 bits, proven from assumptions on the inputs that their
    /// owners check before sharing them ([`crate::bounds`]); `None`: every comparison exact on
    /// the whole ring (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narrowing: Option<crate::bounds::Narrowing>,
}

impl CompiledGraph {
    /// The host index of a party.
    pub fn host(&self, party: &str) -> Result<Host, CompileError> {
        self.parties
            .iter()
            .position(|p| p == party)
            .ok_or_else(|| CompileError::Party {
                party: party.into(),
                message: format!(
                    "not a party of this compiled graph (parties: {})",
                    self.parties.join(", ")
                ),
            })
    }

    /// The program of a party.
    pub fn program(&self, party: &str) -> Result<&Program, CompileError> {
        let host = self.host(party)?;
        self.programs.get(host).ok_or_else(|| CompileError::Party {
            party: party.into(),
            message: "has no program".into(),
        })
    }

    /// The parties whose programs take the run-time parameter `name` (the servers, and the
    /// helper where it deals with the parameter's value, e.g. a learning rate's product).
    pub fn parameter_parties(&self, name: &str) -> Vec<&str> {
        self.programs
            .iter()
            .filter(|p| {
                p.instrs
                    .iter()
                    .any(|i| matches!(&i.kernel, Kernel::Parameter { name: n } if n == name))
            })
            .map(|p| p.party.as_str())
            .collect()
    }

    /// The static cost report.
    pub fn cost(&self) -> CostReport {
        CostReport::of(self)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> Result<String, CompileError> {
        serde_json::to_string(self).map_err(|e| CompileError::Json {
            message: e.to_string(),
        })
    }

    /// Loads a compiled graph and validates it ([`CompiledGraph::validate`]).
    pub fn from_json(text: &str) -> Result<CompiledGraph, CompileError> {
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let header: Header = serde_json::from_str(text).map_err(|e| CompileError::Json {
            message: e.to_string(),
        })?;
        if header.format != FORMAT {
            return Err(CompileError::Json {
                message: format!("field `format` is {:?}, expected {FORMAT:?}", header.format),
            });
        }
        if header.version != VERSION {
            return Err(CompileError::Version {
                found: header.version,
                supported: VERSION,
            });
        }
        let g: CompiledGraph = serde_json::from_str(text).map_err(|e| CompileError::Json {
            message: e.to_string(),
        })?;
        g.validate()?;
        Ok(g)
    }

    /// Structural checks of a loaded graph (part of [`CompiledGraph::validate`]): hosts in
    /// range, inputs defined before use, every receive matched by a send to it, every shape
    /// and round within [`crate::limits`].
    pub fn check(&self) -> Result<(), CompileError> {
        let bad = |party: &str, message: String| CompileError::Party {
            party: party.into(),
            message,
        };
        if self.programs.len() != self.parties.len() {
            return Err(CompileError::Json {
                message: format!(
                    "{} programs for {} parties",
                    self.programs.len(),
                    self.parties.len()
                ),
            });
        }
        let mut sends = std::collections::HashMap::new();
        for p in &self.programs {
            for i in &p.instrs {
                if let Kernel::Send { to, .. } = i.kernel {
                    sends.insert(i.id, (p.host, to, i.round));
                }
            }
        }
        for (host, p) in self.programs.iter().enumerate() {
            if p.host != host || self.parties.get(host) != Some(&p.party) {
                return Err(bad(&p.party, format!("program out of place (host {host})")));
            }
            crate::limits::check_program(p)?;
            let mut defined = std::collections::HashSet::new();
            for i in &p.instrs {
                for input in &i.inputs {
                    if !defined.contains(input) {
                        return Err(bad(
                            &p.party,
                            format!("instruction {} uses {input} before it is defined", i.id),
                        ));
                    }
                }
                match i.kernel {
                    Kernel::Send { to, .. } if to >= self.parties.len() || to == host => {
                        return Err(bad(&p.party, format!("{} sends to host {to}", i.id)));
                    }
                    Kernel::Recv { from, send }
                        if sends.get(&send) != Some(&(from, host, i.round)) =>
                    {
                        return Err(bad(
                            &p.party,
                            format!(
                                "{} receives {send}, which no send from host {from} matches",
                                i.id
                            ),
                        ));
                    }
                    _ => {}
                }
                defined.insert(i.id);
            }
        }
        Ok(())
    }
}

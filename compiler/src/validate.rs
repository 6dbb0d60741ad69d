//! Load-time validation of a compiled graph: everything an executor relies on when it plans
//! and runs a party's program, checked once when the file is loaded, so that a graph that
//! deserialises but is inconsistent is refused with an error naming the party and the
//! instruction, instead of failing (or allocating without bound) in the executor.

use std::collections::{HashMap, HashSet};

use shareflow_ops::ValueKind;

use crate::ir::{Kernel, StoreKey, ValueId};
use crate::limits::value_bytes;
use crate::program::{CompiledGraph, Instr, IoSpec, Program};
use crate::serving::ServingGraph;
use crate::{CompileError, Result};

/// The most parties a compiled graph may have. Nothing structural needs fewer: party indices
/// are `usize` in programs and `u16` on the wire and in the QUIC hello, no party set is a
/// bitmask; the bound keeps the cost report (quadratic in the parties: 65,536 pairs) and a
/// cluster's ports and connections (one per pair) small. The protocols use three compute
/// parties; secure aggregation adds one input party per data owner.
pub const MAX_PARTIES: usize = 256;

/// How many inputs a kernel takes.
pub fn arity(kernel: &Kernel) -> usize {
    match kernel {
        Kernel::Input { .. }
        | Kernel::FloatConst { .. }
        | Kernel::RingConst { .. }
        | Kernel::SampleSeed
        | Kernel::Recv { .. }
        | Kernel::Load { .. }
        | Kernel::Parameter { .. }
        | Kernel::Initializer { .. }
        | Kernel::Iota { .. } => 0,
        Kernel::Plain { op } => op.arity(),
        Kernel::Output { .. }
        | Kernel::CheckInput { .. }
        | Kernel::Encode { .. }
        | Kernel::Decode { .. }
        | Kernel::Neg
        | Kernel::SumPool2d { .. }
        | Kernel::ShrArith { .. }
        | Kernel::ShrLogical { .. }
        | Kernel::Shl { .. }
        | Kernel::XorConst { .. }
        | Kernel::Reshape { .. }
        | Kernel::BroadcastTo { .. }
        | Kernel::Transpose { .. }
        | Kernel::ReduceSum { .. }
        | Kernel::Expand { .. }
        | Kernel::Send { .. }
        | Kernel::Store { .. }
        | Kernel::RingToOdd
        | Kernel::BitDecompose { .. }
        | Kernel::BitAt { .. }
        | Kernel::LowBytes { .. }
        | Kernel::FromLowBytes
        | Kernel::PackSmall { .. }
        | Kernel::UnpackSmall { .. }
        | Kernel::AndConst { .. }
        | Kernel::Lsb
        | Kernel::IsZero
        | Kernel::BitTo { .. }
        | Kernel::BitPlanes { .. }
        | Kernel::CarryPairs
        | Kernel::Windows { .. }
        | Kernel::WindowsAdd { .. }
        | Kernel::StridedSlice { .. }
        | Kernel::OneHot { .. } => 1,
        Kernel::Add
        | Kernel::Sub
        | Kernel::Mul
        | Kernel::MulWideShr { .. }
        | Kernel::MatMul
        | Kernel::Conv2d { .. }
        | Kernel::Conv2dBackpropInput { .. }
        | Kernel::Conv2dBackpropFilter { .. }
        | Kernel::OddAdd
        | Kernel::OddSub
        | Kernel::Wrap
        | Kernel::XorBits { .. }
        | Kernel::XorPublicBit { .. }
        | Kernel::FieldSub { .. }
        | Kernel::AnyZeroSum { .. }
        | Kernel::BitsMinus { .. }
        | Kernel::Concat { .. }
        | Kernel::RotateLast { .. }
        | Kernel::Xor
        | Kernel::CarryLeaves { .. }
        | Kernel::CarryOpen { .. }
        | Kernel::PlaneBits => 2,
        Kernel::XorPublicBitTimes | Kernel::CarryDeal { .. } | Kernel::CarryOut { .. } => 3,
        Kernel::PrivateCompare { .. } => 4,
        Kernel::CarryCombine { .. } => 5,
    }
}

fn node_err(p: &Program, i: &Instr, message: String) -> CompileError {
    CompileError::Node {
        node: format!("{} ({}) of party {}", i.id, i.kernel.name(), p.party),
        message,
    }
}

fn io_err(field: &str, io: &IoSpec, message: &str) -> CompileError {
    CompileError::Json {
        message: format!("{field} {:?} of party {:?}: {message}", io.name, io.party),
    }
}

impl CompiledGraph {
    /// Everything the executor relies on, checked at load ([`CompiledGraph::from_json`] calls
    /// it): the structure ([`CompiledGraph::check`]); at most [`MAX_PARTIES`] distinct
    /// parties; unique instruction ids; every kernel with its number of inputs, every input
    /// ready in the instruction's round (a received value one round after it travels), shapes
    /// within [`crate::limits`], constants as long as their shapes; every receive of the
    /// kind and shape its send sends, every send received once; `rounds` one more than the last
    /// round a message travels in, with a message in every round; every input and output
    /// kernel declared in `inputs`/`outputs` with its shape.
    pub fn validate(&self) -> Result<()> {
        if self.parties.len() > MAX_PARTIES {
            return Err(CompileError::Json {
                message: format!("{} parties (at most {MAX_PARTIES})", self.parties.len()),
            });
        }
        let mut names = HashSet::new();
        if let Some(dup) = self.parties.iter().find(|p| !names.insert(p.as_str())) {
            return Err(CompileError::Party {
                party: dup.clone(),
                message: "is listed twice".into(),
            });
        }
        self.check()?;
        for (field, list) in [("input", &self.inputs), ("output", &self.outputs)] {
            for io in list {
                if !names.contains(io.party.as_str()) {
                    return Err(io_err(field, io, "not a party of the graph"));
                }
                if value_bytes(ValueKind::Float, &io.shape).is_none() {
                    return Err(io_err(field, io, "shape size overflows"));
                }
            }
        }
        let mut sends: HashMap<ValueId, (&Program, &Instr)> = HashMap::new();
        let mut ids = HashSet::new();
        for p in &self.programs {
            for i in &p.instrs {
                if !ids.insert(i.id) {
                    return Err(node_err(p, i, "the id is used twice".into()));
                }
                if let Kernel::Send { .. } = i.kernel {
                    sends.insert(i.id, (p, i));
                }
            }
        }
        let mut received = HashSet::new();
        for p in &self.programs {
            self.validate_program(p, &sends, &mut received)?;
        }
        if let Some((p, i)) = sends.values().find(|(_, i)| !received.contains(&i.id)) {
            return Err(node_err(p, i, "no receive takes this send".into()));
        }
        let send_rounds: HashSet<u32> = sends.values().map(|(_, i)| i.round).collect();
        let expected = send_rounds.iter().max().map_or(0, |r| r + 1);
        if self.rounds != expected || send_rounds.len() != self.rounds as usize {
            return Err(CompileError::Json {
                message: format!(
                    "field `rounds` is {}, but messages travel in {} distinct rounds up to round {}",
                    self.rounds,
                    send_rounds.len(),
                    expected.saturating_sub(1)
                ),
            });
        }
        Ok(())
    }

    fn validate_program<'g>(
        &self,
        p: &'g Program,
        sends: &HashMap<ValueId, (&'g Program, &'g Instr)>,
        received: &mut HashSet<ValueId>,
    ) -> Result<()> {
        // The first round in which each value can be used.
        let mut ready: HashMap<ValueId, u32> = HashMap::new();
        for i in &p.instrs {
            let bad = |message: String| node_err(p, i, message);
            if i.inputs.len() != arity(&i.kernel) {
                return Err(bad(format!(
                    "takes {} inputs, got {}",
                    arity(&i.kernel),
                    i.inputs.len()
                )));
            }
            if i.round > self.rounds {
                return Err(bad(format!(
                    "round {} is after the last round {}",
                    i.round, self.rounds
                )));
            }
            for input in &i.inputs {
                match ready.get(input) {
                    Some(&r) if r <= i.round => {}
                    Some(&r) => {
                        return Err(bad(format!(
                            "runs in round {} but its input {input} is ready in round {r}",
                            i.round
                        )))
                    }
                    None => return Err(bad(format!("uses {input} before it is defined"))),
                }
            }
            // `check` has bounded every shape ([`crate::limits`]).
            let elements = |len: usize| match i.kind {
                ValueKind::Seed => false,
                _ => value_bytes(ValueKind::Small, &i.shape) == Some(len as u64),
            };
            match &i.kernel {
                Kernel::FloatConst { values } if !elements(values.len()) => {
                    return Err(bad(format!(
                        "{} values for shape {:?}",
                        values.len(),
                        i.shape
                    )))
                }
                Kernel::RingConst { values } if !elements(values.len()) => {
                    return Err(bad(format!(
                        "{} values for shape {:?}",
                        values.len(),
                        i.shape
                    )))
                }
                Kernel::Recv { send, .. } => {
                    // `check` matched the send's parties and round.
                    if let Some((_, s)) = sends.get(send) {
                        if s.kind != i.kind || s.shape != i.shape {
                            return Err(bad(format!(
                                "receives a {} value of shape {:?}, but {send} sends {} {:?}",
                                i.kind.name(),
                                i.shape,
                                s.kind.name(),
                                s.shape
                            )));
                        }
                    }
                    if !received.insert(*send) {
                        return Err(bad(format!("{send} is received twice")));
                    }
                }
                Kernel::Input { name } => self.declared(&self.inputs, p, i, name)?,
                Kernel::Output { name } => self.declared(&self.outputs, p, i, name)?,
                _ => {}
            }
            let later = u32::from(matches!(i.kernel, Kernel::Recv { .. }));
            ready.insert(i.id, i.round.saturating_add(later));
        }
        Ok(())
    }

    /// An input or output kernel `name` of party `p` is declared in `list` with its shape.
    fn declared(&self, list: &[IoSpec], p: &Program, i: &Instr, name: &str) -> Result<()> {
        match list
            .iter()
            .find(|io| io.party == p.party && io.name == name)
        {
            Some(io) if io.shape == i.shape => Ok(()),
            Some(io) => Err(node_err(
                p,
                i,
                format!("has shape {:?}, declared as {:?}", i.shape, io.shape),
            )),
            None => Err(node_err(p, i, format!("{name:?} is not declared"))),
        }
    }
}

impl ServingGraph {
    /// Loads and validates a serving graph (`shareflow compile --serving -o FILE`).
    pub fn from_json(text: &str) -> Result<ServingGraph> {
        let g: ServingGraph = serde_json::from_str(text).map_err(|e| CompileError::Json {
            message: format!("not a serving graph: {e}"),
        })?;
        g.validate()?;
        Ok(g)
    }

    /// Both programs valid ([`CompiledGraph::validate`]) with the same parties; every
    /// persistent party one of them; every value a prediction loads stored by setup on the
    /// same party.
    pub fn validate(&self) -> Result<()> {
        for g in [&self.setup, &self.predict] {
            if g.format != crate::program::FORMAT || g.version != crate::program::VERSION {
                return Err(CompileError::Version {
                    found: g.version,
                    supported: crate::program::VERSION,
                });
            }
            g.validate()?;
        }
        if self.setup.parties != self.predict.parties {
            return Err(CompileError::Json {
                message: "setup and predict have different parties".into(),
            });
        }
        if let Some(p) = self
            .persistent
            .iter()
            .find(|p| !self.setup.parties.contains(p))
        {
            return Err(CompileError::Party {
                party: p.clone(),
                message: "persists but is not a party of the graph".into(),
            });
        }
        for (setup, predict) in self.setup.programs.iter().zip(&self.predict.programs) {
            let stored: HashSet<&StoreKey> = setup
                .instrs
                .iter()
                .filter_map(|i| match &i.kernel {
                    Kernel::Store { key } => Some(key),
                    _ => None,
                })
                .collect();
            for i in &predict.instrs {
                if let Kernel::Load { key } = &i.kernel {
                    if !stored.contains(key) {
                        return Err(node_err(
                            predict,
                            i,
                            format!("loads {key}, which setup does not store"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

//! The execution plan of one party's program: instructions grouped by round, sends and
//! receives grouped by peer, and the last use of every value (so values are dropped as soon as
//! they are dead). A plan is immutable and reused by every run; a run's values are its state.

use std::collections::{BTreeMap, HashMap};

use shareflow_compiler::cost::entry_bytes;
use shareflow_compiler::ir::{Kernel, ValueId};
use shareflow_compiler::Program;

use crate::{Result, RuntimeError};

/// One round of a party's program.
#[derive(Debug, Default, Clone)]
pub struct RoundPlan {
    /// Local instructions (indices into the program), in program order.
    pub local: Vec<usize>,
    /// Sends per peer.
    pub sends: BTreeMap<usize, Vec<usize>>,
    /// Receives per peer.
    pub recvs: BTreeMap<usize, Vec<usize>>,
}

/// The plan of a program.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The rounds, in order: each round's local instructions, sends and receives.
    pub rounds: Vec<RoundPlan>,
    /// For every instruction, the values whose last use it is.
    pub frees: Vec<Vec<ValueId>>,
}

impl Plan {
    /// Plans `program`; errors on a malformed program (a use before definition).
    pub fn new(program: &Program) -> Result<Plan> {
        let mut defined: HashMap<ValueId, usize> = HashMap::new();
        let max_round = program.instrs.iter().map(|i| i.round).max().unwrap_or(0) as usize;
        let mut rounds = vec![RoundPlan::default(); max_round + 1];
        for (idx, instr) in program.instrs.iter().enumerate() {
            for input in &instr.inputs {
                if !defined.contains_key(input) {
                    return Err(RuntimeError::Node {
                        node: format!("{} of party {}", instr.id, program.party),
                        message: format!("uses {input} before it is defined"),
                    });
                }
            }
            defined.insert(instr.id, idx);
            let round = &mut rounds[instr.round as usize];
            match instr.kernel {
                Kernel::Send { to, .. } => round.sends.entry(to).or_default().push(idx),
                Kernel::Recv { from, .. } => round.recvs.entry(from).or_default().push(idx),
                _ => round.local.push(idx),
            }
        }
        // The last use of every value in execution order: per round, locals, sends, receives.
        let mut last_use: HashMap<ValueId, usize> = HashMap::new();
        for round in &rounds {
            let order = round
                .local
                .iter()
                .chain(round.sends.values().flatten())
                .chain(round.recvs.values().flatten());
            for &idx in order {
                for input in &program.instrs[idx].inputs {
                    last_use.insert(*input, idx);
                }
            }
        }
        let mut frees = vec![Vec::new(); program.instrs.len()];
        for (value, idx) in last_use {
            frees[idx].push(value);
        }
        Ok(Plan { rounds, frees })
    }

    /// The rounds in which this party communicates: the last one with a send or a receive,
    /// plus one (the local work after the last receive is no round of its own).
    pub fn communication_rounds(&self) -> u32 {
        self.rounds
            .iter()
            .rposition(|r| !r.sends.is_empty() || !r.recvs.is_empty())
            .map_or(0, |r| r as u32 + 1)
    }

    /// Per party (of `parties`), the largest batch in bytes that `program` (planned as this)
    /// receives from it in one round: the bound on the frames that peer may send
    /// ([`crate::transport::QuicTransport::connect_limited`]). A party it receives nothing from
    /// gets the length of an empty batch.
    pub fn largest_batches(&self, program: &Program, parties: usize) -> Vec<usize> {
        let mut max = vec![crate::wire::HEADER_LEN; parties];
        for round in &self.rounds {
            for (&from, recvs) in &round.recvs {
                let bytes = recvs
                    .iter()
                    .filter_map(|&idx| program.instrs.get(idx))
                    .map(|i| entry_bytes(i.kind, &i.shape))
                    .fold(crate::wire::HEADER_LEN, usize::saturating_add);
                if let Some(m) = max.get_mut(from) {
                    *m = (*m).max(bytes);
                }
            }
        }
        max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shareflow_compiler::{compile, CompileOptions, ProtocolKind};
    use shareflow_graphs::zoo::{ModelKind, ZooModel};

    #[test]
    fn the_largest_batches_are_those_of_the_cost_report() {
        let zoo = ZooModel::build(ModelKind::A, 1).unwrap();
        let g = compile(
            &zoo.graph,
            ProtocolKind::SecureNN,
            CompileOptions::default(),
        )
        .unwrap();
        let n = g.parties.len();
        for p in &g.programs {
            let max = Plan::new(p).unwrap().largest_batches(p, n);
            for (from, &m) in max.iter().enumerate() {
                // every batch that reaches p from `from`, as its sender encodes it
                let sent: Vec<usize> = g.programs[from]
                    .instrs
                    .iter()
                    .filter(|i| matches!(i.kernel, Kernel::Send { to, .. } if to == p.host))
                    .fold(BTreeMap::new(), |mut per_round, i| {
                        *per_round.entry(i.round).or_insert(crate::wire::HEADER_LEN) +=
                            entry_bytes(i.kind, &i.shape);
                        per_round
                    })
                    .into_values()
                    .collect();
                let expected = sent.into_iter().max().unwrap_or(crate::wire::HEADER_LEN);
                assert_eq!(m, expected, "{} from {}", p.party, g.parties[from]);
            }
        }
    }
}

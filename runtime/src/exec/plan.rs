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
    /// Local instructions that this round's sends need (indices into the program), in program
    /// order: they run first.
    pub before_sends: Vec<usize>,
    /// Sends per peer.
    pub sends: BTreeMap<usize, Vec<usize>>,
    /// The other local instructions, in program order: they run after the sends, while the
    /// batches travel.
    pub after_sends: Vec<usize>,
    /// Receives per peer.
    pub recvs: BTreeMap<usize, Vec<usize>>,
}

impl RoundPlan {
    /// The round's instructions in the order a run executes them: the local ones the sends
    /// need, the sends, the other local ones, the receives.
    pub fn execution_order(&self) -> impl Iterator<Item = usize> + '_ {
        self.before_sends
            .iter()
            .chain(self.sends.values().flatten())
            .chain(&self.after_sends)
            .chain(self.recvs.values().flatten())
            .copied()
    }
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
    ///
    /// Every instruction stays in the round the compiler gave it (the earliest its inputs
    /// allow). Within a round, the local instructions that the round's sends need run first,
    /// the others after the sends, while the batches travel: a party sends as soon as it can.
    pub fn new(program: &Program) -> Result<Plan> {
        let mut defined: HashMap<ValueId, usize> = HashMap::new();
        // The instructions that use each instruction's value.
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); program.instrs.len()];
        for (idx, instr) in program.instrs.iter().enumerate() {
            for input in &instr.inputs {
                let Some(&from) = defined.get(input) else {
                    return Err(RuntimeError::Node {
                        node: format!("{} of party {}", instr.id, program.party),
                        message: format!("uses {input} before it is defined"),
                    });
                };
                users[from].push(idx);
            }
            defined.insert(instr.id, idx);
        }
        // Whether a send of the instruction's round needs it, directly or through local
        // instructions of that round: users first (a user comes after its inputs).
        let mut for_sends = vec![false; program.instrs.len()];
        for (idx, instr) in program.instrs.iter().enumerate().rev() {
            for_sends[idx] = users[idx].iter().any(|&u| {
                let user = &program.instrs[u];
                user.round == instr.round
                    && match user.kernel {
                        Kernel::Send { .. } => true,
                        Kernel::Recv { .. } => false,
                        _ => for_sends[u],
                    }
            });
        }
        let max_round = program.instrs.iter().map(|i| i.round).max().unwrap_or(0) as usize;
        let mut rounds = vec![RoundPlan::default(); max_round + 1];
        for (idx, instr) in program.instrs.iter().enumerate() {
            let round = &mut rounds[instr.round as usize];
            match instr.kernel {
                Kernel::Send { to, .. } => round.sends.entry(to).or_default().push(idx),
                Kernel::Recv { from, .. } => round.recvs.entry(from).or_default().push(idx),
                _ if for_sends[idx] => round.before_sends.push(idx),
                _ => round.after_sends.push(idx),
            }
        }
        // The last use of every value in execution order.
        let mut last_use: HashMap<ValueId, usize> = HashMap::new();
        for round in &rounds {
            for idx in round.execution_order() {
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

    /// Network A's prediction of `batch` images, compiled for SecureNN.
    fn network_a(batch: usize) -> shareflow_compiler::CompiledGraph {
        let zoo = ZooModel::build(ModelKind::A, batch).unwrap();
        compile(
            &zoo.graph,
            ProtocolKind::SecureNN,
            CompileOptions::default(),
        )
        .unwrap()
    }

    /// Every program of network A's prediction and training step, planned: in execution order
    /// (per round: before the sends, the sends, after them, the receives) every input is
    /// defined before its use and freed only at its last use; what runs before the sends is
    /// exactly what they need.
    #[test]
    fn sends_leave_before_the_work_they_do_not_need() {
        let serving = network_a(4);
        let cfg = crate::plain::train::TrainConfig {
            batch: 4,
            ..Default::default()
        };
        let training = crate::train::training_programs(
            ModelKind::A,
            &cfg,
            ProtocolKind::SecureNN,
            CompileOptions::default(),
        )
        .unwrap();
        let mut deferred = 0;
        for p in serving.programs.iter().chain(&training.step.graph.programs) {
            let plan = Plan::new(p).unwrap();
            let mut live: HashMap<ValueId, usize> = HashMap::new();
            for (r, round) in plan.rounds.iter().enumerate() {
                // What the round's sends need, through this round's local instructions.
                let mut needed: Vec<ValueId> = round
                    .sends
                    .values()
                    .flatten()
                    .flat_map(|&i| p.instrs[i].inputs.clone())
                    .collect();
                let mut need_set = std::collections::HashSet::new();
                while let Some(v) = needed.pop() {
                    if let Some(i) = p.instrs.iter().position(|i| i.id == v) {
                        let local = !p.instrs[i].kernel.is_exchange();
                        if local && p.instrs[i].round as usize == r && need_set.insert(i) {
                            needed.extend(p.instrs[i].inputs.iter().copied());
                        }
                    }
                }
                let mut before: Vec<usize> = need_set.into_iter().collect();
                before.sort_unstable();
                assert_eq!(round.before_sends, before, "{} round {r}", p.party);
                deferred += round.after_sends.len();
                for idx in round.execution_order() {
                    let instr = &p.instrs[idx];
                    for input in &instr.inputs {
                        assert!(
                            live.contains_key(input),
                            "{} uses {input} freed or undefined",
                            instr.id
                        );
                    }
                    for v in &plan.frees[idx] {
                        live.remove(v);
                    }
                    live.insert(instr.id, idx);
                }
            }
        }
        assert!(deferred > 0, "no instruction runs after the sends");
    }

    #[test]
    fn the_largest_batches_are_those_of_the_cost_report() {
        let g = network_a(1);
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

//! Every party of a compiled graph as a thread of this process, over in-process channels.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ndarray::ArrayD;
use shareflow_compiler::ir::Kernel;
use shareflow_compiler::CompiledGraph;

use super::{run_party_full, PartyResult, Plan, Randomness, Store};
use crate::transport::InProcNetwork;
use crate::{Result, RuntimeError};

/// The result of an in-process run: each party's outputs and metrics, and the wall time.
#[derive(Debug, Clone)]
pub struct InProcessRun {
    /// Each party's result, in the graph's party order.
    pub parties: Vec<PartyResult>,
    /// Wall time of the whole run (all parties), in milliseconds.
    pub wall_ms: f64,
}

impl InProcessRun {
    /// The result of a party.
    pub fn party(&self, party: &str) -> Result<&PartyResult> {
        self.parties
            .iter()
            .find(|p| p.metrics.party == party)
            .ok_or_else(|| RuntimeError::Node {
                node: party.into(),
                message: "no such party in this run".into(),
            })
    }

    /// A float output of a party.
    pub fn float(&self, party: &str, name: &str) -> Result<&ArrayD<f32>> {
        self.party(party)?.float(name)
    }

    /// Bytes sent by all parties.
    pub fn bytes(&self) -> u64 {
        self.parties.iter().map(|p| p.metrics.bytes_sent).sum()
    }

    /// Rounds of the run (the same for every party that communicates).
    pub fn rounds(&self) -> u32 {
        self.parties
            .iter()
            .map(|p| p.metrics.rounds)
            .max()
            .unwrap_or(0)
    }
}

/// Runs every party of `graph` with `plans` (from [`Plan::new`] of each program) and the
/// inputs of each party (by party name, then input name).
pub fn run_in_process(
    graph: &CompiledGraph,
    plans: &[Plan],
    inputs: &HashMap<String, HashMap<String, ArrayD<f32>>>,
    timeout: Duration,
) -> Result<InProcessRun> {
    let mut stores = vec![Store::new(); graph.parties.len()];
    run_in_process_with(graph, plans, inputs, timeout, &mut stores)
}

/// [`run_in_process`] with every party's [`Store`] of a serving session (by party index), kept
/// by the caller across runs.
pub fn run_in_process_with(
    graph: &CompiledGraph,
    plans: &[Plan],
    inputs: &HashMap<String, HashMap<String, ArrayD<f32>>>,
    timeout: Duration,
    stores: &mut [Store],
) -> Result<InProcessRun> {
    run_in_process_full(graph, plans, inputs, timeout, stores, &Randomness::Os)
}

/// [`run_in_process_with`] with an explicit source of randomness.
pub fn run_in_process_full(
    graph: &CompiledGraph,
    plans: &[Plan],
    inputs: &HashMap<String, HashMap<String, ArrayD<f32>>>,
    timeout: Duration,
    stores: &mut [Store],
    randomness: &Randomness,
) -> Result<InProcessRun> {
    if stores.len() != graph.parties.len() || plans.len() != graph.programs.len() {
        return Err(RuntimeError::Node {
            node: "in-process run".into(),
            message: format!(
                "{} plans and {} stores for {} parties",
                plans.len(),
                stores.len(),
                graph.parties.len()
            ),
        });
    }
    check_inputs(graph, inputs)?;
    let session: [u8; 16] = shareflow_ops::prg::fresh_seed()?[..16]
        .try_into()
        .map_err(|_| RuntimeError::Node {
            node: "session".into(),
            message: "cannot draw a session id".into(),
        })?;
    let transports = InProcNetwork::new(graph.parties.clone(), session, timeout);
    let empty = HashMap::new();
    let start = Instant::now();
    let results: Vec<Result<PartyResult>> = std::thread::scope(|s| {
        let handles: Vec<_> = transports
            .into_iter()
            .zip(&graph.programs)
            .zip(plans)
            .zip(stores.iter_mut())
            .map(|(((mut t, program), plan), store)| {
                let inputs = inputs.get(&program.party).unwrap_or(&empty);
                // Named after the party: its track in a trace, its name in a panic message.
                std::thread::Builder::new()
                    .name(program.party.clone())
                    .spawn_scoped(s, move || {
                        run_party_full(program, plan, &mut t, inputs, store, randomness)
                    })
            })
            .collect();
        handles
            .into_iter()
            .zip(&graph.programs)
            .map(|(h, p)| {
                let failed = |message: &str| RuntimeError::Node {
                    node: p.party.clone(),
                    message: message.into(),
                };
                match h {
                    Ok(h) => h
                        .join()
                        .unwrap_or_else(|_| Err(failed("the party's thread panicked"))),
                    Err(_) => Err(failed("cannot start the party's thread")),
                }
            })
            .collect()
    });
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    // A party's own failure makes its peers fail too, on the transport: report the cause.
    let mut parties = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(p) => parties.push(p),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        let cause = errors
            .iter()
            .position(|e| {
                !matches!(
                    e,
                    RuntimeError::Transport { .. } | RuntimeError::Timeout { .. }
                )
            })
            .unwrap_or(0);
        return Err(errors.swap_remove(cause));
    }
    Ok(InProcessRun { parties, wall_ms })
}

/// Refuses inputs for a party the graph does not have, or that a party's program does not
/// take (the graph's declared inputs of the party, and the `Input` kernels of its program):
/// they would be ignored, and the run would compute with something else than the caller
/// meant. Missing inputs are reported by the kernel that needs them.
fn check_inputs(
    graph: &CompiledGraph,
    inputs: &HashMap<String, HashMap<String, ArrayD<f32>>>,
) -> Result<()> {
    let mut parties: Vec<_> = inputs.iter().collect();
    parties.sort_by_key(|(party, _)| *party);
    for (party, values) in parties {
        let program = graph
            .programs
            .iter()
            .find(|p| &p.party == party)
            .ok_or_else(|| RuntimeError::UnknownParty {
                party: party.clone(),
                known: graph.parties.join(", "),
            })?;
        let mut known: Vec<&str> = graph
            .inputs
            .iter()
            .filter(|io| &io.party == party)
            .map(|io| io.name.as_str())
            .chain(program.instrs.iter().filter_map(|i| match &i.kernel {
                Kernel::Input { name } | Kernel::Parameter { name } => Some(name.as_str()),
                _ => None,
            }))
            .collect();
        known.sort_unstable();
        known.dedup();
        let mut given: Vec<&String> = values.keys().collect();
        given.sort();
        if let Some(input) = given.into_iter().find(|n| !known.contains(&n.as_str())) {
            return Err(RuntimeError::UnknownInput {
                party: party.clone(),
                input: input.clone(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        }
    }
    Ok(())
}

//! Every party of a compiled graph as a thread of this process, over in-process channels.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ndarray::ArrayD;
use shareflow_compiler::CompiledGraph;

use super::{run_party, PartyResult, Plan};
use crate::transport::InProcNetwork;
use crate::{Result, RuntimeError};

/// The result of an in-process run: each party's outputs and metrics, and the wall time.
#[derive(Debug, Clone)]
pub struct InProcessRun {
    pub parties: Vec<PartyResult>,
    pub wall_ms: f64,
}

impl InProcessRun {
    /// The outputs of a party.
    pub fn outputs(&self, party: &str) -> Option<&HashMap<String, ArrayD<f32>>> {
        self.parties
            .iter()
            .find(|p| p.metrics.party == party)
            .map(|p| &p.outputs)
    }

    /// Bytes sent by all parties.
    pub fn bytes(&self) -> u64 {
        self.parties.iter().map(|p| p.metrics.bytes_sent).sum()
    }

    /// Rounds of the run (the same for every party that communicates).
    pub fn rounds(&self) -> u32 {
        self.parties.iter().map(|p| p.metrics.rounds).max().unwrap_or(0)
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
            .map(|((mut t, program), plan)| {
                let inputs = inputs.get(&program.party).unwrap_or(&empty);
                s.spawn(move || run_party(program, plan, &mut t, inputs))
            })
            .collect();
        handles
            .into_iter()
            .zip(&graph.programs)
            .map(|(h, p)| {
                h.join().unwrap_or_else(|_| {
                    Err(RuntimeError::Node {
                        node: p.party.clone(),
                        message: "the party's thread panicked".into(),
                    })
                })
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
            .position(|e| !matches!(e, RuntimeError::Transport { .. } | RuntimeError::Timeout { .. }))
            .unwrap_or(0);
        return Err(errors.swap_remove(cause));
    }
    Ok(InProcessRun { parties, wall_ms })
}

//! Executes one party's program: per round, the local kernels that its sends need, then one
//! batched message per peer, then the other local kernels (while the batches travel), then the
//! batches it expects. Values are dropped after their last use.

mod inproc;
pub mod kernels;
pub mod metrics;
pub mod plan;
pub mod serving;
pub mod session;
mod store;

use std::collections::HashMap;
use std::time::Instant;

use ndarray::ArrayD;
use shareflow_compiler::ir::{Kernel, StoreKey, ValueId};
use shareflow_compiler::Program;
use shareflow_ops::Value;

pub use inproc::{run_in_process, run_in_process_full, run_in_process_with, InProcessRun};
pub use metrics::PartyMetrics;
pub use plan::Plan;
pub use serving::ServingSession;
pub use session::{Session, SessionParty, SessionProgram};
pub use store::Store;

use crate::transport::Transport;
use crate::{Result, RuntimeError};

/// The outputs a party received and its metrics.
#[derive(Debug, Clone)]
pub struct PartyResult {
    /// Outputs by name: floats for the outputs of a graph, any kind for hand-built programs.
    pub outputs: HashMap<String, Value>,
    /// What the party measured during the run.
    pub metrics: PartyMetrics,
}

impl PartyResult {
    /// A float output, or an error naming it.
    pub fn float(&self, name: &str) -> Result<&ArrayD<f32>> {
        let v = self.outputs.get(name).ok_or_else(|| RuntimeError::Node {
            node: format!("output {name:?}"),
            message: format!("party {} received no such output", self.metrics.party),
        })?;
        v.as_float("output").map_err(|e| RuntimeError::Node {
            node: format!("output {name:?}"),
            message: e.to_string(),
        })
    }
}

/// Runs `program` (planned as `plan`) over `transport` with this party's `inputs`.
pub fn run_party(
    program: &Program,
    plan: &Plan,
    transport: &mut dyn Transport,
    inputs: &HashMap<String, ArrayD<f32>>,
) -> Result<PartyResult> {
    run_party_with(program, plan, transport, inputs, &mut Store::new())
}

/// [`run_party`] with the party's [`Store`] of a serving session, which `Store` kernels fill
/// and `Load` kernels read (kept by the caller across runs).
pub fn run_party_with(
    program: &Program,
    plan: &Plan,
    transport: &mut dyn Transport,
    inputs: &HashMap<String, ArrayD<f32>>,
    store: &mut Store,
) -> Result<PartyResult> {
    run_party_full(program, plan, transport, inputs, store, &Randomness::Os)
}

/// Where a run's randomness comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Randomness {
    /// Fresh seeds from the operating system, streams separated by the run's session id: the
    /// only secure choice.
    Os,
    /// INSECURE, for tests only: every seed derived from this one and streams separated by a
    /// fixed session, so that two runs of a graph (in process and over QUIC, say) draw the same
    /// randomness and give bit-identical results. Every run draws the same masks, so two
    /// predictions of a serving session leak the difference of their inputs. It exists only
    /// with the `test-randomness` feature, which only the workspace's tests enable: no binary
    /// can fix its randomness.
    #[cfg(feature = "test-randomness")]
    Replay([u8; 32]),
}

/// [`run_party_with`] with an explicit source of randomness. What the run stores is written
/// to `store` only if it succeeds.
pub fn run_party_full(
    program: &Program,
    plan: &Plan,
    transport: &mut dyn Transport,
    inputs: &HashMap<String, ArrayD<f32>>,
    store: &mut Store,
    randomness: &Randomness,
) -> Result<PartyResult> {
    let result = run_rounds(program, plan, transport, inputs, store, randomness);
    match result {
        Ok(_) => store.commit(),
        Err(_) => store.discard(),
    }
    result
}

fn run_rounds(
    program: &Program,
    plan: &Plan,
    transport: &mut dyn Transport,
    inputs: &HashMap<String, ArrayD<f32>>,
    store: &mut Store,
    randomness: &Randomness,
) -> Result<PartyResult> {
    let start = Instant::now();
    let cx = match randomness {
        Randomness::Os => kernels::KernelContext {
            session: u128::from_le_bytes(transport.session()),
            inputs,
            #[cfg(feature = "test-randomness")]
            replay: None,
        },
        #[cfg(feature = "test-randomness")]
        Randomness::Replay(seed) => kernels::KernelContext {
            session: 0,
            inputs,
            replay: Some(*seed),
        },
    };
    let mut run = RunState {
        program,
        plan,
        cx,
        values: HashMap::new(),
        loaded: HashMap::new(),
        outputs: HashMap::new(),
        metrics: PartyMetrics::new(&program.party),
    };
    let before = transport.stats().clone();
    for (r, round) in plan.rounds.iter().enumerate() {
        // Spans for traces (`shareflow --trace`): disabled, and nearly free, unless a
        // subscriber asks for this target at trace level.
        let _round = tracing::trace_span!("round", round = r).entered();
        for &idx in &round.before_sends {
            run.local(idx, store, transport)?;
        }
        let exchange = if round.sends.is_empty() && round.recvs.is_empty() {
            tracing::Span::none()
        } else {
            tracing::trace_span!(
                "exchange",
                round = r,
                bytes_sent = tracing::field::Empty,
                bytes_received = tracing::field::Empty,
                messages = tracing::field::Empty,
            )
        };
        let traffic_before = (!exchange.is_disabled()).then(|| transport.stats().clone());
        let exchange = exchange.entered();
        for (&to, sends) in &round.sends {
            let mut batch = transport.batch(to, r as u32);
            for &idx in sends {
                let instr = &program.instrs[idx];
                // At its last use the value moves into the batch instead of being copied.
                let last_use = instr
                    .inputs
                    .first()
                    .filter(|id| plan.frees[idx].contains(id));
                let v = match last_use.and_then(|id| run.values.remove(id)) {
                    Some(v) => v,
                    None => Values {
                        values: &run.values,
                        loaded: &run.loaded,
                        store,
                    }
                    .get(instr, 0)?
                    .clone(),
                };
                batch.entries.push((instr.id.0 as u64, v));
                for v in &plan.frees[idx] {
                    run.values.remove(v);
                    run.loaded.remove(v);
                }
            }
            transport.send(to, batch)?;
        }
        // What this round's sends do not need runs while their batches travel (its kernels'
        // spans nest in the exchange's).
        for &idx in &round.after_sends {
            run.local(idx, store, transport)?;
        }
        for (&from, recvs) in &round.recvs {
            let batch = transport.recv(from, r as u32)?;
            let mut got: HashMap<u64, Value> = batch.entries.into_iter().collect();
            for &idx in recvs {
                let instr = &program.instrs[idx];
                let Kernel::Recv { send, .. } = instr.kernel else {
                    continue;
                };
                let v = got
                    .remove(&(send.0 as u64))
                    .ok_or_else(|| RuntimeError::Node {
                        node: kernels::label(instr),
                        message: format!(
                            "party {} sent no value {send} in round {r}",
                            transport.party_name(from)
                        ),
                    })?;
                if v.kind() != instr.kind || v.shape() != instr.shape.as_slice() {
                    return Err(RuntimeError::Node {
                        node: kernels::label(instr),
                        message: format!(
                            "party {} sent a {} value of shape {:?}, expected {} {:?}",
                            transport.party_name(from),
                            v.kind().name(),
                            v.shape(),
                            instr.kind.name(),
                            instr.shape
                        ),
                    });
                }
                run.values.insert(instr.id, v);
            }
        }
        if let Some(b) = traffic_before {
            let now = transport.stats();
            exchange.record("bytes_sent", now.bytes_sent() - b.bytes_sent());
            exchange.record("bytes_received", now.bytes_received() - b.bytes_received());
            exchange.record("messages", now.messages_sent() - b.messages_sent());
        }
    }
    run.metrics.finish(
        start.elapsed(),
        plan.communication_rounds(),
        &before,
        transport,
    );
    Ok(PartyResult {
        outputs: run.outputs,
        metrics: run.metrics,
    })
}

/// A run's program and plan, its randomness and inputs, and its state: the live values.
struct RunState<'a> {
    program: &'a Program,
    plan: &'a Plan,
    cx: kernels::KernelContext<'a>,
    values: HashMap<ValueId, Value>,
    /// Values of `Load` instructions: the key they read in the store.
    loaded: HashMap<ValueId, StoreKey>,
    outputs: HashMap<String, Value>,
    metrics: PartyMetrics,
}

impl RunState<'_> {
    /// Runs local instruction `idx`: an output, a store or load, or a kernel (in place where
    /// an operand is at its last use), then drops the values whose last use it is.
    fn local(
        &mut self,
        idx: usize,
        store: &mut Store,
        transport: &mut dyn Transport,
    ) -> Result<()> {
        let instr = &self.program.instrs[idx];
        let _kernel = tracing::trace_span!(
            "kernel",
            kernel = instr.kernel.name(),
            id = instr.id.0,
            elements = instr.shape.iter().product::<usize>()
        )
        .entered();
        let t = Instant::now();
        if let Kernel::Output { name } = &instr.kernel {
            let at = Values {
                values: &self.values,
                loaded: &self.loaded,
                store,
            };
            self.outputs.insert(name.clone(), at.get(instr, 0)?.clone());
        } else if !store.run(instr, &self.values, &mut self.loaded)? {
            let taken = take_operand(instr, &self.plan.frees[idx], &mut self.values);
            let at = Values {
                values: &self.values,
                loaded: &self.loaded,
                store,
            };
            let v = match taken {
                // The operand is not used again: the kernel overwrites it.
                Some((taken, x)) => {
                    let rest = instr
                        .inputs
                        .iter()
                        .enumerate()
                        .filter(|&(i, _)| i != taken)
                        .map(|(_, id)| at.lookup(instr, *id))
                        .collect::<Result<Vec<_>>>()?;
                    kernels::run_in_place(instr, taken, x, &rest, &self.cx)?
                }
                None => {
                    let args = instr
                        .inputs
                        .iter()
                        .map(|i| at.lookup(instr, *i))
                        .collect::<Result<Vec<_>>>()?;
                    kernels::run(instr, &args, &self.cx)?
                }
            };
            self.values.insert(instr.id, v);
        }
        self.metrics.record_kernel(instr.kernel.name(), t.elapsed());
        for v in &self.plan.frees[idx] {
            self.values.remove(v);
            self.loaded.remove(v);
        }
        transport.progress();
        Ok(())
    }
}

/// The operand that `instr` may overwrite (see [`kernels::overwritable`]), taken out of
/// `values`: one at its last use (in `frees`), computed or received in this run (not read from
/// the store), not also another operand, and a ring tensor of the output's shape (of its
/// number of elements for a reshape).
fn take_operand(
    instr: &shareflow_compiler::Instr,
    frees: &[ValueId],
    values: &mut HashMap<ValueId, Value>,
) -> Option<(usize, ArrayD<u64>)> {
    for &i in kernels::overwritable(&instr.kernel) {
        let Some(&id) = instr.inputs.get(i) else {
            continue;
        };
        let once = instr.inputs.iter().filter(|&&j| j == id).count() == 1;
        let reshape = matches!(instr.kernel, Kernel::Reshape { .. });
        let fits = matches!(values.get(&id), Some(Value::Ring(a))
            if a.shape() == instr.shape
                || (reshape
                    && shareflow_ops::ring::checked_len("reshape", &instr.shape).ok()
                        == Some(a.len())));
        if once && fits && frees.contains(&id) {
            if let Some(Value::Ring(a)) = values.remove(&id) {
                return Some((i, a));
            }
        }
    }
    None
}

/// A run's values: computed or received ones, and those read from the store.
struct Values<'a> {
    values: &'a HashMap<ValueId, Value>,
    loaded: &'a HashMap<ValueId, StoreKey>,
    store: &'a Store,
}

impl<'a> Values<'a> {
    fn lookup(&self, instr: &shareflow_compiler::Instr, id: ValueId) -> Result<&'a Value> {
        let stored = || self.loaded.get(&id).and_then(|key| self.store.get(key));
        self.values
            .get(&id)
            .or_else(stored)
            .ok_or_else(|| RuntimeError::Node {
                node: kernels::label(instr),
                message: format!("input {id} has no value"),
            })
    }

    fn get(&self, instr: &shareflow_compiler::Instr, slot: usize) -> Result<&'a Value> {
        let id = instr.inputs.get(slot).ok_or_else(|| RuntimeError::Node {
            node: kernels::label(instr),
            message: "missing input".into(),
        })?;
        self.lookup(instr, *id)
    }
}

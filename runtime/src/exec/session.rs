//! A session of secure programs in this process: every party keeps its [`Store`] across the
//! runs, so that one program's stored values (a training step's new variable shares) are the
//! next one's loads. The programs of one session share its parties (a training session: the
//! initialisation, the steps, the predictions from the still-shared model and, if asked, the
//! reveal of the weights).
//!
//! A run that fails at any party leaves every store as it was before the run (in process,
//! the stores are restored), so a session never holds a half-applied step.

use std::collections::HashMap;
use std::time::Duration;

use ndarray::ArrayD;
use shareflow_compiler::{CompiledGraph, Program};

use super::serving::Inputs;
use super::{
    run_in_process_with, run_party_full, InProcessRun, PartyResult, Plan, Randomness, Store,
};
use crate::round::RUN_ROUNDS;
use crate::transport::{Transport, TransportStats};
use crate::wire::Batch;
use crate::{Result, RuntimeError};

/// A compiled program of a session and its plans.
#[derive(Debug, Clone)]
pub struct SessionProgram {
    /// The compiled program (one program per party).
    pub graph: CompiledGraph,
    plans: Vec<Plan>,
}

impl SessionProgram {
    /// Plans every party's program of `graph`.
    pub fn new(graph: CompiledGraph) -> Result<SessionProgram> {
        let plans = graph
            .programs
            .iter()
            .map(Plan::new)
            .collect::<Result<Vec<_>>>()?;
        Ok(SessionProgram { graph, plans })
    }
}

/// The parties and stores of a session.
#[derive(Debug)]
pub struct Session {
    parties: Vec<String>,
    stores: Vec<Store>,
    /// Bounds every receive of every run.
    pub timeout: Duration,
}

impl Session {
    /// A session of these parties (a compiled graph's `parties`) with empty stores.
    pub fn new(parties: Vec<String>, timeout: Duration) -> Session {
        Session {
            stores: vec![Store::new(); parties.len()],
            parties,
            timeout,
        }
    }

    /// Each party's store (by party index).
    pub fn stores(&self) -> &[Store] {
        &self.stores
    }

    /// Replaces the store of the party at `index` (a store restored from a checkpoint).
    pub fn restore(&mut self, index: usize, store: Store) -> Result<()> {
        let slot = self
            .stores
            .get_mut(index)
            .ok_or_else(|| RuntimeError::Node {
                node: "session".into(),
                message: format!(
                    "no party {index} in a session of {} parties",
                    self.parties.len()
                ),
            })?;
        *slot = store;
        Ok(())
    }

    /// Runs `program` with `inputs` (by party, then name; a run-time parameter is given to
    /// each compute party that reads it: `CompiledGraph::parameter_parties`). Every party's
    /// store is restored if the run fails.
    pub fn run(&mut self, program: &SessionProgram, inputs: &Inputs) -> Result<InProcessRun> {
        if program.graph.parties != self.parties {
            return Err(RuntimeError::Node {
                node: "session".into(),
                message: format!(
                    "the program's parties ({}) are not the session's ({})",
                    program.graph.parties.join(", "),
                    self.parties.join(", ")
                ),
            });
        }
        let before = self.stores.clone();
        let run = run_in_process_with(
            &program.graph,
            &program.plans,
            inputs,
            self.timeout,
            &mut self.stores,
        );
        if run.is_err() {
            self.stores = before;
        }
        run
    }
}

/// Why program `index` of a session was refused, with the compiler's reason.
fn refused(index: usize, e: shareflow_compiler::CompileError) -> RuntimeError {
    RuntimeError::Node {
        node: format!("program {index} of the session"),
        message: e.to_string(),
    }
}

/// The most numbers one [`SessionParty::announce`] carries from one party.
pub const MAX_ANNOUNCED: usize = 16;

/// The bytes of the largest batch of [`SessionParty::announce`]: the header, one entry of a
/// vector of [`MAX_ANNOUNCED`] words.
const ANNOUNCE_BYTES: usize =
    crate::wire::HEADER_LEN + crate::wire::ENTRY_HEADER_LEN + 8 + 8 * MAX_ANNOUNCED;

/// One party of a session in its own process: its program of each of the session's compiled
/// graphs, their plans, and its store. The runs go over one transport in the same order at
/// every party; run `k` has its own session id and range of rounds (as the runs of a serving
/// party), so no two runs share randomness or batches. That needs one `SessionParty` per
/// transport: the seeds a session sets up once are expanded in every run's own domain, and
/// a second party object on the same transport would count its runs from 0 again.
#[derive(Debug)]
pub struct SessionParty {
    programs: Vec<(Program, Plan)>,
    store: Store,
    runs: u32,
}

impl SessionParty {
    /// Party `party` of every graph in `graphs` (all of the same parties). Each graph is
    /// checked first: shapes and rounds within [`shareflow_compiler::limits`], and what each
    /// program lets leave its party ([`shareflow_compiler::verify()`]).
    pub fn new(graphs: &[&CompiledGraph], party: &str) -> Result<SessionParty> {
        let planned = SessionParty::planned(graphs, party)?;
        for (i, g) in graphs.iter().enumerate() {
            shareflow_compiler::verify(g).map_err(|e| refused(i, e))?;
        }
        Ok(planned)
    }

    /// Party `party` of `graphs` whose leaks were checked by the caller (a serving graph's
    /// programs are checked together, [`shareflow_compiler::verify_serving`]): each graph's
    /// shapes and rounds are checked here, then this party's programs are planned.
    pub(crate) fn planned(graphs: &[&CompiledGraph], party: &str) -> Result<SessionParty> {
        let mut programs = Vec::with_capacity(graphs.len());
        for (i, g) in graphs.iter().enumerate() {
            if g.parties != graphs[0].parties {
                return Err(refused(
                    i,
                    shareflow_compiler::CompileError::Party {
                        party: party.to_string(),
                        message: "the session's programs have different parties".into(),
                    },
                ));
            }
            g.check().map_err(|e| refused(i, e))?;
            let program = g.program(party).cloned().map_err(|e| refused(i, e))?;
            let plan = Plan::new(&program)?;
            if plan.rounds.len() >= RUN_ROUNDS as usize {
                return Err(RuntimeError::Node {
                    node: format!("party {party}"),
                    message: format!("a program of more than {RUN_ROUNDS} rounds"),
                });
            }
            programs.push((program, plan));
        }
        Ok(SessionParty {
            programs,
            store: Store::new(),
            runs: 0,
        })
    }

    /// Per party (of `parties`), the largest batch any program (or
    /// [`SessionParty::announce`]) receives from it.
    pub fn largest_batches(&self, parties: usize) -> Vec<usize> {
        let mut out = vec![ANNOUNCE_BYTES; parties];
        for (program, plan) in &self.programs {
            for (o, b) in out.iter_mut().zip(plan.largest_batches(program, parties)) {
                *o = (*o).max(b);
            }
        }
        out
    }

    /// The party's store: the variables' shares and other values kept between runs.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Replaces this party's store (its shares restored from a checkpoint).
    pub fn restore(&mut self, store: Store) {
        self.store = store;
    }

    /// Takes the party's store, to keep it for a later session of the same programs.
    pub fn into_store(self) -> Store {
        self.store
    }

    /// A run without a program, over `transport` like the others: each party of `senders`
    /// (party indices) sends every other party the same short list of public numbers (at
    /// most [`MAX_ANNOUNCED`]), `mine` if this party is one of them. Returns every sender's
    /// list, in the order of `senders`. A sender's list that is not one short vector of
    /// numbers is an error naming it. Only for values every party may know (the steps of a
    /// sender's checkpoints, say): nothing here is masked.
    pub fn announce(
        &mut self,
        transport: &mut dyn Transport,
        senders: &[usize],
        mine: &[u64],
    ) -> Result<Vec<Vec<u64>>> {
        let mut run = RunTransport::new(transport, self.runs)?;
        self.runs += 1;
        let me = run.me();
        if mine.len() > MAX_ANNOUNCED {
            return Err(RuntimeError::Node {
                node: format!("party {}", run.party_name(me)),
                message: format!(
                    "{} numbers to announce, at most {MAX_ANNOUNCED}",
                    mine.len()
                ),
            });
        }
        if senders.contains(&me) {
            for to in (0..run.num_parties()).filter(|&p| p != me) {
                let mut batch = run.batch(to, 0);
                let list = ndarray::Array1::from(mine.to_vec()).into_dyn();
                batch.entries.push((0, shareflow_ops::Value::Ring(list)));
                run.send(to, batch)?;
            }
        }
        let mut out = Vec::with_capacity(senders.len());
        for &from in senders {
            if from == me {
                out.push(mine.to_vec());
                continue;
            }
            let batch = run.recv(from, 0)?;
            let peer = run.party_name(from).to_string();
            let bad = |message: String| RuntimeError::Transport {
                peer: peer.clone(),
                message,
            };
            match batch.entries.as_slice() {
                [(0, shareflow_ops::Value::Ring(a))]
                    if a.ndim() == 1 && a.len() <= MAX_ANNOUNCED =>
                {
                    out.push(a.iter().copied().collect())
                }
                _ => {
                    return Err(bad(format!(
                        "announced something other than at most {MAX_ANNOUNCED} public numbers"
                    )))
                }
            }
        }
        Ok(out)
    }

    /// Runs program `index` (of the graphs given to [`SessionParty::new`]) over `transport`
    /// with this party's `inputs` of this run.
    pub fn run(
        &mut self,
        index: usize,
        transport: &mut dyn Transport,
        inputs: &HashMap<String, ArrayD<f32>>,
        randomness: &Randomness,
    ) -> Result<PartyResult> {
        let (program, plan) = self.programs.get(index).ok_or_else(|| RuntimeError::Node {
            node: "session".into(),
            message: format!(
                "no program {index} (the session has {})",
                self.programs.len()
            ),
        })?;
        let mut run = RunTransport::new(transport, self.runs)?;
        self.runs += 1;
        run_party_full(program, plan, &mut run, inputs, &mut self.store, randomness)
    }
}

/// Run `k` of several over one transport: its own session id and round range.
pub(crate) struct RunTransport<'a> {
    inner: &'a mut dyn Transport,
    session: [u8; 16],
    offset: u32,
}

impl<'a> RunTransport<'a> {
    pub(crate) fn new(inner: &'a mut dyn Transport, run: u32) -> Result<RunTransport<'a>> {
        let offset = run
            .checked_mul(RUN_ROUNDS)
            .ok_or_else(|| RuntimeError::Node {
                node: "session party".into(),
                message: format!(
                    "more than {} runs over one transport",
                    u32::MAX / RUN_ROUNDS
                ),
            })?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"shareflow serving run");
        ctx.update(&inner.session());
        ctx.update(&run.to_le_bytes());
        let mut session = [0u8; 16];
        session.copy_from_slice(&ctx.finish().as_ref()[..16]);
        Ok(RunTransport {
            inner,
            session,
            offset,
        })
    }
}

impl Transport for RunTransport<'_> {
    fn me(&self) -> usize {
        self.inner.me()
    }

    fn num_parties(&self) -> usize {
        self.inner.num_parties()
    }

    fn party_name(&self, index: usize) -> &str {
        self.inner.party_name(index)
    }

    /// This run's own session id (it separates the PRG streams of the runs); the batches carry
    /// the transport's.
    fn session(&self) -> [u8; 16] {
        self.session
    }

    fn send(&mut self, to: usize, batch: Batch) -> Result<()> {
        self.inner.send(to, batch)
    }

    fn recv(&mut self, from: usize, round: u32) -> Result<Batch> {
        self.inner.recv(from, round + self.offset)
    }

    fn stats(&self) -> &TransportStats {
        self.inner.stats()
    }

    fn progress(&mut self) {
        self.inner.progress()
    }

    fn batch(&self, to: usize, round: u32) -> Batch {
        self.inner.batch(to, round + self.offset)
    }
}

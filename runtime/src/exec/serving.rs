//! A serving session in this process: the setup program of a [`ServingGraph`] runs once (the
//! model owner shares its weights, the servers open them masked), then any number of
//! predictions reuse what setup stored. Every run has its own session id, so no PRG stream
//! repeats across predictions.
//!
//! [`ServingParty`] is one party of such a session in its own process: setup and every
//! prediction run over one transport (one set of connections), each run with its own session id
//! derived from the transport's and its own range of round numbers. Its store is stamped with
//! [`serving_digest`], so that a store from another serving graph is refused.

use std::collections::HashMap;
use std::time::Duration;

use ndarray::ArrayD;
use shareflow_compiler::ServingGraph;

use shareflow_compiler::Program;

use super::{
    run_in_process_with, run_party_full, InProcessRun, PartyResult, Plan, Randomness, Store,
};
use crate::transport::{Transport, TransportStats};
use crate::wire::Batch;
use crate::{Result, RuntimeError};

/// SHA-256 of the serving graph's JSON (both programs): the stamp of its stores, and what the
/// parties of a serving session over QUIC check of each other.
pub fn serving_digest(graph: &ServingGraph) -> Result<[u8; 32]> {
    crate::party::json_digest("serving graph", graph)
}

/// Inputs by party name, then input name.
pub type Inputs = HashMap<String, HashMap<String, ArrayD<f32>>>;

/// The plans and per-party stores of a serving session.
#[derive(Debug)]
pub struct ServingSession {
    graph: ServingGraph,
    setup_plans: Vec<Plan>,
    predict_plans: Vec<Plan>,
    stores: Vec<Store>,
    set_up: bool,
    digest: [u8; 32],
    /// Bounds every receive of every run.
    pub timeout: Duration,
}

impl ServingSession {
    /// Plans both programs of `graph`.
    pub fn new(graph: ServingGraph, timeout: Duration) -> Result<ServingSession> {
        if graph.setup.parties != graph.predict.parties {
            return Err(RuntimeError::Node {
                node: "serving graph".into(),
                message: "setup and prediction programs have different parties".into(),
            });
        }
        let plan = |g: &shareflow_compiler::CompiledGraph| {
            g.programs.iter().map(Plan::new).collect::<Result<Vec<_>>>()
        };
        Ok(ServingSession {
            digest: serving_digest(&graph)?,
            setup_plans: plan(&graph.setup)?,
            predict_plans: plan(&graph.predict)?,
            stores: vec![Store::new(); graph.setup.parties.len()],
            set_up: false,
            timeout,
            graph,
        })
    }

    /// A session whose setup already ran (in an earlier session of the same graph): refuses
    /// stores that setup of this very graph did not fill.
    pub fn with_stores(
        graph: ServingGraph,
        timeout: Duration,
        stores: Vec<Store>,
    ) -> Result<ServingSession> {
        let mut s = ServingSession::new(graph, timeout)?;
        if stores.len() != s.stores.len() {
            return Err(RuntimeError::Node {
                node: "serving session".into(),
                message: format!("{} stores for {} parties", stores.len(), s.stores.len()),
            });
        }
        for store in &stores {
            store.check(&s.digest)?;
        }
        s.stores = stores;
        s.set_up = true;
        Ok(s)
    }

    /// The serving graph (setup and predict programs) this session runs.
    pub fn graph(&self) -> &ServingGraph {
        &self.graph
    }

    /// The digest every store of this session is stamped with.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Each party's store (by party index).
    pub fn stores(&self) -> &[Store] {
        &self.stores
    }

    /// Runs setup with the persistent parties' inputs (the weights); clears earlier stores.
    pub fn setup(&mut self, inputs: &Inputs) -> Result<InProcessRun> {
        let digest = self.digest;
        self.stores
            .iter_mut()
            .for_each(|s| *s = Store::stamped(digest));
        self.set_up = false;
        let run = run_in_process_with(
            &self.graph.setup,
            &self.setup_plans,
            inputs,
            self.timeout,
            &mut self.stores,
        )?;
        self.set_up = true;
        Ok(run)
    }

    /// Runs one prediction with the other parties' inputs (the images).
    pub fn predict(&mut self, inputs: &Inputs) -> Result<InProcessRun> {
        if !self.set_up {
            return Err(RuntimeError::Node {
                node: "serving session".into(),
                message: "predict before setup: run setup with the persistent inputs first".into(),
            });
        }
        for store in &self.stores {
            store.check(&self.digest)?;
        }
        run_in_process_with(
            &self.graph.predict,
            &self.predict_plans,
            inputs,
            self.timeout,
            &mut self.stores,
        )
    }
}

pub use crate::round::RUN_ROUNDS;

/// One party of a serving session, in its own process: its setup and prediction programs, plans
/// and store. Setup and the predictions run over one transport, in the same order at every
/// party; run `k` (setup is 0) uses a session id derived from the transport's and `k`, and
/// rounds `k * RUN_ROUNDS ..`, so runs never share randomness or batches.
#[derive(Debug)]
pub struct ServingParty {
    setup: Program,
    predict: Program,
    setup_plan: Plan,
    predict_plan: Plan,
    digest: [u8; 32],
    store: Store,
    runs: u32,
}

impl ServingParty {
    /// Party `party` of `graph`, not yet set up. The graph is checked first: its shapes and
    /// rounds within [`shareflow_compiler::limits`], and what each program lets leave its
    /// party ([`shareflow_compiler::verify_serving`]).
    pub fn new(graph: &ServingGraph, party: &str) -> Result<ServingParty> {
        let refused = |e: shareflow_compiler::CompileError| RuntimeError::Node {
            node: "serving graph".into(),
            message: e.to_string(),
        };
        graph.setup.check().map_err(refused)?;
        graph.predict.check().map_err(refused)?;
        shareflow_compiler::verify_serving(graph).map_err(refused)?;
        let program = |g: &shareflow_compiler::CompiledGraph| {
            g.program(party).cloned().map_err(|e| RuntimeError::Node {
                node: format!("party {party}"),
                message: e.to_string(),
            })
        };
        let (setup, predict) = (program(&graph.setup)?, program(&graph.predict)?);
        let (setup_plan, predict_plan) = (Plan::new(&setup)?, Plan::new(&predict)?);
        for plan in [&setup_plan, &predict_plan] {
            if plan.rounds.len() >= RUN_ROUNDS as usize {
                return Err(RuntimeError::Node {
                    node: format!("party {party}"),
                    message: format!("a program of more than {RUN_ROUNDS} rounds"),
                });
            }
        }
        Ok(ServingParty {
            setup,
            predict,
            setup_plan,
            predict_plan,
            digest: serving_digest(graph)?,
            store: Store::new(),
            runs: 0,
        })
    }

    /// Party `party` of `graph` with the store an earlier setup of the same graph filled;
    /// a store of another graph is refused.
    pub fn with_store(graph: &ServingGraph, party: &str, store: Store) -> Result<ServingParty> {
        let mut p = ServingParty::new(graph, party)?;
        store.check(&p.digest)?;
        p.store = store;
        Ok(p)
    }

    /// Per party (of `parties`), the largest batch either program receives from it (see
    /// [`Plan::largest_batches`]).
    pub fn largest_batches(&self, parties: usize) -> Vec<usize> {
        let setup = self.setup_plan.largest_batches(&self.setup, parties);
        let predict = self.predict_plan.largest_batches(&self.predict, parties);
        setup
            .into_iter()
            .zip(predict)
            .map(|(a, b)| a.max(b))
            .collect()
    }

    /// The digest of the serving graph (the stamp of the store).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The party's store: the values its setup kept for the predictions.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Takes the party's store, to keep it for a later session of the same graph.
    pub fn into_store(self) -> Store {
        self.store
    }

    /// Runs setup (this party's persistent inputs, if any) over `transport`; starts a fresh,
    /// stamped store.
    pub fn setup(
        &mut self,
        transport: &mut dyn Transport,
        inputs: &HashMap<String, ArrayD<f32>>,
        randomness: &Randomness,
    ) -> Result<PartyResult> {
        self.store = Store::stamped(self.digest);
        let mut run = RunTransport::new(transport, self.runs)?;
        self.runs += 1;
        run_party_full(
            &self.setup,
            &self.setup_plan,
            &mut run,
            inputs,
            &mut self.store,
            randomness,
        )
    }

    /// Runs one prediction (this party's fresh inputs, if any) over `transport`.
    pub fn predict(
        &mut self,
        transport: &mut dyn Transport,
        inputs: &HashMap<String, ArrayD<f32>>,
        randomness: &Randomness,
    ) -> Result<PartyResult> {
        self.store.check(&self.digest)?;
        let mut run = RunTransport::new(transport, self.runs)?;
        self.runs += 1;
        run_party_full(
            &self.predict,
            &self.predict_plan,
            &mut run,
            inputs,
            &mut self.store,
            randomness,
        )
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
                node: "serving party".into(),
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

    fn batch(&self, to: usize, round: u32) -> Batch {
        self.inner.batch(to, round + self.offset)
    }
}

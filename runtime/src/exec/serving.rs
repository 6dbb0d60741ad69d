//! A serving session: the setup program of a [`ServingGraph`] runs once (the model owner
//! shares its weights, the servers open them masked), then any number of predictions reuse
//! what setup stored. It is one use of a [`Session`] (in this process) or a [`SessionParty`]
//! (one party in its own process) with two programs, setup and predict: the persistent masked
//! weights are the session's stored state, like a training session's variables. Every run has
//! its own session id, so no PRG stream repeats across predictions.
//!
//! What serving adds to a session: the two programs are checked together
//! ([`shareflow_compiler::verify_serving`]: the setup's stored values carried into the
//! prediction's loads), and every store is stamped with [`serving_digest`], so that a store
//! from another serving graph is refused.

use std::collections::HashMap;
use std::time::Duration;

use ndarray::ArrayD;
use shareflow_compiler::ServingGraph;

use super::{InProcessRun, PartyResult, Randomness, Session, SessionParty, SessionProgram, Store};
use crate::transport::Transport;
use crate::{Result, RuntimeError};

pub use crate::round::RUN_ROUNDS;

/// SHA-256 of the serving graph's JSON (both programs): the stamp of its stores, and what the
/// parties of a serving session over QUIC check of each other.
pub fn serving_digest(graph: &ServingGraph) -> Result<[u8; 32]> {
    crate::party::json_digest("serving graph", graph)
}

/// Inputs by party name, then input name.
pub type Inputs = HashMap<String, HashMap<String, ArrayD<f32>>>;

/// Index of the setup program among a serving session's programs.
const SETUP: usize = 0;
/// Index of the prediction program among a serving session's programs.
const PREDICT: usize = 1;

/// A serving session in this process: a [`Session`] running the setup program once and the
/// prediction program any number of times.
#[derive(Debug)]
pub struct ServingSession {
    graph: ServingGraph,
    setup: SessionProgram,
    predict: SessionProgram,
    session: Session,
    set_up: bool,
    digest: [u8; 32],
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
        Ok(ServingSession {
            digest: serving_digest(&graph)?,
            setup: SessionProgram::new(graph.setup.clone())?,
            predict: SessionProgram::new(graph.predict.clone())?,
            session: Session::new(graph.setup.parties.clone(), timeout),
            set_up: false,
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
        if stores.len() != s.session.stores().len() {
            return Err(RuntimeError::Node {
                node: "serving session".into(),
                message: format!(
                    "{} stores for {} parties",
                    stores.len(),
                    s.session.stores().len()
                ),
            });
        }
        for (i, store) in stores.into_iter().enumerate() {
            store.check(&s.digest)?;
            s.session.restore(i, store)?;
        }
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
        self.session.stores()
    }

    /// Bounds every receive of every run.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.session.timeout = timeout;
    }

    /// Runs setup with the persistent parties' inputs (the weights); clears earlier stores.
    pub fn setup(&mut self, inputs: &Inputs) -> Result<InProcessRun> {
        for i in 0..self.session.stores().len() {
            self.session.restore(i, Store::stamped(self.digest))?;
        }
        self.set_up = false;
        let run = self.session.run(&self.setup, inputs)?;
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
        for store in self.session.stores() {
            store.check(&self.digest)?;
        }
        self.session.run(&self.predict, inputs)
    }
}

/// One party of a serving session, in its own process: a [`SessionParty`] of the setup and
/// prediction programs. Setup and the predictions run over one transport, in the same order at
/// every party; run `k` (setup is 0) uses a session id derived from the transport's and `k`,
/// and rounds `k * RUN_ROUNDS ..`, so runs never share randomness or batches (one
/// `ServingParty` per transport: the seeds set up once, the client's among them, are expanded
/// in each run's own domain).
#[derive(Debug)]
pub struct ServingParty {
    party: SessionParty,
    digest: [u8; 32],
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
        Ok(ServingParty {
            party: SessionParty::planned(&[&graph.setup, &graph.predict], party)?,
            digest: serving_digest(graph)?,
        })
    }

    /// Party `party` of `graph` with the store an earlier setup of the same graph filled;
    /// a store of another graph is refused.
    pub fn with_store(graph: &ServingGraph, party: &str, store: Store) -> Result<ServingParty> {
        let mut p = ServingParty::new(graph, party)?;
        store.check(&p.digest)?;
        p.party.restore(store);
        Ok(p)
    }

    /// Per party (of `parties`), the largest batch either program receives from it (see
    /// [`SessionParty::largest_batches`]).
    pub fn largest_batches(&self, parties: usize) -> Vec<usize> {
        self.party.largest_batches(parties)
    }

    /// The digest of the serving graph (the stamp of the store).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The party's store: the values its setup kept for the predictions.
    pub fn store(&self) -> &Store {
        self.party.store()
    }

    /// Takes the party's store, to keep it for a later session of the same graph.
    pub fn into_store(self) -> Store {
        self.party.into_store()
    }

    /// Runs setup (this party's persistent inputs, if any) over `transport`; starts a fresh,
    /// stamped store.
    pub fn setup(
        &mut self,
        transport: &mut dyn Transport,
        inputs: &HashMap<String, ArrayD<f32>>,
        randomness: &Randomness,
    ) -> Result<PartyResult> {
        self.party.restore(Store::stamped(self.digest));
        self.party.run(SETUP, transport, inputs, randomness)
    }

    /// Runs one prediction (this party's fresh inputs, if any) over `transport`.
    pub fn predict(
        &mut self,
        transport: &mut dyn Transport,
        inputs: &HashMap<String, ArrayD<f32>>,
        randomness: &Randomness,
    ) -> Result<PartyResult> {
        self.party.store().check(&self.digest)?;
        self.party.run(PREDICT, transport, inputs, randomness)
    }
}

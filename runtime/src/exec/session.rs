//! A session of secure programs in this process: every party keeps its [`Store`] across the
//! runs, so that one program's stored values (a training step's new variable shares) are the
//! next one's loads. The programs of one session share its parties (a training session: the
//! initialisation, the steps, the predictions from the still-shared model and, if asked, the
//! reveal of the weights).
//!
//! A run that fails at any party leaves every store as it was before the run (in process,
//! the stores are restored), so a session never holds a half-applied step.

use std::time::Duration;

use shareflow_compiler::CompiledGraph;

use super::serving::Inputs;
use super::{run_in_process_with, InProcessRun, Plan, Store};
use crate::{Result, RuntimeError};

/// A compiled program of a session and its plans.
#[derive(Debug, Clone)]
pub struct SessionProgram {
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

    /// Runs `program` with `inputs` (by party, then name; run-time parameters go to the
    /// servers that read them). Every party's store is restored if the run fails.
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

//! A serving session in this process: the setup program of a [`ServingGraph`] runs once (the
//! model owner shares its weights, the servers open them masked), then any number of
//! predictions reuse what setup stored. Every run has its own session id, so no PRG stream
//! repeats across predictions.

use std::collections::HashMap;
use std::time::Duration;

use ndarray::ArrayD;
use shareflow_compiler::ServingGraph;

use super::{run_in_process_with, InProcessRun, Plan, Store};
use crate::{Result, RuntimeError};

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
            setup_plans: plan(&graph.setup)?,
            predict_plans: plan(&graph.predict)?,
            stores: vec![Store::new(); graph.setup.parties.len()],
            set_up: false,
            timeout,
            graph,
        })
    }

    pub fn graph(&self) -> &ServingGraph {
        &self.graph
    }

    /// Each party's store (by party index).
    pub fn stores(&self) -> &[Store] {
        &self.stores
    }

    /// Runs setup with the persistent parties' inputs (the weights); clears earlier stores.
    pub fn setup(&mut self, inputs: &Inputs) -> Result<InProcessRun> {
        self.stores.iter_mut().for_each(|s| *s = Store::new());
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
        run_in_process_with(
            &self.graph.predict,
            &self.predict_plans,
            inputs,
            self.timeout,
            &mut self.stores,
        )
    }
}

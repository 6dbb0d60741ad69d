//! Who runs the secure aggregation of a round: the [`Aggregator`] trait, and its in-process
//! implementation (every party a thread of this process; the compiled graph and its plans made
//! once and run every round). One process per party over QUIC is in `shareflow fedavg`.

use std::collections::HashMap;
use std::time::Duration;

use ndarray::ArrayD;
use shareflow_compiler::{compile, CompileOptions, CompiledGraph, ProtocolKind};
use shareflow_graphs::zoo::MODEL_OWNER;

use super::aggregation::{mean_output, update_input, AggregationGraph};
use crate::data::Weights;
use crate::exec::{run_in_process, Plan};
use crate::{Result, RuntimeError};

/// What the model owner received from one secure aggregation, and what it cost.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// The mean of the owners' updates, per tensor.
    pub mean: Weights,
    /// Bytes sent by all parties.
    pub bytes: u64,
    /// Communication rounds.
    pub rounds: u32,
    /// From the start of the parties to the end of the last.
    pub wall_ms: f64,
}

/// Runs one secure aggregation of the owners' updates (one [`Weights`] per owner, in the
/// order of [`AggregationGraph::owners`]).
pub trait Aggregator {
    /// Its error; the FedAvg loop's own errors convert into it.
    type Error: From<RuntimeError>;
    fn aggregate(&mut self, updates: &[Weights]) -> std::result::Result<Aggregate, Self::Error>;
}

/// Each owner's inputs, by party name then input name: its update of every tensor.
pub fn owner_inputs(
    spec: &AggregationGraph,
    updates: &[Weights],
) -> Result<HashMap<String, HashMap<String, ArrayD<f32>>>> {
    if updates.len() != spec.owners.len() {
        return Err(RuntimeError::Node {
            node: "aggregation".into(),
            message: format!("{} updates for {} owners", updates.len(), spec.owners.len()),
        });
    }
    let mut out = HashMap::new();
    for (owner, update) in spec.owners.iter().zip(updates) {
        let mut inputs = HashMap::new();
        for t in &spec.tensors {
            let value = update.get(&t.name, &t.shape)?;
            inputs.insert(update_input(owner, &t.name), value.clone());
        }
        out.insert(owner.clone(), inputs);
    }
    Ok(out)
}

/// The mean as received by the model owner: `output(name)` gives the output `name`.
pub fn collect_mean(
    spec: &AggregationGraph,
    mut output: impl FnMut(&str) -> Result<ArrayD<f32>>,
) -> Result<Weights> {
    let mut mean = Weights::default();
    for t in &spec.tensors {
        mean.arrays
            .insert(t.name.clone(), output(&mean_output(&t.name))?);
    }
    Ok(mean)
}

/// The aggregation compiled once, every party a thread of this process.
pub struct InProcess {
    spec: AggregationGraph,
    compiled: CompiledGraph,
    plans: Vec<Plan>,
    timeout: Duration,
}

impl InProcess {
    /// Compiles `spec` for `protocol`.
    pub fn new(
        spec: AggregationGraph,
        protocol: ProtocolKind,
        options: CompileOptions,
    ) -> Result<InProcess> {
        let compiled = compile(&spec.graph, protocol, options)?;
        let plans = compiled
            .programs
            .iter()
            .map(Plan::new)
            .collect::<Result<Vec<_>>>()?;
        Ok(InProcess {
            spec,
            compiled,
            plans,
            timeout: Duration::from_secs(60),
        })
    }

    /// The compiled graph (its cost report: [`CompiledGraph::cost`]).
    pub fn compiled(&self) -> &CompiledGraph {
        &self.compiled
    }
}

impl Aggregator for InProcess {
    type Error = RuntimeError;

    fn aggregate(&mut self, updates: &[Weights]) -> Result<Aggregate> {
        let inputs = owner_inputs(&self.spec, updates)?;
        let run = run_in_process(&self.compiled, &self.plans, &inputs, self.timeout)?;
        let mean = collect_mean(&self.spec, |name| run.float(MODEL_OWNER, name).cloned())?;
        Ok(Aggregate {
            mean,
            bytes: run.bytes(),
            rounds: run.rounds(),
            wall_ms: run.wall_ms,
        })
    }
}

//! Who runs the secure aggregation of a round: the [`Aggregator`] trait, and its in-process
//! implementation (every party a thread of this process; the graph for a set of contributors
//! compiled and planned once, then run in every round with that set). One process per party
//! over QUIC is in `shareflow fedavg`.

use std::collections::HashMap;
use std::time::Duration;

use ndarray::ArrayD;
use shareflow_compiler::{compile, CompileOptions, CompiledGraph, ProtocolKind};
use shareflow_graphs::zoo::MODEL_OWNER;

use super::aggregation::{
    aggregation_graph, mean_output, update_input, AggregationGraph, TensorSpec,
};
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

/// One owner's update: its party name and its update of every tensor.
pub type Contribution = (String, Weights);

/// Runs one secure aggregation of the updates of the owners that contribute to a round (the
/// others are left out: the graph is built for the contributors, whose names are public).
pub trait Aggregator {
    /// Its error; the FedAvg loop's own errors convert into it.
    type Error: From<RuntimeError>;
    /// Aggregates the contributions (the owners' updates) into their means.
    fn aggregate(
        &mut self,
        contributions: &[Contribution],
    ) -> std::result::Result<Aggregate, Self::Error>;
}

/// The names of the contributing owners, in order.
pub fn contributors(contributions: &[Contribution]) -> Vec<String> {
    contributions.iter().map(|(o, _)| o.clone()).collect()
}

/// Each owner's inputs, by party name then input name: its update of every tensor of `spec`
/// (built for exactly these owners, in this order).
pub fn owner_inputs(
    spec: &AggregationGraph,
    contributions: &[Contribution],
) -> Result<HashMap<String, HashMap<String, ArrayD<f32>>>> {
    if contributors(contributions) != spec.owners {
        return Err(RuntimeError::Node {
            node: "aggregation".into(),
            message: format!(
                "updates of {:?} for a graph of {:?}",
                contributors(contributions),
                spec.owners
            ),
        });
    }
    let mut out = HashMap::new();
    for (owner, update) in contributions {
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

/// The aggregation graph of one set of contributors, compiled.
pub struct Compiled {
    /// The aggregation graph it was compiled from.
    pub spec: AggregationGraph,
    /// The compiled program of every party.
    pub compiled: CompiledGraph,
}

/// Compiles the aggregation of `tensors` over `owners`.
pub fn compile_for(
    tensors: &[TensorSpec],
    owners: &[String],
    protocol: ProtocolKind,
    options: CompileOptions,
) -> Result<Compiled> {
    let spec = aggregation_graph(tensors, owners)?;
    let compiled = compile(&spec.graph, protocol, options)?;
    Ok(Compiled { spec, compiled })
}

/// The aggregation with every party a thread of this process; the graph of each set of
/// contributors is compiled and planned the first time it is met.
pub struct InProcess {
    tensors: Vec<TensorSpec>,
    protocol: ProtocolKind,
    options: CompileOptions,
    graphs: HashMap<Vec<String>, (Compiled, Vec<Plan>)>,
    timeout: Duration,
}

impl InProcess {
    /// Aggregates `tensors` under `protocol`.
    pub fn new(tensors: &[TensorSpec], protocol: ProtocolKind, options: CompileOptions) -> Self {
        InProcess {
            tensors: tensors.to_vec(),
            protocol,
            options,
            graphs: HashMap::new(),
            timeout: Duration::from_secs(60),
        }
    }

    /// The compiled graph for the contributors `owners` (its cost report:
    /// [`CompiledGraph::cost`]).
    pub fn compiled(&mut self, owners: &[String]) -> Result<&CompiledGraph> {
        Ok(&self.planned(owners)?.0.compiled)
    }

    fn planned(&mut self, owners: &[String]) -> Result<&(Compiled, Vec<Plan>)> {
        if !self.graphs.contains_key(owners) {
            let c = compile_for(&self.tensors, owners, self.protocol, self.options)?;
            let plans = c
                .compiled
                .programs
                .iter()
                .map(Plan::new)
                .collect::<Result<Vec<_>>>()?;
            self.graphs.insert(owners.to_vec(), (c, plans));
        }
        self.graphs.get(owners).ok_or_else(|| RuntimeError::Node {
            node: "aggregation".into(),
            message: "no compiled graph".into(),
        })
    }
}

impl Aggregator for InProcess {
    type Error = RuntimeError;

    fn aggregate(&mut self, contributions: &[Contribution]) -> Result<Aggregate> {
        let timeout = self.timeout;
        let (c, plans) = self.planned(&contributors(contributions))?;
        let inputs = owner_inputs(&c.spec, contributions)?;
        let run = run_in_process(&c.compiled, plans, &inputs, timeout)?;
        let mean = collect_mean(&c.spec, |name| run.float(MODEL_OWNER, name).cloned())?;
        Ok(Aggregate {
            mean,
            bytes: run.bytes(),
            rounds: run.rounds(),
            wall_ms: run.wall_ms,
        })
    }
}

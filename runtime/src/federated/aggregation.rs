//! The logical graph of one secure aggregation: every data owner gives its update of every
//! named tensor as a private input, the servers add the contributions and scale the sum by the
//! public `1/K`, and only the model owner receives the mean.
//!
//! Owner `i` (`owner-1` ... `owner-K`) gives tensor `t` as the input `owner-i/update/t`; the
//! model owner receives it as the output `mean/t`. The owners receive nothing, and the
//! servers, which the compiler adds, see the inputs only as shares. A graph is built for the
//! owners that contribute to one round: their names, and so their count `K`, are public.

use shareflow_graphs::zoo::MODEL_OWNER;
use shareflow_graphs::{Graph, GraphBuilder};

use crate::{Result, RuntimeError};

/// The name of data owner `i` (from 0): `owner-{i+1}`.
pub fn owner_name(i: usize) -> String {
    format!("owner-{}", i + 1)
}

/// The input under which `owner` gives its update of `tensor`.
pub fn update_input(owner: &str, tensor: &str) -> String {
    format!("{owner}/update/{tensor}")
}

/// The output under which the model owner receives the mean of `tensor`.
pub fn mean_output(tensor: &str) -> String {
    format!("mean/{tensor}")
}

/// A named tensor of the model: its name and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// The tensor's name (e.g. `fc1/w`).
    pub name: String,
    /// The tensor's shape.
    pub shape: Vec<usize>,
}

/// The aggregation graph and what it was built for.
#[derive(Debug, Clone)]
pub struct AggregationGraph {
    /// The logical graph: each owner inputs its update, the model owner receives the means.
    pub graph: Graph,
    /// The contributing owners' party names, in input order.
    pub owners: Vec<String>,
    /// The model's tensors, in the order the graph takes them.
    pub tensors: Vec<TensorSpec>,
}

/// The graph that averages `tensors` over the data owners named `owners` (at least one) for
/// the model owner.
pub fn aggregation_graph(tensors: &[TensorSpec], owners: &[String]) -> Result<AggregationGraph> {
    if owners.is_empty() || tensors.is_empty() {
        return Err(RuntimeError::Node {
            node: "aggregation".into(),
            message: format!(
                "needs at least one owner and one tensor ({} owners, {} tensors)",
                owners.len(),
                tensors.len()
            ),
        });
    }
    let g = GraphBuilder::new();
    let model_owner = g.party(MODEL_OWNER);
    let names = owners.to_vec();
    let parties: Vec<_> = names.iter().map(|n| g.party(n)).collect();
    // 1/K as a public constant: the scaling is local to the servers (one truncation).
    let scale = g.constant([], vec![1.0 / owners.len() as f32]);
    for t in tensors {
        let mut sum = None;
        for (name, &party) in names.iter().zip(&parties) {
            let update = g.input(party, &update_input(name, &t.name), t.shape.clone());
            sum = Some(match sum {
                None => update,
                Some(s) => update.add(&s),
            });
        }
        if let Some(sum) = sum {
            sum.mul(&scale)
                .output_to(model_owner, &mean_output(&t.name));
        }
    }
    Ok(AggregationGraph {
        graph: g.build()?,
        owners: names,
        tensors: tensors.to_vec(),
    })
}

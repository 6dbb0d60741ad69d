//! `shareflow inspect`: a network's layers, shapes and parameter count (for an ONNX model:
//! its operators and the weights it imports as; for a user's graph: its nodes and the model
//! owner's inputs, and with `--weights` the `.npz` checked against them).

use std::path::PathBuf;

use shareflow_graphs::zoo::ZooModel;
use shareflow_graphs::Op;

use super::network::Network;
use crate::report::Report;
use crate::Result;

/// Parameters by name, with their shapes.
type ParamShapes = Vec<(String, Vec<usize>)>;

/// Prints (or with `json`, reports) the network's layers, graph nodes and parameters, after
/// checking `weights` (if given) against the network.
pub fn run(model: Network, weights: Option<PathBuf>, json: bool) -> Result<()> {
    if weights.is_some() {
        model.weights(weights)?;
    }
    let built = model.build(model.fixed_batch().unwrap_or(1))?;
    let (origin, layers, params): (String, Vec<String>, ParamShapes) = match &model {
        Network::Zoo(kind) => (
            kind.origin().to_string(),
            kind.layers().layers.iter().map(|l| l.describe()).collect(),
            ZooModel::build(*kind, 1)?
                .params
                .into_iter()
                .map(|p| (p.name, p.shape))
                .collect(),
        ),
        Network::Onnx(m) => {
            let imported = m.import(1)?;
            let graph = m.proto().graph.as_ref();
            let layers = graph
                .map(|g| {
                    g.node
                        .iter()
                        .map(|n| format!("{}: {}", n.name(), n.op_type()))
                        .collect()
                })
                .unwrap_or_default();
            (
                format!(
                    "ONNX, opset {}, from {}",
                    m.opset(),
                    m.proto().producer_name()
                ),
                layers,
                imported
                    .weights
                    .iter()
                    .map(|(k, v)| (k.clone(), v.shape().to_vec()))
                    .collect(),
            )
        }
        Network::Graph(g) => (
            format!("logical graph, batch {}", g.batch()),
            g.graph
                .topo_order()?
                .into_iter()
                .filter_map(|id| g.graph.node(id).ok())
                .filter(|n| !matches!(n.op, Op::Input { .. } | Op::Output { .. }))
                .map(|n| format!("{}: {}", n.name, n.op.name()))
                .collect(),
            g.params.clone(),
        ),
    };
    let count: usize = params
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    let g = &built.graph;
    let mut nodes = Vec::new();
    for id in g.topo_order()? {
        let n = g.node(id)?;
        if matches!(n.op, Op::Input { .. }) && id != built.image {
            continue;
        }
        nodes.push((n.name.clone(), n.op.name(), n.shape.clone()));
    }
    if json {
        let mut r = Report::new();
        r.set("model", model.to_string())
            .set("origin", origin)
            .set("parameters", count)
            .set("layers", layers)
            .set(
                "nodes",
                nodes
                    .iter()
                    .map(|(n, op, s)| serde_json::json!({"name": n, "op": op, "shape": s.dims()}))
                    .collect::<Vec<_>>(),
            )
            .set(
                "params",
                params
                    .iter()
                    .map(|(name, shape)| serde_json::json!({"name": name, "shape": shape}))
                    .collect::<Vec<_>>(),
            );
        r.print(true);
        return Ok(());
    }
    println!("network {model} ({origin}), {count} parameters");
    println!("layers:");
    for l in &layers {
        println!("  {l}");
    }
    println!("nodes (batch {}):", built.input_shape[0]);
    for (name, op, shape) in nodes {
        println!("  {name:<24} {op:<10} {shape}");
    }
    for (name, shape) in &params {
        println!(
            "  param {:<18} {:?} ({} values)",
            name,
            shape,
            shape.iter().product::<usize>()
        );
    }
    Ok(())
}

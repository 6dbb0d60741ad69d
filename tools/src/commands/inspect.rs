//! `shareflow inspect`: a network's layers, shapes and parameter count.

use shareflow_graphs::zoo::{ModelKind, ZooModel};
use shareflow_graphs::Op;

use crate::report::Report;
use crate::Result;

pub fn run(model: ModelKind, json: bool) -> Result<()> {
    let zoo = ZooModel::build(model, 1)?;
    let layers = model.layers();
    let params: usize = zoo
        .params
        .iter()
        .map(|p| p.shape.iter().product::<usize>())
        .sum();
    let g = &zoo.graph;
    let mut nodes = Vec::new();
    for id in g.topo_order()? {
        let n = g.node(id)?;
        if matches!(n.op, Op::Input { .. }) && id != zoo.image {
            continue;
        }
        nodes.push((n.name.clone(), n.op.name(), n.shape.clone()));
    }
    if json {
        let mut r = Report::new();
        r.set("model", model.to_string())
            .set("origin", model.origin())
            .set("parameters", params)
            .set(
                "layers",
                layers
                    .layers
                    .iter()
                    .map(|l| l.describe())
                    .collect::<Vec<_>>(),
            )
            .set(
                "nodes",
                nodes
                    .iter()
                    .map(|(n, op, s)| serde_json::json!({"name": n, "op": op, "shape": s.dims()}))
                    .collect::<Vec<_>>(),
            )
            .set(
                "params",
                zoo.params
                    .iter()
                    .map(|p| serde_json::json!({"name": p.name, "shape": p.shape}))
                    .collect::<Vec<_>>(),
            );
        r.print(true);
        return Ok(());
    }
    println!("network {model} ({}), {params} parameters", model.origin());
    println!("layers:");
    for l in &layers.layers {
        println!("  {}", l.describe());
    }
    println!("nodes (batch 1):");
    for (name, op, shape) in nodes {
        println!("  {name:<24} {op:<10} {shape}");
    }
    for p in &zoo.params {
        println!(
            "  param {:<18} {:?} ({} values)",
            p.name,
            p.shape,
            p.shape.iter().product::<usize>()
        );
    }
    Ok(())
}

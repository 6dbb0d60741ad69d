//! Graphviz DOT drawings of logical graphs.
//!
//! Nodes are filled with the colour of the party that owns them (public values white, shared
//! values gold); edges carry the shape of the value they move; an edge along which a value
//! changes owner (a private input entering shared computation, an output revealed to a party)
//! is drawn bold, dashed and red.

use std::fmt::Write;

use crate::graph::Graph;
use crate::op::Op;
use crate::types::Visibility;

/// Fill colours for parties, by party id (repeats past the end).
pub const PARTY_COLOURS: [&str; 8] = [
    "#8dd3c7", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5", "#bc80bd",
];
const SHARED_COLOUR: &str = "#ffd700";
const PUBLIC_COLOUR: &str = "#ffffff";

/// Escapes a string for a double-quoted DOT id or label.
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn colour(v: Visibility) -> &'static str {
    match v {
        Visibility::Public => PUBLIC_COLOUR,
        Visibility::Shared => SHARED_COLOUR,
        Visibility::Private(p) => PARTY_COLOURS[p.index() % PARTY_COLOURS.len()],
    }
}

/// The graph as DOT.
pub fn to_dot(graph: &Graph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph shareflow {{");
    let _ = writeln!(out, "  rankdir=TB;");
    let _ = writeln!(
        out,
        "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];"
    );
    let _ = writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=9];");
    // A legend: one entry per party, plus public and shared.
    let _ = writeln!(
        out,
        "  subgraph cluster_legend {{ label=\"owners\"; fontsize=10;"
    );
    for (i, p) in graph.parties().iter().enumerate() {
        let _ = writeln!(
            out,
            "    legend_{i} [label=\"{}\", fillcolor=\"{}\"];",
            escape(p),
            PARTY_COLOURS[i % PARTY_COLOURS.len()]
        );
    }
    let _ = writeln!(
        out,
        "    legend_shared [label=\"shared\", fillcolor=\"{SHARED_COLOUR}\"];"
    );
    let _ = writeln!(
        out,
        "    legend_public [label=\"public\", fillcolor=\"{PUBLIC_COLOUR}\"];"
    );
    let _ = writeln!(out, "  }}");
    for (id, node) in graph.nodes() {
        let detail = match &node.op {
            Op::Input { party, .. } => format!("input of {}", graph.party_name(*party)),
            Op::Output { party, .. } => format!("output to {}", graph.party_name(*party)),
            Op::Variable {
                trainable: false, ..
            } => "variable (frozen)".into(),
            op => op.name().to_string(),
        };
        let _ = writeln!(
            out,
            "  {id} [label=\"{}\\n{}\", fillcolor=\"{}\"];",
            escape(&node.name),
            escape(&detail),
            colour(node.visibility)
        );
    }
    for (id, node) in graph.nodes() {
        for input in graph.inputs(id) {
            let Ok(src) = graph.node(input) else { continue };
            let crosses =
                src.visibility != node.visibility && !matches!(src.visibility, Visibility::Public);
            let style = if crosses {
                ", color=\"#d62728\", style=\"bold,dashed\", penwidth=2"
            } else {
                ""
            };
            let _ = writeln!(out, "  {input} -> {id} [label=\"{}\"{style}];", src.shape);
        }
    }
    let _ = writeln!(out, "}}");
    out
}

impl Graph {
    /// See [`to_dot`].
    pub fn to_dot(&self) -> String {
        to_dot(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::zoo::{ModelKind, ZooModel};

    #[test]
    fn draws_every_node_and_marks_crossings() {
        let m = ZooModel::build(ModelKind::D, 1).unwrap();
        let dot = m.graph.to_dot();
        assert!(dot.starts_with("digraph shareflow {"));
        assert_eq!(
            dot.matches("->").count(),
            m.graph
                .nodes()
                .map(|(id, _)| m.graph.inputs(id).len())
                .sum::<usize>()
        );
        // The image and every parameter enter shared computation, and the logits leave it.
        let crossings = dot.matches("style=\"bold,dashed\"").count();
        assert_eq!(crossings, 1 + m.params.len() + 1);
        assert!(dot.contains("label=\"[1,28,28,1]\""));
    }
}

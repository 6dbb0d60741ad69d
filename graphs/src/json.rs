//! Versioned JSON for graphs.
//!
//! ```json
//! {"format": "shareflow-graph", "version": 1, "parties": ["model-owner", "client"],
//!  "nodes": [{"id": 0, "name": "image", "op": {"op": "input", "party": 1, "name": "image"},
//!             "inputs": [], "shape": [1, 784], "dtype": "float"}, ...]}
//! ```
//!
//! Node ids are kept exactly. Visibilities are derived, not stored: loading re-validates the
//! whole graph (parties, cycles, shapes, names of inputs and outputs) and reports the node or
//! field at fault. A `frac_bits` field (written by earlier builds) is refused: the precision
//! is a compile option, and a graph that silently lost it would compute at another one.

use serde::{Deserialize, Serialize};

use crate::error::GraphError;
use crate::graph::{Graph, Node};
use crate::op::Op;
use crate::types::{DType, Shape, Visibility};
use crate::NodeId;

/// The format name in every graph file.
pub const FORMAT: &str = "shareflow-graph";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GraphFile {
    format: String,
    version: u32,
    parties: Vec<String>,
    /// Refused when present (see the module docs).
    #[serde(default, skip_serializing)]
    frac_bits: Option<u32>,
    nodes: Vec<NodeFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    id: NodeId,
    #[serde(default)]
    name: String,
    op: Op,
    #[serde(default)]
    inputs: Vec<NodeId>,
    #[serde(default)]
    shape: Shape,
    #[serde(default = "default_dtype")]
    dtype: DType,
}

fn default_dtype() -> DType {
    DType::Float
}

/// The graph as pretty JSON.
pub fn to_json(graph: &Graph) -> Result<String, GraphError> {
    let file = GraphFile {
        format: FORMAT.into(),
        version: VERSION,
        parties: graph.parties().to_vec(),
        frac_bits: None,
        nodes: graph
            .nodes()
            .map(|(id, n)| NodeFile {
                id,
                name: n.name.clone(),
                op: n.op.clone(),
                inputs: graph.inputs(id),
                shape: n.shape.clone(),
                dtype: n.dtype,
            })
            .collect(),
    };
    serde_json::to_string_pretty(&file).map_err(|e| GraphError::Json {
        message: e.to_string(),
    })
}

/// Loads and validates a graph from JSON.
pub fn from_json(text: &str) -> Result<Graph, GraphError> {
    let file: GraphFile = serde_json::from_str(text).map_err(|e| GraphError::Json {
        message: e.to_string(),
    })?;
    if file.format != FORMAT {
        return Err(GraphError::Json {
            message: format!("field `format` is {:?}, expected {FORMAT:?}", file.format),
        });
    }
    if file.version != VERSION {
        return Err(GraphError::Version {
            found: file.version,
            supported: VERSION,
        });
    }
    // Ids may have gaps, which loading fills with placeholders: bound them by the node count.
    let limit = file.nodes.len().saturating_mul(4).saturating_add(1024);
    if let Some(n) = file.nodes.iter().find(|n| n.id.index() >= limit) {
        return Err(GraphError::Json {
            message: format!(
                "node id {} is too large for {} nodes (ids must be below {limit})",
                n.id.0,
                file.nodes.len()
            ),
        });
    }
    if let Some(f) = file.frac_bits {
        return Err(GraphError::Json {
            message: format!(
                "field `frac_bits` ({f}): the fixed-point precision is a compile option \
                 (CompileOptions::frac_bits, --frac-bits), not part of a graph; remove the field"
            ),
        });
    }
    let mut graph = Graph::with_parties(file.parties)?;
    let mut edges = Vec::new();
    let mut nodes = Vec::with_capacity(file.nodes.len());
    for n in file.nodes {
        for (slot, &input) in n.inputs.iter().enumerate() {
            edges.push((input, n.id, slot));
        }
        let node = Node {
            name: n.name,
            op: n.op,
            shape: n.shape,
            dtype: n.dtype,
            visibility: Visibility::Shared,
        };
        nodes.push((n.id, node));
    }
    graph.insert_at(nodes)?;
    for (from, to, slot) in edges {
        graph.connect(from, to, slot)?;
    }
    graph.validate()?;
    Ok(graph)
}

impl Graph {
    /// See [`to_json`].
    pub fn to_json(&self) -> Result<String, GraphError> {
        to_json(self)
    }
    /// See [`from_json`].
    pub fn from_json(text: &str) -> Result<Graph, GraphError> {
        from_json(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::GraphBuilder;
    use crate::zoo::{ModelKind, ZooModel};

    #[test]
    fn every_zoo_network_round_trips() {
        for kind in ModelKind::ALL {
            let model = ZooModel::build(kind, 2).unwrap();
            let text = model.graph.to_json().unwrap();
            let back = from_json(&text).unwrap();
            assert_eq!(back.to_json().unwrap(), text, "network {kind:?}");
            assert_eq!(back.len(), model.graph.len());
            for (id, n) in model.graph.nodes() {
                assert_eq!(back.node(id).unwrap(), n);
                assert_eq!(back.inputs(id), model.graph.inputs(id));
            }
        }
    }

    fn small_graph_json() -> String {
        let g = GraphBuilder::new();
        let a = g.party("alice");
        let x = g.input(a, "x", [2, 3]);
        let w = g.constant([3, 1], vec![1.0, 2.0, 3.0]);
        x.matmul(&w).output_to(a, "y");
        g.build().unwrap().to_json().unwrap()
    }

    #[test]
    fn malformed_json_names_the_position() {
        let text = small_graph_json();
        let broken = &text[..text.len() / 2];
        let err = from_json(broken).unwrap_err();
        assert!(matches!(err, GraphError::Json { .. }));
        assert!(err.to_string().contains("line"), "{err}");
    }

    #[test]
    fn missing_field_is_named() {
        let text = small_graph_json().replace("\"parties\"", "\"people\"");
        let err = from_json(&text).unwrap_err().to_string();
        assert!(err.contains("people") || err.contains("parties"), "{err}");
    }

    #[test]
    fn shape_error_names_the_node() {
        let text = small_graph_json().replacen(
            "[\n        3,\n        1\n      ]",
            "[\n        4,\n        1\n      ]",
            1,
        );
        assert_ne!(
            text,
            small_graph_json(),
            "the constant's shape was rewritten"
        );
        let err = from_json(&text).unwrap_err();
        // The constant now has 3 values for a [4,1] shape.
        assert!(matches!(err, GraphError::Shape { .. }), "{err}");
        assert!(err.to_string().contains("n1"), "{err}");
    }

    #[test]
    fn unknown_party_names_the_node() {
        let text = small_graph_json().replace("\"party\": 0", "\"party\": 7");
        let err = from_json(&text).unwrap_err();
        assert!(
            matches!(err, GraphError::UnknownParty { ref node, .. } if node.contains("'x'")),
            "{err}"
        );
        let text = small_graph_json();
        let out_only = text
            .rsplit_once("\"party\": 0")
            .map(|(a, b)| format!("{a}\"party\": 3{b}"))
            .unwrap();
        let err = from_json(&out_only).unwrap_err();
        assert!(
            matches!(err, GraphError::OutputToUnknownParty { .. }),
            "{err}"
        );
    }

    #[test]
    fn cycle_is_reported() {
        // Make the matmul (n2) take its own output as first input.
        let text = small_graph_json();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["nodes"][2]["inputs"][0] = serde_json::json!(3);
        let err = from_json(&v.to_string()).unwrap_err();
        assert!(matches!(err, GraphError::Cycle { .. }), "{err}");
    }

    #[test]
    fn dangling_input_is_reported() {
        let mut v: serde_json::Value = serde_json::from_str(&small_graph_json()).unwrap();
        v["nodes"][2]["inputs"][1] = serde_json::json!(42);
        let err = from_json(&v.to_string()).unwrap_err();
        assert!(matches!(err, GraphError::UnknownNode { .. }), "{err}");
        assert!(err.to_string().contains("n42"), "{err}");
    }

    #[test]
    fn wrong_version_is_refused() {
        let text = small_graph_json().replace("\"version\": 1", "\"version\": 9");
        assert!(matches!(
            from_json(&text).unwrap_err(),
            GraphError::Version { found: 9, .. }
        ));
    }

    #[test]
    fn a_huge_node_id_is_refused_without_filling_the_gap() {
        // Loading added a placeholder node for every missing id below the largest one.
        let mut v: serde_json::Value = serde_json::from_str(&small_graph_json()).unwrap();
        v["nodes"][3]["id"] = serde_json::json!(u32::MAX);
        let err = from_json(&v.to_string()).unwrap_err().to_string();
        assert!(err.contains("node id 4294967295 is too large"), "{err}");
    }

    #[test]
    fn ids_with_gaps_survive() {
        let mut v: serde_json::Value = serde_json::from_str(&small_graph_json()).unwrap();
        // Renumber node 3 (the output) to 10.
        v["nodes"][3]["id"] = serde_json::json!(10);
        let g = from_json(&v.to_string()).unwrap();
        assert!(g.contains(NodeId(10)));
        assert!(!g.contains(NodeId(5)));
        assert_eq!(g.inputs(NodeId(10)), vec![NodeId(2)]);
    }

    #[test]
    fn duplicate_names_are_refused_at_load() {
        // Rename the input `x` of a two-input graph to `w`: two inputs named `w`.
        let g = GraphBuilder::new();
        let a = g.party("alice");
        let x = g.input(a, "x", [2]);
        let w = g.input(a, "w", [2]);
        let _ = (&x + &w).output_to(a, "y");
        let _ = x.output_to(a, "z");
        let text = g.build().unwrap().to_json().unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["nodes"][0]["op"]["name"] = serde_json::json!("w");
        let err = from_json(&v.to_string()).unwrap_err();
        assert!(
            matches!(&err, GraphError::DuplicateInput { name, .. } if name == "w"),
            "{err}"
        );
        // Rename the output `z` to `y`: two outputs `y` to alice.
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let last = v["nodes"].as_array().unwrap().len() - 1;
        v["nodes"][last]["op"]["name"] = serde_json::json!("y");
        let err = from_json(&v.to_string()).unwrap_err();
        assert!(
            matches!(&err, GraphError::DuplicateOutput { name, party, .. }
                if name == "y" && party == "alice"),
            "{err}"
        );
    }

    #[test]
    fn frac_bits_in_a_graph_file_is_refused() {
        let mut v: serde_json::Value = serde_json::from_str(&small_graph_json()).unwrap();
        assert!(v.get("frac_bits").is_none(), "no longer written");
        v["frac_bits"] = serde_json::json!(12);
        let err = from_json(&v.to_string()).unwrap_err().to_string();
        assert!(
            err.contains("frac_bits") && err.contains("compile option"),
            "{err}"
        );
    }
}

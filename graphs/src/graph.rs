//! The validated logical graph.

use std::collections::HashMap;

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::error::GraphError;
use crate::infer::{infer, InputInfo};
use crate::op::Op;
use crate::types::{DType, Shape, Visibility};
use crate::{NodeId, PartyId};

/// The most elements a tensor of a graph may have (2^40): the protocols widen a value up to 64
/// times (bit decompositions) and store 8 bytes per element, which must still fit in a `u64`.
pub const MAX_ELEMENTS: u64 = 1 << 40;

/// One node of the logical graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// A human-readable name (layer path, input name); not an identity.
    pub name: String,
    /// What the node computes.
    pub op: Op,
    /// The shape of its value.
    pub shape: Shape,
    /// The element type of its value.
    pub dtype: DType,
    /// Who may see its value (public, one party, or secret-shared).
    pub visibility: Visibility,
}

/// A static dataflow graph: nodes with typed ids over petgraph, and the parties that own
/// inputs and receive outputs. Edges carry the input slot they fill.
///
/// The graph says nothing of how it is computed: the fixed-point precision, like everything
/// else a protocol needs, is a compile option (`CompileOptions::frac_bits` of
/// `shareflow-compiler`).
#[derive(Debug, Clone)]
pub struct Graph {
    parties: Vec<String>,
    inner: StableDiGraph<Node, u16>,
}

impl Graph {
    /// An empty graph with no parties.
    pub(crate) fn empty() -> Self {
        Graph {
            parties: Vec::new(),
            inner: StableDiGraph::new(),
        }
    }

    /// An empty graph with these parties.
    pub(crate) fn with_parties(parties: Vec<String>) -> Result<Self, GraphError> {
        let mut g = Graph::empty();
        for p in parties {
            g.add_party(p)?;
        }
        Ok(g)
    }

    /// Declares a party; its id is its position.
    pub(crate) fn add_party(&mut self, name: String) -> Result<PartyId, GraphError> {
        if self.parties.contains(&name) {
            return Err(GraphError::DuplicateParty { party: name });
        }
        self.parties.push(name);
        Ok(PartyId((self.parties.len() - 1) as u16))
    }

    /// Adds a node without checking it (the caller validates).
    pub(crate) fn push(&mut self, node: Node, inputs: &[NodeId]) -> NodeId {
        let idx = self.inner.add_node(node);
        for (slot, &i) in inputs.iter().enumerate() {
            self.inner
                .add_edge(NodeIndex::new(i.index()), idx, slot as u16);
        }
        NodeId(idx.index() as u32)
    }

    /// Adds nodes at the given ids (a loaded graph keeps its ids); ids absent from the list
    /// stay vacant. Only for an empty graph.
    pub(crate) fn insert_at(&mut self, mut nodes: Vec<(NodeId, Node)>) -> Result<(), GraphError> {
        nodes.sort_by_key(|(id, _)| *id);
        let mut gaps = Vec::new();
        let mut next = 0usize;
        for (id, node) in nodes {
            if id.index() < next {
                return Err(GraphError::Json {
                    message: format!("node id {} appears twice", id.0),
                });
            }
            while next < id.index() {
                gaps.push(self.inner.add_node(node.clone()));
                next += 1;
            }
            self.inner.add_node(node);
            next += 1;
        }
        for g in gaps {
            self.inner.remove_node(g);
        }
        Ok(())
    }

    pub(crate) fn connect(
        &mut self,
        from: NodeId,
        to: NodeId,
        slot: usize,
    ) -> Result<(), GraphError> {
        if !self.contains(from) {
            return Err(GraphError::UnknownNode {
                node: self.label(to),
                input: from.to_string(),
            });
        }
        self.inner.add_edge(
            NodeIndex::new(from.index()),
            NodeIndex::new(to.index()),
            slot as u16,
        );
        Ok(())
    }

    /// The parties, in [`PartyId`] order.
    pub fn parties(&self) -> &[String] {
        &self.parties
    }

    /// A party's name (`"?"` for an id the graph does not have).
    pub fn party_name(&self, p: PartyId) -> &str {
        self.parties
            .get(p.index())
            .map(String::as_str)
            .unwrap_or("?")
    }

    /// The id of a party by name.
    pub fn party(&self, name: &str) -> Option<PartyId> {
        self.parties
            .iter()
            .position(|p| p == name)
            .map(|i| PartyId(i as u16))
    }

    /// Whether `id` is a node of this graph.
    pub fn contains(&self, id: NodeId) -> bool {
        self.inner.contains_node(NodeIndex::new(id.index()))
    }

    /// A node, or an error naming the id.
    pub fn node(&self, id: NodeId) -> Result<&Node, GraphError> {
        self.inner
            .node_weight(NodeIndex::new(id.index()))
            .ok_or_else(|| GraphError::UnknownNode {
                node: "graph".into(),
                input: id.to_string(),
            })
    }

    pub(crate) fn node_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.inner.node_weight_mut(NodeIndex::new(id.index()))
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.inner.node_count()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.inner.node_count() == 0
    }

    /// All nodes in id order.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> + '_ {
        self.inner
            .node_indices()
            .map(move |i| (NodeId(i.index() as u32), &self.inner[i]))
    }

    /// The inputs of a node, in slot order.
    pub fn inputs(&self, id: NodeId) -> Vec<NodeId> {
        let mut edges: Vec<(u16, NodeId)> = self
            .inner
            .edges_directed(NodeIndex::new(id.index()), Direction::Incoming)
            .map(|e| (*e.weight(), NodeId(e.source().index() as u32)))
            .collect();
        edges.sort_unstable();
        edges.into_iter().map(|(_, n)| n).collect()
    }

    /// The nodes that use a node, each once.
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut users: Vec<NodeId> = self
            .inner
            .neighbors_directed(NodeIndex::new(id.index()), Direction::Outgoing)
            .map(|i| NodeId(i.index() as u32))
            .collect();
        users.sort_unstable();
        users.dedup();
        users
    }

    /// `n3 'dense1/kernel'`: how errors name a node.
    pub fn label(&self, id: NodeId) -> String {
        match self.inner.node_weight(NodeIndex::new(id.index())) {
            Some(n) if !n.name.is_empty() => format!("{id} '{}'", n.name),
            _ => id.to_string(),
        }
    }

    /// A node by its name.
    pub fn find(&self, name: &str) -> Result<NodeId, GraphError> {
        self.nodes()
            .find(|(_, n)| n.name == name)
            .map(|(id, _)| id)
            .ok_or_else(|| GraphError::NoSuchName { name: name.into() })
    }

    /// Nodes in an order where every node comes after its inputs, or the cycle error.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, GraphError> {
        petgraph::algo::toposort(&self.inner, None)
            .map(|order| {
                order
                    .into_iter()
                    .map(|i| NodeId(i.index() as u32))
                    .collect()
            })
            .map_err(|c| GraphError::Cycle {
                node: self.label(NodeId(c.node_id().index() as u32)),
            })
    }

    /// The input nodes (`Op::Input`) of the graph, in id order.
    pub fn input_nodes(&self) -> Vec<NodeId> {
        self.nodes()
            .filter(|(_, n)| matches!(n.op, Op::Input { .. }))
            .map(|(id, _)| id)
            .collect()
    }

    /// The output nodes (`Op::Output`) of the graph, in id order.
    pub fn output_nodes(&self) -> Vec<NodeId> {
        self.nodes()
            .filter(|(_, n)| matches!(n.op, Op::Output { .. }))
            .map(|(id, _)| id)
            .collect()
    }

    /// The variable nodes (`Op::Variable`) of the graph, in id order.
    pub fn variable_nodes(&self) -> Vec<NodeId> {
        self.nodes()
            .filter(|(_, n)| matches!(n.op, Op::Variable { .. }))
            .map(|(id, _)| id)
            .collect()
    }

    /// Checks parties, cycles, arities, shapes, visibilities and the names of inputs and
    /// outputs ([`Graph::check_io_names`]); fills in the shape and visibility of every node
    /// from its inputs. Returns the topological order.
    pub fn validate(&mut self) -> Result<Vec<NodeId>, GraphError> {
        let order = self.topo_order()?;
        for &id in &order {
            let node = self.node(id)?;
            if let Some(p) = node.op.party() {
                if p.index() >= self.parties.len() {
                    let party = p.to_string();
                    return Err(match node.op {
                        Op::Output { .. } => GraphError::OutputToUnknownParty {
                            node: self.label(id),
                            party,
                        },
                        _ => GraphError::UnknownParty {
                            node: self.label(id),
                            party,
                        },
                    });
                }
            }
            let input_ids = self.inputs(id);
            let mut infos = Vec::with_capacity(input_ids.len());
            for &i in &input_ids {
                let n = self.node(i)?;
                infos.push(InputInfo {
                    label: self.label(i),
                    shape: &n.shape,
                    visibility: n.visibility,
                });
            }
            let (shape, visibility) = infer(&self.label(id), &node.op, &node.shape, &infos)?;
            let elements = shape
                .dims()
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
                .filter(|&n| n <= MAX_ELEMENTS);
            if elements.is_none() {
                return Err(GraphError::Shape {
                    node: self.label(id),
                    op: node.op.name(),
                    message: format!(
                        "shape {:?} has more than {MAX_ELEMENTS} elements",
                        shape.dims()
                    ),
                });
            }
            if let Some(n) = self.node_mut(id) {
                n.shape = shape;
                n.visibility = visibility;
            }
        }
        self.check_io_names()?;
        crate::variables::check(self)?;
        Ok(order)
    }

    /// Every input has its own name, across all parties (values are given by input name: the
    /// plaintext reference takes them by name alone), and every output its own name per
    /// receiving party (a party's outputs are returned by name). A repeated name would give
    /// two inputs one value, or drop one output.
    pub fn check_io_names(&self) -> Result<(), GraphError> {
        let mut inputs: HashMap<&str, NodeId> = HashMap::new();
        let mut outputs: HashMap<(PartyId, &str), NodeId> = HashMap::new();
        for (id, node) in self.nodes() {
            match &node.op {
                Op::Input { name, .. } => {
                    if let Some(&first) = inputs.get(name.as_str()) {
                        return Err(GraphError::DuplicateInput {
                            name: name.clone(),
                            first: self.label(first),
                            second: self.label(id),
                        });
                    }
                    inputs.insert(name, id);
                }
                Op::Output { party, name } => {
                    if let Some(&first) = outputs.get(&(*party, name.as_str())) {
                        return Err(GraphError::DuplicateOutput {
                            name: name.clone(),
                            party: self.party_name(*party).to_string(),
                            first: self.label(first),
                            second: self.label(id),
                        });
                    }
                    outputs.insert((*party, name), id);
                }
                _ => {}
            }
        }
        // A variable's owner and a parameter's session give their values by name too: a name
        // shared with an input would give two nodes one value.
        for (id, node) in self.nodes() {
            if let Op::Variable { name, .. } | Op::Parameter { name } = &node.op {
                if let Some(&first) = inputs.get(name.as_str()) {
                    return Err(GraphError::DuplicateInput {
                        name: name.clone(),
                        first: self.label(first),
                        second: self.label(id),
                    });
                }
            }
        }
        Ok(())
    }
}

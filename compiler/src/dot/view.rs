//! What a drawing of a compiled graph shows, before it is written as DOT: vertices (a box per
//! layer and party, or single kernels of the layers drawn in detail), the exchanges between
//! them aggregated per round, and the data edges inside a party aggregated per vertex pair.

use std::collections::{BTreeMap, HashMap};

use super::layers::{LayerId, Layers};
use crate::cost::entry_bytes;
use crate::ir::{Exchange, Host, Kernel, ValueId};
use crate::program::{CompiledGraph, Instr};
use crate::CompileError;

/// How much of the graph is drawn kernel by kernel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Detail {
    /// One box per layer and party.
    #[default]
    Layers,
    /// The named layer's kernels; one box per layer and party for the others.
    Layer(String),
    /// Every kernel.
    All,
}

impl std::str::FromStr for Detail {
    type Err = std::convert::Infallible;
    /// `all`, `layers` (or `none`), or a layer's name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "all" => Detail::All,
            "layers" | "none" => Detail::Layers,
            layer => Detail::Layer(layer.to_string()),
        })
    }
}

/// A vertex of the drawing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// The kernels of one layer on one party.
    Group {
        /// The layer.
        layer: LayerId,
        /// The party.
        host: Host,
    },
    /// One kernel (of a layer drawn in detail).
    Kernel(ValueId),
}

/// A vertex: what it holds and the rounds it spans.
#[derive(Debug, Clone, PartialEq)]
pub struct Vertex {
    /// The party whose kernels it holds.
    pub host: Host,
    /// The layer its kernels come from.
    pub layer: LayerId,
    /// Its kernels (sends and receives included).
    pub kernels: usize,
    /// The first and last round in which its kernels run or its received values are ready
    /// (the round after their message travels).
    pub first: u32,
    /// See `first`.
    pub last: u32,
    /// For a single kernel: its name and shape.
    pub kernel: Option<(&'static str, Vec<usize>)>,
}

/// The exchanges between two vertices in one round, either way.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Flow {
    /// Whether values go from the first vertex to the second, and back.
    pub forward: bool,
    /// See `forward`.
    pub backward: bool,
    /// The entries' bytes on the wire (payload and entry headers; the frame header of each
    /// message is the round's, see [`View::frame_bytes`]).
    pub bytes: u64,
    /// How many values of each kind.
    pub kinds: BTreeMap<Exchange, u32>,
}

impl Flow {
    /// The values exchanged.
    pub fn count(&self) -> u32 {
        self.kinds.values().sum()
    }

    /// The kind with the most values (the first of those on a tie).
    pub fn main_kind(&self) -> Option<Exchange> {
        let most = self.kinds.values().copied().max()?;
        self.kinds.iter().find(|(_, &n)| n == most).map(|(&k, _)| k)
    }
}

/// A drawing of a compiled graph.
#[derive(Debug, Clone)]
pub struct View {
    /// The compiled graph's parties, by host.
    pub parties: Vec<String>,
    /// The protocol's name.
    pub protocol: String,
    /// Rounds of the program.
    pub rounds: u32,
    /// The graph's layers.
    pub layers: Layers,
    /// The vertices drawn, by key.
    pub vertices: BTreeMap<Key, Vertex>,
    /// Exchanges per (vertex, vertex, round in which the messages travel), the first vertex
    /// the lesser.
    pub flows: BTreeMap<(Key, Key, u32), Flow>,
    /// Values used by another vertex of the same party, per (from, to).
    pub data: BTreeMap<(Key, Key), u32>,
}

/// The round in which an instruction's value is ready: a received value the round after its
/// message travels.
fn ready(i: &Instr) -> u32 {
    match i.kernel {
        Kernel::Recv { .. } => i.round + 1,
        _ => i.round,
    }
}

impl View {
    /// The drawing of `g` at `detail`; an error names a layer that `g` does not have.
    pub fn of(g: &CompiledGraph, detail: &Detail) -> Result<View, CompileError> {
        let layers = Layers::of(g);
        let expanded = match detail {
            Detail::Layers => None,
            Detail::All => Some(None),
            Detail::Layer(name) => Some(Some(layers.find(name).ok_or_else(|| {
                CompileError::Layer {
                    layer: name.clone(),
                    known: layers.names().join(", "),
                }
            })?)),
        };
        let is_expanded = |l: LayerId| matches!(expanded, Some(None)) || expanded == Some(Some(l));
        let mut view = View {
            parties: g.parties.clone(),
            protocol: g.protocol.clone(),
            rounds: g.rounds,
            layers,
            vertices: BTreeMap::new(),
            flows: BTreeMap::new(),
            data: BTreeMap::new(),
        };
        // The vertex of every value; a send drawn in detail is its input's exchange edge.
        let mut key_of: HashMap<ValueId, Key> = HashMap::new();
        let mut sends: HashMap<ValueId, (Key, Exchange)> = HashMap::new();
        for p in &g.programs {
            for i in &p.instrs {
                let layer = view
                    .layers
                    .of_origin(&i.origin)
                    .ok_or_else(|| CompileError::Node {
                        node: i.id.to_string(),
                        message: "an origin that no layer holds".into(),
                    })?;
                let detailed = is_expanded(layer);
                let key = match (&i.kernel, detailed) {
                    (Kernel::Send { .. }, true) => {
                        let input = i.inputs.first().and_then(|v| key_of.get(v));
                        *input.ok_or_else(|| CompileError::Node {
                            node: i.id.to_string(),
                            message: "a send of a value defined nowhere before it".into(),
                        })?
                    }
                    (_, true) => Key::Kernel(i.id),
                    (_, false) => Key::Group {
                        layer,
                        host: p.host,
                    },
                };
                key_of.insert(i.id, key);
                if let Kernel::Send { exchange, .. } = i.kernel {
                    sends.insert(i.id, (key, exchange));
                    if detailed {
                        continue;
                    }
                }
                let r = ready(i);
                let v = view.vertices.entry(key).or_insert_with(|| Vertex {
                    host: p.host,
                    layer,
                    kernels: 0,
                    first: r,
                    last: r,
                    kernel: detailed.then(|| (i.kernel.name(), i.shape.clone())),
                });
                v.kernels += 1;
                v.first = v.first.min(r);
                v.last = v.last.max(r);
                for input in &i.inputs {
                    if let Some(&from) = key_of.get(input) {
                        if from != key {
                            *view.data.entry((from, key)).or_default() += 1;
                        }
                    }
                }
            }
        }
        for p in &g.programs {
            for i in &p.instrs {
                let Kernel::Recv { send, .. } = i.kernel else {
                    continue;
                };
                let (Some(&(from, exchange)), Some(&to)) = (sends.get(&send), key_of.get(&i.id))
                else {
                    return Err(CompileError::Party {
                        party: p.party.clone(),
                        message: format!("{} receives {send}, which no send matches", i.id),
                    });
                };
                let (a, b) = (from.min(to), from.max(to));
                let flow = view.flows.entry((a, b, i.round)).or_default();
                if a == from {
                    flow.forward = true;
                } else {
                    flow.backward = true;
                }
                flow.bytes += entry_bytes(i.kind, &i.shape) as u64;
                *flow.kinds.entry(exchange).or_default() += 1;
            }
        }
        Ok(view)
    }

    /// The bytes of the frame headers in `round`: one per ordered pair of parties that
    /// exchange anything in it. With the flows' bytes they make the round's traffic.
    pub fn frame_bytes(&self, round: u32) -> u64 {
        let mut pairs: Vec<(Host, Host)> = Vec::new();
        for ((a, b, r), flow) in &self.flows {
            let (Some(a), Some(b)) = (self.host(a), self.host(b)) else {
                continue;
            };
            if *r == round {
                if flow.forward {
                    pairs.push((a, b));
                }
                if flow.backward {
                    pairs.push((b, a));
                }
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        pairs.len() as u64 * crate::cost::FRAME_HEADER_BYTES as u64
    }

    /// The party of a vertex.
    pub fn host(&self, key: &Key) -> Option<Host> {
        self.vertices.get(key).map(|v| v.host)
    }
}

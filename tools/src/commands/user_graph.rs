//! A user's own model on the command line: a logical graph read from JSON (`--graph FILE`,
//! as `shareflow import` or [`shareflow_graphs::Graph::to_json`] write it) and the model
//! owner's weights from `.npz` (`--weights FILE`).
//!
//! The graph must be a prediction graph with the parties and names of the zoo and of an ONNX
//! import, so that every command can feed and read it:
//!
//! - one input `image` of party `client`: the client's input, batch first (the batch is the
//!   graph's, fixed: `shareflow import --batch B` writes a graph for batches of `B`);
//! - every other input belongs to party `model-owner`: the weights, one array of the `.npz`
//!   per input, named as the input and of its shape (no array more, none fewer);
//! - one output, `logits` to `client`, of shape `[batch, classes]`;
//! - no variables, assigns or run-time parameters (those are training graphs).
//!
//! Anything else is refused with an error naming the file and the node or field at fault.

use std::path::{Path, PathBuf};

use shareflow_graphs::zoo::{CLIENT, IMAGE, LOGITS, MODEL_OWNER};
use shareflow_graphs::{Graph, NodeId, Op};
use shareflow_runtime::data::Weights;

use crate::{Result, ToolError};

/// A user's prediction graph, checked against the rules of the module.
#[derive(Debug, Clone)]
pub struct UserGraph {
    /// The file it was read from.
    pub path: PathBuf,
    /// The logical graph.
    pub graph: Graph,
    /// The client's input node (`image`).
    pub image: NodeId,
    /// The value revealed to the client as `logits`.
    pub logits: NodeId,
    /// The shape of `image`, batch first.
    pub input_shape: Vec<usize>,
    /// The model owner's inputs: name and shape, in id order.
    pub params: Vec<(String, Vec<usize>)>,
}

impl UserGraph {
    /// Reads `path` and checks that it is a prediction graph as the module describes.
    pub fn load(path: &Path) -> Result<UserGraph> {
        let err = |message: String| ToolError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let graph = Graph::from_json(&text).map_err(|e| err(format!("not a graph: {e}")))?;
        let mut image = None;
        let mut params = Vec::new();
        let mut outputs = Vec::new();
        for (id, node) in graph.nodes() {
            match &node.op {
                Op::Input { party, name } => {
                    let party = graph.party_name(*party);
                    match (party, name.as_str()) {
                        (CLIENT, IMAGE) => image = Some(id),
                        (MODEL_OWNER, _) => params.push((name.clone(), node.shape.dims().to_vec())),
                        _ => {
                            return Err(err(format!(
                                "input `{name}` (node {}) belongs to party `{party}`: a \
                                 prediction graph's inputs are `{IMAGE}` of `{CLIENT}` and the \
                                 weights of `{MODEL_OWNER}`",
                                graph.label(id)
                            )))
                        }
                    }
                }
                Op::Output { party, name } => outputs.push((id, graph.party_name(*party), name)),
                Op::Variable { .. } | Op::Assign | Op::Parameter { .. } => {
                    return Err(err(format!(
                        "node {} (op `{}`): a prediction graph has no variables, assigns or \
                         run-time parameters (a training graph runs with `shareflow train`)",
                        graph.label(id),
                        node.op.name()
                    )))
                }
                _ => {}
            }
        }
        let image = image.ok_or_else(|| {
            err(format!(
                "no input `{IMAGE}` of party `{CLIENT}`: the client's input, batch first"
            ))
        })?;
        let input_shape = graph.node(image)?.shape.dims().to_vec();
        if input_shape.len() < 2 {
            return Err(err(format!(
                "input `{IMAGE}` has shape {input_shape:?}: it must be batch first, of rank 2 or \
                 more"
            )));
        }
        let logits = match outputs.as_slice() {
            [(id, CLIENT, name)] if name.as_str() == LOGITS => {
                graph.inputs(*id).first().copied().ok_or_else(|| {
                    err(format!(
                        "output `{LOGITS}` (node {}) has no input",
                        graph.label(*id)
                    ))
                })?
            }
            [(id, party, name)] => {
                return Err(err(format!(
                    "output `{name}` (node {}) goes to `{party}`: the one output must be \
                     `{LOGITS}` to `{CLIENT}`",
                    graph.label(*id)
                )))
            }
            _ => {
                return Err(err(format!(
                    "{} outputs: a prediction graph has exactly one, `{LOGITS}` to `{CLIENT}`",
                    outputs.len()
                )))
            }
        };
        let logits_shape = graph.node(logits)?.shape.dims().to_vec();
        if logits_shape.len() != 2 || logits_shape[0] != input_shape[0] {
            return Err(err(format!(
                "output `{LOGITS}` has shape {logits_shape:?}: it must be [batch, classes] with \
                 the batch of input `{IMAGE}` {input_shape:?}"
            )));
        }
        Ok(UserGraph {
            path: path.to_path_buf(),
            graph,
            image,
            logits,
            input_shape,
            params,
        })
    }

    /// Inputs per run: the first dimension of `image`.
    pub fn batch(&self) -> usize {
        self.input_shape[0]
    }

    /// Reads the model owner's weights from `path` and checks them against the graph: an
    /// array per input of `model-owner`, named and shaped as it, and no other array.
    pub fn weights(&self, path: &Path) -> Result<Weights> {
        let err = |message: String| ToolError::File {
            path: path.display().to_string(),
            message,
        };
        let weights = Weights::load(path)?;
        for (name, shape) in &self.params {
            match weights.arrays.get(name) {
                None => {
                    return Err(err(format!(
                        "no array `{name}`: the graph {} has an input `{name}` {shape:?} of \
                         `{MODEL_OWNER}`",
                        self.path.display()
                    )))
                }
                Some(a) if a.shape() != shape.as_slice() => {
                    return Err(err(format!(
                        "array `{name}` has shape {:?}, the graph's input `{name}` takes \
                         {shape:?}",
                        a.shape()
                    )))
                }
                Some(_) => {}
            }
        }
        if let Some(extra) = weights
            .arrays
            .keys()
            .find(|k| !self.params.iter().any(|(name, _)| name == *k))
        {
            return Err(err(format!(
                "array `{extra}` is no input of `{MODEL_OWNER}` in the graph {}",
                self.path.display()
            )));
        }
        Ok(weights)
    }
}

//! The network a command runs: a network of the zoo (`--model A|B|C|D|P`) or a model
//! imported from ONNX (`--onnx FILE`). Both are graphs with the zoo's parties and names: the
//! model owner's weights, the client's `image`, the client's `logits`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::{Array2, ArrayD, Axis, Ix2, IxDyn};
use shareflow_compiler::CompileOptions;
use shareflow_graphs::zoo::{ModelKind, ZooModel, IMAGE};
use shareflow_graphs::{Graph, NodeId};
use shareflow_onnx::OnnxModel;
use shareflow_runtime::data::Weights;
use shareflow_runtime::plain::train::predict_observed;
use shareflow_runtime::plain::{forward, Evaluation};

use super::{load_weights, Options};
use crate::{Result, ToolError};

/// A zoo network or an imported ONNX model.
#[derive(Clone)]
pub enum Network {
    /// A network of the zoo, with its committed weights by default.
    Zoo(ModelKind),
    /// An ONNX model: its initializers are the weights.
    Onnx(Arc<OnnxModel>),
}

/// A network's graph for one batch size.
pub struct BuiltNetwork {
    /// The logical graph.
    pub graph: Graph,
    /// The client's input node.
    pub image: NodeId,
    /// The logits before they are revealed.
    pub logits: NodeId,
    /// The shape of the client's input, batch first.
    pub input_shape: Vec<usize>,
}

impl From<ModelKind> for Network {
    fn from(kind: ModelKind) -> Self {
        Network::Zoo(kind)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Network::Zoo(kind) => write!(f, "{kind}"),
            Network::Onnx(m) => f.write_str(m.source()),
        }
    }
}

impl Network {
    /// `--model` or `--onnx`, exactly one of them.
    pub fn from_args(model: Option<ModelKind>, onnx: Option<&Path>) -> Result<Network> {
        match (model, onnx) {
            (Some(kind), None) => Ok(Network::Zoo(kind)),
            (None, Some(path)) => Ok(Network::Onnx(Arc::new(OnnxModel::load(path)?))),
            _ => Err(ToolError::Usage(
                "give either --model A|B|C|D|P or --onnx FILE".into(),
            )),
        }
    }

    /// The zoo network, if it is one.
    pub fn kind(&self) -> Option<ModelKind> {
        match self {
            Network::Zoo(kind) => Some(*kind),
            Network::Onnx(_) => None,
        }
    }

    /// The graph for batches of `batch` inputs.
    pub fn build(&self, batch: usize) -> Result<BuiltNetwork> {
        Ok(match self {
            Network::Zoo(kind) => {
                let zoo = ZooModel::build(*kind, batch)?;
                BuiltNetwork {
                    image: zoo.image,
                    logits: zoo.logits,
                    input_shape: vec![batch, 28, 28, 1],
                    graph: zoo.graph,
                }
            }
            Network::Onnx(model) => {
                let m = model.import(batch)?;
                BuiltNetwork {
                    image: m.image,
                    logits: m.logits,
                    input_shape: m.input_shape,
                    graph: m.graph,
                }
            }
        })
    }

    /// The model owner's weights: `explicit` or the committed ones for a zoo network, the
    /// initializers for an ONNX model (which takes no `--weights`).
    pub fn weights(&self, explicit: Option<PathBuf>) -> Result<Weights> {
        match self {
            Network::Zoo(kind) => load_weights(*kind, explicit),
            Network::Onnx(model) => {
                if explicit.is_some() {
                    return Err(ToolError::Usage(
                        "--weights is for zoo networks: an ONNX model carries its weights".into(),
                    ));
                }
                Ok(Weights {
                    arrays: model.import(1)?.weights,
                })
            }
        }
    }

    /// The compile options: the zoo network's ReLU polynomial unless the user chose one.
    pub fn options(&self, options: &Options) -> CompileOptions {
        match self {
            Network::Zoo(kind) => options.for_model(*kind),
            Network::Onnx(_) => options.base,
        }
    }

    /// `images` `[n, 28, 28, 1]` in the shape of the network's input (`[n, 784]` for a model
    /// that takes flat vectors).
    pub fn inputs(&self, images: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        let n = images.shape().first().copied().unwrap_or(0);
        let per_image = self.build(1)?.input_shape;
        let mut shape = vec![n];
        shape.extend_from_slice(&per_image[1..]);
        if shape.iter().product::<usize>() != images.len() {
            return Err(ToolError::Usage(format!(
                "{self}: the input has shape {per_image:?} per batch of 1, MNIST images have 784 \
                 values"
            )));
        }
        images
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(IxDyn(&shape))
            .map_err(|e| ToolError::Usage(format!("{self}: {e}")))
    }

    /// Plaintext logits `[n, classes]` for `images` (in the network's input shape), in
    /// batches of at most `batch`, showing `observe` every batch's graph and values.
    pub fn predict_plain(
        &self,
        weights: &Weights,
        images: &ArrayD<f32>,
        batch: usize,
        observe: &mut dyn FnMut(&Graph, &Evaluation),
    ) -> Result<Array2<f32>> {
        if let Network::Zoo(kind) = self {
            return Ok(predict_observed(*kind, weights, images, batch, observe)?);
        }
        let n = images.shape().first().copied().unwrap_or(0);
        let mut built: HashMap<usize, BuiltNetwork> = HashMap::new();
        let mut rows: Vec<Array2<f32>> = Vec::new();
        let mut start = 0;
        while start < n {
            let size = batch.max(1).min(n - start);
            let net = match built.entry(size) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(self.build(size)?),
            };
            let mut inputs: HashMap<String, ArrayD<f32>> =
                weights.arrays.clone().into_iter().collect();
            inputs.insert(
                IMAGE.to_string(),
                images
                    .slice_axis(Axis(0), (start..start + size).into())
                    .to_owned(),
            );
            let eval = forward(&net.graph, &inputs)?;
            observe(&net.graph, &eval);
            let logits = eval
                .value(&net.graph, net.logits)?
                .clone()
                .into_dimensionality::<Ix2>()
                .map_err(|e| ToolError::Usage(format!("{self}: logits: {e}")))?;
            rows.push(logits);
            start += size;
        }
        let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
        if views.is_empty() {
            return Ok(Array2::zeros((0, 0)));
        }
        ndarray::concatenate(Axis(0), &views).map_err(|e| ToolError::Usage(e.to_string()))
    }
}

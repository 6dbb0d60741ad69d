//! Reading a `.onnx` file and importing it as a logical graph for one batch size.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::ArrayD;
use prost::Message;
use shareflow_graphs::zoo::{CLIENT, IMAGE, LOGITS, MODEL_OWNER};
use shareflow_graphs::{Graph, GraphBuilder, NodeId, PartyId};

use crate::convert::Converter;
use crate::error::OnnxError;
use crate::proto::ModelProto;

/// An ONNX model read from a file, to be imported for any batch size.
#[derive(Debug, Clone)]
pub struct OnnxModel {
    model: ModelProto,
    source: String,
}

/// An imported model: the graph of one batch size and the model owner's weights.
///
/// As the zoo's networks: party `model-owner` gives every initializer as a private input
/// named after it (transformed to the graph's layout: filters HWIO, dense kernels `[in, out]`,
/// batch normalisation folded in), party `client` gives the model's input as `image`, and
/// `client` alone receives `logits`.
pub struct ImportedModel {
    /// The logical graph.
    pub graph: Graph,
    /// The party that owns the weights.
    pub model_owner: PartyId,
    /// The party that owns the input and receives the output.
    pub client: PartyId,
    /// The client's input node.
    pub image: NodeId,
    /// The output value before it is revealed.
    pub logits: NodeId,
    /// The output node that reveals it to the client.
    pub output: NodeId,
    /// The graph's shape of the client's input, batch first: an NCHW image is given NHWC.
    pub input_shape: Vec<usize>,
    /// The model owner's inputs by name (every weight the graph uses).
    pub weights: BTreeMap<String, ArrayD<f32>>,
}

impl OnnxModel {
    /// Reads and decodes the `.onnx` file at `path`.
    pub fn load(path: &Path) -> Result<OnnxModel, OnnxError> {
        let bytes = std::fs::read(path).map_err(|e| OnnxError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&path.display().to_string(), &bytes)
    }

    /// Decodes the bytes of a `.onnx` file; `source` names it in messages.
    pub fn parse(source: &str, bytes: &[u8]) -> Result<OnnxModel, OnnxError> {
        let model = ModelProto::decode(bytes).map_err(|e| OnnxError::Decode {
            message: format!("{source}: {e}"),
        })?;
        if model.graph.is_none() {
            return Err(OnnxError::Model {
                message: format!("{source} has no graph"),
            });
        }
        Ok(OnnxModel {
            model,
            source: source.to_string(),
        })
    }

    /// Where the model came from (the file's path).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The decoded protobuf.
    pub fn proto(&self) -> &ModelProto {
        &self.model
    }

    /// The version of the default operator set the model was exported with.
    pub fn opset(&self) -> i64 {
        self.model
            .opset_import
            .iter()
            .find(|o| matches!(o.domain(), "" | "ai.onnx"))
            .map_or(1, |o| o.version())
    }

    /// The graph of the model for inputs in batches of `batch`, with its weights.
    pub fn import(&self, batch: usize) -> Result<ImportedModel, OnnxError> {
        let Some(graph) = self.model.graph.as_ref() else {
            return Err(OnnxError::Model {
                message: format!("{} has no graph", self.source),
            });
        };
        let g = GraphBuilder::new();
        let model_owner = g.party(MODEL_OWNER);
        let client = g.party(CLIENT);
        let mut c = Converter::new(g.clone(), model_owner, graph, self.opset(), batch)?;
        let (image, input_shape) = c.client_input(client, IMAGE)?;
        c.run()?;
        let logits = c.graph_output()?;
        let output = logits.output_to(client, LOGITS);
        let graph = g.build()?;
        Ok(ImportedModel {
            graph,
            model_owner,
            client,
            image: image.id(),
            logits: logits.id(),
            output: output.id(),
            input_shape,
            weights: c.into_weights(),
        })
    }
}

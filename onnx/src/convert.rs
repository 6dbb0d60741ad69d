//! The conversion of an ONNX graph, node by node, onto the graph builder.

use std::collections::{BTreeMap, HashMap, HashSet};

use ndarray::{ArrayD, IxDyn};
use shareflow_graphs::{GraphBuilder, PartyId, Tensor};

use crate::error::OnnxError;
use crate::layout::{Layout, Live};
use crate::proto::{GraphProto, NodeProto};
use crate::tensor::{decode, Known};

/// The operators the importer converts.
pub const SUPPORTED: &str = "Gemm, MatMul, Add, Sub, Mul, Conv, MaxPool, AveragePool, \
    GlobalAveragePool, Relu, Sigmoid, Softmax, BatchNormalization (after a Conv or Gemm), \
    Flatten, Reshape, Transpose, Identity, Dropout, Constant, Pad (zeros, before a Conv), and \
    Shape, Gather, Cast, Slice, Concat, Unsqueeze, Squeeze on values known at import time";

/// An ONNX value during the conversion.
#[derive(Clone)]
pub enum Value {
    /// Known at import time.
    Known(Known),
    /// Computed by the graph.
    Live(Live),
}

/// The node being converted, for messages.
pub struct Ctx<'a> {
    /// The node.
    pub node: &'a NodeProto,
    /// How messages name it.
    pub label: String,
}

impl Ctx<'_> {
    /// An error about this node.
    pub fn err(&self, message: impl Into<String>) -> OnnxError {
        OnnxError::Node {
            node: self.label.clone(),
            op: self.node.op_type().to_string(),
            message: message.into(),
        }
    }

    /// The name of input `i`, if given.
    pub fn input_name(&self, i: usize) -> Option<&str> {
        self.node
            .input
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// State of one import.
pub struct Converter<'a> {
    pub(crate) g: GraphBuilder,
    owner: PartyId,
    graph: &'a GraphProto,
    pub(crate) opset: i64,
    batch: usize,
    values: HashMap<String, Value>,
    weights: BTreeMap<String, ArrayD<f32>>,
    /// Graph nodes of known values already materialised, with their values, by name.
    materialised: HashMap<String, (Tensor, ArrayD<f32>)>,
    /// The nodes that read each value (by index), and whether a graph output is the value.
    consumers: HashMap<String, Vec<usize>>,
    /// Nodes already converted with another (a batch normalisation folded into its Conv).
    pub(crate) folded: HashSet<usize>,
}

impl<'a> Converter<'a> {
    /// A converter for `graph`, whose initializers become inputs of `owner`.
    pub fn new(
        g: GraphBuilder,
        owner: PartyId,
        graph: &'a GraphProto,
        opset: i64,
        batch: usize,
    ) -> Result<Self, OnnxError> {
        let mut values = HashMap::new();
        for t in &graph.initializer {
            let k = decode(t, true)?;
            values.insert(k.name.clone(), Value::Known(k));
        }
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for input in n.input.iter().filter(|s| !s.is_empty()) {
                consumers.entry(input.clone()).or_default().push(i);
            }
        }
        for o in &graph.output {
            // A graph output is a reader that is not a node.
            consumers
                .entry(o.name().to_string())
                .or_default()
                .push(usize::MAX);
        }
        Ok(Converter {
            g,
            owner,
            graph,
            opset,
            batch,
            values,
            weights: BTreeMap::new(),
            materialised: HashMap::new(),
            consumers,
            folded: HashSet::new(),
        })
    }

    /// The client's input: the one graph input that is not an initializer, given in NHWC
    /// order when it is a 4-D NCHW image. Returns the node and its graph shape.
    pub fn client_input(
        &mut self,
        client: PartyId,
        name: &str,
    ) -> Result<(Tensor, Vec<usize>), OnnxError> {
        let inputs: Vec<_> = self
            .graph
            .input
            .iter()
            .filter(|i| !self.values.contains_key(i.name()))
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(OnnxError::Model {
                message: format!(
                    "the graph has {} inputs besides its initializers ({}); one is supported",
                    inputs.len(),
                    inputs
                        .iter()
                        .map(|i| i.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        let model_err = |message: String| OnnxError::Model {
            message: format!("input {:?}: {message}", input.name()),
        };
        let tensor_type = input
            .r#type
            .as_ref()
            .and_then(|t| match &t.value {
                Some(crate::proto::type_proto::Value::TensorType(tt)) => Some(tt),
                _ => None,
            })
            .ok_or_else(|| model_err("not a tensor".into()))?;
        if tensor_type.elem_type() != crate::proto::tensor_proto::DataType::Float as i32 {
            return Err(model_err(format!(
                "element type {} (only float inputs are supported)",
                tensor_type.elem_type()
            )));
        }
        let dims = tensor_type
            .shape
            .as_ref()
            .ok_or_else(|| model_err("no shape".into()))?;
        let mut shape = Vec::with_capacity(dims.dim.len());
        for (i, d) in dims.dim.iter().enumerate() {
            use crate::proto::tensor_shape_proto::dimension::Value as Dim;
            match (&d.value, i) {
                // The first dimension is the batch, whatever the model says.
                (_, 0) => shape.push(self.batch),
                (Some(Dim::DimValue(v)), _) if *v > 0 => shape.push(*v as usize),
                _ => {
                    return Err(model_err(format!(
                        "dimension {i} is not a fixed positive number"
                    )))
                }
            }
        }
        // A 4-D input is NCHW (and given NHWC) when a convolution or pooling reads it,
        // through elementwise operators only; otherwise the model arranges it itself (tf2onnx
        // transposes Keras' NHWC input, a Flatten flattens it) and it is given as declared.
        let nchw = self.reaches_spatial_op(input.name());
        let live = if shape.len() == 4 && nchw {
            let graph_shape = vec![shape[0], shape[2], shape[3], shape[1]];
            let t = self.g.input(client, name, graph_shape);
            Live {
                t,
                layout: Layout::Nhwc,
                shape,
                pads: None,
            }
        } else {
            let t = self.g.input(client, name, shape.clone());
            Live::plain(t, shape)
        };
        let t = live.t.clone();
        let graph_shape = t.shape().0;
        self.values
            .insert(input.name().to_string(), Value::Live(live));
        Ok((t, graph_shape))
    }

    /// Converts every node in order.
    pub fn run(&mut self) -> Result<(), OnnxError> {
        for (index, node) in self.graph.node.iter().enumerate() {
            if self.folded.contains(&index) {
                continue;
            }
            let label = match node.name() {
                "" => format!(
                    "#{index} (output {:?})",
                    node.output.first().map_or("", String::as_str)
                ),
                name => format!("{name:?}"),
            };
            let ctx = Ctx { node, label };
            if !matches!(node.domain(), "" | "ai.onnx") {
                return Err(OnnxError::Unsupported {
                    node: ctx.label,
                    op: format!("{}:{}", node.domain(), node.op_type()),
                    supported: SUPPORTED,
                });
            }
            for (name, value) in self.convert(&ctx)? {
                self.values.insert(name, value);
            }
        }
        Ok(())
    }

    /// The graph's one output, in ONNX order.
    pub fn graph_output(&mut self) -> Result<Tensor, OnnxError> {
        let [output] = self.graph.output.as_slice() else {
            return Err(OnnxError::Model {
                message: format!(
                    "the graph has {} outputs; one is supported",
                    self.graph.output.len()
                ),
            });
        };
        match self.values.get(output.name()) {
            Some(Value::Live(l)) if l.pads.is_none() => Ok(l.to_plain().t),
            Some(_) => Err(OnnxError::Model {
                message: format!("output {:?} does not depend on the input", output.name()),
            }),
            None => Err(OnnxError::Model {
                message: format!("output {:?} is computed by no node", output.name()),
            }),
        }
    }

    /// The model owner's inputs.
    pub fn into_weights(self) -> BTreeMap<String, ArrayD<f32>> {
        self.weights
    }

    /// The value of input `i` of the node.
    pub fn value(&self, ctx: &Ctx, i: usize) -> Result<Value, OnnxError> {
        let name = ctx
            .input_name(i)
            .ok_or_else(|| ctx.err(format!("input {i} is missing")))?;
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| ctx.err(format!("input {name:?} is computed by no earlier node")))
    }

    /// Input `i`, which must be known at import time (a weight, a shape).
    pub fn known(&self, ctx: &Ctx, i: usize) -> Result<Known, OnnxError> {
        match self.value(ctx, i)? {
            Value::Known(k) => Ok(k),
            Value::Live(_) => Err(ctx.err(format!(
                "input {i} ({:?}) must be an initializer or a constant",
                ctx.input_name(i).unwrap_or_default()
            ))),
        }
    }

    /// Input `i` as a graph value (a known one becomes a weight or a public constant).
    pub fn live(&mut self, ctx: &Ctx, i: usize) -> Result<Live, OnnxError> {
        match self.value(ctx, i)? {
            Value::Live(l) if l.pads.is_some() => Err(ctx.err(format!(
                "input {i} comes from a Pad, which is supported only right before a Conv"
            ))),
            Value::Live(l) => Ok(l),
            Value::Known(k) => {
                let shape = k.array.shape().to_vec();
                let t = self.weight(&k, &k.name, k.array.clone());
                Ok(Live::plain(t, shape))
            }
        }
    }

    /// The graph node of a known value, transformed to `array`, under `name`: an input of the
    /// model owner for an initializer, else a public constant. One node per name and value
    /// (a second value under one name gets `name:1`, ...).
    pub fn weight(&mut self, k: &Known, name: &str, array: ArrayD<f32>) -> Tensor {
        if let Some((t, a)) = self.materialised.get(name) {
            if *a == array {
                return t.clone();
            }
        }
        let t = if k.private {
            let mut unique = name.to_string();
            let mut n = 1;
            while self.weights.contains_key(&unique) || unique == shareflow_graphs::zoo::IMAGE {
                unique = format!("{name}:{n}");
                n += 1;
            }
            let t = self.g.input(self.owner, &unique, array.shape().to_vec());
            self.weights.insert(unique, array.clone());
            t
        } else {
            let shape = array.shape().to_vec();
            let values = array.iter().copied().collect();
            self.g.constant(shape, values)
        };
        self.materialised
            .insert(name.to_string(), (t.clone(), array));
        t
    }

    /// The single node that reads `value`, if no other node or graph output does.
    pub fn only_consumer(&self, value: &str) -> Option<&'a NodeProto> {
        match self.consumers.get(value).map(Vec::as_slice) {
            Some([i]) if *i != usize::MAX => self.graph.node.get(*i),
            _ => None,
        }
    }

    /// The index of a node of the graph.
    pub fn index_of(&self, node: &NodeProto) -> Option<usize> {
        self.graph.node.iter().position(|n| std::ptr::eq(n, node))
    }

    /// Whether a convolution or pooling reads `value`, directly or through elementwise
    /// operators.
    fn reaches_spatial_op(&self, value: &str) -> bool {
        let mut todo = vec![value.to_string()];
        let mut seen = HashSet::new();
        while let Some(v) = todo.pop() {
            if !seen.insert(v.clone()) {
                continue;
            }
            for &i in self
                .consumers
                .get(&v)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let Some(n) = self.graph.node.get(i) else {
                    continue;
                };
                match n.op_type() {
                    "Conv" | "MaxPool" | "AveragePool" | "GlobalAveragePool" | "Pad"
                    | "BatchNormalization" => return true,
                    "Add" | "Sub" | "Mul" | "Relu" | "Sigmoid" | "Identity" | "Dropout" => {
                        todo.extend(n.output.iter().take(1).cloned())
                    }
                    _ => {}
                }
            }
        }
        false
    }

    /// Whether any node or graph output reads `value`.
    pub fn is_used(&self, value: &str) -> bool {
        self.consumers.get(value).is_some_and(|c| !c.is_empty())
    }

    /// The known value of a node's input by name (for looking ahead at a following node).
    pub fn known_named(&self, name: &str) -> Option<&Known> {
        match self.values.get(name) {
            Some(Value::Known(k)) => Some(k),
            _ => None,
        }
    }
}

/// A known value reshaped (row-major).
pub fn reshaped(k: &Known, shape: &[usize]) -> Option<Known> {
    let values: Vec<f32> = k.array.iter().copied().collect();
    Some(Known {
        name: k.name.clone(),
        array: ArrayD::from_shape_vec(IxDyn(shape), values).ok()?,
        ints: k.ints.clone(),
        private: k.private,
    })
}

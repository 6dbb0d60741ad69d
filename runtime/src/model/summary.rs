//! [`Model::summary`]: layers, output shapes, parameter counts and, for a protocol, the
//! compiled cost of one prediction per layer (from the compiler's static cost report).

use std::collections::HashMap;
use std::fmt;

use shareflow_compiler::cost::CostReport;
use shareflow_compiler::{compile_serving, ProtocolKind};

use super::predict::{owner_values, serving_program};
use shareflow_graphs::nn::Params;

use super::Model;
use crate::Result;

/// One row of a summary: a top-level layer.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// The layer's description.
    pub layer: String,
    /// Its output shape for one example (batch axis 1).
    pub shape: Vec<usize>,
    /// Its parameters' element count.
    pub parameters: usize,
    /// The bytes its nodes send in one prediction (entry bytes; frame headers are the
    /// links', counted in [`Summary::bytes`] only).
    pub bytes: u64,
    /// The rounds in which its messages travel.
    pub rounds: u32,
}

/// What [`Model::summary`] gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The protocol of the costs, if any.
    pub protocol: Option<ProtocolKind>,
    /// The layers (batch normalisations folded, as predictions run them).
    pub rows: Vec<SummaryRow>,
    /// Every parameter element.
    pub parameters: usize,
    /// Bytes of one prediction (batch 1) once the weights are set up, frame headers included.
    pub bytes: u64,
    /// Rounds of one prediction.
    pub rounds: u32,
    /// Bytes of the setup that shares and masks the weights once.
    pub setup_bytes: u64,
    /// Bytes of the input's sharing and the output's opening (no layer's).
    pub io_bytes: u64,
}

impl Model {
    /// Layers, output shapes and parameter counts of the network as predictions run it
    /// (batch normalisations folded); with a protocol, the compiled cost of one prediction
    /// of a serving session per layer (bytes, rounds) and of the weights' setup.
    ///
    /// ```
    /// use shareflow_compiler::ProtocolKind;
    /// use shareflow_graphs::zoo::ModelKind;
    /// use shareflow_runtime::model::Model;
    ///
    /// let s = Model::zoo(ModelKind::A).summary(Some(ProtocolKind::SecureNN)).unwrap();
    /// assert_eq!(s.parameters, 118_282);
    /// assert_eq!(s.rounds, 11);
    /// println!("{s}");
    /// ```
    pub fn summary(&self, protocol: Option<ProtocolKind>) -> Result<Summary> {
        let (network, _) = self.network.fold_batchnorm();
        let graph = network.prediction(1, Params::Inputs)?;
        let mut rows: Vec<SummaryRow> = graph
            .layers
            .iter()
            .map(|l| SummaryRow {
                layer: l.describe.clone(),
                shape: l.shape.clone(),
                parameters: l.parameters,
                bytes: 0,
                rounds: 0,
            })
            .collect();
        let mut summary = Summary {
            protocol,
            parameters: rows.iter().map(|r| r.parameters).sum(),
            rows: Vec::new(),
            bytes: 0,
            rounds: 0,
            setup_bytes: 0,
            io_bytes: 0,
        };
        if let Some(protocol) = protocol {
            // Narrowed comparisons ([`Model::narrow_for_inputs`]) are costed where the model
            // owner's weights are at hand to bound them; exact ones otherwise.
            let serving = match (self.input_range, &self.weights) {
                (Some(range), Some(weights)) => {
                    let (_, weights) = super::fold_batchnorm(&self.network, weights)?;
                    let owner = owner_values(&network, &weights)?;
                    serving_program(&graph.graph, protocol, self.options, Some(range), &owner)?
                }
                _ => compile_serving(&graph.graph, protocol, self.options)?,
            };
            let cost = CostReport::of(&serving.predict);
            summary.bytes = cost.bytes;
            summary.rounds = cost.rounds;
            summary.setup_bytes = CostReport::of(&serving.setup).bytes;
            // The cost report names a layer by its node's label.
            let owner: HashMap<String, usize> = graph
                .layers
                .iter()
                .enumerate()
                .flat_map(|(i, l)| l.nodes.iter().map(move |&n| (n, i)))
                .map(|(n, i)| (graph.graph.label(n), i))
                .collect();
            for layer in &cost.layers {
                match owner.get(&layer.layer) {
                    Some(&i) => {
                        rows[i].bytes += layer.bytes;
                        rows[i].rounds += layer.rounds;
                    }
                    None => summary.io_bytes += layer.bytes,
                }
            }
        }
        summary.rows = rows;
        Ok(summary)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let costs = self.protocol.is_some();
        write!(f, "{:<44} {:>16} {:>10}", "layer", "output", "params")?;
        if costs {
            write!(f, " {:>12} {:>7}", "bytes", "rounds")?;
        }
        writeln!(f)?;
        for r in &self.rows {
            let shape = format!("{:?}", r.shape);
            write!(f, "{:<44} {:>16} {:>10}", r.layer, shape, r.parameters)?;
            if costs {
                write!(f, " {:>12} {:>7}", r.bytes, r.rounds)?;
            }
            writeln!(f)?;
        }
        write!(f, "parameters: {}", self.parameters)?;
        if let Some(p) = self.protocol {
            write!(
                f,
                "\n{p:?}, one prediction: {} bytes, {} rounds (input and output {} bytes); \
                 weights set up once: {} bytes",
                self.bytes, self.rounds, self.io_bytes, self.setup_bytes
            )?;
        }
        Ok(())
    }
}

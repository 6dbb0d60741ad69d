//! [`Model::predict`]'s three ways: plaintext, a serving session over the model owner's
//! weights, or the servers' shares after private training.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::time::Duration;

use ndarray::{s, Array2, ArrayD, Axis, Ix2};
use shareflow_compiler::bounds::Narrowing;
use shareflow_compiler::serving::{compile_serving_narrowed, default_persistent};
use shareflow_compiler::{ProtocolKind, ServingGraph};
use shareflow_graphs::network::{Network, CLIENT, IMAGE, LOGITS, MODEL_OWNER};
use shareflow_graphs::nn::Params;
use shareflow_graphs::Graph;
use shareflow_ops::plain::to_rank;

use super::{fold_batchnorm, no_weights, quic, Model};
use crate::data::Weights;
use crate::exec::{InProcessRun, ServingSession};
use crate::plain::train::predict_network;
use crate::Result;

/// How long a party waits for a peer's message.
const TIMEOUT: Duration = Duration::from_secs(300);

impl Model {
    /// The outputs, the bytes of the prediction runs and their most rounds.
    pub(super) fn predict_measured(
        &mut self,
        images: &ArrayD<f32>,
        batch: usize,
    ) -> Result<(Array2<f32>, u64, u32)> {
        let mut bytes = 0;
        let mut rounds = 0;
        let mut count = |run: &InProcessRun| {
            bytes += run.bytes();
            rounds = rounds.max(run.rounds());
        };
        let Some(protocol) = self.protocol.secure() else {
            let weights = self.reveal_weights()?.clone();
            let (network, weights) = fold_batchnorm(&self.network, &weights)?;
            let out = predict_network(&network, &weights, images, batch, &mut |_, _| {})?;
            return Ok((out, 0, 0));
        };
        if let (Some(_), Some(_)) = (&self.private, &self.quic) {
            return Err(crate::RuntimeError::Node {
                node: "predict".into(),
                message: "a model trained privately in this process predicts in process \
                          (its shares live in this process's session): reveal its weights \
                          first to predict over QUIC"
                    .into(),
            });
        }
        if let (Some(_), Some(_)) = (&self.private, self.input_range) {
            return Err(crate::RuntimeError::Node {
                node: "predict".into(),
                message: "the weights of a model trained privately are known to no party, so \
                          no bound narrows its comparisons: reveal its weights first, or \
                          predict exactly (narrow_for_inputs(None))"
                    .into(),
            });
        }
        if let Some(private) = self.private.as_mut() {
            let out = private.predict_observed(images, batch, &mut count)?;
            return Ok((out, bytes, rounds));
        }
        let weights = self.weights.as_ref().ok_or_else(no_weights)?;
        let (network, weights) = fold_batchnorm(&self.network, weights)?;
        let n = images.shape().first().copied().unwrap_or(0);
        if let Some(dir) = &self.quic {
            let owner = owner_values(&network, &weights)?;
            let size = batch.max(1).min(n.max(1));
            let mut out = None;
            // whole batches in one session, the remainder in another
            for (start, size, count) in [(0, size, n / size), (n - n % size, n % size, 1)] {
                if count == 0 || size == 0 {
                    continue;
                }
                let graph = network.prediction(size, Params::Inputs)?.graph;
                let serving =
                    serving_program(&graph, protocol, self.options, self.input_range, &owner)?;
                let (logits, b, r) =
                    quic::predict_batches(&serving, dir, &owner, images, (start, size, count))?;
                bytes += b;
                rounds = rounds.max(r);
                quic::place(&mut out, n, &logits, start, size);
            }
            return Ok((out.unwrap_or_else(|| Array2::zeros((0, 0))), bytes, rounds));
        }
        let mut out: Option<Array2<f32>> = None;
        let mut start = 0;
        while start < n {
            let size = batch.max(1).min(n - start);
            let session = match self.serving.entry(size) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let graph = network.prediction(size, Params::Inputs)?.graph;
                    let owner = owner_values(&network, &weights)?;
                    let serving =
                        serving_program(&graph, protocol, self.options, self.input_range, &owner)?;
                    let mut session = ServingSession::new(serving, TIMEOUT)?;
                    session.setup(&HashMap::from([(MODEL_OWNER.to_string(), owner)]))?;
                    e.insert(session)
                }
            };
            let slice = images
                .slice_axis(Axis(0), (start..start + size).into())
                .to_owned();
            let inputs = HashMap::from([(
                CLIENT.to_string(),
                HashMap::from([(IMAGE.to_string(), slice)]),
            )]);
            let run = session.predict(&inputs)?;
            count(&run);
            let logits = run.float(CLIENT, LOGITS)?;
            let logits = to_rank::<_, Ix2>(logits.view(), "logits")?;
            out.get_or_insert_with(|| Array2::zeros((n, logits.ncols())))
                .slice_mut(s![start..start + size, ..])
                .assign(&logits);
            start += size;
        }
        Ok((out.unwrap_or_else(|| Array2::zeros((0, 0))), bytes, rounds))
    }
}

/// The serving program of `graph`: exact, or narrowed for the client's inputs in `range` from
/// the bound the model owner's weights `owner` give ([`Model::narrow_for_inputs`]).
pub(super) fn serving_program(
    graph: &Graph,
    protocol: ProtocolKind,
    options: shareflow_compiler::CompileOptions,
    range: Option<(f64, f64)>,
    owner: &HashMap<String, ArrayD<f32>>,
) -> Result<ServingGraph> {
    let narrowing = match range {
        Some(range) => Some(Narrowing::analyse_with_range(
            graph, &options, owner, range,
        )?),
        None => None,
    };
    Ok(compile_serving_narrowed(
        graph,
        protocol,
        options,
        &default_persistent(graph),
        narrowing.as_ref(),
    )?)
}

/// The model owner's inputs of `network`'s prediction graph: each parameter's weights by name.
pub(super) fn owner_values(
    network: &Network,
    weights: &Weights,
) -> Result<HashMap<String, ArrayD<f32>>> {
    network
        .params()
        .iter()
        .map(|p| Ok((p.name.clone(), weights.get(&p.name, &p.shape)?.clone())))
        .collect()
}

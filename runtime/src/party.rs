//! One party of a compiled graph as its own process: connect to the others over QUIC with
//! mutual TLS, run the party's program, return its outputs and metrics.

use std::collections::HashMap;
use std::time::Duration;

use ndarray::ArrayD;
use shareflow_compiler::CompiledGraph;

use crate::cluster::ClusterConfig;
use crate::exec::{run_party_full, PartyResult, Plan, Randomness, Store};
use crate::transport::{QuicTransport, Transport};
use crate::{Result, RuntimeError};

/// SHA-256 of the compiled graph's JSON: parties started with different graphs refuse each
/// other.
pub fn graph_digest(graph: &CompiledGraph) -> Result<[u8; 32]> {
    json_digest("compiled graph", graph)
}

/// SHA-256 of a value's JSON; `what` names it in an error.
pub fn json_digest(what: &str, value: &impl serde::Serialize) -> Result<[u8; 32]> {
    let json = serde_json::to_string(value).map_err(|e| RuntimeError::Node {
        node: what.into(),
        message: e.to_string(),
    })?;
    let d = ring::digest::digest(&ring::digest::SHA256, json.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    Ok(out)
}

/// Checks that `inputs` has exactly the inputs the graph expects of `party`, with their shapes.
pub fn check_inputs(
    graph: &CompiledGraph,
    party: &str,
    inputs: &HashMap<String, ArrayD<f32>>,
) -> Result<()> {
    let expected: Vec<_> = graph.inputs.iter().filter(|i| i.party == party).collect();
    for spec in &expected {
        match inputs.get(&spec.name) {
            None => {
                return Err(RuntimeError::Node {
                    node: format!("input {:?}", spec.name),
                    message: format!("party {party} must provide it (shape {:?})", spec.shape),
                })
            }
            Some(v) if v.shape() != spec.shape.as_slice() => {
                return Err(RuntimeError::Node {
                    node: format!("input {:?}", spec.name),
                    message: format!("shape {:?}, the graph expects {:?}", v.shape(), spec.shape),
                })
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = inputs
        .keys()
        .find(|k| !expected.iter().any(|s| &s.name == *k))
    {
        return Err(RuntimeError::Node {
            node: format!("input {extra:?}"),
            message: format!("party {party} has no such input in this graph"),
        });
    }
    Ok(())
}

/// What a party knows once it is connected to every peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// This party.
    pub party: String,
    /// Its peers, in the program's party order.
    pub peers: Vec<String>,
    /// The session id of this run, to which every party contributed.
    pub session: [u8; 16],
}

/// Runs `party` of `graph` over QUIC with the cluster's addresses and certificates. Returns
/// once every party has finished its program; if any party fails, every party fails, naming the
/// party at fault, and each tells its peers why before it stops.
pub fn run_over_quic(
    graph: &CompiledGraph,
    party: &str,
    cluster: &ClusterConfig,
    inputs: &HashMap<String, ArrayD<f32>>,
    timeout: Duration,
    randomness: &Randomness,
) -> Result<PartyResult> {
    run_over_quic_with(graph, party, cluster, inputs, timeout, randomness, |_| ())
}

/// [`run_over_quic`], calling `on_connected` once every peer is connected and has shown the
/// same graph, just before the program starts (e.g. to log it).
pub fn run_over_quic_with(
    graph: &CompiledGraph,
    party: &str,
    cluster: &ClusterConfig,
    inputs: &HashMap<String, ArrayD<f32>>,
    timeout: Duration,
    randomness: &Randomness,
    on_connected: impl FnOnce(&Connected),
) -> Result<PartyResult> {
    let program = graph.program(party).map_err(|e| RuntimeError::Node {
        node: "compiled graph".into(),
        message: e.to_string(),
    })?;
    check_inputs(graph, party, inputs)?;
    shareflow_compiler::verify(graph).map_err(|e| RuntimeError::Node {
        node: "compiled graph".into(),
        message: e.to_string(),
    })?;
    let plan = Plan::new(program)?;
    let digest = graph_digest(graph)?;
    let parties = &graph.parties;
    over_quic(
        cluster,
        party,
        (parties, &plan.largest_batches(program, parties.len())),
        digest,
        timeout,
        on_connected,
        |t| run_party_full(program, &plan, t, inputs, &mut Store::new(), randomness),
    )
}

/// The outcome of [`run_serving_over_quic`] for one party: its setup run, then each prediction.
#[derive(Debug, Clone)]
pub struct ServingRuns {
    /// The party's result of the setup run.
    pub setup: PartyResult,
    /// The party's result of each prediction, in order.
    pub predictions: Vec<PartyResult>,
}

/// Which run of a serving session a result is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingRun {
    /// The setup run (masked weights kept in the store).
    Setup,
    /// Prediction `i` (from 0).
    Prediction(usize),
}

/// Runs `party` of a serving graph over QUIC: connects once (the parties check that all run the
/// same serving graph), runs setup with `setup_inputs`, then one prediction per entry of
/// `predictions` (every party must run as many) over the same connections, keeping the party's
/// store in memory between them (see [`crate::exec::serving::ServingParty`]). `on_run` sees
/// each run's result as soon as it has finished (e.g. to write its outputs), so that a session
/// failing later keeps what it had; its error ends the session.
#[allow(clippy::too_many_arguments)]
pub fn run_serving_over_quic(
    graph: &shareflow_compiler::ServingGraph,
    party: &str,
    cluster: &ClusterConfig,
    setup_inputs: &HashMap<String, ArrayD<f32>>,
    predictions: &[HashMap<String, ArrayD<f32>>],
    timeout: Duration,
    randomness: &Randomness,
    on_connected: impl FnOnce(&Connected),
    mut on_run: impl FnMut(ServingRun, &PartyResult) -> Result<()>,
) -> Result<ServingRuns> {
    check_inputs(&graph.setup, party, setup_inputs)?;
    for inputs in predictions {
        check_inputs(&graph.predict, party, inputs)?;
    }
    let mut serving = crate::exec::serving::ServingParty::new(graph, party)?;
    let (parties, digest) = (&graph.setup.parties, serving.digest());
    over_quic(
        cluster,
        party,
        (parties, &serving.largest_batches(parties.len())),
        digest,
        timeout,
        on_connected,
        |t| {
            let setup = serving.setup(t, setup_inputs, randomness)?;
            on_run(ServingRun::Setup, &setup)?;
            let predictions = predictions
                .iter()
                .enumerate()
                .map(|(i, inputs)| {
                    let result = serving.predict(t, inputs, randomness)?;
                    on_run(ServingRun::Prediction(i), &result)?;
                    Ok(result)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(ServingRuns { setup, predictions })
        },
    )
}

/// Connects `party` to the other `parties` (all must show `digest`; each may send frames of at
/// most the given bytes), calls `on_connected`, then runs `body` over the connections.
/// Succeeds only once every party has finished: a session succeeds for all or for none; on an
/// error the party tells its peers why.
pub(crate) fn over_quic<T>(
    cluster: &ClusterConfig,
    party: &str,
    (parties, frames): (&[String], &[usize]),
    digest: [u8; 32],
    timeout: Duration,
    on_connected: impl FnOnce(&Connected),
    body: impl FnOnce(&mut QuicTransport) -> Result<T>,
) -> Result<T> {
    let mut transport =
        QuicTransport::connect_limited(cluster, party, parties, digest, timeout, frames)?;
    on_connected(&Connected {
        party: party.to_string(),
        peers: parties.iter().filter(|p| *p != party).cloned().collect(),
        session: transport.session(),
    });
    match body(&mut transport) {
        Ok(result) => transport.finish().map(|()| result),
        Err(e) => {
            transport.abort(&e);
            Err(e)
        }
    }
}

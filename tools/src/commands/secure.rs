//! Private prediction of a network (of the zoo, from ONNX or a user's graph) over images, every
//! party in this process: the model owner provides the weights, the client the images, and only
//! the client receives the logits.
//!
//! By default ([`SecureModel::persist`]) each batch size is a serving session: its setup program
//! runs once per [`SecureModel::predict`] (the weights shared, masked and opened), then one
//! prediction program per batch reuses them. Without persistence every batch runs the single
//! program that also masks the weights.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::time::Duration;

use ndarray::{s, Array2, ArrayD, Axis, Ix2};
use shareflow_compiler::bounds::Narrowing;
use shareflow_compiler::serving::default_persistent;
use shareflow_compiler::{
    compile_narrowed, compile_serving_narrowed, CompileOptions, CompiledGraph, ProtocolKind,
    ServingGraph,
};
use shareflow_graphs::zoo::{CLIENT, IMAGE, LOGITS, MODEL_OWNER};
use shareflow_graphs::Graph;
use shareflow_runtime::data::Weights;
use shareflow_runtime::exec::{run_in_process, InProcessRun, Plan, ServingSession};

use super::network::Network;
use crate::{Result, ToolError};

/// Figures of a run over many batches. With persistence, the setup runs (one per batch size)
/// are counted apart from the prediction batches.
#[derive(Debug, Clone, Default)]
pub struct SecureStats {
    /// Wall time of each prediction batch, in milliseconds.
    pub batch_ms: Vec<f64>,
    /// Bytes sent by all parties, over all prediction batches.
    pub bytes: u64,
    /// Rounds of one prediction batch.
    pub rounds: u32,
    /// Per party, over all prediction batches: bytes sent, bytes received, wall milliseconds.
    pub per_party: HashMap<String, (u64, u64, f64)>,
    /// Bytes sent by all parties in the setup runs (0 without persistence).
    pub setup_bytes: u64,
    /// Wall time of the setup runs, in milliseconds.
    pub setup_ms: f64,
    /// Rounds of the longest setup run.
    pub setup_rounds: u32,
}

impl SecureStats {
    fn add_batch(&mut self, run: &InProcessRun) {
        self.batch_ms.push(run.wall_ms);
        self.bytes += run.bytes();
        self.rounds = self.rounds.max(run.rounds());
        for p in &run.parties {
            let e = self.per_party.entry(p.metrics.party.clone()).or_default();
            e.0 += p.metrics.bytes_sent;
            e.1 += p.metrics.bytes_received;
            e.2 += p.metrics.wall_ms;
        }
    }
}

/// A network compiled for one protocol, per batch size.
pub struct SecureModel {
    pub network: Network,
    pub protocol: ProtocolKind,
    pub options: CompileOptions,
    /// Serving sessions (setup once, then predictions) rather than one program per batch.
    pub persist: bool,
    /// Advanced by the images of every predicted batch (hidden by default).
    pub progress: indicatif::ProgressBar,
    compiled: HashMap<usize, (CompiledGraph, Vec<Plan>)>,
    serving: HashMap<usize, ServingGraph>,
    narrow: Option<Narrow>,
}

/// What narrowed comparisons are computed from ([`SecureModel::narrow_with`]).
struct Narrow {
    /// The range of every input not given by value (the client's).
    range: (f64, f64),
    /// The model owner's values, by input name.
    values: HashMap<String, ArrayD<f32>>,
}

impl SecureModel {
    /// `network` (a zoo network, an ONNX model or a user's graph) for `protocol`, compiled on first use.
    pub fn new(
        network: impl Into<Network>,
        protocol: ProtocolKind,
        options: CompileOptions,
    ) -> Self {
        SecureModel {
            network: network.into(),
            protocol,
            options,
            persist: true,
            progress: indicatif::ProgressBar::hidden(),
            compiled: HashMap::new(),
            serving: HashMap::new(),
            narrow: None,
        }
    }

    /// Narrows SecureNN's comparisons to the widths proven for client inputs in `range` and
    /// these `weights` (`--input-range`; see `shareflow_compiler::bounds`). The programs then
    /// refuse other weights and inputs outside the range.
    pub fn narrow_with(&mut self, range: (f64, f64), weights: &Weights) {
        self.narrow = Some(Narrow {
            range,
            values: weights
                .arrays
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        });
        self.compiled.clear();
        self.serving.clear();
    }

    /// The widths for `graph`, when narrowed.
    fn narrowing(&self, graph: &Graph) -> Result<Option<Narrowing>> {
        self.narrow
            .as_ref()
            .map(|n| Narrowing::analyse_with_range(graph, &self.options, &n.values, n.range))
            .transpose()
            .map_err(ToolError::from)
    }

    /// The serving graph (setup and prediction programs) for batches of `batch` images.
    pub fn serving(&mut self, batch: usize) -> Result<&ServingGraph> {
        if !self.serving.contains_key(&batch) {
            let net = self.network.build(batch)?;
            let narrowing = self.narrowing(&net.graph)?;
            let g = compile_serving_narrowed(
                &net.graph,
                self.protocol,
                self.options,
                &default_persistent(&net.graph),
                narrowing.as_ref(),
            )?;
            self.serving.insert(batch, g);
        }
        self.serving
            .get(&batch)
            .ok_or_else(|| ToolError::Usage("serving graph missing".into()))
    }

    /// The compiled graph for batches of `batch` images.
    pub fn compiled(&mut self, batch: usize) -> Result<&(CompiledGraph, Vec<Plan>)> {
        if !self.compiled.contains_key(&batch) {
            let net = self.network.build(batch)?;
            let narrowing = self.narrowing(&net.graph)?;
            let g = compile_narrowed(&net.graph, self.protocol, self.options, narrowing.as_ref())?;
            let plans = g
                .programs
                .iter()
                .map(Plan::new)
                .collect::<std::result::Result<Vec<_>, _>>()?;
            self.compiled.insert(batch, (g, plans));
        }
        self.compiled
            .get(&batch)
            .ok_or_else(|| ToolError::Usage("compiled graph missing".into()))
    }

    /// Logits `[n, classes]` for `images` (`[n, 28, 28, 1]`, or the network's input shape),
    /// in batches of at most `batch`.
    pub fn predict(
        &mut self,
        weights: &Weights,
        images: &ArrayD<f32>,
        batch: usize,
    ) -> Result<(Array2<f32>, SecureStats)> {
        let n = images.shape().first().copied().unwrap_or(0);
        self.network.check_batches(n, batch)?;
        let owner_inputs: HashMap<String, ArrayD<f32>> = weights
            .arrays
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // The model owner's inputs, for setups; the single-program runs add the client's batch.
        let setup = HashMap::from([(MODEL_OWNER.to_string(), owner_inputs)]);
        let mut inputs = if self.persist {
            HashMap::new()
        } else {
            setup.clone()
        };
        let mut logits = Array2::zeros((0, 0));
        let mut stats = SecureStats::default();
        let timeout = Duration::from_secs(120);
        let mut sessions: HashMap<usize, ServingSession> = HashMap::new();
        let mut start = 0;
        while start < n {
            let size = batch.max(1).min(n - start);
            let slice = images
                .slice_axis(Axis(0), (start..start + size).into())
                .to_owned();
            let client = HashMap::from([(IMAGE.to_string(), slice)]);
            let run = if self.persist {
                let session = match sessions.entry(size) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let graph = self.serving(size)?.clone();
                        let mut session = ServingSession::new(graph, timeout)?;
                        let run = session.setup(&setup)?;
                        stats.setup_bytes += run.bytes();
                        stats.setup_ms += run.wall_ms;
                        stats.setup_rounds = stats.setup_rounds.max(run.rounds());
                        e.insert(session)
                    }
                };
                session.predict(&HashMap::from([(CLIENT.to_string(), client)]))?
            } else {
                let (graph, plans) = self.compiled(size)?;
                inputs.insert(CLIENT.to_string(), client);
                run_in_process(graph, plans, &inputs, timeout)?
            };
            let out = run.float(CLIENT, LOGITS)?;
            let out = out
                .view()
                .into_dimensionality::<Ix2>()
                .map_err(|e| ToolError::Usage(format!("logits: {e}")))?;
            if logits.nrows() != n {
                logits = Array2::zeros((n, out.ncols()));
            }
            logits.slice_mut(s![start..start + size, ..]).assign(&out);
            stats.add_batch(&run);
            start += size;
            self.progress.inc(size as u64);
        }
        Ok((logits, stats))
    }
}

/// Fraction of rows whose argmax agrees.
pub fn agreement(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    let same = a
        .outer_iter()
        .zip(b.outer_iter())
        .filter(|(x, y)| argmax(x.iter()) == argmax(y.iter()))
        .count();
    same as f64 / a.nrows().max(1) as f64
}

fn argmax<'a>(row: impl Iterator<Item = &'a f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &v) in row.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// Mean KL divergence `KL(softmax(p) || softmax(q))` over rows.
pub fn mean_kl(p: &Array2<f32>, q: &Array2<f32>) -> f64 {
    let softmax = |row: ndarray::ArrayView1<f32>| {
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
        let z: f64 = e.iter().sum();
        e.into_iter().map(|v| v / z).collect::<Vec<_>>()
    };
    let total: f64 = p
        .outer_iter()
        .zip(q.outer_iter())
        .map(|(a, b)| {
            let (pa, pb) = (softmax(a), softmax(b));
            pa.iter()
                .zip(&pb)
                .map(|(&x, &y)| {
                    if x > 0.0 {
                        x * (x / y.max(1e-300)).ln()
                    } else {
                        0.0
                    }
                })
                .sum::<f64>()
        })
        .sum();
    total / p.nrows().max(1) as f64
}

/// Median, min and max of a list of times.
pub fn summary(ms: &[f64]) -> (f64, f64, f64) {
    if ms.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    };
    (median, v[0], v[v.len() - 1])
}

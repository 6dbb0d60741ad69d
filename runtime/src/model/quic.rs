//! [`Model::predict`] with every party a QUIC endpoint on 127.0.0.1 ([`Model::over_quic`]):
//! the same serving graph as in process, each party run by [`run_serving_over_quic`] (the path
//! of `run-graph --serving`) in its own thread with its own certificate of a fresh loopback
//! cluster; the model owner secret-shares the weights once per session, the client alone
//! receives the logits of every batch.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use ndarray::{s, Array2, ArrayD, Axis, Ix2};
use shareflow_compiler::ServingGraph;
use shareflow_graphs::network::{CLIENT, IMAGE, LOGITS, MODEL_OWNER};
use shareflow_ops::plain::to_rank;

use crate::cluster::ClusterConfig;
use crate::exec::Randomness;
use crate::keys::Existing;
use crate::party::run_serving_over_quic;
use crate::{Result, RuntimeError};

/// How long a party waits for a peer's message.
const TIMEOUT: Duration = Duration::from_secs(300);

/// One serving session over QUIC in `dir` (its cluster's certificates and addresses, replaced
/// if there): setup with the model owner's `weights`, then one prediction per batch of `images`
/// (all of `size` examples from `start`, `count` batches). Returns the client's logits of each
/// batch, the bytes every party sent in the predictions and their most rounds.
pub(super) fn predict_batches(
    serving: &ServingGraph,
    dir: &Path,
    weights: &HashMap<String, ArrayD<f32>>,
    images: &ArrayD<f32>,
    (start, size, count): (usize, usize, usize),
) -> Result<(Vec<Array2<f32>>, u64, u32)> {
    let parties = serving.setup.parties.clone();
    let cluster = ClusterConfig::local_with(&parties, dir, 0, Existing::Replace)?;
    let batches: Vec<HashMap<String, ArrayD<f32>>> = (0..count)
        .map(|b| {
            let from = start + b * size;
            let x = images.slice_axis(Axis(0), (from..from + size).into());
            HashMap::from([(IMAGE.to_string(), x.to_owned())])
        })
        .collect();
    let none = HashMap::new();
    let empty = vec![HashMap::new(); count];
    let runs = std::thread::scope(|scope| {
        let handles: Vec<_> = parties
            .iter()
            .map(|party| {
                let setup = if party == MODEL_OWNER { weights } else { &none };
                let predictions = if party == CLIENT { &batches } else { &empty };
                let cluster = &cluster;
                scope.spawn(move || {
                    let runs = run_serving_over_quic(
                        serving,
                        party,
                        cluster,
                        setup,
                        predictions,
                        TIMEOUT,
                        &Randomness::Os,
                        |_| {},
                        |_, _| Ok(()),
                    );
                    (party.clone(), runs)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().map_err(|_| RuntimeError::Node {
                    node: "predict over QUIC".into(),
                    message: "a party's thread panicked".into(),
                })
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let mut logits = Vec::new();
    let (mut bytes, mut rounds) = (0, 0);
    for (party, runs) in runs {
        let runs = runs?;
        for p in &runs.predictions {
            bytes += p.metrics.bytes_sent;
            rounds = rounds.max(p.metrics.rounds);
        }
        if party == CLIENT {
            for p in &runs.predictions {
                let l = p.float(LOGITS)?;
                logits.push(to_rank::<_, Ix2>(l.view(), "logits")?.to_owned());
            }
        }
    }
    Ok((logits, bytes, rounds))
}

/// Writes the batches' `logits` into `out` (created `[n, classes]` by the first) from row
/// `start`, `size` rows each.
pub(super) fn place(
    out: &mut Option<Array2<f32>>,
    n: usize,
    logits: &[Array2<f32>],
    start: usize,
    size: usize,
) {
    for (b, l) in logits.iter().enumerate() {
        let from = start + b * size;
        out.get_or_insert_with(|| Array2::zeros((n, l.ncols())))
            .slice_mut(s![from..from + size, ..])
            .assign(l);
    }
}

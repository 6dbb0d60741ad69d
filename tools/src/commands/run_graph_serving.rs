//! `run-graph --serving`: one party of a serving graph (`shareflow compile --serving -o FILE`)
//! over QUIC. The party connects once, runs the setup program (the persistent parties' inputs:
//! the model owner's weights are shared, masked and opened) and then `--predictions N`
//! prediction programs over the same connections, keeping its store (stamped with the serving
//! graph's digest) in memory between them.
//!
//! Inputs: those the setup program expects of this party are given once; those the prediction
//! program expects are given N times (the i-th file feeds prediction i) or once (every
//! prediction uses it). Outputs of prediction i are written as `DIR/<name>.<i>.npy` as soon as
//! that prediction has finished (atomically: a temporary file renamed), so that a session that
//! fails later keeps every finished prediction; outputs of setup (if any) as
//! `DIR/<name>.setup.npy`. The report (one JSON object on stdout) has the
//! setup's metrics under `setup` and each prediction's under `predictions`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use shareflow_compiler::ServingGraph;
use shareflow_runtime::cluster::ClusterConfig;
use shareflow_runtime::data::npy::{read_npy, write_npy_atomic};
use shareflow_runtime::data::Weights;
use shareflow_runtime::exec::{PartyResult, Randomness};
use shareflow_runtime::party::{run_serving_over_quic, ServingRun};

use super::run_graph::Args;
use crate::ToolError;

pub fn run(args: Args) -> Result<(), ToolError> {
    let file_err = |path: &Path, message: String| ToolError::File {
        path: path.display().to_string(),
        message,
    };
    let text =
        std::fs::read_to_string(&args.graph).map_err(|e| file_err(&args.graph, e.to_string()))?;
    let graph = ServingGraph::from_json(&text).map_err(|e| {
        file_err(
            &args.graph,
            format!("{e} (a serving graph comes from `shareflow compile --serving -o FILE`)"),
        )
    })?;
    let timeout = args.timeout()?;
    let cluster = ClusterConfig::load(&args.cluster)?;
    let (setup, predictions) = split_inputs(&graph, &args)?;
    std::fs::create_dir_all(&args.output_dir)
        .map_err(|e| file_err(&args.output_dir, e.to_string()))?;
    let mut written = Vec::new();
    let runs = run_serving_over_quic(
        &graph,
        &args.party,
        &cluster,
        &setup,
        &predictions,
        timeout,
        &Randomness::Os,
        |c| {
            let session: String = c.session.iter().map(|b| format!("{b:02x}")).collect();
            eprintln!(
                "run-graph: {}: connected to {} (session {session}), serving: setup and {} \
                 predictions",
                c.party,
                c.peers.join(", "),
                predictions.len()
            );
        },
        |run, result| {
            let tag = match run {
                ServingRun::Setup => "setup".to_string(),
                ServingRun::Prediction(i) => i.to_string(),
            };
            written.extend(write_outputs(&args.output_dir, result, &tag)?);
            Ok(())
        },
    )?;
    let report = serde_json::json!({
        "party": args.party,
        "protocol": graph.predict.protocol,
        "transport": "quic",
        "serving": true,
        "outputs": written,
        "setup": runs.setup.metrics,
        "predictions": runs.predictions.iter().map(|p| &p.metrics).collect::<Vec<_>>(),
    });
    println!("{report}");
    Ok(())
}

type Inputs = HashMap<String, ArrayD<f32>>;

/// This party's setup inputs and each prediction's inputs, from `--weights` and `--input`.
fn split_inputs(graph: &ServingGraph, args: &Args) -> Result<(Inputs, Vec<Inputs>), ToolError> {
    let expects = |g: &shareflow_compiler::CompiledGraph, name: &str| {
        g.inputs
            .iter()
            .any(|i| i.party == args.party && i.name == name)
    };
    let mut given: Vec<(String, ArrayD<f32>)> = Vec::new();
    if let Some(w) = &args.weights {
        given.extend(Weights::load(w)?.arrays);
    }
    for spec in &args.inputs {
        let (name, file) = spec
            .split_once('=')
            .ok_or_else(|| ToolError::Usage(format!("--input {spec:?}: expected NAME=FILE.npy")))?;
        given.push((name.to_string(), read_npy(&PathBuf::from(file))?));
    }
    let mut setup = Inputs::new();
    let mut fresh: HashMap<String, Vec<ArrayD<f32>>> = HashMap::new();
    for (name, value) in given {
        if expects(&graph.predict, &name) {
            fresh.entry(name).or_default().push(value);
        } else if setup.insert(name.clone(), value).is_some() {
            return Err(ToolError::Usage(format!(
                "input {name:?} given twice, but it is a setup input (given once)"
            )));
        }
        // names of neither program stay in `setup`: the runtime refuses them by name
    }
    let n = args
        .predictions
        .unwrap_or_else(|| fresh.values().map(Vec::len).max().unwrap_or(1));
    if n == 0 {
        return Err(ToolError::Usage("--predictions must be at least 1".into()));
    }
    let mut predictions = vec![Inputs::new(); n];
    for (name, values) in fresh {
        if values.len() != 1 && values.len() != n {
            return Err(ToolError::Usage(format!(
                "input {name:?} given {} times for {n} predictions: give it once or {n} times",
                values.len()
            )));
        }
        for (i, p) in predictions.iter_mut().enumerate() {
            p.insert(name.clone(), values[i.min(values.len() - 1)].clone());
        }
    }
    Ok((setup, predictions))
}

/// Writes the float outputs of one run as `DIR/<name>.<tag>.npy`, each atomically.
fn write_outputs(
    dir: &Path,
    run: &PartyResult,
    tag: &str,
) -> shareflow_runtime::Result<Vec<String>> {
    let mut written = Vec::new();
    let mut names: Vec<_> = run.outputs.keys().collect();
    names.sort();
    for name in names {
        if let Some(shareflow_ops::Value::Float(a)) = run.outputs.get(name) {
            let path = dir.join(format!("{}.{tag}.npy", name.replace('/', "_")));
            write_npy_atomic(&path, a)?;
            written.push(path.display().to_string());
        }
    }
    Ok(written)
}

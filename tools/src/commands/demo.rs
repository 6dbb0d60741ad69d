//! `shareflow demo`: the main job. A private prediction of one MNIST digit with every party a
//! separate process on 127.0.0.1 over QUIC with mutual TLS: certificates are made in a
//! temporary directory, the network is compiled, and one `run-graph` process per party is
//! started. Prints the predicted digit, the true label, agreement with the plaintext model,
//! wall time, bytes and rounds. The folder is removed at the end, and also when SIGINT,
//! SIGTERM or SIGHUP stops the demo (the parties are killed first).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::ArrayD;
use serde_json::Value;
use shareflow_compiler::{compile_narrowed, CompiledGraph, ProtocolKind};
use shareflow_graphs::zoo::{CLIENT, LOGITS};
use shareflow_runtime::data::npy::{read_npy, write_npy};
use shareflow_runtime::data::{data_dir, Mnist, Split, Weights};
use shareflow_runtime::plain::train::argmax;

use super::interrupt;
use super::network::Network;
use super::parties::{run_local_parties, PartyInputs};
use crate::report::{party_figures, Report};
use crate::{Result, ToolError};

/// Options of `demo`.
pub struct DemoArgs {
    /// A zoo network, an ONNX model or a user's graph.
    pub model: Network,
    /// The model owner's weights (`--weights`; see [`Network::weights`]).
    pub weights: Option<PathBuf>,
    pub protocol: ProtocolKind,
    pub options: super::Options,
    /// Which test image.
    pub index: usize,
    pub data: Option<PathBuf>,
    pub timeout_s: f64,
    pub json: bool,
}

fn io(path: &Path, e: impl ToString) -> ToolError {
    ToolError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

pub fn run(args: DemoArgs) -> Result<()> {
    let test = Mnist::load(
        &data_dir(args.data.clone()),
        Split::Test,
        Some(args.index + 1),
    )?;
    if args.index >= test.len() {
        return Err(ToolError::Usage(format!(
            "--index {} is beyond the test set",
            args.index
        )));
    }
    let image = args.model.inputs(&test.batch(args.index, args.index + 1))?;
    let label = test.labels[args.index];
    let weights = args.model.weights(args.weights.clone())?;
    let zoo = args.model.build(1)?;
    let options = args.model.options(&args.options);
    // `--input-range`: the model owner's bound narrows the comparisons, and the compiled
    // program makes the client and the model owner check what it assumed before sharing.
    let narrowing = match args.options.input_range {
        Some(range) => {
            let values = weights
                .arrays
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Some(shareflow_compiler::bounds::Narrowing::analyse_with_range(
                &zoo.graph, &options, &values, range,
            )?)
        }
        None => None,
    };
    let compiled = compile_narrowed(&zoo.graph, args.protocol, options, narrowing.as_ref())?;
    let cost = compiled.cost();

    // From here a private folder holds keys, the image and the logits: a signal stops the
    // parties and removes it instead of ending this process at once.
    interrupt::catch()?;
    let dir =
        tempfile::tempdir().map_err(|e| ToolError::Usage(format!("temporary directory: {e}")))?;
    let ran = run_parties(&args, &compiled, dir.path(), &image, &weights);
    let path = dir.path().to_path_buf();
    let removed = dir.close().map_err(|e| io(&path, e));
    // A Ctrl-C reaches the parties too: report the signal, not their deaths.
    interrupt::check()?;
    let Ran {
        metrics,
        logits,
        wall_ms,
    } = ran?;
    removed?;

    let secure_digit = argmax(logits.as_slice().unwrap_or(&[]));
    let plain = args
        .model
        .predict_plain(&weights, &image, 1, &mut |_, _| {})?;
    let plain_digit = argmax(plain.as_slice().unwrap_or(&[]));
    let bytes: u64 = metrics
        .iter()
        .map(|(_, m)| m["bytes_sent"].as_u64().unwrap_or(0))
        .sum();
    let rounds = metrics
        .iter()
        .map(|(_, m)| m["rounds"].as_u64().unwrap_or(0))
        .max()
        .unwrap_or(0);
    let mut per_party = serde_json::Map::new();
    for (p, m) in &metrics {
        per_party.insert(
            p.clone(),
            party_figures(
                m["bytes_sent"].as_u64().unwrap_or(0),
                m["bytes_received"].as_u64().unwrap_or(0),
                m["wall_ms"].as_f64(),
            ),
        );
    }
    let mut r = Report::new();
    r.set("model", args.model.to_string())
        .set("protocol", args.protocol.name())
        .set("transport", "quic")
        .set("batch", 1)
        .set("images", 1)
        .set("index", args.index)
        .set("label", label)
        .set("predicted", secure_digit)
        .set("plaintext_predicted", plain_digit)
        .set(
            "agreement",
            if secure_digit == plain_digit {
                1.0
            } else {
                0.0
            },
        )
        .set("wall_ms", wall_ms)
        // one timed prediction: its time is the median, the minimum and the maximum
        .set("median_ms", wall_ms)
        .set("min_ms", wall_ms)
        .set("max_ms", wall_ms)
        .set("bytes", bytes)
        .set("static_bytes", cost.bytes)
        .set("rounds", rounds)
        .set("per_party", serde_json::Value::Object(per_party));
    if let Some(range) = args.options.input_range {
        r.set("input_range", vec![range.0, range.1]);
    }
    if args.json {
        r.print(true);
    } else {
        println!(
            "network {} under {}, {} parties as separate processes on 127.0.0.1 over QUIC (mutual TLS)",
            args.model,
            args.protocol.name(),
            compiled.parties.len()
        );
        println!(
            "test image #{}: predicted {secure_digit}, true label {label}, plaintext model says {plain_digit} ({})",
            args.index,
            if secure_digit == plain_digit { "agrees" } else { "DISAGREES" }
        );
        println!(
            "wall time {wall_ms:.1} ms (processes started, connected, ran), {bytes} bytes sent in {rounds} rounds"
        );
        if let Some((lo, hi)) = args.options.input_range {
            println!(
                "comparisons narrowed for inputs in [{lo}, {hi}] (the widths: `shareflow compile --cost --input-range {lo},{hi}`)"
            );
        }
        for (p, m) in &metrics {
            println!(
                "  {p:<12} sent {:>10} bytes, ran {:>8.1} ms",
                m["bytes_sent"].as_u64().unwrap_or(0),
                m["wall_ms"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}

/// What the parties' processes gave.
struct Ran {
    /// Each party's metrics.
    metrics: Vec<(String, Value)>,
    /// What the client received.
    logits: ArrayD<f32>,
    /// From starting the processes to the last one's end.
    wall_ms: f64,
}

/// Writes the compiled graph and the image into `dir` and runs one process per party there (a
/// fresh CA, certificates and loopback ports).
fn run_parties(
    args: &DemoArgs,
    compiled: &CompiledGraph,
    dir: &Path,
    image: &ArrayD<f32>,
    weights: &Weights,
) -> Result<Ran> {
    let graph_path = dir.join("compiled.json");
    let json = compiled.to_json()?;
    std::fs::write(&graph_path, json).map_err(|e| io(&graph_path, e))?;
    let image_path = dir.join("image.npy");
    write_npy(&image_path, image)?;
    let exe = std::env::current_exe()
        .map_err(|e| ToolError::Usage(format!("cannot find this executable: {e}")))?;
    let start = Instant::now();
    let metrics = run_local_parties(
        &exe,
        &compiled.parties,
        dir,
        &graph_path,
        &PartyInputs::prediction(
            &args
                .model
                .weights_file(args.weights.as_deref(), weights, dir)?,
            &image_path,
        ),
        args.timeout_s,
        None,
    )?
    .into_iter()
    .map(|(party, report)| (party, report["metrics"].clone()))
    .collect();
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    let logits = read_npy(
        &dir.join(format!("out-{CLIENT}"))
            .join(format!("{LOGITS}.npy")),
    )?;
    Ok(Ran {
        metrics,
        logits,
        wall_ms,
    })
}

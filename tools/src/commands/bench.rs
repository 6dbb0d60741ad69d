//! `shareflow bench`: the benchmark table of networks A-D (or of an ONNX model, `--onnx`, or a
//! user's graph, `--graph` with `--weights`).
//!
//! For every combination of network, protocol, transport and batch size: a warm-up private
//! prediction, then `reps` timed ones on the first `batch` test images (median, min and max
//! wall time, bytes sent by all parties per prediction, rounds, and each party's own figures),
//! the plaintext model's time on the same images (median of as many repetitions), and, per
//! network and protocol, accuracy, agreement with plaintext and mean KL divergence over the
//! test set (or its first `--limit` images), predicted in process in batches of 128.
//!
//! By default the predictions run as a serving session, the way a deployed model serves
//! clients: the parties connect and run the setup program once (the model owner's weights
//! shared, masked and opened; its time and bytes are reported as `setup_ms`, `setup_bytes`),
//! then the warm-up and the timed predictions over the same connections and buffers. With
//! `--single` every prediction is one whole program (weights shared and masked each time,
//! and over `quic` the processes started afresh for each repetition).
//!
//! Over `quic` every party is its own `shareflow run-graph` process on 127.0.0.1; the time
//! that counts is the parties' own run time after they have connected (the maximum over
//! parties of `metrics.wall_ms`), not process start-up.
//!
//! A network a protocol cannot compile (Pond has no maxpool: networks B and C) is skipped under
//! that protocol with a note.
//!
//! Every row also has its floor ([`super::floor`]): rounds x the measured round trip + bytes /
//! the measured bandwidth + the plaintext time, and the ratio of the measured median to it.
//!
//! With `--train` the rows are training steps instead ([`super::bench_train`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ndarray::ArrayD;
use serde_json::{json, Map, Value};
use shareflow_compiler::ProtocolKind;
use shareflow_graphs::zoo::{CLIENT, IMAGE, MODEL_OWNER};
use shareflow_runtime::data::npy::write_npy;
use shareflow_runtime::data::{data_dir, Mnist, Split, Weights};
use shareflow_runtime::exec::{run_in_process, InProcessRun, ServingSession};
use shareflow_runtime::plain::train::accuracy;

use super::floor::Link;
use super::network::Network;
use super::parties::{run_local_parties, PartyInputs};
use super::secure::{agreement, mean_kl, summary, SecureModel};
use crate::report::{party_figures, Report};
use crate::{Result, ToolError};

/// Batch size of the accuracy pass (in process).
const ACCURACY_BATCH: usize = 128;

/// Options of `bench`.
pub struct BenchArgs {
    /// Zoo networks, or one ONNX model or user's graph.
    pub models: Vec<Network>,
    /// The model owner's weights (`--weights`, one network only; see [`Network::weights`]).
    pub weights: Option<PathBuf>,
    pub protocols: Vec<ProtocolKind>,
    /// `inproc` and/or `quic`.
    pub transports: Vec<String>,
    pub batches: Vec<usize>,
    /// Timed repetitions after the warm-up.
    pub reps: usize,
    /// Images of the accuracy pass (default: the whole test set).
    pub limit: Option<usize>,
    pub data: Option<PathBuf>,
    pub options: super::Options,
    /// Seconds a QUIC party waits for a peer.
    pub timeout_s: f64,
    pub json: bool,
    pub markdown: Option<PathBuf>,
    /// One whole program per prediction instead of a serving session.
    pub single: bool,
    /// Time SGD steps of a private training session instead of predictions.
    pub train: bool,
}

/// One party's figures over the timed repetitions.
#[derive(Default)]
struct PartyFigures {
    bytes: u64,
    bytes_received: u64,
    wall_ms: Vec<f64>,
    kernel_ms: Vec<f64>,
    /// Per kernel kind: total milliseconds, summed over repetitions.
    kernels: BTreeMap<String, f64>,
}

/// The timed repetitions of one combination.
#[derive(Default)]
pub(super) struct Timing {
    pub(super) ms: Vec<f64>,
    pub(super) bytes: u64,
    pub(super) rounds: u64,
    parties: BTreeMap<String, PartyFigures>,
    /// A serving session's setup: wall milliseconds and bytes, once.
    setup: Option<(f64, u64)>,
}

impl Timing {
    /// Adds one repetition from the parties' metrics (as JSON, the way `run-graph` prints them).
    pub(super) fn add(&mut self, metrics: &[Value], wall_ms: f64) {
        self.ms.push(wall_ms);
        let mut bytes = 0;
        for m in metrics {
            let name = m["party"].as_str().unwrap_or("?").to_string();
            let f = self.parties.entry(name).or_default();
            let b = m["bytes_sent"].as_u64().unwrap_or(0);
            bytes += b;
            f.bytes = b;
            f.bytes_received = m["bytes_received"].as_u64().unwrap_or(0);
            f.wall_ms.push(m["wall_ms"].as_f64().unwrap_or(0.0));
            let mut kernel_ms = 0.0;
            if let Some(k) = m["kernels"].as_object() {
                for (kind, v) in k {
                    let ms = v["ms"].as_f64().unwrap_or(0.0);
                    kernel_ms += ms;
                    *f.kernels.entry(kind.clone()).or_default() += ms;
                }
            }
            f.kernel_ms.push(kernel_ms);
            self.rounds = self.rounds.max(m["rounds"].as_u64().unwrap_or(0));
        }
        self.bytes = bytes;
    }

    /// Per party, per repetition: bytes sent and received, median wall time.
    pub(super) fn per_party(&self) -> Value {
        let out: Map<String, Value> = self
            .parties
            .iter()
            .map(|(p, f)| {
                let ms = round3(summary(&f.wall_ms).0);
                (
                    p.clone(),
                    party_figures(f.bytes, f.bytes_received, Some(ms)),
                )
            })
            .collect();
        Value::Object(out)
    }

    /// Per party: the median time in kernels and the mean time per kernel kind.
    pub(super) fn kernels_per_party(&self) -> Value {
        let mut out = Map::new();
        let reps = self.ms.len().max(1) as f64;
        for (p, f) in &self.parties {
            let mut kernels: Vec<(&String, &f64)> = f.kernels.iter().collect();
            kernels.sort_by(|a, b| b.1.total_cmp(a.1));
            let kernels: Map<String, Value> = kernels
                .into_iter()
                .map(|(k, ms)| (k.clone(), json!(round3(ms / reps))))
                .collect();
            out.insert(
                p.clone(),
                json!({
                    "kernel_ms": round3(summary(&f.kernel_ms).0),
                    "kernels": kernels,
                }),
            );
        }
        Value::Object(out)
    }
}

pub(super) fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// Accuracy figures of one network under one protocol.
struct Quality {
    images: usize,
    accuracy: f64,
    plaintext_accuracy: f64,
    agreement: f64,
    kl: f64,
}

pub(super) fn io(path: &Path, e: impl ToString) -> ToolError {
    ToolError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

pub(super) fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.reps == 0 {
        return Err(ToolError::Usage("--reps must be at least 1".into()));
    }
    for t in &args.transports {
        if t != "inproc" && t != "quic" {
            return Err(ToolError::Usage(format!(
                "unknown transport {t:?} (inproc, quic)"
            )));
        }
    }
    if args.batches.contains(&0) {
        return Err(ToolError::Usage("--batch must be at least 1".into()));
    }
    if args.train {
        return super::bench_train::run(&args);
    }
    let max_batch = args.batches.iter().copied().max().unwrap_or(1);
    let dir = data_dir(args.data.clone());
    let test = Mnist::load(&dir, Split::Test, args.limit.map(|l| l.max(max_batch)))?;
    let acc_n = args.limit.unwrap_or(test.len()).min(test.len());
    if test.len() < max_batch {
        return Err(ToolError::Usage(format!(
            "the test set has fewer than {max_batch} images"
        )));
    }
    let acc_images = test.batch(0, acc_n);
    let acc_labels = &test.labels[..acc_n];
    if args.weights.is_some() && args.models.len() > 1 {
        return Err(ToolError::Usage(
            "--weights gives the weights of one network: bench one --model with it".into(),
        ));
    }

    let mut rows: Vec<Value> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut links: BTreeMap<String, Link> = BTreeMap::new();
    for t in &args.transports {
        progress(&format!(
            "{t}: measuring the round trip and bandwidth of the floor"
        ));
        links.insert(t.clone(), Link::measure(t)?);
    }
    let started = Instant::now();
    let exe_dir =
        tempfile::tempdir().map_err(|e| ToolError::Usage(format!("temporary directory: {e}")))?;
    let exe = if args.transports.iter().any(|t| t == "quic") {
        party_exe(exe_dir.path())?
    } else {
        PathBuf::new()
    };
    for model in &args.models {
        // A user's graph runs at its own batch only: the accuracy pass too.
        let acc_batch = model.fixed_batch().unwrap_or(ACCURACY_BATCH);
        model.check_batches(acc_n, acc_batch)?;
        for &batch in &args.batches {
            model.check_batches(batch, batch)?;
        }
        let weights = model.weights(args.weights.clone())?;
        let acc_inputs = model.inputs(&acc_images)?;
        let plain_logits = model.predict_plain(&weights, &acc_inputs, acc_batch, &mut |_, _| {})?;
        let plaintext_accuracy = accuracy(&plain_logits, acc_labels);
        for &protocol in &args.protocols {
            let mut secure =
                SecureModel::new(model.clone(), protocol, model.options(&args.options));
            if let Some(range) = args.options.input_range {
                secure.narrow_with(range, &weights);
            }
            // A network the protocol cannot compile (maxpool under Pond) is a note of the table.
            if let Err(e) = secure.serving(acc_batch.min(acc_n).max(1)) {
                let note = format!("{model} under {}: skipped ({e})", protocol.name());
                progress(&note);
                notes.push(note);
                continue;
            }
            progress(&format!(
                "{model} {}: accuracy over {acc_n} images",
                protocol.name()
            ));
            let (logits, _) = secure.predict(&weights, &acc_inputs, acc_batch)?;
            let quality = Quality {
                images: acc_n,
                accuracy: accuracy(&logits, acc_labels),
                plaintext_accuracy,
                agreement: agreement(&logits, &plain_logits),
                kl: mean_kl(&plain_logits, &logits),
            };
            for transport in &args.transports {
                for &batch in &args.batches {
                    progress(&format!(
                        "{model} {} {transport} batch {batch}: 1 warm-up + {} reps ({:.0} s so far)",
                        protocol.name(),
                        args.reps,
                        started.elapsed().as_secs_f64()
                    ));
                    let images = model.inputs(&test.batch(0, batch))?;
                    let plain_ms = plaintext_times(model, &weights, &images, batch, args.reps)?;
                    let owner = Owner {
                        weights: &weights,
                        explicit: args.weights.as_deref(),
                    };
                    let timing = match (transport.as_str(), args.single) {
                        ("quic", true) => {
                            time_quic(&mut secure, owner, &images, batch, &args, &exe)
                        }
                        ("quic", false) => {
                            time_quic_serving(&mut secure, owner, &images, batch, &args, &exe)
                        }
                        (_, true) => time_inproc(&mut secure, &weights, &images, batch, args.reps),
                        (_, false) => {
                            time_inproc_serving(&mut secure, &weights, &images, batch, args.reps)
                        }
                    };
                    // A failed combination is a note of the table, not the end of the run.
                    match timing {
                        Ok(t) => rows.push(row(
                            model,
                            protocol,
                            (transport, &links[transport]),
                            batch,
                            &quality,
                            &t,
                            &plain_ms,
                        )),
                        Err(e) => {
                            let note = format!(
                                "{model} under {} over {transport} at batch {batch}: failed: {e}",
                                protocol.name()
                            );
                            progress(&note);
                            notes.push(note);
                        }
                    }
                }
            }
        }
    }

    let machine = machine();
    let date = today();
    let link_json: Map<String, Value> = links
        .iter()
        .map(|(t, l)| {
            let v =
                json!({"rtt_ms": round3(l.rtt_ms), "bandwidth_mb_s": round3(l.bytes_per_ms / 1e3)});
            (t.clone(), v)
        })
        .collect();
    if let Some(path) = &args.markdown {
        let text = markdown(&rows, &notes, &links, &machine, &date, &args);
        std::fs::write(path, text).map_err(|e| io(path, e))?;
        progress(&format!("wrote {}", path.display()));
    }
    if args.json {
        let mut r = Report::new();
        r.set("date", date)
            .set("machine", machine)
            .set("reps", args.reps)
            .set("links", Value::Object(link_json))
            .set("rows", Value::Array(rows))
            .set("notes", notes);
        r.print(true);
    } else {
        print!(
            "{}",
            markdown(&rows, &notes, &links, &machine, &date, &args)
        );
    }
    Ok(())
}

fn row(
    model: &Network,
    protocol: ProtocolKind,
    (transport, link): (&str, &Link),
    batch: usize,
    q: &Quality,
    t: &Timing,
    plain_ms: &[f64],
) -> Value {
    let (median, min, max) = summary(&t.ms);
    let plain = summary(plain_ms).0;
    let floor = link.floor_ms(t.rounds, t.bytes, plain);
    let mut r = Report::new();
    r.set("model", model.to_string())
        .set("protocol", protocol.name())
        .set("transport", transport)
        .set("batch", batch)
        .set("images", q.images)
        .set("accuracy", q.accuracy)
        .set("plaintext_accuracy", q.plaintext_accuracy)
        .set("agreement", q.agreement)
        .set("kl", q.kl)
        .set("median_ms", round3(median))
        .set("min_ms", round3(min))
        .set("max_ms", round3(max))
        .set("plaintext_ms", round3(plain))
        .set("floor_ms", round3(floor))
        .set("floor_ratio", round3(median / floor.max(1e-9)))
        .set(
            "images_per_s",
            round3(batch as f64 / (median / 1e3).max(1e-9)),
        )
        .set("bytes", t.bytes)
        .set("bytes_per_image", t.bytes / batch as u64)
        .set("rounds", t.rounds)
        .set("serving", t.setup.is_some())
        .set("setup_ms", t.setup.map(|(ms, _)| round3(ms)))
        .set("setup_bytes", t.setup.map(|(_, b)| b))
        .set("reps", t.ms.len())
        .set("per_party", t.per_party())
        .set("per_party_kernels", t.kernels_per_party());
    r.json()
}

/// Plaintext prediction of the same images: one warm-up, then `reps` timed runs.
fn plaintext_times(
    model: &Network,
    weights: &Weights,
    images: &ArrayD<f32>,
    batch: usize,
    reps: usize,
) -> Result<Vec<f64>> {
    let predict = || model.predict_plain(weights, images, batch, &mut |_, _| {});
    predict()?;
    let mut ms = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        std::hint::black_box(predict()?);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(ms)
}

fn party_inputs(
    weights: &Weights,
    images: &ArrayD<f32>,
) -> HashMap<String, HashMap<String, ArrayD<f32>>> {
    let mut inputs = HashMap::new();
    inputs.insert(
        MODEL_OWNER.to_string(),
        weights
            .arrays
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    inputs.insert(
        CLIENT.to_string(),
        HashMap::from([(IMAGE.to_string(), images.clone())]),
    );
    inputs
}

/// Every party in this process: a warm-up and `reps` timed predictions of `images`.
fn time_inproc(
    secure: &mut SecureModel,
    weights: &Weights,
    images: &ArrayD<f32>,
    batch: usize,
    reps: usize,
) -> Result<Timing> {
    let inputs = party_inputs(weights, images);
    let (graph, plans) = secure.compiled(batch)?;
    let run = || {
        Ok(run_in_process(
            graph,
            plans,
            &inputs,
            Duration::from_secs(600),
        )?)
    };
    time_runs(Timing::default(), reps, run)
}

/// Every party in this process, as a serving session: the setup once, then a warm-up and
/// `reps` timed predictions of `images`.
fn time_inproc_serving(
    secure: &mut SecureModel,
    weights: &Weights,
    images: &ArrayD<f32>,
    batch: usize,
    reps: usize,
) -> Result<Timing> {
    let mut inputs = party_inputs(weights, images);
    let client = inputs.remove(CLIENT).unwrap_or_default();
    let graph = secure.serving(batch)?.clone();
    let mut session = ServingSession::new(graph, Duration::from_secs(600))?;
    let setup = session.setup(&inputs)?;
    let timing = Timing {
        setup: Some((setup.wall_ms, setup.bytes())),
        ..Timing::default()
    };
    let inputs = HashMap::from([(CLIENT.to_string(), client)]);
    time_runs(timing, reps, || Ok(session.predict(&inputs)?))
}

/// A warm-up and `reps` timed in-process runs, added to `timing`.
fn time_runs(
    mut timing: Timing,
    reps: usize,
    mut run: impl FnMut() -> Result<InProcessRun>,
) -> Result<Timing> {
    for rep in 0..=reps {
        let run = run()?;
        if rep == 0 {
            continue;
        }
        let metrics: Vec<Value> = run
            .parties
            .iter()
            .map(|p| serde_json::to_value(&p.metrics).unwrap_or(Value::Null))
            .collect();
        timing.add(&metrics, run.wall_ms);
    }
    Ok(timing)
}

/// The model owner's weights, and the file they came from if the user gave one.
#[derive(Clone, Copy)]
struct Owner<'a> {
    weights: &'a Weights,
    explicit: Option<&'a Path>,
}

/// A temporary directory holding the graph (as `name`, from `json`) and the images, for the
/// party processes, and the files each party reads (the model owner's weights from the user's
/// or the committed file, or written there for an ONNX model).
fn party_files(
    json: String,
    name: &str,
    images: &ArrayD<f32>,
    network: &Network,
    owner: Owner,
) -> Result<PartyFiles> {
    let dir =
        tempfile::tempdir().map_err(|e| ToolError::Usage(format!("temporary directory: {e}")))?;
    let graph = dir.path().join(name);
    std::fs::write(&graph, json).map_err(|e| io(&graph, e))?;
    let image = dir.path().join("image.npy");
    write_npy(&image, images)?;
    let weights = network.weights_file(owner.explicit, owner.weights, dir.path())?;
    let given = PartyInputs::prediction(&weights, &image);
    Ok(PartyFiles { dir, graph, given })
}

struct PartyFiles {
    dir: tempfile::TempDir,
    graph: PathBuf,
    given: PartyInputs,
}

impl PartyFiles {
    /// Every party as its own process on fresh loopback ports ([`run_local_parties`]), once
    /// more if that fails (a port may have been taken meanwhile); each party's report.
    fn run(
        &self,
        exe: &Path,
        parties: &[String],
        args: &BenchArgs,
        serving: Option<usize>,
    ) -> Result<Vec<(String, Value)>> {
        let run = || {
            let (dir, timeout) = (self.dir.path(), args.timeout_s);
            run_local_parties(
                exe,
                parties,
                dir,
                &self.graph,
                &self.given,
                timeout,
                serving,
            )
        };
        run().or_else(|e| {
            progress(&format!("quic run failed, retrying once: {e}"));
            run()
        })
    }
}

/// One process per party on 127.0.0.1, connected once as a serving session: the setup, a
/// warm-up and `reps` timed predictions over the same connections.
fn time_quic_serving(
    secure: &mut SecureModel,
    owner: Owner,
    images: &ArrayD<f32>,
    batch: usize,
    args: &BenchArgs,
    exe: &Path,
) -> Result<Timing> {
    let graph = secure.serving(batch)?;
    let json = serde_json::to_string(graph).map_err(|e| ToolError::Usage(e.to_string()))?;
    let parties = graph.predict.parties.clone();
    let files = party_files(json, "serving.json", images, &secure.network, owner)?;
    let reports = files.run(exe, &parties, args, Some(args.reps + 1))?;
    let setup = || reports.iter().map(|(_, r)| &r["setup"]);
    let setup_bytes = setup().map(|m| m["bytes_sent"].as_u64().unwrap_or(0)).sum();
    let mut timing = Timing {
        setup: Some((slowest(setup()), setup_bytes)),
        ..Timing::default()
    };
    for rep in 1..=args.reps {
        let metrics: Vec<Value> = reports
            .iter()
            .map(|(_, r)| r["predictions"][rep].clone())
            .collect();
        timing.add(&metrics, slowest(&metrics));
    }
    Ok(timing)
}

/// A private copy of this executable for the party processes, so that rebuilding the binary
/// while a long benchmark runs does not pull it away from under the later repetitions.
fn party_exe(dir: &Path) -> Result<PathBuf> {
    let exe = std::env::current_exe()
        .map_err(|e| ToolError::Usage(format!("cannot find this executable: {e}")))?;
    let copy = dir.join("shareflow");
    if std::fs::hard_link(&exe, &copy).is_err() {
        std::fs::copy(&exe, &copy).map_err(|e| io(&copy, e))?;
    }
    Ok(copy)
}

/// One process per party on 127.0.0.1, started afresh for a warm-up and each repetition.
fn time_quic(
    secure: &mut SecureModel,
    owner: Owner,
    images: &ArrayD<f32>,
    batch: usize,
    args: &BenchArgs,
    exe: &Path,
) -> Result<Timing> {
    let (graph, _) = secure.compiled(batch)?;
    let json = graph.to_json()?;
    let parties = graph.parties.clone();
    let files = party_files(json, "compiled.json", images, &secure.network, owner)?;
    let mut timing = Timing::default();
    for rep in 0..=args.reps {
        let metrics: Vec<Value> = files
            .run(exe, &parties, args, None)?
            .into_iter()
            .map(|(_, r)| r["metrics"].clone())
            .collect();
        if rep == 0 {
            continue;
        }
        timing.add(&metrics, slowest(&metrics));
    }
    Ok(timing)
}

/// The longest run time among the parties' metrics: a run lasts until its last party ends.
fn slowest<'a>(metrics: impl IntoIterator<Item = &'a Value>) -> f64 {
    metrics
        .into_iter()
        .map(|m| m["wall_ms"].as_f64().unwrap_or(0.0))
        .fold(0.0, f64::max)
}

/// `nproc` and the CPU model.
pub(super) fn machine() -> String {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{n} cores (nproc), {cpu}")
}

/// Today's date (UTC) as YYYY-MM-DD.
pub(super) fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn markdown(
    rows: &[Value],
    notes: &[String],
    links: &BTreeMap<String, Link>,
    machine: &str,
    date: &str,
    args: &BenchArgs,
) -> String {
    let mut s = String::new();
    let mode = if args.single {
        "each prediction one whole program (the weights shared and masked every time; over `quic` the processes started afresh each time)"
    } else {
        "a serving session per row: the parties connect and share and mask the weights once (setup, reported apart and not timed), then predict over the same connections"
    };
    let _ = writeln!(s, "Measured {date} on {machine} with `shareflow bench`: private prediction of the first `batch` MNIST test images, median (min-max) of {} runs after a warm-up; {mode}. `quic` is one process per party on 127.0.0.1 and counts the parties' run time after connecting. Bytes are sent by all parties per prediction. Accuracy, agreement with plaintext (argmax) and mean KL divergence are over the first N test images, predicted in process in batches of {ACCURACY_BATCH} (a `--graph` in batches of its own size).", args.reps);
    s.push('\n');
    for (t, l) in links {
        let _ = writeln!(
            s,
            "Floor over `{t}`: round trip {:.3} ms, bandwidth {:.0} MB/s ({}); floor = rounds x round trip + MB / bandwidth + plaintext ms.",
            l.rtt_ms,
            l.bytes_per_ms / 1e3,
            if t == "quic" { "TCP on 127.0.0.1" } else { "a channel between two threads" },
        );
    }
    s.push('\n');
    s.push_str("| network | protocol | transport | batch | median ms (min-max) | floor ms | x floor | plaintext ms | images/s | MB | rounds | setup MB | accuracy (N) | plaintext accuracy | agreement | KL |\n");
    s.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1} ({:.1}-{:.1}) | {:.2} | {:.1} | {:.2} | {:.1} | {:.2} | {} | {} | {:.2}% ({}) | {:.2}% | {:.2}% | {:.1e} |",
            r["model"].as_str().unwrap_or("?"),
            r["protocol"].as_str().unwrap_or("?"),
            r["transport"].as_str().unwrap_or("?"),
            r["batch"],
            f("median_ms"),
            f("min_ms"),
            f("max_ms"),
            f("floor_ms"),
            f("floor_ratio"),
            f("plaintext_ms"),
            f("images_per_s"),
            f("bytes") / 1e6,
            r["rounds"],
            match r["setup_bytes"].as_f64() {
                Some(b) => format!("{:.2}", b / 1e6),
                None => "-".into(),
            },
            100.0 * f("accuracy"),
            r["images"],
            100.0 * f("plaintext_accuracy"),
            100.0 * f("agreement"),
            f("kl"),
        );
    }
    for n in notes {
        let _ = writeln!(s, "\n- {n}");
    }
    s
}

/// Parses `pond,securenn`.
pub fn parse_protocols(list: &[String]) -> Result<Vec<ProtocolKind>> {
    list.iter()
        .map(|p| Ok(p.parse::<ProtocolKind>()?))
        .collect()
}

//! `shareflow bench --train`: the SGD step of private training, next to its plaintext
//! reference and its static cost.
//!
//! For every network, protocol and batch size the training session is compiled (the init and
//! step programs of [`training_programs`]) and its init program runs once (the servers set up
//! the first weights and zero velocities as shares; reported as `init_ms` and `init_bytes`,
//! not timed as a step). Then a warm-up step and `reps` timed steps run on real MNIST training batches: the
//! first `batch * (reps + 1)` training images in the shuffled batches and with the learning
//! rates of a one-epoch run ([`schedule`]), so that every step is a different batch.
//!
//! Every step's measured bytes (sent by all parties) and rounds must equal the static cost
//! report of the step program ([`CostReport::of`], `cost_bytes` and `cost_rounds` in the row);
//! if any differs, the command still prints its table and then fails with
//! [`ToolError::CostMismatch`].
//!
//! The plaintext reference runs the same training graph in a plaintext session on the same
//! batches (a warm-up, then `reps` timed steps); `slowdown` is the private median over the
//! plaintext median.
//!
//! With `--transport inproc` every party runs in this process; with `--transport quic` every
//! party is its own `run-graph --training` process on 127.0.0.1 (the session `shareflow train
//! --transport quic` runs, [`super::train_quic::run_plan`]), the same steps on the same
//! batches, each step's time that of server 0, its bytes those of every party's report.
//! A protocol that cannot compile a network's training graph (Pond has no exact comparisons,
//! hence no softmax on shares nor max pooling: none of A-D today) is skipped with a note
//! naming the op.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::Value;
use shareflow_compiler::{CompileError, CompileOptions, CostReport, ProtocolKind};
use shareflow_graphs::zoo::{ModelKind, ZooModel};
use shareflow_graphs::zoo_train::TrainSpec;
use shareflow_runtime::data::{data_dir, Mnist, Split};
use shareflow_runtime::exec::serving::Inputs;
use shareflow_runtime::exec::{InProcessRun, Session};
use shareflow_runtime::plain;
use shareflow_runtime::plain::train::{batch_inputs, schedule, ScheduledStep, TrainConfig};
use shareflow_runtime::train::quic::TrainingPlan;
use shareflow_runtime::train::{
    learning_rate_input, step_inputs, training_programs, StepSpec, TrainingPrograms,
};
use shareflow_runtime::RuntimeError;

use super::bench::{io, machine, progress, round3, today, BenchArgs, Timing};
use super::secure::summary;
use super::train_quic::{run_plan, Launch, TIMEOUT_S};
use crate::report::Report;
use crate::{Result, ToolError};

/// Bounds every receive of a training session's runs.
const TIMEOUT: Duration = Duration::from_secs(600);

/// What a private training session measured.
struct Measured {
    /// The timed steps.
    timing: Timing,
    /// The init program's wall milliseconds and bytes.
    init_ms: f64,
    init_bytes: u64,
    /// Bytes and rounds of every step, the warm-up's first.
    traffic: Vec<(u64, u64)>,
}

/// The figures of one network, protocol, transport and batch size.
struct TrainRow {
    model: ModelKind,
    protocol: ProtocolKind,
    transport: String,
    batch: usize,
    measured: Measured,
    plain_ms: Vec<f64>,
    cost: CostReport,
    compile_ms: f64,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if let Some(t) = args
        .transports
        .iter()
        .find(|t| *t != "inproc" && *t != "quic")
    {
        return Err(ToolError::Usage(format!(
            "--transport {t}: expected inproc and/or quic"
        )));
    }
    let models = args
        .models
        .iter()
        .map(|n| {
            n.kind().ok_or_else(|| {
                ToolError::Usage(format!(
                    "--train benchmarks the zoo's networks (--model), not {n}"
                ))
            })
        })
        .collect::<Result<Vec<ModelKind>>>()?;
    if args.weights.is_some() {
        return Err(ToolError::Usage(
            "--weights is an option of the prediction benchmark, not of --train".into(),
        ));
    }
    if args.single || args.limit.is_some() {
        return Err(ToolError::Usage(
            "--single and --limit are options of the prediction benchmark, not of --train".into(),
        ));
    }
    let steps_per_row = args.reps + 1;
    let max_batch = args.batches.iter().copied().max().unwrap_or(1);
    let needed = max_batch.saturating_mul(steps_per_row);
    let data = Mnist::load(&data_dir(args.data.clone()), Split::Train, Some(needed))?;
    if data.len() < needed {
        return Err(ToolError::Usage(format!(
            "{} training images are fewer than {steps_per_row} batches of {max_batch}",
            data.len()
        )));
    }

    let mut rows: Vec<TrainRow> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let started = Instant::now();
    for &model in &models {
        for &protocol in &args.protocols {
            for &batch in &args.batches {
                let cfg = TrainConfig {
                    epochs: 1,
                    batch,
                    ..TrainConfig::default()
                };
                let steps = schedule(batch * steps_per_row, &cfg);
                let options = args.options.for_model(model);
                let compile_start = Instant::now();
                let programs = match training_programs(model, &cfg, protocol, options) {
                    Ok(p) => p,
                    Err(RuntimeError::Compile(e @ CompileError::Unsupported { .. })) => {
                        let note = format!(
                            "{model} under {}: skipped (it cannot train this network: {e})",
                            protocol.name()
                        );
                        progress(&note);
                        notes.push(note);
                        // The same op is missing at every batch size.
                        break;
                    }
                    Err(e) => return Err(e.into()),
                };
                let compile_ms = compile_start.elapsed().as_secs_f64() * 1e3;
                let cost = CostReport::of(&programs.step.graph);
                let plain_ms = time_plain(model, batch, &cfg, &steps, &data)?;
                for transport in &args.transports {
                    progress(&format!(
                        "{model} {} {transport} batch {batch}: init, 1 warm-up + {} steps ({:.0} \
                         s so far)",
                        protocol.name(),
                        args.reps,
                        started.elapsed().as_secs_f64()
                    ));
                    let measured = if transport == "quic" {
                        let run = QuicRun {
                            model,
                            protocol,
                            options,
                            cfg: &cfg,
                            images: steps.len() * batch,
                        };
                        time_quic(&run, args)?
                    } else {
                        time_private(&programs, &steps, &data)?
                    };
                    rows.push(TrainRow {
                        model,
                        protocol,
                        transport: transport.clone(),
                        batch,
                        measured,
                        plain_ms: plain_ms.clone(),
                        cost: cost.clone(),
                        compile_ms,
                    });
                }
            }
        }
    }

    let mismatches: Vec<ToolError> = rows.iter().filter_map(TrainRow::mismatch).collect();
    let json_rows: Vec<Value> = rows.iter().map(TrainRow::json).collect();
    let machine = machine();
    let date = today();
    let text = markdown(&json_rows, &notes, &machine, &date, args.reps);
    if let Some(path) = &args.markdown {
        std::fs::write(path, &text).map_err(|e| io(path, e))?;
        progress(&format!("wrote {}", path.display()));
    }
    if args.json {
        let mut r = Report::new();
        r.set("date", date)
            .set("machine", machine)
            .set("train", true)
            .set("reps", args.reps)
            .set("rows", Value::Array(json_rows))
            .set("notes", notes);
        r.print(true);
    } else {
        print!("{text}");
    }
    match mismatches.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A training session of `programs`: init once, then a warm-up step and the timed ones, one
/// per scheduled step. Every step's bytes and rounds are kept (the warm-up's too), to be held
/// against the cost report.
fn time_private(
    programs: &TrainingPrograms,
    steps: &[ScheduledStep],
    data: &Mnist,
) -> Result<Measured> {
    let mut session = Session::new(programs.step.graph.parties.clone(), TIMEOUT);
    let init = session.run(&programs.init, &Inputs::new())?;
    let mut timing = Timing::default();
    let mut traffic = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let inputs = step_inputs(&programs.step.graph, data, step)?;
        let run = session.run(&programs.step, &inputs)?;
        traffic.push((run.bytes(), u64::from(run.rounds())));
        if i > 0 {
            timing.add(&metrics(&run), run.wall_ms);
        }
    }
    Ok(Measured {
        timing,
        init_ms: init.wall_ms,
        init_bytes: init.bytes(),
        traffic,
    })
}

/// A training session over QUIC to time: the first `images` training images in one epoch.
struct QuicRun<'a> {
    model: ModelKind,
    protocol: ProtocolKind,
    options: CompileOptions,
    cfg: &'a TrainConfig,
    images: usize,
}

/// The same session with every party its own process over QUIC: init, then a warm-up step
/// and the timed ones (no predictions, nothing revealed). A step's time is server 0's wall
/// time of its run.
fn time_quic(run: &QuicRun<'_>, args: &BenchArgs) -> Result<Measured> {
    let plan = TrainingPlan::new(
        run.model,
        run.cfg,
        run.protocol,
        run.options,
        run.images,
        0,
        1,
        StepSpec::default(),
        None,
    )?;
    let launch = Launch {
        data: std::path::absolute(data_dir(args.data.clone()))
            .map_err(|e| ToolError::Usage(format!("data directory: {e}")))?,
        timeout_s: args.timeout_s.max(TIMEOUT_S),
        ..Launch::default()
    };
    run_plan(&plan, &launch, |_, reports| Ok(measured_over_quic(reports)))
}

/// The figures of a QUIC session from its parties' reports.
fn measured_over_quic(reports: &[(String, Value)]) -> Measured {
    let steps: Vec<Vec<Value>> = reports
        .iter()
        .map(|(_, r)| r["steps"].as_array().cloned().unwrap_or_default())
        .collect();
    let server0 = reports
        .iter()
        .position(|(p, _)| p == "server0")
        .unwrap_or(0);
    let n = steps.iter().map(Vec::len).min().unwrap_or(0);
    let mut timing = Timing::default();
    let mut traffic = Vec::with_capacity(n);
    for i in 0..n {
        let metrics: Vec<Value> = steps.iter().map(|s| s[i].clone()).collect();
        let bytes = metrics
            .iter()
            .filter_map(|m| m["bytes_sent"].as_u64())
            .sum();
        let rounds = metrics.iter().filter_map(|m| m["rounds"].as_u64()).max();
        traffic.push((bytes, rounds.unwrap_or(0)));
        if i > 0 {
            let ms = steps[server0][i]["wall_ms"].as_f64().unwrap_or(0.0);
            timing.add(&metrics, ms);
        }
    }
    let init = |r: &Value, k: &str| r["init"][k].as_f64().unwrap_or(0.0);
    Measured {
        timing,
        init_ms: reports
            .get(server0)
            .map_or(0.0, |(_, r)| init(r, "wall_ms")),
        init_bytes: reports.iter().map(|(_, r)| init(r, "bytes") as u64).sum(),
        traffic,
    }
}

/// Each party's metrics as JSON, the way [`Timing::add`] reads them.
fn metrics(run: &InProcessRun) -> Vec<Value> {
    run.parties
        .iter()
        .map(|p| serde_json::to_value(&p.metrics).unwrap_or(Value::Null))
        .collect()
}

/// The same training graph in a plaintext session on the same batches: a warm-up step, then
/// one timed step per further scheduled step.
fn time_plain(
    model: ModelKind,
    batch: usize,
    cfg: &TrainConfig,
    steps: &[ScheduledStep],
    data: &Mnist,
) -> Result<Vec<f64>> {
    let spec = TrainSpec {
        seed: cfg.seed,
        momentum: cfg.momentum,
        reveal_loss: false,
    };
    let graph = ZooModel::build_training(model, batch, &spec)?.graph;
    let mut session = plain::Session::new(graph, &HashMap::new())?;
    let mut ms = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        // The parties' inputs by name: the client's images and labels, the learning rate.
        let mut inputs = batch_inputs(data, &step.indices)?;
        inputs.extend(learning_rate_input(step));
        let t = Instant::now();
        std::hint::black_box(session.run(&inputs)?);
        if i > 0 {
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(ms)
}

impl TrainRow {
    /// The error for the first step (0 is the warm-up) whose measured traffic is not the
    /// cost report's.
    fn mismatch(&self) -> Option<ToolError> {
        let cost = (self.cost.bytes, u64::from(self.cost.rounds));
        let (step, measured) = self
            .measured
            .traffic
            .iter()
            .enumerate()
            .find(|(_, t)| **t != cost)?;
        Some(ToolError::CostMismatch {
            what: format!(
                "{} under {} over {} at batch {}, training step {step}",
                self.model,
                self.protocol.name(),
                self.transport,
                self.batch
            ),
            measured_bytes: measured.0,
            measured_rounds: measured.1,
            cost_bytes: cost.0,
            cost_rounds: cost.1,
        })
    }

    fn json(&self) -> Value {
        let t = &self.measured.timing;
        let (median, min, max) = summary(&t.ms);
        let plain = summary(&self.plain_ms).0;
        let mut r = Report::new();
        r.set("model", self.model.to_string())
            .set("protocol", self.protocol.name())
            .set("transport", self.transport.as_str())
            .set("batch", self.batch)
            .set("train", true)
            .set("median_ms", round3(median))
            .set("min_ms", round3(min))
            .set("max_ms", round3(max))
            .set("plaintext_ms", round3(plain))
            .set("slowdown", round3(median / plain.max(1e-9)))
            .set(
                "images_per_s",
                round3(self.batch as f64 / (median / 1e3).max(1e-9)),
            )
            .set("bytes", t.bytes)
            .set("bytes_per_image", t.bytes / self.batch as u64)
            .set("rounds", t.rounds)
            .set("cost_bytes", self.cost.bytes)
            .set("cost_rounds", self.cost.rounds)
            .set("init_ms", round3(self.measured.init_ms))
            .set("init_bytes", self.measured.init_bytes)
            .set("compile_ms", round3(self.compile_ms))
            .set("reps", t.ms.len())
            .set("per_party", t.per_party())
            .set("per_party_kernels", t.kernels_per_party());
        r.json()
    }
}

fn markdown(rows: &[Value], notes: &[String], machine: &str, date: &str, reps: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Measured {date} on {machine} with `shareflow bench --train`: one SGD step of private \
         training (forward pass, softmax cross-entropy, gradients and the momentum update on \
         shares) on a batch of MNIST training images, median (min-max) of {reps} steps after \
         the session's init and a warm-up step, every party in this process (inproc) or its own \
         process on 127.0.0.1 (quic: server 0's time of each step). Bytes are sent by all \
         parties per step, next to the step program's static cost report. Plaintext: the \
         same training graph in a plaintext session on the same batches."
    );
    s.push('\n');
    s.push_str("| network | protocol | transport | batch | median ms per step (min-max) | plaintext ms | slowdown | images/s | MB per step | cost report MB | rounds | cost report rounds | init bytes |\n");
    s.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1} ({:.1}-{:.1}) | {:.1} | {:.0}x | {:.1} | {:.2} | {:.2} | {} | {} | {} |",
            r["model"].as_str().unwrap_or("?"),
            r["protocol"].as_str().unwrap_or("?"),
            r["transport"].as_str().unwrap_or("?"),
            r["batch"],
            f("median_ms"),
            f("min_ms"),
            f("max_ms"),
            f("plaintext_ms"),
            f("slowdown"),
            f("images_per_s"),
            f("bytes") / 1e6,
            f("cost_bytes") / 1e6,
            r["rounds"],
            r["cost_rounds"],
            r["init_bytes"],
        );
    }
    for n in notes {
        let _ = writeln!(s, "\n- {n}");
    }
    s
}

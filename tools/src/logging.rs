//! Logs and traces of the tools: one `tracing` subscriber per process.
//!
//! - Logs (the runtime's warnings, e.g. a refused certificate) go to stderr, filtered by
//!   `RUST_LOG` (default `warn`).
//! - `--trace FILE` adds a Chrome trace (chrome://tracing, <https://ui.perfetto.dev>): one track
//!   per party (the thread that runs it, named after it), a span per kernel (named after the
//!   kernel), per round (`round`) and per exchange of a round (`exchange`, with the bytes sent
//!   and received and the messages as arguments). The file is complete when the returned
//!   [`Tracing`] is dropped.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span;
use tracing_chrome::{ChromeLayerBuilder, EventOrSpan, FlushGuard};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::{Result, ToolError};

/// The crates whose spans make up a trace.
const TRACED: &str = "shareflow";

/// Keeps the trace file open; dropping it writes the end of the file.
pub struct Tracing {
    _chrome: Option<FlushGuard>,
}

/// Installs this process's subscriber: logs to stderr by `RUST_LOG`, and a Chrome trace to
/// `trace` if given. Call once, at the start of `main`.
pub fn init(trace: Option<&Path>) -> Result<Tracing> {
    let Some(path) = trace else {
        // A second subscriber (a test that calls this twice) is not an error worth failing for.
        let _ = tracing_subscriber::registry().with(logs()).try_init();
        return Ok(Tracing { _chrome: None });
    };
    let file = File::create(path).map_err(|e| ToolError::File {
        path: path.display().to_string(),
        message: format!("cannot write the trace: {e}"),
    })?;
    let (chrome, guard) = ChromeLayerBuilder::new()
        .writer(BufWriter::new(file))
        .include_args(true)
        .include_locations(false)
        .name_fn(Box::new(span_name))
        .build();
    let chrome = chrome.with_filter(filter_fn(|m| m.target().starts_with(TRACED)));
    tracing_subscriber::registry()
        .with(SpanLabels)
        .with(logs())
        .with(chrome)
        .try_init()
        .map_err(|e| ToolError::Usage(format!("cannot install the trace: {e}")))?;
    let _ = TRACE_PATH.set(path.to_path_buf());
    Ok(Tracing {
        _chrome: Some(guard),
    })
}

/// The log layer: stderr, filtered by `RUST_LOG` (default `warn`).
fn logs<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
}

/// A span's name in the trace: a kernel span is named after its kernel, others after
/// themselves.
fn span_name<S>(e: &EventOrSpan<'_, '_, S>) -> String
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    match e {
        EventOrSpan::Event(e) => e.metadata().name().to_string(),
        EventOrSpan::Span(s) => s
            .extensions()
            .get::<Label>()
            .map(|l| l.0.clone())
            .unwrap_or_else(|| s.name().to_string()),
    }
}

/// A kernel span's kernel name.
struct Label(String);

/// Keeps each kernel span's `kernel` field as its [`Label`].
struct SpanLabels;

impl<S> Layer<S> for SpanLabels
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut kernel = KernelField(None);
        attrs.record(&mut kernel);
        if let (Some(name), Some(span)) = (kernel.0, ctx.span(id)) {
            span.extensions_mut().insert(Label(name));
        }
    }
}

struct KernelField(Option<String>);

impl Visit for KernelField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "kernel" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "kernel" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// Where this process writes its trace, if it does.
static TRACE_PATH: OnceLock<PathBuf> = OnceLock::new();

/// The traces of the party processes this process ran (party name, events), merged into its
/// own trace when [`Tracing`] is dropped.
static PARTY_TRACES: Mutex<Vec<(String, Vec<Value>)>> = Mutex::new(Vec::new());

/// If this process writes a trace: the file where party `party`'s process, started by it in
/// `dir`, should write its own (pass it as that process's `--trace`).
pub fn party_trace_path(dir: &Path, party: &str) -> Option<PathBuf> {
    TRACE_PATH
        .get()
        .map(|_| dir.join(format!("trace-{party}.json")))
}

/// Keeps the trace that party `party`'s process wrote to `path`, to be merged into this
/// process's trace at its end: each party then has a process (and track) of its own.
pub fn collect_party_trace(party: &str, path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| ToolError::File {
        path: path.display().to_string(),
        message: format!("cannot read party {party}'s trace: {e}"),
    })?;
    let events = match serde_json::from_str(&text) {
        Ok(Value::Array(events)) => events,
        _ => {
            return Err(ToolError::File {
                path: path.display().to_string(),
                message: format!("party {party}'s trace is not a JSON array"),
            })
        }
    };
    PARTY_TRACES
        .lock()
        .map_err(|_| ToolError::Usage("the trace collector failed".into()))?
        .push((party.to_string(), events));
    Ok(())
}

impl Drop for Tracing {
    fn drop(&mut self) {
        // Flushes and closes this process's own trace first.
        self._chrome.take();
        let (Some(path), Ok(mut parties)) = (TRACE_PATH.get(), PARTY_TRACES.lock()) else {
            return;
        };
        if parties.is_empty() {
            return;
        }
        let parts = std::mem::take(&mut *parties);
        if let Err(e) = merge_into(path, parts) {
            eprintln!("warning: {e}");
        }
    }
}

/// Rewrites the trace at `path` (this process's) with the parties' traces: each its own
/// process, named after the party.
fn merge_into(path: &Path, parties: Vec<(String, Vec<Value>)>) -> Result<()> {
    let file_error = |message: String| ToolError::File {
        path: path.display().to_string(),
        message,
    };
    let own = match std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    {
        Some(Value::Array(events)) => events,
        _ => Vec::new(),
    };
    let mut events = Vec::new();
    let all = std::iter::once(("shareflow".to_string(), own)).chain(parties);
    for (pid, (name, list)) in all.enumerate() {
        let pid = pid + 1;
        events.push(serde_json::json!({
            "ph": "M", "name": "process_name", "pid": pid, "tid": 0,
            "args": { "name": name },
        }));
        for mut e in list {
            if let Some(o) = e.as_object_mut() {
                o.insert("pid".into(), pid.into());
            }
            // A party process runs on its main thread: its track takes the party's name.
            if e["ph"] == "M" && e["name"] == "thread_name" && e["args"]["name"] == "main" {
                e["args"]["name"] = Value::from(name.clone());
            }
            events.push(e);
        }
    }
    let text =
        serde_json::to_string(&Value::Array(events)).map_err(|e| file_error(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| file_error(format!("cannot write the trace: {e}")))
}

//! `shareflow compile`: compiles a network of the zoo for a protocol, optionally writes the
//! compiled graph, and prints its static cost report: rounds, bytes per ordered party pair in
//! total and per layer, and a latency estimate for a given round-trip time and bandwidth. With
//! `--serving`, the report covers the setup program (weights masked once) and the
//! per-prediction program.

use std::path::PathBuf;

use serde_json::{json, Map, Value};
use shareflow_compiler::serving::default_persistent;
use shareflow_compiler::{compile_narrowed, compile_serving_narrowed, CostReport, ProtocolKind};
#[cfg(test)]
use shareflow_graphs::zoo::ModelKind;

use super::network::Network;
use crate::report::{party_figures, Report};
use crate::{Result, ToolError};

/// Options of `compile`.
#[derive(Clone)]
pub struct CompileArgs {
    /// A zoo network, an ONNX model or a user's graph (compiled at its own batch).
    pub model: Network,
    pub protocol: String,
    pub batch: usize,
    pub options: super::Options,
    /// The model owner's weights, from which `--input-range` narrows comparisons (default:
    /// the network's committed weights).
    pub weights: Option<PathBuf>,
    /// Where to write the compiled graph (JSON).
    pub out: Option<PathBuf>,
    /// Print the full cost report (per party pair and per layer), not only the totals.
    pub cost: bool,
    /// Compile a setup and a per-prediction program, the model owner's weights persistent.
    pub serving: bool,
    pub rtt_ms: f64,
    pub mbps: f64,
    pub json: bool,
}

pub fn run(args: CompileArgs) -> Result<()> {
    let report = compile_report(&args)?;
    if args.json {
        report.print(true);
    } else {
        print!("{}", text(&report.json(), args.cost));
    }
    Ok(())
}

/// Compiles, writes `--out` if given, and returns the report as [`Report`] fields.
pub fn compile_report(args: &CompileArgs) -> Result<Report> {
    if args.batch == 0 {
        return Err(ToolError::Usage("--batch must be at least 1".into()));
    }
    if !(args.rtt_ms >= 0.0 && args.mbps > 0.0) {
        return Err(ToolError::Usage(
            "--rtt-ms must be >= 0 and --mbps > 0".into(),
        ));
    }
    let protocol: ProtocolKind = args.protocol.parse()?;
    let zoo = args.model.build(args.batch)?;
    let mut r = Report::new();
    r.set("model", args.model.to_string())
        .set("protocol", protocol.name())
        .set("batch", args.batch)
        .set("serving", args.serving)
        .set("rtt_ms", args.rtt_ms)
        .set("mbps", args.mbps);
    let options = args.model.options(&args.options);
    let narrowing = match args.options.input_range {
        Some(range) => {
            let weights = args.model.weights(args.weights.clone())?;
            let values = weights.arrays.into_iter().collect();
            r.set("input_range", vec![range.0, range.1]);
            Some(shareflow_compiler::bounds::Narrowing::analyse_with_range(
                &zoo.graph, &options, &values, range,
            )?)
        }
        None => None,
    };
    let (text, costs) = if args.serving {
        let s = compile_serving_narrowed(
            &zoo.graph,
            protocol,
            options,
            &default_persistent(&zoo.graph),
            narrowing.as_ref(),
        )?;
        let text = serde_json::to_string(&s)
            .map_err(|e| ToolError::Usage(format!("compiled graph JSON: {e}")))?;
        r.set("setup", figures(&s.setup.cost(), args));
        (text, s.predict.cost())
    } else {
        let g = compile_narrowed(&zoo.graph, protocol, options, narrowing.as_ref())?;
        (g.to_json()?, g.cost())
    };
    for (k, v) in figures(&costs, args).as_object().into_iter().flatten() {
        r.set(k, v.clone());
    }
    if let Some(path) = &args.out {
        std::fs::write(path, text).map_err(|e| ToolError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        r.set("out", path.display().to_string());
    }
    Ok(r)
}

/// The figures of one program: totals, per party, per ordered pair, per layer, latency.
fn figures(c: &CostReport, args: &CompileArgs) -> Value {
    let mut per_party: Map<String, Value> = Map::new();
    for l in &c.links {
        for (party, field) in [(&l.from, "bytes_sent"), (&l.to, "bytes_received")] {
            let entry = per_party
                .entry(party.clone())
                .or_insert_with(|| party_figures(0, 0, None));
            entry[field] = json!(entry[field].as_u64().unwrap_or(0) + l.bytes);
        }
    }
    json!({
        "rounds": c.rounds,
        "bytes": c.bytes,
        "messages": c.messages,
        "latency_ms": c.latency_ms(args.rtt_ms, args.mbps),
        "per_party": per_party,
        "links": c.links,
        "layers": c.layers,
        "reveals": c.reveals.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "comparisons": c.comparisons,
        "assumptions": c.assumptions,
    })
}

/// The report as text: totals always, pairs and layers with `--cost`.
pub fn text(r: &Value, full: bool) -> String {
    let mut out = format!(
        "network {}, {}, batch {}\n",
        r["model"].as_str().unwrap_or("?"),
        r["protocol"].as_str().unwrap_or("?"),
        r["batch"]
    );
    let rtt = (
        r["rtt_ms"].as_f64().unwrap_or(0.0),
        r["mbps"].as_f64().unwrap_or(0.0),
    );
    if r["setup"].is_object() {
        out += &section(
            "setup (once: the weights shared, masked and opened)",
            &r["setup"],
            rtt,
            full,
        );
        out += &section("per prediction", r, rtt, full);
    } else {
        out += &section("per run", r, rtt, full);
    }
    if let Some(path) = r["out"].as_str() {
        out += &format!("wrote {path}\n");
    }
    out
}

fn section(title: &str, f: &Value, (rtt, mbps): (f64, f64), full: bool) -> String {
    let mut out = format!(
        "{title}:\n  rounds: {}\n  bytes: {} in {} messages\n  latency estimate: {:.1} ms (rtt {rtt} ms, {mbps} Mbps)\n",
        f["rounds"],
        f["bytes"],
        f["messages"],
        f["latency_ms"].as_f64().unwrap_or(0.0)
    );
    let reveals: Vec<&str> = f["reveals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    out += &format!(
        "  reveals: {}\n",
        if reveals.is_empty() {
            "nothing".to_string()
        } else {
            reveals.join(", ")
        }
    );
    let comparisons = f["comparisons"].as_array().cloned().unwrap_or_default();
    if !comparisons.is_empty() {
        out += "  comparison widths (proven from the assumptions below):\n";
        for c in &comparisons {
            let bound = match c["bound"].as_u64() {
                Some(b) => format!("|a| <= {b} ring units"),
                None => "no bound proven".into(),
            };
            out += &format!(
                "    {:<30} {:<10} {:>2} bits  ({bound})\n",
                c["node"].as_str().unwrap_or("?"),
                c["op"].as_str().unwrap_or("?"),
                c["bits"]
            );
        }
        out += "  assuming (each input's owner checks it before sharing):\n";
        for a in f["assumptions"].as_array().into_iter().flatten() {
            out += &format!("    {}\n", a.as_str().unwrap_or("?"));
        }
    }
    if !full {
        return out;
    }
    out += "  per party pair:\n";
    for l in f["links"].as_array().into_iter().flatten() {
        out += &format!(
            "    {:>12} -> {:<12} {:>12} bytes {:>4} messages\n",
            l["from"].as_str().unwrap_or("?"),
            l["to"].as_str().unwrap_or("?"),
            l["bytes"],
            l["messages"]
        );
    }
    out += "  per layer (payload and entry headers; frame headers count per pair only):\n";
    for l in f["layers"].as_array().into_iter().flatten() {
        out += &format!(
            "    {:<30} {:>12} bytes {:>4} rounds\n",
            l["layer"].as_str().unwrap_or("?"),
            l["bytes"],
            l["rounds"]
        );
        for p in l["links"].as_array().into_iter().flatten() {
            out += &format!(
                "      {:>12} -> {:<12} {:>12} bytes\n",
                p["from"].as_str().unwrap_or("?"),
                p["to"].as_str().unwrap_or("?"),
                p["bytes"]
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(model: ModelKind, protocol: &str, serving: bool) -> CompileArgs {
        CompileArgs {
            model: model.into(),
            protocol: protocol.into(),
            batch: 1,
            options: shareflow_compiler::CompileOptions::default().into(),
            weights: None,
            out: None,
            cost: true,
            serving,
            rtt_ms: 10.0,
            mbps: 100.0,
            json: true,
        }
    }

    #[test]
    fn reports_rounds_bytes_pairs_layers_and_latency() {
        let j = compile_report(&args(ModelKind::A, "pond", false))
            .unwrap()
            .json();
        let rounds = j["rounds"].as_u64().unwrap();
        let bytes = j["bytes"].as_u64().unwrap();
        assert!(rounds > 0 && bytes > 0);
        let links: u64 = j["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["bytes"].as_u64().unwrap())
            .sum();
        assert_eq!(links, bytes);
        let sent: u64 = j["per_party"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p["bytes_sent"].as_u64().unwrap())
            .sum();
        assert_eq!(sent, bytes);
        assert!(j["layers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["layer"].as_str().unwrap().contains("dense1")));
        // Half a round trip per round at least, plus the transfers.
        assert!(j["latency_ms"].as_f64().unwrap() > rounds as f64 * 5.0);
        let t = text(&j, true);
        assert!(
            t.contains("server0 -> server1") && t.contains("latency estimate"),
            "{t}"
        );
    }

    #[test]
    fn serving_reports_setup_and_cheaper_predictions() {
        let once = compile_report(&args(ModelKind::D, "pond", false))
            .unwrap()
            .json();
        let j = compile_report(&args(ModelKind::D, "pond", true))
            .unwrap()
            .json();
        assert!(j["setup"]["bytes"].as_u64().unwrap() > 0);
        assert!(j["bytes"].as_u64().unwrap() < once["bytes"].as_u64().unwrap());
        // and a round fewer: the client's seeds are the setup's (the dealer's first
        // correction leaves in round 0)
        let rounds = |j: &serde_json::Value| j["rounds"].as_u64().unwrap();
        assert_eq!(rounds(&j) + 1, rounds(&once));
        assert!(text(&j, false).contains("per prediction"));
    }

    #[test]
    fn an_input_range_narrows_the_comparisons_and_the_report_says_so() {
        let exact = compile_report(&args(ModelKind::A, "securenn", true))
            .unwrap()
            .json();
        let mut a = args(ModelKind::A, "securenn", true);
        a.options.input_range = Some((0.0, 1.0));
        let j = compile_report(&a).unwrap().json();
        // the same rounds (exact or narrowed, a ReLU's sign reuses the truncation's opening)
        assert_eq!(j["rounds"].as_u64(), exact["rounds"].as_u64());
        assert!(j["bytes"].as_u64().unwrap() < exact["bytes"].as_u64().unwrap() * 3 / 4);
        let widths = j["comparisons"].as_array().unwrap();
        assert_eq!(widths.len(), 2, "{j}");
        assert!(
            widths.iter().all(|c| c["bits"].as_u64().unwrap() < 32),
            "{j}"
        );
        assert!(exact["comparisons"].as_array().unwrap().is_empty());
        let t = text(&j, false);
        assert!(
            t.contains("comparison widths")
                && t.contains("client's input \"image\": every element in [0, 1]"),
            "{t}"
        );
    }

    #[test]
    fn pond_rejects_max_pooling_and_writes_the_compiled_graph() {
        let e = compile_report(&args(ModelKind::B, "pond", false))
            .unwrap_err()
            .to_string();
        assert!(e.contains("maxpool") && e.contains("securenn"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(ModelKind::A, "pond", false);
        a.out = Some(dir.path().join("a.json"));
        compile_report(&a).unwrap();
        let text = std::fs::read_to_string(dir.path().join("a.json")).unwrap();
        assert!(shareflow_compiler::CompiledGraph::from_json(&text).is_ok());
    }
}

//! Figures that commands report, printed as text or as one JSON object with the field names
//! of DESIGN.md (`model`, `protocol`, `transport`, `batch`, `images`, `accuracy`, `agreement`,
//! `kl`, `median_ms`, `min_ms`, `max_ms`, `bytes`, `rounds`, `per_party`).

use serde_json::{json, Map, Value};

/// The fields of every `per_party` entry, in every command's JSON.
pub const PARTY_FIELDS: [&str; 3] = ["bytes_sent", "bytes_received", "wall_ms"];

/// One party's entry of `per_party`: the bytes it sent and received and its wall time (`null`
/// where nothing ran, as in `compile`'s static report).
pub fn party_figures(bytes_sent: u64, bytes_received: u64, wall_ms: Option<f64>) -> Value {
    json!({
        "bytes_sent": bytes_sent,
        "bytes_received": bytes_received,
        "wall_ms": wall_ms,
    })
}

/// A number as text: six decimals, or scientific notation below 10^-3 (a KL of 7.7e-11 is
/// not 0.000000).
pub fn number_text(f: f64) -> String {
    if f != 0.0 && f.abs() < 1e-3 {
        format!("{f:.3e}")
    } else {
        format!("{f:.6}")
    }
}

/// An ordered set of named figures.
#[derive(Debug, Default, Clone)]
pub struct Report {
    fields: Map<String, Value>,
}

impl Report {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a field.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// The JSON object.
    pub fn json(&self) -> Value {
        Value::Object(self.fields.clone())
    }

    /// Prints JSON (one line) or aligned `key: value` lines.
    pub fn print(&self, json: bool) {
        if json {
            println!("{}", self.json());
            return;
        }
        let width = self.fields.keys().map(|k| k.len()).max().unwrap_or(0);
        for (k, v) in &self.fields {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => match n.as_f64() {
                    Some(f) if n.is_f64() => number_text(f),
                    _ => n.to_string(),
                },
                other => other.to_string(),
            };
            println!("{k:>width$}: {text}");
        }
    }
}

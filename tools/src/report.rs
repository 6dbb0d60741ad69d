//! Figures that commands report, printed as text or as one JSON object with the field names
//! of DESIGN.md (`model`, `protocol`, `transport`, `batch`, `images`, `accuracy`, `agreement`,
//! `kl`, `median_ms`, `min_ms`, `max_ms`, `bytes`, `rounds`, `per_party`).

use serde_json::{Map, Value};

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
                    Some(f) if n.is_f64() => format!("{f:.6}"),
                    _ => n.to_string(),
                },
                other => other.to_string(),
            };
            println!("{k:>width$}: {text}");
        }
    }
}

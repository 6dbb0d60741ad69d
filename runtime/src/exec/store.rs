//! A party's store of a session: the values a run keeps (`Store` kernels) for the later runs
//! (`Load` kernels): a serving setup's masked weights for the predictions, a training step's
//! new variable shares for the next step. It lives as long as the session, across runs; a
//! run's other values are dropped when the run ends.
//!
//! What a run stores is written when the run succeeds ([`Store::commit`]): every `Load` of a
//! run reads the values from before it (a training step loads a weight and stores its update
//! under the same key), and a run that fails leaves the store as it was.

use std::collections::HashMap;

use shareflow_compiler::ir::{Kernel, StoreKey, ValueId};
use shareflow_compiler::Instr;
use shareflow_ops::Value;

use super::kernels::label;
use crate::{Result, RuntimeError};

/// Persistent values by key (the id of the stored value in the compiled graph), stamped with
/// the digest of the serving graph whose setup filled it (see [`Store::stamped`]).
#[derive(Debug, Clone, Default)]
pub struct Store {
    values: HashMap<StoreKey, Value>,
    /// What the current run stores, written by [`Store::commit`].
    pending: HashMap<StoreKey, Value>,
    graph: Option<[u8; 32]>,
}

impl Store {
    /// An empty store, not stamped with any graph.
    pub fn new() -> Store {
        Store::default()
    }

    /// An empty store for the setup of the serving graph with digest `graph`
    /// ([`crate::exec::serving::serving_digest`]).
    pub fn stamped(graph: [u8; 32]) -> Store {
        Store {
            graph: Some(graph),
            ..Store::default()
        }
    }

    /// The digest of the serving graph this store belongs to, if stamped.
    pub fn graph(&self) -> Option<[u8; 32]> {
        self.graph
    }

    /// Refuses a store that was not filled by the setup of the serving graph with digest `graph`
    /// (a store of another graph would feed predictions wrong or mismatched values).
    pub fn check(&self, graph: &[u8; 32]) -> Result<()> {
        let short = |d: &[u8; 32]| {
            d[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        match &self.graph {
            Some(g) if g == graph => Ok(()),
            Some(g) => Err(RuntimeError::Node {
                node: "serving store".into(),
                message: format!(
                    "this store was made by the setup of another serving graph (digest {}…), \
                     not of this one ({}…): run this graph's setup first",
                    short(g),
                    short(graph)
                ),
            }),
            None => Err(RuntimeError::Node {
                node: "serving store".into(),
                message: format!(
                    "this store is not stamped with a serving graph (this one is {}…): run this \
                     graph's setup first",
                    short(graph)
                ),
            }),
        }
    }

    /// The number of values stored.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &StoreKey) -> Option<&Value> {
        self.values.get(key)
    }

    /// This party's variable shares by variable name (what a training checkpoint saves).
    pub fn variables(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().filter_map(|(k, v)| match k {
            StoreKey::Variable(name) => Some((name.as_str(), v)),
            StoreKey::Value(_) => None,
        })
    }

    /// Stores `value` under `key` at once (restoring a checkpoint).
    pub fn insert(&mut self, key: StoreKey, value: Value) {
        self.values.insert(key, value);
    }

    /// Writes what the run stored; called when a run succeeds.
    pub fn commit(&mut self) {
        self.values.extend(self.pending.drain());
    }

    /// Forgets what the run stored; called when a run fails.
    pub fn discard(&mut self) {
        self.pending.clear();
    }

    /// Bytes of the stored tensors (payload only).
    pub fn payload_bytes(&self) -> usize {
        self.values.values().map(Value::payload_bytes).sum()
    }

    /// Runs `instr` if it is a `Store` (keeps its input) or a `Load` (checks the stored value
    /// and records in `loaded` that the instruction's value is the one stored under its key,
    /// read in place rather than copied); `false` for any other kernel.
    pub fn run(
        &mut self,
        instr: &Instr,
        values: &HashMap<ValueId, Value>,
        loaded: &mut HashMap<ValueId, StoreKey>,
    ) -> Result<bool> {
        match &instr.kernel {
            Kernel::Store { key } => {
                let input = instr.inputs.first().and_then(|i| values.get(i));
                let v = input.ok_or_else(|| RuntimeError::Node {
                    node: label(instr),
                    message: "the value to store has not been computed".into(),
                })?;
                self.pending.insert(key.clone(), v.clone());
                Ok(true)
            }
            Kernel::Load { key } => {
                let v = self.values.get(key).ok_or_else(|| RuntimeError::Node {
                    node: label(instr),
                    message: match key {
                        StoreKey::Value(_) => format!(
                            "nothing stored under {key}: run the setup program of this serving \
                             session first"
                        ),
                        StoreKey::Variable(_) => format!(
                            "this party holds no {key}: initialise the session's variables \
                             first"
                        ),
                    },
                })?;
                if v.kind() != instr.kind || v.shape() != instr.shape.as_slice() {
                    return Err(RuntimeError::Node {
                        node: label(instr),
                        message: format!(
                            "stored {key} is a {} value of shape {:?}, expected {} {:?} (a store \
                             from another compiled graph?)",
                            v.kind().name(),
                            v.shape(),
                            instr.kind.name(),
                            instr.shape
                        ),
                    });
                }
                loaded.insert(instr.id, key.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

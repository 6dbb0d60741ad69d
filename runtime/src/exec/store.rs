//! A party's store of a serving session: the values its setup run keeps (`Store` kernels) for
//! the later prediction runs (`Load` kernels). It lives as long as the session, across runs;
//! a run's other values are dropped when the run ends.

use std::collections::HashMap;

use shareflow_compiler::ir::{Kernel, ValueId};
use shareflow_compiler::Instr;
use shareflow_ops::Value;

use super::kernels::label;
use crate::{Result, RuntimeError};

/// Persistent values by key (the id of the stored value in the compiled graph), stamped with
/// the digest of the serving graph whose setup filled it (see [`Store::stamped`]).
#[derive(Debug, Clone, Default)]
pub struct Store {
    values: HashMap<ValueId, Value>,
    graph: Option<[u8; 32]>,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// An empty store for the setup of the serving graph with digest `graph`
    /// ([`crate::exec::serving::serving_digest`]).
    pub fn stamped(graph: [u8; 32]) -> Store {
        Store {
            values: HashMap::new(),
            graph: Some(graph),
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

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value stored under `key`.
    pub fn get(&self, key: ValueId) -> Option<&Value> {
        self.values.get(&key)
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
        loaded: &mut HashMap<ValueId, ValueId>,
    ) -> Result<bool> {
        match instr.kernel {
            Kernel::Store { key } => {
                let input = instr.inputs.first().and_then(|i| values.get(i));
                let v = input.ok_or_else(|| RuntimeError::Node {
                    node: label(instr),
                    message: "the value to store has not been computed".into(),
                })?;
                self.values.insert(key, v.clone());
                Ok(true)
            }
            Kernel::Load { key } => {
                let v = self.values.get(&key).ok_or_else(|| RuntimeError::Node {
                    node: label(instr),
                    message: format!(
                        "nothing stored under {key}: run the setup program of this serving \
                         session first"
                    ),
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
                loaded.insert(instr.id, key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

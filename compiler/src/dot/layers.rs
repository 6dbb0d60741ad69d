//! The logical layers of a compiled graph, named from the origins of its instructions.
//!
//! Lowering tags every kernel with the label of the logical node it comes from
//! (`n12 'dense1/matmul_5'`). A scoped name belongs to the layer of its first component
//! (`dense1`, also for the layer's parameters `dense1/kernel`); an automatic name
//! (`relu_9`, `maxpool2d_11`) becomes its op and an ordinal in lowering order (`relu1`,
//! `maxpool1`); any other name (`image`, `logits`) is its own layer. Kernels without an
//! origin (the seeds that pairs of parties share) form the layer `(seeds)`.

use std::collections::HashMap;

use crate::program::CompiledGraph;

/// The layer of instructions without an origin.
pub const SEEDS: &str = "(seeds)";

/// A layer: an index into [`Layers::names`], in the order the graph was lowered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerId(pub usize);

/// The layers of a compiled graph and the layer of each origin.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    names: Vec<String>,
    by_origin: HashMap<Option<String>, LayerId>,
}

impl Layers {
    /// The layers of `g`, ordered by their first instruction (ids follow lowering order).
    pub fn of(g: &CompiledGraph) -> Layers {
        let mut origins: Vec<(u32, &Option<String>)> = Vec::new();
        let mut seen: HashMap<&Option<String>, usize> = HashMap::new();
        for i in g.programs.iter().flat_map(|p| &p.instrs) {
            match seen.get(&i.origin) {
                Some(&k) => origins[k].0 = origins[k].0.min(i.id.0),
                None => {
                    seen.insert(&i.origin, origins.len());
                    origins.push((i.id.0, &i.origin));
                }
            }
        }
        origins.sort();
        let mut layers = Layers::default();
        let mut ordinals: HashMap<String, usize> = HashMap::new();
        let mut auto: HashMap<String, String> = HashMap::new();
        for (_, origin) in origins {
            let name = match origin {
                None => SEEDS.to_string(),
                Some(label) => {
                    let node = node_name(label);
                    match node.split_once('/') {
                        Some((scope, _)) => scope.to_string(),
                        None => match automatic_op(node) {
                            Some(op) => auto
                                .entry(node.to_string())
                                .or_insert_with(|| {
                                    let n = ordinals.entry(op.to_string()).or_default();
                                    *n += 1;
                                    format!("{op}{n}")
                                })
                                .clone(),
                            None => node.to_string(),
                        },
                    }
                }
            };
            let id = match layers.names.iter().position(|n| *n == name) {
                Some(k) => LayerId(k),
                None => {
                    layers.names.push(name);
                    LayerId(layers.names.len() - 1)
                }
            };
            layers.by_origin.insert(origin.clone(), id);
        }
        layers
    }

    /// The layer of an instruction's origin (`None` for an origin not in the graph).
    pub fn of_origin(&self, origin: &Option<String>) -> Option<LayerId> {
        self.by_origin.get(origin).copied()
    }

    /// The layer's name.
    pub fn name(&self, id: LayerId) -> &str {
        self.names.get(id.0).map(String::as_str).unwrap_or("?")
    }

    /// Every layer's name, in lowering order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The layer called `name`.
    pub fn find(&self, name: &str) -> Option<LayerId> {
        self.names.iter().position(|n| n == name).map(LayerId)
    }
}

/// The node name in a logical node's label `n12 'name'` (the whole label otherwise).
fn node_name(label: &str) -> &str {
    label
        .split_once(" '")
        .and_then(|(id, rest)| {
            let numbered = id.strip_prefix('n')?.bytes().all(|b| b.is_ascii_digit());
            numbered.then(|| rest.strip_suffix('\''))?
        })
        .unwrap_or(label)
}

/// The op of an automatic node name `op_<counter>` (`maxpool2d_11` -> `maxpool`).
fn automatic_op(name: &str) -> Option<&str> {
    let (op, counter) = name.rsplit_once('_')?;
    if op.is_empty() || counter.is_empty() || !counter.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(op.strip_suffix("2d").unwrap_or(op))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_scopes_ops_and_names() {
        assert_eq!(node_name("n12 'dense1/matmul_5'"), "dense1/matmul_5");
        assert_eq!(node_name("n3"), "n3");
        assert_eq!(node_name("image"), "image");
        assert_eq!(automatic_op("maxpool2d_11"), Some("maxpool"));
        assert_eq!(automatic_op("relu_9"), Some("relu"));
        assert_eq!(automatic_op("reduce_sum_4"), Some("reduce_sum"));
        assert_eq!(automatic_op("logits"), None);
        assert_eq!(automatic_op("dense_x"), None);
    }
}

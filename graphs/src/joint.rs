//! Joint training of a zoo network on the data of several owners (`owner-1` ... `owner-K`),
//! joined in the graph with [`crate::Op::Concat`]:
//!
//! - [`Split::Rows`] (horizontal): each owner gives its own rows of every batch, images and
//!   one-hot labels (`owner-k/image`, `owner-k/labels`); the batch is their concatenation
//!   along the first axis, owner 1's rows first;
//! - [`Split::Columns`] (vertical): each owner gives a block of columns of the same images
//!   (`owner-k/image` `[batch, 28, w_k, 1]`, owner 1 the leftmost), joined along the width;
//!   owner 1 alone gives the labels.
//!
//! Either way the joined batch is the pooled batch, so the network is the zoo's and the step
//! is the plaintext step on the pooled data; each owner's part reaches the servers only as
//! shares. The graphs declare `model-owner`, `client` (who queries the trained model) and the
//! owners, in that order, so that the programs of one session share their parties.

use crate::builder::{GraphBuilder, Tensor};
use crate::error::GraphError;
use crate::network::reveal_variables;
use crate::nn::Params;
use crate::zoo::{ModelKind, ZooModel, CLIENT, IMAGE, LOGITS, MODEL_OWNER};
use crate::zoo_train::{add_training, TrainSpec, TrainingModel, LABELS};

/// How the owners' data is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Disjoint rows: every owner holds whole examples.
    Rows,
    /// Disjoint feature columns of the same rows; the labels are the first owner's.
    Columns,
}

/// The name of data owner `k` (1-based).
pub fn owner(k: usize) -> String {
    format!("owner-{k}")
}

/// The name of an owner's input.
pub fn input_name(owner: &str, what: &str) -> String {
    format!("{owner}/{what}")
}

/// `n` split into `parts` contiguous parts, the first ones one larger when it does not divide.
pub fn split_evenly(n: usize, parts: usize) -> Vec<usize> {
    let parts = parts.max(1);
    (0..parts)
        .map(|k| n / parts + usize::from(k < n % parts))
        .collect()
}

/// A zoo network trained on the data of `owners` owners, split as `split`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joint {
    /// The zoo network trained.
    pub kind: ModelKind,
    /// How many data owners (at least one).
    pub owners: usize,
    /// How their data is split.
    pub split: Split,
}

impl Joint {
    /// The owners' names.
    pub fn owner_names(&self) -> Vec<String> {
        (1..=self.owners).map(owner).collect()
    }

    /// Per owner, its rows of a batch of `batch` ([`Split::Rows`]) or its columns of the 28
    /// ([`Split::Columns`]).
    pub fn parts(&self, batch: usize) -> Vec<usize> {
        match self.split {
            Split::Rows => split_evenly(batch, self.owners),
            Split::Columns => split_evenly(28, self.owners),
        }
    }

    /// Declares the parties in the order of every graph of the session.
    fn parties(&self, g: &GraphBuilder) {
        g.party(MODEL_OWNER);
        g.party(CLIENT);
        for o in self.owner_names() {
            g.party(&o);
        }
    }

    /// The training graph for batches of `batch`: the owners' parts joined, then the zoo
    /// network's layers (seeded variables), loss, gradients and update. The model's `image`
    /// and `labels` are the joined tensors; its `client` is owner 1.
    pub fn training(&self, batch: usize, spec: &TrainSpec) -> Result<TrainingModel, GraphError> {
        if self.owners == 0 || self.parts(batch).contains(&0) {
            return Err(GraphError::Invalid {
                node: "joint training".into(),
                message: format!(
                    "{} owners cannot each hold a part of batches of {batch}",
                    self.owners
                ),
            });
        }
        let g = GraphBuilder::new();
        self.parties(&g);
        let names = self.owner_names();
        let ids: Vec<_> = names.iter().map(|o| g.party(o)).collect();
        let parts = self.parts(batch);
        let join = |ts: Vec<Tensor>, axis: usize| {
            ts.into_iter()
                .reduce(|a, b| a.concat(&b, axis))
                .expect("at least one owner")
        };
        let (image, labels) = match self.split {
            Split::Rows => {
                let images = names
                    .iter()
                    .zip(&ids)
                    .zip(&parts)
                    .map(|((o, &p), &n)| g.input(p, &input_name(o, IMAGE), [n, 28, 28, 1]))
                    .collect();
                let labels = names
                    .iter()
                    .zip(&ids)
                    .zip(&parts)
                    .map(|((o, &p), &n)| g.input(p, &input_name(o, LABELS), [n, 10]))
                    .collect();
                (join(images, 0), join(labels, 0))
            }
            Split::Columns => {
                let images = names
                    .iter()
                    .zip(&ids)
                    .zip(&parts)
                    .map(|((o, &p), &w)| g.input(p, &input_name(o, IMAGE), [batch, 28, w, 1]))
                    .collect();
                let labels = g.input(ids[0], &input_name(&names[0], LABELS), [batch, 10]);
                (join(images, 2), labels)
            }
        };
        let layers = self.kind.layers();
        let logits = layers.apply(&g, &Params::variables(spec.seed), &image);
        let step = add_training(&g, &logits, &labels, self.kind.loss(), spec.momentum)?;
        Ok(TrainingModel {
            batch,
            graph: g.build()?,
            client: ids[0],
            image: image.id(),
            labels: labels.id(),
            learning_rate: step.learning_rate.id(),
            loss: step.loss.id(),
            loss_output: None,
            logits_output: None,
            variables: step.variables.iter().map(|v| v.id()).collect(),
            params: layers.params(),
            masks: Vec::new(),
        })
    }

    /// The prediction graph for `n` images from the session's variables: the client gives
    /// `image` and receives `logits`.
    pub fn prediction(&self, n: usize) -> Result<ZooModel, GraphError> {
        let g = GraphBuilder::new();
        self.parties(&g);
        let model_owner = g.party(MODEL_OWNER);
        let client = g.party(CLIENT);
        let image = g.input(client, IMAGE, [n, 28, 28, 1]);
        let layers = self.kind.layers();
        let logits = layers.apply(&g, &Params::variables(0), &image);
        let output = logits.output_to(client, LOGITS);
        Ok(ZooModel {
            kind: self.kind,
            batch: n,
            graph: g.build()?,
            model_owner,
            client,
            image: image.id(),
            logits: logits.id(),
            output: output.id(),
            params: layers.params(),
        })
    }

    /// The graph that reveals every parameter to the model owner.
    pub fn reveal(&self) -> Result<crate::Graph, GraphError> {
        let g = GraphBuilder::new();
        self.parties(&g);
        let owner = g.party(MODEL_OWNER);
        reveal_variables(&g, &self.kind.layers().params(), owner);
        g.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Op, Visibility};

    fn spec() -> TrainSpec {
        TrainSpec {
            seed: 1,
            momentum: 0.9,
            reveal_loss: false,
        }
    }

    #[test]
    fn the_graph_says_who_owns_what() {
        let j = Joint {
            kind: ModelKind::A,
            owners: 3,
            split: Split::Columns,
        };
        assert_eq!(j.parts(8), vec![10, 9, 9]);
        let m = j.training(8, &spec()).unwrap();
        assert_eq!(m.graph.node(m.image).unwrap().shape.dims(), &[8, 28, 28, 1]);
        assert_eq!(
            m.graph.node(m.image).unwrap().visibility,
            Visibility::Shared
        );
        let inputs: Vec<(String, Vec<usize>)> = m
            .graph
            .nodes()
            .filter_map(|(_, n)| match &n.op {
                Op::Input { name, .. } => Some((name.clone(), n.shape.dims().to_vec())),
                _ => None,
            })
            .collect();
        assert_eq!(
            inputs,
            vec![
                ("owner-1/image".to_string(), vec![8, 28, 10, 1]),
                ("owner-2/image".to_string(), vec![8, 28, 9, 1]),
                ("owner-3/image".to_string(), vec![8, 28, 9, 1]),
                ("owner-1/labels".to_string(), vec![8, 10]),
            ]
        );
        let rows = Joint {
            split: Split::Rows,
            owners: 2,
            ..j
        };
        let m = rows.training(9, &spec()).unwrap();
        assert_eq!(m.graph.node(m.labels).unwrap().shape.dims(), &[9, 10]);
        assert_eq!(rows.parts(9), vec![5, 4]);
        assert!(rows.training(1, &spec()).is_err());
        // The prediction graph has the same parties, in the same order.
        let p = rows.prediction(3).unwrap();
        assert_eq!(p.graph.parties(), m.graph.parties());
    }
}

//! Typed identifiers. A node id is stable: removing other nodes never renumbers it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node of a [`crate::Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u32);

/// A party of a graph: an index into [`crate::Graph::parties`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartyId(pub u16);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

impl NodeId {
    /// The node's index in the graph (creation order).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl PartyId {
    /// The party's index in the graph's party list (declaration order).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

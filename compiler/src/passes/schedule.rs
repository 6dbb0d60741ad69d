//! Round scheduling: every exchange goes in the earliest round its data allows.
//!
//! A local node is ready in the latest round of its inputs; a send leaves in the round its
//! input is ready; its receive is ready one round later. All messages from one party to
//! another in one round then travel as one batch, so the number of rounds equals the
//! communication depth of the graph.

use crate::ir::{Kernel, LowGraph};

/// The round of every node: for a local node the round it runs in, for a send and its receive
/// the round the message travels in. Dead nodes get 0.
pub fn schedule(low: &LowGraph) -> Vec<u32> {
    let n = low.nodes.len();
    // `ready[i]`: the first round in which node i's value can be used locally.
    let mut ready = vec![0u32; n];
    let mut round = vec![0u32; n];
    for i in 0..n {
        if low.dead[i] {
            continue;
        }
        let node = &low.nodes[i];
        let inputs_ready = node
            .inputs
            .iter()
            .map(|v| ready[v.0 as usize])
            .max()
            .unwrap_or(0);
        match node.kernel {
            Kernel::Recv { send, .. } => {
                round[i] = round[send.0 as usize];
                ready[i] = round[i] + 1;
            }
            _ => {
                round[i] = inputs_ready;
                ready[i] = inputs_ready;
            }
        }
    }
    round
}

/// The number of communication rounds: one more than the last round any message travels in.
pub fn round_count(low: &LowGraph, rounds: &[u32]) -> u32 {
    low.live()
        .filter(|v| matches!(low.node(*v).kernel, Kernel::Send { .. }))
        .map(|v| rounds[v.0 as usize] + 1)
        .max()
        .unwrap_or(0)
}

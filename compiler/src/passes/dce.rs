//! Dead-code removal: keeps what an output needs, and the sends whose receives are kept.

use crate::ir::{Kernel, LowGraph};

/// Marks dead every node that no output depends on.
pub fn remove_dead(low: &mut LowGraph) {
    let n = low.nodes.len();
    let mut live = vec![false; n];
    for i in (0..n).rev() {
        if low.dead[i] {
            continue;
        }
        if low.nodes[i].kernel.is_root() {
            live[i] = true;
        }
        if !live[i] {
            continue;
        }
        for input in &low.nodes[i].inputs {
            live[input.0 as usize] = true;
        }
        if let Kernel::Recv { send, .. } = low.nodes[i].kernel {
            live[send.0 as usize] = true;
        }
    }
    for (dead, live) in low.dead.iter_mut().zip(live) {
        *dead |= !live;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Exchange, LowNode, ValueId};
    use shareflow_ops::ValueKind;

    fn node(host: usize, kernel: Kernel, inputs: &[u32]) -> LowNode {
        LowNode {
            host,
            kernel,
            inputs: inputs.iter().map(|&i| ValueId(i)).collect(),
            kind: ValueKind::Float,
            shape: vec![1],
            origin: None,
        }
    }

    #[test]
    fn keeps_what_outputs_need_across_parties() {
        let mut low = LowGraph::default();
        low.push(node(0, Kernel::Input { name: "x".into() }, &[])); // 0
        low.push(node(
            0,
            Kernel::Input {
                name: "unused".into(),
            },
            &[],
        )); // 1
        low.push(node(
            0,
            Kernel::Send {
                to: 1,
                exchange: Exchange::Reveal,
            },
            &[0],
        )); // 2
        low.push(node(
            1,
            Kernel::Recv {
                from: 0,
                send: ValueId(2),
            },
            &[],
        )); // 3
        low.push(node(1, Kernel::Output { name: "y".into() }, &[3])); // 4
        low.push(node(1, Kernel::Neg, &[3])); // 5, unused
        remove_dead(&mut low);
        assert_eq!(low.dead, vec![false, true, false, false, false, true]);
    }
}

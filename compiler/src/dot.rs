//! Graphviz DOT of a compiled graph: one cluster per party, share exchanges drawn as edges
//! between clusters labelled with their size in bytes and their round.

use std::collections::HashMap;
use std::fmt::Write;

use shareflow_graphs::dot::{escape, PARTY_COLOURS};

use crate::cost::entry_bytes;
use crate::ir::{Kernel, ValueId};
use crate::program::CompiledGraph;

/// The compiled graph as DOT.
pub fn to_dot(g: &CompiledGraph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph compiled {{");
    let _ = writeln!(out, "  rankdir=TB; compound=true;");
    let _ = writeln!(
        out,
        "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=9];"
    );
    let _ = writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=8];");
    let mut send_of_recv: HashMap<ValueId, ValueId> = HashMap::new();
    for p in &g.programs {
        let colour = PARTY_COLOURS[p.host % PARTY_COLOURS.len()];
        let _ = writeln!(
            out,
            "  subgraph cluster_{} {{ label=\"{}\"; style=filled; fillcolor=\"{colour}30\";",
            p.host,
            escape(&p.party)
        );
        for i in &p.instrs {
            let _ = writeln!(
                out,
                "    {} [label=\"{}\\n{:?} r{}\", fillcolor=\"{colour}\"];",
                i.id,
                escape(i.kernel.name()),
                i.shape,
                i.round
            );
            if let Kernel::Recv { send, .. } = i.kernel {
                send_of_recv.insert(i.id, send);
            }
        }
        let _ = writeln!(out, "  }}");
    }
    for p in &g.programs {
        for i in &p.instrs {
            for input in &i.inputs {
                let _ = writeln!(out, "  {input} -> {};", i.id);
            }
            if let Some(send) = send_of_recv.get(&i.id) {
                let _ = writeln!(
                    out,
                    "  {send} -> {} [color=\"#d62728\", style=bold, label=\"{} B, round {}\"];",
                    i.id,
                    entry_bytes(i.kind, &i.shape),
                    i.round
                );
            }
        }
    }
    let _ = writeln!(out, "}}");
    out
}

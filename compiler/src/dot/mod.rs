//! Graphviz DOT of a compiled graph that a person can read.
//!
//! One cluster per party; in it one box per logical layer (`conv1`, `relu1`, `dense2`, see
//! [`layers`]) with its kernel count and the rounds it spans, or, for the layers drawn in
//! [`Detail`], their single kernels. Rounds run top to bottom: a round axis on the left
//! gives each round's traffic, and every box sits in the row of the last round it works in. The
//! exchanges between two boxes in one round (either way) are one edge, coloured by what the
//! receiver learns (seed, share, masked opening, reveal) and labelled with the round, the
//! values and their bytes; the values a box uses from another box of its party are one grey
//! edge per pair.

pub mod layers;
pub mod view;

use std::collections::BTreeMap;
use std::fmt::Write;

use shareflow_graphs::dot::{escape, PARTY_COLOURS};

pub use view::{Detail, Flow, Key, Vertex, View};

use crate::ir::Exchange;
use crate::program::CompiledGraph;
use crate::CompileError;

/// The colour of an exchange edge.
fn exchange_colour(kind: Exchange) -> &'static str {
    match kind {
        Exchange::Seed => "#7f7f7f",
        Exchange::Share => "#1f77b4",
        Exchange::MaskedOpening => "#e6550d",
        Exchange::Reveal => "#d62728",
    }
}

/// What an exchange edge says of its kind: singular and plural.
fn exchange_words(kind: Exchange) -> (&'static str, &'static str) {
    match kind {
        Exchange::Seed => ("seed", "seeds"),
        Exchange::Share => ("share", "shares"),
        Exchange::MaskedOpening => ("masked opening", "masked openings"),
        Exchange::Reveal => ("reveal", "reveals"),
    }
}

const EXCHANGES: [Exchange; 4] = [
    Exchange::Seed,
    Exchange::Share,
    Exchange::MaskedOpening,
    Exchange::Reveal,
];

/// A number with thousands separators (`12,345`).
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The compiled graph as DOT, one box per layer and party.
pub fn to_dot(g: &CompiledGraph) -> String {
    // Every instruction's origin is one of the graph's layers and every receive has its send
    // in a checked graph; an unchecked one is drawn with what can be drawn.
    to_dot_with(g, &Detail::Layers).unwrap_or_else(|e| format!("// {e}\ndigraph compiled {{}}\n"))
}

/// The compiled graph as DOT at `detail`; an error names a layer the graph does not have.
pub fn to_dot_with(g: &CompiledGraph, detail: &Detail) -> Result<String, CompileError> {
    let view = View::of(g, detail)?;
    Ok(render(&view, &g.cost()))
}

/// The DOT id of a vertex.
fn id(key: &Key) -> String {
    match key {
        Key::Group { layer, host } => format!("l{}_p{host}", layer.0),
        Key::Kernel(v) => v.to_string(),
    }
}

fn rounds_text(v: &Vertex) -> String {
    if v.first == v.last {
        format!("round {}", v.first)
    } else {
        format!("rounds {}-{}", v.first, v.last)
    }
}

/// The attribute that keeps the edges of a drawing of boxes from setting ranks (the round
/// axis sets them). Graphviz 2.43 aborts on such edges in a drawing with single kernels in
/// nested clusters, whose edges then rank them as the data flows.
fn free(detailed: bool) -> &'static str {
    if detailed {
        ""
    } else {
        "constraint=false, "
    }
}

/// Writes a view as DOT; `cost` gives the traffic of each round.
pub fn render(view: &View, cost: &crate::CostReport) -> String {
    let mut out = String::new();
    let total_rounds = view.rounds;
    let _ = writeln!(out, "digraph compiled {{");
    let _ = writeln!(
        out,
        "  graph [rankdir=TB, newrank=true, forcelabels=true, nodesep=0.25, ranksep=0.3, fontname=\"Helvetica\", \
         fontsize=12, labelloc=t, label=\"{} · {} rounds · {} B\"];",
        escape(&view.protocol),
        total_rounds,
        thousands(cost.bytes)
    );
    let _ = writeln!(
        out,
        "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];"
    );
    let _ = writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=8];");

    // The round axis: a heading above each round's row; a box sits between the heading of
    // the last round it works in and the next heading (`rank=same` across clusters makes
    // Graphviz 2.43 loop, so ranks are set by invisible edges).
    let last_rank = view
        .vertices
        .values()
        .map(|v| v.last)
        .max()
        .unwrap_or(0)
        .max(total_rounds);
    let _ = writeln!(
        out,
        "  subgraph cluster_rounds {{ label=\"\"; style=invis; \
         node [shape=plaintext, style=\"\", fontsize=9];"
    );
    for r in 0..=last_rank {
        let bytes = cost.bytes_per_round.get(r as usize).copied().unwrap_or(0);
        let messages = cost
            .messages_per_round
            .get(r as usize)
            .copied()
            .unwrap_or(0);
        let traffic = if messages > 0 {
            format!("\\n{} B, {messages} msg", thousands(bytes))
        } else {
            String::new()
        };
        let _ = writeln!(out, "    round{r} [label=\"round {r}{traffic}\"];");
    }
    let _ = writeln!(out, "    round_end [label=\"\", width=0, height=0];");
    let axis: Vec<String> = (0..=last_rank)
        .map(|r| format!("round{r}"))
        .chain(["round_end".to_string()])
        .collect();
    let _ = writeln!(
        out,
        "    {} [style=invis, weight=1000, minlen=2];",
        axis.join(" -> ")
    );
    let _ = writeln!(out, "  }}");

    // One cluster per party; in it a cluster per layer drawn kernel by kernel.
    let mut by_host: BTreeMap<usize, Vec<(&Key, &Vertex)>> = BTreeMap::new();
    for (k, v) in &view.vertices {
        by_host.entry(v.host).or_default().push((k, v));
    }
    for (host, vertices) in &by_host {
        let colour = PARTY_COLOURS[host % PARTY_COLOURS.len()];
        let party = view.parties.get(*host).map(String::as_str).unwrap_or("?");
        let _ = writeln!(
            out,
            "  subgraph cluster_p{host} {{ label=\"{}\"; fontsize=14; style=\"rounded,filled\"; \
             fillcolor=\"{colour}40\"; color=\"{colour}\"; penwidth=2;",
            escape(party)
        );
        let mut detailed: BTreeMap<usize, Vec<(&Key, &Vertex)>> = BTreeMap::new();
        for &(k, v) in vertices {
            match k {
                Key::Group { .. } => {
                    let _ = writeln!(
                        out,
                        "    {} [label=\"{}\\n{} kernels, {}\", fillcolor=\"{colour}\"];",
                        id(k),
                        escape(view.layers.name(v.layer)),
                        v.kernels,
                        rounds_text(v)
                    );
                }
                Key::Kernel(_) => detailed.entry(v.layer.0).or_default().push((k, v)),
            }
        }
        for (layer, kernels) in detailed {
            let name = kernels
                .first()
                .map(|(_, v)| view.layers.name(v.layer))
                .unwrap_or("?");
            let _ = writeln!(
                out,
                "    subgraph cluster_l{layer}_p{host} {{ label=\"{}\"; fontsize=11; \
                 style=\"rounded,dashed\"; color=\"#555555\";",
                escape(name)
            );
            for (k, v) in kernels {
                let (kernel, shape) = v.kernel.clone().unwrap_or(("?", Vec::new()));
                let _ = writeln!(
                    out,
                    "      {} [label=\"{kernel}\\n{shape:?}\", fontsize=8, fillcolor=\"{colour}\", \
                     tooltip=\"{k:?}, {}\"];",
                    id(k),
                    rounds_text(v)
                );
            }
            let _ = writeln!(out, "    }}");
        }
        let _ = writeln!(out, "  }}");
    }

    // Ranks: every vertex between the heading of its last round and the next heading; the
    // other edges do not constrain ranks.
    for (k, v) in &view.vertices {
        let next = if v.last < last_rank {
            format!("round{}", v.last + 1)
        } else {
            "round_end".into()
        };
        let _ = writeln!(
            out,
            "  round{} -> {} -> {next} [style=invis, weight=0];",
            v.last,
            id(k)
        );
    }

    let detailed = view.vertices.keys().any(|k| matches!(k, Key::Kernel(_)));
    for ((from, to), n) in &view.data {
        let _ = writeln!(
            out,
            "  {} -> {} [{}color=\"#999999\", arrowsize=0.6, weight={n}];",
            id(from),
            id(to),
            free(detailed)
        );
    }
    for ((from, to, round), flow) in &view.flows {
        let kinds: Vec<String> = flow
            .kinds
            .iter()
            .map(|(&k, &n)| {
                let (one, many) = exchange_words(k);
                format!("{n} {}", if n == 1 { one } else { many })
            })
            .collect();
        let colour = flow.main_kind().map(exchange_colour).unwrap_or("#000000");
        let width = 1.0 + (flow.bytes.max(1) as f64).log10() / 2.0;
        let dir = match (flow.forward, flow.backward) {
            (true, true) => "both",
            (false, true) => "back",
            _ => "forward",
        };
        let _ = writeln!(
            out,
            "  {} -> {} [{}dir={dir}, color=\"{colour}\", fontcolor=\"{colour}\", penwidth={width:.1}, \
             xlabel=\"r{round}: {} B\\n{}\"];",
            id(from),
            id(to),
            free(detailed),
            thousands(flow.bytes),
            kinds.join(", ")
        );
    }

    // A legend of the exchange colours.
    let mut legend = String::new();
    for k in EXCHANGES {
        let _ = write!(
            legend,
            "<tr><td align=\"left\"><font color=\"{}\">&#9473;&#9473; {}</font></td></tr>",
            exchange_colour(k),
            exchange_words(k).1
        );
    }
    let _ = writeln!(
        out,
        "  legend [shape=plaintext, style=\"\", fontsize=9, label=<<table border=\"0\" \
         cellborder=\"0\" cellspacing=\"0\"><tr><td align=\"left\"><b>exchanges</b></td></tr>\
         {legend}<tr><td align=\"left\">labels: round, bytes (entries; each message adds a \
         {}-byte frame header)</td></tr></table>>];",
        crate::cost::FRAME_HEADER_BYTES
    );
    let _ = writeln!(out, "  legend -> round0 [style=invis];");
    let _ = writeln!(out, "}}");
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(13_184_822), "13,184,822");
    }
}

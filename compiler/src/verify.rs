//! What a party's program lets leave it, checked before it runs: a compiled graph is a file
//! that anyone may have edited, so a party does not take its word for what it sends.
//!
//! Two rules, checked over every party's program (every party holds all of them):
//!
//! - **Private inputs leave only as seeds and shares.** A taint pass follows every value that
//!   depends on one of the party's `Input`s. Such a value may be sent only once it is masked:
//!   the sum or difference with fresh draws (`Expand`), one of them of a seed that the
//!   receiver does not hold, each draw masking one value only. The raw value, or any
//!   deterministic function of it, sent to anyone is refused, whatever kind of exchange the
//!   graph calls it.
//! - **Outputs go only to the parties the graph names.** A `Reveal` goes only to a party that
//!   receives an output; an input owner receives nothing but reveals; an `Output` kernel names an
//!   output of its own party.
//!
//! A serving graph is checked program by program, the setup's stored values carried into the
//! prediction program's loads (a stored seed stays known to whom it was sent; a stored draw
//! is no fresh draw for a prediction, so a prediction's value masked with it stays private).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::ir::{Exchange, Host, Kernel, StoreKey, ValueId};
use crate::lower::COMPUTE_PARTIES;
use crate::program::{CompiledGraph, Instr, Program};
use crate::{CompileError, ServingGraph};

/// What a value of a party's program carries of its private inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Taint {
    /// Nothing of a private input.
    Clean,
    /// The input itself or a deterministic function of it.
    Private(String),
    /// A private value plus or minus fresh draws of the seeds `seeds` (hidden from a party
    /// that lacks any of them).
    Masked { input: String, seeds: Vec<ValueId> },
    /// A draw of seed `seed` (stream `stream`).
    Draw { seed: ValueId, stream: u64 },
}

/// Stored values of a setup program, as the prediction program's loads see them.
#[derive(Debug, Clone, Default)]
struct Stored {
    taint: HashMap<StoreKey, Taint>,
    /// Who holds each stored seed.
    holders: HashMap<StoreKey, BTreeSet<Host>>,
}

/// Checks every program of `graph` (see the module docs).
pub fn verify(graph: &CompiledGraph) -> Result<(), CompileError> {
    for p in &graph.programs {
        verify_program(graph, p, &Stored::default())?;
    }
    crate::source::check(graph)
}

/// Checks both programs of every party of a serving graph.
pub fn verify_serving(graph: &ServingGraph) -> Result<(), CompileError> {
    for setup in &graph.setup.programs {
        let stored = verify_program(&graph.setup, setup, &Stored::default())?;
        let predict =
            graph
                .predict
                .programs
                .get(setup.host)
                .ok_or_else(|| CompileError::Party {
                    party: setup.party.clone(),
                    message: "has a setup program but no prediction program".into(),
                })?;
        verify_program(&graph.predict, predict, &stored)?;
    }
    crate::source::check_serving(graph)
}

fn leak(
    p: &Program,
    i: &Instr,
    input: &str,
    to: Host,
    g: &CompiledGraph,
    why: &str,
) -> CompileError {
    CompileError::InputLeak {
        party: p.party.clone(),
        instr: i.id,
        input: input.to_string(),
        peer: g
            .parties
            .get(to)
            .cloned()
            .unwrap_or_else(|| format!("#{to}")),
        why: why.to_string(),
    }
}

fn misrouted(p: &Program, i: &Instr, to: Host, g: &CompiledGraph, why: String) -> CompileError {
    CompileError::OutputLeak {
        party: p.party.clone(),
        instr: i.id,
        peer: g
            .parties
            .get(to)
            .cloned()
            .unwrap_or_else(|| format!("#{to}")),
        why,
    }
}

/// Who holds each seed of `p`: who sampled or sent it, and everyone it is sent to.
fn seed_holders(p: &Program, stored: &Stored) -> HashMap<ValueId, BTreeSet<Host>> {
    let mut holders: HashMap<ValueId, BTreeSet<Host>> = HashMap::new();
    for i in &p.instrs {
        match &i.kernel {
            Kernel::SampleSeed => {
                holders.entry(i.id).or_default().insert(p.host);
            }
            Kernel::Recv { from, .. } => {
                holders.entry(i.id).or_default().extend([p.host, *from]);
            }
            Kernel::Load { key } => {
                let known = stored.holders.get(key).cloned().unwrap_or_default();
                holders.entry(i.id).or_default().extend(known);
            }
            _ => {}
        }
    }
    for i in &p.instrs {
        if let (Kernel::Send { to, .. }, Some(v)) = (&i.kernel, i.inputs.first()) {
            if let Some(h) = holders.get_mut(v) {
                h.insert(*to);
            }
        }
    }
    holders
}

/// The taint of an instruction's value from those of its inputs. `draws` are the (seed,
/// stream) pairs already used as a mask: a draw masks one value only.
fn taint_of(
    i: &Instr,
    taints: &HashMap<ValueId, Taint>,
    stored: &Stored,
    draws: &mut HashSet<(ValueId, u64)>,
) -> Taint {
    let of = |v: &ValueId| taints.get(v).cloned().unwrap_or(Taint::Clean);
    match &i.kernel {
        Kernel::Input { name } => return Taint::Private(name.clone()),
        Kernel::Load { key } => return stored.taint.get(key).cloned().unwrap_or(Taint::Clean),
        Kernel::Expand { stream, .. } => {
            if let Some(seed) = i.inputs.first() {
                return Taint::Draw {
                    seed: *seed,
                    stream: *stream,
                };
            }
        }
        Kernel::Add | Kernel::Sub => {
            if let [a, b] = i.inputs.as_slice() {
                let pair = match (of(a), of(b)) {
                    (Taint::Private(x), Taint::Draw { seed, stream })
                    | (Taint::Draw { seed, stream }, Taint::Private(x)) => {
                        Some((x, Vec::new(), seed, stream))
                    }
                    (Taint::Masked { input, seeds }, Taint::Draw { seed, stream })
                    | (Taint::Draw { seed, stream }, Taint::Masked { input, seeds }) => {
                        Some((input, seeds, seed, stream))
                    }
                    _ => None,
                };
                if let Some((input, mut seeds, seed, stream)) = pair {
                    if draws.insert((seed, stream)) {
                        seeds.push(seed);
                        return Taint::Masked { input, seeds };
                    }
                    return Taint::Private(input);
                }
            }
        }
        _ => {}
    }
    // anything else computed from a private or masked value is a function of the input
    i.inputs
        .iter()
        .find_map(|v| match of(v) {
            Taint::Private(x) | Taint::Masked { input: x, .. } => Some(Taint::Private(x)),
            _ => None,
        })
        .unwrap_or(Taint::Clean)
}

/// Checks one send of `p`: what it carries of a private input (`sent`), and where it goes.
fn check_send(
    g: &CompiledGraph,
    p: &Program,
    i: &Instr,
    (to, exchange): (Host, Exchange),
    sent: Option<&Taint>,
    holders: &HashMap<ValueId, BTreeSet<Host>>,
) -> Result<(), CompileError> {
    match sent {
        Some(Taint::Private(input)) => {
            return Err(leak(p, i, input, to, g, "in the clear (not masked)"));
        }
        Some(Taint::Masked { input, seeds })
            if seeds
                .iter()
                .all(|seed| holders.get(seed).is_none_or(|h| h.contains(&to))) =>
        {
            return Err(leak(
                p,
                i,
                input,
                to,
                g,
                "masked by randomness that the receiver holds",
            ));
        }
        _ => {}
    }
    let receivers: BTreeSet<&str> = g.outputs.iter().map(|o| o.party.as_str()).collect();
    let name = g.parties.get(to).map_or("?", String::as_str);
    if exchange == Exchange::Reveal && !receivers.contains(name) {
        let named: Vec<&str> = receivers.into_iter().collect();
        let named = if named.is_empty() {
            "none".to_string()
        } else {
            named.join(", ")
        };
        return Err(misrouted(
            p,
            i,
            to,
            g,
            format!("reveals a value to a party that receives no output (receivers: {named})"),
        ));
    }
    if to >= COMPUTE_PARTIES.len() && exchange != Exchange::Reveal {
        return Err(misrouted(
            p,
            i,
            to,
            g,
            format!("sends an input owner a {exchange:?} exchange: it receives reveals only"),
        ));
    }
    Ok(())
}

/// Checks one program; returns what its `Store`s keep, for the loads of the next program.
fn verify_program(g: &CompiledGraph, p: &Program, stored: &Stored) -> Result<Stored, CompileError> {
    let holders = seed_holders(p, stored);
    let mut taints: HashMap<ValueId, Taint> = HashMap::new();
    let mut draws = HashSet::new();
    let mut kept = Stored::default();
    for i in &p.instrs {
        match &i.kernel {
            Kernel::Send { to, exchange } => {
                let sent = i.inputs.first().and_then(|v| taints.get(v));
                check_send(g, p, i, (*to, *exchange), sent, &holders)?;
            }
            Kernel::Output { name }
                if !g
                    .outputs
                    .iter()
                    .any(|o| o.party == p.party && &o.name == name) =>
            {
                return Err(misrouted(
                    p,
                    i,
                    p.host,
                    g,
                    format!("keeps output {name:?}, which the graph does not give this party"),
                ));
            }
            Kernel::Store { key } => {
                if let Some(v) = i.inputs.first() {
                    // A draw made once at setup is the same in every prediction: it masks
                    // nothing of a prediction's values (seeds, expanded afresh by every run,
                    // are what the predictions draw from).
                    match taints.get(v) {
                        Some(Taint::Draw { .. }) | None => {}
                        Some(t) => {
                            kept.taint.insert(key.clone(), t.clone());
                        }
                    }
                    if let Some(h) = holders.get(v) {
                        kept.holders.insert(key.clone(), h.clone());
                    }
                }
            }
            _ => {}
        }
        let t = taint_of(i, &taints, stored, &mut draws);
        if t != Taint::Clean {
            taints.insert(i.id, t);
        }
    }
    Ok(kept)
}

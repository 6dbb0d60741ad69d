//! Serving mode of the lowering: which values are computed once at setup.
//!
//! A lowering for serving knows which parties' inputs persist (the model owner's weights). It
//! pins to setup the inputs of those parties, every seed (a prediction's client's too: each
//! run draws from a seed in its own domain, [`Lowerer::group_seed`]), and the randomness drawn
//! while lowering an operation whose subjects are setup values ([`Lowerer::setup_if`]): the
//! dealer's mask of a weight, the shares of a weight, a truncation pair of a product of
//! weights. Everything else it draws is fresh on every prediction. [`crate::passes::persist`]
//! then derives every node's phase from these pins and splits the graph, and refuses a draw
//! at setup from a seed that a party whose inputs change with every prediction holds.

use std::collections::HashSet;

use super::{Lowerer, COMPUTE_PARTIES};
use crate::ir::{Host, Kernel, ValueId};
use crate::passes::persist::{draws_randomness, phase_of, Phase};

/// The serving state of a lowering.
#[derive(Debug, Clone, Default)]
pub struct Serving {
    /// Per host: whether its inputs persist across predictions.
    persistent: Vec<bool>,
    /// Nodes pinned to setup.
    pub pinned: HashSet<ValueId>,
    /// Whether randomness drawn now is drawn once at setup.
    in_setup: bool,
    /// Phases of the first nodes, extended on demand (ids are topological).
    phases: Vec<Phase>,
}

impl Lowerer {
    /// Lowers for serving: the inputs of `persistent` hosts are fixed across predictions.
    pub fn serve(&mut self, persistent: &[Host]) {
        let mut flags = vec![false; self.parties.len()];
        for &h in persistent {
            if let Some(f) = flags.get_mut(h) {
                *f = true;
            }
        }
        self.serving = Some(Serving {
            persistent: flags,
            ..Default::default()
        });
    }

    /// The input parties whose inputs change with every prediction (empty unless serving).
    pub fn fresh_parties(&self) -> Vec<Host> {
        self.serving
            .as_ref()
            .map(|s| {
                (COMPUTE_PARTIES.len()..s.persistent.len())
                    .filter(|&h| !s.persistent[h])
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The nodes pinned to setup (empty unless serving).
    pub fn pinned(&self) -> HashSet<ValueId> {
        self.serving
            .as_ref()
            .map(|s| s.pinned.clone())
            .unwrap_or_default()
    }

    /// Called for every node emitted: pins persistent inputs and setup randomness.
    pub(crate) fn note_emitted(&mut self, id: ValueId) {
        let Some(s) = self.serving.as_mut() else {
            return;
        };
        let node = self.low.node(id);
        let pin = match node.kernel {
            Kernel::Input { .. } => s.persistent.get(node.host).copied().unwrap_or(false),
            _ => s.in_setup && draws_randomness(&self.low, node),
        };
        if pin {
            s.pinned.insert(id);
        }
    }

    /// Whether `v` is computed once at setup (never when not serving).
    pub fn is_setup(&mut self, v: ValueId) -> bool {
        let Some(s) = self.serving.as_mut() else {
            return false;
        };
        let want = v.0 as usize;
        while s.phases.len() <= want && s.phases.len() < self.low.nodes.len() {
            let i = s.phases.len();
            let id = ValueId(i as u32);
            let p = phase_of(&self.low, id, s.pinned.contains(&id), &s.phases);
            s.phases.push(p);
        }
        s.phases.get(want) == Some(&Phase::Setup)
    }

    /// Whether an operation on `subjects` is done once at setup: some are setup values and
    /// none changes with the prediction.
    pub fn all_setup(&mut self, subjects: &[ValueId]) -> bool {
        if self.serving.is_none() {
            return false;
        }
        let mut any = false;
        for &v in subjects {
            any |= self.is_setup(v);
            let phase = self
                .serving
                .as_ref()
                .and_then(|s| s.phases.get(v.0 as usize).copied());
            if phase == Some(Phase::Predict) {
                return false;
            }
        }
        any
    }

    /// Runs `f` with the randomness it draws pinned to setup if `setup` (or if it already is).
    pub fn setup_if<R>(&mut self, setup: bool, f: impl FnOnce(&mut Self) -> R) -> R {
        let outer = self.serving.as_ref().map(|s| s.in_setup).unwrap_or(false);
        self.in_phase(outer || setup, f)
    }

    /// Runs `f` with the randomness it draws pinned to setup exactly if `setup`.
    pub(crate) fn in_phase<R>(&mut self, setup: bool, f: impl FnOnce(&mut Self) -> R) -> R {
        let Some(s) = self.serving.as_mut() else {
            return f(self);
        };
        let outer = std::mem::replace(&mut s.in_setup, setup);
        let r = f(self);
        if let Some(s) = self.serving.as_mut() {
            s.in_setup = outer;
        }
        r
    }
}

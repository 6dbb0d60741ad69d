//! Session state in the lowering: variables, their first values, and run-time parameters.
//!
//! A variable is held by the two servers as additive shares in their session stores, under
//! the variable's name ([`StoreKey::Variable`]), across the runs of a session. A program
//! loads a variable's shares where the graph reads it and stores the new shares where the
//! graph assigns it (written when the run ends, so every read of a run sees the value from
//! before it). Nobody else ever holds anything of it unless the graph outputs it.
//!
//! The first values come from [`lower_init`]: an owner's value is secret-shared like any
//! private input; a public seeded initialiser is drawn by server 0 and shared with server 1
//! through their common randomness (no traffic; the value is public to whoever knows the
//! seed); zeros are a fresh random pair `(r, -r)`.

use shareflow_graphs::{Graph, Init, Op};
use shareflow_ops::ValueKind;

use super::{Lowerer, Shared, COMPUTE_PARTIES, HELPER, S0, S1};
use crate::ir::{Draw, Host, Kernel, StoreKey, ValueId};
use crate::CompileError;

impl Lowerer {
    /// The shares of variable `name` of shape `shape`: each server loads its own.
    pub fn load_variable(&mut self, name: &str, shape: &[usize]) -> Shared {
        let load = Kernel::Load {
            key: StoreKey::Variable(name.to_string()),
        };
        let a = self.emit(S0, load.clone(), &[], ValueKind::Ring, shape);
        let b = self.emit(S1, load, &[], ValueKind::Ring, shape);
        Shared { s: [a, b] }
    }

    /// Stores `x` as the next value of variable `name`: each server its own share.
    pub fn store_variable(&mut self, name: &str, x: &Shared) {
        for (host, v) in [(S0, x.s[0]), (S1, x.s[1])] {
            let shape = self.shape(v).to_vec();
            let store = Kernel::Store {
                key: StoreKey::Variable(name.to_string()),
            };
            self.emit(host, store, &[v], ValueKind::Ring, &shape);
        }
    }

    /// Run-time parameter `name` in fixed point on server 0 and server 1.
    pub fn parameter(&mut self, name: &str, shape: &[usize]) -> [ValueId; 2] {
        let p = [S0, S1].map(|host| self.parameter_on(host, name, shape));
        self.parameters.insert(p[0], (name.to_string(), None));
        p
    }

    /// The run-time parameter whose value on server 0 is `p0` ([`Lowerer::parameter`]), in
    /// fixed point on the helper too (which is then given it at run time, as the servers
    /// are); `None` if `p0` is not a parameter.
    pub fn helper_parameter(&mut self, p0: ValueId) -> Option<ValueId> {
        let (name, on_helper) = self.parameters.get(&p0).cloned()?;
        if let Some(v) = on_helper {
            return Some(v);
        }
        let shape = self.shape(p0).to_vec();
        let v = self.parameter_on(HELPER, &name, &shape);
        self.parameters.insert(p0, (name, Some(v)));
        Some(v)
    }

    fn parameter_on(&mut self, host: Host, name: &str, shape: &[usize]) -> ValueId {
        let kernel = Kernel::Parameter {
            name: name.to_string(),
        };
        let value = self.emit(host, kernel, &[], ValueKind::Float, shape);
        let frac_bits = self.frac_bits();
        self.emit(
            host,
            Kernel::Encode { frac_bits },
            &[value],
            ValueKind::Ring,
            shape,
        )
    }
}

/// Lowers the first value of every variable of `graph` and stores its shares (the program
/// that starts a session). An owner gives its variable as an input named like the variable.
pub fn lower_init(graph: &Graph, cx: &mut Lowerer) -> Result<(), CompileError> {
    for (id, node) in graph.nodes() {
        let Op::Variable { name, init, .. } = &node.op else {
            continue;
        };
        cx.origin = Some(graph.label(id));
        let dims = node.shape.dims();
        let shares = match init {
            Init::Owner { party } => {
                let host = COMPUTE_PARTIES.len() + party.index();
                let kernel = Kernel::Input { name: name.clone() };
                let value = cx.emit(host, kernel, &[], ValueKind::Float, dims);
                cx.share(value)
            }
            Init::Zeros => {
                let (r, theirs) = cx.common_random(S0, S1, Draw::Ring, dims);
                let minus = cx.emit_like(Kernel::Neg, &[theirs]);
                Shared { s: [r, minus] }
            }
            Init::HeNormal { .. } | Init::Normal { .. } => {
                let kernel = Kernel::Initializer { init: *init };
                let value = cx.emit(S0, kernel, &[], ValueKind::Float, dims);
                let fb = cx.frac_bits();
                let encoded = cx.emit(
                    S0,
                    Kernel::Encode { frac_bits: fb },
                    &[value],
                    ValueKind::Ring,
                    dims,
                );
                cx.share_ring(encoded)
            }
        };
        cx.store_variable(name, &shares);
    }
    cx.origin = None;
    Ok(())
}

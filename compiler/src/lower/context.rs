//! The lowering context: emits placed kernels and share exchanges, and knows the parties.

use std::collections::HashMap;

use ndarray::ArrayD;
use shareflow_graphs::op::Window;
use shareflow_ops::fixed::FixedPoint;
use shareflow_ops::ValueKind;

use super::{Masked, Shared};
use crate::ir::{Draw, Exchange, Host, Kernel, LowGraph, LowNode, ValueId};
use crate::options::CompileOptions;
use crate::CompileError;

/// The first server.
pub const S0: Host = 0;
/// The second server.
pub const S1: Host = 1;
/// The third party: crypto producer (Pond) or dealer and comparison helper (SecureNN).
pub const HELPER: Host = 2;
/// The compute parties' names, in host order.
pub const COMPUTE_PARTIES: [&str; 3] = ["server0", "server1", "helper"];

/// Builds the compiled graph of every party.
pub struct Lowerer {
    /// The compiled graph built so far (every party's nodes).
    pub low: LowGraph,
    /// The parties by host: the compute parties, then the graph's own.
    pub parties: Vec<String>,
    /// The options compiled with.
    pub options: CompileOptions,
    /// The logical node being lowered, for per-layer costs and error messages.
    pub origin: Option<String>,
    /// Seeds by the parties that hold them, the sampler first ([`Lowerer::group_seed`]).
    seeds: HashMap<Vec<Host>, Vec<ValueId>>,
    sends: HashMap<(ValueId, Host), ValueId>,
    next_stream: u64,
    pub(crate) masked: HashMap<[ValueId; 2], Masked>,
    /// Shares made from other shares by a local shape kernel (reshape, transpose): the kernel
    /// and the source, so that [`Lowerer::mask`] derives their mask from the source's.
    pub(crate) reshaped: HashMap<[ValueId; 2], (Kernel, Shared)>,
    /// Server 0's `b_0 + f` of a masked value by its `f` (see [`Lowerer::beaver`]), made once.
    pub(crate) folded: HashMap<ValueId, ValueId>,
    /// Truncations folded into products, by their output ([`super::Truncated`]).
    pub(crate) truncations: HashMap<[ValueId; 2], super::Truncated>,
    /// Widths `k` known from how a value was made, by its shares: `-2^(k-1) <= x < 2^(k-1)`
    /// wherever the value is right, so that its sign is exact over `k` bits
    /// ([`Lowerer::sign_width`]): `64 - f` for a dealer truncation's output by `2^f`, and
    /// from it the candidates and differences of a max pool ([`super::securenn::maxpool`]).
    pub(crate) sign_widths: HashMap<[ValueId; 2], u32>,
    /// Shares known in affine form other than masked values and [`super::Truncated`] ones
    /// (see [`super::affine`]), by their shares.
    pub(crate) affines: HashMap<[ValueId; 2], super::affine::Affine>,
    /// SecureNN: shares of `DReLU(x)` (0/1 words) by the shares of `x`, from the forward
    /// ReLU, for the backward pass.
    pub(crate) drelus: HashMap<[ValueId; 2], Shared>,
    /// SecureNN: the decisions of a max pool's comparison tree by the shares of its input and
    /// its window (one shared bit tensor per level), for the backward pass.
    pub(crate) pool_trees: HashMap<([ValueId; 2], Window), Vec<Shared>>,
    /// The shares of a value of one party, shared once however many ops use it.
    pub(crate) shared: HashMap<ValueId, Shared>,
    /// Run-time parameters by server 0's encoded value: their name, and their encoded value
    /// on the helper once a kernel of the helper's needs it ([`Lowerer::helper_parameter`]).
    pub(crate) parameters: HashMap<ValueId, (String, Option<ValueId>)>,
    /// Set when lowering for serving ([`Lowerer::serve`]).
    pub(crate) serving: Option<super::phase::Serving>,
    /// Proven comparison widths and what they assume ([`crate::bounds`]); `None`: every
    /// comparison over the whole ring.
    pub narrowing: Option<crate::bounds::Narrowing>,
    /// The width of the signs of the logical node being lowered (64 unless `narrowing`
    /// proves it narrower).
    pub sign_bits: u32,
}

impl Lowerer {
    /// A lowerer for these parties (compute parties first) and options.
    pub fn new(parties: Vec<String>, options: CompileOptions) -> Self {
        Lowerer {
            low: LowGraph::default(),
            parties,
            options,
            origin: None,
            seeds: HashMap::new(),
            sends: HashMap::new(),
            next_stream: 0,
            masked: HashMap::new(),
            reshaped: HashMap::new(),
            folded: HashMap::new(),
            truncations: HashMap::new(),
            sign_widths: HashMap::new(),
            affines: HashMap::new(),
            drelus: HashMap::new(),
            pool_trees: HashMap::new(),
            shared: HashMap::new(),
            parameters: HashMap::new(),
            serving: None,
            narrowing: None,
            sign_bits: crate::lower::securenn::WORD_BITS as u32,
        }
    }

    /// Fractional bits of the fixed-point encoding.
    pub fn frac_bits(&self) -> u32 {
        self.options.frac_bits
    }

    /// The width of a sign of `a`: [`Lowerer::sign_bits`] (64 unless the model owner's bound
    /// proves fewer), and at most the width known from how `a` was made
    /// (`Lowerer::sign_widths`). A dealer truncation by `2^f` is right for every input
    /// `|x| < 2^62`, and then `|a| <= 2^(62-f)` (its ulp included), below `2^(63-f)`: a sign
    /// over `64 - f` bits is exact wherever the value is, with no bound to prove. (Beyond
    /// that range the truncation errs by multiples of `2^(64-f)`, which the narrower sign does
    /// not see: it is right for inputs up to about `2^63`, where the 64-bit sign of a wrong
    /// output was not.)
    pub fn sign_width(&self, a: &Shared) -> u32 {
        match self.sign_widths.get(&a.s) {
            Some(&k) => self.sign_bits.min(k),
            None => self.sign_bits,
        }
    }

    /// An error about the logical node being lowered.
    pub fn error(&self, message: impl Into<String>) -> CompileError {
        CompileError::Node {
            node: self.origin.clone().unwrap_or_else(|| "?".into()),
            message: message.into(),
        }
    }

    /// Adds a kernel on `host`.
    pub fn emit(
        &mut self,
        host: Host,
        kernel: Kernel,
        inputs: &[ValueId],
        kind: ValueKind,
        shape: &[usize],
    ) -> ValueId {
        let id = self.low.push(LowNode {
            host,
            kernel,
            inputs: inputs.to_vec(),
            kind,
            shape: shape.to_vec(),
            origin: self.origin.clone(),
        });
        self.note_emitted(id);
        id
    }

    /// Adds a kernel whose result has the kind and shape of its first input.
    pub fn emit_like(&mut self, kernel: Kernel, inputs: &[ValueId]) -> ValueId {
        let first = self.low.node(inputs[0]);
        let (host, kind, shape) = (first.host, first.kind, first.shape.clone());
        self.emit(host, kernel, inputs, kind, &shape)
    }

    /// The shape of value `v`.
    pub fn shape(&self, v: ValueId) -> &[usize] {
        &self.low.node(v).shape
    }

    /// The party holding value `v`.
    pub fn host(&self, v: ValueId) -> Host {
        self.low.node(v).host
    }

    /// Moves `value` to `to`: a `Send` on its host and a `Recv` on `to` (once per pair).
    pub fn send(&mut self, value: ValueId, to: Host, exchange: Exchange) -> ValueId {
        if let Some(&r) = self.sends.get(&(value, to)) {
            return r;
        }
        let node = self.low.node(value);
        let (from, kind, shape) = (node.host, node.kind, node.shape.clone());
        if from == to {
            return value;
        }
        let send = self.emit(from, Kernel::Send { to, exchange }, &[value], kind, &shape);
        let recv = self.emit(to, Kernel::Recv { from, send }, &[], kind, &shape);
        self.sends.insert((value, to), recv);
        recv
    }

    /// A seed known to `hosts` only: sampled by the first at the start and sent to each of
    /// the others once; the seed on each host, in order. When serving, it is sampled at setup,
    /// also with a prediction's client: each run draws from it in its own domain (the run's
    /// session id), so a prediction's masks are fresh, and they are known before the run
    /// starts (the helper deals a first product with the client's mask in round 0, not after
    /// the client's seeds arrive: a round fewer per prediction).
    pub fn group_seed(&mut self, hosts: &[Host]) -> Vec<ValueId> {
        if let Some(s) = self.seeds.get(hosts) {
            return s.clone();
        }
        let Some((&sampler, others)) = hosts.split_first() else {
            return Vec::new();
        };
        let origin = self.origin.take();
        let serving = self.serving.is_some();
        let seed = self.in_phase(serving, |cx| {
            cx.emit(sampler, Kernel::SampleSeed, &[], ValueKind::Seed, &[])
        });
        let mut held = vec![seed];
        for &h in others {
            held.push(self.send(seed, h, Exchange::Seed));
        }
        self.origin = origin;
        self.seeds.insert(hosts.to_vec(), held.clone());
        held
    }

    /// A seed known to `a` and `b` only ([`Lowerer::group_seed`]).
    pub fn pair_seed(&mut self, a: Host, b: Host) -> (ValueId, ValueId) {
        let s = self.group_seed(&[a, b]);
        (s[0], s[1])
    }

    /// The same pseudo-random tensor on each of `hosts`, from their group seed: one draw per
    /// host, in order.
    pub fn group_random(&mut self, hosts: &[Host], draw: Draw, shape: &[usize]) -> Vec<ValueId> {
        let seeds = self.group_seed(hosts);
        let stream = self.stream();
        let kind = match draw {
            Draw::Ring => ValueKind::Ring,
            Draw::OddRing => ValueKind::OddRing,
            Draw::Field { .. } | Draw::Bits => ValueKind::Small,
        };
        let kernel = Kernel::Expand {
            stream,
            draw,
            shape: shape.to_vec(),
        };
        hosts
            .iter()
            .zip(seeds)
            .map(|(&host, seed)| self.emit(host, kernel.clone(), &[seed], kind, shape))
            .collect()
    }

    /// A fresh stream number: the draws of one seed never repeat.
    pub fn stream(&mut self) -> u64 {
        self.next_stream += 1;
        self.next_stream
    }

    /// The same pseudo-random tensor on `a` and `b`, from their pair seed.
    pub fn common_random(
        &mut self,
        a: Host,
        b: Host,
        draw: Draw,
        shape: &[usize],
    ) -> (ValueId, ValueId) {
        let r = self.group_random(&[a, b], draw, shape);
        (r[0], r[1])
    }

    /// A public float value as a ring constant (fixed point) on `host`.
    pub fn public_ring(
        &mut self,
        host: Host,
        value: &ArrayD<f32>,
    ) -> Result<ValueId, CompileError> {
        let fp = FixedPoint::new(self.frac_bits()).map_err(|e| self.error(e.to_string()))?;
        let encoded = fp.encode(value).map_err(|e| self.error(e.to_string()))?;
        let shape = encoded.shape().to_vec();
        let values = encoded.iter().copied().collect();
        Ok(self.emit(
            host,
            Kernel::RingConst { values },
            &[],
            ValueKind::Ring,
            &shape,
        ))
    }

    /// A ring constant of raw words on `host`.
    pub fn ring_words(&mut self, host: Host, shape: &[usize], values: Vec<u64>) -> ValueId {
        self.emit(
            host,
            Kernel::RingConst { values },
            &[],
            ValueKind::Ring,
            shape,
        )
    }

    /// A public float value as a float constant on `host`.
    pub fn public_float(&mut self, host: Host, value: &ArrayD<f32>) -> ValueId {
        let shape = value.shape().to_vec();
        let values = value.iter().copied().collect();
        self.emit(
            host,
            Kernel::FloatConst { values },
            &[],
            ValueKind::Float,
            &shape,
        )
    }

    /// Secret-shares a float value of its host: the host encodes it, server 0 receives a seed
    /// (its share is the seed's expansion) and server 1 the value minus that expansion. Once
    /// per value.
    pub fn share(&mut self, value: ValueId) -> Shared {
        if let Some(&s) = self.shared.get(&value) {
            return s;
        }
        let encoded = self.encoded(value);
        let s = self.share_ring(encoded);
        self.shared.insert(value, s);
        s
    }

    /// The encoding of a float value of its host (fixed point).
    pub fn encoded(&mut self, value: ValueId) -> ValueId {
        let owner = self.host(value);
        let shape = self.shape(value).to_vec();
        let fb = self.frac_bits();
        self.emit(
            owner,
            Kernel::Encode { frac_bits: fb },
            &[value],
            ValueKind::Ring,
            &shape,
        )
    }

    /// Secret-shares a ring value of its host, once per value (at setup if the value is a
    /// setup value).
    pub fn share_ring(&mut self, encoded: ValueId) -> Shared {
        if let Some(&s) = self.shared.get(&encoded) {
            return s;
        }
        let setup = self.all_setup(&[encoded]);
        let s = self.setup_if(setup, |cx| cx.share_ring_now(encoded));
        self.shared.insert(encoded, s);
        s
    }

    fn share_ring_now(&mut self, encoded: ValueId) -> Shared {
        let owner = self.host(encoded);
        let shape = self.shape(encoded).to_vec();
        match owner {
            S0 | S1 => {
                // A server shares with the other through their common randomness.
                let other = 1 - owner;
                let (mine, theirs) = self.common_random(owner, other, Draw::Ring, &shape);
                let kept = self.emit_like(Kernel::Sub, &[encoded, mine]);
                let mut s = [kept, kept];
                s[other] = theirs;
                Shared { s }
            }
            _ => {
                let (r_owner, r_s0) = self.common_random(owner, S0, Draw::Ring, &shape);
                let masked = self.emit_like(Kernel::Sub, &[encoded, r_owner]);
                let s1 = self.send(masked, S1, Exchange::Share);
                Shared { s: [r_s0, s1] }
            }
        }
    }

    /// Reveals a shared value to `to` as a float: both servers send their shares.
    pub fn reveal(&mut self, x: &Shared, to: Host) -> ValueId {
        let a = self.send(x.s[0], to, Exchange::Reveal);
        let b = self.send(x.s[1], to, Exchange::Reveal);
        let sum = self.emit_like(Kernel::Add, &[a, b]);
        let fb = self.frac_bits();
        let shape = self.shape(sum).to_vec();
        self.emit(
            to,
            Kernel::Decode { frac_bits: fb },
            &[sum],
            ValueKind::Float,
            &shape,
        )
    }

    /// Opens a shared value to both servers (it must be masked): each sends its share to the
    /// other and adds. Returns the opened value on server 0 and on server 1.
    pub fn open(&mut self, x: &Shared) -> [ValueId; 2] {
        let at1 = self.send(x.s[0], S1, Exchange::MaskedOpening);
        let at0 = self.send(x.s[1], S0, Exchange::MaskedOpening);
        let o0 = self.emit_like(Kernel::Add, &[x.s[0], at0]);
        let o1 = self.emit_like(Kernel::Add, &[at1, x.s[1]]);
        [o0, o1]
    }

    /// Applies the same local kernel to both shares (a linear op). A shape kernel (reshape,
    /// transpose) is remembered, so that the result is masked by reshaping the mask of `x`.
    pub fn local(&mut self, kernel: Kernel, x: &Shared, shape: &[usize]) -> Shared {
        let a = self.emit(S0, kernel.clone(), &[x.s[0]], ValueKind::Ring, shape);
        let b = self.emit(S1, kernel.clone(), &[x.s[1]], ValueKind::Ring, shape);
        let y = Shared { s: [a, b] };
        if matches!(
            kernel,
            Kernel::Reshape { .. } | Kernel::Transpose { .. } | Kernel::BroadcastTo { .. }
        ) {
            self.reshaped.insert(y.s, (kernel, *x));
        }
        y
    }

    /// Applies a binary kernel share-wise: `kernel(x_i, y_i)` (add, sub).
    pub fn local2(&mut self, kernel: Kernel, x: &Shared, y: &Shared, shape: &[usize]) -> Shared {
        let a = self.emit(
            S0,
            kernel.clone(),
            &[x.s[0], y.s[0]],
            ValueKind::Ring,
            shape,
        );
        let b = self.emit(S1, kernel, &[x.s[1], y.s[1]], ValueKind::Ring, shape);
        Shared { s: [a, b] }
    }

    /// Adds a public ring value (on each server) to a shared value: server 0 adds it.
    pub fn add_public(&mut self, x: &Shared, on_s0: ValueId, shape: &[usize]) -> Shared {
        let a = self.emit(S0, Kernel::Add, &[x.s[0], on_s0], ValueKind::Ring, shape);
        Shared { s: [a, x.s[1]] }
    }
}

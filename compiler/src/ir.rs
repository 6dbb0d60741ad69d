//! The compiled (low-level) graph: every node is a local kernel placed on exactly one party,
//! or one half of a share exchange (`Send` on the sender, `Recv` on the receiver).
//!
//! Ids are stable: passes mark nodes dead instead of renumbering, so a `Recv` names its
//! `Send` by id in every party's program.

use serde::{Deserialize, Serialize};
use shareflow_graphs::op::Window;
use shareflow_graphs::{Op, Padding};
use shareflow_ops::ValueKind;
use std::fmt;

/// A value of the compiled graph (the output of one node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ValueId(pub u32);

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// Where a party's session store keeps a value across the runs of a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKey {
    /// A value of a serving setup, by its id in the compiled graph.
    Value(ValueId),
    /// This party's share of a variable, by the variable's name: the same key in every program
    /// of a session (init, training step, prediction, reveal).
    Variable(String),
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreKey::Value(v) => write!(f, "{v}"),
            StoreKey::Variable(name) => write!(f, "variable {name:?}"),
        }
    }
}

/// A party of the compiled graph: an index into [`crate::CompiledGraph::parties`].
pub type Host = usize;

/// What randomness an `Expand` draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Draw {
    /// Uniform in Z_2^64.
    Ring,
    /// Uniform in Z_{2^64-1}.
    OddRing,
    /// Uniform in Z_p (a `Small` value).
    Field {
        /// The prime modulus.
        p: u8,
    },
    /// Uniform bits (a `Small` value).
    Bits,
}

/// Why a value crosses parties: what the receiver learns. The security test checks that a
/// server only ever receives seeds, shares and masked openings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exchange {
    /// A PRG seed.
    Seed,
    /// One additive share of a value (the other share is pseudo-random to the receiver).
    Share,
    /// A share of a value opened by both servers: the sum is masked by dealer randomness.
    MaskedOpening,
    /// A share or value revealed to the party the graph names as the output's receiver.
    Reveal,
}

/// A local kernel, or one half of an exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kernel", rename_all = "snake_case")]
pub enum Kernel {
    /// A float input this party provides at run time.
    Input {
        /// The input's name, as the party gives it.
        name: String,
    },
    /// The party's own input `name` (the operand, passed through) checked against what the
    /// compiled comparisons assume of it ([`crate::bounds`]): the run is refused otherwise.
    CheckInput {
        /// The input's name, as the party gives it.
        name: String,
        /// What it must satisfy.
        check: crate::bounds::InputCheck,
    },
    /// Keeps a float value as this party's output `name`.
    Output {
        /// The output's name, as the party receives it.
        name: String,
    },
    /// A float constant (row-major).
    FloatConst {
        /// The values.
        values: Vec<f32>,
    },
    /// A ring constant (row-major words).
    RingConst {
        /// The words.
        values: Vec<u64>,
    },
    /// A logical op computed in the clear on float values (a party's own private data).
    Plain {
        /// The op, on the node's float inputs.
        op: Op,
    },
    /// Float to fixed point in Z_2^64 (an error, not a wrap, when a value is out of range).
    Encode {
        /// Fractional bits of the fixed-point encoding.
        frac_bits: u32,
    },
    /// Fixed point in Z_2^64 to float.
    Decode {
        /// Fractional bits of the encoding.
        frac_bits: u32,
    },
    /// Z_2^64 arithmetic, the second operand equal in shape or a trailing part (bias).
    Add,
    /// Z_2^64 subtraction, broadcasting as `Add`.
    Sub,
    /// Z_2^64 negation.
    Neg,
    /// Z_2^64 elementwise product, broadcasting as `Add`.
    Mul,
    /// `floor((x - offset) s / 2^bits)` modulo 2^64 of a ring tensor `x` (each word read as an
    /// unsigned integer) and a ring scalar `s` (read as signed), exact in 128 bits: an opened
    /// value, or its mask, times a public fixed-point scalar, truncated.
    MulWideShr {
        /// Subtracted from `x` before the product.
        offset: u64,
        /// Bits shifted out of the 128-bit product.
        bits: u32,
    },
    /// Z_2^64 matrix product of two 2-D tensors.
    MatMul,
    /// NHWC by HWIO.
    Conv2d {
        /// Stride along height and width.
        stride: [usize; 2],
        /// Same or valid padding.
        padding: Padding,
    },
    /// The gradient of `Conv2d` with respect to its input of shape `input_shape` (NHWC): inputs
    /// `dy` (NHWC) and the filter (HWIO). Bilinear, like `Conv2d`.
    Conv2dBackpropInput {
        /// Stride along height and width.
        stride: [usize; 2],
        /// Same or valid padding.
        padding: Padding,
        /// The shape of the forward input (NHWC).
        input_shape: [usize; 4],
    },
    /// The gradient of `Conv2d` with respect to its filter of shape `filter_shape` (HWIO):
    /// inputs `x` (NHWC) and `dy` (NHWC). Bilinear, like `Conv2d`.
    Conv2dBackpropFilter {
        /// Stride along height and width.
        stride: [usize; 2],
        /// Same or valid padding.
        padding: Padding,
        /// The shape of the filter (HWIO).
        filter_shape: [usize; 4],
    },
    /// Sum over each window (average pooling before the division).
    SumPool2d {
        /// The pooling window (size, stride, padding).
        window: Window,
    },
    /// Arithmetic shift right (as i64).
    ShrArith {
        /// Bits shifted.
        bits: u32,
    },
    /// Logical shift right.
    ShrLogical {
        /// Bits shifted.
        bits: u32,
    },
    /// Shift left.
    Shl {
        /// Bits shifted.
        bits: u32,
    },
    /// Bitwise xor with a constant word.
    XorConst {
        /// The constant.
        value: u64,
    },
    /// The same words in another shape (same number of elements).
    Reshape {
        /// The new shape.
        shape: Vec<usize>,
    },
    /// Repeats the input to `shape` (NumPy's `broadcast_to`).
    BroadcastTo {
        /// The target shape.
        shape: Vec<usize>,
    },
    /// Permutes the axes.
    Transpose {
        /// Input axis of each output axis.
        perm: Vec<usize>,
    },
    /// Sum along one axis, which is removed.
    ReduceSum {
        /// The axis summed.
        axis: usize,
    },
    /// A fresh 32-byte seed from the OS.
    SampleSeed,
    /// Expands a seed (the only input) into a tensor; `stream` separates the draws of one seed.
    Expand {
        /// Separates the draws of one seed.
        stream: u64,
        /// The distribution drawn from.
        draw: Draw,
        /// The shape of the tensor drawn.
        shape: Vec<usize>,
    },
    /// Sends the input to `to`.
    Send {
        /// The receiving party.
        to: Host,
        /// What the receiver learns.
        exchange: Exchange,
    },
    /// Receives the value that `send` sends.
    Recv {
        /// The sending party.
        from: Host,
        /// The id of the matching `Send` node (in the sender's program).
        send: ValueId,
    },
    /// Keeps the input in this party's session store under `key`, for the later runs of the
    /// session (a serving setup's persistent values, a training step's new variable shares).
    /// Written when the run ends, so a run that fails changes nothing and every `Load` of a run
    /// reads the value from before it.
    Store {
        /// The key the value is kept under.
        key: StoreKey,
    },
    /// The value an earlier run of the session stored under `key`.
    Load {
        /// The key the value was kept under.
        key: StoreKey,
    },
    /// A public value given to the party at each run under `name` (a graph's
    /// [`Op::Parameter`], such as a learning rate), as a float.
    Parameter {
        /// The parameter's name.
        name: String,
    },
    /// The public first value of a variable, drawn from its seeded initialiser (a float).
    Initializer {
        /// The variable's initialiser (distribution and seed).
        init: shareflow_graphs::Init,
    },
    // SecureNN (compiler/src/lower/securenn): the odd ring Z_{2^64-1}, bits and Z_p, and the
    // layout of comparison trees.
    /// Z_{2^64-1} addition and subtraction (odd-ring values, broadcasting as `Add`).
    OddAdd,
    /// Z_{2^64-1} subtraction.
    OddSub,
    /// A Z_2^64 word read as an element of Z_{2^64-1} (reduced mod 2^64 - 1).
    RingToOdd,
    /// `wrap(a, b)` of two ring words: the bit (`Small`) `a + b >= 2^64`.
    Wrap,
    /// The lowest `bits` bits (up to 64) of each ring or odd-ring word as a trailing axis,
    /// least significant first (`Small`, valid elements of any Z_p).
    BitDecompose {
        /// Bits extracted (up to 64).
        bits: u32,
    },
    /// Bit `bit` of each ring word (`Small`).
    BitAt {
        /// Index of the bit (0 is the least significant).
        bit: u32,
    },
    /// The low `bytes` bytes of each ring word, least significant first (`Small`, a trailing
    /// axis of `bytes`): a word mod `2^(8 bytes)` in `bytes` bytes on the wire.
    LowBytes {
        /// Bytes kept per word, 1 to 8.
        bytes: u8,
    },
    /// The ring words whose low bytes are the trailing axis of a `Small` tensor
    /// ([`Kernel::LowBytes`]'s inverse mod `2^(8 bytes)`; the high bytes are zero).
    FromLowBytes,
    /// Small values below `2^bits` (elements of a small field) packed `bits` bits each, least
    /// significant first, into a flat `Small` tensor of bytes: fewer bytes on the wire.
    PackSmall {
        /// Bits per value, 1 to 8.
        bits: u8,
    },
    /// [`Kernel::PackSmall`]'s inverse, to the instruction's shape.
    UnpackSmall {
        /// Bits per value, 1 to 8.
        bits: u8,
    },
    /// Bitwise and with a constant word (a ring word mod `2^k` with `value = 2^k - 1`).
    AndConst {
        /// The constant word.
        value: u64,
    },
    /// The XOR of two `Small` bits (same shape), negated if `not`.
    XorBits {
        /// Negate the XOR.
        not: bool,
    },
    /// The least significant bit of each ring or odd-ring word (`Small`).
    Lsb,
    /// 1 where a ring or odd-ring word is 0 (`Small`).
    IsZero,
    /// A bit (`Small`) as a word 0 or 1 of `kind` (ring or odd ring).
    BitTo {
        /// The kind of the output word.
        kind: ValueKind,
    },
    /// A share (ring or odd ring) of a bit XOR a public bit (`Small`, same shape):
    /// `s + [add] b - 2 b s`; `add` on exactly one server.
    XorPublicBit {
        /// Whether this server adds the public bit (exactly one of the two does).
        add: bool,
    },
    /// Z_p subtraction on `Small` values (broadcasting as `Sub`).
    FieldSub {
        /// The field's modulus.
        p: u8,
    },
    /// Shares of `(b XOR bit) * v` from a ring share of `bit * v`, a public bit `b` (`Small`)
    /// and a ring share of `v` (inputs in that order): the first where `b = 0`, `v` minus
    /// it where `b = 1`.
    XorPublicBitTimes,
    /// PrivateCompare steps 1-14 for server `party`: inputs (its Z_p shares of the low `n`
    /// bits of x `[.., n]`, public word r `[..]`, public bit beta `[..]`, the servers' pair
    /// seed for their common randomness s_i, z_i, the rotations and u_i, drawn in stream
    /// `stream` when the kernel runs), output the masked, rotated shares `d` of `[.., n]` it
    /// sends the helper, packed in the field's bits as [`Kernel::PackSmall`] packs them (a
    /// flat `Small` tensor of bytes).
    PrivateCompare {
        /// The server (0 or 1) running the kernel.
        party: u8,
        /// The field's modulus.
        p: u8,
        /// The stream of the pair seed the common randomness is drawn from.
        stream: u64,
    },
    /// PrivateCompare's steps 15-16 in one pass: 1 for every word where some one of its `n`
    /// lanes of the sum over Z_p of the two servers' shares is 0. The inputs are the shares
    /// as [`Kernel::PrivateCompare`] sends them, packed in the field's bits; the output has
    /// the words' shape.
    AnyZeroSum {
        /// The field's modulus.
        p: u8,
        /// Lanes (bits compared) per word, 1 to 64.
        n: u8,
    },
    /// The lowest `n` bits of ring or odd-ring words (the first input) minus a `Small` tensor
    /// `[.., n]` over Z_p (the second): the helper's share of the bits for server 1 when
    /// server 0's is the second input.
    BitsMinus {
        /// The field's modulus.
        p: u8,
    },
    /// Bitwise XOR of two ring tensors (broadcasting as `Add`).
    Xor,
    /// The low `n` bit planes of the input's words, flattened, in blocks of 64 values: a ring
    /// tensor `[blocks, n]` whose word `[b, i]` holds bit `i` of the block's values, value `v`
    /// in bit `v` ([`shareflow_ops::ring::bit_planes`]).
    BitPlanes {
        /// Planes kept, 1 to 64.
        n: u8,
    },
    /// The helper's planes of `r` and the products of their pairs
    /// ([`shareflow_ops::ring::carry_pairs`]): `[blocks, n]` to `[blocks, n + n / 2]`.
    CarryPairs,
    /// The carry circuit's first level for server `party`
    /// ([`shareflow_ops::ring::carry_leaves`]): inputs (the public planes of `c`, `[blocks,
    /// n]`, the server's share of [`Kernel::CarryPairs`], `[blocks, n + n / 2]`), output its
    /// shares of the pairs' `G` and `P`, `[blocks, 2 ceil(n / 2)]`.
    CarryLeaves {
        /// The server (0 or 1).
        party: u8,
    },
    /// A server's openings at a level of `groups` groups
    /// ([`shareflow_ops::ring::carry_open`]): inputs (its shares `[blocks, 2 groups]`, its
    /// masks `[blocks, opened]`), output `[blocks, opened]`.
    CarryOpen {
        /// Groups at the level, at least 2.
        groups: u8,
    },
    /// The helper's products of the masks for server 1 at a level of `groups` groups
    /// ([`shareflow_ops::ring::carry_deal`]): inputs (server 0's masks, server 1's, server 0's
    /// products), output server 1's products.
    CarryDeal {
        /// Groups at the level, at least 2.
        groups: u8,
    },
    /// Server `party`'s shares of the next level ([`shareflow_ops::ring::carry_combine`]):
    /// inputs (its shares, masks, products, its openings, the other server's openings).
    CarryCombine {
        /// The server (0 or 1).
        party: u8,
        /// Groups at the level, at least 2.
        groups: u8,
    },
    /// Server `party`'s message to the helper from the circuit's last group
    /// ([`shareflow_ops::ring::carry_out`]): inputs (its shares `[blocks, 2]`, the servers'
    /// common bits `beta` (`Small`, one per value), their common words `[blocks]`), output
    /// `[blocks]`.
    CarryOut {
        /// The server (0 or 1).
        party: u8,
    },
    /// The bits (`Small`, of the node's shape) of the XOR of two planes `[blocks]`
    /// ([`shareflow_ops::ring::plane_bits`]).
    PlaneBits,
    /// The windows of an NHWC ring tensor as `[N, OH, OW, C, KH*KW]`; cells outside the
    /// input hold the word `pad`.
    Windows {
        /// The pooling window.
        window: Window,
        /// The word of cells outside the input.
        pad: u64,
    },
    /// The adjoint of `Windows`: each cell of `[N, OH, OW, C, KH*KW]` added back into the
    /// input cell it was read from, giving `input_shape` (NHWC); padding cells dropped.
    WindowsAdd {
        /// The pooling window.
        window: Window,
        /// The shape of the input (NHWC).
        input_shape: [usize; 4],
    },
    /// `len` elements of `axis` from `start`, every `step`-th (ring).
    StridedSlice {
        /// The axis sliced.
        axis: usize,
        /// The first index taken.
        start: usize,
        /// Distance between two indices taken.
        step: usize,
        /// Number of indices taken.
        len: usize,
    },
    /// Two ring tensors joined along `axis`.
    Concat {
        /// The axis joined along.
        axis: usize,
    },
    /// A ring tensor of the node's shape holding `scale * i` at position `i` of `axis`.
    Iota {
        /// The axis along which the value grows.
        axis: usize,
        /// The step between two positions.
        scale: u64,
    },
    /// For each ring word g, the one-hot ring vector of length `n` with its 1 at `g mod n`.
    OneHot {
        /// Length of the one-hot vectors.
        n: usize,
    },
    /// `out[.., i] = x[.., (i + k) mod n]` for `i < keep` (x `[.., n]`, k `[..]`, ring).
    RotateLast {
        /// Positions kept in the last axis.
        keep: usize,
    },
}

impl Kernel {
    /// Short name for metrics and drawings.
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::Input { .. } => "input",
            Kernel::CheckInput { .. } => "check_input",
            Kernel::Output { .. } => "output",
            Kernel::FloatConst { .. } => "float_const",
            Kernel::RingConst { .. } => "ring_const",
            Kernel::Plain { op } => op.name(),
            Kernel::Encode { .. } => "encode",
            Kernel::Decode { .. } => "decode",
            Kernel::Add => "add",
            Kernel::Sub => "sub",
            Kernel::Neg => "neg",
            Kernel::Mul => "mul",
            Kernel::MulWideShr { .. } => "mul_wide_shr",
            Kernel::MatMul => "matmul",
            Kernel::Conv2d { .. } => "conv2d",
            Kernel::Conv2dBackpropInput { .. } => "conv2d_backprop_input",
            Kernel::Conv2dBackpropFilter { .. } => "conv2d_backprop_filter",
            Kernel::SumPool2d { .. } => "sumpool2d",
            Kernel::ShrArith { .. } => "shr_arith",
            Kernel::ShrLogical { .. } => "shr_logical",
            Kernel::Shl { .. } => "shl",
            Kernel::XorConst { .. } => "xor_const",
            Kernel::Reshape { .. } => "reshape",
            Kernel::BroadcastTo { .. } => "broadcast_to",
            Kernel::Transpose { .. } => "transpose",
            Kernel::ReduceSum { .. } => "reduce_sum",
            Kernel::SampleSeed => "sample_seed",
            Kernel::Expand { .. } => "expand",
            Kernel::Send { .. } => "send",
            Kernel::Recv { .. } => "recv",
            Kernel::Store { .. } => "store",
            Kernel::Load { .. } => "load",
            Kernel::Parameter { .. } => "parameter",
            Kernel::Initializer { .. } => "initializer",
            Kernel::OddAdd => "odd_add",
            Kernel::OddSub => "odd_sub",
            Kernel::RingToOdd => "ring_to_odd",
            Kernel::Wrap => "wrap",
            Kernel::BitDecompose { .. } => "bit_decompose",
            Kernel::BitAt { .. } => "bit_at",
            Kernel::LowBytes { .. } => "low_bytes",
            Kernel::FromLowBytes => "from_low_bytes",
            Kernel::PackSmall { .. } => "pack_small",
            Kernel::UnpackSmall { .. } => "unpack_small",
            Kernel::AndConst { .. } => "and_const",
            Kernel::XorBits { .. } => "xor_bits",
            Kernel::Lsb => "lsb",
            Kernel::IsZero => "is_zero",
            Kernel::BitTo { .. } => "bit_to",
            Kernel::XorPublicBit { .. } => "xor_public_bit",
            Kernel::FieldSub { .. } => "field_sub",
            Kernel::XorPublicBitTimes => "xor_public_bit_times",
            Kernel::PrivateCompare { .. } => "private_compare",
            Kernel::AnyZeroSum { .. } => "any_zero_sum",
            Kernel::BitsMinus { .. } => "bits_minus",
            Kernel::Xor => "xor",
            Kernel::BitPlanes { .. } => "bit_planes",
            Kernel::CarryPairs => "carry_pairs",
            Kernel::CarryLeaves { .. } => "carry_leaves",
            Kernel::CarryOpen { .. } => "carry_open",
            Kernel::CarryDeal { .. } => "carry_deal",
            Kernel::CarryCombine { .. } => "carry_combine",
            Kernel::CarryOut { .. } => "carry_out",
            Kernel::PlaneBits => "plane_bits",
            Kernel::Windows { .. } => "windows",
            Kernel::WindowsAdd { .. } => "windows_add",
            Kernel::StridedSlice { .. } => "strided_slice",
            Kernel::Concat { .. } => "concat",
            Kernel::Iota { .. } => "iota",
            Kernel::OneHot { .. } => "one_hot",
            Kernel::RotateLast { .. } => "rotate_last",
        }
    }

    /// Whether the node is one half of an exchange (a send or a receive), not local work.
    pub fn is_exchange(&self) -> bool {
        matches!(self, Kernel::Send { .. } | Kernel::Recv { .. })
    }

    /// Whether the node has effects or results outside its value (kept by dead-code removal).
    pub fn is_root(&self) -> bool {
        matches!(self, Kernel::Output { .. } | Kernel::Store { .. })
    }

    /// Whether the value is a function of the inputs and the kernel alone, the same on every
    /// run: two such nodes with equal kernels and inputs on one host are one value. Not fresh
    /// seeds, not exchanges, not effects.
    pub fn is_pure(&self) -> bool {
        !matches!(
            self,
            Kernel::SampleSeed
                | Kernel::Output { .. }
                | Kernel::Send { .. }
                | Kernel::Recv { .. }
                | Kernel::Store { .. }
        )
    }
}

/// One node of the compiled graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LowNode {
    /// The party computing (or, for an exchange half, holding) the value.
    pub host: Host,
    /// What the node computes.
    pub kernel: Kernel,
    /// The node's operands, in order.
    pub inputs: Vec<ValueId>,
    /// The kind and shape of the value (for a `Send`: of the value sent).
    pub kind: ValueKind,
    /// The shape of the value (for a `Send`: of the value sent).
    pub shape: Vec<usize>,
    /// The logical node (layer) this node was lowered from, for per-layer costs.
    pub origin: Option<String>,
}

/// The compiled graph of every party before partitioning.
#[derive(Debug, Clone, Default)]
pub struct LowGraph {
    /// Every node, live or dead, by id.
    pub nodes: Vec<LowNode>,
    /// Removed by a pass (ids stay stable).
    pub dead: Vec<bool>,
}

impl LowGraph {
    /// Adds a node.
    pub fn push(&mut self, node: LowNode) -> ValueId {
        self.nodes.push(node);
        self.dead.push(false);
        ValueId((self.nodes.len() - 1) as u32)
    }

    /// The node of `id` (panics if `id` is not in the graph).
    pub fn node(&self, id: ValueId) -> &LowNode {
        &self.nodes[id.0 as usize]
    }

    /// Live node ids in creation order (a topological order: inputs are created first).
    pub fn live(&self) -> impl Iterator<Item = ValueId> + '_ {
        (0..self.nodes.len())
            .filter(|&i| !self.dead[i])
            .map(|i| ValueId(i as u32))
    }
}

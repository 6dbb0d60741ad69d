//! SecureNN (Wagh, Gupta, Chandran, "SecureNN: 3-Party Secure Computation for Neural Network
//! Training", PoPETs 2019): exact ReLU, max pooling and comparisons with three parties.
//!
//! The servers S0, S1 are the paper's P0, P1 (the `j` of its formulas is the server's index);
//! the helper is P2, dealer of every product and comparison helper. One function per
//! algorithm, named as in the paper, with its step numbers:
//!
//! | algorithm | function | file |
//! |---|---|---|
//! | 1 MatMul | [`Lowerer::beaver`] | `dealer.rs` |
//! | 2 SelectShare | [`relu::select_share`] | `relu.rs` |
//! | 3 PrivateCompare | [`private_compare::private_compare`] | `private_compare.rs` |
//! | PrivateCompare's result by a carry circuit (large tensors, not in the paper) | [`carry::carry_compare`] | `carry.rs` |
//! | 4 ShareConvert | [`share_convert::share_convert`] | `share_convert.rs` |
//! | 5 ComputeMSB | [`compute_msb::compute_msb`] | `compute_msb.rs` |
//! | 6 DReLU | [`relu::drelu`] | `relu.rs` |
//! | 7 ReLU | [`relu::relu`] | `relu.rs` |
//! | 9 MaxPool | [`maxpool::maxpool`] (a tree, not the paper's chain) | `maxpool.rs` |
//! | 10 DMaxPool | [`maxpool::dmaxpool`], [`maxpool::dmaxpool2d`] | `maxpool.rs` |
//! | argmax | [`maxpool::argmax`] (the MaxPool tree with indices) | `maxpool.rs` |
//! | comparisons with 0 | [`relu::less_zero`] and others | `relu.rs` |
//! | ReLU and max-pool gradients | [`grads::relu_grad`], [`grads::maxpool_grad`] (the forward's comparisons reused) | `grads.rs` |
//! | softmax on shares (not in the paper) | [`softmax::softmax`]: row max by the MaxPool tree, clamp by ReLU, exp by a limit, e/sum by Goldschmidt's division | `softmax.rs` |
//!
//! By default ([`crate::options::Comparison::Opened`]) DReLU, ReLU and the comparisons of max
//! pooling take the sign from one masked opening and one PrivateCompare ([`opened::sign`],
//! [`opened::sign_times`], `opened.rs`):
//! 3 rounds instead of 8 (9 for ReLU), one comparison of 63 bits instead of two of 64, exact
//! on the whole ring. Tensors of at least [`crate::options::CompileOptions::carry_min_words`]
//! words take the comparison's result from a carry circuit instead of PrivateCompare
//! ([`carry::carry_compare`]: a third of the bytes, five rounds more at 47 or 63 bits). The
//! paper's DReLU (ShareConvert, ComputeMSB) is `Comparison::Paper`.
//!
//! Every function works on whole tensors: one kernel call per tensor and party, never per
//! element. Communication of the helper's shares is halved with seeds as everywhere in the
//! compiler: server 0's share of anything the helper deals is the expansion of their pair
//! seed, and only server 1 receives a tensor.
//!
//! **Ranges.** Signs from an opening are exact for every word of Z_2^64. The paper's DReLU
//! is exact for `a` in `[-2^62, 2^62)` (reals in `[-2^46, 2^46)` at 16 fractional bits): it
//! takes the MSB of `2a`, which is the sign of `a` in that range, because ShareConvert needs
//! an input other than `2^64 - 1` and `2a` is even. Comparisons of two values (max pooling,
//! argmax) take the sign of a difference, so they are exact for inputs of half that range
//! (opened: `|x| < 2^62` ring units); SAME padding cells hold [`maxpool::pad`], below it,
//! which never wins (or `-2^(k-1)` for values of a known width `k`: a dealer truncation's
//! output is exact over `64 - f` bits, [`crate::lower::Lowerer::sign_width`]). Signs in Z_2^k
//! for `k < 64` are wrong, without an error, for hidden values beyond `2^(k-1)`, and no cheap
//! check on shares tells; so a narrower width is taken only where a bound proves it: computed
//! by the model owner from its weights and a declared range of the other inputs
//! ([`crate::bounds`]), recorded per comparison node in the program with its assumptions,
//! which the inputs' owners check before sharing (opt-in, prediction only:
//! [`crate::compile_serving_narrowed`]).
//!
//! **Sigmoid** is Pond's polynomial (least squares over `[-B, B]`, `CompileOptions::sigmoid`),
//! so both protocols give the same values; a piecewise-linear sigmoid from DReLU would be
//! exact only for its own approximation and costs two comparisons per element.
//!
//! **ReLU and max pooling commute** (`relu(maxpool(x)) = maxpool(relu(x))`, ReLU being
//! monotone), and ReLU after the pooling needs `k^2` times fewer comparisons for `k x k`
//! windows. Networks B and C already pool first; a graph that applies ReLU first is lowered
//! in the cheap order by the lowering driver (`lower::relu_before_maxpool`).

pub mod carry;
pub mod compute_msb;
pub mod grads;
pub mod maxpool;
pub mod opened;
pub mod private_compare;
pub mod relu;
pub mod share_convert;
mod shares;
pub mod softmax;

use shareflow_graphs::{Op, Shape};

use super::linear::lower_common;
use super::{to_shared, unsupported, Lowerer, Operand, Protocol, Shared, S0, S1};
use crate::ir::Host;
use crate::CompileError;

pub use shares::{BitShares, OddShared, Public};

/// The prime of the bit shares of PrivateCompare: `p > l + 1 = 65` so that a sum of up to 64
/// bits plus one is never 0 mod p; 67 is the smallest such prime.
pub const PRIME: u8 = 67;

/// The prime of the bit shares of a PrivateCompare over `n` bits: the smallest prime above
/// `n + 1` (a sum of up to `n` bits plus one is then never 0 mod p), and [`PRIME`] from 63
/// bits on (the exact comparisons). Narrowed comparisons ([`crate::bounds`]) compare fewer
/// bits over a smaller field. Every field's elements are packed on the wire in
/// [`field_bits`]`(p)` bits each (7 for [`PRIME`]).
pub fn prime_for(n: usize) -> u8 {
    if n + 1 >= WORD_BITS - 1 {
        return PRIME;
    }
    let is_prime = |q: usize| {
        q >= 2
            && (2..q)
                .take_while(|d| d * d <= q)
                .all(|d| !q.is_multiple_of(d))
    };
    // n + 2 <= 63 here, and a prime lies below 67.
    (n + 2..usize::from(PRIME))
        .find(|&q| is_prime(q))
        .map_or(PRIME, |q| q as u8)
}

/// Bits of an element of Z_p: those of `p - 1` (the one definition, shared with the kernels).
pub use shareflow_ops::ring::field_bits;

/// Bits of a ring word (the paper's `l`).
pub const WORD_BITS: usize = 64;

/// The servers in the paper's order: P_j is host `SERVERS[j]`.
pub const SERVERS: [Host; 2] = [S0, S1];

/// The SecureNN protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecureNN;

impl Protocol for SecureNN {
    fn name(&self) -> &'static str {
        "securenn"
    }

    fn lower_op(
        &self,
        cx: &mut Lowerer,
        op: &Op,
        shape: &Shape,
        inputs: &[Operand],
    ) -> Result<Shared, CompileError> {
        if let Op::SoftmaxCrossEntropy = op {
            // the loss's value, revealed only when a graph asks for it
            let x = to_shared(cx, &inputs[0])?;
            let y = to_shared(cx, &inputs[1])?;
            return softmax::softmax_cross_entropy(cx, &x, &y);
        }
        if let Some(done) = lower_common(cx, op, shape, inputs) {
            return done;
        }
        let dims = shape.dims();
        match op {
            Op::Relu => {
                let x = to_shared(cx, &inputs[0])?;
                Ok(relu::relu(cx, &x))
            }
            Op::MaxPool2d { window } => {
                let x = to_shared(cx, &inputs[0])?;
                maxpool::maxpool2d(cx, &x, window, dims)
            }
            Op::Argmax => {
                let x = to_shared(cx, &inputs[0])?;
                maxpool::argmax(cx, &x)
            }
            Op::ReluGrad => {
                let x = to_shared(cx, &inputs[0])?;
                let dy = to_shared(cx, &inputs[1])?;
                Ok(grads::relu_grad(cx, &x, &dy))
            }
            Op::MaxPoolGrad { window } => {
                let x = to_shared(cx, &inputs[0])?;
                let dy = to_shared(cx, &inputs[1])?;
                grads::maxpool_grad(cx, &x, &dy, window)
            }
            Op::Softmax => {
                let x = to_shared(cx, &inputs[0])?;
                softmax::softmax(cx, &x)
            }
            other => Err(unsupported(
                cx,
                other,
                self.name(),
                format!("no SecureNN lowering for {}", other.name()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prime_of_n_bits_exceeds_n_plus_one_and_packs_tightly() {
        assert_eq!(prime_for(63), PRIME);
        assert_eq!(prime_for(64), PRIME);
        assert_eq!(prime_for(61), 67);
        assert_eq!(prime_for(59), 61);
        assert_eq!(prime_for(21), 23);
        assert_eq!(prime_for(1), 3);
        for n in 1..=64 {
            let p = prime_for(n);
            assert!(usize::from(p) > n + 1, "{n}: {p}");
        }
        assert_eq!(field_bits(67), 7);
        assert_eq!(field_bits(61), 6);
        assert_eq!(field_bits(23), 5);
        assert_eq!(field_bits(3), 2);
    }
}

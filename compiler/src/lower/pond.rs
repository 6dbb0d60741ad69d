//! Pond: two servers hold additive shares over Z_2^64, a crypto producer (the helper) deals
//! triples and truncation pairs, and non-linear activations are polynomials.
//!
//! Max pooling, argmax, exact ReLU and a softmax on shares need comparisons, which Pond does not have: they are
//! compile errors that point to SecureNN, never a silent approximation.

use shareflow_graphs::{Op, Shape};

use super::linear::lower_common;
use super::poly::{Fit, Target};
use super::{to_shared, unsupported, Lowerer, Operand, Protocol, Shared};
use crate::CompileError;

/// The Pond protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pond;

impl Protocol for Pond {
    fn name(&self) -> &'static str {
        "pond"
    }

    fn lower_op(
        &self,
        cx: &mut Lowerer,
        op: &Op,
        shape: &Shape,
        inputs: &[Operand],
    ) -> Result<Shared, CompileError> {
        if let Some(done) = lower_common(cx, op, shape, inputs) {
            return done;
        }
        let unsupported = |cx: &Lowerer, hint: &str| unsupported(cx, op, self.name(), hint.into());
        match op {
            Op::Relu => {
                let fit = Fit::new(Target::Relu, &cx.options.relu);
                let x = to_shared(cx, &inputs[0])?;
                cx.polynomial(&x, &fit, shape)
            }
            Op::MaxPool2d { .. } => Err(unsupported(
                cx,
                "max pooling needs exact comparisons; compile with --protocol securenn \
                 (or use avgpool2d)",
            )),
            Op::ReluGrad | Op::MaxPoolGrad { .. } => Err(unsupported(
                cx,
                "the gradients of ReLU and max pooling need exact comparisons; train with \
                 --protocol securenn, or use sigmoid and average pooling under Pond",
            )),
            Op::Argmax => Err(unsupported(
                cx,
                "argmax needs exact comparisons; compile with --protocol securenn, or reveal \
                 the logits to the output's receiver",
            )),
            Op::Softmax => Err(unsupported(
                cx,
                "a softmax on shares needs exact comparisons (the row maximum), which Pond \
                 does not have; train with sigmoid and mean squared error, compile with \
                 --protocol securenn, or make the softmax's only users outputs to one party",
            )),
            other => Err(unsupported(
                cx,
                &format!("no Pond lowering for {}", other.name()),
            )),
        }
    }
}

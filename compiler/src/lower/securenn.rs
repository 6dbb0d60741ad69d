//! SecureNN (Wagh, Gupta, Chandran, PoPETs 2019): exact ReLU and max pooling with three
//! parties. (Lowering of the comparison protocols is in progress.)

use shareflow_graphs::{Op, Shape};

use super::linear::lower_common;
use super::{Lowerer, Operand, Protocol, Shared};
use crate::CompileError;

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
        if let Some(done) = lower_common(cx, op, shape, inputs) {
            return done;
        }
        Err(CompileError::Unsupported {
            node: cx.origin.clone().unwrap_or_default(),
            op: op.name(),
            protocol: "securenn",
            hint: "not lowered yet".into(),
        })
    }
}

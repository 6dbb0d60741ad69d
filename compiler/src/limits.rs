//! Limits on what a loaded compiled graph may ask a party to hold: a graph file is user input,
//! so a shape of a trillion elements or a round number in the billions must be an error at
//! load, not an allocation that aborts the process when the program runs.

use shareflow_ops::ValueKind;

use crate::ir::Kernel;
use crate::program::{Instr, Program};
use crate::CompileError;

/// The largest tensor an instruction may produce, in bytes (4 GiB).
pub const MAX_TENSOR_BYTES: u64 = 1 << 32;
/// The most dimensions a tensor may have (as on the wire).
pub const MAX_NDIM: usize = 32;
/// Rounds of one program are numbered below this (a serving session numbers its runs' rounds
/// in blocks of this size).
pub const MAX_ROUNDS: u32 = 1 << 16;

/// Bytes of a value of `kind` and `shape` (a seed is one element of 32 bytes), or `None`
/// when the size overflows: the one size computation of the load-time checks.
pub fn value_bytes(kind: ValueKind, shape: &[usize]) -> Option<u64> {
    let n = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?))?;
    let width = match kind {
        ValueKind::Ring | ValueKind::OddRing => 8,
        ValueKind::Small => 1,
        ValueKind::Float => 4,
        ValueKind::Seed => 32,
    };
    n.checked_mul(width).filter(|&b| usize::try_from(b).is_ok())
}

/// The kind of what an `Expand` draws.
fn drawn(draw: crate::ir::Draw) -> ValueKind {
    match draw {
        crate::ir::Draw::Ring => ValueKind::Ring,
        crate::ir::Draw::OddRing => ValueKind::OddRing,
        crate::ir::Draw::Field { .. } | crate::ir::Draw::Bits => ValueKind::Small,
    }
}

/// Checks a shape of `kind` against [`MAX_NDIM`] and [`MAX_TENSOR_BYTES`] (with checked
/// products); `what` names it in the error.
pub fn check_shape(kind: ValueKind, shape: &[usize], what: &str) -> Result<(), String> {
    if shape.len() > MAX_NDIM {
        return Err(format!(
            "{what} has {} dimensions (at most {MAX_NDIM})",
            shape.len()
        ));
    }
    let too_big = || {
        format!(
            "{what} {shape:?} of {} values is larger than the limit of {MAX_TENSOR_BYTES} bytes \
             (4 GiB) per tensor",
            kind.name()
        )
    };
    let bytes = value_bytes(kind, shape).ok_or_else(too_big)?;
    if bytes > MAX_TENSOR_BYTES {
        return Err(too_big());
    }
    Ok(())
}

fn check_instr(i: &Instr) -> Result<(), String> {
    if i.round >= MAX_ROUNDS {
        return Err(format!(
            "round {} is beyond the limit of {MAX_ROUNDS} rounds per program",
            i.round
        ));
    }
    check_shape(i.kind, &i.shape, "shape")?;
    match &i.kernel {
        Kernel::Expand { draw, shape, .. } => check_shape(drawn(*draw), shape, "drawn shape"),
        Kernel::Reshape { shape } => check_shape(i.kind, shape, "target shape"),
        _ => Ok(()),
    }
}

/// Checks every instruction of `program`: its round, the shape of its value and the shapes in
/// its kernel. The error names the instruction and the party and says the limit.
pub fn check_program(program: &Program) -> Result<(), CompileError> {
    for i in &program.instrs {
        check_instr(i).map_err(|message| CompileError::Node {
            node: format!("{} ({}) of party {}", i.id, i.kernel.name(), program.party),
            message,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_within_the_limit_pass_and_larger_ones_are_refused() {
        assert!(check_shape(ValueKind::Ring, &[1 << 20, 64], "shape").is_ok());
        assert!(check_shape(ValueKind::Small, &[1 << 32], "shape").is_ok());
        let err = check_shape(ValueKind::Ring, &[1_000_000_000_000], "shape").unwrap_err();
        assert!(err.contains("limit of 4294967296 bytes"), "{err}");
        // the product overflows u64: an error, not a wrap
        let err = check_shape(ValueKind::Float, &[usize::MAX, usize::MAX, 2], "shape").unwrap_err();
        assert!(err.contains("limit"), "{err}");
        // a zero dimension makes an empty tensor, whatever the others
        assert!(check_shape(ValueKind::Ring, &[0, usize::MAX], "shape").is_ok());
        let err = check_shape(ValueKind::Ring, &[1; 33], "shape").unwrap_err();
        assert!(err.contains("33 dimensions"), "{err}");
    }
}

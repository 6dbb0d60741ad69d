//! The executor's in-place kernels: an elementwise kernel overwrites an operand that is not
//! used again, and only such an operand.

mod common;

use common::lowered::run;
use ndarray::{arr1, ArrayD};
use shareflow::compiler::ir::Kernel;
use shareflow::compiler::lower::{Lowerer, S0};
use shareflow::compiler::{CompileOptions, ProtocolKind};
use shareflow::ops::{Value, ValueKind};

fn ring_output(run: &shareflow::runtime::exec::InProcessRun, name: &str) -> ArrayD<u64> {
    match &run.party("server0").unwrap().outputs[name] {
        Value::Ring(a) => a.clone(),
        other => panic!("unexpected output {other:?}"),
    }
}

#[test]
fn operands_at_their_last_use_are_overwritten_and_no_other() {
    let mut cx = Lowerer::new(common::lowered::parties(), CompileOptions::default());
    let x = cx.ring_words(S0, &[3], vec![1, u64::MAX, 1 << 63]);
    let bias = cx.ring_words(S0, &[1], vec![10]);
    // one operand twice: not overwritten while it is read
    let twice = cx.emit_like(Kernel::Add, &[x, x]);
    // `twice` at its last use, `x` still used below
    let back = cx.emit_like(Kernel::Sub, &[twice, x]);
    // a broadcast second operand; `back` overwritten
    let shifted = cx.emit_like(Kernel::Add, &[back, bias]);
    // a sum whose first operand is used again and whose second is not: the second is taken
    let neg = cx.emit_like(Kernel::Neg, &[x]);
    let sum = cx.emit_like(Kernel::Add, &[x, neg]);
    let left = cx.emit_like(Kernel::Shl { bits: 1 }, &[x]);
    // a first operand that the second broadcasts to a larger shape (the node has the first
    // operand's shape, as `emit_like` gives it): computed into a new buffer
    let five = cx.ring_words(S0, &[1], vec![5]);
    let grown = cx.emit_like(Kernel::Add, &[five, x]);
    let outputs = [
        ("shifted", shifted),
        ("sum", sum),
        ("left", left),
        ("x", x),
        ("grown", grown),
    ];
    for (name, v) in outputs {
        cx.emit(
            S0,
            Kernel::Output { name: name.into() },
            &[v],
            ValueKind::Ring,
            &[3],
        );
    }
    let (run, _) = run(cx, ProtocolKind::SecureNN);
    let out = |name| ring_output(&run, name);
    assert_eq!(out("shifted"), arr1(&[11, 9, (1 << 63) + 10]).into_dyn());
    assert_eq!(out("sum"), arr1(&[0, 0, 0]).into_dyn());
    assert_eq!(out("left"), arr1(&[2, u64::MAX - 1, 0]).into_dyn());
    assert_eq!(out("x"), arr1(&[1, u64::MAX, 1 << 63]).into_dyn());
    assert_eq!(out("grown"), arr1(&[6, 4, (1 << 63) + 5]).into_dyn());
}

//! The compiler's static cost model and the runtime agree: entry and frame sizes on the wire,
//! and the rounds a party counts.

use ndarray::ArrayD;
use shareflow_compiler::cost::{entry_bytes, FRAME_HEADER_BYTES};
use shareflow_compiler::ir::{Exchange, Kernel, ValueId};
use shareflow_compiler::{Instr, Program};
use shareflow_ops::{Value, ValueKind};
use shareflow_runtime::exec::Plan;
use shareflow_runtime::wire::{encode, encoded_len, entry_len, Batch};

#[test]
fn wire_sizes_are_those_of_the_cost_model() {
    // The wire's header constants are the cost model's by definition; what is checked here
    // is that encoding produces exactly the bytes the model counts.
    let values = [
        Value::Ring(ArrayD::zeros(vec![3, 4])),
        Value::OddRing(ArrayD::zeros(vec![5])),
        Value::Small(ArrayD::zeros(vec![2, 64])),
        Value::Float(ArrayD::zeros(vec![1, 10])),
        Value::Seed([7; 32]),
        Value::Ring(ArrayD::zeros(vec![])),
    ];
    let mut batch = Batch::new([1; 16], 3, 0, 1);
    let mut total = FRAME_HEADER_BYTES;
    for (key, v) in values.into_iter().enumerate() {
        assert_eq!(
            entry_len(&v),
            entry_bytes(v.kind(), v.shape()),
            "{:?}",
            v.kind()
        );
        total += entry_bytes(v.kind(), v.shape());
        batch.entries.push((key as u64, v));
    }
    assert_eq!(encoded_len(&batch), total);
    assert_eq!(encode(&batch).unwrap().len(), total);
}

fn instr(id: u32, kernel: Kernel, inputs: &[u32], round: u32) -> Instr {
    Instr {
        id: ValueId(id),
        kernel,
        inputs: inputs.iter().map(|&i| ValueId(i)).collect(),
        kind: ValueKind::Ring,
        shape: vec![2],
        round,
        origin: None,
    }
}

#[test]
fn local_work_after_the_last_receive_is_no_round() {
    // Receive in round 1, then add locally in round 2: two communication rounds.
    let program = Program {
        party: "server1".into(),
        host: 1,
        instrs: vec![
            instr(0, Kernel::RingConst { values: vec![1, 2] }, &[], 0),
            instr(
                1,
                Kernel::Send {
                    to: 0,
                    exchange: Exchange::MaskedOpening,
                },
                &[0],
                0,
            ),
            instr(
                3,
                Kernel::Recv {
                    from: 0,
                    send: ValueId(2),
                },
                &[],
                1,
            ),
            instr(4, Kernel::Add, &[0, 3], 2),
            instr(5, Kernel::Output { name: "y".into() }, &[4], 2),
        ],
    };
    let plan = Plan::new(&program).unwrap();
    assert_eq!(plan.rounds.len(), 3);
    assert_eq!(plan.communication_rounds(), 2);
    let local = Program {
        party: "client".into(),
        host: 3,
        instrs: vec![instr(0, Kernel::RingConst { values: vec![1, 2] }, &[], 0)],
    };
    assert_eq!(Plan::new(&local).unwrap().communication_rounds(), 0);
}

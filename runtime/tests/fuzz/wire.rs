//! Batches on the wire (`wire::decode`): what decodes re-encodes to the very same bytes.

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use shareflow_ops::Value;
use shareflow_runtime::wire::{self, Batch};

use crate::mutate::{byte_edits, config, mutated_bytes};

/// A batch with an entry of every kind, a scalar and an empty tensor.
fn valid_batch() -> Vec<u8> {
    let mut b = Batch::new([9; 16], 4, 1, 2);
    let ring = ArrayD::from_shape_vec(IxDyn(&[2, 3]), (0u64..6).collect()).unwrap();
    b.entries.push((3, Value::Ring(ring)));
    b.entries.push((
        5,
        Value::OddRing(ArrayD::from_elem(IxDyn(&[2]), u64::MAX - 1)),
    ));
    b.entries
        .push((7, Value::Small(ArrayD::from_elem(IxDyn(&[1, 2, 2]), 1u8))));
    b.entries
        .push((8, Value::Float(ArrayD::from_elem(IxDyn(&[]), 0.5f32))));
    b.entries.push((11, Value::Seed([3; 32])));
    b.entries
        .push((12, Value::Ring(ArrayD::zeros(IxDyn(&[0, 4])))));
    wire::encode(&b).unwrap()
}

/// `bytes` fed to a [`wire::Decoder`] in pieces of `piece` bytes (the last one shorter).
fn decode_in_pieces(bytes: &[u8], piece: usize) -> shareflow_runtime::Result<Batch> {
    let mut d = wire::Decoder::new(bytes.len())?;
    for p in bytes.chunks(piece.max(1)) {
        d.feed(p)?;
    }
    d.finish()
}

/// Decoding either fails with a wire error or gives a batch that encodes to `bytes`; in
/// pieces of any size, the same batch or the same error.
fn decodes_canonically(bytes: &[u8]) -> Result<(), TestCaseError> {
    let whole = wire::decode(bytes);
    for piece in [1, 2, 3, 5, 8, 17, 64] {
        let pieces = decode_in_pieces(bytes, piece);
        match (&whole, &pieces) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            _ => prop_assert!(
                false,
                "pieces of {}: {:?} against {:?}",
                piece,
                pieces,
                whole
            ),
        }
    }
    match whole {
        Ok(batch) => {
            prop_assert_eq!(wire::encoded_len(&batch), bytes.len());
            prop_assert_eq!(wire::encode(&batch).unwrap(), bytes.to_vec());
        }
        Err(e) => prop_assert!(e.to_string().starts_with("wire format: "), "{}", e),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn mutated_batches(edits in byte_edits(4)) {
        decodes_canonically(&mutated_bytes(&valid_batch(), &edits))?;
    }

    #[test]
    fn raw_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..256), magic: bool) {
        if magic && bytes.len() >= 8 {
            // past the magic and version, into the fields behind them
            bytes[..8].copy_from_slice(&valid_batch()[..8]);
        }
        decodes_canonically(&bytes)?;
    }
}

#[test]
fn the_valid_batch_round_trips() {
    decodes_canonically(&valid_batch()).unwrap();
    assert!(wire::decode(&valid_batch()).is_ok());
}

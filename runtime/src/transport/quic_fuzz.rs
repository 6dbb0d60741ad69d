//! Fuzzing the QUIC transport's framing: the hello a peer sends first and the length prefix of
//! every frame. What parses is exactly what was sent.

use proptest::prelude::*;

use super::quic_frame::{frame, frame_len};
use super::quic_hello::{hello_bytes, parse_hello, MAX_HELLO};

#[path = "../../tests/fuzz/mutate.rs"]
mod mutate;

use mutate::{byte_edits, config, mutated_bytes};

/// The body of a valid hello (without its frame's length prefix).
fn hello() -> Vec<u8> {
    hello_bytes("model-owner", &[7; 32], &[9; 32])[8..].to_vec()
}

fn check_hello(body: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(h) = parse_hello(body) {
        let again = hello_bytes(&h.name, &h.digest, &h.contribution);
        prop_assert_eq!(&again[8..], body);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(5000))]

    #[test]
    fn mutated_hellos(edits in byte_edits(4)) {
        check_hello(&mutated_bytes(&hello(), &edits))?;
    }

    #[test]
    fn raw_hellos(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        check_hello(&bytes)?;
    }

    #[test]
    fn frame_lengths(prefix: [u8; 8], max in prop_oneof![Just(MAX_HELLO), Just(crate::wire::MAX_MESSAGE_BYTES), any::<usize>()]) {
        match frame_len(prefix, max) {
            Ok(n) => prop_assert!(n <= max && n as u64 == u64::from_le_bytes(prefix)),
            Err(e) => prop_assert!(e.contains("announced a frame")),
        }
    }

    #[test]
    fn frames_announce_their_length(body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let f = frame(&body);
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&f[..8]);
        prop_assert_eq!(frame_len(prefix, MAX_HELLO), Ok(body.len()));
        prop_assert_eq!(&f[8..], &body[..]);
    }
}

#[test]
fn the_valid_hello_parses() {
    let h = parse_hello(&hello()).unwrap();
    assert_eq!(
        (h.name.as_str(), h.digest, h.contribution),
        ("model-owner", [7; 32], [9; 32])
    );
}

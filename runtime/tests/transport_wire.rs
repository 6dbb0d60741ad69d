//! Wire format: round trips of every kind, exact lengths, and rejection of malformed bytes.

use ndarray::{ArrayD, IxDyn};
use shareflow_ops::Value;
use shareflow_runtime::wire::{self, Batch, HEADER_LEN, MAX_MESSAGE_BYTES};

fn every_kind() -> Batch {
    let mut b = Batch::new([0xab; 16], 42, 1, 2);
    let ring = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![0, 1, u64::MAX, 1 << 63, 5, 6]).unwrap();
    let odd = ArrayD::from_shape_vec(IxDyn(&[4]), vec![u64::MAX - 1, 0, 7, 9]).unwrap();
    let small = ArrayD::from_shape_vec(IxDyn(&[3, 1, 2]), vec![0u8, 1, 255, 3, 4, 66]).unwrap();
    let float =
        ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1.5f32, -0.0, f32::MAX, -3.25]).unwrap();
    let scalar = ArrayD::from_shape_vec(IxDyn(&[]), vec![99u64]).unwrap();
    let empty = ArrayD::<u64>::zeros(IxDyn(&[0, 5]));
    let mut seed = [0u8; 32];
    seed.iter_mut().enumerate().for_each(|(i, s)| *s = i as u8);
    b.entries = vec![
        (1, Value::Ring(ring)),
        (2, Value::OddRing(odd)),
        (3, Value::Small(small)),
        (4, Value::Float(float)),
        (5, Value::Seed(seed)),
        (u64::from(u32::MAX), Value::Ring(scalar)),
        (7, Value::Ring(empty)),
    ];
    b
}

#[test]
fn every_kind_round_trips_with_exact_length() {
    let b = every_kind();
    let bytes = wire::encode(&b).unwrap();
    assert_eq!(bytes.len(), wire::encoded_len(&b));
    let back = wire::decode(&bytes).unwrap();
    assert_eq!(back, b);
    assert_eq!(back.get(5), b.get(5));
    assert_eq!(back.session, wire::session_tag(&[0xab; 16]));
    assert_eq!((back.round, back.from, back.to), (42, 1, 2));
}

#[test]
fn encode_into_appends_to_a_reused_buffer() {
    let b = every_kind();
    let mut buf = vec![9u8, 9];
    wire::encode_into(&b, &mut buf).unwrap();
    assert_eq!(&buf[..2], &[9, 9]);
    assert_eq!(wire::decode(&buf[2..]).unwrap(), b);
}

#[test]
fn encoded_len_counts_header_dims_and_payload() {
    let mut b = Batch::new([0; 16], 0, 0, 1);
    assert_eq!(wire::encoded_len(&b), HEADER_LEN);
    b.entries
        .push((1, Value::Ring(ArrayD::zeros(IxDyn(&[3, 4])))));
    // key 4, kind 1, ndim 1, dims 1 + 1 (varints), payload 96
    assert_eq!(wire::encoded_len(&b), HEADER_LEN + 6 + 2 + 96);
    b.entries
        .push((2, Value::Small(ArrayD::zeros(IxDyn(&[300])))));
    assert_eq!(wire::encoded_len(&b), HEADER_LEN + 6 + 2 + 96 + 6 + 2 + 300);
    b.entries.push((3, Value::Seed([0; 32])));
    assert_eq!(
        wire::encoded_len(&b),
        HEADER_LEN + 6 + 2 + 96 + 6 + 2 + 300 + 6 + 32
    );
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = wire::encode(&every_kind()).unwrap();
    for cut in 0..bytes.len() {
        assert!(wire::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    let err = wire::decode(&longer).unwrap_err().to_string();
    assert!(err.contains("trailing"), "{err}");
}

#[test]
fn garbage_and_bit_flips_never_panic() {
    let bytes = wire::encode(&every_kind()).unwrap();
    // deterministic xorshift, so a failure reproduces
    let mut x = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..2000 {
        let mut m = bytes.clone();
        let i = (next() as usize) % m.len();
        m[i] = next() as u8;
        let _ = wire::decode(&m);
        let junk: Vec<u8> = (0..(next() % 200) as usize).map(|_| next() as u8).collect();
        assert!(wire::decode(&junk).is_err());
    }
}

#[test]
fn malformed_fields_are_named() {
    let good = wire::encode(&every_kind()).unwrap();
    let err = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut m = good.clone();
        f(&mut m);
        wire::decode(&m).unwrap_err().to_string()
    };
    assert!(err(&|m| m[0] = b'X').contains("magic"));
    assert!(err(&|m| m[2] = 9).contains("version"));
    assert!(err(&|m| m[3] = 1).contains("flags"));
    assert!(err(&|m| m[14..16].copy_from_slice(&u16::MAX.to_le_bytes())).contains("entry count"));
    // first entry: key at 16, kind at 20, ndim at 21, dims from 22
    assert!(err(&|m| m[20] = 77).contains("entry 1: kind"));
    assert!(err(&|m| m[21] = 200).contains("entry 1: ndim"));
    // a dim of 2^40 (a varint of 6 bytes) in place of the first: the payload is short
    let e = err(&|m| {
        m.splice(22..23, [0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
    });
    assert!(e.contains("entry 1"), "{e}");
    // a dim in a longer form than needed
    let e = err(&|m| {
        m.splice(22..23, [0x82, 0x00]);
    });
    assert!(
        e.contains("entry 1: dim 0") && e.contains("shortest"),
        "{e}"
    );
    let huge = vec![0u8; MAX_MESSAGE_BYTES + 1];
    assert!(wire::decode(&huge)
        .unwrap_err()
        .to_string()
        .contains("maximum"));
}

#[test]
fn what_the_header_cannot_hold_cannot_be_encoded() {
    let mut b = Batch::new([0; 16], 0, 0, 256);
    assert!(wire::encode(&b).unwrap_err().to_string().contains("to"));
    b.to = 1;
    b.entries.push((1 << 32, Value::Seed([0; 32])));
    let e = wire::encode(&b).unwrap_err().to_string();
    assert!(e.contains("key"), "{e}");
    b.entries = vec![(1, Value::Seed([0; 32])); 1 << 16];
    let e = wire::encode(&b).unwrap_err().to_string();
    assert!(e.contains("entry count"), "{e}");
}

#[test]
fn too_many_dims_cannot_be_encoded() {
    let mut b = Batch::new([0; 16], 0, 0, 1);
    b.entries
        .push((3, Value::Small(ArrayD::zeros(IxDyn(&[1; 40])))));
    let e = wire::encode(&b).unwrap_err().to_string();
    assert!(e.contains("entry 3"), "{e}");
}

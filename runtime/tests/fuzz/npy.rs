//! `.npy` (`parse_npy`) and `.npz` (`Weights::parse_npz`) files: a header's length and the
//! data its shape declares are checked against the bytes present before anything is
//! allocated, and what loads writes back to a file that loads the same.

use std::io::Cursor;

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{NpzWriter, WriteNpyExt};
use proptest::prelude::*;
use shareflow_runtime::data::npy::parse_npy;
use shareflow_runtime::data::Weights;
use shareflow_runtime::RuntimeError;

use crate::mutate::{byte_edits, config, mutated_bytes};

fn array(shape: &[usize]) -> ArrayD<f32> {
    let n = shape.iter().product::<usize>();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|i| i as f32 - 1.5).collect()).unwrap()
}

fn npy(a: &ArrayD<f32>) -> Vec<u8> {
    let mut out = Vec::new();
    a.write_npy(&mut out).unwrap();
    out
}

fn npz() -> Vec<u8> {
    let mut w = NpzWriter::new(Cursor::new(Vec::new()));
    w.add_array("dense1/kernel", &array(&[3, 2])).unwrap();
    w.add_array("dense1/bias", &array(&[2])).unwrap();
    w.finish().unwrap().into_inner()
}

/// Equal shapes and bits (a mutated float may be a NaN).
fn same(a: &ArrayD<f32>, b: &ArrayD<f32>) -> bool {
    a.shape() == b.shape()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.to_bits() == y.to_bits())
}

fn check_npy(bytes: &[u8]) -> Result<(), TestCaseError> {
    match parse_npy("x.npy", bytes) {
        Ok(a) => prop_assert!(same(&parse_npy("again", &npy(&a)).unwrap(), &a)),
        Err(RuntimeError::File { path, .. }) => prop_assert_eq!(path, "x.npy"),
        Err(other) => prop_assert!(false, "not a file error: {other}"),
    }
    Ok(())
}

fn check_npz(bytes: &[u8]) -> Result<(), TestCaseError> {
    match Weights::parse_npz("w.npz", bytes) {
        Ok(w) => {
            let mut out = NpzWriter::new(Cursor::new(Vec::new()));
            for (k, a) in &w.arrays {
                out.add_array(k.as_str(), a).unwrap();
            }
            let again = out.finish().unwrap().into_inner();
            let back = Weights::parse_npz("again", &again).unwrap();
            prop_assert!(back.arrays.keys().eq(w.arrays.keys()));
            prop_assert!(back
                .arrays
                .values()
                .zip(w.arrays.values())
                .all(|(a, b)| same(a, b)));
        }
        Err(RuntimeError::File { path, .. }) => prop_assert!(path.starts_with("w.npz")),
        Err(other) => prop_assert!(false, "not a file error: {other}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn mutated_npy(edits in byte_edits(4), shape in proptest::collection::vec(0usize..4, 0..4)) {
        check_npy(&mutated_bytes(&npy(&array(&shape)), &edits))?;
    }

    #[test]
    fn mutated_npy_headers(shape in prop_oneof![
        "[0-9, ]{0,24}",
        Just("18446744073709551615, 2".to_string()),
        Just("4294967296, 4294967296".to_string()),
        Just("1099511627776,".to_string()),
    ], descr in prop_oneof![Just("<f4"), Just(">f4"), Just("<f8"), Just("|u1")], fortran: bool) {
        let dict = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({shape}), }}",
            if fortran { "True" } else { "False" }
        );
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let header = format!("{dict}\n");
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend([0u8; 24]);
        check_npy(&bytes)?;
    }

    #[test]
    fn mutated_npz(edits in byte_edits(4)) {
        check_npz(&mutated_bytes(&npz(), &edits))?;
    }

    #[test]
    fn raw_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        check_npy(&bytes)?;
        check_npz(&bytes)?;
    }
}

#[test]
fn the_valid_files_load() {
    let a = array(&[2, 3]);
    assert_eq!(parse_npy("x.npy", &npy(&a)).unwrap(), a);
    let w = Weights::parse_npz("w.npz", &npz()).unwrap();
    assert_eq!(w.arrays["dense1/kernel"], array(&[3, 2]));
}

/// A header declaring far more data than the file holds, in every version of the format.
#[test]
fn a_shape_larger_than_the_data_is_refused_before_allocating() {
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1024), }";
    for (version, len_bytes) in [(1u8, 2usize), (2, 4)] {
        let mut bytes = b"\x93NUMPY".to_vec();
        bytes.extend([version, 0]);
        let header = format!("{dict}\n");
        bytes.extend(&(header.len() as u32).to_le_bytes()[..len_bytes]);
        bytes.extend(header.as_bytes());
        bytes.extend([0u8; 64]);
        let e = parse_npy("big.npy", &bytes).unwrap_err().to_string();
        assert!(
            e.contains("big.npy") && e.contains("needs more than"),
            "{e}"
        );
    }
}

/// A version-2 header length of 4 GiB in a file of a few bytes.
#[test]
fn a_header_longer_than_the_file_is_refused_before_allocating() {
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend(u32::MAX.to_le_bytes());
    bytes.extend(b"{'descr'");
    let e = parse_npy("h.npy", &bytes).unwrap_err().to_string();
    assert!(e.contains("header of 4294967295 bytes"), "{e}");
}

/// Deeply nested brackets in a header: the header parser recurses once per level.
#[test]
fn a_deeply_nested_header_is_refused() {
    let dict = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': {}",
        "(".repeat(5000)
    );
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let header = format!("{dict}\n");
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    let e = parse_npy("deep.npy", &bytes).unwrap_err().to_string();
    assert!(e.contains("nests deeper"), "{e}");
}

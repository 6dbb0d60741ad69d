//! MNIST IDX files (`Mnist::from_bytes`), plain and gzip-compressed: declared dimensions are
//! checked against the bytes present, and what loads can be batched.

use std::io::Write;

use flate2::write::GzEncoder;
use proptest::prelude::*;
use shareflow_runtime::data::Mnist;
use shareflow_runtime::RuntimeError;

use crate::mutate::{byte_edits, config, mutated_bytes};

fn images() -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2];
    b.extend((0..12u8).map(|i| i * 20));
    b
}

fn labels() -> Vec<u8> {
    vec![0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 9]
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn check(
    images: &[u8],
    labels: &[u8],
    gzip: bool,
    limit: Option<usize>,
) -> Result<(), TestCaseError> {
    match Mnist::from_bytes(images, labels, gzip, limit) {
        Ok(m) => {
            prop_assert_eq!(m.images.shape()[0], m.len());
            prop_assert!(m.labels.iter().all(|&l| l <= 9));
            let b = m.batch(0, m.len());
            prop_assert_eq!(b.shape()[0], m.len());
            let all: Vec<usize> = (0..m.len()).collect();
            prop_assert_eq!(m.gather(&all), b);
        }
        Err(RuntimeError::File { .. }) => {}
        Err(other) => prop_assert!(false, "not a file error: {other}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn mutated_files(edits in byte_edits(4), which in 0u8..3, limit in proptest::option::of(0usize..5)) {
        let (mut i, mut l) = (images(), labels());
        match which {
            0 => i = mutated_bytes(&i, &edits),
            1 => l = mutated_bytes(&l, &edits),
            _ => {
                i = mutated_bytes(&i, &edits);
                l = mutated_bytes(&l, &edits[..1]);
            }
        }
        check(&i, &l, false, limit)?;
    }

    #[test]
    fn mutated_gzip_files(edits in byte_edits(3), compressed: bool) {
        let (i, l) = if compressed {
            // edits of the compressed stream
            (mutated_bytes(&gz(&images()), &edits), gz(&labels()))
        } else {
            (gz(&mutated_bytes(&images(), &edits)), gz(&labels()))
        };
        check(&i, &l, true, None)?;
    }

    #[test]
    fn raw_bytes(i in proptest::collection::vec(any::<u8>(), 0..64), l in proptest::collection::vec(any::<u8>(), 0..16)) {
        check(&i, &l, false, None)?;
        check(&i, &l, true, None)?;
    }
}

#[test]
fn the_valid_files_load() {
    let m = Mnist::from_bytes(&images(), &labels(), false, None).unwrap();
    assert_eq!(m.images.shape(), &[3, 2, 2, 1]);
    assert_eq!(m.labels, vec![7, 2, 9]);
    let z = Mnist::from_bytes(&gz(&images()), &gz(&labels()), true, Some(2)).unwrap();
    assert_eq!(z.labels, vec![7, 2]);
}

#[test]
fn dimensions_whose_sum_with_the_header_overflows_are_refused() {
    // (2^32 - 1)^2 elements fit in usize, the header added to them did not always
    let mut b = vec![0, 0, 8, 2];
    b.extend([0xff; 8]);
    let e = Mnist::from_bytes(&b, &labels(), false, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("images"), "{e}");
}

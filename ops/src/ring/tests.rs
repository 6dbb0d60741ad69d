//! Tests of the elementwise ring, odd-ring, field, bit and shape kernels.

use ndarray::{arr1, arr2, ArrayD, IxDyn};

use super::shape::{standard_2d, transpose_tiled};
use super::*;
use crate::OpsError;

fn d(v: &[u64]) -> ArrayD<u64> {
    arr1(v).into_dyn()
}

#[test]
fn ring_add_sub_neg_wrap_at_u64_max() {
    let a = d(&[u64::MAX, 0, 5, 1 << 63]);
    let b = d(&[1, 1, u64::MAX, 1 << 63]);
    assert_eq!(add(&a, &b).unwrap(), d(&[0, 1, 4, 0]));
    assert_eq!(sub(&a, &b).unwrap(), d(&[u64::MAX - 1, u64::MAX, 6, 0]));
    assert_eq!(neg(&a), d(&[1, 0, u64::MAX - 4, 1 << 63]));
    assert_eq!(
        mul(&a, &b).unwrap(),
        d(&[u64::MAX, 0, 5u64.wrapping_neg(), 0])
    );
    assert_eq!(mul_scalar(&a, 3), d(&[u64::MAX - 2, 0, 15, 1 << 63]));
    assert_eq!(add_scalar(&a, 1), d(&[0, 1, 6, (1 << 63) + 1]));
    // (a - b) + b == a for random-looking words.
    let x = d(&[0x1234_5678_9abc_def0, u64::MAX, 7]);
    let y = d(&[u64::MAX, 0xdead_beef, 9]);
    assert_eq!(add(&sub(&x, &y).unwrap(), &y).unwrap(), x);
}

#[test]
fn ring_broadcast_trailing_bias_like_numpy() {
    let x = arr2(&[[1u64, 2, 3], [4, 5, 6]]).into_dyn();
    let bias = d(&[10, 20, u64::MAX]);
    assert_eq!(
        add(&x, &bias).unwrap(),
        arr2(&[[11u64, 22, 2], [14, 25, 5]]).into_dyn()
    );
    // Bias on the left operand, column vector, scalar (0-d).
    assert_eq!(
        sub(&bias, &x).unwrap(),
        arr2(&[[9u64, 18, u64::MAX - 3], [6, 15, u64::MAX - 6]]).into_dyn()
    );
    let col = arr2(&[[1u64], [2]]).into_dyn();
    assert_eq!(
        mul(&x, &col).unwrap(),
        arr2(&[[1u64, 2, 3], [8, 10, 12]]).into_dyn()
    );
    let s = ArrayD::from_elem(IxDyn(&[]), 2u64);
    assert_eq!(mul(&s, &x).unwrap(), mul_scalar(&x, 2));
    assert_eq!(
        broadcast_shape("t", &[4, 1, 3], &[2, 1]).unwrap(),
        vec![4, 2, 3]
    );
    assert!(matches!(
        add(&x, &d(&[1, 2])),
        Err(OpsError::ShapeMismatch { op: "ring add", .. })
    ));
}

#[test]
fn ring_large_operands_take_the_parallel_path() {
    let n = PAR_THRESHOLD * 2 + 3;
    let a = ArrayD::from_shape_fn(IxDyn(&[n]), |i| (i[0] as u64).wrapping_mul(0x9e37_79b9));
    let b = neg(&a);
    assert!(add(&a, &b).unwrap().iter().all(|&v| v == 0));
    // The sum of 0x9e3779b9 i over i < n, in closed form.
    let triangle = (n as u64) * (n as u64 - 1) / 2;
    assert_eq!(sum_all(&a), 0x9e37_79b9u64.wrapping_mul(triangle));
}

#[test]
fn ring_shifts() {
    let x = d(&[u64::MAX, 1 << 63, 16, (-17i64) as u64]);
    assert_eq!(
        shr_arith(&x, 2).unwrap(),
        d(&[u64::MAX, (i64::MIN >> 2) as u64, 4, (-5i64) as u64])
    );
    assert_eq!(
        shr_logical(&x, 2).unwrap(),
        d(&[u64::MAX >> 2, 1 << 61, 4, ((-17i64) as u64) >> 2])
    );
    assert_eq!(
        shl(&x, 1).unwrap(),
        d(&[u64::MAX - 1, 0, 32, (-34i64) as u64])
    );
    assert_eq!(shr_arith(&x, 0).unwrap(), x);
    assert!(matches!(
        shr_arith(&x, 64),
        Err(OpsError::InvalidArgument { .. })
    ));
    assert!(shr_logical(&x, 64).is_err());
    assert!(shl(&x, 100).is_err());
}

#[test]
fn ring_mul_wide_shr_is_exact_in_128_bits() {
    // u64::MAX * 3 / 4 = 2^64 * 0.75 - 0.75: floor keeps 2^64 * 0.75 - 1, mod 2^64.
    let x = d(&[u64::MAX, 1 << 62, 5, 0]);
    let three = ArrayD::from_elem(IxDyn(&[]), 3u64);
    let expect =
        |v: u64, offset: u64, s: i128, k: u32| (((v as i128 - offset as i128) * s) >> k) as u64;
    let got = mul_wide_shr(&x, &three, 0, 2).unwrap();
    assert_eq!(got, d(&[0xBFFF_FFFF_FFFF_FFFF, 3 << 60, 3, 0]));
    // A negative scalar and an offset: (5 - 2^62) * -3 / 2^3, floored.
    let minus = ArrayD::from_elem(IxDyn(&[]), (-3i64) as u64);
    let got = mul_wide_shr(&x, &minus, 1 << 62, 3).unwrap();
    let want: Vec<u64> = [u64::MAX, 1 << 62, 5, 0]
        .iter()
        .map(|&v| expect(v, 1 << 62, -3, 3))
        .collect();
    assert_eq!(got, d(&want));
    // (3 2^62 - 15) / 8 rounds down to 3 2^59 - 2.
    assert_eq!(got[2], (3 << 59) - 2);
    assert!(mul_wide_shr(&x, &three, 0, 128).is_err());
}

#[test]
fn ring_sums_and_signed_views() {
    let x = arr2(&[[u64::MAX, 2, 3], [1, 5, u64::MAX]]).into_dyn();
    assert_eq!(sum_axis(&x, 0).unwrap(), d(&[0, 7, 2]));
    assert_eq!(sum_axis(&x, 1).unwrap(), d(&[4, 5]));
    assert!(sum_axis(&x, 2).is_err());
    assert_eq!(sum_all(&x), 9);
    let s = to_i64(&x);
    assert_eq!(s[[0, 0]], -1);
    assert_eq!(from_i64(&s), x);
}

#[test]
fn ring_reshape_and_transpose() {
    let x = ArrayD::from_shape_vec(IxDyn(&[2, 3, 4]), (0u64..24).collect()).unwrap();
    let r = reshape(&x, &[6, 4]).unwrap();
    assert_eq!(r.shape(), &[6, 4]);
    assert_eq!(r[[5, 3]], 23);
    assert!(matches!(
        reshape(&x, &[5, 5]),
        Err(OpsError::ShapeMismatch { .. })
    ));
    assert!(reshape(&x, &[usize::MAX, 2]).is_err());
    let t = transpose(&x, &[2, 0, 1]).unwrap();
    assert_eq!(t.shape(), &[4, 2, 3]);
    assert_eq!(t[[3, 1, 2]], x[[1, 2, 3]]);
    assert!(t.is_standard_layout());
    assert!(transpose(&x, &[0, 0, 1]).is_err());
    assert!(transpose(&x, &[0, 1]).is_err());
    assert!(transpose(&x, &[0, 1, 3]).is_err());
    let m = arr2(&[[1u64, 2, 3], [4, 5, 6]]).into_dyn();
    assert_eq!(
        transpose_2d(&m).unwrap(),
        arr2(&[[1u64, 4], [2, 5], [3, 6]]).into_dyn()
    );
    assert!(transpose_2d(&x).is_err());
    // Reshape of a transposed view reads in logical order.
    let tv = m.t();
    assert_eq!(
        reshape(&tv.into_dyn(), &[6]).unwrap(),
        d(&[1, 4, 2, 5, 3, 6])
    );
    // An owned standard-layout tensor keeps its buffer; a transposed one is copied in
    // logical order; the element counts are checked.
    let at = x.as_ptr();
    let owned = reshape_owned(x.clone(), &[6, 4]).unwrap();
    assert_eq!(owned, r);
    let kept = reshape_owned(x, &[4, 6]).unwrap();
    assert_eq!(kept.as_ptr(), at);
    assert_eq!(
        reshape_owned(m.t().to_owned().into_dyn(), &[6]).unwrap(),
        d(&[1, 4, 2, 5, 3, 6])
    );
    assert_eq!(
        reshape_owned(m.reversed_axes(), &[6]).unwrap(),
        d(&[1, 4, 2, 5, 3, 6])
    );
    assert!(matches!(
        reshape_owned(kept, &[5, 5]),
        Err(OpsError::ShapeMismatch { .. })
    ));
}

/// The tiled transpose equals the element-by-element one: shapes below, at and across the
/// tile size, tall and wide, on the serial and the parallel path; as a matmul operand (a
/// transposed view), as the 2-D kernel (tiled only from `TILED_FROM` elements) and as a
/// rotation of the axes of a larger tensor.
#[test]
fn the_tiled_transpose_is_the_transpose() {
    let shapes = [
        (1, 1),
        (1, 7),
        (7, 1),
        (15, 17),
        (16, 16),
        (33, 50),
        (700, 25),
        (513, 1100),
    ];
    for (rows, cols) in shapes {
        let x = ndarray::Array2::from_shape_fn((rows, cols), |(i, j)| (i * 1000 + j) as u64);
        let want = x.t().as_standard_layout().into_owned();
        let got = transpose_tiled(x.as_slice().unwrap(), rows, cols);
        assert_eq!(got, want.as_slice().unwrap(), "{rows} x {cols}");
        assert_eq!(standard_2d(x.t()).into_owned(), want, "{rows} x {cols}");
        let t = transpose_2d(&x.clone().into_dyn()).unwrap();
        assert_eq!(t, want.clone().into_dyn(), "{rows} x {cols}");
        // As the left operand of a product: the same as with a standard-layout copy.
        let b = ndarray::Array2::from_shape_fn((rows, 3), |(i, j)| (i + 7 * j) as u64);
        assert_eq!(
            matmul_2d(x.t(), b.view()).unwrap(),
            matmul_naive(want.view(), b.view()).unwrap()
        );
    }
    // Large enough to be tiled.
    let x = ArrayD::from_shape_fn(IxDyn(&[3, 5, 160, 120]), |i| {
        (i[0] * 100_000_000 + i[1] * 1_000_000 + i[2] * 1000 + i[3]) as u64
    });
    for perm in [
        [1, 2, 3, 0],
        [2, 3, 0, 1],
        [3, 0, 1, 2],
        [0, 1, 2, 3],
        [1, 0, 2, 3],
    ] {
        let want = x
            .view()
            .permuted_axes(IxDyn(&perm))
            .as_standard_layout()
            .into_owned();
        assert_eq!(transpose(&x, &perm).unwrap(), want, "{perm:?}");
    }
}

#[test]
fn odd_ring_edge_cases() {
    let m = ODD_MODULUS;
    // u64::MAX is congruent to zero and never appears in an output.
    assert_eq!(odd_reduce_word(m), 0);
    assert_eq!(odd_reduce_word(m - 1), m - 1);
    assert_eq!(odd_add_words(m - 1, 1), 0);
    assert_eq!(odd_add_words(m - 1, 2), 1);
    assert_eq!(odd_add_words(m - 1, m - 1), m - 2);
    assert_eq!(odd_add_words(m, m), 0);
    assert_eq!(odd_add_words(m, 5), 5);
    assert_eq!(odd_add_words(1 << 63, 1 << 63), 1);
    assert_eq!(odd_neg_word(0), 0);
    assert_eq!(odd_neg_word(m), 0);
    assert_eq!(odd_neg_word(1), m - 1);
    assert_eq!(odd_sub_words(0, 1), m - 1);
    assert_eq!(odd_sub_words(5, 5), 0);
    assert_eq!(odd_sub_words(3, m), 3);
    assert_eq!(odd_mul_words(m - 1, m - 1), 1); // (-1)^2
    assert_eq!(odd_mul_words(m - 1, 2), m - 2);
    assert_eq!(odd_mul_words(1 << 32, 1 << 32), 1); // 2^64 ≡ 1
    assert_eq!(odd_mul_words(m, 12345), 0);
    // Against u128 arithmetic on a few values.
    let vals = [
        0u64,
        1,
        2,
        3,
        m - 1,
        m - 2,
        1 << 63,
        0x1234_5678_9abc_def1,
        m,
    ];
    for &a in &vals {
        for &b in &vals {
            let (a1, b1) = (u128::from(a) % u128::from(m), u128::from(b) % u128::from(m));
            let md = u128::from(m);
            assert_eq!(u128::from(odd_add_words(a, b)), (a1 + b1) % md);
            assert_eq!(u128::from(odd_sub_words(a, b)), (a1 + md - b1) % md);
            assert_eq!(u128::from(odd_mul_words(a, b)), (a1 * b1) % md);
            assert_ne!(odd_add_words(a, b), m);
        }
    }
    let x = d(&[m, m - 1, 0, 7]);
    assert_eq!(odd_reduce(&x), d(&[0, m - 1, 0, 7]));
    assert_eq!(odd_neg(&x), d(&[0, 1, 0, m - 7]));
    assert_eq!(odd_add(&x, &d(&[1, 1, 1, 1])).unwrap(), d(&[1, 0, 1, 8]));
    assert_eq!(odd_sub(&x, &d(&[1])).unwrap(), d(&[m - 1, m - 2, m - 1, 6]));
    assert_eq!(odd_mul(&x, &d(&[2])).unwrap(), odd_mul_scalar(&x, 2));
    assert_eq!(odd_mul_scalar(&x, 2), d(&[0, m - 2, 0, 14]));
}

#[test]
fn prime_field_ops_exhaustive_reduction() {
    assert!(PrimeField::new(0).is_err());
    assert!(PrimeField::new(1).is_err());
    assert!(PrimeField::new(9).is_err());
    assert!(PrimeField::new(255).is_err());
    for p in [2u8, 3, 5, 67, 127, 251] {
        let f = PrimeField::new(p).unwrap();
        assert_eq!(f.modulus(), p);
        for n in 0..=u16::MAX {
            assert_eq!(u16::from(f.reduce_u16(n)), n % u16::from(p), "p={p} n={n}");
        }
        for a in 0..=255u8 {
            for b in [0u8, 1, 2, p - 1, p, 100, 255] {
                let (a1, b1, pp) = (u32::from(a), u32::from(b), u32::from(p));
                assert_eq!(u32::from(f.add_elems(a, b)), (a1 + b1) % pp);
                assert_eq!(u32::from(f.sub_elems(a, b)), (a1 % pp + pp - b1 % pp) % pp);
                assert_eq!(u32::from(f.mul_elems(a, b)), (a1 * b1) % pp);
            }
            assert_eq!(
                u32::from(f.neg_elem(a)),
                (u32::from(p) - u32::from(a) % u32::from(p)) % u32::from(p)
            );
        }
    }
    let f = PrimeField::new(67).unwrap();
    let a = arr1(&[0u8, 1, 66, 30]).into_dyn();
    let b = arr1(&[66u8, 66, 66, 40]).into_dyn();
    assert_eq!(f.add(&a, &b).unwrap(), arr1(&[66u8, 0, 65, 3]).into_dyn());
    assert_eq!(f.sub(&a, &b).unwrap(), arr1(&[1u8, 2, 0, 57]).into_dyn());
    assert_eq!(f.mul(&a, &b).unwrap(), arr1(&[0u8, 66, 1, 61]).into_dyn());
    assert_eq!(f.neg(&a), arr1(&[0u8, 66, 1, 37]).into_dyn());
    assert_eq!(f.mul_scalar(&a, 2), arr1(&[0u8, 2, 65, 60]).into_dyn());
    assert_eq!(
        f.reduce(&arr1(&[67u8, 255]).into_dyn()),
        arr1(&[0u8, 54]).into_dyn()
    );
    assert_eq!(
        f.from_u64(&d(&[u64::MAX, 134])),
        arr1(&[(u64::MAX % 67) as u8, 0]).into_dyn()
    );
    assert!(f.add(&a, &arr1(&[1u8, 2]).into_dyn()).is_err());
}

#[test]
fn bits_decompose_lsb_first_and_compose_back() {
    let x = arr2(&[[0u64, 1], [u64::MAX, 0b1011 | (1 << 63)]]).into_dyn();
    let bits = bit_decompose(&x);
    assert_eq!(bits.shape(), &[2, 2, 64]);
    assert!(bits.slice(ndarray::s![0, 0, ..]).iter().all(|&b| b == 0));
    assert_eq!(bits[[0, 1, 0]], 1);
    assert_eq!(bits.slice(ndarray::s![0, 1, 1..]).sum(), 0);
    assert!(bits.slice(ndarray::s![1, 0, ..]).iter().all(|&b| b == 1));
    let last: Vec<u8> = bits.slice(ndarray::s![1, 1, ..5]).to_vec();
    assert_eq!(last, vec![1, 1, 0, 1, 0]);
    assert_eq!(bits[[1, 1, 63]], 1);
    assert_eq!(bit_compose(&bits).unwrap(), x);
    // A transposed (non-standard) input decomposes in logical order.
    let xt = x.t().to_owned().into_dyn();
    assert_eq!(bit_compose(&bit_decompose(&x.t().into_dyn())).unwrap(), xt);
    // Large input: parallel path.
    let big = ArrayD::from_shape_fn(IxDyn(&[PAR_THRESHOLD / 64 + 7]), |i| {
        (i[0] as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    });
    assert_eq!(bit_compose(&bit_decompose(&big)).unwrap(), big);
    assert!(bit_compose(&ArrayD::<u8>::zeros(IxDyn(&[3, 32]))).is_err());
    assert!(bit_compose(&ArrayD::<u8>::zeros(IxDyn(&[]))).is_err());
}

#[test]
fn ring_in_place_ops_equal_the_ones_into_a_new_buffer() {
    let a = ArrayD::from_shape_fn(IxDyn(&[3, 4]), |i| {
        (i[0] * 4 + i[1]) as u64 * 0x9e37_79b9_7f4a_7c15
    });
    let b = ArrayD::from_shape_fn(IxDyn(&[3, 4]), |i| u64::MAX - (i[0] + 7 * i[1]) as u64);
    let row = d(&[1, u64::MAX, 1 << 63, 3]);
    let assigned = |f: &dyn Fn(&mut ArrayD<u64>)| {
        let mut x = a.clone();
        f(&mut x);
        x
    };
    assert_eq!(
        assigned(&|x| add_assign(x, &b).unwrap()),
        add(&a, &b).unwrap()
    );
    assert_eq!(
        assigned(&|x| sub_assign(x, &b).unwrap()),
        sub(&a, &b).unwrap()
    );
    assert_eq!(
        assigned(&|x| mul_assign(x, &b).unwrap()),
        mul(&a, &b).unwrap()
    );
    // the second operand broadcast, as a bias over rows
    assert_eq!(
        assigned(&|x| add_assign(x, &row).unwrap()),
        add(&a, &row).unwrap()
    );
    assert_eq!(assigned(&|x| map_assign(x, u64::wrapping_neg)), neg(&a));
    assert_eq!(
        assigned(&|x| shl_assign(x, 5).unwrap()),
        shl(&a, 5).unwrap()
    );
    assert_eq!(
        assigned(&|x| shr_logical_assign(x, 63).unwrap()),
        shr_logical(&a, 63).unwrap()
    );
    assert_eq!(
        assigned(&|x| shr_arith_assign(x, 9).unwrap()),
        shr_arith(&a, 9).unwrap()
    );
    // the first operand never grows: a shape that does not broadcast to it is refused
    let mut x = row.clone();
    assert!(matches!(
        add_assign(&mut x, &a),
        Err(OpsError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        shl_assign(&mut x, 64),
        Err(OpsError::InvalidArgument { .. })
    ));
    // large operands take the parallel path
    let n = PAR_THRESHOLD * 2 + 3;
    let mut big = ArrayD::from_shape_fn(IxDyn(&[n]), |i| i[0] as u64);
    let minus = neg(&big);
    add_assign(&mut big, &minus).unwrap();
    assert!(big.iter().all(|&v| v == 0));
}

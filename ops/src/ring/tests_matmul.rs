//! Tests of the ring GEMM and conv2d against naive references.

use ndarray::{Array2, Array4, ArrayD};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::matmul::{fastest, gemm, Kernel};
use super::matmul_tn::gemm_tn;
use super::pack::Tall;
use super::*;
use crate::im2col::Padding;

fn random2(rng: &mut StdRng, r: usize, c: usize) -> Array2<u64> {
    Array2::from_shape_fn((r, c), |_| rng.random::<u64>())
}

/// AVX-512, where listed first, is taken without timing (so never run on a CPU that lacks
/// it: the list here is made up); otherwise the timed choice is one of those listed, the only
/// one when there is one.
#[test]
fn the_timed_choice_of_kernel_is_a_supported_one() {
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        fastest(&[Kernel::Avx512, Kernel::Avx2, Kernel::Portable]),
        Kernel::Avx512
    );
    let supported = Kernel::supported();
    assert!(supported.contains(&fastest(&supported)));
    assert!(supported.contains(&Kernel::detect()));
    assert_eq!(fastest(&[Kernel::Portable]), Kernel::Portable);
    assert_eq!(fastest(&[]), Kernel::Portable);
}

#[test]
fn ring_matmul_matches_naive_on_odd_shapes() {
    let mut rng = StdRng::seed_from_u64(1);
    let shapes = [
        (1, 1, 1),
        (1, 7, 1),
        (3, 5, 2),
        (MR + 1, KC + 3, NR + 1),
        (MC + 5, 2 * KC + 17, 3 * NR - 1),
        (2 * MC, 784, 128),
        (17, 9, 130),
        (200, 33, 5),
        // Parallel (at least `par::MATMUL_MACS`): tasks of whole rows, the last one short;
        // and too few rows for that, so groups of columns.
        (130, 300, 120),
        (20, 600, 400),
    ];
    for &(m, k, n) in &shapes {
        let a = random2(&mut rng, m, k);
        let b = random2(&mut rng, k, n);
        let slow = matmul_naive(a.view(), b.view()).unwrap();
        let fast = matmul_2d(a.view(), b.view()).unwrap();
        assert_eq!(fast, slow, "shape {m}x{k}x{n}");
        let (a_s, b_s) = (a.as_slice().unwrap(), b.as_slice().unwrap());
        for kernel in Kernel::supported() {
            let c = gemm(kernel, Tall::Matrix(a_s), b_s, m, k, n);
            assert_eq!(c, slow.as_slice().unwrap(), "{kernel:?} shape {m}x{k}x{n}");
        }
    }
}

/// With no inner dimension the product is zero: the GEMM, which writes its result without
/// zeroing it first, writes zeros (a task with no step of `k` would write nothing).
#[test]
fn a_product_over_an_empty_inner_dimension_is_zero() {
    for (m, n) in [(3, 5), (2 * MR, 5), (MC + 1, 2 * NR + 1)] {
        for kernel in Kernel::supported() {
            let c = gemm(kernel, Tall::Matrix(&[]), &[], m, 0, n);
            assert_eq!(c, vec![0u64; m * n], "{kernel:?} {m}x0x{n}");
        }
    }
}

/// `P^T Q` with many rows: one block and several, ragged panels on both sides, and enough
/// work to be split across threads.
#[test]
fn the_product_of_a_transpose_matches_naive() {
    let mut rng = StdRng::seed_from_u64(5);
    let shapes = [
        (1, 1, 1),
        (7, 3, 2),
        (130, MR + 1, NR + 1),
        (300, 25, 16),
        (1000, 400, 16),
        (4099, 25, 20),
        (9000, 40, 50),
    ];
    for &(k, m, n) in &shapes {
        let p = random2(&mut rng, k, m);
        let q = random2(&mut rng, k, n);
        let slow = matmul_naive(p.t(), q.view()).unwrap();
        let (p_s, q_s) = (p.as_slice().unwrap(), q.as_slice().unwrap());
        for kernel in Kernel::supported() {
            let c = gemm_tn(kernel, Tall::Matrix(p_s), Tall::Matrix(q_s), k, m, n);
            assert_eq!(
                c,
                slow.as_slice().unwrap(),
                "{kernel:?} shape {k}x{m}, {k}x{n}"
            );
        }
    }
    let none = Tall::Matrix(&[]);
    assert_eq!(gemm_tn(Kernel::detect(), none, none, 0, 3, 2), vec![0; 6]);
}

#[test]
fn ring_matmul_small_known_values_and_wrapping() {
    let a = ArrayD::from_shape_vec(vec![2, 2], vec![u64::MAX, 2, 3, 4]).unwrap();
    let b = ArrayD::from_shape_vec(vec![2, 2], vec![5, 6, 7, 8]).unwrap();
    let c = matmul(&a, &b).unwrap();
    // Row 0: -1*5 + 2*7 = 9, -1*6 + 2*8 = 10; row 1: 15+28, 18+32.
    assert_eq!(c.into_raw_vec_and_offset().0, vec![9, 10, 43, 50]);
}

#[test]
fn ring_matmul_transposed_views_and_errors() {
    let mut rng = StdRng::seed_from_u64(2);
    let a = random2(&mut rng, 40, 30);
    let b = random2(&mut rng, 50, 40);
    let at = a.t();
    let bt = b.t();
    let fast = matmul_2d(at, bt).unwrap();
    let slow = matmul_naive(at, bt).unwrap();
    assert_eq!(fast, slow);
    assert!(matches!(
        matmul_2d(a.view(), a.view()),
        Err(crate::OpsError::ShapeMismatch { .. })
    ));
    let v = ArrayD::<u64>::zeros(vec![3]);
    assert!(matches!(
        matmul(&v, &v),
        Err(crate::OpsError::InvalidArgument { .. })
    ));
    let e = matmul_2d(Array2::zeros((0, 3)).view(), Array2::zeros((3, 4)).view()).unwrap();
    assert_eq!(e.dim(), (0, 4));
    let z = matmul_2d(Array2::zeros((2, 0)).view(), Array2::zeros((0, 4)).view()).unwrap();
    assert_eq!(z, Array2::zeros((2, 4)));
}

/// Direct convolution with TensorFlow padding, as the oracle.
fn conv_naive(x: &Array4<u64>, w: &Array4<u64>, s: (usize, usize), same: bool) -> Array4<u64> {
    let (n, h, wd, c) = x.dim();
    let (kh, kw, _, o) = w.dim();
    let (oh, ow, top, left) = if same {
        let oh = h.div_ceil(s.0);
        let ow = wd.div_ceil(s.1);
        let ph = ((oh - 1) * s.0 + kh).saturating_sub(h);
        let pw = ((ow - 1) * s.1 + kw).saturating_sub(wd);
        (oh, ow, ph / 2, pw / 2)
    } else {
        ((h - kh) / s.0 + 1, (wd - kw) / s.1 + 1, 0, 0)
    };
    let mut y = Array4::<u64>::zeros((n, oh, ow, o));
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let iy = (oy * s.0 + ky) as isize - top as isize;
                        let ix = (ox * s.1 + kx) as isize - left as isize;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                            continue;
                        }
                        for ci in 0..c {
                            let xv = x[[b, iy as usize, ix as usize, ci]];
                            for co in 0..o {
                                y[[b, oy, ox, co]] = y[[b, oy, ox, co]]
                                    .wrapping_add(xv.wrapping_mul(w[[ky, kx, ci, co]]));
                            }
                        }
                    }
                }
            }
        }
    }
    y
}

#[test]
fn ring_conv2d_matches_direct_convolution() {
    let mut rng = StdRng::seed_from_u64(3);
    let cases = [
        // (n, h, w, c, kh, kw, o, stride, same)
        (2, 7, 6, 3, 3, 3, 4, (1, 1), false),
        (2, 7, 6, 3, 3, 3, 4, (1, 1), true),
        (1, 8, 9, 2, 3, 2, 5, (2, 2), true),
        (1, 9, 8, 2, 5, 5, 3, (2, 2), false),
        (3, 12, 12, 20, 5, 5, 50, (1, 1), false),
        (1, 5, 5, 1, 4, 4, 2, (2, 1), true),
        // Many row blocks of the product, each of which makes its rows of im2col; in parallel.
        (12, 20, 20, 8, 5, 5, 12, (1, 1), true),
        (16, 28, 28, 1, 5, 5, 5, (2, 2), true),
    ];
    for &(n, h, wd, c, kh, kw, o, s, same) in &cases {
        let x = Array4::from_shape_fn((n, h, wd, c), |_| rng.random::<u64>());
        let w = Array4::from_shape_fn((kh, kw, c, o), |_| rng.random::<u64>());
        let pad = if same { Padding::Same } else { Padding::Valid };
        let got = conv2d(&x.clone().into_dyn(), &w.clone().into_dyn(), s, pad).unwrap();
        let want = conv_naive(&x, &w, s, same).into_dyn();
        assert_eq!(got, want, "case {:?}", (n, h, wd, c, kh, kw, o, s, same));
    }
}

#[test]
fn ring_conv2d_errors() {
    let x = ArrayD::<u64>::zeros(vec![1, 4, 4, 3]);
    let w = ArrayD::<u64>::zeros(vec![3, 3, 2, 1]);
    assert!(matches!(
        conv2d(&x, &w, (1, 1), Padding::Valid),
        Err(crate::OpsError::ShapeMismatch { .. })
    ));
    let w5 = ArrayD::<u64>::zeros(vec![5, 5, 3, 1]);
    assert!(conv2d(&x, &w5, (1, 1), Padding::Valid).is_err());
    assert!(conv2d(&x, &w5, (0, 1), Padding::Same).is_err());
    let x3 = ArrayD::<u64>::zeros(vec![4, 4, 3]);
    assert!(conv2d(&x3, &w5, (1, 1), Padding::Same).is_err());
}

/// Timing of the GEMM against the naive loop and f32 `dot`; run with
/// `cargo test -p shareflow-ops --release ring_matmul_timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn ring_matmul_timing() {
    let mut rng = StdRng::seed_from_u64(4);
    for &(m, k, n) in &[
        (128, 784, 128),
        (512, 512, 512),
        (1, 784, 128),
        (6400, 500, 50),
    ] {
        let a = random2(&mut rng, m, k);
        let b = random2(&mut rng, k, n);
        let af = a.mapv(|v| (v % 7) as f32);
        let bf = b.mapv(|v| (v % 7) as f32);
        let macs = (m * k * n) as f64;
        let time = |f: &dyn Fn()| {
            f();
            let reps = 5;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        };
        let t_fast = time(&|| {
            std::hint::black_box(matmul_2d(a.view(), b.view()).unwrap());
        });
        let (a_s, b_s) = (a.as_slice().unwrap(), b.as_slice().unwrap());
        for kernel in Kernel::supported() {
            let t = time(&|| {
                std::hint::black_box(gemm(kernel, Tall::Matrix(a_s), b_s, m, k, n));
            });
            println!("  {kernel:?}: {:.2} GMAC/s", macs / t / 1e9);
        }
        let t_f32 = time(&|| {
            std::hint::black_box(af.dot(&bf));
        });
        let t_naive = if macs < 1e8 {
            time(&|| {
                std::hint::black_box(matmul_naive(a.view(), b.view()).unwrap());
            })
        } else {
            f64::NAN
        };
        println!(
            "{m}x{k}x{n}: u64 gemm {:.2} GMAC/s, naive {:.2} GMAC/s, f32 dot {:.2} GMAC/s",
            macs / t_fast / 1e9,
            macs / t_naive / 1e9,
            macs / t_f32 / 1e9
        );
    }
}

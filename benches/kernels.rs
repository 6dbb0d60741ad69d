//! Local kernels: u64 ring GEMM and conv2d against their f32 counterparts on the same shapes,
//! a Beaver product's two convolution terms (two convolutions and a sum, against one of the
//! operands concatenated), PRG expansion, and SecureNN's comparison kernels (a server's masked
//! PrivateCompare, the helper's share of bits and its zero test) on the comparisons of network
//! C, and elementwise ring operations with a broadcast operand (a scalar, a trailing
//! `[2, 1]`) against two operands of one shape. Throughput is in multiply-accumulates, words
//! or Z_p elements per second.
//!
//! `cargo bench --bench kernels` (about half a minute).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::{Array2, Array4};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shareflow_ops::im2col::Padding;
use shareflow_ops::prg::{Domain, Prg};
use shareflow_ops::{plain, ring};

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
}

fn matmul(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    // (m, k, n): a dense layer 784 -> 128 on a batch of 128, and a square product.
    for (m, k, n) in [(128, 784, 128), (512, 512, 512)] {
        let a = Array2::from_shape_fn((m, k), |_| rng.random::<u64>());
        let b = Array2::from_shape_fn((k, n), |_| rng.random::<u64>());
        let af = a.mapv(|v| (v % 17) as f32 - 8.0);
        let bf = b.mapv(|v| (v % 17) as f32 - 8.0);
        let name = format!("matmul_{m}x{k}x{n}");
        let mut g = c.benchmark_group(&name);
        g.throughput(Throughput::Elements((m * k * n) as u64));
        g.bench_function("u64_gemm", |bch| {
            bch.iter(|| black_box(ring::matmul_2d(a.view(), b.view())))
        });
        if m * k * n <= 1 << 24 {
            g.bench_function("u64_naive", |bch| {
                bch.iter(|| black_box(ring::matmul_naive(a.view(), b.view())))
            });
        }
        g.bench_function("f32_dot", |bch| bch.iter(|| black_box(af.dot(&bf))));
        g.finish();
    }
}

fn conv2d(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(2);
    // LeNet's second convolution: 12x12x20 -> 8x8x50 with 5x5 filters, batch of 8.
    let (n, h, w, ci, kh, kw, co) = (8, 12, 12, 20, 5, 5, 50);
    let (oh, ow) = (h - kh + 1, w - kw + 1);
    let x = Array4::from_shape_fn((n, h, w, ci), |_| rng.random::<u64>());
    let f = Array4::from_shape_fn((kh, kw, ci, co), |_| rng.random::<u64>());
    let xf = x.mapv(|v| (v % 17) as f32 - 8.0);
    let ff = f.mapv(|v| (v % 17) as f32 - 8.0);
    let (xd, fd) = (x.into_dyn(), f.into_dyn());
    let mut g = c.benchmark_group("conv2d_lenet2_b8");
    g.throughput(Throughput::Elements(
        (n * oh * ow * co * kh * kw * ci) as u64,
    ));
    g.bench_function("u64_im2col_gemm", |bch| {
        bch.iter(|| black_box(ring::conv2d(&xd, &fd, (1, 1), Padding::Valid)))
    });
    g.bench_function("f32_plain", |bch| {
        bch.iter(|| black_box(plain::conv2d(xf.view(), ff.view(), (1, 1), Padding::Valid)))
    });
    g.finish();
}

/// A Beaver product's two convolution terms on a server, `E * G + a * F`, on network B's
/// first convolution at batch 128: two convolutions and a sum, against one convolution of the
/// inputs and filters concatenated along the input channels.
fn conv2d_pair(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(7);
    let (n, h, w, ci, kh, kw, co) = (128, 28, 28, 1, 5, 5, 16);
    let r4 = |rng: &mut StdRng, s: (usize, usize, usize, usize)| {
        Array4::from_shape_fn(s, |_| rng.random::<u64>()).into_dyn()
    };
    let (e, a) = (r4(&mut rng, (n, h, w, ci)), r4(&mut rng, (n, h, w, ci)));
    let (gk, fk) = (
        r4(&mut rng, (kh, kw, ci, co)),
        r4(&mut rng, (kh, kw, ci, co)),
    );
    // The filters are concatenated once (they are small, and setup values when serving).
    let w2 = ring::concat(&gk, &fk, 2).unwrap();
    let mut g = c.benchmark_group("conv2d_pair_b_conv1_b128");
    g.bench_function("two_and_add", |bch| {
        bch.iter(|| {
            let p = ring::conv2d(&e, &gk, (1, 1), Padding::Valid).unwrap();
            let q = ring::conv2d(&a, &fk, (1, 1), Padding::Valid).unwrap();
            black_box(ring::add(&p, &q).unwrap())
        })
    });
    g.bench_function("concatenated", |bch| {
        bch.iter(|| {
            let x = ring::concat(&e, &a, 3).unwrap();
            black_box(ring::conv2d(&x, &w2, (1, 1), Padding::Valid).unwrap())
        })
    });
    g.finish();
}

fn prg(c: &mut Criterion) {
    let seed = [3u8; 32];
    let words = 1_000_000usize;
    let mut g = c.benchmark_group("prg");
    g.throughput(Throughput::Elements(words as u64));
    g.bench_with_input(BenchmarkId::new("ring_words", words), &words, |bch, &n| {
        bch.iter(|| black_box(Prg::new(&seed, Domain::new(1, 2, 3)).ring(&[n])))
    });
    g.bench_with_input(BenchmarkId::new("bits", words), &words, |bch, &n| {
        bch.iter(|| black_box(Prg::new(&seed, Domain::new(1, 2, 4)).bits(&[n])))
    });
    g.finish();
}

fn securenn(c: &mut Criterion) {
    // Network C compares about 15,000 words per image, 63 bits each.
    let (words, n) = (15_000usize, 63usize);
    let f = ring::PrimeField::new(67).unwrap();
    let seed = [5u8; 32];
    let mut prg = Prg::new(&seed, Domain::new(1, 2, 3));
    let x = prg.ring(&[words]).unwrap();
    let r = prg.ring(&[words]).unwrap();
    let beta = prg.bits(&[words]).unwrap();
    let share = prg.field(f, &[words, n]).unwrap();
    let mut g = c.benchmark_group("securenn_c_image");
    g.throughput(Throughput::Elements((words * n) as u64));
    g.bench_function("private_compare_masked", |bch| {
        bch.iter(|| {
            let mut common = Prg::new(&seed, Domain::new(1, 2, 9));
            black_box(ring::private_compare_masked(
                f,
                0,
                &share,
                &r,
                &beta,
                &mut common,
            ))
        })
    });
    g.bench_function("bits_minus", |bch| {
        bch.iter(|| black_box(ring::bits_minus(f, &x, &share)))
    });
    g.bench_function("any_zero_sum", |bch| {
        bch.iter(|| black_box(ring::any_zero_sum(f, &share, &share)))
    });
    let packed = ring::pack_small(share.as_slice().unwrap_or_default(), 7);
    g.bench_function("pack_small", |bch| {
        bch.iter(|| black_box(ring::pack_small(share.as_slice().unwrap_or_default(), 7)))
    });
    g.bench_function("unpack_small", |bch| {
        bch.iter(|| black_box(ring::unpack_small(&packed, 7, words * n)))
    });
    g.bench_function("field_expand", |bch| {
        bch.iter(|| black_box(Prg::new(&seed, Domain::new(1, 2, 8)).field(f, &[words, n])))
    });
    g.finish();
    // The bit shares of C's first max pool at batch 128: 737,280 differences of 48 bits in Z_53.
    // The tools' processes keep freed memory (`tools/src/alloc.rs`); to time this as they run
    // it rather than glibc's page faults, set
    // GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=4294967295
    let f53 = ring::PrimeField::new(53).unwrap();
    let shape = [737_280usize, 48];
    let mut g = c.benchmark_group("securenn_c_batch128");
    g.sample_size(10);
    g.throughput(Throughput::Elements((shape[0] * shape[1]) as u64));
    g.bench_function("field_expand", |bch| {
        bch.iter(|| black_box(Prg::new(&seed, Domain::new(1, 2, 8)).field(f53, &shape)))
    });
    // PrivateCompare of those words as the parties run it: each server's masked shares
    // packed for the wire, and the helper's search for a zero in the two packed messages;
    // unpacked kernels plus the packing against the kernels that pack and unpack by block.
    let bits = f53.bits();
    let x = Prg::new(&seed, Domain::new(1, 2, 8))
        .field(f53, &shape)
        .unwrap();
    let mut prg = Prg::new(&seed, Domain::new(1, 2, 4));
    let r = prg.ring(&shape[..1]).unwrap();
    let beta = prg.bits(&shape[..1]).unwrap();
    let common = || Prg::new(&seed, Domain::new(1, 2, 9));
    g.bench_function("compare_then_pack", |bch| {
        bch.iter(|| {
            let d = ring::private_compare_masked(f53, 0, &x, &r, &beta, &mut common()).unwrap();
            black_box(ring::pack_small(d.as_slice().unwrap_or_default(), bits))
        })
    });
    g.bench_function("compare_packed", |bch| {
        bch.iter(|| {
            black_box(ring::private_compare_packed(
                f53,
                0,
                &x,
                &r,
                &beta,
                &mut common(),
            ))
        })
    });
    let sent: Vec<Vec<u8>> = (0..2)
        .map(|party| {
            ring::private_compare_packed(f53, party, &x, &r, &beta, &mut common()).unwrap()
        })
        .collect();
    g.bench_function("unpack_then_any_zero_sum", |bch| {
        bch.iter(|| {
            let len = shape[0] * shape[1];
            let [a, b] = [0, 1].map(|k| {
                let v = ring::unpack_small(&sent[k], bits, len).unwrap_or_default();
                ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), v).unwrap()
            });
            black_box(ring::any_zero_sum(f53, &a, &b))
        })
    });
    g.bench_function("any_zero_sum_packed", |bch| {
        bch.iter(|| {
            black_box(ring::any_zero_sum_packed(
                f53, shape[1], &sent[0], &sent[1], shape[0],
            ))
        })
    });
    // The same comparisons by the carry circuit: a server's kernels (c's planes, the first
    // level, each level's openings and combination, the message to the helper; the other
    // server's openings stood in by its own) against `compare_packed`, and the helper's (r's
    // planes and pairs, each level's products; server 1's masks stood in by server 0's)
    // against its Z_p bit shares and search.
    let n = shape[1];
    let words = shape[0];
    let r_words = r.as_slice().unwrap_or_default();
    let c_words: Vec<u64> = r_words.iter().map(|w| w.rotate_left(9)).collect();
    let blocks = ring::plane_blocks(words);
    let mut draw = |k: usize| prg.ring(&[k]).unwrap().into_raw_vec_and_offset().0;
    let rho = draw(blocks * (n + n / 2));
    let levels = ring::carry_levels(n);
    let masks: Vec<Vec<u64>> = levels
        .iter()
        .map(|&g| draw(blocks * ring::carry_opened(g)))
        .collect();
    let products: Vec<Vec<u64>> = levels
        .iter()
        .map(|&g| draw(blocks * ring::carry_products(g)))
        .collect();
    let u = draw(blocks);
    let beta_bits = beta.as_slice().unwrap_or_default();
    g.bench_function("carry_server", |bch| {
        bch.iter(|| {
            let planes = ring::bit_planes(&c_words, n);
            let mut state = ring::carry_leaves(0, &planes, &rho, n).unwrap();
            for (i, &groups) in levels.iter().enumerate() {
                let open = ring::carry_open(&state, groups, &masks[i]).unwrap();
                state =
                    ring::carry_combine(0, &state, groups, &masks[i], &products[i], &open, &open)
                        .unwrap();
            }
            black_box(ring::carry_out(0, &state, beta_bits, &u).unwrap())
        })
    });
    g.bench_function("carry_helper", |bch| {
        bch.iter(|| {
            let planes = ring::carry_pairs(&ring::bit_planes(r_words, n), n).unwrap();
            let dealt: Vec<_> = levels
                .iter()
                .enumerate()
                .map(|(i, &groups)| {
                    ring::carry_deal(groups, &masks[i], &masks[i], &products[i]).unwrap()
                })
                .collect();
            black_box((planes, dealt))
        })
    });
    g.finish();
}

/// The comparison tree's shapes of C's first max pool (737,280 words): a public scalar (a
/// truncation's bias, a DReLU bit's `1 - 2t`) and a trailing operand against a same-shape one,
/// into a new buffer and in place.
fn elementwise(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(5);
    let shape = [128, 12, 12, 20, 2, 1];
    let words: usize = shape.iter().product();
    let a = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&shape), |_| rng.random::<u64>());
    let b = a.mapv(|v| v.rotate_left(7));
    let scalar = ndarray::arr0(rng.random::<u64>()).into_dyn();
    let tail = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[2, 1]), |_| rng.random::<u64>());
    let mut g = c.benchmark_group("elementwise");
    g.throughput(Throughput::Elements(words as u64));
    g.bench_function("sub_same_shape", |bch| {
        bch.iter(|| black_box(ring::sub(&a, &b).unwrap()))
    });
    g.bench_function("sub_from_scalar", |bch| {
        bch.iter(|| black_box(ring::sub(&scalar, &a).unwrap()))
    });
    g.bench_function("add_trailing", |bch| {
        bch.iter(|| black_box(ring::add(&a, &tail).unwrap()))
    });
    let mut x = a.clone();
    g.bench_function("add_assign_scalar", |bch| {
        bch.iter(|| ring::add_assign(&mut x, &scalar).unwrap())
    });
    g.bench_function("add_assign_same_shape", |bch| {
        bch.iter(|| ring::add_assign(&mut x, &b).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = kernels;
    config = config();
    targets = matmul, conv2d, conv2d_pair, prg, securenn, elementwise
}
criterion_main!(kernels);

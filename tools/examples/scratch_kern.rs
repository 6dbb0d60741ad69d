// SCRATCH: single kernels, ns per element (delete before commit).
use std::time::Instant;
use ndarray::{ArrayD, IxDyn};
use shareflow_ops::prg::{Domain, Prg};
use shareflow_ops::ring::{self, PrimeField};

fn t<R>(name: &str, n: usize, mut f: impl FnMut() -> R) {
    let mut v = vec![];
    for _ in 0..5 { let s = Instant::now(); std::hint::black_box(f()); v.push(s.elapsed().as_secs_f64()); }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("{name:<20} {:>7.2} ns/elem  ({:.1} ms)", v[2] * 1e9 / n as f64, v[2] * 1e3);
}

fn main() {
    let words: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(100_000);
    let n = words * 64;
    let f = PrimeField::new(67).unwrap();
    let mut prg = Prg::new(&[1; 32], Domain::new(1, 2, 3));
    let x = prg.ring(&[words]).unwrap();
    let r = prg.ring(&[words]).unwrap();
    let beta = prg.bits(&[words]).unwrap();
    let xb = prg.field(f, &[words, 64]).unwrap();
    let yb = prg.field(f, &[words, 64]).unwrap();
    t("prg.field", n, || prg.field(f, &[words, 64]).unwrap());
    t("prg.bits", words, || prg.bits(&[words]).unwrap());
    t("prg.odd_ring", words, || prg.odd_ring(&[words]).unwrap());
    t("prg.ring", words, || prg.ring(&[words]).unwrap());
    t("bit_decompose", n, || ring::bit_decompose(&x));
    t("compare_bits", n, || ring::compare_bits(f, 0, &xb, &r, &beta, &mut prg).unwrap());
    t("mul_random_nonzero", n, || ring::mul_random_nonzero(f, &xb, &mut prg).unwrap());
    t("permute_random", n, || ring::permute_random(&xb, &mut prg).unwrap());
    t("field.sub", n, || f.sub(&xb, &yb).unwrap());
    t("field.add", n, || f.add(&xb, &yb).unwrap());
    t("any_zero", n, || ring::any_zero(&xb).unwrap());
    let _ = ArrayD::<u8>::zeros(IxDyn(&[1]));
}

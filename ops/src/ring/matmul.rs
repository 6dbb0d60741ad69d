//! Matrix product over Z_2^64: a blocked, packed, rayon-parallel GEMM with wrapping arithmetic.
//!
//! The product `C = A · B` (`m x k` times `k x n`) is cut into tasks of at most [`MC`] rows;
//! each task runs on one rayon worker (on the calling thread below [`par::MATMUL_MACS`]
//! multiply-adds) and writes straight into its rows of `C`, which are never zeroed first (the
//! first step of `k` stores, the others add), with blocks of fewer rows where that gives
//! every worker two tasks. Only a parallel product whose blocks would have fewer than
//! `MIN_TASK_ROWS` rows cuts the columns into groups instead, each task into a buffer of its
//! own that is then copied into `C`. `B` is packed once into panels of [`NR`] columns, `KC`
//! deep, so that a panel stays in L1; each task packs its rows of `A` into panels of [`MR`]
//! rows. The micro-kernel keeps an `MR x NR` tile of accumulators in registers and walks `k`
//! once.
//! `A` may be a convolution's `im2col` matrix ([`Tall::Im2col`]): each task then makes only
//! its own rows of it, and the whole matrix is never in memory.
//!
//! With fewer than `2 * MR` rows (a batch of one), packing `B` does not pay and the product
//! is computed row by row, vectorised along the columns, over column blocks (in parallel from
//! [`par::MATMUL_MACS`] multiply-adds).
//!
//! There is no 64-bit SIMD multiply before AVX-512DQ, so the kernels are compiled three times
//! (AVX-512DQ/VL, AVX2, baseline): AVX-512 where the CPU has it, otherwise the faster of AVX2
//! and baseline on this CPU, timed once per process ([`Kernel::detect`]).
//! On a 2-vCPU Xeon with AVX-512 the tile runs at the `vpmullq` throughput: about 6.8 GMAC/s
//! on one thread, 8-9 GMAC/s on two, against 2 GMAC/s for the naive loop and ~33 GMAC/s
//! for single-threaded f32 `dot` (FMA) on the same shapes.

use std::mem::MaybeUninit;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ndarray::{Array2, ArrayD, ArrayRefD, ArrayView2, Ix2};
use rayon::prelude::*;

use super::kernels::{tile_portable, Tile};
use super::pack::{pack_a, PackedB, Tall};
use crate::{par, OpsError, Result};

/// Rows of the register tile.
pub const MR: usize = 4;
/// Columns of the register tile (one AVX-512 register of `u64`, two AVX2 registers).
pub const NR: usize = 8;
/// Depth of a packed panel: `KC x NR` words of `B` (16 KiB) stay in L1.
pub const KC: usize = 256;
/// Rows of `A` per task: `MC x KC` words (128 KiB) stay in L2.
pub const MC: usize = 64;

/// The matrix product of two 2-D ring tensors, wrapping mod 2^64.
///
/// Errors: [`OpsError::InvalidArgument`] if an operand is not 2-D,
/// [`OpsError::ShapeMismatch`] if the inner dimensions differ.
pub fn matmul(a: &ArrayRefD<u64>, b: &ArrayRefD<u64>) -> Result<ArrayD<u64>> {
    let a2 = as_2d("matmul", a)?;
    let b2 = as_2d("matmul", b)?;
    Ok(matmul_2d(a2, b2)?.into_dyn())
}

fn as_2d<'a>(op: &'static str, x: &'a ArrayRefD<u64>) -> Result<ArrayView2<'a, u64>> {
    x.view()
        .into_dimensionality::<Ix2>()
        .map_err(|_| OpsError::InvalidArgument {
            op,
            message: format!("expected a 2-D operand, got shape {:?}", x.shape()),
        })
}

/// [`matmul`] on 2-D views, any memory layout.
pub fn matmul_2d(a: ArrayView2<'_, u64>, b: ArrayView2<'_, u64>) -> Result<Array2<u64>> {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    if k != k2 {
        return Err(OpsError::ShapeMismatch {
            op: "matmul",
            left: a.shape().to_vec(),
            right: b.shape().to_vec(),
        });
    }
    if m == 0 || n == 0 || k == 0 {
        return Ok(Array2::zeros((m, n)));
    }
    let a = super::shape::standard_2d(a);
    let b = super::shape::standard_2d(b);
    // Both are standard layout now, so `as_slice` cannot fail; fall back to the naive loop
    // rather than panicking if it ever did.
    let (Some(a_s), Some(b_s)) = (a.as_slice(), b.as_slice()) else {
        return matmul_naive(a.view(), b.view());
    };
    let c = gemm(Kernel::detect(), Tall::Matrix(a_s), b_s, m, k, n);
    Array2::from_shape_vec((m, n), c).map_err(|e| OpsError::InvalidArgument {
        op: "matmul",
        message: e.to_string(),
    })
}

/// The textbook triple loop (`i, k, j` order), single-threaded: the reference for tests and
/// benchmarks.
pub fn matmul_naive(a: ArrayView2<'_, u64>, b: ArrayView2<'_, u64>) -> Result<Array2<u64>> {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    if k != k2 {
        return Err(OpsError::ShapeMismatch {
            op: "matmul",
            left: a.shape().to_vec(),
            right: b.shape().to_vec(),
        });
    }
    let mut c = Array2::<u64>::zeros((m, n));
    for i in 0..m {
        for p in 0..k {
            let aip = a[[i, p]];
            for j in 0..n {
                c[[i, j]] = c[[i, j]].wrapping_add(aip.wrapping_mul(b[[p, j]]));
            }
        }
    }
    Ok(c)
}

/// One task: rows `i0..i0+mc` and panels `p0..p1` of `C`.
#[derive(Clone, Copy)]
struct Task {
    i0: usize,
    mc: usize,
    p0: usize,
    p1: usize,
}

impl Task {
    /// The task's columns of an `n`-column product.
    fn width(&self, n: usize) -> usize {
        (self.p1 * NR).min(n) - self.p0 * NR
    }
}

/// Columns `j0..j0+w` of a product of `m x k` and `k x n` matrices.
#[derive(Clone, Copy)]
struct Cols {
    m: usize,
    k: usize,
    n: usize,
    j0: usize,
    w: usize,
}

/// Below this many rows of `A`, packing `B` does not pay: [`gemm`] multiplies row by row.
const FEW_ROWS: usize = 2 * MR;
/// The fewest rows of a task that owns whole rows of `C`: below, tasks split the columns
/// instead (each would otherwise read all of `B` for a few rows).
const MIN_TASK_ROWS: usize = 4 * MR;
/// Column block of the row-by-row path.
const ROW_PATH_COLS: usize = 256;

/// `C = A B` of row-major `A` (`m x k`) and `B` (`k x n`), with the given kernel.
pub(crate) fn gemm(
    kernel: Kernel,
    a: Tall<'_>,
    b: &[u64],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<u64> {
    if k == 0 {
        return vec![0u64; m * n];
    }
    if m < FEW_ROWS {
        let mut buf = a.buffer(m, k);
        return gemm_few_rows(kernel, a.block(0, m, k, &mut buf), b, m, k, n);
    }
    let packed = PackedB::new(b, k, n);
    let panels = packed.n_pad / NR;
    let parallel = m.saturating_mul(k).saturating_mul(n) >= par::MATMUL_MACS;
    let threads = if parallel {
        rayon::current_num_threads().max(1)
    } else {
        1
    };
    // Enough tasks to keep every worker busy: blocks of fewer rows, down to
    // `MIN_TASK_ROWS`, before groups of columns.
    let rows = if threads == 1 {
        MC
    } else {
        m.div_ceil(2 * threads).next_multiple_of(MR).min(MC)
    };
    if threads == 1 || rows >= MIN_TASK_ROWS {
        // Each task owns whole rows of `C`, all columns, and writes them in place.
        let run = |(i, out): (usize, &mut [MaybeUninit<u64>])| {
            let t = Task {
                i0: i * rows,
                mc: out.len() / n,
                p0: 0,
                p1: panels,
            };
            kernel.run(a, &packed, t, out, n);
        };
        return written(m * n, |c| {
            if parallel {
                c.par_chunks_mut(rows * n).enumerate().for_each(run);
            } else {
                c.chunks_mut(rows * n).enumerate().for_each(run);
            }
        });
    }
    // Few rows: each task a block of rows and a group of columns, into a buffer of its own.
    let row_blocks = m.div_ceil(MC);
    let col_groups = (2 * threads).div_ceil(row_blocks).clamp(1, panels);
    let panels_per_group = panels.div_ceil(col_groups);
    let mut tasks = Vec::with_capacity(row_blocks * col_groups);
    for rb in 0..row_blocks {
        let i0 = rb * MC;
        let mut p0 = 0;
        while p0 < panels {
            let p1 = (p0 + panels_per_group).min(panels);
            tasks.push(Task {
                i0,
                mc: MC.min(m - i0),
                p0,
                p1,
            });
            p0 = p1;
        }
    }
    let results = par::map_vec(tasks, parallel, |t| {
        let w = t.width(n);
        (
            t,
            written(t.mc * w, |buf| kernel.run(a, &packed, t, buf, w)),
        )
    });
    let mut c = vec![0u64; m * n];
    for (t, buf) in results {
        let j0 = t.p0 * NR;
        let w = t.width(n);
        for r in 0..t.mc {
            let dst = (t.i0 + r) * n + j0;
            c[dst..dst + w].copy_from_slice(&buf[r * w..r * w + w]);
        }
    }
    c
}

/// Rows `i0..i0 + mc` of `A B` (all columns, an `mc x n` row-major buffer) with `B` packed:
/// for a caller that uses the product a block of rows at a time.
pub(crate) fn gemm_rows(
    kernel: Kernel,
    a: Tall<'_>,
    b: &PackedB,
    i0: usize,
    mc: usize,
) -> Vec<u64> {
    if b.k == 0 {
        return vec![0u64; mc * b.n];
    }
    let t = Task {
        i0,
        mc,
        p0: 0,
        p1: b.n_pad / NR,
    };
    written(mc * b.n, |out| kernel.run(a, b, t, out, b.n))
}

/// A vector of `len` words made by `write`, which must write every one of them: the blocks
/// of tasks that cover the product whole, with at least one step of `k` (each task stores
/// its block at the first step; see [`task_generic`]). The words are never zeroed first.
fn written(len: usize, write: impl FnOnce(&mut [MaybeUninit<u64>])) -> Vec<u64> {
    let mut v = Vec::with_capacity(len);
    write(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: `write` initialised the first `len` elements (this function's contract, which
    // its three callers keep: their tasks' blocks tile the buffer and `k > 0`).
    unsafe { v.set_len(len) };
    v
}

/// A few rows: `c[i, :] += a[i, p] * b[p, :]`, vectorised along the columns, over blocks of
/// columns (in parallel for large products).
fn gemm_few_rows(kernel: Kernel, a: &[u64], b: &[u64], m: usize, k: usize, n: usize) -> Vec<u64> {
    let blocks: Vec<usize> = (0..n.div_ceil(ROW_PATH_COLS)).collect();
    let parallel = m.saturating_mul(k).saturating_mul(n) >= par::MATMUL_MACS;
    let blocks = par::map_vec(blocks, parallel, |blk| {
        let j0 = blk * ROW_PATH_COLS;
        let w = ROW_PATH_COLS.min(n - j0);
        (j0, kernel.rows(a, b, Cols { m, k, n, j0, w }))
    });
    let mut c = vec![0u64; m * n];
    for (j0, buf) in blocks {
        let w = buf.len() / m;
        for i in 0..m {
            c[i * n + j0..i * n + j0 + w].copy_from_slice(&buf[i * w..(i + 1) * w]);
        }
    }
    c
}

/// Columns `j0..j0+w` of `A B`, as an `m x w` row-major buffer.
#[inline(always)]
fn rows_generic(a: &[u64], b: &[u64], c: Cols) -> Vec<u64> {
    let Cols { m, k, n, j0, w } = c;
    let mut out = vec![0u64; m * w];
    for (i, out_row) in out.chunks_exact_mut(w).enumerate() {
        for (p, &aip) in a[i * k..(i + 1) * k].iter().enumerate() {
            let b_row = &b[p * n + j0..p * n + j0 + w];
            for (o, &bv) in out_row.iter_mut().zip(b_row) {
                *o = o.wrapping_add(aip.wrapping_mul(bv));
            }
        }
    }
    out
}

/// The instruction set the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// AVX-512F, DQ and VL (64-bit lane multiply).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// AVX2 (32x32->64 and 32-bit multiplies).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// Portable Rust.
    Portable,
}

impl Kernel {
    /// The fastest kernel on this CPU: AVX-512 where the CPU has it; otherwise the faster
    /// of AVX2 and the portable tile, timed once per process ([`fastest`]). AVX2 has no
    /// 64-bit lane multiply, and on some CPUs its 32-bit multiplies are slower than the
    /// scalar one (an AMD EPYC with AVX2: 0.65 against 0.52 ns per multiply-add on one
    /// core, where an Intel core with two vector multiply ports favours AVX2). Every kernel
    /// gives the same words, so the choice changes the speed only.
    pub(crate) fn detect() -> Self {
        static FASTEST: OnceLock<Kernel> = OnceLock::new();
        *FASTEST.get_or_init(|| fastest(&Self::supported()))
    }

    /// Every kernel this CPU supports, best first.
    pub(crate) fn supported() -> Vec<Self> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                v.push(Kernel::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                v.push(Kernel::Avx2);
            }
        }
        v.push(Kernel::Portable);
        v
    }

    /// Writes the task's block of `A B` into `out`: its `mc` rows, `ld` words apart, from
    /// the task's first column (every word of the block, when `k > 0`).
    fn run(self, a: Tall<'_>, b: &PackedB, t: Task, out: &mut [MaybeUninit<u64>], ld: usize) {
        match self {
            // SAFETY: `supported` lists this variant only after checking at run time that the
            // CPU has the target features the function is compiled with.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { task_avx512(a, b, t, out, ld) },
            // SAFETY: as above, AVX2 was detected.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { task_avx2(a, b, t, out, ld) },
            Kernel::Portable => task_generic(a, b, t, out, ld, tile_portable),
        }
    }

    fn rows(self, a: &[u64], b: &[u64], c: Cols) -> Vec<u64> {
        match self {
            // SAFETY: as in `run`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { rows_avx512(a, b, c) },
            // SAFETY: as in `run`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { rows_avx2(a, b, c) },
            Kernel::Portable => rows_generic(a, b, c),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
fn task_avx512(a: Tall<'_>, b: &PackedB, t: Task, out: &mut [MaybeUninit<u64>], ld: usize) {
    task_generic(a, b, t, out, ld, |x, y| super::kernels::tile_avx512(x, y))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn task_avx2(a: Tall<'_>, b: &PackedB, t: Task, out: &mut [MaybeUninit<u64>], ld: usize) {
    task_generic(a, b, t, out, ld, |x, y| super::kernels::tile_avx2(x, y))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
fn rows_avx512(a: &[u64], b: &[u64], c: Cols) -> Vec<u64> {
    rows_generic(a, b, c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rows_avx2(a: &[u64], b: &[u64], c: Cols) -> Vec<u64> {
    rows_generic(a, b, c)
}

/// Writes the rows and panels of one task into `out` (`mc` rows, `ld` words apart, from the
/// task's first column): the first step of `k` stores every word of the block (the tiles of
/// its row panels and column panels cover it), the later ones add to them, so `out` need not
/// be initialised.
#[inline(always)]
fn task_generic(
    a: Tall<'_>,
    b: &PackedB,
    t: Task,
    out: &mut [MaybeUninit<u64>],
    ld: usize,
    tile: impl Fn(&[u64], &[u64]) -> Tile,
) {
    let k = b.k;
    let w = t.width(b.n);
    let m_panels = t.mc.div_ceil(MR);
    let mut a_pack = vec![0u64; m_panels * MR * KC.min(k)];
    let mut a_buf = a.buffer(t.mc, k);
    let a_rows = a.block(t.i0, t.mc, k, &mut a_buf);
    let mut k0 = 0;
    while k0 < k {
        let kc = KC.min(k - k0);
        pack_a(a_rows, k, 0, t.mc, k0, kc, &mut a_pack);
        for p in t.p0..t.p1 {
            let b_panel = b.panel(k0, kc, p);
            let jj = (p - t.p0) * NR;
            let cols = NR.min(w - jj);
            for mp in 0..m_panels {
                let a_panel = &a_pack[mp * kc * MR..(mp + 1) * kc * MR];
                let acc = tile(a_panel, b_panel);
                let rows = MR.min(t.mc - mp * MR);
                for (r, acc_row) in acc.iter().enumerate().take(rows) {
                    let dst = &mut out[(mp * MR + r) * ld + jj..][..cols];
                    if k0 == 0 {
                        for (d, s) in dst.iter_mut().zip(acc_row) {
                            d.write(*s);
                        }
                    } else {
                        for (d, s) in dst.iter_mut().zip(acc_row) {
                            // SAFETY: the first step of `k` (`k0 == 0`) wrote this word.
                            let v = unsafe { d.assume_init_mut() };
                            *v = v.wrapping_add(*s);
                        }
                    }
                }
            }
        }
        k0 += kc;
    }
}

/// The first of `kernels` (best first) if it is AVX-512; otherwise the one that computes a
/// `64 x 256 x 64` product fastest, on one thread (the least of three timings each, taken
/// in turn; a few milliseconds in all).
pub(crate) fn fastest(kernels: &[Kernel]) -> Kernel {
    let Some(&first) = kernels.first() else {
        return Kernel::Portable;
    };
    #[cfg(target_arch = "x86_64")]
    if first == Kernel::Avx512 {
        return first;
    }
    if kernels.len() == 1 {
        return first;
    }
    // Below par::MATMUL_MACS: one thread.
    let (m, k, n) = (64usize, 256usize, 64usize);
    let words = |len: usize, mul: u64| -> Vec<u64> {
        (0..len as u64).map(|i| i.wrapping_mul(mul)).collect()
    };
    let (a, b) = (
        words(m * k, 0x9e37_79b9_7f4a_7c15),
        words(k * n, 0xbf58_476d_1ce4_e5b9),
    );
    let mut best = vec![Duration::MAX; kernels.len()];
    for _ in 0..3 {
        for (kernel, best) in kernels.iter().zip(&mut best) {
            let start = Instant::now();
            std::hint::black_box(gemm(*kernel, Tall::Matrix(&a), &b, m, k, n));
            *best = (*best).min(start.elapsed());
        }
    }
    kernels
        .iter()
        .zip(&best)
        .min_by_key(|(_, t)| **t)
        .map_or(first, |(kernel, _)| *kernel)
}

//! The product `P^T Q` over Z_2^64 of two row-major matrices with many rows and few columns
//! (`k x m` and `k x n`, `k` in the tens of thousands, `m` and `n` in the tens or hundreds):
//! a convolution's filter gradient `im2col(x)^T dY`.
//!
//! [`super::matmul`] would need `P^T` in standard layout (a transpose of all of `P`), pack it
//! into panels once per group of columns, and could split the work only across the few
//! columns. Here the rows are cut into one range per rayon worker, each range is walked in
//! blocks of [`KB`] rows that are packed into the register tiles' panels as they are used,
//! and each worker sums its blocks' tiles into its own small `m x n` result; the results are
//! added at the end.

use super::kernels::{tile_portable, Tile};
use super::matmul::{Kernel, MR, NR};
use super::pack::Tall;
use crate::par;

/// Rows of `P` and `Q` per packed block: for `m = 500` the block of `P` (`KB x 500` words,
/// 500 KiB) stays in L2, a panel of `Q` (`KB x NR`, 8 KiB) in L1.
const KB: usize = 128;

/// `C = P^T Q` (`m x n`, row-major) of `P` (`k x m`) and `Q` (`k x n`, row-major), with the
/// given kernel.
pub(crate) fn gemm_tn(
    kernel: Kernel,
    p: Tall<'_>,
    q: Tall<'_>,
    k: usize,
    m: usize,
    n: usize,
) -> Vec<u64> {
    if m == 0 || n == 0 || k == 0 {
        return vec![0u64; m * n];
    }
    let n_pad = n.div_ceil(NR) * NR;
    let parallel = m.saturating_mul(k).saturating_mul(n) >= par::MATMUL_MACS;
    let parts = if parallel {
        rayon::current_num_threads().clamp(1, k.div_ceil(KB).max(1))
    } else {
        1
    };
    let rows_per_part = k.div_ceil(parts).div_ceil(KB) * KB;
    let ranges: Vec<(usize, usize)> = (0..parts)
        .map(|t| (t * rows_per_part, ((t + 1) * rows_per_part).min(k)))
        .filter(|(k0, k1)| k0 < k1)
        .collect();
    let sums = par::map_vec(ranges, parallel, |(k0, k1)| {
        kernel.rows_tn(p, q, Span { k0, k1, m, n })
    });
    let mut c = vec![0u64; m * n];
    for sum in sums {
        for (i, c_row) in c.chunks_exact_mut(n).enumerate() {
            let s_row = &sum[i * n_pad..i * n_pad + n];
            for (d, s) in c_row.iter_mut().zip(s_row) {
                *d = d.wrapping_add(*s);
            }
        }
    }
    c
}

/// Rows `k0..k1` of `P` (`k x m`) and `Q` (`k x n`).
#[derive(Clone, Copy)]
struct Span {
    k0: usize,
    k1: usize,
    m: usize,
    n: usize,
}

impl Kernel {
    /// `P[k0..k1]^T Q[k0..k1]` as an `m_pad x n_pad` row-major buffer (padded to whole tiles).
    fn rows_tn(self, p: Tall<'_>, q: Tall<'_>, r: Span) -> Vec<u64> {
        match self {
            // SAFETY: `Kernel::supported` lists this variant only after checking at run time
            // that the CPU has the target features the function is compiled with.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { rows_tn_avx512(p, q, r) },
            // SAFETY: as above, AVX2 was detected.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { rows_tn_avx2(p, q, r) },
            Kernel::Portable => rows_tn_generic(p, q, r, tile_portable),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
fn rows_tn_avx512(p: Tall<'_>, q: Tall<'_>, r: Span) -> Vec<u64> {
    rows_tn_generic(p, q, r, |x, y| super::kernels::tile_avx512(x, y))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rows_tn_avx2(p: Tall<'_>, q: Tall<'_>, r: Span) -> Vec<u64> {
    rows_tn_generic(p, q, r, |x, y| super::kernels::tile_avx2(x, y))
}

/// Blocks of [`KB`] rows: both blocks packed into panels, then every pair of panels through
/// the register tile, summed into the result.
#[inline(always)]
fn rows_tn_generic(
    p: Tall<'_>,
    q: Tall<'_>,
    r: Span,
    tile: impl Fn(&[u64], &[u64]) -> Tile,
) -> Vec<u64> {
    let Span { k0, k1, m, n } = r;
    let (m_panels, n_panels) = (m.div_ceil(MR), n.div_ceil(NR));
    let n_pad = n_panels * NR;
    let mut sum = vec![0u64; m_panels * MR * n_pad];
    let mut p_pack = vec![0u64; m_panels * MR * KB];
    let mut q_pack = vec![0u64; n_panels * NR * KB];
    let mut p_rows = p.buffer(KB, m);
    let mut q_rows = q.buffer(KB, n);
    let mut b0 = k0;
    while b0 < k1 {
        let kc = KB.min(k1 - b0);
        let p_block = p.block(b0, kc, m, &mut p_rows);
        pack_rows::<MR>(p_block, m, &mut p_pack[..m_panels * MR * kc]);
        let q_block = q.block(b0, kc, n, &mut q_rows);
        pack_rows::<NR>(q_block, n, &mut q_pack[..n_panels * NR * kc]);
        for (jp, q_panel) in q_pack[..n_panels * NR * kc]
            .chunks_exact(kc * NR)
            .enumerate()
        {
            for (ip, p_panel) in p_pack[..m_panels * MR * kc]
                .chunks_exact(kc * MR)
                .enumerate()
            {
                let acc = tile(p_panel, q_panel);
                for (rr, acc_row) in acc.iter().enumerate() {
                    let dst = &mut sum[(ip * MR + rr) * n_pad + jp * NR..][..NR];
                    for (d, s) in dst.iter_mut().zip(acc_row) {
                        *d = d.wrapping_add(*s);
                    }
                }
            }
        }
        b0 += kc;
    }
    sum
}

/// Packs a block of rows (`kc x cols`, row-major) into panels of `W` columns:
/// `dst[panel * kc * W + kk * W + c] = block[kk * cols + panel * W + c]`, zero padded past
/// the last column.
#[inline(always)]
fn pack_rows<const W: usize>(block: &[u64], cols: usize, dst: &mut [u64]) {
    if cols == 0 {
        return;
    }
    let kc = block.len() / cols;
    for (kk, row) in block.chunks_exact(cols).enumerate() {
        let (whole, tail) = row.as_chunks::<W>();
        for (panel, src) in whole.iter().enumerate() {
            if let Some(d) = dst[panel * kc * W + kk * W..].first_chunk_mut::<W>() {
                *d = *src;
            }
        }
        if !tail.is_empty() {
            let d = &mut dst[whole.len() * kc * W + kk * W..][..W];
            d[..tail.len()].copy_from_slice(tail);
            d[tail.len()..].fill(0);
        }
    }
}

//! Packing of the GEMM operands into the panel layouts the register tiles read.

use rayon::prelude::*;

use super::matmul::{KC, MR, NR};
use crate::im2col::{im2col_rows, Geometry};

/// `B` packed into `KC`-deep blocks of `NR`-column panels, zero padded to a multiple of `NR`.
pub(crate) struct PackedB {
    data: Vec<u64>,
    /// Rows of `B`.
    pub(crate) k: usize,
    /// Columns of `B`.
    pub(crate) n: usize,
    /// `n` rounded up to a multiple of `NR`.
    pub(crate) n_pad: usize,
}

impl PackedB {
    pub(crate) fn new(b: &[u64], k: usize, n: usize) -> Self {
        let n_pad = n.div_ceil(NR) * NR;
        let mut data = vec![0u64; k * n_pad];
        let pack = |(kb, block): (usize, &mut [u64])| {
            let k0 = kb * KC;
            let kc = block.len() / n_pad;
            for (p, panel) in block.chunks_exact_mut(kc * NR).enumerate() {
                let j0 = p * NR;
                let w = NR.min(n - j0);
                for (kk, dst) in panel.chunks_exact_mut(NR).enumerate() {
                    let row = (k0 + kk) * n;
                    dst[..w].copy_from_slice(&b[row + j0..row + j0 + w]);
                }
            }
        };
        // A copy, bound by memory.
        if data.len() >= crate::par::ELEMENTWISE {
            data.par_chunks_mut(KC * n_pad).enumerate().for_each(pack);
        } else {
            data.chunks_mut(KC * n_pad).enumerate().for_each(pack);
        }
        PackedB { data, k, n, n_pad }
    }

    /// The panel of columns `p*NR..` in the `k` block starting at `k0` with depth `kc`.
    pub(crate) fn panel(&self, k0: usize, kc: usize, p: usize) -> &[u64] {
        let start = k0 * self.n_pad + p * kc * NR;
        &self.data[start..start + kc * NR]
    }
}

/// Packs rows `i0..i0+mc`, columns `k0..k0+kc` of `A` (row-major, `k` columns) into panels
/// of `MR` rows: `dst[p*kc*MR + kk*MR + r] = A[i0 + p*MR + r, k0 + kk]`, zero padded.
#[inline(always)]
pub(crate) fn pack_a(
    a: &[u64],
    k: usize,
    i0: usize,
    mc: usize,
    k0: usize,
    kc: usize,
    dst: &mut [u64],
) {
    for (p, panel) in dst.chunks_exact_mut(kc * MR).enumerate() {
        if p * MR >= mc {
            break;
        }
        for r in 0..MR {
            let i = p * MR + r;
            if i < mc {
                let row = &a[(i0 + i) * k + k0..][..kc];
                for (kk, v) in row.iter().enumerate() {
                    panel[kk * MR + r] = *v;
                }
            } else {
                for kk in 0..kc {
                    panel[kk * MR + r] = 0;
                }
            }
        }
    }
}

/// A row-major operand with many rows: a matrix, or a convolution's `im2col` matrix, which
/// the products make a block of rows at a time as they pack it, so that it never goes
/// through memory whole.
#[derive(Clone, Copy)]
pub(crate) enum Tall<'a> {
    /// A row-major matrix.
    Matrix(&'a [u64]),
    /// The matrix `im2col(x)` of an input `x` (NHWC, standard layout) of geometry `g`.
    Im2col { x: &'a [u64], g: Geometry },
}

impl Tall<'_> {
    /// Rows `b0..b0 + rows` (`m` words each): a slice of the matrix, or made in `buf`.
    pub(crate) fn block<'b>(
        &'b self,
        b0: usize,
        rows: usize,
        m: usize,
        buf: &'b mut [u64],
    ) -> &'b [u64] {
        match self {
            Tall::Matrix(p) => &p[b0 * m..(b0 + rows) * m],
            Tall::Im2col { x, g } => {
                let out = &mut buf[..rows * m];
                im2col_rows(g, x, b0, out);
                out
            }
        }
    }

    /// The buffer [`Tall::block`] makes blocks of up to `rows` rows of `m` words in.
    pub(crate) fn buffer(&self, rows: usize, m: usize) -> Vec<u64> {
        match self {
            Tall::Matrix(_) => Vec::new(),
            Tall::Im2col { .. } => vec![0u64; rows * m],
        }
    }
}

//! Window geometry and the im2col / col2im transforms that turn a 2-D convolution into one GEMM.
//!
//! Layout is NHWC for activations and HWIO for filters. Padding follows TensorFlow: with
//! [`Padding::Same`] the output has `ceil(in / stride)` cells and, when the total padding is
//! odd, the extra cell goes at the bottom / right; with [`Padding::Valid`] there is no padding
//! and the output has `(in - k) / stride + 1` cells.
//!
//! [`im2col`] is generic over the element type (f32 for the plaintext kernels, `u64` for the
//! ring kernels); padding positions hold `T::default()`, i.e. zero.

use ndarray::{Array2, Array4, ArrayView2, ArrayView4};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{OpsError, Result};

/// Below this many output elements the transforms run on the calling thread.
const PAR_THRESHOLD: usize = crate::par::ELEMENTWISE;

/// How a window treats the border of its input, as in TensorFlow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Padding {
    /// No padding; windows lie entirely inside the input.
    Valid,
    /// Zero padding so that `out = ceil(in / stride)`; odd padding puts the extra cell after.
    Same,
}

impl Padding {
    /// Output length and padding before the first cell along one axis of length `input`, for
    /// a window of `k` cells moved by `stride`.
    pub fn out_and_pad(self, input: usize, k: usize, stride: usize) -> Result<(usize, usize)> {
        if k == 0 || stride == 0 {
            return Err(OpsError::InvalidArgument {
                op: "window",
                message: format!("window size {k} and stride {stride} must be positive"),
            });
        }
        match self {
            Padding::Valid => {
                if k > input {
                    return Err(OpsError::InvalidArgument {
                        op: "window",
                        message: format!(
                            "VALID window of size {k} does not fit an input of size {input}"
                        ),
                    });
                }
                Ok(((input - k) / stride + 1, 0))
            }
            Padding::Same => {
                let out = input.div_ceil(stride);
                let total = (out.saturating_sub(1) * stride + k).saturating_sub(input);
                Ok((out, total / 2))
            }
        }
    }
}

/// A 2-D window: size `kh x kw`, strides `sh, sw`, and its padding mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window2d {
    /// Window height.
    pub kh: usize,
    /// Window width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Padding mode.
    pub padding: Padding,
}

impl Window2d {
    /// A window of size `(kh, kw)` with strides `(sh, sw)`.
    pub fn new(kernel: (usize, usize), strides: (usize, usize), padding: Padding) -> Self {
        Window2d {
            kh: kernel.0,
            kw: kernel.1,
            sh: strides.0,
            sw: strides.1,
            padding,
        }
    }

    /// Output height and width for an input of `h x w`; errors on a zero size or stride, or a
    /// VALID window larger than the input.
    pub fn output_hw(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let (oh, _) = self.padding.out_and_pad(h, self.kh, self.sh)?;
        let (ow, _) = self.padding.out_and_pad(w, self.kw, self.sw)?;
        Ok((oh, ow))
    }

    /// Padding before the first row and column `(top, left)` for an input of `h x w`
    /// (zero for VALID, and for any invalid geometry).
    pub fn pads(&self, h: usize, w: usize) -> (usize, usize) {
        let top = self
            .padding
            .out_and_pad(h, self.kh, self.sh)
            .map_or(0, |(_, p)| p);
        let left = self
            .padding
            .out_and_pad(w, self.kw, self.sw)
            .map_or(0, |(_, p)| p);
        (top, left)
    }

    /// The full geometry for an NHWC input of this shape.
    pub(crate) fn geometry(&self, shape: [usize; 4]) -> Result<Geometry> {
        let [n, h, w, c] = shape;
        let (oh, ow) = self.output_hw(h, w)?;
        let (top, left) = self.pads(h, w);
        Ok(Geometry {
            n,
            h,
            w,
            c,
            oh,
            ow,
            top,
            left,
            kh: self.kh,
            kw: self.kw,
            sh: self.sh,
            sw: self.sw,
        })
    }
}

/// Resolved sizes of a window applied to one NHWC input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    /// Batch, input height, input width, channels.
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    /// Output height and width.
    pub oh: usize,
    pub ow: usize,
    /// Padding before the first row and the first column.
    pub top: usize,
    pub left: usize,
    /// Window size and strides.
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
}

impl Geometry {
    /// Input row of window row `ky` at output row `oy`, if it lies inside the input.
    #[inline]
    pub fn in_y(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.sh + ky)
            .checked_sub(self.top)
            .filter(|&y| y < self.h)
    }

    /// Input column of window column `kx` at output column `ox`, if it lies inside the input.
    #[inline]
    pub fn in_x(&self, ox: usize, kx: usize) -> Option<usize> {
        (ox * self.sw + kx)
            .checked_sub(self.left)
            .filter(|&x| x < self.w)
    }

    /// The window columns `kx0..kx1` of output column `ox` that lie inside the input, and the
    /// input column of `kx0`. The run is contiguous in both the input row and the im2col row.
    #[inline]
    pub fn x_run(&self, ox: usize) -> (usize, usize, usize) {
        let start = ox * self.sw;
        let kx0 = self.left.saturating_sub(start).min(self.kw);
        let kx1 = (self.w + self.left)
            .saturating_sub(start)
            .min(self.kw)
            .max(kx0);
        (kx0, kx1, (start + kx0).saturating_sub(self.left))
    }
}

/// Runs `f(index, chunk)` over the `chunk`-sized pieces of `data`, in parallel when large.
pub(crate) fn for_each_chunk<T: Send>(
    data: &mut [T],
    chunk: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    for_each_chunk_if(data.len() >= PAR_THRESHOLD, data, chunk, f);
}

/// Runs `f(index, chunk)` over the `chunk`-sized pieces of `data`, on rayon's threads if
/// `parallel`.
pub(crate) fn for_each_chunk_if<T: Send>(
    parallel: bool,
    data: &mut [T],
    chunk: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if chunk == 0 {
        return;
    }
    if parallel {
        data.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        data.chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
}

fn shape4<T>(x: &ArrayView4<T>) -> [usize; 4] {
    let d = x.dim();
    [d.0, d.1, d.2, d.3]
}

/// Unfolds the windows of an NHWC input into a matrix of `N*OH*OW` rows and `KH*KW*C` columns,
/// column order `(kh, kw, c)`, so that the product with an HWIO filter reshaped to
/// `[KH*KW*Cin, Cout]` is the convolution. Padding cells are `T::default()`.
pub fn im2col<T>(x: ArrayView4<T>, win: &Window2d) -> Result<Array2<T>>
where
    T: Copy + Default + Send + Sync,
{
    let g = win.geometry(shape4(&x))?;
    let cols = g.kh * g.kw * g.c;
    let rows = g.n * g.oh * g.ow;
    let xs = x.as_standard_layout();
    let src = xs.as_slice().ok_or_else(|| OpsError::InvalidArgument {
        op: "im2col",
        message: "input is not contiguous".into(),
    })?;
    let mut out = vec![T::default(); rows * cols];
    // One chunk per (image, output row): OW rows of the matrix.
    for_each_chunk(&mut out, g.ow * cols, |i, chunk| {
        im2col_rows(&g, src, i * g.ow, chunk)
    });
    Array2::from_shape_vec((rows, cols), out).map_err(|e| OpsError::InvalidArgument {
        op: "im2col",
        message: e.to_string(),
    })
}

/// Rows `r0..` of [`im2col`]'s matrix, as many as `out` holds (`KH*KW*C` words each), of the
/// input `src` (NHWC, standard layout) of geometry `g`: every word of `out` is written,
/// padding cells with `T::default()`. For a product that takes the matrix a block of rows at
/// a time, without making all of it.
pub(crate) fn im2col_rows<T: Copy + Default>(g: &Geometry, src: &[T], r0: usize, out: &mut [T]) {
    let seg = g.kw * g.c;
    let cols = g.kh * seg;
    if cols == 0 {
        return;
    }
    for (j, dst_row) in out.chunks_exact_mut(cols).enumerate() {
        let r = r0 + j;
        let (n, oy, ox) = (r / (g.oh * g.ow), (r / g.ow) % g.oh, r % g.ow);
        let (kx0, kx1, x0) = g.x_run(ox);
        for (ky, dst) in dst_row.chunks_exact_mut(seg).enumerate() {
            let Some(y) = g.in_y(oy, ky) else {
                dst.fill(T::default());
                continue;
            };
            let (d0, d1) = (kx0 * g.c, kx1 * g.c);
            let s = ((n * g.h + y) * g.w + x0) * g.c;
            dst[..d0].fill(T::default());
            dst[d0..d1].copy_from_slice(&src[s..s + d1 - d0]);
            dst[d1..].fill(T::default());
        }
    }
}

/// Adds rows `r0..` of a [`col2im_add`] matrix (`block`, `KH*KW*C` words a row, all rows of
/// one image) into that image (`img`, `H*W*C` words): for a product that makes the matrix a
/// block of rows at a time.
pub(crate) fn col2im_rows_add<T: Accumulate>(g: &Geometry, r0: usize, block: &[T], img: &mut [T]) {
    let ncols = g.kh * g.kw * g.c;
    if ncols == 0 {
        return;
    }
    for (j, row) in block.chunks_exact(ncols).enumerate() {
        let r = r0 + j;
        let (oy, ox) = ((r / g.ow) % g.oh, r % g.ow);
        let (kx0, kx1, x0) = g.x_run(ox);
        let len = (kx1 - kx0) * g.c;
        if len == 0 {
            continue;
        }
        for ky in 0..g.kh {
            let Some(y) = g.in_y(oy, ky) else { continue };
            let s = (ky * g.kw + kx0) * g.c;
            let d = (y * g.w + x0) * g.c;
            for (o, v) in img[d..d + len].iter_mut().zip(&row[s..s + len]) {
                o.accumulate(*v);
            }
        }
    }
}

/// The addition [`col2im_add`] accumulates with: `+` for floats, wrapping mod 2^64 for ring
/// words.
pub trait Accumulate: Copy + Default + Send + Sync {
    /// `*self += v`.
    fn accumulate(&mut self, v: Self);
}

impl Accumulate for f32 {
    #[inline]
    fn accumulate(&mut self, v: f32) {
        *self += v;
    }
}

impl Accumulate for u64 {
    #[inline]
    fn accumulate(&mut self, v: u64) {
        *self = self.wrapping_add(v);
    }
}

/// The adjoint of [`im2col`]: adds every entry of `cols` (`[N*OH*OW, KH*KW*C]`) back into the
/// input cell it was copied from, giving a tensor of `input_shape` (NHWC). Padding entries are
/// dropped. Used by the backward pass of conv2d (f32, and Z_2^64 with wrapping additions).
pub fn col2im_add<T: Accumulate>(
    cols: ArrayView2<T>,
    input_shape: [usize; 4],
    win: &Window2d,
) -> Result<Array4<T>> {
    let g = win.geometry(input_shape)?;
    let ncols = g.kh * g.kw * g.c;
    let rows = g.n * g.oh * g.ow;
    if cols.dim() != (rows, ncols) {
        return Err(OpsError::ShapeMismatch {
            op: "col2im",
            left: cols.shape().to_vec(),
            right: vec![rows, ncols],
        });
    }
    let cs = cols.as_standard_layout();
    let src = cs.as_slice().ok_or_else(|| OpsError::InvalidArgument {
        op: "col2im",
        message: "columns are not contiguous".into(),
    })?;
    let image = g.h * g.w * g.c;
    let mut out = vec![T::default(); g.n * image];
    // One chunk per image; the rows of one image only touch that image.
    let par = rows * ncols >= PAR_THRESHOLD;
    let per_image = g.oh * g.ow * ncols;
    let work = |n: usize, img: &mut [T]| {
        let block = &src[n * per_image..(n + 1) * per_image];
        col2im_rows_add(&g, n * g.oh * g.ow, block, img);
    };
    for_each_chunk_if(par, &mut out, image, work);
    Array4::from_shape_vec((g.n, g.h, g.w, g.c), out).map_err(|e| OpsError::InvalidArgument {
        op: "col2im",
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array};

    #[test]
    fn same_padding_follows_tensorflow() {
        // in 5, k 3, s 2: out 3, total pad 2, 1 before.
        assert_eq!(Padding::Same.out_and_pad(5, 3, 2).unwrap(), (3, 1));
        // in 4, k 3, s 2: out 2, total pad 1, 0 before (extra after).
        assert_eq!(Padding::Same.out_and_pad(4, 3, 2).unwrap(), (2, 0));
        // in 4, k 2, s 1: out 4, total pad 1, 0 before.
        assert_eq!(Padding::Same.out_and_pad(4, 2, 1).unwrap(), (4, 0));
        assert_eq!(Padding::Valid.out_and_pad(5, 3, 2).unwrap(), (2, 0));
        assert!(Padding::Valid.out_and_pad(2, 3, 1).is_err());
        assert!(Padding::Same.out_and_pad(2, 0, 1).is_err());
        assert!(Padding::Same.out_and_pad(2, 1, 0).is_err());
        let w = Window2d::new((3, 3), (2, 2), Padding::Same);
        assert_eq!(w.output_hw(5, 4).unwrap(), (3, 2));
        assert_eq!(w.pads(5, 4), (1, 0));
    }

    #[test]
    fn im2col_small_same() {
        // 1x2x2x1 input [[1,2],[3,4]], 2x2 window stride 1 SAME: pad 0 before, 1 after.
        let x = Array::from_shape_vec((1, 2, 2, 1), vec![1u64, 2, 3, 4]).unwrap();
        let win = Window2d::new((2, 2), (1, 1), Padding::Same);
        let c = im2col(x.view(), &win).unwrap();
        let expected = array![[1u64, 2, 3, 4], [2, 0, 4, 0], [3, 4, 0, 0], [4, 0, 0, 0]];
        assert_eq!(c, expected);
    }

    #[test]
    fn im2col_channels_order() {
        // 1x1x2x2 input, window 1x2 VALID: one row, columns (kw, c).
        let x = Array::from_shape_vec((1, 1, 2, 2), vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
        let win = Window2d::new((1, 2), (1, 1), Padding::Valid);
        let c = im2col(x.view(), &win).unwrap();
        assert_eq!(c, array![[1.0f32, 2.0, 3.0, 4.0]]);
    }

    /// im2col by the definition, with signed coordinates.
    fn naive(x: &Array4<u64>, win: &Window2d) -> Array2<u64> {
        let (n, h, w, c) = x.dim();
        let (oh, ow) = win.output_hw(h, w).unwrap();
        let (top, left) = win.pads(h, w);
        let mut out = Array2::zeros((n * oh * ow, win.kh * win.kw * c));
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for ky in 0..win.kh {
                        for kx in 0..win.kw {
                            let y = (oy * win.sh + ky) as i64 - top as i64;
                            let xx = (ox * win.sw + kx) as i64 - left as i64;
                            if y < 0 || xx < 0 || y >= h as i64 || xx >= w as i64 {
                                continue;
                            }
                            for ch in 0..c {
                                out[[(b * oh + oy) * ow + ox, (ky * win.kw + kx) * c + ch]] =
                                    x[[b, y as usize, xx as usize, ch]];
                            }
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn im2col_matches_definition() {
        for (shape, win) in [
            ([2, 5, 5, 2], Window2d::new((3, 3), (1, 1), Padding::Same)),
            ([1, 7, 6, 3], Window2d::new((3, 2), (2, 3), Padding::Same)),
            ([1, 7, 6, 1], Window2d::new((1, 1), (3, 4), Padding::Same)),
            ([2, 6, 7, 2], Window2d::new((4, 4), (3, 2), Padding::Same)),
            ([1, 9, 8, 2], Window2d::new((3, 5), (2, 2), Padding::Valid)),
            ([3, 4, 4, 1], Window2d::new((4, 4), (1, 1), Padding::Valid)),
            // Large enough for the parallel path.
            (
                [40, 16, 16, 3],
                Window2d::new((5, 5), (1, 1), Padding::Same),
            ),
        ] {
            let x = Array::from_shape_fn(shape, |(a, b, c, d)| {
                (((a * 31 + b) * 37 + c) * 41 + d) as u64 + 1
            });
            assert_eq!(im2col(x.view(), &win).unwrap(), naive(&x, &win), "{win:?}");
        }
    }

    #[test]
    fn col2im_is_adjoint_of_im2col() {
        // <im2col(x), c> == <x, col2im(c)> for arbitrary x and c.
        for (win, shape) in [
            (Window2d::new((3, 3), (1, 1), Padding::Same), [2, 5, 4, 3]),
            (Window2d::new((3, 2), (2, 2), Padding::Same), [1, 5, 5, 2]),
            (Window2d::new((2, 3), (2, 1), Padding::Valid), [2, 5, 6, 1]),
        ] {
            let len: usize = shape.iter().product();
            let x = Array::from_shape_fn(shape, |(a, b, c, d)| {
                ((a * 7 + b * 5 + c * 3 + d) % 11) as f32 - 5.0
            });
            let cx = im2col(x.view(), &win).unwrap();
            let c = Array2::from_shape_fn(cx.dim(), |(i, j)| ((i * 13 + j * 7) % 9) as f32 - 4.0);
            let back = col2im_add(c.view(), shape, &win).unwrap();
            let lhs: f32 = (&cx * &c).sum();
            let rhs: f32 = (&x * &back).sum();
            assert_eq!(lhs, rhs, "window {win:?} shape {shape:?} len {len}");
        }
    }

    #[test]
    fn col2im_rejects_wrong_shape() {
        let win = Window2d::new((2, 2), (1, 1), Padding::Valid);
        let c = Array2::<f32>::zeros((3, 4));
        assert!(matches!(
            col2im_add(c.view(), [1, 3, 3, 1], &win),
            Err(OpsError::ShapeMismatch { .. })
        ));
    }
}

//! 2-D max pooling on NHWC inputs, forward (with the argmax of every window) and backward.
//!
//! Padding follows TensorFlow; padded cells never win (they count as -inf). On ties the first
//! cell in scan order (row-major over the window) wins, as in TensorFlow.

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use crate::im2col::{Geometry, Window2d};
use crate::{OpsError, Result};

/// Marks an output whose window holds no input cell (impossible with TensorFlow padding, kept
/// so that such a window gets no gradient rather than a wrong one).
pub const NO_ARGMAX: usize = usize::MAX;

/// Work (input cells visited) below which one rayon task takes several images.
const MIN_TASK_WORK: usize = 1 << 14;

/// Result of [`maxpool2d`]: the pooled tensor and, for every output, the flat row-major index
/// into the input tensor `[N, H, W, C]` of the cell that won.
#[derive(Clone, Debug)]
pub struct MaxPoolOutput {
    /// Pooled values, `[N, OH, OW, C]`.
    pub y: Array4<f32>,
    /// Flat input index of the winner of each output, `[N, OH, OW, C]`.
    pub argmax: Array4<usize>,
}

pub(crate) fn dims4<T>(a: &ArrayView4<T>) -> [usize; 4] {
    let (a0, a1, a2, a3) = a.dim();
    [a0, a1, a2, a3]
}

/// Images per rayon task so that a task does at least [`MIN_TASK_WORK`].
pub(crate) fn images_per_task(work_per_image: usize) -> usize {
    (MIN_TASK_WORK / work_per_image.max(1)).max(1)
}

/// Max pooling of `x` `[N, H, W, C]` over windows `win`; returns `[N, OH, OW, C]` and the
/// argmax for [`maxpool2d_backward`].
pub fn maxpool2d(x: ArrayView4<f32>, win: &Window2d) -> Result<MaxPoolOutput> {
    let g: Geometry = win.geometry(dims4(&x))?;
    let xs = x.as_standard_layout();
    let src = xs.as_slice().ok_or_else(|| OpsError::InvalidArgument {
        op: "maxpool2d",
        message: "input is not contiguous".into(),
    })?;
    let out_img = g.oh * g.ow * g.c;
    let len = g.n * out_img;
    let mut y = vec![f32::NEG_INFINITY; len];
    let mut arg = vec![NO_ARGMAX; len];
    if out_img > 0 {
        let per_task = images_per_task(out_img * g.kh * g.kw);
        y.par_chunks_mut(out_img)
            .zip(arg.par_chunks_mut(out_img))
            .enumerate()
            .with_min_len(per_task)
            .for_each(|(n, (yi, ai))| pool_image(&g, src, n, yi, ai));
    }
    let shape = (g.n, g.oh, g.ow, g.c);
    let err = |e: ndarray::ShapeError| OpsError::InvalidArgument {
        op: "maxpool2d",
        message: e.to_string(),
    };
    Ok(MaxPoolOutput {
        y: Array4::from_shape_vec(shape, y).map_err(err)?,
        argmax: Array4::from_shape_vec(shape, arg).map_err(err)?,
    })
}

fn pool_image(g: &Geometry, src: &[f32], n: usize, y: &mut [f32], arg: &mut [usize]) {
    let c = g.c;
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let o = (oy * g.ow + ox) * c;
            let (best, who) = (&mut y[o..o + c], &mut arg[o..o + c]);
            for ky in 0..g.kh {
                let Some(iy) = g.in_y(oy, ky) else { continue };
                for kx in 0..g.kw {
                    let Some(ix) = g.in_x(ox, kx) else { continue };
                    let base = ((n * g.h + iy) * g.w + ix) * c;
                    for ch in 0..c {
                        let v = src[base + ch];
                        if who[ch] == NO_ARGMAX || v > best[ch] {
                            best[ch] = v;
                            who[ch] = base + ch;
                        }
                    }
                }
            }
            for (b, &w) in best.iter_mut().zip(who.iter()) {
                if w == NO_ARGMAX {
                    *b = 0.0;
                }
            }
        }
    }
}

/// Gradient of [`maxpool2d`]: scatters `dy` `[N, OH, OW, C]` to the input cells named by
/// `argmax`, giving a tensor of `x_shape`. Errors when shapes differ or an index does not lie in
/// its own image.
pub fn maxpool2d_backward(
    dy: ArrayView4<f32>,
    argmax: ArrayView4<usize>,
    x_shape: [usize; 4],
) -> Result<Array4<f32>> {
    let op = "maxpool2d_backward";
    let dshape = dims4(&dy);
    if dshape != dims4(&argmax) || dshape[0] != x_shape[0] || dshape[3] != x_shape[3] {
        return Err(OpsError::ShapeMismatch {
            op,
            left: dy.shape().to_vec(),
            right: argmax.shape().to_vec(),
        });
    }
    let dys = dy.as_standard_layout();
    let args = argmax.as_standard_layout();
    let (Some(d), Some(a)) = (dys.as_slice(), args.as_slice()) else {
        return Err(OpsError::InvalidArgument {
            op,
            message: "operands are not contiguous".into(),
        });
    };
    let [n, h, w, c] = x_shape;
    let in_img = h * w * c;
    let out_img = dshape[1] * dshape[2] * dshape[3];
    let mut dx = vec![0f32; n * in_img];
    if in_img > 0 && out_img > 0 {
        dx.par_chunks_mut(in_img)
            .zip(d.par_chunks(out_img).zip(a.par_chunks(out_img)))
            .enumerate()
            .with_min_len(images_per_task(out_img))
            .try_for_each(|(i, (dxi, (di, ai)))| {
                let start = i * in_img;
                for (&g, &idx) in di.iter().zip(ai) {
                    if idx == NO_ARGMAX {
                        continue;
                    }
                    let local =
                        idx.checked_sub(start)
                            .filter(|&l| l < in_img)
                            .ok_or_else(|| OpsError::InvalidArgument {
                                op,
                                message: format!("argmax {idx} is outside image {i}"),
                            })?;
                    dxi[local] += g;
                }
                Ok(())
            })?;
    }
    Array4::from_shape_vec((n, h, w, c), dx).map_err(|e| OpsError::InvalidArgument {
        op,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im2col::Padding;
    use crate::plain::fixtures::{image, p4, q5};
    use crate::plain::gradcheck::{check_grad, distinct, random};
    use ndarray::{ArrayD, Ix4};

    #[test]
    fn maxpool_valid_2x2_stride_2() {
        let win = Window2d::new((2, 2), (2, 2), Padding::Valid);
        let out = maxpool2d(p4().view(), &win).unwrap();
        assert_eq!(out.y, image(&[9., 6., 9., 9.], 2, 2, 1));
        // Winners: 9 at (1,1), 6 at (1,3), 9 at (3,0), 9 at (3,2).
        assert_eq!(
            out.argmax.iter().copied().collect::<Vec<_>>(),
            vec![5, 7, 12, 14]
        );
        let dy = image(&[1., 2., 3., 4.], 2, 2, 1);
        let dx = maxpool2d_backward(dy.view(), out.argmax.view(), [1, 4, 4, 1]).unwrap();
        let mut expected = Array4::<f32>::zeros((1, 4, 4, 1));
        expected[[0, 1, 1, 0]] = 1.0;
        expected[[0, 1, 3, 0]] = 2.0;
        expected[[0, 3, 0, 0]] = 3.0;
        expected[[0, 3, 2, 0]] = 4.0;
        assert_eq!(dx, expected);
    }

    #[test]
    fn maxpool_same_2x2_stride_1() {
        // Padding 1 after each axis only.
        let win = Window2d::new((2, 2), (1, 1), Padding::Same);
        let out = maxpool2d(p4().view(), &win).unwrap();
        let expected = image(
            &[
                9., 9., 6., 6., 9., 9., 8., 8., 9., 9., 9., 8., 9., 9., 9., 3.,
            ],
            4,
            4,
            1,
        );
        assert_eq!(out.y, expected);
    }

    #[test]
    fn maxpool_same_3x3_stride_2_ignores_padding() {
        let win = Window2d::new((3, 3), (2, 2), Padding::Same);
        let out = maxpool2d(q5().view(), &win).unwrap();
        let expected = image(
            &[
                5., -1., 5., -3., 4., -2., 5., -3., 5., -2., 3., -1., 5., -3., 4., -2., 3., -1.,
            ],
            3,
            3,
            2,
        );
        assert_eq!(out.y, expected);
    }

    #[test]
    fn maxpool_errors() {
        let win = Window2d::new((5, 5), (1, 1), Padding::Valid);
        assert!(maxpool2d(p4().view(), &win).is_err());
        let win = Window2d::new((2, 2), (2, 2), Padding::Valid);
        let out = maxpool2d(p4().view(), &win).unwrap();
        let dy = Array4::<f32>::zeros((1, 3, 2, 1));
        assert!(maxpool2d_backward(dy.view(), out.argmax.view(), [1, 4, 4, 1]).is_err());
        let dy = Array4::<f32>::zeros((1, 2, 2, 1));
        let mut bad = out.argmax.clone();
        bad[[0, 0, 0, 0]] = 16;
        assert!(maxpool2d_backward(dy.view(), bad.view(), [1, 4, 4, 1]).is_err());
    }

    #[test]
    fn maxpool_gradcheck() {
        for (shape, win) in [
            ([2, 4, 4, 2], Window2d::new((2, 2), (2, 2), Padding::Valid)),
            ([1, 5, 5, 2], Window2d::new((3, 3), (2, 2), Padding::Same)),
            ([2, 5, 4, 1], Window2d::new((2, 3), (1, 1), Padding::Same)),
        ] {
            let x = distinct(&shape, 31);
            let x4 = x.view().into_dimensionality::<Ix4>().unwrap();
            let out = maxpool2d(x4, &win).unwrap();
            let r = random(out.y.shape(), 32);
            let dx = maxpool2d_backward(
                r.view().into_dimensionality().unwrap(),
                out.argmax.view(),
                shape,
            )
            .unwrap();
            check_grad(
                &format!("maxpool {win:?}"),
                &x,
                &dx.into_dyn(),
                &r,
                |x: &ArrayD<f32>| {
                    maxpool2d(x.view().into_dimensionality().unwrap(), &win)
                        .unwrap()
                        .y
                        .into_dyn()
                },
            );
        }
    }

    #[test]
    fn maxpool_large_batch() {
        // Parallel path: every image pools like on its own.
        let x = random(&[32, 12, 12, 4], 33)
            .into_dimensionality::<Ix4>()
            .unwrap();
        let win = Window2d::new((2, 2), (2, 2), Padding::Valid);
        let all = maxpool2d(x.view(), &win).unwrap();
        let one = maxpool2d(x.slice(ndarray::s![7..8, .., .., ..]), &win).unwrap();
        assert_eq!(all.y.slice(ndarray::s![7..8, .., .., ..]), one.y);
        let dx = maxpool2d_backward(all.y.view(), all.argmax.view(), [32, 12, 12, 4]).unwrap();
        // Every pooled value lands once on its own cell.
        assert_eq!(dx.iter().filter(|&&v| v != 0.0).count(), all.y.len());
    }
}

//! 2-D average pooling on NHWC inputs, forward and backward.
//!
//! Padding follows TensorFlow: with SAME the divisor of each window counts only the cells that
//! lie inside the input (padding is excluded, not averaged in as zeros).

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use super::maxpool::{dims4, images_per_task};
use crate::im2col::{Geometry, Window2d};
use crate::{OpsError, Result};

/// The in-bounds rows and columns of the window of output `(oy, ox)`.
fn window(g: &Geometry, oy: usize, ox: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let y0 = (oy * g.sh).saturating_sub(g.top);
    let y1 = (oy * g.sh + g.kh).saturating_sub(g.top).min(g.h);
    let x0 = (ox * g.sw).saturating_sub(g.left);
    let x1 = (ox * g.sw + g.kw).saturating_sub(g.left).min(g.w);
    (y0..y1.max(y0), x0..x1.max(x0))
}

/// Average pooling of `x` `[N, H, W, C]` over windows `win`; returns `[N, OH, OW, C]`.
pub fn avgpool2d(x: ArrayView4<f32>, win: &Window2d) -> Result<Array4<f32>> {
    let op = "avgpool2d";
    let g = win.geometry(dims4(&x))?;
    let xs = x.as_standard_layout();
    let src = xs.as_slice().ok_or_else(|| OpsError::InvalidArgument {
        op,
        message: "input is not contiguous".into(),
    })?;
    let out_img = g.oh * g.ow * g.c;
    let mut y = vec![0f32; g.n * out_img];
    if out_img > 0 {
        y.par_chunks_mut(out_img)
            .enumerate()
            .with_min_len(images_per_task(out_img * g.kh * g.kw))
            .for_each(|(n, yi)| {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let (ys, xs) = window(&g, oy, ox);
                        let count = ys.len() * xs.len();
                        let o = (oy * g.ow + ox) * g.c;
                        let acc = &mut yi[o..o + g.c];
                        for iy in ys {
                            for ix in xs.clone() {
                                let base = ((n * g.h + iy) * g.w + ix) * g.c;
                                for (a, v) in acc.iter_mut().zip(&src[base..base + g.c]) {
                                    *a += *v;
                                }
                            }
                        }
                        if count > 0 {
                            let inv = 1.0 / count as f32;
                            acc.iter_mut().for_each(|a| *a *= inv);
                        }
                    }
                }
            });
    }
    Array4::from_shape_vec((g.n, g.oh, g.ow, g.c), y).map_err(|e| OpsError::InvalidArgument {
        op,
        message: e.to_string(),
    })
}

/// Gradient of [`avgpool2d`]: spreads each entry of `dy` `[N, OH, OW, C]` evenly over the
/// in-bounds cells of its window, giving a tensor of `x_shape`.
pub fn avgpool2d_backward(
    dy: ArrayView4<f32>,
    x_shape: [usize; 4],
    win: &Window2d,
) -> Result<Array4<f32>> {
    let op = "avgpool2d_backward";
    let g = win.geometry(x_shape)?;
    let expected = [g.n, g.oh, g.ow, g.c];
    if dims4(&dy) != expected {
        return Err(OpsError::ShapeMismatch {
            op,
            left: dy.shape().to_vec(),
            right: expected.to_vec(),
        });
    }
    let dys = dy.as_standard_layout();
    let d = dys.as_slice().ok_or_else(|| OpsError::InvalidArgument {
        op,
        message: "dy is not contiguous".into(),
    })?;
    let in_img = g.h * g.w * g.c;
    let out_img = g.oh * g.ow * g.c;
    let mut dx = vec![0f32; g.n * in_img];
    if in_img > 0 && out_img > 0 {
        dx.par_chunks_mut(in_img)
            .zip(d.par_chunks(out_img))
            .with_min_len(images_per_task(out_img * g.kh * g.kw))
            .for_each(|(dxi, di)| {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let (ys, xs) = window(&g, oy, ox);
                        let count = ys.len() * xs.len();
                        if count == 0 {
                            continue;
                        }
                        let inv = 1.0 / count as f32;
                        let o = (oy * g.ow + ox) * g.c;
                        let grad = &di[o..o + g.c];
                        for iy in ys {
                            for ix in xs.clone() {
                                let base = (iy * g.w + ix) * g.c;
                                for (a, v) in dxi[base..base + g.c].iter_mut().zip(grad) {
                                    *a += *v * inv;
                                }
                            }
                        }
                    }
                }
            });
    }
    Array4::from_shape_vec((g.n, g.h, g.w, g.c), dx).map_err(|e| OpsError::InvalidArgument {
        op,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im2col::Padding;
    use crate::plain::fixtures::{assert_near, image, p4, q5};
    use crate::plain::gradcheck::{check_grad, random};
    use ndarray::{ArrayD, Ix4};

    #[test]
    fn avgpool_valid_2x2_stride_2() {
        let win = Window2d::new((2, 2), (2, 2), Padding::Valid);
        let y = avgpool2d(p4().view(), &win).unwrap();
        assert_eq!(y, image(&[4.5, 3.25, 6.0, 6.25], 2, 2, 1));
        let dy = image(&[4., 8., 12., 16.], 2, 2, 1);
        let dx = avgpool2d_backward(dy.view(), [1, 4, 4, 1], &win).unwrap();
        let expected = image(
            &[
                1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.,
            ],
            4,
            4,
            1,
        );
        assert_eq!(dx, expected);
    }

    #[test]
    fn avgpool_same_counts_only_inside_cells() {
        let win = Window2d::new((2, 2), (1, 1), Padding::Same);
        let y = avgpool2d(p4().view(), &win).unwrap();
        let expected = image(
            &[
                4.5, 4.0, 3.25, 3.5, 5.5, 4.75, 5.25, 7.0, 6.0, 6.0, 6.25, 5.5, 8.0, 8.0, 6.0, 3.0,
            ],
            4,
            4,
            1,
        );
        assert_near(&y, &expected);

        let win = Window2d::new((3, 3), (2, 2), Padding::Same);
        let y = avgpool2d(q5().view(), &win).unwrap();
        let expected = image(
            &[
                0.0,
                -6.0,
                5.0 / 6.0,
                -41.0 / 6.0,
                0.75,
                -6.75,
                4.0 / 3.0,
                -22.0 / 3.0,
                1.0 / 3.0,
                -19.0 / 3.0,
                -2.0 / 3.0,
                -16.0 / 3.0,
                1.75,
                -7.75,
                -1.0 / 6.0,
                -35.0 / 6.0,
                -0.25,
                -5.75,
            ],
            3,
            3,
            2,
        );
        assert_near(&y, &expected);
        // The corner window holds 2x2 cells, so each gets a quarter of its gradient.
        let mut dy = Array4::<f32>::zeros((1, 3, 3, 2));
        dy[[0, 0, 0, 1]] = 1.0;
        let dx = avgpool2d_backward(dy.view(), [1, 5, 5, 2], &win).unwrap();
        assert_eq!(dx[[0, 0, 0, 1]], 0.25);
        assert_eq!(dx[[0, 1, 1, 1]], 0.25);
        assert_eq!(dx[[0, 2, 2, 1]], 0.0);
        assert_eq!(dx.sum(), 1.0);
    }

    #[test]
    fn avgpool_errors() {
        let win = Window2d::new((5, 5), (1, 1), Padding::Valid);
        assert!(avgpool2d(p4().view(), &win).is_err());
        let win = Window2d::new((2, 2), (2, 2), Padding::Valid);
        let dy = Array4::<f32>::zeros((1, 3, 2, 1));
        assert!(matches!(
            avgpool2d_backward(dy.view(), [1, 4, 4, 1], &win),
            Err(OpsError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn avgpool_gradcheck() {
        for (shape, win) in [
            ([2, 4, 4, 2], Window2d::new((2, 2), (2, 2), Padding::Valid)),
            ([1, 5, 5, 2], Window2d::new((3, 3), (2, 2), Padding::Same)),
            ([2, 5, 4, 1], Window2d::new((2, 3), (1, 2), Padding::Same)),
        ] {
            let x = random(&shape, 41);
            let y = avgpool2d(x.view().into_dimensionality::<Ix4>().unwrap(), &win).unwrap();
            let r = random(y.shape(), 42);
            let dx =
                avgpool2d_backward(r.view().into_dimensionality().unwrap(), shape, &win).unwrap();
            check_grad(
                &format!("avgpool {win:?}"),
                &x,
                &dx.into_dyn(),
                &r,
                |x: &ArrayD<f32>| {
                    avgpool2d(x.view().into_dimensionality().unwrap(), &win)
                        .unwrap()
                        .into_dyn()
                },
            );
        }
    }
}

//! 2-D convolution (cross-correlation) on NHWC inputs with HWIO filters, forward and backward,
//! as im2col followed by one GEMM. Padding follows TensorFlow: SAME puts the odd padding cell
//! at the bottom / right.

use ndarray::{Array4, ArrayView2, ArrayView4, CowArray, Ix2};

use super::linalg::gemm;
use crate::im2col::{col2im_add, im2col, Padding, Window2d};
use crate::{OpsError, Result};

/// Gradients of [`conv2d`] with respect to its input and its filter.
#[derive(Clone, Debug)]
pub struct Conv2dGrads {
    /// Gradient of the input, `[N, H, W, Cin]`.
    pub dx: Array4<f32>,
    /// Gradient of the filter, `[KH, KW, Cin, Cout]`.
    pub dw: Array4<f32>,
}

/// Checked geometry of one convolution.
struct Plan {
    win: Window2d,
    x_shape: [usize; 4],
    w_shape: [usize; 4],
    out: [usize; 4],
}

impl Plan {
    /// `KH * KW * Cin`, the inner dimension of the GEMM.
    fn k(&self) -> usize {
        self.w_shape[0] * self.w_shape[1] * self.w_shape[2]
    }

    /// `N * OH * OW`, the rows of the GEMM.
    fn rows(&self) -> usize {
        self.out[0] * self.out[1] * self.out[2]
    }
}

fn plan(
    op: &'static str,
    x_shape: [usize; 4],
    w_shape: [usize; 4],
    strides: (usize, usize),
    padding: Padding,
) -> Result<Plan> {
    let [n, h, wd, cin] = x_shape;
    let [kh, kw, wcin, cout] = w_shape;
    if cin != wcin {
        return Err(OpsError::ShapeMismatch {
            op,
            left: x_shape.to_vec(),
            right: w_shape.to_vec(),
        });
    }
    let win = Window2d::new((kh, kw), strides, padding);
    let (oh, ow) = win.output_hw(h, wd)?;
    Ok(Plan {
        win,
        x_shape,
        w_shape,
        out: [n, oh, ow, cout],
    })
}

fn shape4<T>(a: &ArrayView4<T>) -> [usize; 4] {
    let (a0, a1, a2, a3) = a.dim();
    [a0, a1, a2, a3]
}

fn reshape_err(op: &'static str) -> impl Fn(ndarray::ShapeError) -> OpsError {
    move |e| OpsError::InvalidArgument {
        op,
        message: e.to_string(),
    }
}

/// The filter as the `[KH*KW*Cin, Cout]` matrix of the GEMM.
fn filter_matrix<'a>(
    op: &'static str,
    w: &'a ArrayView4<'a, f32>,
    p: &Plan,
) -> Result<CowArray<'a, f32, Ix2>> {
    w.to_shape((p.k(), p.w_shape[3])).map_err(reshape_err(op))
}

/// `dy` checked against the output shape and viewed as `[N*OH*OW, Cout]`.
fn dy_matrix<'a>(
    op: &'static str,
    dy: &'a ArrayView4<'a, f32>,
    p: &Plan,
) -> Result<CowArray<'a, f32, Ix2>> {
    if shape4(dy) != p.out {
        return Err(OpsError::ShapeMismatch {
            op,
            left: dy.shape().to_vec(),
            right: p.out.to_vec(),
        });
    }
    dy.to_shape((p.rows(), p.out[3])).map_err(reshape_err(op))
}

/// Convolution of `x` `[N, H, W, Cin]` with the filter `w` `[KH, KW, Cin, Cout]`, strides
/// `(sh, sw)` and TensorFlow padding; returns `[N, OH, OW, Cout]`.
pub fn conv2d(
    x: ArrayView4<f32>,
    w: ArrayView4<f32>,
    strides: (usize, usize),
    padding: Padding,
) -> Result<Array4<f32>> {
    let op = "conv2d";
    let p = plan(op, shape4(&x), shape4(&w), strides, padding)?;
    let cols = im2col(x, &p.win)?;
    let wm = filter_matrix(op, &w, &p)?;
    gemm(cols.view(), wm.view())
        .into_shape_with_order(p.out)
        .map_err(reshape_err(op))
}

/// Gradient of [`conv2d`] with respect to its input (of shape `x_shape`), given the filter and
/// `dy` `[N, OH, OW, Cout]`. Cheaper than [`conv2d_backward`] when `dw` is not needed.
pub fn conv2d_backward_input(
    x_shape: [usize; 4],
    w: ArrayView4<f32>,
    dy: ArrayView4<f32>,
    strides: (usize, usize),
    padding: Padding,
) -> Result<Array4<f32>> {
    let op = "conv2d_backward_input";
    let p = plan(op, x_shape, shape4(&w), strides, padding)?;
    let wm = filter_matrix(op, &w, &p)?;
    let dym = dy_matrix(op, &dy, &p)?;
    input_grad(&p, dym.view(), wm.view())
}

/// Gradient of [`conv2d`] with respect to its filter (of shape `w_shape`), given the input and
/// `dy`. Cheaper than [`conv2d_backward`] when `dx` is not needed (e.g. the first layer).
pub fn conv2d_backward_filter(
    x: ArrayView4<f32>,
    w_shape: [usize; 4],
    dy: ArrayView4<f32>,
    strides: (usize, usize),
    padding: Padding,
) -> Result<Array4<f32>> {
    let op = "conv2d_backward_filter";
    let p = plan(op, shape4(&x), w_shape, strides, padding)?;
    let dym = dy_matrix(op, &dy, &p)?;
    let cols = im2col(x, &p.win)?;
    filter_grad(op, &p, cols.view(), dym.view())
}

/// Gradients of [`conv2d`] with respect to `x` and `w`, given `dy` `[N, OH, OW, Cout]`.
pub fn conv2d_backward(
    x: ArrayView4<f32>,
    w: ArrayView4<f32>,
    dy: ArrayView4<f32>,
    strides: (usize, usize),
    padding: Padding,
) -> Result<Conv2dGrads> {
    let op = "conv2d_backward";
    let p = plan(op, shape4(&x), shape4(&w), strides, padding)?;
    let wm = filter_matrix(op, &w, &p)?;
    let dym = dy_matrix(op, &dy, &p)?;
    let cols = im2col(x, &p.win)?;
    let dw = filter_grad(op, &p, cols.view(), dym.view())?;
    drop(cols);
    let dx = input_grad(&p, dym.view(), wm.view())?;
    Ok(Conv2dGrads { dx, dw })
}

/// `dW = cols^T . dY`, reshaped to HWIO.
fn filter_grad(
    op: &'static str,
    p: &Plan,
    cols: ArrayView2<f32>,
    dym: ArrayView2<f32>,
) -> Result<Array4<f32>> {
    gemm(cols.t(), dym)
        .into_shape_with_order(p.w_shape)
        .map_err(reshape_err(op))
}

/// `dX = col2im(dY . W^T)`.
fn input_grad(p: &Plan, dym: ArrayView2<f32>, wm: ArrayView2<f32>) -> Result<Array4<f32>> {
    let dcols = gemm(dym, wm.t());
    col2im_add(dcols.view(), p.x_shape, &p.win)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plain::fixtures::image;
    use crate::plain::gradcheck::{check_grad, random};
    use ndarray::{Array, ArrayD, Ix4};

    /// The 1x4x4x1 input 1..=16 in row-major order.
    fn x4() -> Array4<f32> {
        Array::from_shape_fn((1, 4, 4, 1), |(_, i, j, _)| (4 * i + j + 1) as f32)
    }

    /// A 1x5x5x2 input: channel 0 is `5i + j + 1`, channel 1 is `i - 2j`.
    fn x5() -> Array4<f32> {
        Array::from_shape_fn((1, 5, 5, 2), |(_, i, j, c)| {
            if c == 0 {
                (5 * i + j + 1) as f32
            } else {
                i as f32 - 2.0 * j as f32
            }
        })
    }

    /// A 3x3x2x2 filter: entry number `t` in HWIO order is `7t mod 5 - 2`.
    fn w5() -> Array4<f32> {
        Array::from_shape_vec(
            (3, 3, 2, 2),
            (0..36).map(|t| ((t * 7) % 5) as f32 - 2.0).collect(),
        )
        .unwrap()
    }

    #[test]
    fn conv_valid_2x2() {
        let w = image(&[1.0, 2.0, 3.0, 4.0], 2, 2, 1)
            .into_shape_with_order((2, 2, 1, 1))
            .unwrap();
        let y = conv2d(x4().view(), w.view(), (1, 1), Padding::Valid).unwrap();
        let expected = image(&[44., 54., 64., 84., 94., 104., 124., 134., 144.], 3, 3, 1);
        assert_eq!(y, expected);
    }

    #[test]
    fn conv_same_2x2_pads_bottom_right() {
        // The total padding is 1 per axis and goes after, as in TensorFlow.
        let w = image(&[1.0, 2.0, 3.0, 4.0], 2, 2, 1)
            .into_shape_with_order((2, 2, 1, 1))
            .unwrap();
        let y = conv2d(x4().view(), w.view(), (1, 1), Padding::Same).unwrap();
        let expected = image(
            &[
                44., 54., 64., 28., 84., 94., 104., 44., 124., 134., 144., 60., 41., 44., 47., 16.,
            ],
            4,
            4,
            1,
        );
        assert_eq!(y, expected);
    }

    #[test]
    fn conv_same_3x3_stride_1_and_2() {
        let w = Array::from_shape_fn((3, 3, 1, 1), |(a, b, _, _)| (3 * a + b + 1) as f32);
        let y = conv2d(x4().view(), w.view(), (1, 1), Padding::Same).unwrap();
        let expected = image(
            &[
                111., 178., 217., 145., 231., 348., 393., 252., 363., 528., 573., 360., 197., 274.,
                295., 175.,
            ],
            4,
            4,
            1,
        );
        assert_eq!(y, expected);
        // Stride 2 on 4x4: out 2x2, total padding 1 per axis, all of it after, so the
        // windows centre on rows / columns 1 and 3.
        let y = conv2d(x4().view(), w.view(), (2, 2), Padding::Same).unwrap();
        assert_eq!(y, image(&[348., 252., 274., 175.], 2, 2, 1));
    }

    #[test]
    fn conv_stride_2_two_channels() {
        let y = conv2d(x5().view(), w5().view(), (2, 2), Padding::Same).unwrap();
        let expected = image(
            &[
                -3., 5., 4., 3., 23., -8., -12., 18., 19., -23., 21., -35., -47., 35., -33., 2.,
                26., -21.,
            ],
            3,
            3,
            2,
        );
        assert_eq!(y, expected);
        let y = conv2d(x5().view(), w5().view(), (2, 2), Padding::Valid).unwrap();
        let expected = image(&[20., -12., 16., -12., 22., -34., 18., -34.], 2, 2, 2);
        assert_eq!(y, expected);
    }

    #[test]
    fn conv_shape_errors() {
        let x = Array4::<f32>::zeros((1, 4, 4, 2));
        let w = Array4::<f32>::zeros((3, 3, 1, 1));
        assert!(matches!(
            conv2d(x.view(), w.view(), (1, 1), Padding::Same),
            Err(OpsError::ShapeMismatch { .. })
        ));
        let w = Array4::<f32>::zeros((5, 5, 2, 1));
        assert!(conv2d(x.view(), w.view(), (1, 1), Padding::Valid).is_err());
        let w = Array4::<f32>::zeros((3, 3, 2, 1));
        assert!(conv2d(x.view(), w.view(), (0, 1), Padding::Same).is_err());
        let dy = Array4::<f32>::zeros((1, 3, 3, 1));
        assert!(conv2d_backward(x.view(), w.view(), dy.view(), (1, 1), Padding::Same).is_err());
        assert!(
            conv2d_backward_input([1, 4, 4, 2], w.view(), dy.view(), (1, 1), Padding::Same)
                .is_err()
        );
        assert!(
            conv2d_backward_filter(x.view(), [3, 3, 2, 1], dy.view(), (1, 1), Padding::Same)
                .is_err()
        );
    }

    fn gradcheck_case(x_shape: [usize; 4], w_shape: [usize; 4], s: (usize, usize), pad: Padding) {
        let name = format!("conv2d {x_shape:?} {w_shape:?} {s:?} {pad:?}");
        let x = random(&x_shape, 11);
        let w = random(&w_shape, 12);
        let x4 = x.view().into_dimensionality::<Ix4>().unwrap();
        let w4 = w.view().into_dimensionality::<Ix4>().unwrap();
        let y = conv2d(x4, w4, s, pad).unwrap();
        let r = random(y.shape(), 13);
        let r4 = r.view().into_dimensionality::<Ix4>().unwrap();
        let g = conv2d_backward(x4, w4, r4, s, pad).unwrap();
        let f = |x: &ArrayD<f32>, w: &ArrayD<f32>| {
            conv2d(
                x.view().into_dimensionality().unwrap(),
                w.view().into_dimensionality().unwrap(),
                s,
                pad,
            )
            .unwrap()
            .into_dyn()
        };
        check_grad(
            &format!("{name} dx"),
            &x,
            &g.dx.clone().into_dyn(),
            &r,
            |x| f(x, &w),
        );
        check_grad(
            &format!("{name} dw"),
            &w,
            &g.dw.clone().into_dyn(),
            &r,
            |w| f(&x, w),
        );
        // The single-output variants agree with the combined one.
        let dx = conv2d_backward_input(x_shape, w4, r4, s, pad).unwrap();
        let dw = conv2d_backward_filter(x4, w_shape, r4, s, pad).unwrap();
        assert_eq!(dx, g.dx);
        assert_eq!(dw, g.dw);
    }

    #[test]
    fn conv_gradcheck() {
        gradcheck_case([2, 5, 5, 2], [3, 3, 2, 3], (1, 1), Padding::Valid);
        gradcheck_case([2, 5, 4, 2], [3, 3, 2, 3], (1, 1), Padding::Same);
        gradcheck_case([1, 6, 5, 2], [3, 2, 2, 2], (2, 2), Padding::Same);
        gradcheck_case([1, 6, 7, 3], [3, 3, 3, 2], (2, 2), Padding::Valid);
        gradcheck_case([1, 4, 4, 1], [2, 2, 1, 2], (2, 1), Padding::Same);
    }

    #[test]
    fn conv_large_batch_matches_per_image() {
        // Exercises the parallel im2col, GEMM and col2im paths against per-image results
        // (64 x 12 x 12 windows of 75 elements: above `par::ELEMENTWISE`).
        let x = random(&[64, 12, 12, 3], 21)
            .into_dimensionality::<Ix4>()
            .unwrap();
        let w = random(&[5, 5, 3, 8], 22)
            .into_dimensionality::<Ix4>()
            .unwrap();
        let y = conv2d(x.view(), w.view(), (1, 1), Padding::Same).unwrap();
        let dy = random(y.shape(), 23).into_dimensionality::<Ix4>().unwrap();
        let g = conv2d_backward(x.view(), w.view(), dy.view(), (1, 1), Padding::Same).unwrap();
        let mut dw = Array4::<f32>::zeros(w.dim());
        for n in 0..64 {
            let xn = x.slice(ndarray::s![n..n + 1, .., .., ..]);
            let dyn_ = dy.slice(ndarray::s![n..n + 1, .., .., ..]);
            let yn = conv2d(xn, w.view(), (1, 1), Padding::Same).unwrap();
            let d = &yn - &y.slice(ndarray::s![n..n + 1, .., .., ..]);
            assert!(d.iter().all(|v| v.abs() < 1e-4));
            let gn = conv2d_backward(xn, w.view(), dyn_, (1, 1), Padding::Same).unwrap();
            let d = &gn.dx - &g.dx.slice(ndarray::s![n..n + 1, .., .., ..]);
            assert!(d.iter().all(|v| v.abs() < 1e-4));
            dw += &gn.dw;
        }
        let d = &dw - &g.dw;
        assert!(d.iter().all(|v| v.abs() < 1e-3));
    }
}

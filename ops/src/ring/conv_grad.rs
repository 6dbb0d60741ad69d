//! The gradients of the ring convolution over Z_2^64 (wrapping), through im2col / col2im and
//! the ring GEMM like the forward [`super::conv2d`]: with `cols = im2col(x)` and the filter
//! as the `[KH*KW*Cin, Cout]` matrix `W`,
//!
//! - `backprop_input(dy, w) = col2im(dY . W^T)`, of the input's shape, a block of rows of
//!   the product at a time;
//! - `backprop_filter(x, dy) = cols^T . dY`, of the filter's shape, by
//!   [`super::matmul_tn`]'s product of two operands with many rows.
//!
//! Both are bilinear in their two operands, so a dealer triple computes them on shares.

use ndarray::{Array2, ArrayD, ArrayRefD, ArrayView2, ArrayView4, Ix4, IxDyn};

use super::matmul::{gemm_rows, Kernel, MC, MR, NR};
use super::matmul_tn::gemm_tn;
use super::pack::{PackedB, Tall};
use super::shape::standard_2d;
use crate::im2col::{col2im_rows_add, for_each_chunk_if, Padding, Window2d};
use crate::{par, OpsError, Result};

fn as_4d<'a>(op: &'static str, what: &str, x: &'a ArrayRefD<u64>) -> Result<ArrayView4<'a, u64>> {
    x.view()
        .into_dimensionality::<Ix4>()
        .map_err(|_| OpsError::InvalidArgument {
            op,
            message: format!("expected a 4-D {what}, got shape {:?}", x.shape()),
        })
}

fn invalid(op: &'static str) -> impl Fn(ndarray::ShapeError) -> OpsError {
    move |e| OpsError::InvalidArgument {
        op,
        message: e.to_string(),
    }
}

/// The window of a convolution with an input `[N, H, W, Cin]` and a filter
/// `[KH, KW, Cin, Cout]`, and `dy` checked against its output `[N, OH, OW, Cout]`, as the
/// `[N*OH*OW, Cout]` matrix of the GEMM.
fn plan<'a>(
    op: &'static str,
    x_shape: [usize; 4],
    w_shape: [usize; 4],
    dy: &'a ArrayRefD<u64>,
    strides: (usize, usize),
    padding: Padding,
) -> Result<(Window2d, ArrayView2<'a, u64>)> {
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
    if dy.shape() != [n, oh, ow, cout] {
        return Err(OpsError::ShapeMismatch {
            op,
            left: dy.shape().to_vec(),
            right: vec![n, oh, ow, cout],
        });
    }
    let dym = dy
        .view()
        .into_shape_with_order((n * oh * ow, cout))
        .map_err(invalid(op))?;
    Ok((win, dym))
}

fn shape4(op: &'static str, what: &str, shape: &[usize]) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(shape).map_err(|_| OpsError::InvalidArgument {
        op,
        message: format!("expected a 4-D {what} shape, got {shape:?}"),
    })
}

/// The gradient of [`super::conv2d`] with respect to its input of shape `input_shape`
/// (`[N, H, W, Cin]`), given `dy` (`[N, OH, OW, Cout]`) and the filter `w`
/// (`[KH, KW, Cin, Cout]`): `col2im(dY . W^T)`, wrapping mod 2^64.
///
/// Errors: [`OpsError::InvalidArgument`] for operands or shapes that are not 4-D, zero
/// strides or a VALID window larger than the input; [`OpsError::ShapeMismatch`] if the
/// channels differ or `dy` is not the convolution's output shape.
pub fn conv2d_backprop_input(
    dy: &ArrayRefD<u64>,
    w: &ArrayRefD<u64>,
    input_shape: &[usize],
    strides: (usize, usize),
    padding: Padding,
) -> Result<ArrayD<u64>> {
    let op = "ring conv2d_backprop_input";
    let x_shape = shape4(op, "input", input_shape)?;
    let w4 = as_4d(op, "filter", w)?;
    let (kh, kw, cin, cout) = w4.dim();
    let (win, dym) = plan(op, x_shape, [kh, kw, cin, cout], dy, strides, padding)?;
    // dY W^T, made MC rows at a time and added into the input's image by col2im while the
    // rows are in cache: the product itself (N*OH*OW x KH*KW*Cin) never goes through memory.
    let g = win.geometry(x_shape)?;
    let ncols = kh * kw * cin;
    let w_std = w4.as_standard_layout();
    let wm = w_std
        .view()
        .into_shape_with_order((ncols, cout))
        .map_err(invalid(op))?;
    let wt = standard_2d(wm.t());
    let dym = dym.as_standard_layout();
    let (Some(wt), Some(dy_s)) = (wt.as_slice(), dym.as_slice()) else {
        return Err(OpsError::InvalidArgument {
            op,
            message: "operands are not contiguous".into(),
        });
    };
    let packed = PackedB::new(wt, cout, ncols);
    let kernel = Kernel::detect();
    let per_image = g.oh * g.ow;
    let image = g.h * g.w * g.c;
    let mut dx = vec![0u64; g.n * image];
    let work = |i: usize, img: &mut [u64]| {
        let mut r = i * per_image;
        while r < (i + 1) * per_image {
            let mc = MC.min((i + 1) * per_image - r);
            let rows = gemm_rows(kernel, Tall::Matrix(dy_s), &packed, r, mc);
            col2im_rows_add(&g, r, &rows, img);
            r += mc;
        }
    };
    let macs = (g.n * per_image).saturating_mul(cout).saturating_mul(ncols);
    for_each_chunk_if(macs >= par::MATMUL_MACS, &mut dx, image, work);
    ArrayD::from_shape_vec(IxDyn(&x_shape), dx).map_err(invalid(op))
}

/// The gradient of [`super::conv2d`] with respect to its filter of shape `filter_shape`
/// (`[KH, KW, Cin, Cout]`), given the input `x` (`[N, H, W, Cin]`) and `dy`
/// (`[N, OH, OW, Cout]`): `im2col(x)^T . dY`, wrapping mod 2^64.
///
/// Errors: as [`conv2d_backprop_input`].
pub fn conv2d_backprop_filter(
    x: &ArrayRefD<u64>,
    dy: &ArrayRefD<u64>,
    filter_shape: &[usize],
    strides: (usize, usize),
    padding: Padding,
) -> Result<ArrayD<u64>> {
    let op = "ring conv2d_backprop_filter";
    let w_shape = shape4(op, "filter", filter_shape)?;
    let x4 = as_4d(op, "input", x)?;
    let (n, h, wd, c) = x4.dim();
    let (win, dym) = plan(op, [n, h, wd, c], w_shape, dy, strides, padding)?;
    // cols^T dY, with `cols = im2col(x)` made a block of rows at a time.
    let g = win.geometry([n, h, wd, c])?;
    let (k, m, cout) = (dym.nrows(), w_shape[0] * w_shape[1] * c, dym.ncols());
    let xs = x4.as_standard_layout();
    let dym = dym.as_standard_layout();
    let (Some(xs), Some(dys)) = (xs.as_slice(), dym.as_slice()) else {
        return Err(OpsError::InvalidArgument {
            op,
            message: "operands are not contiguous".into(),
        });
    };
    let (cols, dy) = (Tall::Im2col { x: xs, g }, Tall::Matrix(dys));
    // The product's register tiles are MR x NR: where padding the columns of dY to MR and
    // those of cols to NR wastes less, compute (dY^T cols)^T instead.
    let pad = |x: usize, w: usize| x.div_ceil(w) * w;
    if pad(cout, MR) * pad(m, NR) < pad(m, MR) * pad(cout, NR) {
        let t = gemm_tn(Kernel::detect(), dy, cols, k, cout, m);
        let t = Array2::from_shape_vec((cout, m), t).map_err(invalid(op))?;
        return standard_2d(t.t())
            .into_owned()
            .into_shape_with_order(IxDyn(&w_shape))
            .map_err(invalid(op));
    }
    let grad = gemm_tn(Kernel::detect(), cols, dy, k, m, cout);
    ArrayD::from_shape_vec(IxDyn(&w_shape), grad).map_err(invalid(op))
}

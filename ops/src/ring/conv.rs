//! 2-D convolution over Z_2^64: NHWC input, HWIO filter, through im2col and the ring GEMM
//! (which makes the im2col matrix a block of rows at a time as it packs it).

use ndarray::{Array2, ArrayD, ArrayRefD, ArrayView4, Ix4, IxDyn};

use super::matmul::{gemm, Kernel};
use super::pack::Tall;
use crate::im2col::{Padding, Window2d};
use crate::{OpsError, Result};

fn as_4d<'a>(what: &str, x: &'a ArrayRefD<u64>) -> Result<ArrayView4<'a, u64>> {
    x.view()
        .into_dimensionality::<Ix4>()
        .map_err(|_| OpsError::InvalidArgument {
            op: "ring conv2d",
            message: format!("expected a 4-D {what}, got shape {:?}", x.shape()),
        })
}

/// The convolution of `x` (`[N, H, W, C]`) with the filter `w` (`[KH, KW, C, O]`), wrapping
/// mod 2^64, with strides `(sh, sw)` and TensorFlow padding; the result is
/// `[N, OH, OW, O]`. Zero padding is exact on shares, since the convolution is linear.
///
/// Errors: [`OpsError::InvalidArgument`] for operands that are not 4-D, zero strides or a
/// VALID window larger than the input; [`OpsError::ShapeMismatch`] if the channels differ.
pub fn conv2d(
    x: &ArrayRefD<u64>,
    w: &ArrayRefD<u64>,
    strides: (usize, usize),
    padding: Padding,
) -> Result<ArrayD<u64>> {
    let x4 = as_4d("input", x)?;
    let w4 = as_4d("filter", w)?;
    let (n, _, _, c) = x4.dim();
    let (kh, kw, wc, o) = w4.dim();
    if wc != c {
        return Err(OpsError::ShapeMismatch {
            op: "ring conv2d",
            left: x.shape().to_vec(),
            right: w.shape().to_vec(),
        });
    }
    let win = Window2d::new((kh, kw), strides, padding);
    let (oh, ow) = win.output_hw(x4.dim().1, x4.dim().2)?;
    // im2col(x) W, with im2col(x) made a block of rows at a time as the product packs it.
    let g = win.geometry([n, x4.dim().1, x4.dim().2, c])?;
    let xs = x4.as_standard_layout();
    let w_std = w4.as_standard_layout();
    let (Some(xs), Some(ws)) = (xs.as_slice(), w_std.as_slice()) else {
        return Err(OpsError::InvalidArgument {
            op: "ring conv2d",
            message: "operands are not contiguous".into(),
        });
    };
    let rows = n * oh * ow;
    let y = gemm(
        Kernel::detect(),
        Tall::Im2col { x: xs, g },
        ws,
        rows,
        kh * kw * c,
        o,
    );
    let y = Array2::from_shape_vec((rows, o), y).map_err(|e| OpsError::InvalidArgument {
        op: "ring conv2d",
        message: e.to_string(),
    })?;
    y.into_shape_with_order(IxDyn(&[n, oh, ow, o]))
        .map_err(|e| OpsError::InvalidArgument {
            op: "ring conv2d",
            message: e.to_string(),
        })
}

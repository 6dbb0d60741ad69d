//! Matrix product, numpy-style broadcasting arithmetic and reductions on f32 tensors.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayD, ArrayView2, ArrayViewD, Axis, IxDyn, Zip};
use rayon::prelude::*;

pub use crate::broadcast::broadcast_shape;
use crate::{OpsError, Result};

/// Below this many multiply-adds a GEMM runs on the calling thread.
const PAR_FLOPS: usize = 1 << 20;
/// Below this many elements an elementwise op runs on the calling thread.
const PAR_ELEMS: usize = 1 << 16;

/// `a . b` with ndarray's GEMM, split over the rayon pool when it pays: by rows of `a` when
/// there are many, otherwise along the shared dimension with a final sum (the shape of the
/// filter gradient of a convolution). The caller has checked `a.ncols() == b.nrows()`.
pub(crate) fn gemm(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let (m, k) = a.dim();
    let n = b.ncols();
    let threads = rayon::current_num_threads();
    if threads <= 1 || m.saturating_mul(k).saturating_mul(n) < PAR_FLOPS {
        return a.dot(&b);
    }
    let parts = threads * 2;
    if m >= parts * 32 {
        let chunk = m.div_ceil(parts);
        let mut c = Array2::<f32>::zeros((m, n));
        let pieces: Vec<_> = c
            .axis_chunks_iter_mut(Axis(0), chunk)
            .zip(a.axis_chunks_iter(Axis(0), chunk))
            .collect();
        pieces.into_par_iter().for_each(|(mut c, a)| {
            general_mat_mul(1.0, &a, &b, 0.0, &mut c);
        });
        c
    } else if k >= parts * 64 {
        let chunk = k.div_ceil(parts);
        (0..k.div_ceil(chunk))
            .into_par_iter()
            .map(|p| {
                let r = p * chunk..((p + 1) * chunk).min(k);
                a.slice(s![.., r.clone()]).dot(&b.slice(s![r, ..]))
            })
            .reduce_with(|mut x, y| {
                x += &y;
                x
            })
            .unwrap_or_else(|| Array2::zeros((m, n)))
    } else {
        a.dot(&b)
    }
}

/// Matrix product `a [m, k] . b [k, n] -> [m, n]`.
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Result<Array2<f32>> {
    if a.ncols() != b.nrows() {
        return Err(OpsError::ShapeMismatch {
            op: "matmul",
            left: a.shape().to_vec(),
            right: b.shape().to_vec(),
        });
    }
    Ok(gemm(a, b))
}

/// Gradients of `y = a . b` given `dy`: `(da, db) = (dy . b^T, a^T . dy)`.
pub fn matmul_backward(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    dy: ArrayView2<f32>,
) -> Result<(Array2<f32>, Array2<f32>)> {
    if a.ncols() != b.nrows() {
        return Err(OpsError::ShapeMismatch {
            op: "matmul_backward",
            left: a.shape().to_vec(),
            right: b.shape().to_vec(),
        });
    }
    if dy.dim() != (a.nrows(), b.ncols()) {
        return Err(OpsError::ShapeMismatch {
            op: "matmul_backward (dy)",
            left: dy.shape().to_vec(),
            right: vec![a.nrows(), b.ncols()],
        });
    }
    Ok((gemm(dy, b.t()), gemm(a.t(), dy)))
}

/// Applies `f` elementwise to `a` and `b` broadcast to a common shape.
fn binary(
    op: &'static str,
    a: ArrayViewD<f32>,
    b: ArrayViewD<f32>,
    f: impl Fn(f32, f32) -> f32 + Sync + Send,
) -> Result<ArrayD<f32>> {
    let shape = IxDyn(&broadcast_shape(op, a.shape(), b.shape())?);
    let mismatch = || OpsError::ShapeMismatch {
        op,
        left: a.shape().to_vec(),
        right: b.shape().to_vec(),
    };
    let av = a.broadcast(shape.clone()).ok_or_else(mismatch)?;
    let bv = b.broadcast(shape).ok_or_else(mismatch)?;
    let zip = Zip::from(&av).and(&bv);
    Ok(if av.len() >= PAR_ELEMS {
        zip.par_map_collect(|&x, &y| f(x, y))
    } else {
        zip.map_collect(|&x, &y| f(x, y))
    })
}

/// `a + b` with numpy broadcasting (e.g. `[.., n] + [n]` adds a bias).
pub fn add(a: ArrayViewD<f32>, b: ArrayViewD<f32>) -> Result<ArrayD<f32>> {
    binary("add", a, b, |x, y| x + y)
}

/// `a - b` with numpy broadcasting.
pub fn sub(a: ArrayViewD<f32>, b: ArrayViewD<f32>) -> Result<ArrayD<f32>> {
    binary("sub", a, b, |x, y| x - y)
}

/// `a * b` elementwise with numpy broadcasting.
pub fn mul(a: ArrayViewD<f32>, b: ArrayViewD<f32>) -> Result<ArrayD<f32>> {
    binary("mul", a, b, |x, y| x * y)
}

/// Sums a broadcast gradient back to the operand's `shape` (the adjoint of broadcasting
/// `shape` to `x.shape()`): e.g. the bias gradient `[N, n] -> [n]`.
pub fn reduce_to_shape(x: ArrayViewD<f32>, shape: &[usize]) -> Result<ArrayD<f32>> {
    let op = "reduce_to_shape";
    if broadcast_shape(op, shape, x.shape())? != x.shape() {
        return Err(OpsError::ShapeMismatch {
            op,
            left: x.shape().to_vec(),
            right: shape.to_vec(),
        });
    }
    let lead = x.ndim() - shape.len();
    // Fast path: only leading axes disappear; view as [rows, rest] and sum the rows.
    if x.shape()[lead..] == *shape && x.is_standard_layout() {
        let rest: usize = shape.iter().product();
        let rows: usize = x.shape()[..lead].iter().product();
        let m = x
            .to_shape((rows, rest))
            .map_err(|e| OpsError::InvalidArgument {
                op,
                message: e.to_string(),
            })?;
        let sum = m.sum_axis(Axis(0));
        return sum
            .into_shape_with_order(IxDyn(shape))
            .map_err(|e| OpsError::InvalidArgument {
                op,
                message: e.to_string(),
            });
    }
    let mut acc = x.to_owned();
    for _ in 0..lead {
        acc = acc.sum_axis(Axis(0));
    }
    for (i, &d) in shape.iter().enumerate() {
        if d == 1 && acc.shape()[i] != 1 {
            acc = acc.sum_axis(Axis(i)).insert_axis(Axis(i));
        }
    }
    Ok(acc)
}

/// Sum over `axis`; with `keep_dims` the axis stays with size 1.
pub fn reduce_sum(x: ArrayViewD<f32>, axis: usize, keep_dims: bool) -> Result<ArrayD<f32>> {
    if axis >= x.ndim() {
        return Err(OpsError::InvalidArgument {
            op: "reduce_sum",
            message: format!("axis {axis} out of range for shape {:?}", x.shape()),
        });
    }
    let s = x.sum_axis(Axis(axis));
    Ok(if keep_dims {
        s.insert_axis(Axis(axis))
    } else {
        s
    })
}

/// Index of the largest entry along the last axis (the first one on ties); the result drops
/// that axis. Errors on a scalar or an empty last axis.
pub fn argmax_last(x: ArrayViewD<f32>) -> Result<ArrayD<usize>> {
    let Some(&n) = x.shape().last() else {
        return Err(OpsError::InvalidArgument {
            op: "argmax",
            message: "argmax of a scalar".into(),
        });
    };
    if n == 0 {
        return Err(OpsError::InvalidArgument {
            op: "argmax",
            message: format!("empty last axis in shape {:?}", x.shape()),
        });
    }
    let last = Axis(x.ndim() - 1);
    Ok(x.map_axis(last, |lane| {
        let mut best = 0;
        for (i, &v) in lane.iter().enumerate() {
            if v > lane[best] {
                best = i;
            }
        }
        best
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plain::gradcheck::{check_grad, random};
    use ndarray::{array, Array, Ix2};

    #[test]
    fn matmul_values_and_errors() {
        let a = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let b = array![[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0]];
        assert_eq!(
            matmul(a.view(), b.view()).unwrap(),
            array![[4.0, 5.0], [10.0, 11.0]]
        );
        assert!(matches!(
            matmul(a.view(), a.view()),
            Err(OpsError::ShapeMismatch { .. })
        ));
        let dy = Array2::<f32>::zeros((3, 3));
        assert!(matmul_backward(a.view(), b.view(), dy.view()).is_err());
    }

    #[test]
    fn parallel_gemm_matches_serial() {
        // Row split.
        let a = random(&[700, 60], 1).into_dimensionality::<Ix2>().unwrap();
        let b = random(&[60, 40], 2).into_dimensionality::<Ix2>().unwrap();
        let d = &gemm(a.view(), b.view()) - &a.dot(&b);
        assert!(d.iter().all(|v| v.abs() < 1e-4));
        // Split of the shared dimension.
        let a = random(&[30, 5000], 3).into_dimensionality::<Ix2>().unwrap();
        let b = random(&[5000, 20], 4).into_dimensionality::<Ix2>().unwrap();
        let d = &gemm(a.view(), b.view()) - &a.dot(&b);
        assert!(d.iter().all(|v| v.abs() < 1e-3));
    }

    #[test]
    fn matmul_gradcheck() {
        let a = random(&[3, 4], 5);
        let b = random(&[4, 2], 6);
        let r = random(&[3, 2], 7);
        let r2 = r.view().into_dimensionality::<Ix2>().unwrap();
        let f = |a: &ArrayD<f32>, b: &ArrayD<f32>| {
            let a = a.view().into_dimensionality::<Ix2>().unwrap();
            let b = b.view().into_dimensionality::<Ix2>().unwrap();
            matmul(a, b).unwrap().into_dyn()
        };
        let (da, db) = matmul_backward(
            a.view().into_dimensionality().unwrap(),
            b.view().into_dimensionality().unwrap(),
            r2,
        )
        .unwrap();
        check_grad("matmul da", &a, &da.into_dyn(), &r, |a| f(a, &b));
        check_grad("matmul db", &b, &db.into_dyn(), &r, |b| f(&a, b));
    }

    #[test]
    fn broadcasting_arithmetic() {
        let x = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn();
        let bias = array![10.0f32, 20.0, 30.0].into_dyn();
        assert_eq!(
            add(x.view(), bias.view()).unwrap(),
            array![[11.0f32, 22.0, 33.0], [14.0, 25.0, 36.0]].into_dyn()
        );
        assert_eq!(
            sub(bias.view(), x.view()).unwrap(),
            array![[9.0f32, 18.0, 27.0], [6.0, 15.0, 24.0]].into_dyn()
        );
        assert_eq!(
            mul(x.view(), x.view()).unwrap(),
            array![[1.0f32, 4.0, 9.0], [16.0, 25.0, 36.0]].into_dyn()
        );
        let col = array![[2.0f32], [3.0]].into_dyn();
        assert_eq!(
            mul(x.view(), col.view()).unwrap(),
            array![[2.0f32, 4.0, 6.0], [12.0, 15.0, 18.0]].into_dyn()
        );
        let bad = array![1.0f32, 2.0].into_dyn();
        assert!(matches!(
            add(x.view(), bad.view()),
            Err(OpsError::ShapeMismatch { .. })
        ));
        // A large broadcast takes the parallel path.
        let big = Array::from_elem(IxDyn(&[300, 300]), 1.0f32);
        let s = add(big.view(), array![2.0f32].into_dyn().view()).unwrap();
        assert!(s.iter().all(|&v| v == 3.0));
    }

    #[test]
    fn reductions() {
        let x = array![[1.0f32, 5.0, 3.0], [4.0, 2.0, 6.0]].into_dyn();
        assert_eq!(
            reduce_sum(x.view(), 0, false).unwrap(),
            array![5.0f32, 7.0, 9.0].into_dyn()
        );
        assert_eq!(
            reduce_sum(x.view(), 1, true).unwrap(),
            array![[9.0f32], [12.0]].into_dyn()
        );
        assert!(reduce_sum(x.view(), 2, false).is_err());
        assert_eq!(argmax_last(x.view()).unwrap(), array![1usize, 2].into_dyn());
        let scalar = ArrayD::<f32>::zeros(IxDyn(&[]));
        assert!(argmax_last(scalar.view()).is_err());
        assert_eq!(
            reduce_to_shape(x.view(), &[3]).unwrap(),
            array![5.0f32, 7.0, 9.0].into_dyn()
        );
        assert_eq!(
            reduce_to_shape(x.view(), &[2, 1]).unwrap(),
            array![[9.0f32], [12.0]].into_dyn()
        );
        assert_eq!(
            reduce_to_shape(x.view(), &[1, 3]).unwrap(),
            array![[5.0f32, 7.0, 9.0]].into_dyn()
        );
        assert!(reduce_to_shape(x.view(), &[2]).is_err());
        assert!(reduce_to_shape(x.view(), &[4, 2, 3]).is_err());
    }
}

//! Layout kernels for comparison trees on shares: pooling windows as a trailing axis, strided
//! slices and concatenation along an axis, index ramps, one-hot vectors and per-lane
//! rotations. They only move or create elements, so they apply to each share alone.

use ndarray::{concatenate, ArrayD, ArrayRefD, Axis, IxDyn, Slice};

use crate::im2col::{for_each_chunk, Window2d};
use crate::{OpsError, Result};

fn invalid(op: &'static str, message: String) -> OpsError {
    OpsError::InvalidArgument { op, message }
}

/// The pooling windows of an NHWC tensor as `[N, OH, OW, C, KH*KW]`, window cells in
/// row-major order; cells outside the input (SAME padding) hold `pad`.
///
/// Errors: [`OpsError::InvalidArgument`] if `x` is not 4-D or the window does not fit.
pub fn windows(x: &ArrayRefD<u64>, win: &Window2d, pad: u64) -> Result<ArrayD<u64>> {
    let &[n, h, w, c] = x.shape() else {
        return Err(invalid(
            "windows",
            format!("expected NHWC, got shape {:?}", x.shape()),
        ));
    };
    let g = win.geometry([n, h, w, c])?;
    let cells = g.kh * g.kw;
    let xs = x.as_standard_layout();
    let src = xs
        .as_slice()
        .ok_or_else(|| invalid("windows", "input is not contiguous".into()))?;
    let mut out = vec![pad; n * g.oh * g.ow * c * cells];
    // One chunk per (image, output row).
    for_each_chunk(&mut out, g.ow * c * cells, |i, chunk| {
        let (img, oy) = (i / g.oh.max(1), i % g.oh.max(1));
        for ky in 0..g.kh {
            let Some(iy) = g.in_y(oy, ky) else { continue };
            for kx in 0..g.kw {
                for ox in 0..g.ow {
                    let Some(ix) = g.in_x(ox, kx) else { continue };
                    let s = ((img * h + iy) * w + ix) * c;
                    for ch in 0..c {
                        chunk[(ox * c + ch) * cells + ky * g.kw + kx] = src[s + ch];
                    }
                }
            }
        }
    });
    ArrayD::from_shape_vec(IxDyn(&[n, g.oh, g.ow, c, cells]), out)
        .map_err(|e| invalid("windows", e.to_string()))
}

/// The adjoint of [`windows`]: adds every window cell of `cells` (`[N, OH, OW, C, KH*KW]`)
/// back into the input cell it was read from, giving the NHWC `input_shape` (wrapping mod
/// 2^64); padding cells are dropped. The scatter of max pooling's backward pass.
///
/// Errors: [`OpsError::InvalidArgument`] if `input_shape` is not 4-D, the window does not fit
/// or `cells` is not the windows' shape.
pub fn windows_add(
    cells: &ArrayRefD<u64>,
    input_shape: &[usize],
    win: &Window2d,
) -> Result<ArrayD<u64>> {
    let &[n, h, w, c] = input_shape else {
        return Err(invalid(
            "windows_add",
            format!("expected an NHWC shape, got {input_shape:?}"),
        ));
    };
    let g = win.geometry([n, h, w, c])?;
    let k = g.kh * g.kw;
    if cells.shape() != [n, g.oh, g.ow, c, k] {
        return Err(invalid(
            "windows_add",
            format!(
                "expected windows of shape {:?}, got {:?}",
                [n, g.oh, g.ow, c, k],
                cells.shape()
            ),
        ));
    }
    let cs = cells.as_standard_layout();
    let src = cs
        .as_slice()
        .ok_or_else(|| invalid("windows_add", "windows are not contiguous".into()))?;
    let mut out = vec![0u64; n * h * w * c];
    let image = h * w * c;
    // One chunk per image: its windows only touch it.
    for_each_chunk(&mut out, image, |img, dst| {
        for oy in 0..g.oh {
            for ky in 0..g.kh {
                let Some(iy) = g.in_y(oy, ky) else { continue };
                for ox in 0..g.ow {
                    let row = ((img * g.oh + oy) * g.ow + ox) * c;
                    for kx in 0..g.kw {
                        let Some(ix) = g.in_x(ox, kx) else { continue };
                        let d = (iy * w + ix) * c;
                        for ch in 0..c {
                            let v = src[(row + ch) * k + ky * g.kw + kx];
                            dst[d + ch] = dst[d + ch].wrapping_add(v);
                        }
                    }
                }
            }
        }
    });
    ArrayD::from_shape_vec(IxDyn(input_shape), out)
        .map_err(|e| invalid("windows_add", e.to_string()))
}

/// `len` elements of `axis` from `start`, every `step`-th, as a new tensor.
///
/// Errors: [`OpsError::InvalidArgument`] if the axis or the range is out of bounds.
pub fn strided_slice<T: Clone>(
    x: &ArrayRefD<T>,
    axis: usize,
    start: usize,
    step: usize,
    len: usize,
) -> Result<ArrayD<T>> {
    let dim = x.shape().get(axis).copied();
    let last = start.checked_add(step.saturating_mul(len.saturating_sub(1)));
    match (dim, last) {
        (Some(d), Some(l)) if step > 0 && len > 0 && l < d => {}
        _ => {
            return Err(invalid(
                "strided_slice",
                format!(
                    "{len} elements from {start} by {step} on axis {axis} of shape {:?}",
                    x.shape()
                ),
            ))
        }
    }
    let (true, Some(src)) = (x.is_standard_layout(), x.as_slice()) else {
        // Another layout: copy only the chosen elements, in logical order.
        let end = start + step * (len - 1) + 1;
        let s = Slice::new(start as isize, Some(end as isize), step as isize);
        return Ok(x
            .slice_axis(Axis(axis), s)
            .as_standard_layout()
            .into_owned());
    };
    // Row-major: every index of the axes before `axis` holds `d` runs of `inner` contiguous
    // elements, one per index of `axis`; copy the chosen runs whole.
    let d = x.shape()[axis];
    let inner: usize = x.shape()[axis + 1..].iter().product();
    let outer: usize = x.shape()[..axis].iter().product();
    let mut shape = x.shape().to_vec();
    shape[axis] = len;
    let mut out = Vec::with_capacity(outer * len * inner);
    if inner > 0 {
        for block in src.chunks_exact(d * inner) {
            for k in 0..len {
                let from = (start + k * step) * inner;
                push_run(&mut out, &block[from..from + inner]);
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| invalid("strided_slice", e.to_string()))
}

/// Appends `run` to `out`: a short run element by element, as a call to copy a few elements
/// costs more than the elements. A max-pooling tree's candidates are runs of one: one
/// `strided_slice` of `[128, 12, 12, 16, 4, 1]` (B's first pooling) took 3.7 ns per element
/// copied with `extend_from_slice`, 1.7 ns element by element; a `concat` of runs of two, 1.75
/// and 1.2 ns (one core, memory reused).
#[inline(always)]
fn push_run<T: Clone>(out: &mut Vec<T>, run: &[T]) {
    if run.len() < SHORT_RUN {
        for e in run {
            out.push(e.clone());
        }
    } else {
        out.extend_from_slice(run);
    }
}

/// Runs shorter than this are copied element by element ([`push_run`]).
const SHORT_RUN: usize = 16;

/// `a` and `b` joined along `axis`, in standard layout (ndarray's `concatenate` may give a
/// column-major result for operands whose other axes are all 1, which later kernels would
/// read element by element).
///
/// Errors: [`OpsError::ShapeMismatch`] if the other axes differ.
pub fn concat<T: Clone>(a: &ArrayRefD<T>, b: &ArrayRefD<T>, axis: usize) -> Result<ArrayD<T>> {
    let mismatch = || OpsError::ShapeMismatch {
        op: "concat",
        left: a.shape().to_vec(),
        right: b.shape().to_vec(),
    };
    let (sa, sb) = (a.shape(), b.shape());
    let fits = axis < sa.len()
        && sa.len() == sb.len()
        && (0..sa.len()).all(|i| i == axis || sa[i] == sb[i]);
    if !fits {
        return Err(mismatch());
    }
    let (Some(xa), Some(xb)) = (a.as_slice(), b.as_slice()) else {
        let joined = concatenate(Axis(axis), &[a.view(), b.view()]).map_err(|_| mismatch())?;
        return Ok(joined.as_standard_layout().into_owned());
    };
    // Row-major: for each index of the axes before `axis`, a run of `a` then a run of `b`.
    let inner: usize = sa[axis + 1..].iter().product();
    let (ra, rb) = (sa[axis] * inner, sb[axis] * inner);
    let outer: usize = sa[..axis].iter().product();
    let mut out = Vec::with_capacity(xa.len() + xb.len());
    for o in 0..outer {
        push_run(&mut out, &xa[o * ra..(o + 1) * ra]);
        push_run(&mut out, &xb[o * rb..(o + 1) * rb]);
    }
    let mut shape = sa.to_vec();
    shape[axis] += sb[axis];
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|_| mismatch())
}

/// A tensor of `shape` holding `scale * i` at position `i` of `axis` (wrapping).
///
/// Errors: [`OpsError::InvalidArgument`] if `axis` is out of range.
pub fn iota(shape: &[usize], axis: usize, scale: u64) -> Result<ArrayD<u64>> {
    if axis >= shape.len() {
        return Err(invalid("iota", format!("axis {axis} of shape {shape:?}")));
    }
    let n = super::checked_len("iota", shape)?;
    // Row-major: each index of the axes before `axis` holds, for every `i` of `axis`, a run of
    // `inner` elements equal to `scale * i`.
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(n);
    if n > 0 {
        let outer = n / (shape[axis] * inner);
        for _ in 0..outer {
            for i in 0..shape[axis] {
                let v = (i as u64).wrapping_mul(scale);
                out.resize(out.len() + inner, v);
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(shape), out).map_err(|e| invalid("iota", e.to_string()))
}

/// For every word `g`, the one-hot vector of length `n` with a 1 at `g mod n`.
///
/// Errors: [`OpsError::InvalidArgument`] if `n` is 0.
pub fn one_hot(g: &ArrayRefD<u64>, n: usize) -> Result<ArrayD<u64>> {
    if n == 0 {
        return Err(invalid("one_hot", "length 0".into()));
    }
    let mut shape = g.shape().to_vec();
    shape.push(n);
    let mut out = vec![0u64; g.len() * n];
    for (lane, &w) in out.chunks_mut(n).zip(g.iter()) {
        lane[(w % n as u64) as usize] = 1;
    }
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| invalid("one_hot", e.to_string()))
}

/// `out[.., i] = x[.., (i + k) mod n]` for `i < keep`, with `n` the last axis of `x` and one
/// word `k` per lane.
///
/// Errors: [`OpsError::ShapeMismatch`] if `k` is not `x` without its last axis,
/// [`OpsError::InvalidArgument`] if `keep > n`.
pub fn rotate_last(x: &ArrayRefD<u64>, k: &ArrayRefD<u64>, keep: usize) -> Result<ArrayD<u64>> {
    let n = x.shape().last().copied().unwrap_or(0);
    if x.shape().split_last().map(|(_, rest)| rest) != Some(k.shape()) {
        return Err(OpsError::ShapeMismatch {
            op: "rotate_last",
            left: x.shape().to_vec(),
            right: k.shape().to_vec(),
        });
    }
    if keep > n || n == 0 {
        return Err(invalid("rotate_last", format!("keep {keep} of {n}")));
    }
    let xs = x.as_standard_layout();
    let xs = xs
        .as_slice()
        .ok_or_else(|| invalid("rotate_last", "input is not contiguous".into()))?;
    let mut out = Vec::with_capacity(k.len() * keep);
    for (lane, &kk) in xs.chunks(n).zip(k.iter()) {
        let shift = (kk % n as u64) as usize;
        out.extend((0..keep).map(|i| lane[(i + shift) % n]));
    }
    let mut shape = k.shape().to_vec();
    shape.push(keep);
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| invalid("rotate_last", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im2col::Padding;
    use ndarray::{arr1, arr2};

    #[test]
    fn windows_fill_padding_cells() {
        // 1x3x3x1 image 0..9, 2x2 windows stride 2 SAME: 2x2 outputs, pads after.
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 3, 3, 1]), (0..9).collect()).unwrap();
        let win = Window2d::new((2, 2), (2, 2), Padding::Same);
        let w = windows(&x, &win, 99).unwrap();
        assert_eq!(w.shape(), &[1, 2, 2, 1, 4]);
        let rows: Vec<Vec<u64>> = w
            .into_shape_with_order((4, 4))
            .unwrap()
            .outer_iter()
            .map(|r| r.to_vec())
            .collect();
        assert_eq!(
            rows,
            vec![
                vec![0, 1, 3, 4],
                vec![2, 99, 5, 99],
                vec![6, 7, 99, 99],
                vec![8, 99, 99, 99]
            ]
        );
    }

    #[test]
    fn strided_slice_equals_ndarrays_slicing_on_every_axis() {
        let x = ArrayD::from_shape_fn(IxDyn(&[3, 5, 6, 4]), |i| {
            (((i[0] * 5 + i[1]) * 6 + i[2]) * 4 + i[3]) as u64
        });
        // a transposed tensor, which is not in standard layout
        let t = x.view().permuted_axes(IxDyn(&[2, 0, 3, 1])).to_owned();
        for x in [x, t] {
            for axis in 0..4 {
                let d = x.shape()[axis];
                for (start, step) in [(0, 1), (1, 2), (0, 3), (d - 1, 1)] {
                    let len = (d - 1 - start) / step + 1;
                    let end = start + step * (len - 1) + 1;
                    let s = Slice::new(start as isize, Some(end as isize), step as isize);
                    let want = x.slice_axis(Axis(axis), s).to_owned();
                    let got = strided_slice(&x, axis, start, step, len).unwrap();
                    assert_eq!(got, want, "axis {axis} from {start} by {step}");
                }
            }
        }
        // an empty axis after the one sliced
        let e = ArrayD::<u64>::zeros(IxDyn(&[2, 4, 0]));
        assert_eq!(strided_slice(&e, 1, 1, 2, 2).unwrap().shape(), &[2, 2, 0]);
    }

    #[test]
    fn iota_equals_its_definition_on_every_axis() {
        for shape in [vec![3usize, 4, 5, 2], vec![7], vec![2, 0, 3]] {
            for axis in 0..shape.len() {
                let want = ArrayD::from_shape_fn(IxDyn(&shape), |i| (i[axis] as u64) * 11);
                assert_eq!(
                    iota(&shape, axis, 11).unwrap(),
                    want,
                    "{shape:?} axis {axis}"
                );
            }
        }
    }

    /// `concat` equals ndarray's `concatenate` on every axis, in standard layout, for
    /// standard operands, a transposed one, axes of length 1 and an empty one.
    #[test]
    fn concat_is_concatenate_in_standard_layout() {
        let t = |shape: &[usize], from: u64| {
            let n: usize = shape.iter().product();
            ArrayD::from_shape_vec(IxDyn(shape), (from..from + n as u64).collect()).unwrap()
        };
        let cases: [(&[usize], &[usize], usize); 6] = [
            (&[2, 3, 4], &[2, 5, 4], 1),
            (&[2, 3, 4], &[1, 3, 4], 0),
            (&[2, 3, 4], &[2, 3, 2], 2),
            (&[6, 1, 1], &[6, 1, 1], 2),
            (&[6, 2, 1], &[6, 2, 1], 1),
            (&[3, 0, 2], &[3, 4, 2], 1),
        ];
        for (sa, sb, axis) in cases {
            let (a, b) = (t(sa, 0), t(sb, 100));
            let want = concatenate(Axis(axis), &[a.view(), b.view()]).unwrap();
            let got = concat(&a, &b, axis).unwrap();
            assert_eq!(got, want, "{sa:?} {sb:?} axis {axis}");
            assert!(got.is_standard_layout(), "{sa:?} {sb:?} axis {axis}");
        }
        // A transposed operand: the element-by-element path, in standard layout too.
        let a = t(&[4, 3], 0);
        let at = a.t().to_owned();
        let b = t(&[3, 2], 50);
        let got = concat(&a.t(), &b, 1).unwrap();
        assert_eq!(got, concatenate(Axis(1), &[at.view(), b.view()]).unwrap());
        assert!(got.is_standard_layout());
        assert!(matches!(
            concat(&t(&[2, 3], 0), &t(&[3, 3], 0), 1),
            Err(OpsError::ShapeMismatch { .. })
        ));
        assert!(concat(&t(&[2, 3], 0), &t(&[2, 3], 0), 2).is_err());
        assert!(concat(&t(&[2, 3], 0), &t(&[2, 3, 1], 0), 0).is_err());
    }

    #[test]
    fn slices_concat_iota_one_hot_rotate() {
        let x = arr2(&[[0u64, 1, 2, 3, 4], [5, 6, 7, 8, 9]]).into_dyn();
        assert_eq!(
            strided_slice(&x, 1, 1, 2, 2).unwrap(),
            arr2(&[[1u64, 3], [6, 8]]).into_dyn()
        );
        assert!(strided_slice(&x, 1, 1, 2, 3).is_err());
        let y = strided_slice(&x, 1, 4, 1, 1).unwrap();
        assert_eq!(
            concat(&y, &y, 1).unwrap(),
            arr2(&[[4u64, 4], [9, 9]]).into_dyn()
        );
        assert_eq!(
            iota(&[2, 3], 1, 10).unwrap(),
            arr2(&[[0u64, 10, 20], [0, 10, 20]]).into_dyn()
        );
        let g = arr1(&[5u64, u64::MAX]).into_dyn();
        assert_eq!(
            one_hot(&g, 4).unwrap(),
            arr2(&[[0u64, 1, 0, 0], [0, 0, 0, 1]]).into_dyn()
        );
        let k = arr1(&[1u64, 6]).into_dyn();
        let rows = arr2(&[[0u64, 1, 2, 3], [0, 1, 2, 3]]).into_dyn();
        assert_eq!(
            rotate_last(&rows, &k, 3).unwrap(),
            arr2(&[[1u64, 2, 3], [2, 3, 0]]).into_dyn()
        );
    }
}

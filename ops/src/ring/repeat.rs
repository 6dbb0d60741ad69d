//! Fast paths of the broadcasting elementwise operations for the two common broadcasts: a
//! scalar (a public constant: a truncation's bias, a `1 - 2t`), and an operand repeated over
//! the leading axes (a bias `[c]` over `[n, .., c]`). ndarray's `Zip` walks a broadcast
//! operand with a zero stride, element by element: about 5x slower than two contiguous
//! operands for the first, and 15x in place (`cargo bench --bench kernels -- elementwise`
//! times them).

use ndarray::{ArrayD, ArrayRefD};
use rayon::prelude::*;

use super::arith::{map_with, PAR_THRESHOLD};

/// How an operand broadcasts to a shape, where a fast path applies.
pub(super) enum Repeat<'a, T> {
    /// One element.
    Scalar(T),
    /// Its elements (standard layout) repeated over the shape's leading axes: its shape,
    /// without leading 1s, is the shape's trailing axes.
    Tail(&'a [T]),
}

impl<T: Copy + Send + Sync> Repeat<'_, T> {
    /// `x[i] = f(x[i], the repeated element for i)` over `x`, whose length is a multiple of
    /// the repeated operand's.
    pub(super) fn apply<F>(self, x: &mut [T], f: F)
    where
        F: Fn(T, T) -> T + Send + Sync,
    {
        match self {
            Repeat::Scalar(s) => each_scalar(x, s, f),
            Repeat::Tail(tail) => each_tail(x, tail, f),
        }
    }
}

/// How `b` broadcasts to `shape`, if a fast path applies.
pub(super) fn repeat_of<'a, T: Copy>(
    b: &'a ArrayRefD<T>,
    shape: &[usize],
) -> Option<Repeat<'a, T>> {
    if b.len() == 1 {
        return b.iter().next().map(|&v| Repeat::Scalar(v));
    }
    if b.is_empty() {
        return None;
    }
    let dims = b.shape();
    let tail = &dims[dims.iter().take_while(|&&d| d == 1).count()..];
    if tail.is_empty() || tail.len() > shape.len() || shape[shape.len() - tail.len()..] != *tail {
        return None;
    }
    b.as_slice().map(Repeat::Tail)
}

/// `x[i] = f(x[i], s)` over `x`, in parallel when `x` is large.
fn each_scalar<T, F>(x: &mut [T], s: T, f: F)
where
    T: Copy + Send + Sync,
    F: Fn(T, T) -> T + Send + Sync,
{
    if x.len() >= PAR_THRESHOLD {
        x.par_iter_mut()
            .with_min_len(1 << 14)
            .for_each(|v| *v = f(*v, s));
    } else {
        x.iter_mut().for_each(|v| *v = f(*v, s));
    }
}

/// `x[i] = f(x[i], tail[i mod tail.len()])` over `x` (whose length is a multiple of the
/// tail's), in parallel when `x` is large.
fn each_tail<T, F>(x: &mut [T], tail: &[T], f: F)
where
    T: Copy + Send + Sync,
    F: Fn(T, T) -> T + Send + Sync,
{
    let m = tail.len();
    let row = |chunk: &mut [T]| {
        for part in chunk.chunks_exact_mut(m) {
            for (v, &t) in part.iter_mut().zip(tail) {
                *v = f(*v, t);
            }
        }
    };
    if x.len() >= PAR_THRESHOLD {
        // Whole repetitions per task, about 16k elements each.
        let per = m * (1usize << 14).div_ceil(m);
        x.par_chunks_mut(per).for_each(row);
    } else {
        row(x);
    }
}

/// `f(full[i], other's element for i)` into a new array, `other` repeated over `full`'s
/// leading axes (a caller whose repeated operand comes first swaps `f`'s arguments).
pub(super) fn zip_repeat<T, F>(full: &ArrayRefD<T>, other: Repeat<'_, T>, f: F) -> Option<ArrayD<T>>
where
    T: Copy + Send + Sync,
    F: Fn(T, T) -> T + Send + Sync,
{
    match other {
        // One pass, as an elementwise map (which is fast over any layout without a zero
        // stride).
        Repeat::Scalar(s) => Some(map_with(full, |v| f(v, s))),
        Repeat::Tail(_) => {
            let mut out = full.as_standard_layout().into_owned();
            other.apply(out.as_slice_mut()?, f);
            Some(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn};

    use crate::ring::{add, add_assign, sub, sub_assign};

    fn words(shape: &[usize], seed: u64) -> ArrayD<u64> {
        let mut i = seed;
        ArrayD::from_shape_simple_fn(IxDyn(shape), || {
            i = i
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            i
        })
    }

    /// The generic broadcast (zero strides), the reference of the fast paths.
    fn reference(a: &ArrayD<u64>, b: &ArrayD<u64>, f: fn(u64, u64) -> u64) -> ArrayD<u64> {
        let shape = crate::broadcast::broadcast_shape("test", a.shape(), b.shape()).unwrap();
        let (av, bv) = (
            a.broadcast(IxDyn(&shape)).unwrap(),
            b.broadcast(IxDyn(&shape)).unwrap(),
        );
        ndarray::Zip::from(&av)
            .and(&bv)
            .map_collect(|&x, &y| f(x, y))
    }

    #[test]
    fn scalars_and_trailing_operands_broadcast_as_numpy() {
        // Small and large (parallel) operands; scalars of shape [] and [1, 1]; tails with and
        // without leading 1s; a transposed (not standard) full operand.
        for n in [3usize, 1 << 16] {
            let full = words(&[n, 2, 3], 1);
            let others = [
                words(&[], 2),
                words(&[1, 1], 3),
                words(&[3], 4),
                words(&[2, 3], 5),
                words(&[1, 2, 3], 6),
                words(&[2, 1], 7),
            ];
            for b in &others {
                let ops: [fn(u64, u64) -> u64; 2] = [u64::wrapping_add, u64::wrapping_sub];
                for (k, f) in ops.into_iter().enumerate() {
                    let op = if k == 0 { add } else { sub };
                    assert_eq!(
                        op(&full, b).unwrap(),
                        reference(&full, b, f),
                        "{:?}",
                        b.shape()
                    );
                    assert_eq!(
                        op(b, &full).unwrap(),
                        reference(b, &full, f),
                        "{:?}",
                        b.shape()
                    );
                    let mut x = full.clone();
                    if k == 0 {
                        add_assign(&mut x, b).unwrap();
                    } else {
                        sub_assign(&mut x, b).unwrap();
                    }
                    assert_eq!(x, reference(&full, b, f), "{:?} in place", b.shape());
                }
            }
            let t = full.view().reversed_axes().to_owned();
            let tv = full.view().reversed_axes();
            let s = words(&[], 8);
            assert_eq!(add(&tv, &s).unwrap(), reference(&t, &s, u64::wrapping_add));
            // Empty operands.
            let (empty, none) = (words(&[2, 0], 9), words(&[0], 10));
            assert_eq!(add(&empty, &none).unwrap().shape(), &[2, 0]);
            // In place, an operand of more axes than the target does not broadcast to it.
            let mut small = words(&[3], 11);
            for b in [words(&[1, 1, 3], 12), words(&[1, 1], 13)] {
                assert!(add_assign(&mut small, &b).is_err(), "{:?}", b.shape());
            }
        }
    }
}

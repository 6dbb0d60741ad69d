//! The SecureNN backward pass of ReLU and max pooling on hand-lowered programs: the gradient
//! reuses the forward's comparisons (no second PrivateCompare) and is exact (the products are
//! with shared 0/1 words, untruncated), checked against the plaintext reference on the
//! fixed-point values of `dy`.

mod common;

use ndarray::{ArrayD, Ix4};
use shareflow::compiler::ir::Kernel;
use shareflow::compiler::lower::securenn::grads::{maxpool_grad, relu_grad};
use shareflow::compiler::lower::securenn::maxpool::maxpool2d;
use shareflow::compiler::lower::securenn::relu::relu;
use shareflow::compiler::lower::{Lowerer, Shared};
use shareflow::compiler::options::Comparison;
use shareflow::compiler::{CompileOptions, ProtocolKind};
use shareflow::graphs::op::Window;
use shareflow::graphs::Padding;
use shareflow::ops::fixed::FixedPoint;
use shareflow::ops::plain::{self, Window2d};

use common::lowered::{output, parties, reveal, run, share};
use common::uniform;

fn options(comparison: Comparison) -> CompileOptions {
    CompileOptions {
        comparison,
        ..CompileOptions::default()
    }
}

/// The opened comparisons with the carry circuit on every tensor.
fn circuit() -> CompileOptions {
    CompileOptions {
        carry_min_words: 0,
        ..CompileOptions::default()
    }
}

fn lowerer(comparison: Comparison) -> Lowerer {
    Lowerer::new(parties(), options(comparison))
}

/// The comparisons in the program: PrivateCompare's kernels and the carry circuit's last
/// (one per server each).
fn private_compares(cx: &Lowerer) -> usize {
    cx.low
        .nodes
        .iter()
        .filter(|n| {
            matches!(
                n.kernel,
                Kernel::PrivateCompare { .. } | Kernel::CarryOut { .. }
            )
        })
        .count()
}

/// `x` as its fixed-point value (what the shares hold).
fn rounded(x: &ArrayD<f32>) -> ArrayD<f32> {
    let fp = FixedPoint::new(16).unwrap();
    fp.decode_f32(&fp.encode(x).unwrap())
}

#[test]
fn relu_grad_reuses_the_forward_sign() {
    // Values away from 0, where DReLU (x >= 0) and the reference's derivative (x > 0) differ.
    let x = uniform(&[3, 7], -2.0, 2.0, 1).mapv(|v| if v.abs() < 0.01 { 0.5 } else { v });
    let dy = uniform(&[3, 7], -2.0, 2.0, 2);
    let methods = [
        ("opened", options(Comparison::Opened)),
        ("paper", options(Comparison::Paper)),
        ("carry circuit", circuit()),
    ];
    for (comparison, options) in methods {
        let mut cx = Lowerer::new(parties(), options);
        let (xs, dys) = (share(&mut cx, &x, 3), share(&mut cx, &dy, 4));
        let y = relu(&mut cx, &xs);
        reveal(&mut cx, &y, "y");
        let forward = private_compares(&cx);
        assert!(forward > 0);
        let g = relu_grad(&mut cx, &xs, &dys);
        reveal(&mut cx, &g, "g");
        assert_eq!(
            private_compares(&cx),
            forward,
            "{comparison}: a second comparison"
        );
        let (run, _) = run(cx, ProtocolKind::SecureNN);
        let expected = plain::relu_backward(x.view(), rounded(&dy).view()).unwrap();
        assert_eq!(output(&run, "g"), expected, "{comparison}");
        assert_eq!(output(&run, "y"), rounded(&x).mapv(|v| v.max(0.0)));
    }
}

fn check_maxpool(shape: [usize; 4], window: Window, options: CompileOptions) {
    let x = uniform(&shape, -4.0, 4.0, 5);
    let win = Window2d::new(
        (window.size[0], window.size[1]),
        (window.stride[0], window.stride[1]),
        match window.padding {
            Padding::Same => plain::Padding::Same,
            Padding::Valid => plain::Padding::Valid,
        },
    );
    let x4 = rounded(&x).into_dimensionality::<Ix4>().unwrap();
    let pooled = plain::maxpool2d(x4.view(), &win).unwrap();
    let out: Vec<usize> = pooled.y.shape().to_vec();
    let dy = rounded(&uniform(&out, -2.0, 2.0, 6));
    let dy4 = dy.view().into_dimensionality::<Ix4>().unwrap();
    let expected = plain::maxpool2d_backward(dy4, pooled.argmax.view(), shape).unwrap();

    let mut cx = Lowerer::new(parties(), options);
    let (xs, dys): (Shared, Shared) = (share(&mut cx, &x, 7), share(&mut cx, &dy, 8));
    let y = maxpool2d(&mut cx, &xs, &window, &out).unwrap();
    reveal(&mut cx, &y, "y");
    let forward = private_compares(&cx);
    let g = maxpool_grad(&mut cx, &xs, &dys, &window).unwrap();
    reveal(&mut cx, &g, "g");
    let what = format!(
        "{shape:?} {window:?} {:?}, circuit from {} words",
        options.comparison, options.carry_min_words
    );
    assert_eq!(
        private_compares(&cx),
        forward,
        "{what}: a second comparison"
    );
    let (run, _) = run(cx, ProtocolKind::SecureNN);
    assert_eq!(output(&run, "y"), pooled.y.into_dyn(), "{what}");
    assert_eq!(output(&run, "g"), expected.into_dyn(), "{what}");
}

#[test]
fn maxpool_grad_reuses_the_forward_tree() {
    let w = |k: usize, padding| Window {
        size: [k, k],
        stride: [2, 2],
        padding,
    };
    let opened = options(Comparison::Opened);
    check_maxpool([2, 4, 4, 3], w(2, Padding::Valid), opened);
    // Overlapping windows: cells shared by two or four windows add their gradients.
    check_maxpool([1, 5, 5, 2], w(3, Padding::Valid), opened);
    check_maxpool([1, 6, 6, 2], w(3, Padding::Same), opened);
    check_maxpool(
        [1, 4, 4, 2],
        w(2, Padding::Valid),
        options(Comparison::Paper),
    );
    check_maxpool([2, 4, 4, 3], w(2, Padding::Valid), circuit());
    check_maxpool([1, 6, 6, 2], w(3, Padding::Same), circuit());
}

/// Without a forward max pool, the routing takes its own comparisons, once.
#[test]
fn maxpool_grad_alone_compares_once() {
    let window = Window {
        size: [2, 2],
        stride: [2, 2],
        padding: Padding::Valid,
    };
    let x = uniform(&[1, 4, 4, 2], -4.0, 4.0, 9);
    let dy = uniform(&[1, 2, 2, 2], -2.0, 2.0, 10);
    let mut cx = lowerer(Comparison::Opened);
    let (xs, dys) = (share(&mut cx, &x, 1), share(&mut cx, &dy, 2));
    let g = maxpool_grad(&mut cx, &xs, &dys, &window).unwrap();
    let once = private_compares(&cx);
    let again = maxpool_grad(&mut cx, &xs, &dys, &window).unwrap();
    assert_eq!(private_compares(&cx), once);
    reveal(&mut cx, &g, "g");
    reveal(&mut cx, &again, "again");
    let (run, _) = run(cx, ProtocolKind::SecureNN);
    assert_eq!(output(&run, "g"), output(&run, "again"));
}

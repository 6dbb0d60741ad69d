//! The model API's secure predictions with every party a QUIC endpoint on 127.0.0.1
//! ([`Model::over_quic`]): the same predictions as in process on a few test images, whole
//! batches and a remainder.

use shareflow_graphs::zoo::{Loss, ModelKind};
use shareflow_runtime::data::{data_dir, models_dir, Mnist, Split};
use shareflow_runtime::model::{Model, Optimizer, Protocol};
use shareflow_runtime::plain::train::argmax;

#[test]
fn predictions_over_quic_equal_in_process() {
    let test = Mnist::load(&data_dir(None), Split::Test, Some(5)).unwrap();
    let x = test.images.clone().into_dyn();
    let mut model = Model::zoo(ModelKind::A);
    model.load(&models_dir().join("a.npz")).unwrap();
    model.compile(
        Protocol::SecureNN,
        Optimizer::sgd(0.0),
        Loss::SoftmaxCrossEntropy,
    );
    let inproc = model.predict(&x, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.over_quic(dir.path());
    let quic = model.predict(&x, 2).unwrap();
    assert_eq!(quic.dim(), (5, 10));
    for (a, b) in quic.outer_iter().zip(inproc.outer_iter()) {
        assert_eq!(argmax(a.as_slice().unwrap()), argmax(b.as_slice().unwrap()));
        for (p, q) in a.iter().zip(b.iter()) {
            assert!((p - q).abs() < 0.02, "{p} vs {q}");
        }
    }
    let eval = model.evaluate(&x, &test.labels, 5).unwrap();
    assert!(eval.bytes > 0 && eval.rounds > 0);
}

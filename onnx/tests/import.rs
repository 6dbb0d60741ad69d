//! The PyTorch fixtures (networks A-D of the zoo and a residual CNN with batch normalisation,
//! exported by `torch.onnx.export`; see `fixtures/make_fixtures.py`) and the Keras ones
//! (A-D through tf2onnx; `fixtures/make_keras_fixtures.py`) imported as graphs: the
//! exporter's logits on the first 20 MNIST test images in plaintext, the same predictions
//! under SecureNN, and a refusal naming the node and operator of an unsupported model.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use ndarray::{ArrayD, Axis};
use prost::Message;
use shareflow_compiler::{compile, CompileOptions, ProtocolKind};
use shareflow_graphs::zoo::{CLIENT, IMAGE, LOGITS, MODEL_OWNER};
use shareflow_onnx::proto::{
    tensor_proto::DataType, tensor_shape_proto, type_proto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use shareflow_onnx::{OnnxError, OnnxModel};
use shareflow_runtime::data::npy::read_npy;
use shareflow_runtime::data::{data_dir, Mnist, Split};
use shareflow_runtime::exec::{run_in_process, Plan};
use shareflow_runtime::plain::forward;

const FIXTURES: [&str; 9] = [
    "torch_a",
    "torch_b",
    "torch_c",
    "torch_d",
    "torch_residual",
    "keras_a",
    "keras_b",
    "keras_c",
    "keras_d",
];

fn fixture(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(file)
}

fn argmax_rows(a: &ArrayD<f32>) -> Vec<usize> {
    a.axis_iter(Axis(0))
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            best
        })
        .collect()
}

#[test]
fn imported_fixtures_give_the_exporters_logits_in_plaintext() {
    let test = Mnist::load(&data_dir(None), Split::Test, Some(20)).unwrap();
    let images = test.batch(0, 20);
    for name in FIXTURES {
        let model = OnnxModel::load(&fixture(&format!("{name}.onnx"))).unwrap();
        let m = model.import(20).unwrap();
        // An NCHW image is given NHWC; a model that arranges its input itself takes it as
        // declared (`[N, 1, 28, 28]`, Keras' `[N, 28, 28, 1]`): one channel, the same order.
        assert_eq!(m.input_shape.iter().product::<usize>(), 20 * 784, "{name}");
        let mut inputs: HashMap<String, ArrayD<f32>> = m.weights.clone().into_iter().collect();
        inputs.insert(
            IMAGE.to_string(),
            images
                .clone()
                .into_shape_with_order(m.input_shape.clone())
                .unwrap(),
        );
        let eval = forward(&m.graph, &inputs).unwrap();
        let got = eval.value(&m.graph, m.logits).unwrap();
        let expected = read_npy(&fixture(&format!("{name}.logits.npy"))).unwrap();
        assert_eq!(got.shape(), expected.shape(), "{name}");
        let err = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!("{name}: plaintext within {err:e} of the exporter's logits");
        assert!(err < 1e-4, "{name}: largest difference {err}");
    }
}

#[test]
fn imported_fixtures_predict_as_the_exporter_under_securenn() {
    const N: usize = 8;
    let test = Mnist::load(&data_dir(None), Split::Test, Some(N)).unwrap();
    let images = test.batch(0, N);
    for name in FIXTURES {
        let m = OnnxModel::load(&fixture(&format!("{name}.onnx")))
            .unwrap()
            .import(N)
            .unwrap();
        let compiled =
            compile(&m.graph, ProtocolKind::SecureNN, CompileOptions::default()).unwrap();
        let plans: Vec<Plan> = compiled
            .programs
            .iter()
            .map(|p| Plan::new(p).unwrap())
            .collect();
        let inputs = HashMap::from([
            (
                MODEL_OWNER.to_string(),
                m.weights.clone().into_iter().collect(),
            ),
            (
                CLIENT.to_string(),
                HashMap::from([(
                    IMAGE.to_string(),
                    images
                        .clone()
                        .into_shape_with_order(m.input_shape.clone())
                        .unwrap(),
                )]),
            ),
        ]);
        let run = run_in_process(&compiled, &plans, &inputs, Duration::from_secs(120)).unwrap();
        let got = run.float(CLIENT, LOGITS).unwrap();
        let expected = read_npy(&fixture(&format!("{name}.logits.npy"))).unwrap();
        let expected = expected.slice_axis(Axis(0), (0..N).into()).to_owned();
        assert_eq!(argmax_rows(got), argmax_rows(&expected), "{name}");
        let err = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!("{name}: SecureNN within {err:e} of the exporter's logits");
        assert!(err < 0.05, "{name}: largest difference {err}");
    }
}

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A model `x [1, 4] -> Relu -> <op> -> y`.
fn tiny_model(op: &str) -> Vec<u8> {
    let node = |name: &str, op: &str, input: &str, output: &str| NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: vec![input.into()],
        output: vec![output.into()],
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            name: Some("tiny".into()),
            node: vec![node("relu1", "Relu", "x", "h"), node("act", op, "h", "y")],
            input: vec![value_info("x", &[1, 4])],
            output: vec![value_info("y", &[1, 4])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn an_unsupported_operator_is_refused_by_name() {
    let model = OnnxModel::parse("tiny.onnx", &tiny_model("Tanh")).unwrap();
    let err = model.import(1).err().expect("Tanh must be refused");
    assert!(
        matches!(&err, OnnxError::Unsupported { node, op, .. } if node.contains("act") && op == "Tanh"),
        "{err}"
    );
    assert!(err.to_string().contains("Tanh"), "{err}");
    // The same model with a supported operator imports.
    let ok = OnnxModel::parse("tiny.onnx", &tiny_model("Sigmoid")).unwrap();
    assert!(ok.import(3).is_ok());
}

#[test]
fn bytes_that_are_not_a_model_are_refused() {
    let err = OnnxModel::parse("junk.onnx", b"\xff\xff\xff not protobuf").unwrap_err();
    assert!(matches!(err, OnnxError::Decode { .. }), "{err}");
}

fn initializer(name: &str, dims: &[i64], values: Vec<f32>) -> shareflow_onnx::proto::TensorProto {
    shareflow_onnx::proto::TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        float_data: values,
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: &[i64]) -> shareflow_onnx::proto::AttributeProto {
    shareflow_onnx::proto::AttributeProto {
        name: Some(name.into()),
        r#type: Some(shareflow_onnx::proto::attribute_proto::AttributeType::Ints as i32),
        ints: ints.to_vec(),
        ..Default::default()
    }
}

/// `x [1, 1, 4, 4] -> Conv 3x3 (2 filters, SAME pads) [-> Relu] -> BatchNormalization -> y`.
fn conv_bn_model(relu_between: bool) -> Vec<u8> {
    let w: Vec<f32> = (0..18).map(|i| (i as f32 - 9.0) / 7.0).collect();
    let mut node = vec![NodeProto {
        name: Some("conv".into()),
        op_type: Some("Conv".into()),
        input: vec!["x".into(), "w".into(), "b".into()],
        output: vec!["c".into()],
        attribute: vec![attr_ints("pads", &[1, 1, 1, 1])],
        ..Default::default()
    }];
    let mut bn_input = "c";
    if relu_between {
        node.push(NodeProto {
            name: Some("relu".into()),
            op_type: Some("Relu".into()),
            input: vec!["c".into()],
            output: vec!["r".into()],
            ..Default::default()
        });
        bn_input = "r";
    }
    node.push(NodeProto {
        name: Some("bn".into()),
        op_type: Some("BatchNormalization".into()),
        input: ["", "gamma", "beta", "mean", "var"]
            .iter()
            .map(|s| {
                if s.is_empty() {
                    bn_input.to_string()
                } else {
                    s.to_string()
                }
            })
            .collect(),
        output: vec!["y".into()],
        ..Default::default()
    });
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            node,
            initializer: vec![
                initializer("w", &[2, 1, 3, 3], w),
                initializer("b", &[2], vec![0.5, -0.25]),
                initializer("gamma", &[2], vec![2.0, 0.5]),
                initializer("beta", &[2], vec![0.1, -0.2]),
                initializer("mean", &[2], vec![0.3, -0.4]),
                initializer("var", &[2], vec![4.0, 0.25]),
            ],
            input: vec![value_info("x", &[1, 1, 4, 4])],
            output: vec![value_info("y", &[1, 2, 4, 4])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn a_batch_normalisation_after_a_conv_is_folded_into_it() {
    let m = OnnxModel::parse("conv_bn.onnx", &conv_bn_model(false))
        .unwrap()
        .import(1)
        .unwrap();
    // Folded: the weights are the filter and bias only, no statistics.
    let names: Vec<&str> = m.weights.keys().map(String::as_str).collect();
    assert_eq!(names, ["b", "w"]);
    let x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut inputs: HashMap<String, ArrayD<f32>> = m.weights.clone().into_iter().collect();
    inputs.insert(
        IMAGE.to_string(),
        ArrayD::from_shape_vec(vec![1, 4, 4, 1], x.clone()).unwrap(),
    );
    let eval = forward(&m.graph, &inputs).unwrap();
    let got = eval.value(&m.graph, m.logits).unwrap();
    assert_eq!(got.shape(), &[1, 2, 4, 4]);
    // The reference: a direct NCHW convolution with padding 1, then the normalisation.
    let w: Vec<f32> = (0..18).map(|i| (i as f32 - 9.0) / 7.0).collect();
    let (b, gamma, beta, mean, var) = (
        [0.5, -0.25],
        [2.0, 0.5],
        [0.1, -0.2],
        [0.3, -0.4],
        [4.0f32, 0.25],
    );
    for o in 0..2 {
        for i in 0..4i32 {
            for j in 0..4i32 {
                let mut acc = b[o];
                for di in 0..3i32 {
                    for dj in 0..3i32 {
                        let (y, xx) = (i + di - 1, j + dj - 1);
                        if (0..4).contains(&y) && (0..4).contains(&xx) {
                            acc += w[o * 9 + (di * 3 + dj) as usize] * x[(y * 4 + xx) as usize];
                        }
                    }
                }
                let want = (acc - mean[o]) / (var[o] + 1e-5).sqrt() * gamma[o] + beta[o];
                let have = got[[0, o, i as usize, j as usize]];
                assert!(
                    (have - want).abs() < 1e-5,
                    "[{o},{i},{j}]: {have} vs {want}"
                );
            }
        }
    }
}

#[test]
fn a_batch_normalisation_that_cannot_be_folded_is_refused() {
    let err = OnnxModel::parse("conv_relu_bn.onnx", &conv_bn_model(true))
        .unwrap()
        .import(1)
        .err()
        .expect("a batch normalisation after a ReLU must be refused");
    assert!(
        matches!(&err, OnnxError::Node { node, op, .. } if node.contains("bn") && op == "BatchNormalization"),
        "{err}"
    );
}

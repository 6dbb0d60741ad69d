//! The PyTorch fixtures (networks A-D of the zoo and a residual CNN with batch normalisation,
//! exported by `torch.onnx.export`; see `fixtures/make_fixtures.py`) imported as graphs: the
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

const FIXTURES: [&str; 5] = ["torch_a", "torch_b", "torch_c", "torch_d", "torch_residual"];

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
        assert_eq!(m.input_shape, vec![20, 28, 28, 1], "{name}");
        let mut inputs: HashMap<String, ArrayD<f32>> = m.weights.clone().into_iter().collect();
        inputs.insert(IMAGE.to_string(), images.clone());
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
                HashMap::from([(IMAGE.to_string(), images.clone())]),
            ),
        ]);
        let run = run_in_process(&compiled, &plans, &inputs, Duration::from_secs(120)).unwrap();
        let got = run.float(CLIENT, LOGITS).unwrap();
        let expected = read_npy(&fixture(&format!("{name}.logits.npy"))).unwrap();
        let expected = expected.slice_axis(Axis(0), (0..N).into()).to_owned();
        assert_eq!(argmax_rows(&got), argmax_rows(&expected), "{name}");
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

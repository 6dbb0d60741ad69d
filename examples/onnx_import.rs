//! A model exported to ONNX (from PyTorch or Keras) run privately.
//!
//! ```text
//! cargo run --release --example onnx_import -- [FILE.onnx] [--images N] [--data DIR]
//! ```
//!
//! Imports the model (default: `onnx/fixtures/torch_c.onnx`, LeNet exported by PyTorch): its
//! initializers become the model owner's private inputs, the graph input the client's image
//! (an NCHW model is given NHWC images), the output goes to the client alone. Then predicts the
//! first N MNIST test images (default 20) in plaintext and under SecureNN, every party a
//! thread of this process, and prints the accuracy, the agreement of the two and the cost of
//! the private prediction. The same from the command line: `shareflow eval --onnx FILE
//! --protocol securenn`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use shareflow::compiler::{compile, CompileOptions, ProtocolKind};
use shareflow::graphs::zoo::{CLIENT, IMAGE, LOGITS, MODEL_OWNER};
use shareflow::ndarray::{ArrayD, Axis, IxDyn};
use shareflow::onnx::OnnxModel;
use shareflow::runtime::data::{data_dir, Mnist, Split};
use shareflow::runtime::exec::{Session, SessionProgram};
use shareflow::runtime::plain::forward;

struct Args {
    file: PathBuf,
    images: usize,
    data: Option<PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        file: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("onnx/fixtures/torch_c.onnx"),
        images: 20,
        data: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--images" => {
                args.images = value("--images")?
                    .parse()
                    .map_err(|e| format!("--images: {e}"))?
            }
            "--data" => args.data = Some(PathBuf::from(value("--data")?)),
            file if !file.starts_with("--") => args.file = PathBuf::from(file),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if args.images == 0 {
        return Err("--images must be at least 1".into());
    }
    Ok(args)
}

fn argmax(row: shareflow::ndarray::ArrayView1<f32>) -> usize {
    row.iter()
        .enumerate()
        .fold(
            (0, f32::MIN),
            |best, (i, &v)| if v > best.1 { (i, v) } else { best },
        )
        .0
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let test = Mnist::load(&data_dir(args.data), Split::Test, Some(args.images))?;
    let n = test.len();
    let model = OnnxModel::load(&args.file)?;
    let imported = model.import(n)?;
    println!(
        "{}: {} weights, input {:?}",
        args.file.display(),
        imported.weights.len(),
        imported.input_shape
    );
    let images = test
        .images
        .clone()
        .into_dyn()
        .into_shape_with_order(IxDyn(&imported.input_shape))?;

    // Plaintext: the imported graph evaluated in f32.
    let mut plain_inputs: HashMap<String, ArrayD<f32>> =
        imported.weights.clone().into_iter().collect();
    plain_inputs.insert(IMAGE.to_string(), images.clone());
    let plain = forward(&imported.graph, &plain_inputs)?
        .value(&imported.graph, imported.logits)?
        .clone();

    // SecureNN: the model owner shares the weights, the client the images.
    let compiled = compile(
        &imported.graph,
        ProtocolKind::SecureNN,
        CompileOptions::default(),
    )?;
    let (rounds, bytes) = (compiled.rounds, compiled.cost().bytes);
    let mut session = Session::new(compiled.parties.clone(), Duration::from_secs(300));
    let program = SessionProgram::new(compiled)?;
    let inputs = HashMap::from([
        (
            MODEL_OWNER.to_string(),
            imported.weights.clone().into_iter().collect(),
        ),
        (
            CLIENT.to_string(),
            HashMap::from([(IMAGE.to_string(), images)]),
        ),
    ]);
    let run = session.run(&program, &inputs)?;
    let secure = run.float(CLIENT, LOGITS)?;

    let (mut right, mut agree) = (0, 0);
    for (i, (p, s)) in plain
        .axis_iter(Axis(0))
        .zip(secure.axis_iter(Axis(0)))
        .enumerate()
    {
        let (p, s) = (
            argmax(p.into_dimensionality()?),
            argmax(s.into_dimensionality()?),
        );
        right += usize::from(s == usize::from(test.labels[i]));
        agree += usize::from(s == p);
    }
    println!(
        "SecureNN on {n} images: accuracy {:.2}%, agreement with plaintext {agree}/{n}, \
         {:.0} ms, {bytes} bytes in {rounds} rounds",
        100.0 * right as f64 / n as f64,
        run.wall_ms
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

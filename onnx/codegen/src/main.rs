//! Generates the Rust types of `onnx.proto` (package `onnx`) into `../src/proto/onnx.rs`.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let proto_dir = root.join("proto");
    let out = root.join("src").join("proto");
    std::fs::create_dir_all(&out)?;
    let descriptors = protox::compile([proto_dir.join("onnx.proto")], [&proto_dir])?;
    prost_build::Config::new()
        .out_dir(&out)
        .compile_fds(descriptors)?;
    println!("wrote {}", out.join("onnx.rs").display());
    Ok(())
}

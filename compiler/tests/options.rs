//! Compile options: every entry point refuses an option outside its sound range, naming the
//! field, and the options it accepts are the ones the programs use.

use shareflow_compiler::ir::{Kernel, LowGraph};
use shareflow_compiler::options::{MAX_DEGREE, MAX_FRAC_BITS, MIN_FRAC_BITS};
use shareflow_compiler::{
    assemble, compile, compile_serving, CompileError, CompileOptions, CompiledGraph, PolyApprox,
    ProtocolKind,
};
use shareflow_graphs::{Graph, GraphBuilder};

/// `relu(x @ w)`: the client's x, the model owner's w, the result to the client.
fn small() -> Graph {
    let g = GraphBuilder::new();
    let owner = g.party("model-owner");
    let client = g.party("client");
    let x = g.input(client, "x", [2, 3]);
    let w = g.input(owner, "w", [3, 2]);
    x.matmul(&w).relu().sigmoid().output_to(client, "y");
    g.build().unwrap()
}

/// The field an error names, if it is an option error.
fn field(e: CompileError) -> &'static str {
    match e {
        CompileError::Option { field, .. } => field,
        other => panic!("not an option error: {other}"),
    }
}

/// Every compile entry point with `options`: the field each refuses, or `None` if all accept.
fn refused(options: CompileOptions) -> Option<&'static str> {
    let graph = small();
    let mut fields = Vec::new();
    for protocol in [ProtocolKind::Pond, ProtocolKind::SecureNN] {
        fields.push(compile(&graph, protocol, options).err().map(field));
        fields.push(compile_serving(&graph, protocol, options).err().map(field));
    }
    let parties = ["server0", "server1", "helper"].map(String::from).to_vec();
    let assembled = assemble(
        LowGraph::default(),
        parties,
        ProtocolKind::SecureNN,
        options,
    );
    fields.push(assembled.err().map(field));
    assert!(
        fields.windows(2).all(|w| w[0] == w[1]),
        "the entry points disagree: {fields:?}"
    );
    fields[0]
}

fn with_frac_bits(frac_bits: u32) -> CompileOptions {
    CompileOptions {
        frac_bits,
        ..CompileOptions::default()
    }
}

fn with_relu(interval: f64, degree: usize) -> CompileOptions {
    CompileOptions {
        relu: PolyApprox { interval, degree },
        ..CompileOptions::default()
    }
}

#[test]
fn defaults_and_the_edges_of_each_range_compile() {
    assert_eq!(refused(CompileOptions::default()), None);
    assert_eq!(refused(with_frac_bits(MIN_FRAC_BITS)), None);
    assert_eq!(refused(with_frac_bits(MAX_FRAC_BITS)), None);
    assert_eq!(refused(with_relu(8.0, 1)), None);
    assert_eq!(refused(with_relu(1.0, MAX_DEGREE)), None);
    // 2^(8 - 16) and 2^(16 - 8) at 16 fractional bits.
    assert_eq!(refused(with_relu(1.0 / 256.0, 10)), None);
    assert_eq!(refused(with_relu(256.0, 10)), None);
}

#[test]
fn frac_bits_out_of_range_are_refused() {
    for bad in [0, 1, MIN_FRAC_BITS - 1, MAX_FRAC_BITS + 1, 40, 64] {
        assert_eq!(refused(with_frac_bits(bad)), Some("frac_bits"), "{bad}");
    }
    let err = compile(&small(), ProtocolKind::Pond, with_frac_bits(40))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("frac_bits = 40") && err.contains("12 to 24"),
        "{err}"
    );
}

#[test]
fn polynomials_out_of_range_are_refused() {
    for degree in [0, MAX_DEGREE + 1, 100] {
        assert_eq!(
            refused(with_relu(8.0, degree)),
            Some("relu.degree"),
            "{degree}"
        );
    }
    for interval in [0.001, 0.0, -8.0, 1000.0, f64::NAN, f64::INFINITY] {
        assert_eq!(
            refused(with_relu(interval, 10)),
            Some("relu.interval"),
            "{interval}"
        );
    }
    // Coefficients that do not encode: degree 20 on [-8, 8] has one of about 4.9e4, and 16
    // fractional bits encode below 2^15.
    let err = compile(&small(), ProtocolKind::Pond, with_relu(8.0, 20)).unwrap_err();
    assert!(err.to_string().contains("coefficients"), "{err}");
    assert_eq!(field(err), "relu.interval");
    // The interval's bounds follow the precision: 256 is too wide at 12 fractional bits.
    let narrow = CompileOptions {
        frac_bits: 12,
        ..with_relu(256.0, 10)
    };
    assert_eq!(refused(narrow), Some("relu.interval"));
    let sigmoid = CompileOptions {
        sigmoid: PolyApprox {
            interval: 8.0,
            degree: 0,
        },
        ..CompileOptions::default()
    };
    assert_eq!(refused(sigmoid), Some("sigmoid.degree"));
    let err = compile(&small(), ProtocolKind::Pond, with_relu(0.001, 10))
        .unwrap_err()
        .to_string();
    assert!(err.contains("relu.interval = 0.001"), "{err}");
}

/// The fractional bits of every encoding and decoding in the programs.
fn encodings(g: &CompiledGraph) -> Vec<u32> {
    let mut out: Vec<u32> = g
        .programs
        .iter()
        .flat_map(|p| &p.instrs)
        .filter_map(|i| match i.kernel {
            Kernel::Encode { frac_bits } | Kernel::Decode { frac_bits } => Some(frac_bits),
            _ => None,
        })
        .collect();
    out.dedup();
    out
}

#[test]
fn frac_bits_are_the_options() {
    for protocol in [ProtocolKind::Pond, ProtocolKind::SecureNN] {
        for f in [12, 20] {
            let g = compile(&small(), protocol, with_frac_bits(f)).unwrap();
            assert_eq!(g.options.frac_bits, f);
            assert_eq!(encodings(&g), vec![f], "{}", protocol.name());
            let s = compile_serving(&small(), protocol, with_frac_bits(f)).unwrap();
            assert_eq!(encodings(&s.setup), vec![f]);
            assert_eq!(encodings(&s.predict), vec![f]);
        }
    }
}

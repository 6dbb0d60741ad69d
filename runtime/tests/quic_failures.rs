//! What a failing party tells its peers over QUIC: its name and the kind of failure, never its
//! data. The client's image has a value beyond the fixed-point range; its own error names the
//! value and where it is, every other party's names only the client and the kind.

use std::collections::HashMap;
use std::thread;
use std::time::Duration;

use ndarray::{ArrayD, IxDyn};
use shareflow_compiler::{compile, CompileOptions, ProtocolKind};
use shareflow_graphs::GraphBuilder;
use shareflow_runtime::cluster::ClusterConfig;
use shareflow_runtime::exec::Randomness;
use shareflow_runtime::party::run_over_quic;
use shareflow_runtime::RuntimeError;

#[test]
fn an_input_out_of_range_reaches_the_peers_as_a_kind_without_its_value() {
    let g = GraphBuilder::new();
    let owner = g.party("model-owner");
    let client = g.party("client");
    let x = g.input(client, "image", [1, 200]);
    let w = g.input(owner, "weights", [200, 2]);
    x.matmul(&w).output_to(client, "y");
    let graph = g.build().unwrap();
    let compiled = compile(&graph, ProtocolKind::Pond, CompileOptions::default()).unwrap();

    let mut image = ArrayD::<f32>::zeros(IxDyn(&[1, 200]));
    image[[0, 100]] = 40000.5;
    let inputs: HashMap<&str, HashMap<String, ArrayD<f32>>> = HashMap::from([
        ("client", HashMap::from([("image".to_string(), image)])),
        (
            "model-owner",
            HashMap::from([(
                "weights".to_string(),
                ArrayD::<f32>::from_elem(IxDyn(&[200, 2]), 0.5),
            )]),
        ),
    ]);

    let dir = tempfile::tempdir().unwrap();
    let cluster = ClusterConfig::local(&compiled.parties, dir.path(), 0).unwrap();
    let handles: Vec<_> = compiled
        .parties
        .iter()
        .map(|party| {
            let (compiled, cluster) = (compiled.clone(), cluster.clone());
            let (party, inputs) = (party.clone(), inputs.get(party.as_str()).cloned());
            thread::spawn(move || {
                let inputs = inputs.unwrap_or_default();
                let timeout = Duration::from_secs(10);
                let run = run_over_quic(
                    &compiled,
                    &party,
                    &cluster,
                    &inputs,
                    timeout,
                    &Randomness::Os,
                );
                (party, run.map(|_| ()))
            })
        })
        .collect();
    let errors: Vec<(String, RuntimeError)> = handles
        .into_iter()
        .map(|h| {
            let (party, run) = h.join().unwrap();
            (party, run.unwrap_err())
        })
        .collect();
    for (party, e) in &errors {
        println!("{party}: {e}");
    }
    assert_eq!(errors.len(), 5);
    for (party, e) in &errors {
        let text = e.to_string();
        if party == "client" {
            // the failing party keeps the detail
            assert!(
                text.contains("40000.5") && text.contains("index 100"),
                "{text}"
            );
            continue;
        }
        assert!(text.contains("client"), "{party}: {text}");
        assert!(text.contains("encoding of an input"), "{party}: {text}");
        for secret in ["40000.5", "index 100", "image", "100"] {
            assert!(!text.contains(secret), "{party}: {text}");
        }
    }
}

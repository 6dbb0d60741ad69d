//! An in-process run refuses inputs it would otherwise ignore: for a party the graph does not
//! have, or under a name the party's program does not take.

use std::collections::HashMap;
use std::time::Duration;

use ndarray::{ArrayD, IxDyn};
use shareflow_compiler::{compile, compile_serving, CompileOptions, ProtocolKind};
use shareflow_graphs::GraphBuilder;
use shareflow_runtime::exec::{run_in_process, Plan, ServingSession};
use shareflow_runtime::RuntimeError;

type Inputs = HashMap<String, HashMap<String, ArrayD<f32>>>;

/// `x + w` to the client: the client's x, the model owner's w.
fn graph() -> shareflow_graphs::Graph {
    let g = GraphBuilder::new();
    let owner = g.party("model-owner");
    let client = g.party("client");
    let x = g.input(client, "x", [2]);
    let w = g.input(owner, "w", [2]);
    (&x + &w).output_to(client, "y");
    g.build().unwrap()
}

fn value(v: f32) -> ArrayD<f32> {
    ArrayD::from_elem(IxDyn(&[2]), v)
}

fn inputs(entries: &[(&str, &str, f32)]) -> Inputs {
    let mut out: Inputs = HashMap::new();
    for &(party, name, v) in entries {
        out.entry(party.into())
            .or_default()
            .insert(name.into(), value(v));
    }
    out
}

fn run(given: &Inputs) -> Result<f32, RuntimeError> {
    let compiled = compile(&graph(), ProtocolKind::SecureNN, CompileOptions::default()).unwrap();
    let plans: Vec<Plan> = compiled
        .programs
        .iter()
        .map(|p| Plan::new(p).unwrap())
        .collect();
    let run = run_in_process(&compiled, &plans, given, Duration::from_secs(10))?;
    Ok(run.float("client", "y")?[0])
}

#[test]
fn the_right_inputs_run() {
    let given = inputs(&[("client", "x", 1.5), ("model-owner", "w", 2.0)]);
    assert_eq!(run(&given).unwrap(), 3.5);
}

#[test]
fn an_unknown_party_is_refused() {
    let given = inputs(&[
        ("client", "x", 1.5),
        ("model-owner", "w", 2.0),
        ("model-ower", "w", 2.0),
    ]);
    let err = run(&given).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::UnknownParty { party, .. } if party == "model-ower"),
        "{err}"
    );
    assert!(err.to_string().contains("model-owner"), "{err}");
}

#[test]
fn an_unknown_input_is_refused() {
    // A misspelt name beside the right one, a name of another party, and an input given to a
    // compute party.
    let cases = [
        (
            inputs(&[
                ("client", "x", 1.0),
                ("client", "xx", 1.0),
                ("model-owner", "w", 2.0),
            ]),
            "client",
            "xx",
        ),
        (
            inputs(&[
                ("client", "x", 1.0),
                ("client", "w", 1.0),
                ("model-owner", "w", 2.0),
            ]),
            "client",
            "w",
        ),
        (
            inputs(&[
                ("client", "x", 1.0),
                ("model-owner", "w", 2.0),
                ("server0", "x", 1.0),
            ]),
            "server0",
            "x",
        ),
    ];
    for (given, who, name) in cases {
        let err = run(&given).unwrap_err();
        assert!(
            matches!(&err, RuntimeError::UnknownInput { party, input, .. }
                if party == who && input == name),
            "{err}"
        );
    }
}

#[test]
fn serving_runs_refuse_the_other_runs_inputs() {
    let serving =
        compile_serving(&graph(), ProtocolKind::SecureNN, CompileOptions::default()).unwrap();
    let mut session = ServingSession::new(serving, Duration::from_secs(10)).unwrap();
    // The client's x belongs to predictions, not to setup.
    let both = inputs(&[("client", "x", 1.0), ("model-owner", "w", 2.0)]);
    let err = session.setup(&both).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::UnknownInput { party, input, .. }
            if party == "client" && input == "x"),
        "{err}"
    );
    session
        .setup(&inputs(&[("model-owner", "w", 2.0)]))
        .unwrap();
    let err = session.predict(&both).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::UnknownInput { party, input, .. }
            if party == "model-owner" && input == "w"),
        "{err}"
    );
    let run = session.predict(&inputs(&[("client", "x", 1.0)])).unwrap();
    assert_eq!(run.float("client", "y").unwrap()[0], 3.0);
}

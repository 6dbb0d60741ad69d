//! Serving reuses the masked weights, never the masks of fresh inputs: two predictions of the
//! same input send no equal message (every share, opening and correction is fresh), while
//! both decode to the right result; so too two predictions over one set of connections (as
//! `run-graph --serving` runs them).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{max_abs_diff, plaintext, random_inputs};
use ndarray::ArrayD;
use shareflow::compiler::ir::{Exchange, Kernel, ValueId};
use shareflow::compiler::lower::{S0, S1};
use shareflow::compiler::{
    compile_serving, CompileOptions, CompiledGraph, Instr, ProtocolKind, ServingGraph,
};
use shareflow::graphs::GraphBuilder;
use shareflow::ops::Value;
use shareflow::runtime::exec::serving::{ServingParty, RUN_ROUNDS};
use shareflow::runtime::exec::{run_in_process_with, run_party_with, Plan, Randomness, Store};
use shareflow::runtime::transport::{InProcNetwork, Transport, TransportStats};
use shareflow::runtime::wire::Batch;

type Inputs = HashMap<String, HashMap<String, ArrayD<f32>>>;
/// (from, to, round, key) and the value sent.
type Log = Arc<Mutex<Vec<((usize, usize, u32, u64), Value)>>>;

/// A transport that records every entry it sends.
struct Recording<T> {
    inner: T,
    log: Log,
}

impl<T: Transport> Transport for Recording<T> {
    fn me(&self) -> usize {
        self.inner.me()
    }
    fn num_parties(&self) -> usize {
        self.inner.num_parties()
    }
    fn party_name(&self, index: usize) -> &str {
        self.inner.party_name(index)
    }
    fn session(&self) -> [u8; 16] {
        self.inner.session()
    }
    fn send(&mut self, to: usize, batch: Batch) -> shareflow::runtime::Result<()> {
        let mut log = self.log.lock().unwrap();
        for (key, v) in &batch.entries {
            log.push(((batch.from as usize, to, batch.round, *key), v.clone()));
        }
        drop(log);
        self.inner.send(to, batch)
    }
    fn recv(&mut self, from: usize, round: u32) -> shareflow::runtime::Result<Batch> {
        self.inner.recv(from, round)
    }
    fn stats(&self) -> &TransportStats {
        self.inner.stats()
    }
    fn progress(&mut self) {
        self.inner.progress()
    }
}

/// One prediction with every party's store; returns the client's output and the log.
fn predict(
    s: &ServingGraph,
    plans: &[Plan],
    stores: &mut [Store],
    inputs: &Inputs,
) -> (ArrayD<f32>, Log) {
    let session: [u8; 16] = shareflow::ops::prg::fresh_seed().unwrap()[..16]
        .try_into()
        .unwrap();
    let log = Log::default();
    let transports =
        InProcNetwork::new(s.predict.parties.clone(), session, Duration::from_secs(30));
    let empty = HashMap::new();
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = transports
            .into_iter()
            .zip(&s.predict.programs)
            .zip(plans)
            .zip(stores.iter_mut())
            .map(|(((t, program), plan), store)| {
                let mut t = Recording {
                    inner: t,
                    log: log.clone(),
                };
                let inputs = inputs.get(&program.party).unwrap_or(&empty);
                scope.spawn(move || run_party_with(program, plan, &mut t, inputs, store).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let client = results
        .iter()
        .find(|r| r.metrics.party == "client")
        .unwrap();
    (client.float("y").unwrap().clone(), log)
}

#[test]
fn two_predictions_of_one_input_share_no_message() {
    let g = GraphBuilder::new();
    let owner = g.party("model-owner");
    let client = g.party("client");
    let x = g.input(client, "x", [2, 3]);
    let w1 = g.input(owner, "w1", [3, 4]);
    let w2 = g.input(owner, "w2", [4, 2]);
    let h = x.matmul(&w1);
    (&h * &h).matmul(&w2).output_to(client, "y");
    let graph = g.build().unwrap();
    let inputs = random_inputs(&graph, -1.0, 1.0, 3);
    let expected = &plaintext(&graph, &inputs)["y"];
    let split = |want: bool| -> Inputs {
        inputs
            .iter()
            .filter(|(p, _)| (p.as_str() == "model-owner") == want)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };

    let s = compile_serving(&graph, ProtocolKind::Pond, CompileOptions::default()).unwrap();
    let plan = |g: &CompiledGraph| {
        g.programs
            .iter()
            .map(|p| Plan::new(p).unwrap())
            .collect::<Vec<_>>()
    };
    let mut stores = vec![Store::new(); s.setup.parties.len()];
    run_in_process_with(
        &s.setup,
        &plan(&s.setup),
        &split(true),
        Duration::from_secs(30),
        &mut stores,
    )
    .unwrap();
    let plans = plan(&s.predict);
    let (y1, log1) = predict(&s, &plans, &mut stores, &split(false));
    let (y2, log2) = predict(&s, &plans, &mut stores, &split(false));
    // Three truncated products of values below 4: within a few dozen ulps.
    for y in [&y1, &y2] {
        assert!(
            max_abs_diff(y, expected) < 1e-3,
            "{}",
            max_abs_diff(y, expected)
        );
    }

    let first: HashMap<_, _> = log1.lock().unwrap().iter().cloned().collect();
    let second: HashMap<_, _> = log2.lock().unwrap().iter().cloned().collect();
    assert_eq!(first.len(), second.len());
    assert!(first.len() > 10);
    for (at, v) in &second {
        assert_eq!(first[at].kind(), v.kind(), "{at:?}");
        assert_ne!(
            &first[at], v,
            "entry (from, to, round, key) {at:?} is sent again unchanged"
        );
    }
    // The values the servers open (the sum of the two shares they swap) are fresh too: the
    // masks of fresh inputs are drawn anew, not loaded from setup.
    let pairs = openings(&s.predict);
    assert!(pairs.len() >= 4, "{pairs:?}");
    for (a, b) in pairs {
        let opened = |log: &HashMap<(usize, usize, u32, u64), Value>| {
            let find = |key: ValueId| {
                log.iter()
                    .find(|(at, _)| at.3 == key.0 as u64)
                    .map(|(_, v)| v.clone())
                    .unwrap()
            };
            match (find(a), find(b)) {
                (Value::Ring(x), Value::Ring(y)) => ndarray::Zip::from(&x)
                    .and(&y)
                    .map_collect(|p, q| p.wrapping_add(*q)),
                other => panic!("{other:?}"),
            }
        };
        assert_ne!(
            opened(&first),
            opened(&second),
            "the opening of sends {a} and {b} is the same in two predictions"
        );
    }
}

#[test]
fn two_predictions_over_one_connection_share_no_message() {
    let g = GraphBuilder::new();
    let owner = g.party("model-owner");
    let client = g.party("client");
    let x = g.input(client, "x", [2, 3]);
    let w = g.input(owner, "w", [3, 2]);
    x.matmul(&w).relu().output_to(client, "y");
    let graph = g.build().unwrap();
    let inputs = random_inputs(&graph, -1.0, 1.0, 5);
    let expected = &plaintext(&graph, &inputs)["y"];
    let s = compile_serving(&graph, ProtocolKind::SecureNN, CompileOptions::default()).unwrap();

    // every party: one transport, setup and then two predictions of the same input
    let session = [0x11; 16];
    let log = Log::default();
    let transports = InProcNetwork::new(s.setup.parties.clone(), session, Duration::from_secs(30));
    let empty = HashMap::new();
    let outputs: Vec<Vec<Option<ArrayD<f32>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = transports
            .into_iter()
            .zip(&s.setup.parties)
            .map(|(t, party)| {
                let (s, log, empty) = (&s, log.clone(), &empty);
                let inputs = inputs.get(party).unwrap_or(empty);
                scope.spawn(move || {
                    let mut t = Recording { inner: t, log };
                    let mut p = ServingParty::new(s, party).unwrap();
                    p.setup(&mut t, inputs, &Randomness::Os).unwrap();
                    (0..2)
                        .map(|_| {
                            let r = p.predict(&mut t, inputs, &Randomness::Os).unwrap();
                            r.float("y").ok().cloned()
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let client_index = s.setup.parties.iter().position(|p| p == "client").unwrap();
    for y in &outputs[client_index] {
        let y = y.as_ref().unwrap();
        assert!(max_abs_diff(y, expected) < 1e-3, "{y} vs {expected}");
    }

    // the entries of each run, by (from, to, round within the run, key)
    let mut runs: Vec<HashMap<(usize, usize, u32, u64), Value>> = vec![HashMap::new(); 3];
    for ((from, to, round, key), v) in log.lock().unwrap().iter() {
        let run = (round / RUN_ROUNDS) as usize;
        runs[run].insert((*from, *to, round % RUN_ROUNDS, *key), v.clone());
    }
    let (first, second) = (&runs[1], &runs[2]);
    assert_eq!(first.len(), second.len());
    assert!(first.len() > 10);
    for (at, v) in second {
        assert_ne!(
            &first[at], v,
            "entry (from, to, round, key) {at:?} is sent again unchanged"
        );
    }
}

/// The masked openings of a program: the send of server 0 and the send of server 1 whose
/// values server 0 adds.
fn openings(g: &CompiledGraph) -> Vec<(ValueId, ValueId)> {
    let s0 = &g.programs[S0].instrs;
    let by_id: HashMap<ValueId, &Instr> = s0.iter().map(|i| (i.id, i)).collect();
    let opening_of = |u: ValueId| {
        s0.iter().find(|i| {
            i.inputs == [u]
                && matches!(
                    i.kernel,
                    Kernel::Send {
                        to: S1,
                        exchange: Exchange::MaskedOpening
                    }
                )
        })
    };
    let mut out = Vec::new();
    for i in s0
        .iter()
        .filter(|i| i.kernel == Kernel::Add && i.inputs.len() == 2)
    {
        let (mine, theirs) = (i.inputs[0], by_id.get(&i.inputs[1]));
        if let (
            Some(send),
            Some(Instr {
                kernel:
                    Kernel::Recv {
                        from: S1,
                        send: other,
                    },
                ..
            }),
        ) = (opening_of(mine), theirs)
        {
            out.push((send.id, *other));
        }
    }
    out
}

// SCRATCH: per-kernel profile of a zoo network under a protocol (delete before commit).
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ndarray::Axis;
use shareflow_compiler::{CompileOptions, ProtocolKind};
use shareflow_graphs::zoo::{ModelKind, CLIENT, IMAGE, MODEL_OWNER};
use shareflow_runtime::data::{data_dir, Mnist, Split};
use shareflow_runtime::exec::run_in_process;
use shareflow_tools::commands::{load_weights, secure::SecureModel};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let model: ModelKind = a[1].parse().unwrap();
    let batch: usize = a[2].parse().unwrap();
    let reps: usize = a[3].parse().unwrap();
    let verbose = a.len() > 4;
    let test = Mnist::load(&data_dir(None), Split::Test, Some(batch)).unwrap();
    let weights = load_weights(model, None).unwrap();
    let mut m = SecureModel::new(model, "securenn".parse::<ProtocolKind>().unwrap(), CompileOptions::default());
    let t = std::time::Instant::now();
    let (graph, plans) = m.compiled(batch).unwrap();
    eprintln!("compile {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    for prog in &graph.programs {
        let mut m: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for i in &prog.instrs {
            if let shareflow_compiler::ir::Kernel::Expand { draw, shape, .. } = &i.kernel {
                let e = m.entry(format!("{draw:?}")).or_default();
                e.0 += 1;
                e.1 += shape.iter().product::<usize>();
            }
        }
        eprintln!("{} expands: {:?}", prog.party, m);
    }
    let owner: HashMap<String, _> = weights.arrays.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let images = test.images.clone().into_dyn();
    let mut inputs = HashMap::new();
    inputs.insert(MODEL_OWNER.to_string(), owner);
    inputs.insert(CLIENT.to_string(), HashMap::from([(IMAGE.to_string(), images.slice_axis(Axis(0), (0..batch).into()).to_owned())]));
    let mut walls = vec![];
    let mut per: BTreeMap<String, BTreeMap<String, (u64, f64)>> = BTreeMap::new();
    let mut pwall: BTreeMap<String, f64> = BTreeMap::new();
    for i in 0..reps + 1 {
        let run = run_in_process(graph, plans, &inputs, Duration::from_secs(600)).unwrap();
        if i == 0 { continue; }
        walls.push(run.wall_ms);
        for p in &run.parties {
            *pwall.entry(p.metrics.party.clone()).or_default() += p.metrics.wall_ms / reps as f64;
            let e = per.entry(p.metrics.party.clone()).or_default();
            for (k, v) in &p.metrics.kernels {
                let x = e.entry(k.clone()).or_default();
                x.0 += v.count;
                x.1 += v.ms / reps as f64;
            }
        }
    }
    walls.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("{model} batch {batch}: median {:.1} ms  min {:.1} max {:.1}", walls[walls.len() / 2], walls[0], walls[walls.len() - 1]);
    for (p, ks) in &per {
        let tot: f64 = ks.values().map(|v| v.1).sum();
        println!("  {p}: wall {:.1} ms, kernels {:.1} ms", pwall[p], tot);
        let mut v: Vec<_> = ks.iter().collect();
        v.sort_by(|a, b| b.1 .1.partial_cmp(&a.1 .1).unwrap());
        for (k, (c, ms)) in v.iter().take(if verbose { 40 } else { 8 }) {
            println!("    {k:<16} {:>6} {:>9.2} ms", c / reps as u64, ms);
        }
    }
}

mod common;
use std::collections::HashMap;
use std::time::Duration;
use shareflow::compiler::{compile, CompileOptions, ProtocolKind};
use shareflow::graphs::zoo::{ModelKind, ZooModel, CLIENT, IMAGE, MODEL_OWNER};
use shareflow::runtime::data::{data_dir, models_dir, Mnist, Split, Weights};
use shareflow::runtime::exec::{run_in_process, Plan};
#[test]
fn profile() {
    let test = Mnist::load(&data_dir(None), Split::Test, Some(50)).unwrap();
    let zoo = ZooModel::build(ModelKind::B, 50).unwrap();
    let compiled = compile(&zoo.graph, ProtocolKind::SecureNN, CompileOptions::default()).unwrap();
    let plans: Vec<Plan> = compiled.programs.iter().map(|p| Plan::new(p).unwrap()).collect();
    let weights = Weights::load(&models_dir().join("b.npz")).unwrap();
    let inputs = HashMap::from([
        (MODEL_OWNER.to_string(), weights.arrays.clone().into_iter().collect()),
        (CLIENT.to_string(), HashMap::from([(IMAGE.to_string(), test.batch(0, 50))])),
    ]);
    let run = run_in_process(&compiled, &plans, &inputs, Duration::from_secs(120)).unwrap();
    println!("wall {:.0} ms", run.wall_ms);
    for p in &run.parties {
        let mut k: Vec<_> = p.metrics.kernels.iter().collect();
        k.sort_by(|a, b| b.1.ms.partial_cmp(&a.1.ms).unwrap());
        println!("{} wall {:.0}: {}", p.metrics.party, p.metrics.wall_ms, k.iter().take(12).map(|(n, t)| format!("{n} {:.0}ms/{}", t.ms, t.count)).collect::<Vec<_>>().join(", "));
    }
}

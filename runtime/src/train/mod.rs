//! Private training of a network (the zoo's or a user's): its training graph
//! ([`Network::training`], as [`shareflow_graphs::zoo::ZooModel::build_training`]: forward
//! pass, the network's loss, symbolic gradients and SGD with momentum, one graph per step)
//! compiled for a secure protocol and run in a
//! [`Session`] whose servers keep the weights and velocities as shares.
//!
//! The runs of a training session:
//!
//! - `init`: the servers share the first values of the variables (the seeded He-normal
//!   kernels and zero biases, the same values as the plaintext run's; zero velocities);
//! - `step`, once per batch: the client (data owner) secret-shares the images and one-hot
//!   labels, the servers are given the public learning rate, and update every variable;
//!   nothing leaves the step (the loss is not computed unless revealed);
//! - `predict`: the client shares images and receives logits computed from the still-shared
//!   model ([`Network::prediction`] over the session's variables): the model is never opened
//!   for it;
//! - `reveal`, only when asked: the weights to the model owner or the data owner
//!   ([`Network::reveal_graph_to`]).
//!
//! The batch order and the learning-rate schedule are the plaintext run's
//! ([`crate::plain::train::schedule`]), so the two runs see the same batches.
//!
//! With [`TrainOptions::checkpoint`] the servers save their shares every K steps
//! ([`checkpoint`]); with [`TrainOptions::resume`] a session starts from the last checkpoint
//! instead of `init` and continues with the next step of the same schedule.

pub mod checkpoint;

pub mod joint;
pub mod owner_data;
pub mod quic;
pub mod transfer;

use std::collections::HashMap;
use std::time::Duration;

use ndarray::{Array2, ArrayD, Axis, Ix2};
use serde::{Deserialize, Serialize};
use shareflow_compiler::{compile, compile_init, CompileOptions, CompiledGraph, ProtocolKind};
use shareflow_graphs::network::{DropoutMask, Network, StepReveals, TrainingGraph};
use shareflow_graphs::nn::Params;
use shareflow_graphs::zoo::{ModelKind, CLIENT, IMAGE, LOGITS, MODEL_OWNER};
use shareflow_graphs::zoo_train::{LEARNING_RATE, LOSS};
use shareflow_graphs::{Graph, Op};
use shareflow_ops::plain::to_rank;

use crate::data::{Mnist, Weights};
use crate::exec::serving::Inputs;
use crate::exec::{InProcessRun, Session, SessionProgram};
use crate::plain::dropout::dropout_masks;
use crate::plain::train::{batch_inputs, learning_rate, schedule, ScheduledStep, TrainConfig};
use crate::{Result, RuntimeError};
use checkpoint::{CheckpointOptions, Checkpointer, ScheduleId};

/// The mean of a revealed loss (a scalar, or one value per example).
pub fn mean_loss(loss: &ArrayD<f32>) -> f32 {
    if loss.is_empty() {
        return f32::NAN;
    }
    loss.iter().sum::<f32>() / loss.len() as f32
}

/// What one step cost, as measured.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// The epoch of the step (from 0).
    pub epoch: usize,
    /// 1-based.
    pub step: usize,
    /// The steps of the whole run.
    pub steps: usize,
    /// Wall time of the step (all parties), in milliseconds.
    pub ms: f64,
    /// Bytes sent by all parties in the step.
    pub bytes: u64,
    /// Rounds of the step's program.
    pub rounds: u32,
    /// Each party's bytes sent, bytes received and wall milliseconds in the step.
    pub per_party: Vec<(String, u64, u64, f64)>,
    /// The mean loss of the step's batch, revealed to the data owner only when the session
    /// was asked to ([`TrainOptions::reveal_loss`]).
    pub loss: Option<f32>,
}

/// The graphs of a private training session besides its step: how to predict from the
/// session's variables and how to reveal them. [`Network`] for the zoo's and users' networks; the
/// transfer-learning and joint-training sessions have their own.
pub trait SessionGraphs {
    /// The prediction graph for `n` examples from the session's variables: the client gives
    /// the examples under the returned input name and alone receives `logits` `[n, classes]`.
    fn prediction(&self, n: usize) -> Result<(Graph, String)>;
    /// The graph that reveals the trained parameters to the model owner, under their names.
    fn reveal(&self) -> Result<Graph>;
    /// The graph that reveals the trained parameters to `receiver`; by default only the
    /// model owner may receive them.
    fn reveal_to(&self, receiver: &str) -> Result<Graph> {
        if receiver == MODEL_OWNER {
            return self.reveal();
        }
        Err(RuntimeError::Node {
            node: "reveal".into(),
            message: format!(
                "this session reveals its weights to {MODEL_OWNER} only, not {receiver}"
            ),
        })
    }
}

/// A network's session: predictions from the session's variables (the client gives
/// `image` and alone receives the logits), the weights revealed under their names.
impl SessionGraphs for Network {
    fn prediction(&self, n: usize) -> Result<(Graph, String)> {
        let graph = Network::prediction(self, n, |_| Params::variables(0))?.graph;
        Ok((graph, IMAGE.to_string()))
    }
    fn reveal(&self) -> Result<Graph> {
        SessionGraphs::reveal_to(self, MODEL_OWNER)
    }
    fn reveal_to(&self, receiver: &str) -> Result<Graph> {
        Ok(self.reveal_graph_to(receiver)?)
    }
}

/// A network trained (or being trained) privately: the session whose servers hold it.
pub struct PrivateModel {
    /// The protocol the session runs (SecureNN or Pond).
    pub protocol: ProtocolKind,
    /// The options the session's programs were compiled with.
    pub options: CompileOptions,
    graphs: Box<dyn SessionGraphs>,
    session: Session,
    /// The compiled training step.
    step: SessionProgram,
    /// Prediction programs by batch size.
    predict: HashMap<usize, (SessionProgram, String)>,
    /// The steps already done when this session started (restored from a checkpoint).
    start: usize,
}

/// The compiled programs of a training session of network `kind` with batches of `batch`.
pub struct TrainingPrograms {
    /// The program that initialises the variables' shares.
    pub init: SessionProgram,
    /// The program of one training step (forward, backward, update).
    pub step: SessionProgram,
}

/// What the programs of a training session do beyond the recipe (both are part of the step
/// program, so a checkpoint is resumed only with the same choice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSpec {
    /// The first weights are the model owner's inputs of the init run (`--init FILE.npz`,
    /// secret-shared by the model owner), not seeded He-normal kernels.
    #[serde(default)]
    pub owner_init: bool,
    /// Every step reveals the mean loss of its batch to the data owner (`--reveal-loss`);
    /// without it nothing leaves a step.
    #[serde(default)]
    pub reveal_loss: bool,
    /// Every step reveals the logits of its batch to the data owner, who computes the loss's
    /// gradient in the clear and shares it back (`--reveal-logits-to client`, see
    /// [`shareflow_graphs::network::StepReveals::logits`]); without it the loss and its
    /// gradient are computed on shares.
    #[serde(default)]
    pub reveal_logits: bool,
}

/// The training graph of network `kind` for the recipe `cfg` and `spec`.
pub fn training_graph(
    kind: ModelKind,
    cfg: &TrainConfig,
    spec: StepSpec,
) -> Result<shareflow_graphs::Graph> {
    Ok(network_training_graph(&kind.network(), cfg, spec)?.graph)
}

impl StepReport {
    /// The report of step `s` (of `steps`) from its run.
    fn of(s: &ScheduledStep, steps: usize, run: &InProcessRun, loss: Option<f32>) -> StepReport {
        StepReport {
            epoch: s.epoch,
            step: s.step + 1,
            steps,
            ms: run.wall_ms,
            bytes: run.bytes(),
            rounds: run.rounds(),
            per_party: run
                .parties
                .iter()
                .map(|p| {
                    let m = &p.metrics;
                    (m.party.clone(), m.bytes_sent, m.bytes_received, m.wall_ms)
                })
                .collect(),
            loss,
        }
    }
}

/// Compiles the init and step programs of a training session.
pub fn training_programs(
    kind: ModelKind,
    cfg: &TrainConfig,
    protocol: ProtocolKind,
    options: CompileOptions,
) -> Result<TrainingPrograms> {
    training_programs_with(kind, cfg, protocol, options, StepSpec::default())
}

/// [`training_programs`] with the choices of `spec`.
pub fn training_programs_with(
    kind: ModelKind,
    cfg: &TrainConfig,
    protocol: ProtocolKind,
    options: CompileOptions,
    spec: StepSpec,
) -> Result<TrainingPrograms> {
    Ok(network_training_programs(&kind.network(), cfg, protocol, options, spec)?.0)
}

/// The training graph of `network` for the recipe `cfg` and `spec`.
pub fn network_training_graph(
    network: &Network,
    cfg: &TrainConfig,
    spec: StepSpec,
) -> Result<TrainingGraph> {
    let reveals = StepReveals {
        loss: spec.reveal_loss,
        logits: spec.reveal_logits,
    };
    Ok(
        network.training_with(cfg.batch, cfg.momentum, reveals, |owner, _| {
            if spec.owner_init {
                Params::OwnerVariables(owner)
            } else {
                Params::variables(cfg.seed)
            }
        })?,
    )
}

/// Compiles the init and step programs of a training session of `network`, and gives the
/// dropout masks each step takes.
pub fn network_training_programs(
    network: &Network,
    cfg: &TrainConfig,
    protocol: ProtocolKind,
    options: CompileOptions,
    spec: StepSpec,
) -> Result<(TrainingPrograms, Vec<DropoutMask>)> {
    let model = network_training_graph(network, cfg, spec)?;
    Ok((
        TrainingPrograms::compile(&model.graph, protocol, options)?,
        model.masks,
    ))
}
impl TrainingPrograms {
    /// The init and step programs of the training graph `graph`.
    pub fn compile(
        graph: &Graph,
        protocol: ProtocolKind,
        options: CompileOptions,
    ) -> Result<TrainingPrograms> {
        let init = SessionProgram::new(compile_init(graph, protocol, options)?)?;
        let step = SessionProgram::new(compile(graph, protocol, options)?)?;
        Ok(TrainingPrograms { init, step })
    }
}

/// Checks that `weights` (read from `source`) holds exactly the parameters of network `kind`
/// with their shapes: the first weights a model owner gives (`--init FILE.npz`).
pub fn check_initial_weights(kind: ModelKind, weights: &Weights, source: &str) -> Result<()> {
    check_network_weights(&kind.network(), &format!("network {kind}"), weights, source)
}

/// [`check_initial_weights`] for any network (`what` names it in the messages).
pub fn check_network_weights(
    network: &Network,
    what: &str,
    weights: &Weights,
    source: &str,
) -> Result<()> {
    let err = |message: String| RuntimeError::File {
        path: source.to_string(),
        message,
    };
    let params = network.params();
    for p in &params {
        match weights.arrays.get(&p.name) {
            None => {
                return Err(err(format!(
                    "no array {:?}: the initial weights of {what} need {:?} of shape {:?}",
                    p.name, p.name, p.shape
                )))
            }
            Some(a) if a.shape() != p.shape.as_slice() => {
                return Err(err(format!(
                    "array {:?} has shape {:?}, {what} expects {:?}",
                    p.name,
                    a.shape(),
                    p.shape
                )))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = weights
        .arrays
        .keys()
        .find(|k| !params.iter().any(|p| &p.name == *k))
    {
        let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        return Err(err(format!(
            "array {extra:?} is not a parameter of {what} (its parameters: {})",
            names.join(", ")
        )));
    }
    Ok(())
}

/// The model owner's inputs of the init run: its first weights, if it gives them.
pub fn init_inputs(weights: Option<&Weights>) -> Inputs {
    let mut inputs = Inputs::new();
    if let Some(w) = weights {
        inputs.insert(
            MODEL_OWNER.to_string(),
            w.arrays
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
    }
    inputs
}

/// The inputs of one training step of `graph`: the client's images and one-hot labels of
/// `step`'s examples, and the learning rate for each party that takes it
/// ([`parameter_inputs`]). An index beyond `data` is an error.
pub fn step_inputs(graph: &CompiledGraph, data: &Mnist, step: &ScheduledStep) -> Result<Inputs> {
    step_inputs_with(graph, data, step, &HashMap::new())
}

/// [`step_inputs`] with the step's public dropout masks, run-time parameters as the learning
/// rate (see [`crate::plain::dropout::dropout_masks`]).
pub fn step_inputs_with(
    graph: &CompiledGraph,
    data: &Mnist,
    step: &ScheduledStep,
    masks: &HashMap<String, ArrayD<f32>>,
) -> Result<Inputs> {
    let mut parameters = learning_rate_input(step);
    parameters.extend(masks.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut inputs = parameter_inputs(graph, &parameters);
    inputs.insert(CLIENT.to_string(), batch_inputs(data, &step.indices)?);
    Ok(inputs)
}

/// The inputs of one step of a session of `graph`: the data owners' `owners` (by party,
/// then name) and the learning rate of `step` for each party that takes it.
pub fn with_learning_rate(
    graph: &CompiledGraph,
    mut owners: Inputs,
    step: &ScheduledStep,
) -> Inputs {
    for (party, given) in parameter_inputs(graph, &learning_rate_input(step)) {
        owners.entry(party).or_default().extend(given);
    }
    owners
}

/// Runs `steps` in `model` (the first `stop_after` only, if given), with the data owners'
/// inputs of each step from `inputs` (the learning rate is added); calls `report` after
/// every step.
pub fn run_steps(
    model: &mut PrivateModel,
    steps: &[ScheduledStep],
    stop_after: Option<usize>,
    mut inputs: impl FnMut(&ScheduledStep) -> Result<Inputs>,
    mut report: impl FnMut(StepReport),
) -> Result<()> {
    let end = stop_after.unwrap_or(steps.len()).min(steps.len());
    for s in &steps[..end] {
        let given = with_learning_rate(model.step_graph(), inputs(s)?, s);
        let run = model.step(&given)?;
        report(StepReport::of(s, end, &run, None));
    }
    Ok(())
}

/// Public run-time parameters (by name) by party: each to every party whose program of
/// `graph` takes it (the servers, and the helper where it deals a learning rate's products).
pub fn parameter_inputs(
    graph: &CompiledGraph,
    parameters: &HashMap<String, ArrayD<f32>>,
) -> Inputs {
    let mut inputs = Inputs::new();
    for (name, value) in parameters {
        for party in graph.parameter_parties(name) {
            let given = inputs.entry(party.to_string()).or_default();
            given.insert(name.clone(), value.clone());
        }
    }
    inputs
}

/// The learning rate of one training step, by its name in the training graphs.
pub fn learning_rate_input(step: &ScheduledStep) -> HashMap<String, ArrayD<f32>> {
    HashMap::from([(LEARNING_RATE.to_string(), learning_rate(step.lr))])
}

/// How a training session starts, what it saves and where it stops.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Write checkpoints of the servers' shares.
    pub checkpoint: Option<CheckpointOptions>,
    /// Start from the last checkpoint that every server has in [`TrainOptions::checkpoint`]'s
    /// directory instead of initialising the variables.
    pub resume: bool,
    /// Stop after this many steps of the schedule (the rest is left to a resumed session).
    pub stop_after: Option<usize>,
    /// The model owner's first weights (checked with [`check_initial_weights`]); `None`: the
    /// seeded He-normal kernels of the recipe.
    pub init_weights: Option<Weights>,
    /// Every step reveals the mean loss of its batch to the data owner
    /// ([`StepReport::loss`]).
    pub reveal_loss: bool,
    /// Every step reveals the logits of its batch to the data owner, who computes the loss's
    /// gradient in the clear ([`StepSpec::reveal_logits`]).
    pub reveal_logits: bool,
}

impl TrainOptions {
    /// What the session's programs do beyond the recipe.
    pub fn step_spec(&self) -> StepSpec {
        StepSpec {
            owner_init: self.init_weights.is_some(),
            reveal_loss: self.reveal_loss,
            reveal_logits: self.reveal_logits,
        }
    }
}

/// Trains network `kind` on `data` under `protocol`; calls `report` after every step.
pub fn train_private(
    kind: ModelKind,
    data: &Mnist,
    cfg: &TrainConfig,
    protocol: ProtocolKind,
    options: CompileOptions,
    report: impl FnMut(StepReport),
) -> Result<PrivateModel> {
    let opts = TrainOptions::default();
    train_private_with(kind, data, cfg, protocol, options, &opts, report)
}

/// [`train_private`] with checkpoints, a resumed start or an early stop (`opts`).
pub fn train_private_with(
    kind: ModelKind,
    data: &Mnist,
    cfg: &TrainConfig,
    protocol: ProtocolKind,
    options: CompileOptions,
    opts: &TrainOptions,
    report: impl FnMut(StepReport),
) -> Result<PrivateModel> {
    train_network_private(&kind.network(), data, cfg, protocol, options, opts, report)
}

/// Trains `network` on `data` under `protocol` (the session of [`train_private_with`]: the
/// servers keep the variables as shares; each step gets its public dropout masks).
pub fn train_network_private(
    network: &Network,
    data: &Mnist,
    cfg: &TrainConfig,
    protocol: ProtocolKind,
    options: CompileOptions,
    opts: &TrainOptions,
    mut report: impl FnMut(StepReport),
) -> Result<PrivateModel> {
    let steps = schedule(data.len(), cfg);
    if steps.is_empty() {
        return Err(RuntimeError::Node {
            node: "train".into(),
            message: format!(
                "{} images are fewer than one batch of {}",
                data.len(),
                cfg.batch
            ),
        });
    }
    let (programs, masks) =
        network_training_programs(network, cfg, protocol, options, opts.step_spec())?;
    let init_program = programs.init.clone();
    let mut model = PrivateModel::new(programs, Box::new(network.clone()), protocol, options);
    let checkpoints = opts
        .checkpoint
        .as_ref()
        .map(|c| {
            let id = ScheduleId::new(data.len(), cfg);
            Checkpointer::new(&c.dir, c.every, &model.step.graph, id).map(|k| (k, c.force))
        })
        .transpose()?;
    if let Some(w) = &opts.init_weights {
        check_network_weights(network, "the network", w, "the initial weights")?;
    }
    let init = init_inputs(opts.init_weights.as_ref());
    let start = match (&checkpoints, opts.resume) {
        (Some((k, _)), true) => {
            let step = k.latest()?;
            for (index, store) in k.load(step)? {
                model.session.restore(index, store)?;
            }
            step
        }
        (None, true) => {
            return Err(RuntimeError::Node {
                node: "train".into(),
                message: "resuming needs the checkpoint directory (--checkpoint DIR)".into(),
            })
        }
        (Some((k, force)), false) => {
            k.prepare_new(*force)?;
            model.session.run(&init_program, &init)?;
            0
        }
        (None, false) => {
            model.session.run(&init_program, &init)?;
            0
        }
    };
    model.start = start;
    let end = opts.stop_after.unwrap_or(steps.len()).min(steps.len());
    for s in steps.iter().take(end).skip(start) {
        let step_masks = dropout_masks(&masks, cfg.seed, s.step);
        let inputs = step_inputs_with(model.step_graph(), data, s, &step_masks)?;
        let run = model.step(&inputs)?;
        let loss = if opts.reveal_loss {
            Some(mean_loss(run.float(CLIENT, LOSS)?))
        } else {
            None
        };
        report(StepReport::of(s, steps.len(), &run, loss));
        if let Some((k, _)) = &checkpoints {
            if k.due(s.step + 1) {
                k.save(s.step + 1, model.session.stores())?;
            }
        }
    }
    Ok(model)
}

impl PrivateModel {
    /// A session of the compiled `programs` (whose init is not run yet: see
    /// [`PrivateModel::start`], which runs it) whose predictions and reveal are `graphs`'.
    pub fn new(
        programs: TrainingPrograms,
        graphs: Box<dyn SessionGraphs>,
        protocol: ProtocolKind,
        options: CompileOptions,
    ) -> PrivateModel {
        PrivateModel {
            protocol,
            options,
            graphs,
            session: Session::new(
                programs.step.graph.parties.clone(),
                Duration::from_secs(600),
            ),
            step: programs.step,
            predict: HashMap::new(),
            start: 0,
        }
    }

    /// Starts a session of the training graph `graph`: compiles it, then runs its init with
    /// `inputs` (the first values of the variables whose owner gives them, by party and name).
    pub fn start(
        graph: &Graph,
        graphs: Box<dyn SessionGraphs>,
        protocol: ProtocolKind,
        options: CompileOptions,
        inputs: &Inputs,
    ) -> Result<PrivateModel> {
        let programs = TrainingPrograms::compile(graph, protocol, options)?;
        let init = programs.init.clone();
        let mut model = PrivateModel::new(programs, graphs, protocol, options);
        model.session.run(&init, inputs)?;
        Ok(model)
    }

    /// One training step with `inputs` (by party, then name: the data owners' batches, the
    /// servers' learning rate).
    pub fn step(&mut self, inputs: &Inputs) -> Result<InProcessRun> {
        self.session.run(&self.step, inputs)
    }

    /// The compiled training step (for its cost report).
    pub fn step_graph(&self) -> &CompiledGraph {
        &self.step.graph
    }

    /// The steps restored from a checkpoint when the session started (0 for a new session).
    pub fn resumed_from(&self) -> usize {
        self.start
    }

    /// The session that holds the model.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Logits `[n, k]` of `examples` `[n, ...]` (images, or what the session's prediction graph
    /// takes) from the still-shared model, in batches of at
    /// most `batch`: each batch is a private prediction whose logits only the client
    /// receives.
    pub fn predict(&mut self, examples: &ArrayD<f32>, batch: usize) -> Result<Array2<f32>> {
        self.predict_observed(examples, batch, &mut |_| {})
    }

    /// [`PrivateModel::predict`], showing `observe` every batch's run (its traffic).
    pub fn predict_observed(
        &mut self,
        examples: &ArrayD<f32>,
        batch: usize,
        observe: &mut dyn FnMut(&InProcessRun),
    ) -> Result<Array2<f32>> {
        let n = examples.shape().first().copied().unwrap_or(0);
        let mut out: Option<Array2<f32>> = None;
        let mut start = 0;
        while start < n {
            let size = batch.max(1).min(n - start);
            let run = self.predict_batch(examples, start, size)?;
            observe(&run);
            let logits = run.float(CLIENT, LOGITS)?;
            let logits = to_rank::<_, Ix2>(logits.view(), "logits")?;
            out.get_or_insert_with(|| Array2::zeros((n, logits.ncols())))
                .slice_mut(ndarray::s![start..start + size, ..])
                .assign(&logits);
            start += size;
        }
        Ok(out.unwrap_or_else(|| Array2::zeros((0, 0))))
    }

    fn predict_batch(
        &mut self,
        examples: &ArrayD<f32>,
        start: usize,
        size: usize,
    ) -> Result<InProcessRun> {
        if !self.predict.contains_key(&size) {
            let (graph, input) = self.graphs.prediction(size)?;
            let program = SessionProgram::new(compile(&graph, self.protocol, self.options)?)?;
            self.predict.insert(size, (program, input));
        }
        let (program, input) = self.predict.get(&size).ok_or_else(|| RuntimeError::Node {
            node: "predict".into(),
            message: format!("no prediction program for batches of {size}"),
        })?;
        let slice = examples
            .slice_axis(Axis(0), (start..start + size).into())
            .to_owned();
        let mut inputs = Inputs::new();
        inputs
            .entry(CLIENT.to_string())
            .or_default()
            .insert(input.clone(), slice);
        self.session.run(program, &inputs)
    }

    /// Opens the weights to the model owner (the only run that reveals them).
    pub fn reveal(&mut self) -> Result<Weights> {
        self.reveal_to(MODEL_OWNER)
    }

    /// Opens the weights to `receiver`: the model owner or the data owner (`client`), never
    /// a server ([`SessionGraphs::reveal_to`]).
    pub fn reveal_to(&mut self, receiver: &str) -> Result<Weights> {
        let graph = self.graphs.reveal_to(receiver)?;
        self.reveal_with(&graph, receiver)
    }

    /// Runs `graph`, a graph of this session's parties whose outputs all go to `receiver`
    /// (variables revealed under their names), and returns what it receives.
    pub fn reveal_with(&mut self, graph: &Graph, receiver: &str) -> Result<Weights> {
        let program = SessionProgram::new(compile(graph, self.protocol, self.options)?)?;
        let run = self.session.run(&program, &Inputs::new())?;
        let owner = run.party(receiver)?;
        let mut weights = Weights::default();
        for (_, node) in graph.nodes() {
            if let Op::Output { name, .. } = &node.op {
                weights
                    .arrays
                    .insert(name.clone(), owner.float(name)?.clone());
            }
        }
        Ok(weights)
    }
}

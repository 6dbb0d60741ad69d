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
//!   model (the prediction graph over the session's variables,
//!   [`shareflow_graphs::zoo::ZooModel::build_from_variables`]): the model is never opened;
//! - `reveal`, only when asked: the weights to the model owner ([`Network::reveal_graph`]).
//!
//! The batch order and the learning-rate schedule are the plaintext run's
//! ([`crate::plain::train::schedule`]), so the two runs see the same batches.
//!
//! With [`TrainOptions::checkpoint`] the servers save their shares every K steps
//! ([`checkpoint`]); with [`TrainOptions::resume`] a session starts from the last checkpoint
//! instead of `init` and continues with the next step of the same schedule.

pub mod checkpoint;

pub mod quic;

use std::collections::HashMap;
use std::time::Duration;

use ndarray::{Array2, ArrayD, Axis, Ix2};
use shareflow_compiler::{compile, compile_init, CompileOptions, ProtocolKind};
use shareflow_graphs::network::{DropoutMask, Network};
use shareflow_graphs::nn::Params;
use shareflow_graphs::zoo::{ModelKind, CLIENT, IMAGE, LOGITS, MODEL_OWNER};
use shareflow_graphs::zoo_train::LEARNING_RATE;
use shareflow_ops::plain::to_rank;

use crate::data::{Mnist, Weights};
use crate::exec::serving::Inputs;
use crate::exec::{InProcessRun, Session, SessionProgram};
use crate::plain::dropout::dropout_masks;
use crate::plain::train::{batch_inputs, learning_rate, schedule, ScheduledStep, TrainConfig};
use crate::{Result, RuntimeError};
use checkpoint::{CheckpointOptions, Checkpointer, ScheduleId};

/// The servers, who are given the run-time parameters.
const SERVERS: [&str; 2] = ["server0", "server1"];

/// What one step cost, as measured.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    pub epoch: usize,
    /// 1-based.
    pub step: usize,
    pub steps: usize,
    pub ms: f64,
    pub bytes: u64,
    pub rounds: u32,
}

/// A network trained (or being trained) privately: the session whose servers hold it.
pub struct PrivateModel {
    /// The network.
    pub network: Network,
    pub protocol: ProtocolKind,
    pub options: CompileOptions,
    session: Session,
    /// The compiled training step.
    step: SessionProgram,
    /// Prediction programs by batch size.
    predict: HashMap<usize, SessionProgram>,
    /// The steps already done when this session started (restored from a checkpoint).
    start: usize,
}

/// The compiled programs of a training session of network `kind` with batches of `batch`.
pub struct TrainingPrograms {
    pub init: SessionProgram,
    pub step: SessionProgram,
}

/// Compiles the init and step programs of a training session.
pub fn training_programs(
    kind: ModelKind,
    cfg: &TrainConfig,
    protocol: ProtocolKind,
    options: CompileOptions,
) -> Result<TrainingPrograms> {
    Ok(network_training_programs(&kind.network(), cfg, protocol, options)?.0)
}

/// Compiles the init and step programs of a training session of `network`, and gives the
/// dropout masks each step takes.
pub fn network_training_programs(
    network: &Network,
    cfg: &TrainConfig,
    protocol: ProtocolKind,
    options: CompileOptions,
) -> Result<(TrainingPrograms, Vec<DropoutMask>)> {
    let model = network.training(cfg.batch, cfg.momentum, false, |_| {
        Params::variables(cfg.seed)
    })?;
    let init = SessionProgram::new(compile_init(&model.graph, protocol, options)?)?;
    let step = SessionProgram::new(compile(&model.graph, protocol, options)?)?;
    Ok((TrainingPrograms { init, step }, model.masks))
}

/// The inputs of one training step: the client's images and one-hot labels of `step`'s
/// examples, and the learning rate for each server. An index beyond `data` is an error.
pub fn step_inputs(data: &Mnist, step: &ScheduledStep) -> Result<Inputs> {
    step_inputs_with(data, step, &HashMap::new())
}

/// [`step_inputs`] with the step's public dropout masks, which each server is given (see
/// [`crate::plain::dropout::dropout_masks`]).
pub fn step_inputs_with(
    data: &Mnist,
    step: &ScheduledStep,
    masks: &HashMap<String, ArrayD<f32>>,
) -> Result<Inputs> {
    let mut inputs = Inputs::new();
    inputs.insert(CLIENT.to_string(), batch_inputs(data, &step.indices)?);
    for server in SERVERS {
        let mut given = server_inputs(step);
        given.extend(masks.iter().map(|(k, v)| (k.clone(), v.clone())));
        inputs.insert(server.to_string(), given);
    }
    Ok(inputs)
}

/// A server's inputs of one training step: the public learning rate.
pub fn server_inputs(step: &ScheduledStep) -> HashMap<String, ArrayD<f32>> {
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
    let (programs, masks) = network_training_programs(network, cfg, protocol, options)?;
    let mut model = PrivateModel {
        network: network.clone(),
        protocol,
        options,
        session: Session::new(
            programs.step.graph.parties.clone(),
            Duration::from_secs(600),
        ),
        step: programs.step,
        predict: HashMap::new(),
        start: 0,
    };
    let checkpoints = opts
        .checkpoint
        .as_ref()
        .map(|c| {
            let id = ScheduleId::new(data.len(), cfg);
            Checkpointer::new(&c.dir, c.every, &model.step.graph, id).map(|k| (k, c.force))
        })
        .transpose()?;
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
            model.session.run(&programs.init, &Inputs::new())?;
            0
        }
        (None, false) => {
            model.session.run(&programs.init, &Inputs::new())?;
            0
        }
    };
    model.start = start;
    let end = opts.stop_after.unwrap_or(steps.len()).min(steps.len());
    for s in steps.iter().take(end).skip(start) {
        let inputs = step_inputs_with(data, s, &dropout_masks(&masks, cfg.seed, s.step))?;
        let run = model.session.run(&model.step, &inputs)?;
        report(StepReport {
            epoch: s.epoch,
            step: s.step + 1,
            steps: steps.len(),
            ms: run.wall_ms,
            bytes: run.bytes(),
            rounds: run.rounds(),
        });
        if let Some((k, _)) = &checkpoints {
            if k.due(s.step + 1) {
                k.save(s.step + 1, model.session.stores())?;
            }
        }
    }
    Ok(model)
}

impl PrivateModel {
    /// The compiled training step (for its cost report).
    pub fn step_graph(&self) -> &shareflow_compiler::CompiledGraph {
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

    /// Logits `[n, k]` of `images` `[n, ...]` from the still-shared model, in batches of at
    /// most `batch`: each batch is a private prediction whose logits only the client
    /// receives.
    pub fn predict(&mut self, images: &ArrayD<f32>, batch: usize) -> Result<Array2<f32>> {
        self.predict_observed(images, batch, &mut |_| {})
    }

    /// [`PrivateModel::predict`], showing `observe` every batch's run (its traffic).
    pub fn predict_observed(
        &mut self,
        images: &ArrayD<f32>,
        batch: usize,
        observe: &mut dyn FnMut(&InProcessRun),
    ) -> Result<Array2<f32>> {
        let n = images.shape().first().copied().unwrap_or(0);
        let mut out: Option<Array2<f32>> = None;
        let mut start = 0;
        while start < n {
            let size = batch.max(1).min(n - start);
            let run = self.predict_batch(images, start, size)?;
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
        images: &ArrayD<f32>,
        start: usize,
        size: usize,
    ) -> Result<InProcessRun> {
        if !self.predict.contains_key(&size) {
            let graph = self
                .network
                .prediction(size, |_| Params::variables(0))?
                .graph;
            let program = SessionProgram::new(compile(&graph, self.protocol, self.options)?)?;
            self.predict.insert(size, program);
        }
        let program = self.predict.get(&size).ok_or_else(|| RuntimeError::Node {
            node: "predict".into(),
            message: format!("no prediction program for batches of {size}"),
        })?;
        let slice = images
            .slice_axis(Axis(0), (start..start + size).into())
            .to_owned();
        let mut inputs = Inputs::new();
        inputs
            .entry(CLIENT.to_string())
            .or_default()
            .insert(IMAGE.to_string(), slice);
        self.session.run(program, &inputs)
    }

    /// Opens the weights to the model owner (the only run that reveals them).
    pub fn reveal(&mut self) -> Result<Weights> {
        let graph = self.network.reveal_graph()?;
        let program = SessionProgram::new(compile(&graph, self.protocol, self.options)?)?;
        let run = self.session.run(&program, &Inputs::new())?;
        let owner = run.party(MODEL_OWNER)?;
        let mut weights = Weights::default();
        for p in self.network.params() {
            weights
                .arrays
                .insert(p.name.clone(), owner.float(&p.name)?.clone());
        }
        Ok(weights)
    }
}

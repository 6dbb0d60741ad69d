//! A Keras-like model: a [`Network`] with the roles of its parties stated once, compiled for a
//! protocol with an optimiser and a loss, trained ([`Model::fit`]: privately under SecureNN or
//! Pond, or in plaintext), evaluated and used for private predictions, its weights saved and
//! loaded as `.npz`.
//!
//! Roles (the names of [`shareflow_graphs::network`]): the **model owner**
//! (`model-owner`) owns the parameters (it secret-shares them for predictions and alone may
//! receive them after private training); the **data owner** gives the training data (the
//! `client` party of a training graph); the **client** owns every prediction input and is the
//! only party that receives the output. The servers (`server0`, `server1`) and the third
//! party (Pond's dealer, SecureNN's helper) compute on shares and see no value.
//!
//! ```no_run
//! use shareflow_graphs::nn::{Dense, Flatten, ReLU, Sequential};
//! use shareflow_runtime::data::{data_dir, Mnist, Split};
//! use shareflow_runtime::model::{Model, Optimizer, Protocol};
//! use shareflow_graphs::zoo::Loss;
//!
//! let mut model = Model::new(
//!     [28, 28, 1],
//!     Sequential::new()
//!         .push(Flatten)
//!         .push(Dense::new("dense1", 784, 128))
//!         .push(ReLU)
//!         .push(Dense::new("dense2", 128, 10)),
//! );
//! println!("{}", model.summary(Some(shareflow_compiler::ProtocolKind::SecureNN))?);
//! model.compile(Protocol::SecureNN, Optimizer::momentum(0.05, 0.9), Loss::SoftmaxCrossEntropy);
//! let train = Mnist::load(&data_dir(None), Split::Train, Some(1280))?;
//! let test = Mnist::load(&data_dir(None), Split::Test, Some(200))?;
//! model.fit(&train.images, &train.labels, 1, 64)?;
//! let eval = model.evaluate(&test.images.into_dyn(), &test.labels, 100)?;
//! println!("accuracy {:.2}%", 100.0 * eval.accuracy);
//! model.save(std::path::Path::new("model.npz"))?;
//! # Ok::<(), shareflow_runtime::RuntimeError>(())
//! ```

mod fold;
mod predict;
mod quic;
mod summary;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use ndarray::{Array2, Array4, ArrayD};
use shareflow_compiler::{CompileOptions, ProtocolKind};
use shareflow_graphs::network::Network;
use shareflow_graphs::nn::Sequential;
use shareflow_graphs::zoo::{Loss, ModelKind};

use crate::data::{Mnist, Weights};
use crate::exec::ServingSession;
use crate::plain::train::{accuracy, train_network, TrainConfig};
use crate::train::{train_network_private, PrivateModel, TrainOptions};
use crate::{Result, RuntimeError};

pub use fold::fold_batchnorm;
pub use summary::{Summary, SummaryRow};

/// Where a model is trained and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// In the clear, in f32 (the reference).
    Plaintext,
    /// Pond: two servers and a dealer, polynomial ReLU (no comparisons).
    Pond,
    /// SecureNN: two servers and a helper, exact comparisons.
    SecureNN,
}

impl Protocol {
    /// The secure protocol, `None` for plaintext.
    pub fn secure(self) -> Option<ProtocolKind> {
        match self {
            Protocol::Plaintext => None,
            Protocol::Pond => Some(ProtocolKind::Pond),
            Protocol::SecureNN => Some(ProtocolKind::SecureNN),
        }
    }
}

/// The optimiser of [`Model::fit`]: SGD with (heavy-ball) momentum; the learning rate decays
/// by a cosine over all steps (as the zoo's training).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Optimizer {
    /// The first learning rate.
    pub lr: f32,
    /// The momentum coefficient (0: plain SGD).
    pub momentum: f32,
}

impl Optimizer {
    /// Plain SGD.
    pub fn sgd(lr: f32) -> Self {
        Optimizer { lr, momentum: 0.0 }
    }
    /// SGD with momentum.
    pub fn momentum(lr: f32, momentum: f32) -> Self {
        Optimizer { lr, momentum }
    }
}

/// What [`Model::fit`] measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FitReport {
    /// SGD steps run.
    pub steps: usize,
    /// Wall time of the whole fit, in milliseconds.
    pub ms: f64,
    /// Bytes sent by all parties over all steps (0 in plaintext).
    pub bytes: u64,
    /// Communication rounds of one step (0 in plaintext).
    pub rounds: u32,
    /// The mean loss of each step (plaintext only: a private step reveals no loss).
    pub losses: Vec<f32>,
}

/// What [`Model::evaluate`] measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalReport {
    /// Examples evaluated.
    pub images: usize,
    /// Fraction of predictions whose argmax is the label.
    pub accuracy: f64,
    /// Wall time of the predictions, in milliseconds.
    pub ms: f64,
    /// Bytes sent by all parties for the predictions (setting the weights up excluded; 0 in
    /// plaintext).
    pub bytes: u64,
    /// Communication rounds of one prediction batch (0 in plaintext).
    pub rounds: u32,
}

/// A network with its compile settings, and where its weights are: with the model owner in
/// the clear, or held as shares by the servers of a private training session.
pub struct Model {
    network: Network,
    protocol: Protocol,
    optimizer: Optimizer,
    /// Options of the protocol compiler (fixed point, Pond's polynomials, comparisons).
    pub options: CompileOptions,
    /// Seeds the initial weights, the shuffling and the dropout masks of [`Model::fit`]
    /// (public: the servers must agree on them).
    pub seed: u64,
    weights: Option<Weights>,
    private: Option<PrivateModel>,
    serving: HashMap<usize, ServingSession>,
    /// The directory of the loopback cluster when predictions run over QUIC.
    quic: Option<std::path::PathBuf>,
    /// The client's input range from which SecureNN's comparisons are narrowed
    /// ([`Model::narrow_for_inputs`]).
    input_range: Option<(f64, f64)>,
}

impl Model {
    /// A model over examples of shape `input` (no batch axis; `[28, 28, 1]` for MNIST) with
    /// these layers; plaintext and SGD with momentum 0.9 at 0.05 until [`Model::compile`].
    pub fn new(input: impl Into<Vec<usize>>, layers: Sequential) -> Model {
        Model::from_network(Network::new(input, layers))
    }

    /// A model of this network.
    pub fn from_network(network: Network) -> Model {
        Model {
            network,
            protocol: Protocol::Plaintext,
            optimizer: Optimizer::momentum(0.05, 0.9),
            options: CompileOptions::default(),
            seed: 1,
            weights: None,
            private: None,
            serving: HashMap::new(),
            quic: None,
            input_range: None,
        }
    }

    /// Narrows SecureNN's comparisons in [`Model::predict`] and [`Model::evaluate`] for images
    /// whose every element lies in `range` (`Some((0.0, 1.0))` for MNIST pixels), or makes them
    /// exact again (`None`, the default). The model owner bounds every value whose sign is
    /// taken from its weights and this range (`shareflow_compiler::bounds`), and each
    /// comparison runs over the fewest bits that bound proves exact: fewer bytes, the same
    /// rounds and results. The client refuses an image outside the range (an error naming it)
    /// before sharing it. The widths are public: each tells about log2 of a bound on the
    /// weights' norms at one layer. Needs the model owner's weights in the clear (not a model
    /// trained privately and still shared) and dealer truncation.
    pub fn narrow_for_inputs(&mut self, range: Option<(f64, f64)>) {
        self.input_range = range;
        self.serving.clear();
    }

    /// Runs the secure predictions ([`Model::predict`], [`Model::evaluate`]) with every party a
    /// QUIC endpoint on 127.0.0.1 with mutual TLS, each in its own thread: a fresh loopback
    /// cluster (CA, certificates, free ports) is written to `dir` for every session, which
    /// shares the weights once and predicts all batches of one size over the same connections.
    /// [`Model::fit`] and the predictions of a model trained privately stay in process.
    pub fn over_quic(&mut self, dir: impl Into<std::path::PathBuf>) {
        self.quic = Some(dir.into());
    }

    /// Runs the secure predictions with every party a thread of this process (the default).
    pub fn in_process(&mut self) {
        self.quic = None;
    }

    /// A zoo network (A-D, P) as a model.
    pub fn zoo(kind: ModelKind) -> Model {
        Model::from_network(kind.network())
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The protocol set by [`Model::compile`].
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Sets the protocol of [`Model::fit`], [`Model::predict`] and [`Model::evaluate`], the
    /// optimiser and the loss of [`Model::fit`].
    pub fn compile(&mut self, protocol: Protocol, optimizer: Optimizer, loss: Loss) {
        self.protocol = protocol;
        self.optimizer = optimizer;
        self.network.loss = loss;
        self.serving.clear();
    }

    /// The model owner's weights (after [`Model::load`], [`Model::set_weights`], a plaintext
    /// fit or [`Model::reveal_weights`]).
    pub fn weights(&self) -> Option<&Weights> {
        self.weights.as_ref()
    }

    /// Gives the model owner's weights (checked against the parameters' names and shapes);
    /// a private training session held before is dropped.
    pub fn set_weights(&mut self, weights: Weights) -> Result<()> {
        for p in self.network.params() {
            weights.get(&p.name, &p.shape)?;
        }
        self.weights = Some(weights);
        self.private = None;
        self.serving.clear();
        Ok(())
    }

    /// Loads the weights from an `.npz` file (one array per parameter, by name).
    pub fn load(&mut self, path: &Path) -> Result<()> {
        self.set_weights(Weights::load(path)?)
    }

    /// Saves the weights to an `.npz` file; after private training they are first revealed
    /// to the model owner ([`Model::reveal_weights`]).
    pub fn save(&mut self, path: &Path) -> Result<()> {
        self.reveal_weights()?.save(path)
    }

    /// The weights in the clear, for the model owner: after private training this is the
    /// run that opens them (to the model owner only); the session stays usable.
    pub fn reveal_weights(&mut self) -> Result<&Weights> {
        if let Some(private) = self.private.as_mut() {
            self.weights = Some(private.reveal()?);
        }
        self.weights.as_ref().ok_or_else(no_weights)
    }

    /// Trains on `images` `[n, h, w, c]` with `labels` (classes `0..10`) for `epochs` epochs
    /// in batches of `batch` (a last partial batch is dropped), under the compiled protocol:
    /// in plaintext the model owner gets the weights; under Pond or SecureNN the data owner
    /// secret-shares each batch and the servers keep the weights as shares (predictions then
    /// use them without opening them; [`Model::reveal_weights`] opens them to the model owner).
    /// Training starts from the seeded initialisation, not from earlier weights.
    pub fn fit(
        &mut self,
        images: &Array4<f32>,
        labels: &[u8],
        epochs: usize,
        batch: usize,
    ) -> Result<FitReport> {
        if images.shape()[0] != labels.len() {
            return Err(RuntimeError::Node {
                node: "fit".into(),
                message: format!("{} images and {} labels", images.shape()[0], labels.len()),
            });
        }
        let data = Mnist {
            images: images.clone(),
            labels: labels.to_vec(),
        };
        let cfg = TrainConfig {
            epochs,
            batch,
            lr: self.optimizer.lr,
            momentum: self.optimizer.momentum,
            seed: self.seed,
        };
        let start = Instant::now();
        let mut report = FitReport::default();
        self.serving.clear();
        match self.protocol.secure() {
            None => {
                let w = train_network(&self.network, &data, &cfg, |p| {
                    report.steps += 1;
                    report.losses.push(p.loss);
                })?;
                self.weights = Some(w);
                self.private = None;
            }
            Some(protocol) => {
                let private = train_network_private(
                    &self.network,
                    &data,
                    &cfg,
                    protocol,
                    self.options,
                    &TrainOptions::default(),
                    |s| {
                        report.steps += 1;
                        report.bytes += s.bytes;
                        report.rounds = report.rounds.max(s.rounds);
                    },
                )?;
                self.private = Some(private);
                self.weights = None;
            }
        }
        report.ms = start.elapsed().as_secs_f64() * 1e3;
        Ok(report)
    }

    /// The outputs `[n, k]` of `images` `[n, ...]`, in batches of at most `batch`, under the
    /// compiled protocol: each batch a private prediction whose input only the client gives
    /// and whose output only the client receives. The model owner's weights are shared and
    /// masked once per batch size and reused (a serving session); after private training
    /// the servers' shares are used as they are.
    pub fn predict(&mut self, images: &ArrayD<f32>, batch: usize) -> Result<Array2<f32>> {
        Ok(self.predict_measured(images, batch)?.0)
    }

    /// Accuracy of [`Model::predict`] on `images` against `labels`, with its time and traffic.
    pub fn evaluate(
        &mut self,
        images: &ArrayD<f32>,
        labels: &[u8],
        batch: usize,
    ) -> Result<EvalReport> {
        let start = Instant::now();
        let (logits, bytes, rounds) = self.predict_measured(images, batch)?;
        Ok(EvalReport {
            images: labels.len(),
            accuracy: accuracy(&logits, labels),
            ms: start.elapsed().as_secs_f64() * 1e3,
            bytes,
            rounds,
        })
    }
}

fn no_weights() -> RuntimeError {
    RuntimeError::Node {
        node: "model".into(),
        message: "no weights: fit the model or load its weights first".into(),
    }
}

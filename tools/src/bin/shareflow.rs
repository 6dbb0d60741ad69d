//! `shareflow`: train, evaluate, compile, draw and inspect encrypted deep-learning graphs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shareflow_compiler::options::Comparison;
use shareflow_compiler::{CompileOptions, Truncation};
use shareflow_graphs::zoo::ModelKind;
use shareflow_runtime::federated::LocalConfig;
use shareflow_runtime::plain::train::TrainConfig;
use shareflow_tools::commands::network::Network;
use shareflow_tools::commands::Options;
use shareflow_tools::commands::{
    bench, compile, demo, dot, eval, export_image, fedavg, import, inspect, keys, run_graph, train,
};
use shareflow_tools::ToolError;

#[derive(Parser)]
#[command(name = "shareflow", version, about = "Deep learning on encrypted data")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Write a Chrome trace of the command here (chrome://tracing, ui.perfetto.dev): a track
    /// per party, a span per kernel, per round and per exchange (with its bytes and messages);
    /// parties run as processes (demo, --transport quic) are merged in, each a process of its
    /// own. Logs go to stderr, filtered by RUST_LOG (default: warn).
    #[arg(long, global = true, value_name = "FILE")]
    trace: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: a private prediction of an MNIST digit, every party a separate process
    /// on 127.0.0.1 over QUIC with mutual TLS.
    Demo {
        /// A network of the zoo [default: C].
        #[arg(long, conflicts_with_all = ["onnx", "graph"])]
        model: Option<ModelKind>,
        /// An ONNX model instead of a zoo network (its initializers are the model owner's
        /// weights).
        #[arg(long, conflicts_with = "graph")]
        onnx: Option<PathBuf>,
        /// A logical graph (JSON, as `shareflow import` writes it) instead of a zoo network,
        /// with its weights in --weights; it must take batches of 1 (see README, Bring your
        /// own model).
        #[arg(long, requires = "weights")]
        graph: Option<PathBuf>,
        /// The model owner's weights (.npz): of --graph, or of --model instead of
        /// models/<model>.npz. Every party process reads them from this file.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// pond (ReLU and sigmoid are polynomials: approximations
        /// inside their interval, garbage outside it, silently; see --relu-interval) or securenn
        /// (exact ReLU, max pooling and argmax).
        #[arg(long, default_value = "securenn")]
        protocol: String,
        /// Which image of the test set.
        #[arg(long, default_value_t = 0)]
        index: usize,
        #[arg(long)]
        data: Option<PathBuf>,
        /// Seconds to wait for a peer.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        #[command(flatten)]
        protocol_options: ProtocolArgs,
        #[arg(long)]
        json: bool,
    },
    /// The benchmark table of networks A-D (or of --onnx FILE, or --graph FILE --weights W):
    /// time, bytes, rounds, accuracy and KL per network, protocol, transport and batch size
    /// (with --train: the SGD step of private training).
    Bench {
        /// Comma-separated networks [default: A,B,C,D].
        #[arg(long, value_delimiter = ',', conflicts_with_all = ["onnx", "graph"])]
        model: Vec<ModelKind>,
        /// An ONNX model instead of the zoo's networks (its initializers are the weights).
        #[arg(long, conflicts_with = "graph")]
        onnx: Option<PathBuf>,
        /// A logical graph (JSON, as `shareflow import` writes it) instead of the zoo's
        /// networks, with its weights in --weights; it runs at its own batch only (the
        /// default of --batch and of the accuracy pass).
        #[arg(long, requires = "weights")]
        graph: Option<PathBuf>,
        /// The model owner's weights (.npz): of --graph, or of one --model instead of
        /// models/<model>.npz. The QUIC party processes read them from this file.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Comma-separated protocols (Pond is skipped for B and C: no maxpool; with --train,
        /// for every network it cannot train). Pond's ReLU is a polynomial, garbage outside
        /// its interval (see --relu-interval).
        #[arg(long, value_delimiter = ',', default_value = "pond,securenn")]
        protocol: Vec<String>,
        /// Comma-separated transports: inproc (every party in this process) and/or quic (one
        /// process per party on 127.0.0.1) [default: inproc,quic; with --train: inproc].
        #[arg(long, value_delimiter = ',')]
        transport: Vec<String>,
        /// Comma-separated batch sizes [default: 1,128; with --train: 128; with --graph: the
        /// graph's].
        #[arg(long, value_delimiter = ',')]
        batch: Vec<usize>,
        /// Timed repetitions after a warm-up.
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Accuracy and KL over the first N test images only (default: all 10k).
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        data: Option<PathBuf>,
        /// Seconds a QUIC party waits for a peer.
        #[arg(long, default_value_t = 120.0)]
        timeout: f64,
        /// Also write the table as Markdown to this file.
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// Time each prediction as one whole program (weights shared and masked every time,
        /// QUIC processes started afresh) instead of predictions of a serving session.
        #[arg(long)]
        single: bool,
        /// Time SGD steps of private training instead of predictions: per network, protocol
        /// and batch, the session's init once, then a warm-up and --reps steps on MNIST
        /// training batches (from --data or SHAREFLOW_DATA), with the plaintext step of the
        /// same graph and the step program's cost report; fails if the measured bytes or
        /// rounds differ from the cost report's. In process or (--transport quic) with every
        /// party its own process; Pond is skipped (with a note) for networks it cannot train.
        #[arg(long)]
        train: bool,
        #[command(flatten)]
        protocol_options: ProtocolArgs,
        #[arg(long)]
        json: bool,
    },
    /// Federated learning of network A with secure aggregation: K data owners train on
    /// disjoint shards in plaintext and secret-share their updates, the servers average them,
    /// only the model owner receives the mean.
    Fedavg {
        /// Data owners (the training subset is split into this many disjoint shards).
        #[arg(long, default_value_t = 10)]
        owners: usize,
        /// Federated rounds.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Local SGD steps of each owner per round.
        #[arg(long, default_value_t = 20)]
        steps: usize,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long, default_value_t = 0.05)]
        lr: f32,
        /// Momentum of the local SGD (the velocity starts at zero every round).
        #[arg(long, default_value_t = 0.9)]
        momentum: f32,
        /// The probability that an owner misses a round (left out of it; the count of
        /// contributors is public and reported).
        #[arg(long, default_value_t = 0.0)]
        absent: f64,
        /// Seeds the initial model, the shards, the batches and who misses a round.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// pond or securenn (the aggregation is additions and one public scaling: both exact
        /// up to fixed point).
        #[arg(long, default_value = "securenn")]
        protocol: String,
        /// inproc (every party a thread) or quic (one process per party every round).
        #[arg(long, default_value = "inproc")]
        transport: String,
        #[arg(long)]
        data: Option<PathBuf>,
        /// Seconds a QUIC party waits for a peer.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        #[command(flatten)]
        protocol_options: ProtocolArgs,
        #[arg(long)]
        json: bool,
    },
    /// Makes a cluster CA, one certificate and key per party, and a loopback cluster file.
    Keys {
        /// Comma-separated party names.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "server0,server1,helper,model-owner,client"
        )]
        parties: Vec<String>,
        #[arg(long)]
        out: PathBuf,
        /// First UDP port of the loopback cluster file (0: ports the OS reports free).
        #[arg(long, default_value_t = 0)]
        base_port: u16,
        /// Replace the files of an earlier run: a new CA and every certificate and key.
        #[arg(long)]
        force: bool,
        /// One JSON object: the directory, the CA, the cluster file and the parties.
        #[arg(long)]
        json: bool,
    },
    /// Runs one party of a compiled graph over QUIC (the same as the `run-graph` binary).
    #[command(name = "run-graph")]
    RunGraph(run_graph::Args),
    /// Trains a network of the zoo (A, B, C, D, or P: sigmoids, average pooling and sigmoid
    /// cross-entropy, the network trainable under Pond): one run of the network's training
    /// graph (forward, backward and update) per step, in plaintext (weights saved as .npz) or
    /// on shares under SecureNN or Pond (every party a thread of this process, or its own
    /// process over QUIC).
    Train {
        #[arg(long)]
        model: ModelKind,
        /// plaintext, securenn or pond. Under a protocol the servers train on shares of the
        /// images, labels and weights; nothing is revealed during training (not the loss,
        /// not the logits) unless --reveal-loss or --reveal-logits-to asks; the test accuracy
        /// is that of private predictions from the still-shared model.
        #[arg(long, default_value = "plaintext")]
        protocol: String,
        /// Under a protocol: reveal the trained weights to the model owner and write them to
        /// --out (this opens the model; without it the weights stay shared and are
        /// discarded with the session).
        #[arg(long)]
        reveal: bool,
        /// Under a protocol: who receives the trained weights, model-owner (the default of
        /// --reveal) or client (the data owner); implies --reveal. Never a server.
        #[arg(long, value_name = "PARTY")]
        reveal_to: Option<String>,
        /// Under a protocol: reveal each step's mean loss over its batch to the data owner
        /// (client), which prints it (progress bar and report). This opens one number per
        /// step, a function of the still-shared weights and the batch: how well the model
        /// fits the data owner's own batch. The data owner learns it, no server does. Off by
        /// default: then no loss is computed in the clear and none is printed.
        #[arg(long)]
        reveal_loss: bool,
        /// Under a protocol, a LEAK the user opts into: reveal every step's logits over its
        /// batch ([batch, 10]) to PARTY, which computes the loss's gradient (sigmoid(z) - y or
        /// softmax(z) - y) in the clear from its own labels and secret-shares it back, as the
        /// Pond proof of concept did: exact (no polynomial or softmax on shares) and fewer
        /// rounds, but PARTY learns the model's outputs on its batch at every step. PARTY must
        /// be client (the data owner, who holds the labels); never a server. The report's
        /// reveals_per_step names it. In process and over QUIC. Off by default: the loss and its
        /// gradient are computed on shares
        #[arg(long, value_name = "PARTY")]
        reveal_logits_to: Option<String>,
        /// The first weights: seed (He-normal kernels drawn from --seed, zero biases) or
        /// FILE.npz, one float32 array per parameter named as the network's (`dense1/kernel`,
        /// ...; shapes checked), which the model owner secret-shares to the servers.
        #[arg(long, value_name = "seed|FILE.npz")]
        init: Option<String>,
        /// Test on the first N test images only.
        #[arg(long)]
        test_limit: Option<usize>,
        /// Under a protocol: also train in plaintext from the same initial weights on the
        /// same batches, and report its accuracy (and, with --reveal, the largest difference
        /// between the two runs' weights).
        #[arg(long)]
        reference: bool,
        /// Under a protocol: inproc (every party a thread of this process) or quic (every
        /// party its own run-graph process on 127.0.0.1, as the demo starts them).
        #[arg(long, default_value = "inproc")]
        transport: String,
        /// MNIST directory (default: $SHAREFLOW_DATA or ../shared/data/mnist).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Where to write the weights (default: models/<model>.npz under the current
        /// directory).
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Overwrite the output file if it exists; with --checkpoint, start a new session in a
        /// directory that holds checkpoints (deleting them).
        #[arg(long)]
        force: bool,
        /// Under a protocol: every --checkpoint-every steps each server writes its own shares
        /// of the variables (uniformly random: one server's files alone reveal nothing), the
        /// step and the step program's digest to DIR/<server>/step-<n>.npz, atomically.
        #[arg(long, value_name = "DIR")]
        checkpoint: Option<PathBuf>,
        /// Steps between two checkpoints (default 50 with --checkpoint).
        #[arg(long, value_name = "K", requires = "checkpoint")]
        checkpoint_every: Option<usize>,
        /// Continue from the last checkpoint in --checkpoint DIR that every server has (same
        /// network, protocol, data and hyper-parameters; another step program is refused).
        #[arg(long, requires = "checkpoint")]
        resume: bool,
        /// Stop after N steps of the schedule (a later --resume continues from the last
        /// checkpoint).
        #[arg(long, value_name = "N")]
        stop_after: Option<usize>,
        /// Train on the first N training images only.
        #[arg(long)]
        limit: Option<usize>,
        /// With --transport quic: seconds a party waits for a peer in any round before it
        /// stops naming that peer (default 600).
        #[arg(long, value_name = "S")]
        timeout: Option<f64>,
        #[arg(long, default_value_t = 15)]
        epochs: usize,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// The initial learning rate, decayed by a cosine over all steps (default 0.05; 0.2
        /// for P).
        #[arg(long)]
        lr: Option<f32>,
        #[arg(long, default_value_t = 0.9)]
        momentum: f32,
        /// Seeds initial weights and shuffling.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// Prediction over the official 10k MNIST test set. Under pond or securenn the weights are
    /// set up once (shared, masked, opened), then each batch is one prediction; `setup_bytes`
    /// and `setup_ms` report the setup apart from the per-batch figures (`--no-persist`: one
    /// single program per batch).
    Eval {
        #[command(flatten)]
        network: NetworkArgs,
        /// plaintext, pond (ReLU and sigmoid are polynomials: approximations
        /// inside their interval, garbage outside it, silently; see --relu-interval) or securenn
        /// (exact ReLU, max pooling and argmax).
        /// Under pond, `outside_interval` counts the activations' inputs outside the interval
        /// (from the plaintext reference).
        #[arg(long, default_value = "plaintext")]
        protocol: String,
        /// Only the first N test images.
        #[arg(long)]
        limit: Option<usize>,
        /// Images per batch [default: 500; with --graph: the graph's batch, the only one it
        /// takes].
        #[arg(long)]
        batch: Option<usize>,
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        protocol_options: ProtocolArgs,
        /// Run every batch as the single program (weights masked per batch) instead of a
        /// setup once and then one prediction per batch.
        #[arg(long)]
        no_persist: bool,
        #[arg(long)]
        json: bool,
    },
    /// Prints a network's graph as Graphviz DOT: the logical graph, or the compiled graph with
    /// one cluster per party, one box per layer and party, rounds top to bottom.
    Dot {
        #[command(flatten)]
        network: NetworkArgs,
        /// Draw the graph compiled for this protocol instead of the logical graph.
        #[arg(long)]
        protocol: Option<String>,
        /// Draw this layer (`conv1`, `relu2`, ...) kernel by kernel, or `all` of them.
        #[arg(long, default_value = "layers")]
        detail: shareflow_compiler::dot::Detail,
        /// Draw the per-prediction program of a serving session.
        #[arg(long)]
        serving: bool,
        /// With --serving: draw the setup program instead.
        #[arg(long)]
        setup: bool,
        #[command(flatten)]
        protocol_options: ProtocolArgs,
    },
    /// Compiles a network for a protocol; prints its static cost report (rounds, bytes per
    /// party pair, per layer, a latency estimate) without running it.
    Compile {
        #[command(flatten)]
        network: NetworkArgs,
        /// pond (ReLU and sigmoid are polynomials: approximations
        /// inside their interval, garbage outside it, silently; see --relu-interval) or securenn
        /// (exact ReLU, max pooling and argmax).
        #[arg(long)]
        protocol: String,
        /// Images per prediction [default: 1; with --graph: the graph's batch, the only one
        /// it takes].
        #[arg(long)]
        batch: Option<usize>,
        /// Write the compiled graph (JSON) here.
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// The full report: bytes per ordered party pair and per layer.
        #[arg(long)]
        cost: bool,
        /// A setup program that masks the model owner's weights once, and a per-prediction
        /// program that reuses them.
        #[arg(long)]
        serving: bool,
        /// Round-trip time of the latency estimate.
        #[arg(long, default_value_t = 1.0)]
        rtt_ms: f64,
        /// Bandwidth of the latency estimate.
        #[arg(long, default_value_t = 1000.0)]
        mbps: f64,
        #[command(flatten)]
        protocol_options: ProtocolArgs,
        #[arg(long)]
        json: bool,
    },
    /// Lists a network's layers, shapes and parameters.
    Inspect {
        #[command(flatten)]
        network: NetworkArgs,
        #[arg(long)]
        json: bool,
    },
    /// Imports an ONNX model as a logical graph (JSON): its initializers become the model
    /// owner's private inputs, its input the client's `image`, its output the client's
    /// `logits`. Unsupported operators are refused by name. `-o graph.json --weights-out
    /// weights.npz` gives what `--graph graph.json --weights weights.npz` runs, with the
    /// same results as `--onnx model.onnx`.
    Import {
        /// The .onnx file.
        onnx: PathBuf,
        /// Where to write the graph (JSON).
        #[arg(short, long)]
        out: PathBuf,
        /// Also write the model owner's weights here (.npz; for --weights with --graph).
        #[arg(long)]
        weights_out: Option<PathBuf>,
        /// Inputs per prediction: the graph's batch, fixed (eval, bench, compile run
        /// --graph at this batch; demo needs 1).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long)]
        json: bool,
    },
    /// Writes MNIST test images as a .npy file in the layout the graphs take (float32
    /// [count, 28, 28, 1], pixel / 255, or the input shape of --onnx / --graph), to give a
    /// client's run-graph directly (`--input image=x.npy`); with --labels, their digits too.
    #[command(name = "export-image")]
    ExportImage {
        /// The first test image.
        #[arg(long)]
        index: usize,
        /// How many images (the batch of the graph they feed).
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Where to write the images (.npy).
        #[arg(short, long)]
        out: PathBuf,
        /// Also write their labels here (.npy, float32 [count]).
        #[arg(long, value_name = "FILE")]
        labels: Option<PathBuf>,
        /// Write in the input shape of this ONNX model.
        #[arg(long, conflicts_with = "graph")]
        onnx: Option<PathBuf>,
        /// Write in the input shape of this logical graph (JSON).
        #[arg(long)]
        graph: Option<PathBuf>,
        /// MNIST directory (default: $SHAREFLOW_DATA or ../shared/data/mnist).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
}

/// The network a command runs: a zoo network, an ONNX model or a user's graph.
#[derive(clap::Args)]
struct NetworkArgs {
    /// A network of the zoo: A, B, C, D (or P).
    #[arg(
        long,
        conflicts_with_all = ["onnx", "graph"],
        required_unless_present_any = ["onnx", "graph"]
    )]
    model: Option<ModelKind>,
    /// An ONNX model instead of a zoo network (its initializers are the model owner's
    /// weights; NCHW images are given NHWC).
    #[arg(long, conflicts_with = "graph")]
    onnx: Option<PathBuf>,
    /// A logical graph (JSON, as `shareflow import` writes it): input `image` of `client`
    /// (batch first, the graph's batch fixed), the weights inputs of `model-owner`, one output
    /// `logits` [batch, classes] to `client` (see README, Bring your own model).
    #[arg(long)]
    graph: Option<PathBuf>,
    /// The model owner's weights (.npz): required with --graph to evaluate (checked against
    /// its inputs by name and shape), else models/<model>.npz for --model.
    #[arg(long)]
    weights: Option<PathBuf>,
}

impl NetworkArgs {
    fn network(&self) -> Result<Network, ToolError> {
        Network::from_args(self.model, self.onnx.as_deref(), self.graph.as_deref())
    }

    /// The network, with the weights checked against it when given (for the commands that
    /// do not run it).
    fn checked(&self) -> Result<Network, ToolError> {
        let network = self.network()?;
        if self.weights.is_some() {
            network.weights(self.weights.clone())?;
        }
        Ok(network)
    }
}

/// Options of the secure protocols. Their ranges are checked by the compiler
/// (`CompileOptions::validate`), whose error names the option.
#[derive(clap::Args, Clone)]
struct ProtocolArgs {
    /// Fixed-point fractional bits, from 12 to 24: inputs must satisfy |x| < 2^(31 - f), and
    /// a product of two values is exact while |x y| < 2^(62 - 2f).
    #[arg(long, default_value_t = 16)]
    frac_bits: u32,
    /// Truncation after products: dealer (exact to one ulp) or local (SecureML).
    #[arg(long, default_value = "dealer")]
    truncation: String,
    /// Pond: ReLU polynomial fitted on [-I, I] (default per network: 8, or 16 for D), from
    /// 2^(8 - f) to 2^(f - 8) and such that the fit's coefficients encode. OUTSIDE THE
    /// INTERVAL THE POLYNOMIAL IS GARBAGE (ReLU(50) = -1.4e9 on [-8, 8]), silently; `eval`
    /// reports how many inputs fell outside (`outside_interval`).
    #[arg(long)]
    relu_interval: Option<f64>,
    /// Pond: degree of the ReLU polynomial, from 1 to 20 (default per network: 10, or 14 for
    /// D).
    #[arg(long)]
    relu_degree: Option<usize>,
    /// SecureNN: how signs (ReLU, max pooling, argmax) are taken, both exact: `opened` (one
    /// masked opening and one PrivateCompare of 63 bits, 3 rounds; exact for every value; of
    /// a truncation's output, 64 - f bits in 2 rounds, reusing its opening) or
    /// `paper` (ShareConvert and ComputeMSB, 8 rounds; exact for |x| < 2^62 ring units).
    #[arg(long, default_value = "opened")]
    comparison: String,
    /// SecureNN, opened comparisons: tensors of at least this many words compare by a carry
    /// circuit on bit planes (about a third of PrivateCompare's bytes, ceil(log2 n) - 1 rounds
    /// more for n bits compared: 5 at 47 and 63); 0 for every comparison.
    #[arg(long, default_value_t = shareflow_compiler::options::CARRY_MIN_WORDS)]
    carry_min_words: usize,
    /// SecureNN prediction: narrower comparisons, proven sound for client inputs in [LO, HI]
    /// (e.g. `0,1` for MNIST pixels). The model owner computes, from its weights and this
    /// range, a bound on every value whose sign is taken (interval arithmetic, with slack for
    /// every truncation), and each comparison runs over the fewest bits that bound allows
    /// (fewer bytes). At run time the client refuses an input outside the range
    /// and the model owner weights other than those bounded. Off by default. The widths are
    /// public (the cost report lists them): each reveals about log2 of a bound on the
    /// weights' norms at one layer; the model owner opts in to that.
    #[arg(long, value_name = "LO,HI", value_parser = parse_range)]
    input_range: Option<(f64, f64)>,
}

/// `lo,hi` as two numbers.
fn parse_range(s: &str) -> Result<(f64, f64), String> {
    let (lo, hi) = s
        .split_once(',')
        .ok_or_else(|| format!("{s:?}: expected LO,HI"))?;
    let num = |v: &str| v.trim().parse::<f64>().map_err(|e| format!("{v:?}: {e}"));
    let (lo, hi) = (num(lo)?, num(hi)?);
    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
        return Err(format!("{s:?}: expected finite LO <= HI"));
    }
    Ok((lo, hi))
}

impl ProtocolArgs {
    fn options(&self) -> Result<Options, ToolError> {
        let mut o = CompileOptions {
            frac_bits: self.frac_bits,
            carry_min_words: self.carry_min_words,
            ..Default::default()
        };
        o.truncation = match self.truncation.as_str() {
            "dealer" => Truncation::Dealer,
            "local" => Truncation::Local,
            other => {
                return Err(ToolError::Usage(format!(
                    "unknown truncation {other:?} (dealer, local)"
                )))
            }
        };
        o.comparison = match self.comparison.as_str() {
            "opened" => Comparison::Opened,
            "paper" => Comparison::Paper,
            other => {
                return Err(ToolError::Usage(format!(
                    "unknown comparison {other:?} (opened, paper)"
                )))
            }
        };
        if let Some(i) = self.relu_interval {
            o.relu.interval = i;
        }
        if let Some(d) = self.relu_degree {
            o.relu.degree = d;
        }
        Ok(Options {
            base: o,
            relu_given: self.relu_interval.is_some() || self.relu_degree.is_some(),
            input_range: self.input_range,
        })
    }
}

fn main() -> ExitCode {
    shareflow_tools::alloc::keep_freed_memory();
    let cli = Cli::parse();
    let tracing = match shareflow_tools::logging::init(cli.trace.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = run(cli.command);
    // The trace is complete (the parties' traces merged in) before the process ends.
    drop(tracing);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                ToolError::Interrupted { status, .. } => ExitCode::from(status),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn run(command: Command) -> Result<(), ToolError> {
    match command {
        Command::Train {
            model,
            protocol,
            reveal,
            reveal_to,
            reveal_loss,
            reveal_logits_to,
            init,
            test_limit,
            reference,
            transport,
            data,
            out,
            force,
            checkpoint,
            checkpoint_every,
            resume,
            stop_after,
            limit,
            timeout,
            epochs,
            batch,
            lr,
            momentum,
            seed,
            json,
        } => train::run(train::TrainArgs {
            model,
            protocol,
            reveal,
            reveal_to,
            reveal_loss,
            reveal_logits_to,
            init,
            test_limit,
            reference,
            transport,
            data,
            out,
            force,
            checkpoint,
            checkpoint_every,
            resume,
            stop_after,
            limit,
            timeout_s: timeout,
            config: TrainConfig {
                epochs,
                batch,
                lr: lr.unwrap_or_else(|| shareflow_tools::commands::default_learning_rate(model)),
                momentum,
                seed,
            },
            json,
        }),
        Command::Eval {
            network,
            protocol,
            limit,
            batch,
            data,
            protocol_options,
            no_persist,
            json,
        } => {
            let options = protocol_options.options()?;
            let model = network.network()?;
            eval::run(eval::EvalArgs {
                batch: batch.or(model.fixed_batch()).unwrap_or(500),
                model,
                protocol,
                limit,
                data,
                weights: network.weights,
                options,
                persist: !no_persist,
                json,
            })
        }
        Command::Dot {
            network,
            protocol,
            detail,
            serving,
            setup,
            protocol_options,
        } => dot::run(dot::DotArgs {
            model: network.checked()?,
            protocol,
            detail,
            serving,
            setup,
            options: {
                let o = protocol_options.options()?;
                o.exact_only("dot")?;
                o
            },
        }),
        Command::Compile {
            network,
            protocol,
            batch,
            out,
            cost,
            serving,
            rtt_ms,
            mbps,
            protocol_options,
            json,
        } => {
            let options = protocol_options.options()?;
            let model = network.checked()?;
            compile::run(compile::CompileArgs {
                batch: batch.or(model.fixed_batch()).unwrap_or(1),
                weights: network.weights.clone(),
                model,
                protocol,
                options,
                out,
                cost,
                serving,
                rtt_ms,
                mbps,
                json,
            })
        }
        Command::Inspect { network, json } => {
            inspect::run(network.network()?, network.weights, json)
        }
        Command::ExportImage {
            index,
            count,
            out,
            labels,
            onnx,
            graph,
            data,
            force,
            json,
        } => export_image::run(export_image::ExportImageArgs {
            index,
            count,
            network: match (onnx.as_deref(), graph.as_deref()) {
                (None, None) => None,
                (onnx, graph) => Some(Network::from_args(None, onnx, graph)?),
            },
            data,
            out,
            labels,
            force,
            json,
        }),
        Command::Import {
            onnx,
            out,
            weights_out,
            batch,
            json,
        } => import::run(import::ImportArgs {
            onnx,
            out,
            weights_out,
            batch,
            json,
        }),
        Command::Demo {
            model,
            onnx,
            graph,
            weights,
            protocol,
            index,
            data,
            timeout,
            protocol_options,
            json,
        } => {
            let options = protocol_options.options()?;
            let protocol = protocol.parse::<shareflow_compiler::ProtocolKind>()?;
            let model = match (model, onnx.as_deref(), graph.as_deref()) {
                (None, None, None) => Network::Zoo(ModelKind::C),
                (model, onnx, graph) => Network::from_args(model, onnx, graph)?,
            };
            demo::run(demo::DemoArgs {
                model,
                weights,
                protocol,
                options,
                index,
                data,
                timeout_s: timeout,
                json,
            })
        }
        Command::Keys {
            parties,
            out,
            base_port,
            force,
            json,
        } => keys::run(&parties, &out, base_port, force, json),
        Command::Bench {
            model,
            onnx,
            graph,
            weights,
            protocol,
            transport,
            batch,
            reps,
            limit,
            data,
            timeout,
            markdown,
            single,
            train,
            protocol_options,
            json,
        } => {
            let options = protocol_options.options()?;
            if train {
                options.exact_only("bench --train")?;
            }
            let transport = match (transport.is_empty(), train) {
                (false, _) => transport,
                (true, false) => vec!["inproc".into(), "quic".into()],
                (true, true) => vec!["inproc".into()],
            };
            let models = match (onnx.as_deref(), graph.as_deref()) {
                (None, None) if model.is_empty() => {
                    [ModelKind::A, ModelKind::B, ModelKind::C, ModelKind::D]
                        .map(Network::Zoo)
                        .to_vec()
                }
                (None, None) => model.into_iter().map(Network::Zoo).collect(),
                (onnx, graph) => vec![Network::from_args(None, onnx, graph)?],
            };
            let fixed = models.first().and_then(Network::fixed_batch);
            let batch = match (batch.is_empty(), train, fixed) {
                (false, _, _) => batch,
                (true, false, Some(b)) => vec![b],
                (true, false, None) => vec![1, 128],
                (true, true, _) => vec![128],
            };
            bench::run(bench::BenchArgs {
                single,
                train,
                models,
                weights,
                protocols: bench::parse_protocols(&protocol)?,
                transports: transport,
                batches: batch,
                reps,
                limit,
                data,
                options,
                timeout_s: timeout,
                json,
                markdown,
            })
        }
        Command::Fedavg {
            owners,
            rounds,
            steps,
            batch,
            lr,
            momentum,
            absent,
            seed,
            protocol,
            transport,
            data,
            timeout,
            protocol_options,
            json,
        } => fedavg::run(fedavg::FedavgArgs {
            owners,
            rounds,
            local: LocalConfig {
                steps,
                batch,
                lr,
                momentum,
            },
            absent,
            seed,
            protocol: protocol.parse()?,
            options: {
                let o = protocol_options.options()?;
                o.exact_only("fedavg")?;
                o
            },
            transport,
            data,
            timeout_s: timeout,
            json,
        }),
        Command::RunGraph(args) => run_graph::run(args),
    }
}

//! `shareflow`: train, evaluate, compile, draw and inspect encrypted deep-learning graphs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shareflow_graphs::zoo::ModelKind;
use shareflow_runtime::plain::train::TrainConfig;
use shareflow_tools::commands::{dot, eval, inspect, train};

#[derive(Parser)]
#[command(name = "shareflow", version, about = "Deep learning on encrypted data")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trains a network of the zoo (A, B, C, D) in plaintext and saves its weights as .npz.
    Train {
        #[arg(long)]
        model: ModelKind,
        /// MNIST directory (default: $SHAREFLOW_DATA or ../shared/data/mnist).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Where to write the weights (default: models/<model>.npz).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 15)]
        epochs: usize,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long, default_value_t = 0.05)]
        lr: f32,
        #[arg(long, default_value_t = 0.9)]
        momentum: f32,
        /// Seeds initial weights and shuffling.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// Prediction over the official 10k MNIST test set.
    Eval {
        #[arg(long)]
        model: ModelKind,
        /// plaintext, pond or securenn.
        #[arg(long, default_value = "plaintext")]
        protocol: String,
        /// Only the first N test images.
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, default_value_t = 500)]
        batch: usize,
        #[arg(long)]
        data: Option<PathBuf>,
        /// Weights .npz (default: models/<model>.npz).
        #[arg(long)]
        weights: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Prints a network's graph as Graphviz DOT.
    Dot {
        #[arg(long)]
        model: ModelKind,
        /// Draw the graph compiled for this protocol instead of the logical graph.
        #[arg(long)]
        protocol: Option<String>,
    },
    /// Lists a network's layers, shapes and parameters.
    Inspect {
        #[arg(long)]
        model: ModelKind,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train {
            model,
            data,
            out,
            epochs,
            batch,
            lr,
            momentum,
            seed,
            json,
        } => train::run(train::TrainArgs {
            model,
            data,
            out,
            config: TrainConfig {
                epochs,
                batch,
                lr,
                momentum,
                seed,
            },
            json,
        }),
        Command::Eval {
            model,
            protocol,
            limit,
            batch,
            data,
            weights,
            json,
        } => eval::run(eval::EvalArgs {
            model,
            protocol,
            limit,
            batch,
            data,
            weights,
            json,
        }),
        Command::Dot { model, protocol } => dot::run(model, protocol.as_deref()),
        Command::Inspect { model, json } => inspect::run(model, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

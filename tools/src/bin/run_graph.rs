//! `run-graph`: runs one party of a compiled shareflow graph over QUIC; see
//! [`shareflow_tools::commands::run_graph`].

use std::process::ExitCode;

use clap::Parser;
use shareflow_tools::commands::run_graph::{run, Args};

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("run-graph: error: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `run-graph`: runs one party of a compiled shareflow graph over QUIC; see
//! [`shareflow_tools::commands::run_graph`].

use std::process::ExitCode;

use clap::Parser;
use shareflow_tools::commands::run_graph::{run, Args};

fn main() -> ExitCode {
    shareflow_tools::alloc::keep_freed_memory();
    let args = Args::parse();
    let _tracing = match shareflow_tools::logging::init(args.trace.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("run-graph: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("run-graph: error: {e}");
            ExitCode::FAILURE
        }
    }
}

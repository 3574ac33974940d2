//! The `crmkpi` binary: parses the command line, loads the configuration, sets up logging,
//! progress and threads, runs the libraries, and turns the outcome into an exit code
//! (0 success, 1 runtime error, 2 usage error, 3 `max_reject_ratio` exceeded).

mod args;
mod commands;
mod progress;
mod samples;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;
use crate::commands::Failure;

/// mimalloc: the engine allocates many short-lived strings and Arrow buffers from several
/// threads at once, where the system allocator fragments and contends; mimalloc keeps peak
/// RSS lower and parsing faster.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    settings::keep_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    if let Err(error) = settings::init_threads(cli.global.threads) {
        eprintln!("error: {error:#}");
        return ExitCode::from(2);
    }
    settings::init_logging(&cli.global);
    match commands::run(cli) {
        Ok(code) => code,
        Err(Failure::Usage(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

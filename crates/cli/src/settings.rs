//! Resolution of raw flags into run settings: the configuration (an explicit `--config`, else
//! `./crmkpi.toml`, else a command's fallback, else the built-in defaults), logging and the
//! size of the thread pools.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use crmkpi_schema::Config;
use tracing_subscriber::filter::LevelFilter;

use crate::args::{GlobalArgs, LogFormat};
use crate::progress::{self, TerminalWriter};

/// Loads the run's configuration (see [`Config::discover`]); returns it with the file it came
/// from (none: defaults).
pub fn load_config(explicit: Option<&Path>, fallback: Option<&Path>) -> anyhow::Result<(Config, Option<PathBuf>)> {
    Config::discover(explicit, fallback).context("fix the configuration file or pass another with --config")
}

/// Sizes the thread pools: rayon's global pool (parsing) and polars' pool (queries).
pub fn init_threads(threads: Option<usize>) -> anyhow::Result<()> {
    let Some(threads) = threads else { return Ok(()) };
    anyhow::ensure!(threads > 0, "--threads must be at least 1");
    // SAFETY: called first thing in main, before any other thread exists, so no other thread
    // can read the environment concurrently. polars sizes its pool from this variable when the
    // pool is first used, which is after this point.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("POLARS_MAX_THREADS", threads.to_string());
    }
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().context("sizing the thread pool")?;
    Ok(())
}

/// Logs go to stderr: text lines, or one JSON object per line with `--log-format json`. On a
/// terminal with bars the text lines are written above the bars, without timestamps, and the
/// INFO lines (which say what the bars show) only with `-v`.
pub fn init_logging(global: &GlobalArgs) {
    let terminal = progress::init_terminal(global);
    let level = log_level(global, terminal.is_some());
    let builder = tracing_subscriber::fmt().with_max_level(level).with_target(false);
    match (global.log_format, terminal) {
        (LogFormat::Json, _) => builder.with_writer(std::io::stderr).json().with_current_span(false).init(),
        (LogFormat::Text, Some(terminal)) => {
            builder.with_writer(TerminalWriter::new(terminal)).without_time().with_ansi(true).init()
        }
        (LogFormat::Text, None) => {
            builder.with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()).init()
        }
    }
}

/// `-q`: warnings and errors. Otherwise INFO, `-v` DEBUG, `-vv` TRACE; with bars one step less
/// (WARN, `-v` INFO, `-vv` DEBUG, `-vvv` TRACE).
fn log_level(global: &GlobalArgs, bars: bool) -> LevelFilter {
    const LEVELS: [LevelFilter; 4] = [LevelFilter::WARN, LevelFilter::INFO, LevelFilter::DEBUG, LevelFilter::TRACE];
    if global.quiet {
        return LevelFilter::WARN;
    }
    let detail = usize::from(global.verbose) + usize::from(!bars);
    LEVELS[detail.min(LEVELS.len() - 1)]
}

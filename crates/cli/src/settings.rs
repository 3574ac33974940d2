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

/// mimalloc's option `purge_delay` (number 15 of `mi_option_t` in mimalloc 2 and 3; the
/// bindings name no constant for it): how long memory freed stays with the process before it
/// is returned to the system, in milliseconds (-1: never).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The environment variable mimalloc reads `purge_delay` from, when the process starts.
const PURGE_DELAY_VARIABLE: &str = "MIMALLOC_PURGE_DELAY";

/// Keeps the memory the allocator frees for the process's own reuse instead of returning it
/// to the system a second after (mimalloc's default), unless `MIMALLOC_PURGE_DELAY` says
/// otherwise. A run is a batch that ends: returned, the memory was taken again page by page,
/// each page a fault and each return a TLB flush on every core (an interrupt, and a hypervisor
/// exit on a virtual machine). Measured at 10M events: ingest 4.60 -> 4.37 s, 109k -> 85k page
/// faults; compute 14.2-16.6 -> 12.9-13.9 s, 1.4M -> 0.8M page faults, peak RSS 3.06 -> 3.2 GB.
pub fn keep_freed_memory() {
    if std::env::var_os(PURGE_DELAY_VARIABLE).is_some() {
        return;
    }
    // SAFETY: `mi_option_set` stores a number in mimalloc's option table, not atomically;
    // called first thing in main, before any other thread exists (or allocates).
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Option number 15 is mimalloc's `purge_delay`: it holds what `MIMALLOC_PURGE_DELAY` says,
    /// else a second (mimalloc 3's default, a number no other option has);
    /// [`keep_freed_memory`] sets it to never unless the variable is set. The only test of this
    /// binary: no other thread reads the options while it sets them.
    #[test]
    fn freed_memory_is_kept() {
        // SAFETY: reads a number of mimalloc's option table.
        #[allow(unsafe_code)]
        let purge_delay = || unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        let given = std::env::var(PURGE_DELAY_VARIABLE).ok().and_then(|value| value.parse::<std::ffi::c_long>().ok());
        assert_eq!(purge_delay(), given.unwrap_or(1000), "option 15 is not mimalloc 3's purge_delay");
        keep_freed_memory();
        assert_eq!(purge_delay(), given.unwrap_or(-1));
    }
}

//! Progress of long steps: a bar on stderr when it is a terminal and logs are text, otherwise
//! structured log lines (at most one every few seconds per file).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crmkpi_ingest::FileStats;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::{GlobalArgs, LogFormat};

/// Interval between progress log lines when no bar is shown.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Shows ingest progress as a bar or as log lines.
pub struct CliProgress {
    bar: Option<ProgressBar>,
    last_log: Mutex<Instant>,
}

impl CliProgress {
    /// A bar when stderr is a terminal, logs are text and not quiet; log lines otherwise.
    pub fn new(global: &GlobalArgs) -> CliProgress {
        let show_bar = std::io::stderr().is_terminal() && global.log_format == LogFormat::Text && !global.quiet;
        let bar = show_bar.then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style =
                ProgressStyle::with_template("{msg:40!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        CliProgress { bar, last_log: Mutex::new(Instant::now()) }
    }

    /// A spinner (or a log line) for a step without a known size.
    pub fn step(&self, message: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(0);
                bar.set_message(message.to_owned());
                bar.tick();
            }
            None => tracing::info!(step = message, "progress"),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl crmkpi_ingest::Progress for CliProgress {
    fn file_started(&self, path: &str, bytes: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(bytes);
                bar.set_position(0);
                bar.set_message(path.to_owned());
            }
            None => tracing::info!(file = path, bytes, "reading"),
        }
    }

    fn file_progress(&self, bytes: u64) {
        match &self.bar {
            Some(bar) => bar.set_position(bytes),
            None => {
                let Ok(mut last) = self.last_log.lock() else { return };
                if last.elapsed() >= LOG_INTERVAL {
                    *last = Instant::now();
                    tracing::info!(bytes_read = bytes, "progress");
                }
            }
        }
    }

    fn file_finished(&self, stats: &FileStats) {
        if let Some(bar) = &self.bar {
            bar.set_position(bar.length().unwrap_or(0));
        }
        tracing::info!(
            file = %stats.path,
            read = stats.read,
            accepted = stats.accepted,
            duplicates = stats.duplicates,
            rejected = stats.rejected_total(),
            "file done"
        );
    }
}

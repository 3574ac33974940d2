//! What a person sees on stderr while a command runs.
//!
//! On a terminal, with text logs and without `-q`, each phase shows one bar: ingest (and
//! validate) counts the records and megabytes read of the dumps' total, with the throughput;
//! compute counts the tables (`tables 3/12 customers`). Both show the elapsed time. A finished
//! phase clears its bar: the summary printed next on stdout says what it did. Log lines and
//! warnings reach the terminal through [`TerminalWriter`], which prints each line above the
//! bars while they are hidden, so neither tears the other.
//!
//! In a pipe, with `--log-format json` or with `-q` there are no bars: progress is structured
//! log lines (while a file is read, at most one every few seconds).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crmkpi_ingest::FileStats;
use indicatif::{
    HumanCount, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressState, ProgressStyle,
};
use tracing_subscriber::fmt::MakeWriter;

use crate::args::{GlobalArgs, LogFormat};

/// Interval between progress log lines when no bar is shown.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// How often a bar is redrawn when nothing else moves it, so that its elapsed time runs.
const TICK: Duration = Duration::from_millis(200);

/// Width of the bar itself, in characters.
const BAR_TEMPLATE_WIDTH: &str = "20";

/// The terminal's bars, set once at start-up when bars are shown.
static TERMINAL: OnceLock<MultiProgress> = OnceLock::new();

/// Sets up the terminal's bars when stderr is a terminal, logs are text and not `-q`; returns
/// them (`None`: no bars in this run).
pub fn init_terminal(global: &GlobalArgs) -> Option<MultiProgress> {
    let shows_bars = std::io::stderr().is_terminal() && global.log_format == LogFormat::Text && !global.quiet;
    if !shows_bars {
        return None;
    }
    Some(TERMINAL.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())).clone())
}

/// A new bar of the terminal (none in a pipe) drawn by `template`, with the template keys that
/// `add_keys` adds to the common ones.
fn new_bar(template: &str, add_keys: impl FnOnce(ProgressStyle) -> ProgressStyle) -> Option<ProgressBar> {
    let terminal = TERMINAL.get()?;
    let template = template.replace("{bar}", &format!("{{bar:{BAR_TEMPLATE_WIDTH}}}"));
    let style = ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
        .with_key("elapsed_seconds", |state: &ProgressState, out: &mut dyn std::fmt::Write| {
            let _ = out.write_str(&format_elapsed(state.elapsed()));
        });
    // A bar dropped on an error path clears itself: the error message then stands alone.
    let bar = ProgressBar::new(0).with_style(add_keys(style)).with_finish(ProgressFinish::AndClear);
    let bar = terminal.add(bar);
    bar.enable_steady_tick(TICK);
    Some(bar)
}

/// `12.3 s` under a minute, `4m 05s` above.
fn format_elapsed(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else {
        let whole = elapsed.as_secs();
        format!("{}m {:02}s", whole / 60, whole % 60)
    }
}

/// Removes a finished bar from the terminal.
fn clear_bar(bar: &ProgressBar) {
    bar.finish_and_clear();
    if let Some(terminal) = TERMINAL.get() {
        terminal.remove(bar);
    }
}

/// Progress of an ingest or validate run: records read, megabytes read of the dumps' total,
/// throughput and elapsed time on a bar, or log lines.
pub struct IngestProgress {
    bar: Option<ProgressBar>,
    /// Records of the files already read to their end.
    records_done: AtomicU64,
    /// Bytes of the files already read to their end.
    bytes_done: AtomicU64,
    /// Size on disk of the file being read.
    file_bytes: AtomicU64,
    /// Records read so far, shown by the bar.
    records_shown: Arc<AtomicU64>,
    last_log: Mutex<Instant>,
}

impl IngestProgress {
    /// A bar named after `command` (ingest, validate) on the terminal, log lines otherwise.
    pub fn new(command: &str) -> IngestProgress {
        let records_shown = Arc::new(AtomicU64::new(0));
        let records = Arc::clone(&records_shown);
        let bar = new_bar(
            &format!(
                "{command} [{{bar}}] {{elapsed_seconds}}  {{records}} records  {{megabytes}}  {{throughput}}  {{wide_msg}}"
            ),
            |style| {
                style
                    .with_key("records", move |_: &ProgressState, out: &mut dyn std::fmt::Write| {
                        let _ = write!(out, "{}", HumanCount(records.load(Ordering::Relaxed)));
                    })
                    .with_key("megabytes", |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                        let total = state.len().unwrap_or(0);
                        let _ = write!(out, "{}/{} MB", megabytes(state.pos()), megabytes(total));
                    })
                    .with_key("throughput", |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                        let _ = write!(out, "{:.1} MB/s", state.per_sec() / 1e6);
                    })
            },
        );
        IngestProgress {
            bar,
            records_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            file_bytes: AtomicU64::new(0),
            records_shown,
            last_log: Mutex::new(Instant::now()),
        }
    }

    /// Clears the bar: the summary follows on stdout.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            clear_bar(bar);
        }
    }
}

/// Bytes in megabytes (10^6 bytes, as the throughput of disks is quoted): one decimal below
/// 100 MB, whole megabytes above, to keep the bar within 80 columns.
fn megabytes(bytes: u64) -> String {
    let megabytes = bytes as f64 / 1e6;
    if megabytes < 100.0 { format!("{megabytes:.1}") } else { format!("{megabytes:.0}") }
}

impl crmkpi_ingest::Progress for IngestProgress {
    fn run_started(&self, _files: usize, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(bytes);
        }
    }

    fn file_started(&self, path: &str, bytes: u64) {
        match &self.bar {
            Some(bar) => {
                self.file_bytes.store(bytes, Ordering::Relaxed);
                // The file's name: the end of a long path would be cut off at the edge.
                let name = Path::new(path).file_name().map_or_else(|| path.into(), |name| name.to_string_lossy());
                bar.set_message(name.into_owned());
            }
            None => tracing::info!(file = path, bytes, "reading"),
        }
    }

    fn file_progress(&self, bytes: u64, records: u64) {
        match &self.bar {
            Some(bar) => {
                self.records_shown.store(self.records_done.load(Ordering::Relaxed) + records, Ordering::Relaxed);
                bar.set_position(self.bytes_done.load(Ordering::Relaxed) + bytes);
            }
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
            let records = self.records_done.fetch_add(stats.read, Ordering::Relaxed) + stats.read;
            self.records_shown.store(records, Ordering::Relaxed);
            // Its size on disk counts as read, whatever its last progress report said.
            let file_bytes = self.file_bytes.load(Ordering::Relaxed);
            bar.set_position(self.bytes_done.fetch_add(file_bytes, Ordering::Relaxed) + file_bytes);
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

/// Progress of a compute run: `tables 3/12` with the current table's name and the elapsed time
/// on a bar, or log lines. The bar appears when the run starts on a lake that holds events.
#[derive(Default)]
pub struct ComputeProgress {
    /// Set when the run starts: the bar on a terminal, none in a pipe.
    bar: OnceLock<Option<ProgressBar>>,
}

impl ComputeProgress {
    fn bar(&self) -> Option<&ProgressBar> {
        self.bar.get().and_then(Option::as_ref)
    }

    /// Clears the bar: the summary follows on stdout.
    pub fn finish(&self) {
        if let Some(bar) = self.bar() {
            clear_bar(bar);
        }
    }
}

impl crmkpi_export::compute_run::Progress for ComputeProgress {
    /// A bar over `tables` tables on the terminal, log lines otherwise.
    fn run_started(&self, tables: usize) {
        let bar = self.bar.get_or_init(|| {
            new_bar("compute [{bar}] {elapsed_seconds}  tables {pos}/{len}  {wide_msg}", |style| style)
        });
        if let Some(bar) = bar {
            bar.set_length(tables as u64);
        }
    }

    fn step(&self, message: &str) {
        match self.bar() {
            Some(bar) => bar.set_message(message.to_owned()),
            None => tracing::info!(step = message, "progress"),
        }
    }

    fn table_started(&self, name: &str) {
        match self.bar() {
            Some(bar) => bar.set_message(name.to_owned()),
            None => tracing::info!(step = format!("computing {name}"), "progress"),
        }
    }

    fn table_finished(&self) {
        if let Some(bar) = self.bar() {
            bar.inc(1);
        }
    }
}

/// The log writer on a terminal with bars: each log line is printed above the bars while they
/// are hidden, then the bars are drawn again below it.
#[derive(Clone)]
pub struct TerminalWriter {
    terminal: MultiProgress,
}

impl TerminalWriter {
    /// Writes through `terminal`'s bars.
    pub fn new(terminal: MultiProgress) -> TerminalWriter {
        TerminalWriter { terminal }
    }
}

impl<'a> MakeWriter<'a> for TerminalWriter {
    type Writer = LineAboveBars;

    fn make_writer(&'a self) -> LineAboveBars {
        LineAboveBars { terminal: self.terminal.clone(), line: Vec::new() }
    }
}

/// One log event's text, collected and written to stderr above the bars when dropped (the
/// formatter writes an event in pieces).
pub struct LineAboveBars {
    terminal: MultiProgress,
    line: Vec<u8>,
}

impl Write for LineAboveBars {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineAboveBars {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        self.terminal.suspend(|| {
            let mut stderr = std::io::stderr().lock();
            // A log line that cannot be written to stderr has nowhere else to go.
            let _ = stderr.write_all(&self.line);
            let _ = stderr.flush();
        });
    }
}

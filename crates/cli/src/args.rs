//! The command line as clap parses it: raw flags only. [`crate::settings`] resolves them with
//! the configuration file into what the libraries get.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// crmkpi: CRM event dumps in, KPI tables out.
#[derive(Debug, Parser)]
#[command(name = "crmkpi", version, about, propagate_version = true)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file (TOML). Default: ./crmkpi.toml when present, else built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Worker threads for parsing and query execution (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// Log and progress format on stderr; with `json` the final summary on stdout is one JSON
    /// object.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Only print warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail: in a pipe -v debug, -vv trace; on a terminal -v shows the info lines the
    /// bars replace, -vv debug, -vvv trace.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Log and summary format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines and progress bars.
    Text,
    /// One JSON object per line.
    Json,
}

/// The crmkpi commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse, validate, convert and deduplicate dumps into the Parquet event lake.
    Ingest(IngestArgs),
    /// Run every KPI (or the named tables) over the lake and write the outputs.
    Compute(ComputeArgs),
    /// Ingest then compute; with no input, runs on the bundled data-samples into out/.
    Pipeline(PipelineArgs),
    /// Report what ingest would accept and reject, writing nothing.
    Validate(ValidateArgs),
    /// Write a realistic synthetic dump.
    Generate(GenerateArgs),
    /// Merge each lake partition's small files into large ones, in one atomic commit.
    Compact(CompactArgs),
    /// Render report.html of an output directory from its tables and manifest.
    Report(ReportArgs),
}

/// `crmkpi compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The lake directory.
    #[arg(long, value_name = "DIR")]
    pub lake: PathBuf,
}

/// `crmkpi ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Dump files, directories (read recursively) or globs.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// The lake directory (created when missing).
    #[arg(long, value_name = "DIR")]
    pub lake: PathBuf,
}

/// `crmkpi compute`.
#[derive(Debug, Args)]
pub struct ComputeArgs {
    /// The lake directory.
    #[arg(long, value_name = "DIR")]
    pub lake: PathBuf,
    /// The output directory, replaced atomically.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub selection: TableSelection,
    /// Do not write report.html.
    #[arg(long)]
    pub no_report: bool,
}

/// Which tables, as of when.
#[derive(Debug, Args)]
pub struct TableSelection {
    /// Observation instant: RFC 3339, a local timestamp (reporting time zone) or a date
    /// YYYY-MM-DD (the end of that local day). Default: the latest event in the lake.
    #[arg(long, value_name = "TS")]
    pub as_of: Option<String>,
    /// Only these tables (comma separated).
    #[arg(long, value_delimiter = ',', value_name = "TABLES")]
    pub tables: Vec<String>,
    /// The memory compute plans its entity buckets for, such as 4GiB or 512MiB (overrides
    /// `[compute] memory_limit`).
    #[arg(long, value_name = "SIZE", value_parser = parse_memory_limit)]
    pub memory_limit: Option<String>,
    /// Split the per-entity work into exactly this many entity buckets instead of the number
    /// the memory limit gives (the tables are the same for every number).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub buckets: Option<u32>,
}

/// A `--memory-limit` value: a byte size of at least 64 MiB.
fn parse_memory_limit(text: &str) -> Result<String, String> {
    match crmkpi_schema::parse_bytes(text) {
        Some(bytes) if bytes >= 64 << 20 => Ok(text.to_owned()),
        Some(_) => Err("must be at least 64MiB".to_owned()),
        None => Err("must be a size such as 4GiB, 512MiB or 2GB".to_owned()),
    }
}

/// `crmkpi pipeline`.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// Dumps to ingest; none: the bundled data-samples.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// The lake directory.
    #[arg(long, value_name = "DIR", default_value = "lake")]
    pub lake: PathBuf,
    /// The output directory, replaced atomically.
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    #[command(flatten)]
    pub selection: TableSelection,
    /// Do not write report.html.
    #[arg(long)]
    pub no_report: bool,
}

/// `crmkpi report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// An output directory of `crmkpi compute`; report.html is written into it.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The lake, to show its latest ingest's rejects.
    #[arg(long, value_name = "DIR")]
    pub lake: Option<PathBuf>,
}

/// `crmkpi validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Dump files, directories or globs.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,
}

/// `crmkpi generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of records to write.
    #[arg(long, value_name = "N")]
    pub events: u64,
    /// Random seed; the same seed gives the same files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Formats to rotate through files.
    #[arg(long, value_delimiter = ',', default_value = "ndjson")]
    pub format: Vec<FormatArg>,
    /// Compressions to rotate through files.
    #[arg(long, value_delimiter = ',', default_value = "none")]
    pub compress: Vec<CompressArg>,
    /// Share of records replaced by dirty records of every reject reason, or duplicates.
    #[arg(long, default_value_t = 0.0)]
    pub dirty_rate: f64,
    /// Records per output file.
    #[arg(long, default_value_t = 1_000_000)]
    pub events_per_file: u64,
}

/// A dump format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// NDJSON.
    Ndjson,
    /// CSV.
    Csv,
}

/// A dump compression.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressArg {
    /// Plain text.
    None,
    /// gzip.
    Gz,
    /// Zstandard.
    Zst,
}

//! The six commands: each resolves its settings, calls the libraries, prints its summary on
//! stdout (one JSON object as the last line with `--log-format json`) and returns the exit
//! code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use crmkpi_compute::ComputeError;
use crmkpi_export::compute_run::{self, ComputeRequest, Progress as _};
use crmkpi_export::{ExportError, LatestIngest, ReportError, out_dir};
use crmkpi_ingest::generator::{GenerateOptions, generate};
use crmkpi_ingest::source::{Compression, Format};
use crmkpi_ingest::{IngestError, Lake, RunStatus, Summary};
use crmkpi_schema::Config;

use crate::args::{Cli, CompressArg, FormatArg, GenerateArgs, GlobalArgs, LogFormat, TableSelection};
use crate::progress::{ComputeProgress, IngestProgress};
use crate::samples;
use crate::settings::load_config;

/// Prints a line of the summary on stdout. A reader that stopped reading (`crmkpi ... | head`)
/// ends the process quietly with success, as other command-line tools do, instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        print_summary_line(format_args!($($arg)*))
    };
}

fn print_summary_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Err(error) = writeln!(std::io::stdout().lock(), "{line}") {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing the summary to stdout: {error}");
    }
}

/// Why a command failed, by exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad arguments (exit 2).
    Usage(anyhow::Error),
    /// I/O, unreadable input, bad configuration (exit 1).
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        let usage = matches!(
            error.downcast_ref::<ComputeError>(),
            Some(ComputeError::BadAsOf { .. } | ComputeError::UnknownTable { .. } | ComputeError::MemoryLimit { .. })
        ) || matches!(
            error.downcast_ref::<IngestError>(),
            Some(IngestError::NotALake { .. } | IngestError::GenerateWouldOverwrite { .. })
        ) || matches!(error.downcast_ref::<ExportError>(), Some(ExportError::OutDir(_)))
            || matches!(error.downcast_ref::<ReportError>(), Some(ReportError::NotAnOutputDir { .. }));
        if usage { Failure::Usage(error) } else { Failure::Runtime(error) }
    }
}

impl From<ComputeError> for Failure {
    fn from(error: ComputeError) -> Failure {
        Failure::from(anyhow::Error::from(error))
    }
}

/// Exit code of a run whose reject ratio exceeded `max_reject_ratio`.
const EXIT_REJECT_RATIO: u8 = 3;

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let global = &cli.global;
    match &cli.command {
        crate::args::Command::Ingest(args) => {
            let (config, _) = load_config(global.config.as_deref(), None)?;
            let status = run_ingest(global, &config, &args.inputs, &args.lake)?;
            Ok(exit_for(status))
        }
        crate::args::Command::Validate(args) => {
            let (config, _) = load_config(global.config.as_deref(), None)?;
            let progress = IngestProgress::new("validate");
            let summary =
                crmkpi_ingest::validate_inputs(&args.inputs, &config, &progress).context("validation stopped")?;
            progress.finish();
            print_summary(global, "validated", &summary, None);
            let exceeded = summary.reject_ratio() > config.max_reject_ratio;
            Ok(exit_for(if exceeded { RunStatus::RejectRatioExceeded } else { RunStatus::Committed }))
        }
        crate::args::Command::Compute(args) => {
            check_out(&args.out, &args.lake)?;
            let (config, _) = load_config(global.config.as_deref(), None)?;
            run_compute(global, &config, &args.lake, &args.out, &args.selection, !args.no_report)?;
            Ok(ExitCode::SUCCESS)
        }
        crate::args::Command::Pipeline(args) => {
            check_out(&args.out, &args.lake)?;
            let (inputs, fallback_config) = if args.inputs.is_empty() {
                let samples = samples::bundled_samples()?;
                tracing::info!(samples = %samples.dumps.display(), "no input given: running on the bundled data-samples");
                (vec![samples.dumps.to_string_lossy().into_owned()], Some(samples.config))
            } else {
                (args.inputs.clone(), None)
            };
            let (config, config_path) = load_config(global.config.as_deref(), fallback_config.as_deref())?;
            if let Some(path) = config_path {
                tracing::info!(config = %path.display(), "configuration");
            }
            let status = run_ingest(global, &config, &inputs, &args.lake)?;
            if status != RunStatus::Committed {
                return Ok(exit_for(status));
            }
            run_compute(global, &config, &args.lake, &args.out, &args.selection, !args.no_report)?;
            Ok(ExitCode::SUCCESS)
        }
        crate::args::Command::Generate(args) => {
            run_generate(global, args)?;
            Ok(ExitCode::SUCCESS)
        }
        crate::args::Command::Compact(args) => {
            run_compact(global, &args.lake)?;
            Ok(ExitCode::SUCCESS)
        }
        crate::args::Command::Report(args) => {
            run_report(global, &args.out, args.lake.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Refuses, before any work starts, an `--out` that overlaps the lake or holds files crmkpi
/// did not write (exit 2).
fn check_out(out: &Path, lake: &Path) -> Result<(), Failure> {
    out_dir::check_usable(out, lake).map_err(|error| Failure::Usage(error.into()))
}

fn exit_for(status: RunStatus) -> ExitCode {
    match status {
        RunStatus::Committed => ExitCode::SUCCESS,
        RunStatus::RejectRatioExceeded => ExitCode::from(EXIT_REJECT_RATIO),
    }
}

fn run_ingest(global: &GlobalArgs, config: &Config, inputs: &[String], lake_dir: &Path) -> Result<RunStatus, Failure> {
    let started = Instant::now();
    let lake = Lake::new(lake_dir);
    let progress = IngestProgress::new("ingest");
    let report = crmkpi_ingest::ingest(&lake, inputs, config, &progress).context("ingest stopped")?;
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    print_summary(global, "ingested", &report.summary, Some(seconds));
    if let Some(refusal) = report.refusal(config.max_reject_ratio, lake_dir) {
        eprintln!("error: {refusal}");
    }
    Ok(report.status)
}

fn print_summary(global: &GlobalArgs, verb: &str, summary: &Summary, seconds: Option<f64>) {
    if global.log_format == LogFormat::Json {
        out!("{}", serde_json::to_string(summary).unwrap_or_default());
        return;
    }
    let timing = seconds.map(|seconds| format!(" in {seconds:.1} s")).unwrap_or_default();
    out!(
        "{verb} {} records from {} files{timing}: {} accepted, {} duplicates, {} rejected",
        summary.read,
        summary.files.len(),
        summary.accepted,
        summary.duplicates,
        summary.rejected_total()
    );
    for (reason, count) in &summary.rejected {
        out!("  rejected {reason}: {count}");
    }
}

fn run_compute(
    global: &GlobalArgs,
    config: &Config,
    lake_dir: &Path,
    out: &Path,
    selection: &TableSelection,
    report: bool,
) -> Result<(), Failure> {
    let progress = ComputeProgress::default();
    let request = ComputeRequest {
        lake: lake_dir,
        config,
        tables: &selection.tables,
        as_of: selection.as_of.as_deref(),
        memory_limit: selection.memory_limit.as_deref(),
        buckets: selection.buckets,
    };
    let run = compute_run::compute(request, &progress)?;
    progress.step("writing outputs");
    let manifest = run.write(out, report).context("writing the outputs")?;
    progress.finish();
    if global.log_format == LogFormat::Json {
        let summary = serde_json::json!({
            "out": out.display().to_string(),
            "as_of": manifest.input.as_of,
            "tables": manifest.tables.iter().map(|table| serde_json::json!({"name": table.name, "rows": table.rows})).collect::<Vec<_>>(),
        });
        out!("{summary}");
    } else {
        out!("computed {} tables as of {} into {}", manifest.tables.len(), manifest.input.as_of, out.display());
        for table in &manifest.tables {
            out!("  {:<20} {:>10} rows", table.name, table.rows);
        }
        if report {
            out!("  report: {}", out.join(out_dir::REPORT_FILE).display());
        }
    }
    Ok(())
}

/// `crmkpi report`: re-renders `out/report.html`; refuses (exit 2) a directory that is not a
/// crmkpi output directory.
fn run_report(global: &GlobalArgs, out: &Path, lake_dir: Option<&Path>) -> Result<(), Failure> {
    let owned = out_dir::is_output_dir(out).map_err(|error| Failure::Runtime(error.into()))?;
    if !owned {
        return Err(Failure::Usage(ReportError::NotAnOutputDir { path: out.to_owned() }.into()));
    }
    let latest = match lake_dir {
        Some(lake_dir) => {
            let runs = Lake::new(lake_dir).runs().context("reading the lake's ingest records")?;
            if runs.is_empty() {
                return Err(Failure::Usage(anyhow::anyhow!(
                    "{} is not a crmkpi lake (no ingest record under {}/_runs); pass the lake the outputs were computed from",
                    lake_dir.display(),
                    lake_dir.display()
                )));
            }
            runs.last().map(LatestIngest::from_run)
        }
        None => None,
    };
    let path = crmkpi_export::report::write_report(out, latest.as_ref()).context("writing the report")?;
    if global.log_format == LogFormat::Json {
        out!("{}", serde_json::json!({"report": path.display().to_string()}));
    } else {
        out!("wrote {}", path.display());
    }
    Ok(())
}

fn run_compact(global: &GlobalArgs, lake_dir: &Path) -> Result<(), Failure> {
    let started = Instant::now();
    let lake = Lake::new(lake_dir);
    if !lake.is_lake() {
        return Err(Failure::Usage(anyhow::anyhow!(
            "{} is not a crmkpi lake; compact works on a lake that `crmkpi ingest` wrote",
            lake_dir.display()
        )));
    }
    let lock = lake.lock().context("compact stopped")?;
    let report = lake.compact(&lock).context("compact stopped")?;
    drop(lock);
    let seconds = started.elapsed().as_secs_f64();
    if global.log_format == LogFormat::Json {
        out!(
            "{}",
            serde_json::json!({"lake": lake_dir.display().to_string(), "partitions": report.partitions, "files_before": report.files_before, "files_after": report.files_after, "seconds": seconds})
        );
    } else if report.partitions == 0 {
        out!("compacted nothing in {}: no partition has small files to merge", lake_dir.display());
    } else {
        out!(
            "compacted {} partitions of {} in {seconds:.1} s: {} files merged into {}",
            report.partitions,
            lake_dir.display(),
            report.files_before,
            report.files_after
        );
    }
    Ok(())
}

fn run_generate(global: &GlobalArgs, args: &GenerateArgs) -> Result<(), Failure> {
    if !(0.0..=1.0).contains(&args.dirty_rate) {
        return Err(Failure::Usage(anyhow::anyhow!("--dirty-rate must be between 0 and 1")));
    }
    if args.events_per_file == 0 {
        return Err(Failure::Usage(anyhow::anyhow!("--events-per-file must be at least 1")));
    }
    let options = GenerateOptions {
        events: args.events,
        seed: args.seed,
        out: args.out.clone(),
        formats: args
            .format
            .iter()
            .map(|format| match format {
                FormatArg::Ndjson => Format::Ndjson,
                FormatArg::Csv => Format::Csv,
            })
            .collect(),
        compressions: args
            .compress
            .iter()
            .map(|compress| match compress {
                CompressArg::None => Compression::None,
                CompressArg::Gz => Compression::Gzip,
                CompressArg::Zst => Compression::Zstd,
            })
            .collect(),
        dirty_rate: args.dirty_rate,
        events_per_file: args.events_per_file,
    };
    let started = Instant::now();
    let files: Vec<PathBuf> = generate(&options).context("generate stopped")?;
    let seconds = started.elapsed().as_secs_f64();
    if global.log_format == LogFormat::Json {
        out!("{}", serde_json::json!({"events": args.events, "files": files, "seconds": seconds}));
    } else {
        out!(
            "generated {} records in {} files under {} in {seconds:.1} s",
            args.events,
            files.len(),
            args.out.display()
        );
    }
    Ok(())
}

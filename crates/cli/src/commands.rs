//! The six commands: each resolves its settings, calls the libraries, prints its summary on
//! stdout (one JSON object as the last line with `--log-format json`) and returns the exit
//! code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use crmkpi_compute::{ComputeError, Context, Run, parse_as_of, select_tables};
use crmkpi_export::{
    ExportError, LatestIngest, ManifestInput, OutputTable, ReportChoice, ReportError, manifest::LakeInfo, out_dir,
};
use crmkpi_ingest::generator::{GenerateOptions, generate};
use crmkpi_ingest::source::{Compression, Format};
use crmkpi_ingest::{IngestError, Lake, RunRecord, RunStatus, Summary};
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
            Some(ComputeError::BadAsOf { .. } | ComputeError::UnknownTable { .. })
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
    out_dir::check_apart_from_lake(out, lake)
        .and_then(|()| out_dir::check_replaceable(out))
        .map_err(|error| Failure::Usage(error.into()))
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
    if report.status == RunStatus::RejectRatioExceeded {
        eprintln!(
            "error: {} of {} records rejected ({:.2}%), more than max_reject_ratio = {}; none of this run's events entered the lake. \
             Inspect the rejects in {}/rejects (ingest_run = {}), fix the dump or raise max_reject_ratio.",
            report.summary.rejected_total(),
            report.summary.read,
            report.summary.reject_ratio() * 100.0,
            config.max_reject_ratio,
            lake_dir.display(),
            report.run_id,
        );
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
    let started_at = chrono::Utc::now();
    let run_id = format!("{}-{:08x}", started_at.format("%Y%m%dT%H%M%S%.3fZ"), std::process::id());
    let mut stage_seconds = BTreeMap::new();
    let tables = select_tables(&selection.tables)?;
    let mut config = config.clone();
    if let Some(limit) = &selection.memory_limit {
        config.compute.memory_limit = limit.clone();
    }
    let config = &config;
    let as_of = selection.as_of.as_deref().map(|text| parse_as_of(text, config.timezone)).transpose()?;
    // The snapshot is held until the outputs are written: ingests and compactions meanwhile
    // commit new snapshots and leave this one alone.
    let lake = crmkpi_compute::open_lake(lake_dir)?;
    let progress = ComputeProgress::new(tables.len());
    progress.step("scanning the lake");
    let clock = Instant::now();
    let context = Context::new(lake.events, config.clone(), as_of)?;
    let context = match selection.buckets {
        Some(buckets) => context.with_buckets(buckets),
        None => context,
    };
    let lake_stats = context.lake_stats()?;
    stage_seconds.insert("scan".to_owned(), clock.elapsed().as_secs_f64());
    progress.step(&format!("entity facts, {} buckets", context.buckets));
    let clock = Instant::now();
    let facts = crmkpi_compute::compute_facts(&context, &tables, &|done, buckets| {
        progress.step(&format!("entity facts, bucket {done}/{buckets}"));
    })?;
    tracing::info!(buckets = context.buckets, seconds = clock.elapsed().as_secs_f64(), "entity facts");
    stage_seconds.insert("facts".to_owned(), clock.elapsed().as_secs_f64());
    let run = Run::new(&context, &facts);
    // The data checks fit the CLV models when customers or clv_model are selected; the tables
    // then reuse the fits.
    progress.step("checking the data");
    let clock = Instant::now();
    let warnings = crmkpi_compute::data_warnings(&run, &tables)?;
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    stage_seconds.insert("data_checks".to_owned(), clock.elapsed().as_secs_f64());
    let mut outputs = Vec::with_capacity(tables.len());
    for table in &tables {
        progress.table_started(table.name);
        let clock = Instant::now();
        let computed = crmkpi_compute::compute_table(&run, table)?;
        let seconds = clock.elapsed().as_secs_f64();
        stage_seconds.insert(format!("table:{}", table.name), seconds);
        tracing::info!(table = computed.name, rows = computed.frame.height(), seconds, "computed");
        outputs.push(OutputTable { name: computed.name.to_owned(), frame: computed.frame });
        progress.table_finished();
    }
    progress.step("writing outputs");
    let input = ManifestInput {
        crmkpi_version: env!("CARGO_PKG_VERSION").to_owned(),
        run_id,
        as_of: crmkpi_compute::context::format_instant(context.as_of),
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        config: serde_json::to_value(config).unwrap_or_default(),
        config_hash: config.hash(),
        lake: LakeInfo {
            path: lake_dir.display().to_string(),
            events: lake_stats.events,
            per_event_type: lake_stats.per_event_type,
        },
        warnings,
        stage_seconds,
    };
    let latest_ingest = lake.runs.last().map(latest_ingest);
    let report = if report { ReportChoice::Render(latest_ingest.as_ref()) } else { ReportChoice::Skip };
    let manifest = crmkpi_export::write_outputs(out, &mut outputs, input, report).context("writing the outputs")?;
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
        if matches!(report, ReportChoice::Render(_)) {
            out!("  report: {}", out.join(out_dir::REPORT_FILE).display());
        }
    }
    Ok(())
}

/// What the report shows of an ingest run: its totals over all input files.
fn latest_ingest(run: &RunRecord) -> LatestIngest {
    let mut latest =
        LatestIngest { run_id: run.run_id.clone(), finished_at: run.finished_at.clone(), ..LatestIngest::default() };
    for file in &run.files {
        latest.read += file.read;
        latest.accepted += file.accepted;
        latest.duplicates += file.duplicates;
        for (reason, count) in &file.rejected {
            *latest.rejected.entry(reason.clone()).or_default() += count;
        }
    }
    latest
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
            runs.last().map(latest_ingest)
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

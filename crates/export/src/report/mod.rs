//! The nightly HTML report, `report.html`: one self-contained page of charts and tables of a
//! run's outputs (headline numbers, monthly trends, cohort retention, the pipeline, reps and
//! lost reasons, campaigns, customers and CLV, data quality), read back from the output
//! directory's `manifest.json` and Parquet tables.
//!
//! The page has inline CSS and inline SVG only: no script, no font, image or style sheet from
//! anywhere else, so it opens offline and prints. It is deterministic: it shows `as_of` but
//! neither the run's id and start nor the time of rendering, iterates in sorted order and
//! prints numbers with fixed decimals, so the same tables (and latest ingest) give the same
//! bytes, whichever run wrote them. Every
//! number taken from a table carries `data-table`, `data-key` (the row's key columns joined
//! by `|`), `data-column` and `data-value` (the exact value), so that a test can hold the page
//! against the tables.
//!
//! [`write_report`] replaces `report.html` atomically: it writes a temporary `.crmkpi-*` file
//! in the same directory, syncs it and renames it over the old report.

mod chart;
mod data;
mod format;
mod view;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use polars::prelude::PolarsError;

use crate::out_dir::{self, REPORT_FILE, TEMPORARY_PREFIX};

/// The page template (minijinja, HTML auto-escaping).
const TEMPLATE: &str = include_str!("template.html");

/// Why the report could not be rendered or written; a previous `report.html` is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The directory holds no manifest written by crmkpi.
    #[error(
        "{path} is not a crmkpi output directory (no manifest.json written by crmkpi); run `crmkpi compute --out {path}` first"
    )]
    NotAnOutputDir {
        /// The directory.
        path: PathBuf,
    },
    /// The directory could not be inspected.
    #[error(transparent)]
    OutDir(#[from] out_dir::OutDirError),
    /// A file could not be read, written, synced or renamed.
    #[error("report I/O on {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `manifest.json` is not a manifest.
    #[error("{path} is not a readable crmkpi manifest: {message}")]
    Manifest {
        /// The manifest's path.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A table's Parquet file could not be read.
    #[error("reading table `{table}` from {path}: {source}")]
    Read {
        /// The table.
        table: String,
        /// Its Parquet file.
        path: PathBuf,
        /// polars' error.
        source: PolarsError,
    },
    /// A table lacks a column the report shows, or it has an unexpected type.
    #[error("table `{table}` has no usable column `{column}`: {source}")]
    Column {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// polars' error.
        source: PolarsError,
    },
    /// The template failed to render.
    #[error("rendering the report template: {0:#}")]
    Template(#[from] minijinja::Error),
}

/// What the lake's latest ingest run recorded, for the report's data-quality section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatestIngest {
    /// The ingest run's id.
    pub run_id: String,
    /// When it committed, RFC 3339 UTC.
    pub finished_at: String,
    /// Records read.
    pub read: u64,
    /// Records accepted.
    pub accepted: u64,
    /// Plain duplicates dropped.
    pub duplicates: u64,
    /// Rejected records by reason.
    pub rejected: BTreeMap<String, u64>,
}

impl LatestIngest {
    /// What the report shows of an ingest run: its totals over all input files.
    pub fn from_run(run: &crmkpi_ingest::RunRecord) -> LatestIngest {
        let mut latest = LatestIngest {
            run_id: run.run_id.clone(),
            finished_at: run.finished_at.clone(),
            ..LatestIngest::default()
        };
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
}

/// Whether [`crate::write_outputs`] renders the report with the tables.
#[derive(Debug, Clone, Copy)]
pub enum ReportChoice<'a> {
    /// Write no `report.html` (`--no-report`).
    Skip,
    /// Render `report.html` next to the tables, with the latest ingest when known.
    Render(Option<&'a LatestIngest>),
}

/// Renders the report of the outputs in `dir` as HTML text.
pub fn render_report(dir: &Path, ingest: Option<&LatestIngest>) -> Result<String, ReportError> {
    let manifest = data::ManifestView::read(dir)?;
    let tables = data::read_tables(dir, &manifest)?;
    let page = view::build(&manifest, &tables, ingest)?;
    let mut environment = minijinja::Environment::new();
    environment.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()?,
    );
    let template = environment.template_from_named_str("report.html", TEMPLATE)?;
    Ok(template.render(minijinja::Value::from(minijinja::value::Serde(&page)))?)
}

/// Renders the report of the outputs in `dir` into `dir/report.html`, replacing it atomically,
/// and returns its path. Refuses a directory without a crmkpi manifest.
pub fn write_report(dir: &Path, ingest: Option<&LatestIngest>) -> Result<PathBuf, ReportError> {
    if !out_dir::is_output_dir(dir)? {
        return Err(ReportError::NotAnOutputDir { path: dir.to_owned() });
    }
    let html = render_report(dir, ingest)?;
    let path = dir.join(REPORT_FILE);
    let temporary = dir.join(format!("{TEMPORARY_PREFIX}{REPORT_FILE}.{}.tmp", std::process::id()));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ReportError::Io { path, source }
    };
    let written = File::create(&temporary)
        .and_then(|mut file| file.write_all(html.as_bytes()).and_then(|()| file.sync_all()))
        .map_err(io(&temporary))
        .and_then(|()| fs::rename(&temporary, &path).map_err(io(&path)));
    if let Err(error) = written {
        let _ = fs::remove_file(&temporary);
        return Err(error);
    }
    File::open(dir).and_then(|directory| directory.sync_all()).map_err(io(dir))?;
    Ok(path)
}

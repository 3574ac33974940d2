//! `crmkpi._crmkpi`, the extension module under the Python package `crmkpi`: ingest, validate
//! and compute through the same library calls as the `crmkpi` binary, with the GIL released
//! while the engine works. The package's `__init__.py` turns the summaries into dicts, data
//! warnings into Python warnings and arguments into these functions' plain types.
//!
//! Computed tables reach Python as [`Table`] objects implementing the Arrow PyCapsule
//! interface (`__arrow_c_stream__`): pyarrow, Python polars, DuckDB and pandas (through
//! pyarrow) read them through the Arrow C stream interface, exported by polars-arrow, without
//! copying and without depending on any Python polars version.
//!
//! Errors become `crmkpi.CrmkpiError` (the binary's exit code 1) or `crmkpi.UsageError` (exit
//! code 2) with the message the binary prints after `error: `.

mod errors;
mod spark;
mod table;

use std::path::{Path, PathBuf};

use crmkpi_export::compute_run::{self, ComputeRequest, ComputedRun, NoProgress};
use crmkpi_export::out_dir;
use crmkpi_ingest::{Lake, NoProgress as NoIngestProgress};
use crmkpi_schema::Config;
use pyo3::prelude::*;

use crate::errors::{CrmkpiError, EngineError, RejectRatioError, UsageError};
use crate::table::Table;

/// mimalloc, as in the binary: the engine allocates many short-lived strings and Arrow buffers
/// from several threads at once, where the system allocator fragments and contends.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The configuration of a run: the file given, else `./crmkpi.toml` when it exists, else the
/// built-in defaults (the binary's `--config` rules).
pub(crate) fn load_config(config: Option<&Path>) -> Result<Config, EngineError> {
    Config::discover(config, None).map(|(config, _)| config).map_err(|error| {
        EngineError::runtime_with_context("fix the configuration file or pass another as config", &error)
    })
}

/// Ingests dumps into a lake; returns the run's JSON summary (`crmkpi --log-format json
/// ingest`) and, when the run was refused for its share of rejects, why.
#[pyfunction]
#[pyo3(signature = (inputs, lake, config=None))]
fn ingest(
    py: Python<'_>,
    inputs: Vec<String>,
    lake: PathBuf,
    config: Option<PathBuf>,
) -> PyResult<(String, Option<String>)> {
    py.detach(|| {
        let config = load_config(config.as_deref())?;
        let report = crmkpi_ingest::ingest(&Lake::new(&lake), &inputs, &config, &NoIngestProgress)
            .map_err(|error| EngineError::from_ingest("ingest stopped", &error))?;
        let refusal = report.refusal(config.max_reject_ratio, &lake);
        Ok((summary_json(&report.summary)?, refusal))
    })
    .map_err(EngineError::into_py)
}

/// Checks dumps as ingest would, writing nothing; returns the JSON summary (`crmkpi
/// --log-format json validate`) and, when the rejects exceed `max_reject_ratio`, by how much.
#[pyfunction]
#[pyo3(signature = (inputs, config=None))]
fn validate(py: Python<'_>, inputs: Vec<String>, config: Option<PathBuf>) -> PyResult<(String, Option<String>)> {
    py.detach(|| {
        let config = load_config(config.as_deref())?;
        let summary = crmkpi_ingest::validate_inputs(&inputs, &config, &NoIngestProgress)
            .map_err(|error| EngineError::from_ingest("validation stopped", &error))?;
        let excess = summary.reject_ratio_excess(config.max_reject_ratio);
        Ok((summary_json(&summary)?, excess))
    })
    .map_err(EngineError::into_py)
}

/// The summary as the binary prints it with `--log-format json`.
fn summary_json(summary: &crmkpi_ingest::Summary) -> Result<String, EngineError> {
    serde_json::to_string(summary).map_err(|error| EngineError::runtime_with_context("encoding the summary", &error))
}

/// What `compute` hands back: the tables in output order and the data warnings.
pub(crate) type Computed = (Vec<Table>, Vec<String>);

/// Computes tables from the lake's committed snapshot and, with `out`, writes them, the
/// manifest and (with `report`) the report like `crmkpi compute --out`.
#[pyfunction]
#[pyo3(signature = (lake, as_of=None, tables=Vec::new(), config=None, out=None, report=true, memory_limit=None, buckets=None))]
#[allow(clippy::too_many_arguments)]
fn compute(
    py: Python<'_>,
    lake: PathBuf,
    as_of: Option<String>,
    tables: Vec<String>,
    config: Option<PathBuf>,
    out: Option<PathBuf>,
    report: bool,
    memory_limit: Option<String>,
    buckets: Option<u32>,
) -> PyResult<Computed> {
    py.detach(|| {
        if let Some(out) = &out {
            out_dir::check_usable(out, &lake).map_err(|error| EngineError::usage(&error))?;
        }
        let config = load_config(config.as_deref())?;
        let request = ComputeRequest {
            lake: &lake,
            config: &config,
            tables: &tables,
            as_of: as_of.as_deref(),
            memory_limit: memory_limit.as_deref(),
            buckets: buckets.map(|buckets| buckets.max(1)),
        };
        let run = compute_run::compute(request, &NoProgress).map_err(|error| EngineError::from_compute(&error))?;
        hand_over(run, out.as_deref(), report)
    })
    .map_err(EngineError::into_py)
}

/// Writes a finished run's tables, manifest and report into `out` when given, and hands its
/// tables and data warnings over to Python.
pub(crate) fn hand_over(run: ComputedRun, out: Option<&Path>, report: bool) -> Result<Computed, EngineError> {
    if let Some(out) = out {
        run.write(out, report).map_err(|error| EngineError::from_export("writing the outputs", &error))?;
    }
    Ok(handed_over(run))
}

/// A finished run's tables as Python tables, with its data warnings.
pub(crate) fn handed_over(run: ComputedRun) -> Computed {
    let as_of = run.manifest_input.as_of;
    let tables = run.tables.into_iter().map(|table| Table::new(table.name, table.frame, as_of.clone())).collect();
    (tables, run.manifest_input.warnings)
}

/// Environment variable that shows the engine's log lines on stderr.
const LOG_VARIABLE: &str = "CRMKPI_LOG";

/// The engine's log lines (the binary's `-v` lines: files read, tables computed, warnings) on
/// stderr when `CRMKPI_LOG` holds a filter (`info`, `debug`, `warn,crmkpi_ingest=debug`).
fn init_logging() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env(LOG_VARIABLE) {
        // Fails only when the process already has a global subscriber, which then gets them.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false)
            .try_init();
    }
}

/// The extension module `crmkpi._crmkpi`.
#[pymodule]
fn _crmkpi(module: &Bound<'_, PyModule>) -> PyResult<()> {
    init_logging();
    let py = module.py();
    module.add_function(wrap_pyfunction!(ingest, module)?)?;
    module.add_function(wrap_pyfunction!(validate, module)?)?;
    module.add_function(wrap_pyfunction!(compute, module)?)?;
    module.add_class::<Table>()?;
    module.add_class::<spark::SparkRun>()?;
    module.add_function(wrap_pyfunction!(spark::bucket_task, module)?)?;
    module.add_function(wrap_pyfunction!(spark::stage_two_task, module)?)?;
    module.add("TO_DRIVER", crmkpi_export::distributed::TO_DRIVER)?;
    module.add("GLOBAL_BUCKET", crmkpi_export::distributed::GLOBAL_BUCKET)?;
    module.add_function(wrap_pyfunction!(spark::bucket_of, module)?)?;
    module.add_function(wrap_pyfunction!(spark::entity_keys, module)?)?;
    module.add_function(wrap_pyfunction!(spark::compute_columns, module)?)?;
    module.add_function(wrap_pyfunction!(spark::check_out_dir, module)?)?;
    module.add("CrmkpiError", py.get_type::<CrmkpiError>())?;
    module.add("UsageError", py.get_type::<UsageError>())?;
    module.add("RejectRatioError", py.get_type::<RejectRatioError>())?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

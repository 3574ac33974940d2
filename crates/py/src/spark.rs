//! The engine's side of the Spark job `crmkpi.spark`: the driver's run ([`SparkRun`]: the
//! lake's snapshot, the buckets, the tasks' specification, the merge and the tables) and the
//! task function ([`bucket_task`]: one bucket's facts from the events Spark routed to it).
//! Python only moves the events and the names of the facts files between Spark and these calls.

use std::path::PathBuf;

use crmkpi_export::compute_run::{ComputeRequest, NoProgress};
use crmkpi_export::distributed::{self, DistributedRun, TaskSpec};
use crmkpi_export::out_dir;
use polars::prelude::{DataFrame, PolarsResult, polars_err};
use polars_arrow::array::StructArray;
use polars_arrow::ffi::{ArrowArrayStream, ArrowArrayStreamReader};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::errors::EngineError;
use crate::{Computed, hand_over, load_config};

/// The name of an Arrow C stream capsule.
const STREAM_CAPSULE: &std::ffi::CStr = c"arrow_array_stream";

/// The driver's side of a Spark compute run: the lake's committed snapshot (held until the
/// run is finished or dropped), `as_of`, the number of buckets, and the facts received from
/// the tasks.
#[pyclass(module = "crmkpi")]
pub struct SparkRun {
    run: Option<DistributedRun>,
}

impl SparkRun {
    fn run(&mut self) -> PyResult<&mut DistributedRun> {
        self.run.as_mut().ok_or_else(|| crate::errors::CrmkpiError::new_err("this Spark run is already finished"))
    }
}

#[pymethods]
impl SparkRun {
    /// Opens the lake and resolves the run like `compute` (same arguments); without `buckets`,
    /// the engine's number for the memory limit, and at least `min_buckets`.
    #[new]
    #[pyo3(signature = (lake, as_of=None, tables=Vec::new(), config=None, memory_limit=None, buckets=None, min_buckets=1))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        lake: PathBuf,
        as_of: Option<String>,
        tables: Vec<String>,
        config: Option<PathBuf>,
        memory_limit: Option<String>,
        buckets: Option<u32>,
        min_buckets: u32,
    ) -> PyResult<SparkRun> {
        py.detach(|| {
            let config = load_config(config.as_deref())?;
            let request = ComputeRequest {
                lake: &lake,
                config: &config,
                tables: &tables,
                as_of: as_of.as_deref(),
                memory_limit: memory_limit.as_deref(),
                buckets: buckets.map(|buckets| buckets.max(1)),
            };
            let run =
                DistributedRun::prepare(request, &NoProgress).map_err(|error| EngineError::from_distributed(&error))?;
            let run = if buckets.is_none() { run.with_min_buckets(min_buckets) } else { run };
            Ok(SparkRun { run: Some(run) })
        })
        .map_err(EngineError::into_py)
    }

    /// The snapshot's committed event files (what Spark reads).
    fn event_files(&mut self) -> PyResult<Vec<String>> {
        Ok(self.run()?.event_files().iter().map(|path| path.display().to_string()).collect())
    }

    /// The number of entity buckets.
    #[getter]
    fn buckets(&mut self) -> PyResult<u32> {
        Ok(self.run()?.buckets())
    }

    /// What every task needs, as JSON (pass it to `bucket_task`).
    fn task_spec(&mut self) -> PyResult<String> {
        self.run()?.task_spec().to_json().map_err(|error| EngineError::from_distributed(&error).into_py())
    }

    /// Adds the facts file `bucket_task` wrote for `name` of bucket `bucket`.
    fn add_received(&mut self, py: Python<'_>, bucket: u32, name: &str, path: PathBuf) -> PyResult<()> {
        let run = self.run()?;
        py.detach(|| run.add_received(bucket, name, &path))
            .map_err(|error| EngineError::from_distributed(&error).into_py())
    }

    /// Merges the received facts and computes the tables; with `out`, writes them like
    /// `crmkpi compute --out`. Returns the tables and the data warnings.
    #[pyo3(signature = (out=None, report=true))]
    fn finish(&mut self, py: Python<'_>, out: Option<PathBuf>, report: bool) -> PyResult<Computed> {
        let run =
            self.run.take().ok_or_else(|| crate::errors::CrmkpiError::new_err("this Spark run is already finished"))?;
        py.detach(|| {
            let computed = run.finish(&NoProgress).map_err(|error| EngineError::from_distributed(&error))?;
            hand_over(computed, out.as_deref(), report)
        })
        .map_err(EngineError::into_py)
    }
}

/// Checks that `out` may be replaced by a run's outputs, before any work (as `compute` does).
#[pyfunction]
pub fn check_out_dir(out: PathBuf, lake: PathBuf) -> PyResult<()> {
    out_dir::check_usable(&out, &lake).map_err(|error| EngineError::usage(&error).into_py())
}

/// The facts of bucket `bucket` from its events (any object with `__arrow_c_stream__`, e.g. the
/// `pyarrow.Table` Spark hands an `applyInArrow` function), written as Parquet files under
/// `scratch`: a list of (name, file).
#[pyfunction]
pub fn bucket_task(
    py: Python<'_>,
    task_spec: &str,
    bucket: u32,
    events: &Bound<'_, PyAny>,
    scratch: PathBuf,
) -> PyResult<Vec<(String, String)>> {
    let capsule = events.call_method0("__arrow_c_stream__")?;
    let events = import_stream(capsule.cast::<PyCapsule>()?)
        .map_err(|error| EngineError::runtime_with_context("reading the bucket's events", &error).into_py())?;
    let frames = py
        .detach(|| {
            let spec = TaskSpec::from_json(task_spec)?;
            distributed::bucket_task(&spec, bucket, events, &scratch)
        })
        .map_err(|error| EngineError::from_distributed(&error).into_py())?;
    Ok(frames.into_iter().map(|(name, path)| (name, path.display().to_string())).collect())
}

/// `pmod(xxhash64(key), buckets)`: the bucket of an entity key, as the engine and Spark route it.
#[pyfunction]
pub fn bucket_of(key: &str, buckets: u32) -> u32 {
    crmkpi_compute::context::bucket_of(key, buckets)
}

/// The entity key column of each event type that has one, by type name (the others, spend and
/// CRM-user events, are read once by the driver).
#[pyfunction]
pub fn entity_keys() -> Vec<(&'static str, &'static str)> {
    crmkpi_compute::context::entity_keys()
}

/// The lake columns a task reads.
#[pyfunction]
pub fn compute_columns() -> Vec<&'static str> {
    crmkpi_compute::context::COMPUTE_COLUMNS.to_vec()
}

/// The record batches of an Arrow C stream capsule as one frame.
#[allow(unsafe_code)]
fn import_stream(capsule: &Bound<'_, PyCapsule>) -> PolarsResult<DataFrame> {
    use pyo3::types::PyCapsuleMethods;
    let pointer = capsule
        .pointer_checked(Some(STREAM_CAPSULE))
        .map_err(|error| polars_err!(ComputeError: "not an Arrow C stream capsule: {error}"))?;
    // SAFETY: a capsule named `arrow_array_stream` holds an `ArrowArrayStream` (the Arrow
    // PyCapsule interface). Its contents are moved out and replaced by a released stream, as
    // the interface asks of a consumer, so the capsule's destructor does not release it again.
    let stream = unsafe { std::ptr::replace(pointer.as_ptr().cast::<ArrowArrayStream>(), ArrowArrayStream::empty()) };
    // SAFETY: the stream comes from an Arrow producer (pyarrow) that implements the C stream
    // interface: the arrays it hands out are valid for the schema it declares (polars-arrow
    // imports them without validating every offset, so this trusts the producer).
    let mut reader = unsafe { ArrowArrayStreamReader::try_new(Box::new(stream))? };
    let mut frame: Option<DataFrame> = None;
    // SAFETY: as above.
    while let Some(batch) = unsafe { reader.next() } {
        let batch = batch?;
        let batch = batch.as_any().downcast_ref::<StructArray>().cloned().ok_or_else(
            || polars_err!(ComputeError: "an Arrow stream of {:?}, not of record batches", batch.dtype()),
        )?;
        let batch = DataFrame::try_from(batch)?;
        match frame.as_mut() {
            Some(frame) => {
                frame.vstack_mut_owned(batch)?;
            }
            None => frame = Some(batch),
        }
    }
    frame.ok_or_else(|| polars_err!(ComputeError: "an Arrow stream without batches"))
}

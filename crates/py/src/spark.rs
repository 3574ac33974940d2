//! The engine's side of the Spark job `crmkpi.spark`: the driver's run ([`SparkRun`]: the
//! lake's snapshot, the buckets, the tasks' specification, the CLV fits, the aggregated tables
//! and the manifest) and the two stages' task functions ([`bucket_task`]: one bucket's facts
//! from the events Spark routed to it, shipped on; [`stage_two_task`]: the per-entity tables'
//! parts and the aggregated tables from the shipments). Python only moves events and
//! shipments between Spark and these calls (see `crmkpi_export::distributed`).

use std::path::PathBuf;

use crmkpi_export::compute_run::{ComputeRequest, NoProgress};
use crmkpi_export::distributed::{self, DistributedError, DistributedRun, Shipment, TaskSpec};
use crmkpi_export::out_dir;
use polars::prelude::{DataFrame, PolarsResult, polars_err};
use polars_arrow::array::StructArray;
use polars_arrow::ffi::{ArrowArrayStream, ArrowArrayStreamReader};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule};

use crate::errors::EngineError;
use crate::{Computed, handed_over, load_config};

/// The name of an Arrow C stream capsule.
const STREAM_CAPSULE: &std::ffi::CStr = c"arrow_array_stream";

/// The driver's side of a Spark compute run: the lake's committed snapshot (held until the
/// run is finished or dropped), `as_of`, the number of buckets, the CLV fits, and the results
/// received from the tasks.
#[pyclass(module = "crmkpi")]
pub struct SparkRun {
    run: Option<DistributedRun>,
}

impl SparkRun {
    fn run(&mut self) -> PyResult<&mut DistributedRun> {
        self.run.as_mut().ok_or_else(|| crate::errors::CrmkpiError::new_err("this Spark run is already finished"))
    }
}

fn distributed_error(error: &DistributedError) -> PyErr {
    EngineError::from_distributed(error).into_py()
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

    /// The number of aggregated tables computed by a task of their own.
    #[getter]
    fn merged_tables(&mut self) -> PyResult<usize> {
        Ok(self.run()?.merged_tables())
    }

    /// What every task needs, as JSON (pass it to `bucket_task` and `stage_two_task`); after
    /// `fit`, with the fits.
    fn task_spec(&mut self) -> PyResult<String> {
        self.run()?.task_spec().to_json().map_err(|error| distributed_error(&error))
    }

    /// Adds a shipment of the first stage addressed to the driver (destination -1).
    fn add_driver_shipment(&mut self, py: Python<'_>, name: &str, payload: &[u8]) -> PyResult<()> {
        let run = self.run()?;
        py.detach(|| run.add_driver_shipment(name, &distributed::decode_frame(name, payload)?))
            .map_err(|error| distributed_error(&error))
    }

    /// Fits the CLV models to the customers the first stage shipped to the driver.
    fn fit(&mut self, py: Python<'_>) -> PyResult<()> {
        let run = self.run()?;
        py.detach(|| run.fit());
        Ok(())
    }

    /// Creates the staging directory of `out` (checked like `compute` checks it) that the
    /// second stage's tasks write the per-entity tables' parts into; returns it.
    fn begin_output(&mut self, py: Python<'_>, out: PathBuf) -> PyResult<String> {
        let run = self.run()?;
        let staging = py.detach(|| run.begin_output(&out)).map_err(|error| distributed_error(&error))?;
        Ok(staging.display().to_string())
    }

    /// Adds a result of the second stage.
    fn add_result(&mut self, py: Python<'_>, name: &str, payload: &[u8]) -> PyResult<()> {
        let run = self.run()?;
        py.detach(|| run.add_result(name, payload)).map_err(|error| distributed_error(&error))
    }

    /// Writes the aggregated tables and the manifest beside the parts and replaces `out`.
    /// Returns the aggregated tables and the data warnings.
    #[pyo3(signature = (report=false))]
    fn finish(&mut self, py: Python<'_>, report: bool) -> PyResult<Computed> {
        let run =
            self.run.take().ok_or_else(|| crate::errors::CrmkpiError::new_err("this Spark run is already finished"))?;
        let (computed, _) = py.detach(|| run.finish(report)).map_err(|error| distributed_error(&error))?;
        Ok(handed_over(computed))
    }
}

/// Checks that `out` may be replaced by a run's outputs, before any work (as `compute` does).
#[pyfunction]
pub fn check_out_dir(out: PathBuf, lake: PathBuf) -> PyResult<()> {
    out_dir::check_usable(&out, &lake).map_err(|error| EngineError::usage(&error).into_py())
}

/// The first stage's task of bucket `bucket` (-1: the events of no entity) from its events
/// (any object with `__arrow_c_stream__`, e.g. the `pyarrow.Table` Spark hands an
/// `applyInArrow` function): its shipments, as (destination, name, bytes).
#[pyfunction]
pub fn bucket_task<'py>(
    py: Python<'py>,
    task_spec: &str,
    bucket: i32,
    events: &Bound<'py, PyAny>,
) -> PyResult<Vec<(i32, String, Bound<'py, PyBytes>)>> {
    let events = import_arrow(events, "reading the bucket's events")?;
    let shipments: Vec<(i32, String, Vec<u8>)> = py
        .detach(|| {
            let spec = TaskSpec::from_json(task_spec)?;
            distributed::bucket_task(&spec, bucket, events)?
                .into_iter()
                .map(Shipment::encode)
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|error: DistributedError| distributed_error(&error))?;
    Ok(shipments.into_iter().map(|(dest, name, bytes)| (dest, name, PyBytes::new(py, &bytes))).collect())
}

/// The second stage's task of destination `dest`, from the shipments Spark grouped there (any
/// object with `__arrow_c_stream__` with columns `name` and `payload`, e.g. the `pyarrow.Table`
/// of an `applyInArrow` function; read without a copy into Python); the per-entity tables'
/// parts are written under `staging`. Returns the results for the driver, as (name, bytes).
#[pyfunction]
pub fn stage_two_task<'py>(
    py: Python<'py>,
    task_spec: &str,
    dest: i32,
    shipments: &Bound<'py, PyAny>,
    staging: PathBuf,
) -> PyResult<Vec<(String, Bound<'py, PyBytes>)>> {
    let shipments = import_arrow(shipments, "reading the shipments")?;
    let results = py
        .detach(|| {
            let spec = TaskSpec::from_json(task_spec)?;
            distributed::stage_two_task(&spec, dest, distributed::decode_shipments(&shipments)?, &staging)
        })
        .map_err(|error| distributed_error(&error))?;
    Ok(results.into_iter().map(|(name, bytes)| (name, PyBytes::new(py, &bytes))).collect())
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

/// The rows of an object with `__arrow_c_stream__` as one frame; `what` names them in an error.
fn import_arrow(object: &Bound<'_, PyAny>, what: &str) -> PyResult<DataFrame> {
    let capsule = object.call_method0("__arrow_c_stream__")?;
    import_stream(capsule.cast::<PyCapsule>()?)
        .map_err(|error| EngineError::runtime_with_context(what, &error).into_py())
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

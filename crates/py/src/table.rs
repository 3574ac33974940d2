//! `crmkpi.Table`: one computed table, readable by any Arrow consumer through the Arrow
//! PyCapsule interface. `__arrow_c_stream__` hands out an Arrow C stream (polars-arrow's
//! `ffi::export_iterator`) of record batches, each a struct array of the table's columns
//! sharing the table's buffers: no copy of the numbers; strings become Arrow `large_string`.

use polars::prelude::{ArrowDataType, ArrowField, CompatLevel, DataFrame, PlSmallStr, PolarsResult};
use polars_arrow::array::{Array, StructArray};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

/// The name consumers check on an Arrow C stream capsule.
const STREAM_CAPSULE: &std::ffi::CStr = c"arrow_array_stream";

/// The Arrow flavour of the exported columns: `large_string` rather than `string_view`, which
/// every Arrow reader in use (older pyarrow, DuckDB, Spark's Arrow bridge) understands.
const EXPORT_LEVEL: CompatLevel = CompatLevel::oldest();

/// A table crmkpi computed, e.g. `kpi_monthly`: its rows sorted by its key columns, with the
/// columns and types of the file `crmkpi compute` writes. Read it with any Arrow consumer:
/// `pyarrow.table(t)`, `polars.DataFrame(t)`, `duckdb.sql("select * from t")`, or
/// `pyarrow.table(t).to_pandas()`.
#[pyclass(module = "crmkpi", frozen)]
pub struct Table {
    name: String,
    /// The rows, in one chunk per column.
    frame: DataFrame,
    /// The run's `as_of`, RFC 3339 UTC.
    as_of: String,
}

impl Table {
    /// The table `name` with its rows, computed as of `as_of`.
    pub fn new(name: String, mut frame: DataFrame, as_of: String) -> Table {
        frame.rechunk_mut_par();
        Table { name, frame, as_of }
    }

    /// The Arrow type of the stream's batches: a struct of the table's columns.
    fn batch_type(&self) -> ArrowDataType {
        ArrowDataType::Struct(self.frame.columns().iter().map(|column| column.field().to_arrow(EXPORT_LEVEL)).collect())
    }
}

#[pymethods]
impl Table {
    /// The table's name, e.g. `kpi_monthly`.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The instant the table was computed as of (RFC 3339 UTC), as the manifest records it.
    #[getter]
    fn as_of(&self) -> &str {
        &self.as_of
    }

    /// The number of rows.
    #[getter]
    fn num_rows(&self) -> usize {
        self.frame.height()
    }

    /// The column names, in file order.
    #[getter]
    fn column_names(&self) -> Vec<String> {
        self.frame.get_column_names().iter().map(|name| name.to_string()).collect()
    }

    fn __len__(&self) -> usize {
        self.frame.height()
    }

    fn __repr__(&self) -> String {
        format!("<crmkpi.Table {}: {} rows, {} columns>", self.name, self.frame.height(), self.frame.width())
    }

    /// The rows as an Arrow C stream in a PyCapsule (the Arrow PyCapsule interface). A
    /// `requested_schema` is not applied: the stream has the table's own types.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        // The protocol lets a producer ignore the request; the consumer casts if it must.
        drop(requested_schema);
        let batch_type = self.batch_type();
        let batches: Vec<PolarsResult<Box<dyn Array>>> = self
            .frame
            .iter_chunks(EXPORT_LEVEL, true)
            .map(|batch| {
                let rows = batch.len();
                Ok(StructArray::new(batch_type.clone(), rows, batch.into_arrays(), None).boxed())
            })
            .collect();
        let field = ArrowField::new(PlSmallStr::EMPTY, batch_type, false);
        let stream = polars_arrow::ffi::export_iterator(Box::new(batches.into_iter()), field);
        PyCapsule::new_with_value(py, stream, STREAM_CAPSULE)
    }
}

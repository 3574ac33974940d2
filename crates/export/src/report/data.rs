//! What the report reads: `manifest.json` and the Parquet file of every table it shows, with
//! column accessors that turn a table's columns into plain vectors (dates as `YYYY-MM-DD`,
//! numbers and booleans as `f64`).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use polars::prelude::*;
use serde::Deserialize;

use super::ReportError;
use crate::out_dir::MANIFEST_FILE;

/// The parts of `manifest.json` the report shows.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestView {
    /// crmkpi version of the run.
    #[serde(default)]
    pub crmkpi_version: String,
    /// `as_of`, RFC 3339 UTC.
    pub as_of: String,
    /// The resolved configuration.
    #[serde(default)]
    pub config: serde_json::Value,
    /// The lake the run read.
    #[serde(default)]
    pub lake: LakeView,
    /// The run's warnings.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The tables written.
    #[serde(default)]
    pub tables: Vec<TableEntry>,
}

/// The lake facts of the manifest.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LakeView {
    /// Events up to `as_of`.
    #[serde(default)]
    pub events: u64,
    /// Events up to `as_of` per event type.
    #[serde(default)]
    pub per_event_type: BTreeMap<String, u64>,
}

/// A table of the manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct TableEntry {
    /// Table name.
    pub name: String,
    /// Its files.
    #[serde(default)]
    pub files: Vec<FileEntry>,
}

/// A file of a table.
#[derive(Debug, Clone, Deserialize)]
pub struct FileEntry {
    /// File name inside the output directory.
    pub name: String,
}

impl ManifestView {
    /// Reads `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<ManifestView, ReportError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read(&path).map_err(|source| ReportError::Io { path: path.clone(), source })?;
        serde_json::from_slice(&text).map_err(|error| ReportError::Manifest { path, message: error.to_string() })
    }

    /// A string setting of the resolved configuration, or `default`.
    pub fn setting(&self, key: &str, default: &str) -> String {
        self.config.get(key).and_then(serde_json::Value::as_str).unwrap_or(default).to_owned()
    }
}

/// A table read back from its Parquet file.
#[derive(Debug, Clone)]
pub struct Table {
    /// Table name.
    pub name: String,
    /// Its rows.
    pub frame: DataFrame,
}

impl Table {
    /// Row count.
    pub fn height(&self) -> usize {
        self.frame.height()
    }

    fn column(&self, column: &str, dtype: &DataType) -> Result<Series, ReportError> {
        self.frame
            .column(column)
            .and_then(|values| values.as_materialized_series().cast(dtype))
            .map_err(|source| ReportError::Column { table: self.name.clone(), column: column.to_owned(), source })
    }

    /// A column as text: dates as `YYYY-MM-DD`, nulls as `None`.
    pub fn strings(&self, column: &str) -> Result<Vec<Option<String>>, ReportError> {
        let series = self.column(column, &DataType::String)?;
        let values = series.str().map_err(|source| ReportError::Column {
            table: self.name.clone(),
            column: column.to_owned(),
            source,
        })?;
        Ok(values.iter().map(|value| value.map(str::to_owned)).collect())
    }

    /// A numeric or boolean column as `f64`.
    pub fn numbers(&self, column: &str) -> Result<Vec<Option<f64>>, ReportError> {
        let series = self.column(column, &DataType::Float64)?;
        let values = series.f64().map_err(|source| ReportError::Column {
            table: self.name.clone(),
            column: column.to_owned(),
            source,
        })?;
        Ok(values.iter().collect())
    }
}

/// The tables the report shows, with the columns it reads of each (all when none are named).
/// Of the per-entity tables only `customers`, and only the three columns of its charts: the
/// driver of a Spark job, which renders the report, reads no more of them.
const REPORTED: &[(&str, &[&str])] = &[
    ("kpi_monthly", &[]),
    ("cohort_retention", &[]),
    ("customers", &["predicted_clv", "p_alive", "is_alive"]),
    ("clv_model", &[]),
    ("stage_durations", &[]),
    ("pipeline_forecast", &[]),
    ("rep_performance", &[]),
    ("lost_reasons", &[]),
    ("campaigns", &[]),
];

/// Every table the manifest lists that the report shows, by name, read from its Parquet file
/// (or its Parquet part files, in order, for a table a Spark job wrote in parts).
pub fn read_tables(dir: &Path, manifest: &ManifestView) -> Result<BTreeMap<String, Table>, ReportError> {
    let mut tables = BTreeMap::new();
    for entry in &manifest.tables {
        let Some((_, columns)) = REPORTED.iter().find(|(name, _)| *name == entry.name) else { continue };
        let mut frame: Option<DataFrame> = None;
        for file in entry.files.iter().filter(|file| file.name.ends_with(".parquet")) {
            let path = dir.join(&file.name);
            let read_error = |source| ReportError::Read { table: entry.name.clone(), path: path.clone(), source };
            let handle = File::open(&path).map_err(|source| ReportError::Io { path: path.clone(), source })?;
            let reader = ParquetReader::new(handle);
            let reader = if columns.is_empty() {
                reader
            } else {
                reader.with_columns(Some(columns.iter().map(|column| (*column).to_owned()).collect()))
            };
            let part = reader.finish().map_err(read_error)?;
            match frame.as_mut() {
                Some(frame) => {
                    frame.vstack_mut_owned(part).map_err(read_error)?;
                }
                None => frame = Some(part),
            }
        }
        if let Some(frame) = frame {
            tables.insert(entry.name.clone(), Table { name: entry.name.clone(), frame });
        }
    }
    Ok(tables)
}

//! `manifest.json`: what a compute run did (outputs.md): crmkpi version, run id, `as_of`,
//! start and end time, the resolved configuration and its hash, the lake it read (event count
//! per event type), per table its files with SHA-256, row count, columns and types, warnings,
//! the time each stage took and the peak memory.

use std::collections::BTreeMap;

use serde::Serialize;

/// What the caller knows about the run before the files are written.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestInput {
    /// crmkpi version.
    pub crmkpi_version: String,
    /// The run's id.
    pub run_id: String,
    /// `as_of`, RFC 3339 UTC.
    pub as_of: String,
    /// Start of the run, RFC 3339 UTC.
    pub started_at: String,
    /// The resolved configuration.
    pub config: serde_json::Value,
    /// SHA-256 of the resolved configuration.
    pub config_hash: String,
    /// The lake that was read.
    pub lake: LakeInfo,
    /// Warnings: models that did not converge, records left out.
    pub warnings: Vec<String>,
    /// Seconds per stage (scan, per table, export).
    pub stage_seconds: BTreeMap<String, f64>,
}

/// The lake a run read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LakeInfo {
    /// The lake directory.
    pub path: String,
    /// Events up to `as_of`.
    pub events: u64,
    /// Events up to `as_of` per event type.
    pub per_event_type: BTreeMap<String, u64>,
}

/// One column of a table.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// Type as outputs.md names it.
    pub r#type: String,
}

/// One written file.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FileInfo {
    /// File name inside the output directory.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the contents, hex.
    pub sha256: String,
}

/// One written table.
#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    /// Table name.
    pub name: String,
    /// Row count.
    pub rows: u64,
    /// Columns in file order.
    pub columns: Vec<ColumnInfo>,
    /// Its Parquet and CSV files.
    pub files: Vec<FileInfo>,
}

/// The manifest as written.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// Always `"crmkpi"`: marks the directory as a crmkpi output directory that later runs may
    /// replace (see [`crate::out_dir`]).
    pub written_by: &'static str,
    /// Run facts given by the caller.
    #[serde(flatten)]
    pub input: ManifestInput,
    /// End of the run, RFC 3339 UTC.
    pub finished_at: String,
    /// Peak resident memory of the process, bytes (Linux `VmHWM`; null elsewhere).
    pub peak_memory_bytes: Option<u64>,
    /// The tables, in output order.
    pub tables: Vec<TableInfo>,
}

impl Manifest {
    /// Completes the manifest when all tables are written.
    pub fn new(input: ManifestInput, tables: Vec<TableInfo>) -> Manifest {
        Manifest {
            written_by: crate::out_dir::WRITTEN_BY,
            input,
            finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            peak_memory_bytes: peak_memory_bytes(),
            tables,
        }
    }
}

/// The process's peak resident set size from `/proc/self/status`, when available.
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

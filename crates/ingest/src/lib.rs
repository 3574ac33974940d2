//! crmkpi's ingest stage: reads CRM event dumps (NDJSON or CSV, plain, gzip or zstd),
//! validates and normalises every record per events.md, deduplicates by `event_id`, and adds
//! the accepted events to a Hive-partitioned Parquet event lake, atomically and with bounded
//! memory. Rejected records go to the lake's rejects with their file, line, reason and text.
//!
//! The [`generator`] writes realistic synthetic dumps in the same formats.

pub mod csv_records;
pub mod dedup;
pub mod error;
mod flat_json;
pub mod generator;
pub mod id_index;
pub mod lake;
pub mod read;
pub mod record;
pub mod run;
pub mod seen_filter;
pub mod source;
pub mod validate;

pub use error::IngestError;
pub use lake::{CompactReport, FileStats, Lake, RunRecord, RunStatus, Snapshot};
pub use run::{IngestReport, NoProgress, Progress, Summary, ingest, validate_inputs};

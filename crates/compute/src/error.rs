//! The compute crate's error type: what failed, for which table or input.

use std::path::PathBuf;

/// Why a compute run stopped.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// The lake holds no event up to `as_of`, so there is no month to report.
    #[error("the lake has no events{as_of}; run `crmkpi ingest` first or pass an --as-of after the first event")]
    NoEvents {
        /// The `as_of` bound, as text for the message (empty when not given).
        as_of: String,
    },
    /// `--as-of` is not an RFC 3339 instant, a local timestamp or a date.
    #[error(
        "--as-of `{text}` is not an RFC 3339 instant, a local timestamp YYYY-MM-DDTHH:MM:SS or a date YYYY-MM-DD{detail}"
    )]
    BadAsOf {
        /// The text given.
        text: String,
        /// Extra detail (e.g. a local time inside a DST gap).
        detail: String,
    },
    /// A table name given with `--tables` is not one crmkpi computes.
    #[error("unknown table `{name}`; the tables are: {known}")]
    UnknownTable {
        /// The name given.
        name: String,
        /// The known table names, comma separated.
        known: String,
    },
    /// The lake's Parquet files could not be scanned.
    #[error("cannot scan the lake files ({first}, ...): {source}")]
    Scan {
        /// The first file of the scan.
        first: PathBuf,
        /// polars' error.
        source: polars::error::PolarsError,
    },
    /// A table's plan failed to run.
    #[error("computing table `{table}` failed: {source}")]
    Plan {
        /// The table.
        table: String,
        /// polars' error.
        source: polars::error::PolarsError,
    },
}

//! The compute crate's error type: which stage of a run failed, for which table, family,
//! bucket or input.

use std::path::PathBuf;

/// Why a compute run stopped.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// The directory is not a crmkpi lake, or no ingest has committed to it yet.
    #[error(
        "{} is not a crmkpi lake (no ingest record under {}/_runs); run `crmkpi ingest <INPUT> --lake {}` first",
        lake.display(), lake.display(), lake.display()
    )]
    NotALake {
        /// The directory given.
        lake: PathBuf,
    },
    /// The lake's snapshot or run records could not be read.
    #[error("reading the lake {}: {source}", lake.display())]
    Lake {
        /// The lake directory.
        lake: PathBuf,
        /// The lake's error.
        source: crmkpi_ingest::IngestError,
    },
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
    /// A memory limit given is not a size of at least 64 MiB.
    #[error("memory limit `{text}` is not a size of at least 64MiB such as 4GiB, 512MiB or 2GB")]
    MemoryLimit {
        /// The text given.
        text: String,
    },
    /// A table name given with `--tables` is not one crmkpi computes.
    #[error("unknown table `{name}`; the tables are: {known}")]
    UnknownTable {
        /// The name given.
        name: String,
        /// The known table names, comma separated.
        known: String,
    },
    /// A frame computed elsewhere (a Spark task) names no fact or part of this run.
    #[error("bucket {bucket} sent facts `{name}`, which this run does not compute")]
    UnknownFact {
        /// The name received.
        name: String,
        /// The bucket it came from.
        bucket: u32,
    },
    /// A received frame's name is both a per-entity fact's and a part's, so it cannot be placed.
    #[error("`{name}` names both a per-entity fact and a part")]
    AmbiguousFact {
        /// The name.
        name: String,
    },
    /// A frame computed elsewhere (a Spark task) has other columns than the same fact here:
    /// the task ran another crmkpi version.
    #[error(
        "bucket {bucket} sent facts `{name}` with columns {received}, expected {expected}: do the Spark executors run the same crmkpi version as the driver?"
    )]
    ReceivedSchema {
        /// The fact or part.
        name: String,
        /// The bucket it came from.
        bucket: u32,
        /// The columns and types computed here.
        expected: String,
        /// The columns and types received.
        received: String,
    },
    /// Events received for a bucket (from a Spark task) lack a column or have one of another type.
    #[error("the events of bucket {bucket} do not have the lake's columns: {source}")]
    ReceivedEvents {
        /// The bucket.
        bucket: u32,
        /// polars' error.
        source: polars::error::PolarsError,
    },
    /// The split of the lake by bucket failed: a lake chunk could not be split, or a per-bucket
    /// file (in the scratch directory) could not be written or read.
    #[error("splitting the lake by bucket ({path}): {source}")]
    Spill {
        /// The lake file, or the per-bucket file or directory.
        path: PathBuf,
        /// The cause.
        source: polars::error::PolarsError,
    },
    /// The lake's Parquet files could not be scanned.
    #[error("cannot scan the lake files ({first}, ...): {source}")]
    Scan {
        /// The first file of the scan.
        first: PathBuf,
        /// polars' error.
        source: polars::error::PolarsError,
    },
    /// The earliest and latest event (and the count) up to `as_of` could not be read.
    #[error("reading the lake's first and last event failed: {source}")]
    LakeBounds {
        /// polars' error.
        source: polars::error::PolarsError,
    },
    /// The lake's event counts by type (for the manifest) could not be computed.
    #[error("counting the lake's events by type failed: {source}")]
    LakeStatistics {
        /// polars' error.
        source: polars::error::PolarsError,
    },
    /// One entity bucket's events could not be read.
    #[error("reading the events of bucket {bucket} of {buckets} failed: {source}")]
    Bucket {
        /// The bucket.
        bucket: u32,
        /// The number of buckets.
        buckets: u32,
        /// polars' error.
        source: polars::error::PolarsError,
    },
    /// The events of no entity (spend, CRM users) could not be read.
    #[error("reading the spend and CRM-user events failed: {source}")]
    GlobalEvents {
        /// polars' error.
        source: polars::error::PolarsError,
    },
    /// A per-entity fact of one bucket failed.
    #[error("computing the {fact} of bucket {bucket} failed: {source}")]
    Fact {
        /// The fact, e.g. `deal summaries`.
        fact: &'static str,
        /// The bucket.
        bucket: u32,
        /// polars' error.
        source: polars::error::PolarsError,
    },
    /// A bucket's facts and parts failed when collected together, though each alone succeeded.
    #[error("computing the facts and parts of bucket {bucket} together failed: {source}")]
    BucketFacts {
        /// The bucket.
        bucket: u32,
        /// polars' error.
        source: polars::error::PolarsError,
    },
    /// Merging the buckets' facts or parts failed.
    #[error("merging the buckets' {what} failed: {source}")]
    Merge {
        /// What was merged.
        what: String,
        /// polars' error.
        source: polars::error::PolarsError,
    },
    /// The CLV model inputs could not be read or the models not fitted.
    #[error("fitting the CLV models failed: {source}")]
    Fit {
        /// polars' error.
        source: polars::error::PolarsError,
    },
    /// A table's plan failed to run.
    #[error("computing table `{table}` failed: {source}")]
    Table {
        /// The table.
        table: &'static str,
        /// polars' error.
        source: polars::error::PolarsError,
    },
    /// The data checks behind the manifest's warnings failed.
    #[error("checking the data ({check}) failed: {source}")]
    DataCheck {
        /// The check.
        check: &'static str,
        /// polars' error.
        source: polars::error::PolarsError,
    },
}

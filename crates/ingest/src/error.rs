//! The ingest crate's error type: one variant per thing that can stop a run, each naming the
//! file, lake path or line it concerns. Bad records are not errors: they become rejects.

use std::path::PathBuf;

/// Why an ingest, validate or generate run stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// An input argument matched no file.
    #[error("input `{input}` matches no file; check the path or the glob pattern")]
    NoSuchInput {
        /// The argument as given.
        input: String,
    },
    /// A glob pattern is not valid.
    #[error("input `{input}` is not a valid glob pattern: {message}")]
    BadGlob {
        /// The argument as given.
        input: String,
        /// The glob parser's message.
        message: String,
    },
    /// A named input file does not have a dump extension.
    #[error("input `{path}` is not a dump: expected .ndjson, .jsonl, .json or .csv, optionally .gz or .zst")]
    UnknownFormat {
        /// The file.
        path: String,
    },
    /// A dump could not be opened or read: missing, permission denied, corrupt compression.
    #[error("cannot read `{path}` (near line {line}): {source}; the lake was left unchanged")]
    Read {
        /// The file as given on the command line.
        path: String,
        /// The last line read before the failure (0: at the start).
        line: u64,
        /// The I/O or decompression error.
        source: std::io::Error,
    },
    /// A dump does not start with UTF-8 text.
    #[error(
        "`{path}` is not UTF-8 text at its start; is it compressed without a .gz/.zst extension? The lake was left unchanged"
    )]
    NotUtf8 {
        /// The file as given on the command line.
        path: String,
    },
    /// Another ingest holds the lake's lock.
    #[error(
        "the lake {lake} is being written by another ingest or compact (lock {lock} is held); wait for it to finish and run again"
    )]
    LakeLocked {
        /// The lake directory.
        lake: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// `--lake` is a directory with files in it that is not a crmkpi lake.
    #[error(
        "--lake {lake} is not a crmkpi lake and holds {entries}; crmkpi creates a lake only in a new or empty \
         directory. Choose a new or empty directory for the lake"
    )]
    NotALake {
        /// The directory.
        lake: PathBuf,
        /// Its entries, as [`crmkpi_schema::dir_entries::describe`] names them.
        entries: String,
    },
    /// The lake has the layout of an earlier crmkpi that readers of this version do not read.
    #[error(
        "the lake {lake} has the layout of an earlier crmkpi (lake format 1); run `crmkpi compact --lake {lake}` \
         (or the next `crmkpi ingest`) once to upgrade it in place"
    )]
    LakeNeedsUpgrade {
        /// The lake directory.
        lake: PathBuf,
    },
    /// A file or directory of the lake could not be read or written.
    #[error("lake I/O on {path}: {source}")]
    LakeIo {
        /// The lake path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A run record of the lake is not valid JSON of the expected shape.
    #[error("the lake's run record {path} is unreadable: {message}")]
    CorruptRunRecord {
        /// The record.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The run's spill files (its records on their way through deduplication) could not be
    /// written or read back.
    #[error("ingest scratch file {path}: {source}; the lake was left unchanged")]
    Spill {
        /// The spill file.
        path: PathBuf,
        /// The I/O or encoding error.
        source: std::io::Error,
    },
    /// A record written to the lake's files as new during the read turned out to repeat an id
    /// seen before: the id filter missed an id it holds, which it never should.
    #[error(
        "deduplication: valid record {sequence} of the run was written as new but repeats an id seen before; \
         the lake was left unchanged (a bug in crmkpi, please report it)"
    )]
    UnseenDuplicate {
        /// The record's sequence number among the run's valid records.
        sequence: u64,
    },
    /// polars failed to build or write a Parquet file of the lake.
    #[error("writing or reading lake Parquet {path}: {source}")]
    Parquet {
        /// The Parquet file.
        path: PathBuf,
        /// polars' error.
        source: polars::error::PolarsError,
    },
    /// A generated dump would replace a file that exists.
    #[error("{path} exists; generate never overwrites a file. Choose a new or empty --out directory")]
    GenerateWouldOverwrite {
        /// The existing file.
        path: PathBuf,
    },
    /// A generated dump could not be written.
    #[error("cannot write generated dump {path}: {source}")]
    GenerateIo {
        /// The output file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

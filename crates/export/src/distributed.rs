//! A compute run whose buckets are computed elsewhere: the engine's side of the Spark job
//! (`python -m crmkpi.spark`).
//!
//! The driver prepares the run as `crmkpi compute` does ([`DistributedRun::prepare`]: the
//! lake's committed snapshot, `as_of`, the calendar, the number of buckets) and hands Spark the
//! snapshot's event files and a [`TaskSpec`]. Spark routes each event to its bucket with
//! `pmod(xxhash64(key), buckets)`, the engine's own bucket function, and each task calls
//! [`bucket_task`] on its bucket's events: the same [`bucket_facts`] as a single-node run, its
//! frames written as Parquet files into a scratch directory that the driver reads too (the
//! facts do not pass through Spark's driver JVM). The driver adds the files
//! ([`DistributedRun::add_received`]), then [`DistributedRun::finish`] merges them and
//! computes the tables exactly as `crmkpi compute` does from its own buckets.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crmkpi_compute::context::bucket_schema;
use crmkpi_compute::facts::{Bucket, FactsBuilder};
use crmkpi_compute::{ComputeError, Context, bucket_facts, select_tables};
use crmkpi_schema::Config;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::compute_run::{ComputeRequest, ComputedRun, PreparedRun, Progress, prepare};

/// Why a distributed run or one of its tasks failed.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    /// The engine's own work failed.
    #[error(transparent)]
    Compute(#[from] ComputeError),
    /// A task's facts could not be written to the scratch directory.
    #[error("writing the facts of bucket {bucket} to {path}: {source}")]
    WriteFacts {
        /// The file.
        path: PathBuf,
        /// The bucket.
        bucket: u32,
        /// The cause.
        source: PolarsError,
    },
    /// Facts written by a task could not be read.
    #[error("reading the facts of bucket {bucket} from {path} (written by a task): {source}")]
    ReadFacts {
        /// The file.
        path: PathBuf,
        /// The bucket.
        bucket: u32,
        /// The cause.
        source: PolarsError,
    },
    /// The task specification is not one this version writes.
    #[error("the task specification cannot be read (does the executor run the driver's crmkpi version?): {source}")]
    TaskSpec {
        /// serde's error.
        source: serde_json::Error,
    },
}

/// What a task needs to compute its bucket's facts: everything the driver's context resolved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The crmkpi version of the driver; a task of another version refuses to run.
    pub crmkpi_version: String,
    /// The resolved configuration.
    pub config: Config,
    /// The run's `as_of`, UTC microseconds.
    pub as_of: i64,
    /// The earliest event up to `as_of`, UTC microseconds.
    pub earliest_event: i64,
    /// The events up to `as_of`.
    pub events: u64,
    /// The number of buckets.
    pub buckets: u32,
    /// The selected tables, whose parts the tasks compute.
    pub tables: Vec<String>,
}

impl TaskSpec {
    /// The specification as JSON, to ship to the tasks.
    pub fn to_json(&self) -> Result<String, DistributedError> {
        serde_json::to_string(self).map_err(|source| DistributedError::TaskSpec { source })
    }

    /// Reads a specification shipped by the driver.
    pub fn from_json(text: &str) -> Result<TaskSpec, DistributedError> {
        let spec: TaskSpec = serde_json::from_str(text).map_err(|source| DistributedError::TaskSpec { source })?;
        if spec.crmkpi_version != env!("CARGO_PKG_VERSION") {
            return Err(DistributedError::TaskSpec {
                source: serde::de::Error::custom(format!(
                    "the driver runs crmkpi {}, this executor {}",
                    spec.crmkpi_version,
                    env!("CARGO_PKG_VERSION")
                )),
            });
        }
        Ok(spec)
    }
}

/// Computes the facts of bucket `bucket` from its events (the lake's compute columns, as Spark
/// read them) and writes each frame as `<scratch>/bucket-<bucket>/<name>.parquet`; returns
/// the names and files. A file is written under a unique temporary name and renamed, so a
/// retried or speculative attempt of the same task replaces it whole.
pub fn bucket_task(
    spec: &TaskSpec,
    bucket: u32,
    events: DataFrame,
    scratch: &Path,
) -> Result<Vec<(String, PathBuf)>, DistributedError> {
    let tables = select_tables(&spec.tables)?;
    let context = Context::for_task(spec.config.clone(), spec.as_of, spec.earliest_event, spec.events, spec.buckets);
    let events = context.received_bucket_events(bucket, events)?;
    let facts = bucket_facts(&Bucket::new(&context, bucket, events), &tables)?;
    let dir = scratch.join(format!("bucket-{bucket}"));
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |error: std::io::Error| DistributedError::WriteFacts { path, bucket, source: error.into() }
    };
    std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    facts
        .into_frames()
        .map(|(name, mut frame)| {
            let path = dir.join(format!("{name}.parquet"));
            // A uniquely named file renamed into place: attempts of the same task (retried or
            // speculative, on any host sharing the scratch directory) never write one file.
            let mut partial = tempfile::NamedTempFile::new_in(&dir).map_err(io_error(&dir))?;
            ParquetWriter::new(partial.as_file_mut())
                .with_compression(ParquetCompression::Lz4Raw)
                .finish(&mut frame)
                .map_err(|source| DistributedError::WriteFacts { path: partial.path().to_owned(), bucket, source })?;
            partial.persist(&path).map_err(|error| io_error(&path)(error.error))?;
            Ok((name.to_owned(), path))
        })
        .collect()
}

/// A compute run on the driver of a Spark job, collecting its buckets' facts from the tasks.
pub struct DistributedRun {
    prepared: PreparedRun,
    builder: FactsBuilder,
    facts_started: Instant,
}

impl DistributedRun {
    /// Opens the lake and resolves the run as `crmkpi compute` does. The facts of an empty
    /// bucket are added first: they give every fact and part its columns even when Spark
    /// sends no bucket at all.
    pub fn prepare(request: ComputeRequest<'_>, progress: &dyn Progress) -> Result<DistributedRun, DistributedError> {
        let prepared = prepare(request, progress)?;
        let context = &prepared.context;
        let no_events = context.received_bucket_events(0, DataFrame::empty_with_schema(&bucket_schema()))?;
        let mut builder = FactsBuilder::default();
        builder.add(bucket_facts(&Bucket::new(context, 0, no_events), &prepared.tables)?);
        Ok(DistributedRun { prepared, builder, facts_started: Instant::now() })
    }

    /// The same run with at least `buckets` buckets (for as many tasks as the cluster runs at
    /// once; the tables are the same for every number).
    pub fn with_min_buckets(mut self, buckets: u32) -> DistributedRun {
        if buckets > self.prepared.context.buckets {
            self.prepared.context = self.prepared.context.with_buckets(buckets);
        }
        self
    }

    /// The committed event files of the snapshot the run reads.
    pub fn event_files(&self) -> &[PathBuf] {
        self.prepared.context.lake_files()
    }

    /// The number of buckets.
    pub fn buckets(&self) -> u32 {
        self.prepared.context.buckets
    }

    /// What the tasks need.
    pub fn task_spec(&self) -> TaskSpec {
        let context = &self.prepared.context;
        TaskSpec {
            crmkpi_version: env!("CARGO_PKG_VERSION").to_owned(),
            config: context.config.clone(),
            as_of: context.as_of,
            earliest_event: context.earliest_event,
            events: context.events,
            buckets: context.buckets,
            tables: self.prepared.tables.iter().map(|table| table.name.to_owned()).collect(),
        }
    }

    /// Adds the frame `name` a task computed for bucket `bucket`, from the file
    /// [`bucket_task`] wrote.
    pub fn add_received(&mut self, bucket: u32, name: &str, path: &Path) -> Result<(), DistributedError> {
        let read_error = |source| DistributedError::ReadFacts { path: path.to_owned(), bucket, source };
        let file = File::open(path).map_err(|error| read_error(error.into()))?;
        let frame = ParquetReader::new(file).finish().map_err(read_error)?;
        Ok(self.builder.add_received(bucket, name, frame)?)
    }

    /// Merges the received facts and computes the tables, as `crmkpi compute` does.
    pub fn finish(self, progress: &dyn Progress) -> Result<ComputedRun, DistributedError> {
        let DistributedRun { mut prepared, builder, facts_started } = self;
        let facts = builder.finish(prepared.context.global_events()?)?;
        prepared.stage_seconds.insert("facts".to_owned(), facts_started.elapsed().as_secs_f64());
        Ok(prepared.finish(&facts, progress)?)
    }
}

//! The lake's entity events split by entity bucket, in one pass over the lake, so that a run of
//! many buckets reads and hashes the lake once instead of once per bucket.
//!
//! When the buckets' events fit in the memory limit next to the rest of the run (see
//! [`split_fits_in_memory`]), each bucket's parts are held in memory until the bucket is
//! computed. Otherwise they are written to one Parquet file per bucket in a directory
//! `.crmkpi-buckets-*` under the scratch directory (the system's temporary directory,
//! `$TMPDIR`), removed when the split is dropped; the files hold the compute columns
//! LZ4-compressed, about the lake's own size.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crmkpi_compute::context::{bucket_schema, split_fits_in_memory};
use crmkpi_compute::{ComputeError, Context};
use polars::io::parquet::write::BatchedWriter;
use polars::prelude::*;
use rayon::prelude::*;

/// The bucket files are read whole: no column statistics (they cost a tenth of the writing).
const NO_STATISTICS: StatisticsOptions = StatisticsOptions {
    min_value: false,
    max_value: false,
    distinct_count: false,
    null_count: false,
    binary_statistics_truncate_length: None,
};

/// Where a split keeps the buckets' events until they are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitStore {
    /// In memory.
    Memory,
    /// In one Parquet file per bucket under a scratch directory.
    Files,
}

impl SplitStore {
    /// Memory when the run's buckets fit in its memory limit (see [`split_fits_in_memory`]),
    /// else files.
    pub fn for_run(context: &Context) -> SplitStore {
        if split_fits_in_memory(context.events, context.buckets, context.config.compute.memory_limit_bytes()) {
            SplitStore::Memory
        } else {
            SplitStore::Files
        }
    }
}

/// Each bucket's events of a run, split from the lake.
pub struct BucketSpill {
    store: Store,
}

/// Where a split keeps the buckets' events.
enum Store {
    /// Each bucket's parts, one per lake chunk, taken when the bucket is computed (`None`
    /// once taken).
    Memory(Mutex<Vec<Option<Vec<DataFrame>>>>),
    /// One Parquet file per bucket (bucket `b`'s at index `b`), in a directory removed with
    /// the split.
    Files { dir: tempfile::TempDir, files: Vec<PathBuf> },
}

fn spill_error(path: &Path) -> impl FnOnce(PolarsError) -> ComputeError + use<> {
    let path = path.to_owned();
    move |source| ComputeError::Spill { path, source }
}

/// A new directory under `scratch` with an empty Parquet file per bucket, and their writers.
fn bucket_files(buckets: u32, scratch: &Path) -> Result<(Store, Vec<BatchedWriter<File>>), ComputeError> {
    let dir = tempfile::Builder::new()
        .prefix(".crmkpi-buckets-")
        .tempdir_in(scratch)
        .map_err(|error| spill_error(scratch)(error.into()))?;
    let files: Vec<PathBuf> = (0..buckets).map(|bucket| dir.path().join(format!("bucket-{bucket}.parquet"))).collect();
    let schema = bucket_schema();
    let writers = files
        .iter()
        .map(|path| {
            let file = File::create(path).map_err(|error| spill_error(path)(error.into()))?;
            ParquetWriter::new(file)
                .with_compression(ParquetCompression::Lz4Raw)
                .with_statistics(NO_STATISTICS)
                .batched(&schema)
                .map_err(spill_error(path))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((Store::Files { dir, files }, writers))
}

impl Store {
    /// Adds one chunk's part of each bucket (`None`: no event of the chunk in that bucket):
    /// to the bucket's parts in memory, or through `writers` to the bucket's file.
    fn add(&mut self, writers: &mut [BatchedWriter<File>], parts: Vec<Option<DataFrame>>) -> Result<(), ComputeError> {
        match self {
            Store::Memory(held) => {
                let held = held.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
                for (slot, part) in held.iter_mut().zip(parts) {
                    if let Some(part) = part {
                        slot.get_or_insert_with(Vec::new).push(part);
                    }
                }
                Ok(())
            }
            // Each bucket's part goes to its own file: the buckets are written in parallel.
            Store::Files { files, .. } => writers.par_iter_mut().zip(files.as_slice()).zip(parts).try_for_each(
                |((writer, path), part)| match part {
                    Some(part) => writer.write_batch(&part).map_err(spill_error(path)),
                    None => Ok(()),
                },
            ),
        }
    }
}

impl BucketSpill {
    /// Reads the lake's event files a chunk (about 1.5 million events) at a time and adds each
    /// chunk's events to their bucket: held in memory, or appended to the bucket's file in a
    /// new directory under `scratch`.
    pub fn write(context: &Context, store: SplitStore, scratch: &Path) -> Result<BucketSpill, ComputeError> {
        let buckets = context.buckets;
        // The files' writers (none for a split in memory).
        let (mut store_of_buckets, mut writers) = match store {
            SplitStore::Memory => {
                (Store::Memory(Mutex::new((0..buckets).map(|_| Some(Vec::new())).collect())), Vec::new())
            }
            SplitStore::Files => bucket_files(buckets, scratch)?,
        };
        tracing::debug!(buckets, ?store, "splitting the lake into buckets");
        let schema = bucket_schema();
        for chunk in context.lake_chunks() {
            let lake_file = chunk.first_file();
            let chunk_error = || spill_error(lake_file);
            let started = std::time::Instant::now();
            let events = context.bucketed_events(chunk)?;
            let read = started.elapsed().as_secs_f64();
            let parts = events.partition_by(["bucket"], true).map_err(chunk_error())?;
            drop(events);
            let partitioned = started.elapsed().as_secs_f64() - read;
            let mut by_bucket: Vec<Option<DataFrame>> = (0..buckets).map(|_| None).collect();
            for mut part in parts {
                let bucket = part
                    .column("bucket")
                    .and_then(|column| column.u32().cloned())
                    .map_err(chunk_error())?
                    .get(0)
                    .and_then(|bucket| usize::try_from(bucket).ok());
                let Some(slot) = bucket.and_then(|bucket| by_bucket.get_mut(bucket)) else {
                    let source =
                        polars_err!(ComputeError: "an event of bucket {bucket:?}, not one of the {buckets} buckets");
                    return Err(chunk_error()(source));
                };
                part.drop_in_place("bucket").map_err(chunk_error())?;
                // The writers take the columns by position: check them by name and type.
                if **part.schema() != schema {
                    let source = polars_err!(SchemaMismatch: "bucket events of columns {:?}, expected {schema:?}", part.schema());
                    return Err(chunk_error()(source));
                }
                part.rechunk_mut();
                *slot = Some(part);
            }
            store_of_buckets.add(&mut writers, by_bucket)?;
            let seconds = started.elapsed().as_secs_f64();
            tracing::debug!(
                chunk = %lake_file.display(),
                read,
                partitioned,
                stored = seconds - read - partitioned,
                "lake chunk split"
            );
        }
        if let Store::Files { files, .. } = &store_of_buckets {
            for (writer, path) in writers.iter().zip(files) {
                writer.finish().map_err(spill_error(path))?;
            }
        }
        Ok(BucketSpill { store: store_of_buckets })
    }

    /// The events of bucket `bucket`, collected. A bucket held in memory is handed over, so it
    /// can be read once only (its numbers and string views are freed when the caller drops it;
    /// the strings of a lake chunk once every bucket of that chunk is dropped).
    pub fn events(&self, bucket: u32) -> Result<DataFrame, ComputeError> {
        let slot = usize::try_from(bucket).ok();
        match &self.store {
            Store::Memory(held) => {
                let (buckets, parts) = {
                    // A panic elsewhere leaves the held parts as they were: still usable.
                    let mut held = held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let buckets = u32::try_from(held.len()).unwrap_or(u32::MAX);
                    let parts = slot.and_then(|slot| held.get_mut(slot)).and_then(Option::take).ok_or_else(|| {
                        ComputeError::Bucket {
                            bucket,
                            buckets,
                            source: polars_err!(ComputeError: "no such bucket, or its events were already handed over"),
                        }
                    })?;
                    (buckets, parts)
                };
                let mut parts = parts.into_iter();
                let Some(mut events) = parts.next() else {
                    return Ok(DataFrame::empty_with_schema(&bucket_schema()));
                };
                for part in parts {
                    events.vstack_mut_owned(part).map_err(|source| ComputeError::Bucket { bucket, buckets, source })?;
                }
                events.rechunk_mut_par();
                Ok(events)
            }
            Store::Files { dir, files } => {
                let path = slot.and_then(|slot| files.get(slot)).ok_or_else(|| ComputeError::Spill {
                    path: dir.path().to_owned(),
                    source: polars_err!(ComputeError: "no file for bucket {bucket}"),
                })?;
                let spill_error = |source| ComputeError::Spill { path: path.clone(), source };
                let file = File::open(path).map_err(|error| spill_error(error.into()))?;
                ParquetReader::new(file).finish().map_err(spill_error)
            }
        }
    }
}

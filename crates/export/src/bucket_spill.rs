//! The lake's entity events split into one Parquet file per entity bucket, in one pass over
//! the lake, so that a run of many buckets reads and hashes the lake once instead of once per
//! bucket.
//!
//! The files live in a directory `.crmkpi-buckets-*` under the scratch directory (the
//! system's temporary directory, `$TMPDIR`), removed when the spill is dropped. They hold the
//! compute columns LZ4-compressed: about the lake's own size.

use std::fs::File;
use std::path::{Path, PathBuf};

use crmkpi_compute::context::bucket_schema;
use crmkpi_compute::{ComputeError, Context};
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

/// The per-bucket event files of a run.
pub struct BucketSpill {
    dir: tempfile::TempDir,
    files: Vec<PathBuf>,
}

impl BucketSpill {
    /// Reads the lake's event files a chunk (about 1.5 million events) at a time and appends
    /// each chunk's events to the file of their bucket.
    pub fn write(context: &Context, scratch: &Path) -> Result<BucketSpill, ComputeError> {
        let spill_error = |path: &Path| {
            let path = path.to_owned();
            move |source: PolarsError| ComputeError::Spill { path, source }
        };
        let dir = tempfile::Builder::new()
            .prefix(".crmkpi-buckets-")
            .tempdir_in(scratch)
            .map_err(|error| spill_error(scratch)(error.into()))?;
        let files: Vec<PathBuf> =
            (0..context.buckets).map(|bucket| dir.path().join(format!("bucket-{bucket}.parquet"))).collect();
        let schema = bucket_schema();
        let mut writers = files
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
        for chunk in context.lake_chunks() {
            let lake_file = chunk.first_file();
            let started = std::time::Instant::now();
            let events = context.bucketed_events(chunk)?;
            let read = started.elapsed().as_secs_f64();
            let parts = events.partition_by(["bucket"], true).map_err(spill_error(lake_file))?;
            drop(events);
            let partitioned = started.elapsed().as_secs_f64() - read;
            // Each bucket's part goes to its own file: the buckets are written in parallel.
            let mut by_bucket: Vec<Option<DataFrame>> = vec![None; files.len()];
            for mut part in parts {
                let bucket = part
                    .column("bucket")
                    .and_then(|column| column.u32().cloned())
                    .map_err(spill_error(lake_file))?
                    .get(0)
                    .and_then(|bucket| usize::try_from(bucket).ok());
                let Some(slot) = bucket.and_then(|bucket| by_bucket.get_mut(bucket)) else {
                    let source = polars_err!(ComputeError: "an event of bucket {bucket:?}, not one of the {} buckets", files.len());
                    return Err(spill_error(lake_file)(source));
                };
                part.drop_in_place("bucket").map_err(spill_error(lake_file))?;
                // The writers take the columns by position: check them by name and type.
                if **part.schema() != schema {
                    let source = polars_err!(SchemaMismatch: "bucket events of columns {:?}, expected {schema:?}", part.schema());
                    return Err(spill_error(lake_file)(source));
                }
                part.rechunk_mut();
                *slot = Some(part);
            }
            writers.par_iter_mut().zip(&files).zip(by_bucket).try_for_each(|((writer, path), part)| match part {
                Some(part) => writer.write_batch(&part).map_err(spill_error(path)),
                None => Ok(()),
            })?;
            let seconds = started.elapsed().as_secs_f64();
            tracing::debug!(
                chunk = %lake_file.display(),
                read,
                partitioned,
                written = seconds - read - partitioned,
                "lake chunk split"
            );
        }
        for (writer, path) in writers.iter().zip(&files) {
            writer.finish().map_err(spill_error(path))?;
        }
        Ok(BucketSpill { dir, files })
    }

    /// The events of bucket `bucket`, collected.
    pub fn events(&self, bucket: u32) -> Result<DataFrame, ComputeError> {
        let path = usize::try_from(bucket).ok().and_then(|bucket| self.files.get(bucket)).ok_or_else(|| {
            ComputeError::Spill {
                path: self.dir.path().to_owned(),
                source: polars_err!(ComputeError: "no file for bucket {bucket}"),
            }
        })?;
        let spill_error = |source| ComputeError::Spill { path: path.clone(), source };
        let file = File::open(path).map_err(|error| spill_error(error.into()))?;
        ParquetReader::new(file).finish().map_err(spill_error)
    }
}

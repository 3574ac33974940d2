//! `crmkpi compact`: a nightly ingest adds a file to every month partition it touches, so after
//! a year a partition holds hundreds of small files. Compaction merges each partition's small
//! files (and the rejects' files) into large ones, rows in the same order, in a new snapshot
//! committed like a run: one atomic switch of `_current`, after which a `compute` that started
//! earlier keeps reading its own snapshot. A kill leaves the lake as it was; a second
//! compaction finds nothing to merge.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::commit::{
    link_committed_files, next_snapshot, parquet_writer, relative_to, remove_unused_snapshots,
    remove_unused_snapshots_after_commit, snapshot_name, sync_tree,
};
use super::snapshot::list_files;
use super::{Lake, lake_io};
use crate::error::IngestError;

/// A file at least this large (on disk) is left as it is.
const LARGE_FILE_BYTES: u64 = 64 << 20;
/// Small files are merged into files of up to about this size.
const MERGED_FILE_BYTES: u64 = 256 << 20;

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompactReport {
    /// Partitions (months, and the rejects) whose files were merged.
    pub partitions: usize,
    /// Files before, in the merged partitions.
    pub files_before: usize,
    /// Files after, in the merged partitions.
    pub files_after: usize,
}

/// Groups of two or more consecutive small files of one partition with the same columns
/// (reject files from before `reject_key` have one fewer), to be merged each into one.
fn merge_groups(files: &[PathBuf]) -> Result<Vec<Vec<PathBuf>>, IngestError> {
    let mut groups = Vec::new();
    let mut group: Vec<PathBuf> = Vec::new();
    let mut group_bytes = 0;
    let mut group_schema = None;
    for file in files {
        let bytes = fs::metadata(file).map_err(lake_io(file))?.len();
        let schema = ParquetReader::new(File::open(file).map_err(lake_io(file))?)
            .schema()
            .map_err(|source| IngestError::Parquet { path: file.clone(), source })?;
        let other_columns = group_schema.as_ref().is_some_and(|group_schema| *group_schema != schema);
        if bytes >= LARGE_FILE_BYTES || group_bytes + bytes > MERGED_FILE_BYTES || other_columns {
            groups.push(std::mem::take(&mut group));
            group_bytes = 0;
        }
        group_schema = Some(schema);
        if bytes < LARGE_FILE_BYTES {
            group.push(file.clone());
            group_bytes += bytes;
        }
    }
    groups.push(group);
    Ok(groups.into_iter().filter(|group| group.len() > 1).collect())
}

/// The partition directories of a snapshot: each month of `events/`, and `rejects/`.
fn partitions(snapshot: &Path) -> Result<Vec<PathBuf>, IngestError> {
    let events = snapshot.join("events");
    let mut dirs = Vec::new();
    for entry in fs::read_dir(&events).map_err(lake_io(&events))? {
        let path = entry.map_err(lake_io(&events))?.path();
        if path.is_dir() {
            dirs.push(path);
        }
    }
    dirs.sort();
    dirs.push(snapshot.join("rejects"));
    Ok(dirs)
}

pub(super) fn compact(lake: &Lake) -> Result<CompactReport, IngestError> {
    remove_unused_snapshots(lake)?;
    let (base, dir) = next_snapshot(lake)?;
    let mut report = CompactReport::default();
    let mut merged_away = Vec::new();
    for partition in partitions(&base)? {
        let files = list_files(&partition, "parquet")?;
        let groups = merge_groups(&files)?;
        if groups.is_empty() {
            continue;
        }
        report.partitions += 1;
        report.files_before += files.len();
        report.files_after += files.len() - groups.iter().map(|group| group.len() - 1).sum::<usize>();
        for (number, group) in groups.iter().enumerate() {
            let name = merged_file_name(&dir, number)?;
            let relative = relative_to(&base, &partition)?;
            merge(group, &dir.join(relative).join(name))?;
            merged_away.extend(group.iter().cloned());
        }
    }
    if report.partitions == 0 {
        fs::remove_dir_all(&dir).map_err(lake_io(&dir))?;
        return Ok(report);
    }
    link_committed_files(&base, &dir, true)?;
    for file in merged_away {
        let linked = dir.join(relative_to(&base, &file)?);
        fs::remove_file(&linked).map_err(lake_io(&linked))?;
    }
    sync_tree(&dir)?;
    crmkpi_schema::pause::pause_at("compact:before_commit");
    lake.switch_current(&dir)?;
    crmkpi_schema::pause::pause_at("compact:after_commit");
    remove_unused_snapshots_after_commit(lake);
    Ok(report)
}

/// The name of a partition's `number`th merged file in the snapshot `dir` being made: the
/// snapshot's number makes it unique in the lake's history (no file of an earlier snapshot has
/// it), and its length stays the same however often a partition is compacted.
fn merged_file_name(dir: &Path, number: usize) -> Result<String, IngestError> {
    Ok(format!("compacted-{}-{number:05}.parquet", snapshot_name(dir)?.to_string_lossy()))
}

/// Writes the rows of `files`, in order, into one Parquet file at `to` (one input file in
/// memory at a time).
fn merge(files: &[PathBuf], to: &Path) -> Result<(), IngestError> {
    let parquet_error = |path: &Path| {
        let path = path.to_owned();
        move |source| IngestError::Parquet { path, source }
    };
    let mut writer: Option<polars::io::parquet::write::BatchedWriter<BufWriter<File>>> = None;
    for file in files {
        let frame =
            ParquetReader::new(File::open(file).map_err(lake_io(file))?).finish().map_err(parquet_error(file))?;
        let batched = match &mut writer {
            Some(batched) => batched,
            None => writer.insert(parquet_writer(to)?.batched(frame.schema()).map_err(parquet_error(to))?),
        };
        batched.write_batch(&frame).map_err(parquet_error(to))?;
    }
    if let Some(batched) = writer {
        batched.finish().map_err(parquet_error(to))?;
    }
    Ok(())
}

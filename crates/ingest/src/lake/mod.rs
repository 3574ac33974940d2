//! The event lake: Hive-partitioned Parquet in immutable snapshots, switched by one symlink.
//!
//! ```text
//! <lake>/
//!   _crmkpi_lake.json                  marks the directory as a crmkpi lake (format version 2)
//!   _lock                              held (flock) by the one writer: ingest or compact
//!   _current -> _snapshots/000042      the committed state: replacing this link is the commit
//!   events  -> _current/events         what readers glob: events/month=YYYY-MM/*.parquet
//!   rejects -> _current/rejects        rejects/*.parquet
//!   _runs   -> _current/_runs          the ingest records, <seq>-<run_id>.json
//!   _snapshots/000042/                 one complete state of the lake (files hard-linked
//!     _readers                         from the previous state, plus what the run added);
//!     _runs/ events/ rejects/          `_readers` is flocked shared by every reader of it;
//!     _index/segment-*.bin             the accepted event ids (see [`crate::id_index`]),
//!     _index/filter.bin                their filter (see [`crate::seen_filter`]) and a stub
//!     _index/part-000.bin              that stops a crmkpi from before the one-file index
//! ```
//!
//! A writer builds the next snapshot beside the current one (hard links of every committed
//! file, plus its own files and record), fsyncs its files and directories, and commits by
//! renaming a new `_current` link over the old one: one atomic step. So every reader that
//! globs `events/**/*.parquet` or `rejects/**/*.parquet` (DuckDB, Spark, pyarrow, a shell)
//! sees exactly the committed runs, whatever moment a writer is killed at. crmkpi's own
//! readers hold the snapshot they started on (see [`Snapshot`]) until they finish; a writer
//! removes old snapshots only when no reader holds them.
//!
//! A rejected record is written once: its `reject_key` (a 128-bit hash of its file's content,
//! line, reason and text) is remembered, and a later run that rejects the same record again
//! (the same dump ingested twice, even from another path) counts it in its run record but does
//! not add it to the rejects again, so that summing the rejects counts each bad record once.
//!
//! A lake is initialised only in a directory that does not exist or is empty; any other
//! directory must already be a crmkpi lake, so a writer never puts files among a user's. A lake
//! of format 1 (real `events/`, `rejects/`, `_runs/` directories) is upgraded in place by the
//! next writer: readers see the same files throughout.

mod column_pages;
mod commit;
mod compact;
mod event_writer;
mod snapshot;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dedup::RejectIndex;
use crate::error::IngestError;

pub use commit::{REJECT_KEY, Reject, StagedRun, reject_key};
pub use compact::CompactReport;
pub use event_writer::lake_schema;
pub use snapshot::Snapshot;

/// The file that marks a directory as a crmkpi lake.
pub const LAKE_MARKER: &str = "_crmkpi_lake.json";
/// The lake format version written into the marker: 2 is the snapshot layout above.
pub const LAKE_FORMAT_VERSION: u32 = 2;
/// The link to the committed snapshot.
const CURRENT: &str = "_current";
/// The directory of snapshots.
const SNAPSHOTS: &str = "_snapshots";
/// The file of a snapshot that its readers hold a shared lock on.
const READERS: &str = "_readers";
/// What a snapshot holds that readers see, each also a link at the lake's top level.
const VISIBLE: [&str; 3] = ["events", "rejects", "_runs"];
/// Suffix of a link being put in place.
const LINK_SUFFIX: &str = ".crmkpi-link";

/// Per input file: records read, accepted, rejected by reason, and plain duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStats {
    /// The file as given on the command line.
    pub path: String,
    /// Records read (blank lines and the CSV header excluded).
    pub read: u64,
    /// Records accepted into the lake.
    pub accepted: u64,
    /// Plain duplicates dropped.
    pub duplicates: u64,
    /// Rejected records by reason.
    pub rejected: BTreeMap<String, u64>,
}

impl FileStats {
    /// Total rejected records.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The run's events were added to the lake.
    Committed,
    /// The reject ratio exceeded `max_reject_ratio`: only the rejects were kept.
    RejectRatioExceeded,
}

/// The ingest record of one run, stored in `_runs/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id.
    pub run_id: String,
    /// The crmkpi version that wrote it.
    pub crmkpi_version: String,
    /// Start of the run, RFC 3339 UTC.
    pub started_at: String,
    /// Commit time, RFC 3339 UTC.
    pub finished_at: String,
    /// How the run ended.
    pub status: RunStatus,
    /// Hash of the resolved configuration.
    pub config_hash: String,
    /// Per input file statistics, in path order.
    pub files: Vec<FileStats>,
    /// Rejected records of this run that an earlier run had already put into the lake's
    /// rejects, so they were not written again (counted in `files` all the same).
    #[serde(default)]
    pub known_rejects: u64,
    /// Event files the run added, relative to the lake (a later `compact` may have merged
    /// them into other files).
    pub event_files: Vec<String>,
    /// Reject files the run added, relative to the lake (as above).
    pub reject_files: Vec<String>,
}

/// An exclusive hold on a lake for writing; released when dropped or when the process dies.
#[derive(Debug)]
pub struct LakeLock {
    _file: File,
}

/// An event lake directory.
#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
}

fn lake_io(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::LakeIo { path: path.to_owned(), source }
}

fn marker_text() -> String {
    format!("{{\"written_by\": \"crmkpi\", \"lake_format_version\": {LAKE_FORMAT_VERSION}}}\n")
}

fn write_marker(path: &Path) -> Result<(), IngestError> {
    let mut file = File::create(path).map_err(lake_io(path))?;
    file.write_all(marker_text().as_bytes()).and_then(|()| file.sync_all()).map_err(lake_io(path))
}

impl Lake {
    /// The lake at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Lake {
        Lake { root: root.into() }
    }

    /// The lake's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn snapshots_dir(&self) -> PathBuf {
        self.root.join(SNAPSHOTS)
    }

    /// Takes the lake's write lock, creating the lake if its directory does not exist or is
    /// empty and upgrading a lake of an earlier format; fails at once when another writer
    /// holds it, and before writing anything when the directory holds files but is not a
    /// crmkpi lake.
    pub fn lock(&self) -> Result<LakeLock, IngestError> {
        self.refuse_foreign_directory()?;
        fs::create_dir_all(&self.root).map_err(lake_io(&self.root))?;
        // The marker first: a writer killed while creating the lake leaves a directory that is
        // recognised as this lake (and finished by the next writer), not a foreign one.
        let marker = self.root.join(LAKE_MARKER);
        if !marker.exists() {
            write_marker(&marker)?;
        }
        let path = self.root.join("_lock");
        let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(lake_io(&path))?;
        let lock = match file.try_lock() {
            Ok(()) => LakeLock { _file: file },
            Err(fs::TryLockError::WouldBlock) => {
                return Err(IngestError::LakeLocked { lake: self.root.clone(), lock: path });
            }
            Err(fs::TryLockError::Error(source)) => return Err(IngestError::LakeIo { path, source }),
        };
        self.upgrade(&lock)?;
        Ok(lock)
    }

    /// Whether the directory is a crmkpi lake (of any format).
    pub fn is_lake(&self) -> bool {
        [LAKE_MARKER, CURRENT, "_runs"].iter().any(|name| fs::symlink_metadata(self.root.join(name)).is_ok())
    }

    /// Refuses a directory that holds entries but is not a crmkpi lake.
    fn refuse_foreign_directory(&self) -> Result<(), IngestError> {
        if self.is_lake() {
            return Ok(());
        }
        let entries = crmkpi_schema::dir_entries::list(&self.root, |_| true).map_err(lake_io(&self.root))?;
        if entries.is_empty() {
            return Ok(());
        }
        Err(IngestError::NotALake { lake: self.root.clone(), entries: crmkpi_schema::dir_entries::describe(&entries) })
    }

    /// Brings a new or format-1 lake to the snapshot layout, and finishes an upgrade that a
    /// kill interrupted. Readers see the same files before, during and after.
    fn upgrade(&self, _lock: &LakeLock) -> Result<(), IngestError> {
        for name in VISIBLE {
            let half_placed = self.root.join(format!("{name}{LINK_SUFFIX}"));
            match fs::symlink_metadata(&half_placed) {
                Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(&half_placed).map_err(lake_io(&half_placed))?,
                Ok(_) => fs::remove_file(&half_placed).map_err(lake_io(&half_placed))?,
                Err(_) => {}
            }
        }
        if fs::symlink_metadata(self.root.join(CURRENT)).is_err() {
            // Only a new lake or one of format 1 is (re)built here; a snapshot lake that lost its
            // `_current` link is damaged, and nothing of it is removed.
            if fs::symlink_metadata(self.root.join("_runs")).is_ok_and(|metadata| metadata.file_type().is_symlink()) {
                return Err(IngestError::LakeIo {
                    path: self.root.join(CURRENT),
                    source: std::io::Error::other(
                        "the link to the committed snapshot is missing; restore it (ln -s _snapshots/<newest> _current)",
                    ),
                });
            }
            let snapshots = self.snapshots_dir();
            if snapshots.exists() {
                fs::remove_dir_all(&snapshots).map_err(lake_io(&snapshots))?;
            }
            let first = commit::new_snapshot_dir(self, 0)?;
            commit::link_format_one_files(self, &first)?;
            commit::sync_tree(&first)?;
            self.switch_current(&first)?;
        }
        for name in VISIBLE {
            self.place_top_level_link(name)?;
        }
        let staging = self.root.join("_staging");
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(lake_io(&staging))?;
        }
        let marker = self.root.join(LAKE_MARKER);
        if fs::read_to_string(&marker).ok().as_deref() != Some(marker_text().as_str()) {
            write_marker(&marker)?;
        }
        commit::sync_dir(&self.root)
    }

    /// Makes `<name>` a link to `_current/<name>`; a real directory of format 1 there is
    /// exchanged with the link in one step and then removed (its files are in the snapshot).
    fn place_top_level_link(&self, name: &str) -> Result<(), IngestError> {
        let path = self.root.join(name);
        let existing = fs::symlink_metadata(&path).ok();
        if existing.as_ref().is_some_and(|metadata| metadata.file_type().is_symlink()) {
            return Ok(());
        }
        let link = self.root.join(format!("{name}{LINK_SUFFIX}"));
        std::os::unix::fs::symlink(Path::new(CURRENT).join(name), &link).map_err(lake_io(&link))?;
        if existing.is_none() {
            return fs::rename(&link, &path).map_err(lake_io(&path));
        }
        rustix::fs::renameat_with(rustix::fs::CWD, &link, rustix::fs::CWD, &path, rustix::fs::RenameFlags::EXCHANGE)
            .map_err(|errno| IngestError::LakeIo { path: path.clone(), source: errno.into() })?;
        fs::remove_dir_all(&link).map_err(lake_io(&link))
    }

    /// The commit: points `_current` at `snapshot` in one rename, then makes it durable.
    fn switch_current(&self, snapshot: &Path) -> Result<(), IngestError> {
        let name = commit::snapshot_name(snapshot)?;
        let link = self.root.join(format!("{CURRENT}{LINK_SUFFIX}"));
        if fs::symlink_metadata(&link).is_ok() {
            fs::remove_file(&link).map_err(lake_io(&link))?;
        }
        std::os::unix::fs::symlink(Path::new(SNAPSHOTS).join(name), &link).map_err(lake_io(&link))?;
        commit::sync_dir(&self.snapshots_dir())?;
        // Every commit passes here: a run's, a compaction's, and the first one of a new lake.
        crmkpi_schema::pause::pause_at("switch:link_made");
        let current = self.root.join(CURRENT);
        fs::rename(&link, &current).map_err(lake_io(&current))?;
        commit::sync_dir(&self.root)
    }

    /// The committed snapshot, held for reading until the returned value is dropped; `None`
    /// when the directory is not a lake (yet).
    pub fn snapshot(&self) -> Result<Option<Snapshot>, IngestError> {
        Snapshot::open(self)
    }

    /// The committed run records, oldest first (none when there is no lake).
    pub fn runs(&self) -> Result<Vec<RunRecord>, IngestError> {
        self.snapshot()?.map_or(Ok(Vec::new()), |snapshot| snapshot.runs())
    }

    /// The committed event files of the current snapshot. A caller that reads them while a
    /// writer may commit should hold [`Lake::snapshot`] instead.
    pub fn event_files(&self) -> Result<Vec<PathBuf>, IngestError> {
        self.snapshot()?.map_or(Ok(Vec::new()), |snapshot| snapshot.event_files())
    }

    /// The committed reject files of the current snapshot (see [`Lake::event_files`]).
    pub fn reject_files(&self) -> Result<Vec<PathBuf>, IngestError> {
        self.snapshot()?.map_or(Ok(Vec::new()), |snapshot| snapshot.reject_files())
    }

    /// Loads the key of every reject in the lake, one file at a time. Reject files written
    /// before keys were stored have none: a rerun of their dumps writes those rejects once
    /// more, with keys.
    pub fn load_reject_index(&self, index: &mut RejectIndex) -> Result<(), IngestError> {
        for path in self.reject_files()? {
            let parquet_error = |source| IngestError::Parquet { path: path.clone(), source };
            let file = File::open(&path).map_err(lake_io(&path))?;
            let mut reader = ParquetReader::new(file);
            if !reader.schema().map_err(parquet_error)?.contains(REJECT_KEY) {
                continue;
            }
            let frame = reader.with_columns(Some(vec![REJECT_KEY.to_owned()])).finish().map_err(parquet_error)?;
            let keys = frame.column(REJECT_KEY).and_then(|column| column.binary().cloned()).map_err(parquet_error)?;
            for key in keys.iter().flatten() {
                let bytes = <[u8; 16]>::try_from(key).map_err(|_| IngestError::Parquet {
                    path: path.clone(),
                    source: PolarsError::ComputeError(format!("a {REJECT_KEY} of {} bytes, not 16", key.len()).into()),
                })?;
                index.insert(u128::from_be_bytes(bytes));
            }
        }
        Ok(())
    }

    /// Removes what killed writers left and the snapshots no reader holds any more. Call only
    /// while holding the lock.
    pub fn remove_leftovers(&self, _lock: &LakeLock) -> Result<(), IngestError> {
        commit::remove_unused_snapshots(self)
    }

    /// Starts writing a run's files into the next snapshot, invisible until the commit.
    pub fn stage(&self, run_id: &str, _lock: &LakeLock) -> Result<StagedRun, IngestError> {
        StagedRun::new(self, run_id)
    }

    /// Merges each partition's small files into large ones in one atomic commit (see
    /// [`compact`](compact/index.html)).
    pub fn compact(&self, _lock: &LakeLock) -> Result<CompactReport, IngestError> {
        compact::compact(self)
    }
}

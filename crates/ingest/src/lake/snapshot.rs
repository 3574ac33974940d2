//! The read side of the lake: one committed snapshot, held (a shared flock on its `_readers`)
//! so that no writer removes its files while a reader such as `compute` is still scanning
//! them. Commits and compactions that happen meanwhile build new snapshots beside it.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use super::{CURRENT, Lake, READERS, RunRecord, SNAPSHOTS, lake_io};
use crate::error::IngestError;

/// How often opening retries when writers keep replacing the snapshot it read.
const OPEN_ATTEMPTS: usize = 100;

/// One committed state of the lake, readable until dropped.
#[derive(Debug)]
pub struct Snapshot {
    dir: PathBuf,
    _readers: File,
}

impl Snapshot {
    /// Opens and holds the current snapshot; `None` when the directory is not a lake. A lake
    /// of format 1 must be upgraded by a writer first.
    pub(super) fn open(lake: &Lake) -> Result<Option<Snapshot>, IngestError> {
        let current = lake.root.join(CURRENT);
        for _ in 0..OPEN_ATTEMPTS {
            let target = match fs::read_link(&current) {
                Ok(target) => target,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    if lake.root.join("_runs").is_dir() {
                        return Err(IngestError::LakeNeedsUpgrade { lake: lake.root.clone() });
                    }
                    return Ok(None);
                }
                Err(source) => return Err(IngestError::LakeIo { path: current, source }),
            };
            let dir = lake.root.join(&target);
            let readers = dir.join(READERS);
            let file = match File::open(&readers) {
                Ok(file) => file,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(IngestError::LakeIo { path: readers, source }),
            };
            file.lock_shared().map_err(lake_io(&readers))?;
            // A writer renames a snapshot away before removing it: if it is still in place
            // once held, it stays until this reader lets go.
            if readers.exists() && target.starts_with(SNAPSHOTS) {
                return Ok(Some(Snapshot { dir, _readers: file }));
            }
        }
        Err(IngestError::LakeIo {
            path: current,
            source: std::io::Error::other("the committed snapshot kept changing while it was being opened"),
        })
    }

    /// The snapshot's directory (`<lake>/_snapshots/<n>`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its run records, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, IngestError> {
        let dir = self.dir.join("_runs");
        list_files(&dir, "json")?
            .iter()
            .map(|path| {
                let text = fs::read_to_string(path).map_err(lake_io(path))?;
                serde_json::from_str(&text)
                    .map_err(|error| IngestError::CorruptRunRecord { path: path.clone(), message: error.to_string() })
            })
            .collect()
    }

    /// Its event files, by partition and name (commit order within a partition).
    pub fn event_files(&self) -> Result<Vec<PathBuf>, IngestError> {
        list_files(&self.dir.join("events"), "parquet")
    }

    /// Its reject files, by name (commit order).
    pub fn reject_files(&self) -> Result<Vec<PathBuf>, IngestError> {
        list_files(&self.dir.join("rejects"), "parquet")
    }
}

/// Every file with `extension` under `dir`, recursively, sorted by path; none when `dir` is
/// missing.
pub(super) fn list_files(dir: &Path, extension: &str) -> Result<Vec<PathBuf>, IngestError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let entries = match fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(IngestError::LakeIo { path: current, source }),
        };
        for entry in entries {
            let entry = entry.map_err(lake_io(&current))?;
            let path = entry.path();
            if entry.file_type().map_err(lake_io(&path))?.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == extension) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

//! Which directories crmkpi may replace with its outputs.
//!
//! `compute` swaps a staging directory with `--out` and deletes the old contents, so it must
//! never do that to a directory holding anything crmkpi did not write. `--out` is accepted when
//! it does not exist, is an empty directory, or is a crmkpi output directory: one whose
//! `manifest.json` says `"written_by": "crmkpi"` (manifests from before that field are
//! recognised by their `crmkpi_version`) and whose every entry is crmkpi's own (the manifest,
//! the table files it lists, `report.html`, and temporary files named `.crmkpi-*`). `--out`
//! may neither be, contain nor lie inside the lake. Paths are compared after resolving `.`,
//! `..` and symlinks.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

/// The value of the manifest's `written_by` field.
pub const WRITTEN_BY: &str = "crmkpi";
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The report's file name.
pub const REPORT_FILE: &str = "report.html";
/// Prefix of the temporary files crmkpi writes inside an output directory.
pub const TEMPORARY_PREFIX: &str = ".crmkpi-";

/// Why `--out` cannot be used; nothing was written or removed.
#[derive(Debug, thiserror::Error)]
pub enum OutDirError {
    /// `--out` exists and is not a directory.
    #[error("--out {path} is a file, not a directory; choose a new or empty directory for the outputs")]
    NotADirectory {
        /// The path as given.
        path: PathBuf,
    },
    /// `--out` holds entries that crmkpi did not write.
    #[error(
        "--out {path} holds {entries}; crmkpi replaces its output directory as a whole and would delete them. \
         Choose a new or empty directory for the outputs"
    )]
    Foreign {
        /// The path as given.
        path: PathBuf,
        /// The entries, as [`crmkpi_schema::dir_entries::describe`] names them.
        entries: String,
    },
    /// `--out` and the lake overlap.
    #[error(
        "--out {out} {relation} the lake {lake}; replacing it would delete the lake. Choose an output directory outside the lake"
    )]
    OverlapsLake {
        /// `--out` as given.
        out: PathBuf,
        /// The lake as given.
        lake: PathBuf,
        /// "is", "lies inside" or "contains".
        relation: &'static str,
    },
    /// A path could not be inspected.
    #[error("cannot inspect {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The part of a manifest that says who wrote it and which files it lists.
#[derive(Debug, Deserialize)]
struct ManifestOwnership {
    written_by: Option<String>,
    crmkpi_version: Option<String>,
    #[serde(default)]
    tables: Vec<ManifestTable>,
}

#[derive(Debug, Deserialize)]
struct ManifestTable {
    #[serde(default)]
    files: Vec<ManifestFile>,
}

#[derive(Debug, Deserialize)]
struct ManifestFile {
    name: String,
}

/// `path` made absolute with `.`, `..` and symlinks resolved; the part that does not exist yet
/// is appended to its nearest existing ancestor.
pub fn resolve(path: &Path) -> Result<PathBuf, OutDirError> {
    let io = |source| OutDirError::Io { path: path.to_owned(), source };
    let absolute = std::path::absolute(path).map_err(io)?;
    let mut existing = absolute.as_path();
    let mut missing = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(resolved) => {
                return Ok(missing.iter().rev().fold(resolved, |mut resolved, component: &Component| {
                    match component {
                        Component::ParentDir => {
                            resolved.pop();
                        }
                        Component::CurDir => {}
                        other => resolved.push(other),
                    }
                    resolved
                }));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let (Some(last), Some(parent)) = (existing.components().next_back(), existing.parent()) else {
                    return Err(io(error));
                };
                missing.push(last);
                existing = parent;
            }
            Err(error) => return Err(io(error)),
        }
    }
}

/// Refuses, before any work starts, an `out` that overlaps the lake or holds entries crmkpi did
/// not write.
pub fn check_usable(out: &Path, lake: &Path) -> Result<(), OutDirError> {
    check_apart_from_lake(out, lake).and_then(|()| check_replaceable(out))
}

/// Refuses `out` when it and the lake are the same directory or one contains the other.
pub fn check_apart_from_lake(out: &Path, lake: &Path) -> Result<(), OutDirError> {
    let resolved_out = resolve(out)?;
    let resolved_lake = resolve(lake)?;
    let relation = if resolved_out == resolved_lake {
        Some("is")
    } else if resolved_out.starts_with(&resolved_lake) {
        Some("lies inside")
    } else if resolved_lake.starts_with(&resolved_out) {
        Some("contains")
    } else {
        None
    };
    match relation {
        Some(relation) => Err(OutDirError::OverlapsLake { out: out.to_owned(), lake: lake.to_owned(), relation }),
        None => Ok(()),
    }
}

/// Refuses `out` unless it does not exist, is empty, or is a crmkpi output directory holding
/// only crmkpi's files (in the part directories of a Spark job's per-entity tables too).
pub fn check_replaceable(out: &Path) -> Result<(), OutDirError> {
    let io = |source| OutDirError::Io { path: out.to_owned(), source };
    let metadata = match fs::metadata(out) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(io(error)),
    };
    if !metadata.is_dir() {
        return Err(OutDirError::NotADirectory { path: out.to_owned() });
    }
    let owned = owned_entries(out)?;
    // A file listed as `customers.parquet/part-00003.parquet` makes its directory crmkpi's,
    // and that directory must hold only listed files.
    let mut part_dirs: BTreeSet<&str> = BTreeSet::new();
    let top: BTreeSet<&str> = owned
        .iter()
        .map(|name| match name.split_once('/') {
            Some((dir, _)) => {
                part_dirs.insert(dir);
                dir
            }
            None => name.as_str(),
        })
        .collect();
    let mut foreign =
        crmkpi_schema::dir_entries::list(out, |name| !top.contains(name) && !name.starts_with(TEMPORARY_PREFIX))
            .map_err(io)?;
    for dir in part_dirs {
        let listed = |name: &str| owned.contains(&format!("{dir}/{name}"));
        let inside = crmkpi_schema::dir_entries::list(&out.join(dir), |name| {
            !listed(name) && !name.starts_with(TEMPORARY_PREFIX)
        })
        .map_err(|source| OutDirError::Io { path: out.join(dir), source })?;
        foreign.extend(inside.into_iter().map(|name| format!("{dir}/{name}")));
    }
    if foreign.is_empty() {
        return Ok(());
    }
    Err(OutDirError::Foreign { path: out.to_owned(), entries: crmkpi_schema::dir_entries::describe(&foreign) })
}

/// Whether `dir` holds a manifest written by crmkpi.
pub fn is_output_dir(dir: &Path) -> Result<bool, OutDirError> {
    Ok(!owned_entries(dir)?.is_empty())
}

/// The entry names crmkpi wrote in `dir` according to its manifest: the manifest, the files it
/// lists and the report. Empty when `dir` has no crmkpi manifest.
fn owned_entries(dir: &Path) -> Result<BTreeSet<String>, OutDirError> {
    let path = dir.join(MANIFEST_FILE);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(source) => return Err(OutDirError::Io { path, source }),
    };
    let Ok(manifest) = serde_json::from_slice::<ManifestOwnership>(&text) else { return Ok(BTreeSet::new()) };
    let written_by_crmkpi = manifest.written_by.as_deref() == Some(WRITTEN_BY)
        || (manifest.written_by.is_none() && manifest.crmkpi_version.is_some());
    if !written_by_crmkpi {
        return Ok(BTreeSet::new());
    }
    let mut owned: BTreeSet<String> =
        manifest.tables.into_iter().flat_map(|table| table.files).map(|file| file.name).collect();
    owned.insert(MANIFEST_FILE.to_owned());
    owned.insert(REPORT_FILE.to_owned());
    Ok(owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_handles_missing_parts_dots_and_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        fs::create_dir(root.join("real")).expect("dir");
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).expect("symlink");
        assert_eq!(resolve(&root.join("link/new/../other")).expect("resolve"), root.join("real/other"));
        assert_eq!(resolve(&root.join("real/./x/y")).expect("resolve"), root.join("real/x/y"));
    }

    #[test]
    fn lake_and_out_must_be_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = dir.path().join("data/lake");
        fs::create_dir_all(&lake).expect("lake");
        let relation = |out: &Path| match check_apart_from_lake(out, &lake) {
            Err(OutDirError::OverlapsLake { relation, .. }) => Some(relation),
            Ok(()) => None,
            Err(other) => panic!("unexpected {other}"),
        };
        assert_eq!(relation(&dir.path().join("data")), Some("contains"));
        assert_eq!(relation(&dir.path().join("data/lake/../lake")), Some("is"));
        assert_eq!(relation(&dir.path().join("data/lake/out")), Some("lies inside"));
        assert_eq!(relation(&dir.path().join("data/out")), None);
        assert_eq!(relation(&dir.path().join("data/lakeside")), None);
    }

    #[test]
    fn foreign_entries_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("notes.txt"), "mine").expect("write");
        fs::create_dir(dir.path().join("precious")).expect("dir");
        let error = check_replaceable(dir.path()).expect_err("refused");
        let message = error.to_string();
        assert!(message.contains("holds 2 entries that crmkpi did not write: notes.txt, precious/"), "{message}");
    }

    #[test]
    fn a_crmkpi_output_directory_is_replaceable_until_it_holds_a_foreign_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = r#"{"written_by":"crmkpi","tables":[{"files":[{"name":"t.csv"},{"name":"t.parquet"}]}]}"#;
        fs::write(dir.path().join(MANIFEST_FILE), manifest).expect("write");
        for name in ["t.csv", "t.parquet", "report.html", ".crmkpi-report.tmp"] {
            fs::write(dir.path().join(name), "x").expect("write");
        }
        check_replaceable(dir.path()).expect("replaceable");
        assert!(is_output_dir(dir.path()).expect("inspect"));
        fs::write(dir.path().join("u.csv"), "x").expect("write");
        assert!(matches!(check_replaceable(dir.path()), Err(OutDirError::Foreign { .. })));
    }

    #[test]
    fn the_part_directories_of_a_spark_run_are_replaceable_while_they_hold_only_listed_parts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = r#"{"written_by":"crmkpi","tables":[{"files":[{"name":"c.parquet/part-00000.parquet"},
            {"name":"c.parquet/part-00001.parquet"},{"name":"c.csv/part-00000.csv"},{"name":"k.csv"}]}]}"#;
        fs::write(dir.path().join(MANIFEST_FILE), manifest).expect("write");
        for dir_name in ["c.parquet", "c.csv"] {
            fs::create_dir(dir.path().join(dir_name)).expect("dir");
        }
        for name in ["c.parquet/part-00000.parquet", "c.parquet/part-00001.parquet", "c.csv/part-00000.csv", "k.csv"] {
            fs::write(dir.path().join(name), "x").expect("write");
        }
        fs::write(dir.path().join("c.parquet/.crmkpi-part.tmp"), "x").expect("write");
        check_replaceable(dir.path()).expect("replaceable");
        fs::write(dir.path().join("c.csv/mine.csv"), "x").expect("write");
        let error = check_replaceable(dir.path()).expect_err("refused");
        assert!(error.to_string().contains("1 entry that crmkpi did not write: c.csv/mine.csv"), "{error}");
    }

    #[test]
    fn a_manifest_of_someone_else_does_not_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(MANIFEST_FILE), r#"{"written_by":"other","tables":[]}"#).expect("write");
        assert!(!is_output_dir(dir.path()).expect("inspect"));
        assert!(matches!(check_replaceable(dir.path()), Err(OutDirError::Foreign { .. })));
    }
}

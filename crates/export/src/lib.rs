//! crmkpi's export stage: writes every computed table as Parquet (zstd, column statistics,
//! `TIMESTAMP(MICROS, UTC)`, `DATE`) and CSV (header, RFC 4180 quoting, ISO 8601 `Z`
//! timestamps, `YYYY-MM-DD` dates, empty nulls), plus `manifest.json`, into `--out`
//! atomically: everything is written into a sibling staging directory, which then replaces
//! `--out` in one `renameat2(RENAME_EXCHANGE)` (a plain rename when `--out` does not exist).
//! A failure or kill at any moment leaves the previous contents of `--out` as they were.
//! `--out` is replaced only when crmkpi owns it (see [`out_dir`]). The HTML [`report`] is
//! rendered inside the staging directory, so it arrives with the tables it shows.
//!
//! [`compute_run`] is the whole of a compute run (lake snapshot, tables, manifest facts) that
//! the binary and the Python package share.

pub mod bucket_spill;
pub mod compute_run;
pub mod distributed;
pub mod manifest;
pub mod out_dir;
pub mod report;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use sha2::{Digest, Sha256};

pub use manifest::{ColumnInfo, FileInfo, Manifest, ManifestInput, TableInfo};
pub use out_dir::OutDirError;
pub use report::{LatestIngest, ReportChoice, ReportError};

/// Why writing the outputs failed; `--out` is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file or directory could not be created, written, read back or renamed.
    #[error("output I/O on {path}: {source}; the previous contents of the output directory are unchanged")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// polars failed to write a table.
    #[error("writing table `{table}` to {path}: {source}; the previous contents of the output directory are unchanged")]
    Write {
        /// The table.
        table: String,
        /// The file.
        path: PathBuf,
        /// polars' error.
        source: PolarsError,
    },
    /// `--out` holds what crmkpi did not write, or overlaps the lake.
    #[error(transparent)]
    OutDir(#[from] OutDirError),
    /// The report could not be rendered.
    #[error("{0}; the previous contents of the output directory are unchanged")]
    Report(#[from] ReportError),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io { path: path.to_owned(), source }
}

/// A table to write: its name and rows (already sorted by its key columns).
#[derive(Debug, Clone)]
pub struct OutputTable {
    /// Table name; the files are `<name>.parquet` and `<name>.csv`.
    pub name: String,
    /// The rows.
    pub frame: DataFrame,
}

/// Writes the tables, the manifest and (unless skipped) `report.html` into `out`, replacing its
/// previous contents atomically. Returns the manifest written.
/// Refuses (before anything is written) an `out` that holds files crmkpi did not write.
pub fn write_outputs(
    out: &Path,
    tables: &[OutputTable],
    input: ManifestInput,
    report: ReportChoice,
) -> Result<Manifest, ExportError> {
    let staging = Staging::create(out, &input.run_id)?;
    let infos = tables.iter().map(|table| write_table(staging.dir(), table)).collect::<Result<Vec<_>, _>>()?;
    staging.commit(input, infos, report)
}

/// An output directory being written: a staging directory beside `out` that takes its place in
/// one step when committed. Tables are written into it whole ([`write_table`]) or in parts by
/// other processes ([`write_table_part`], the tasks of a Spark job, when `out` is on storage
/// they share).
#[derive(Debug)]
pub struct Staging {
    out: PathBuf,
    dir: PathBuf,
}

impl Staging {
    /// Checks that `out` may be replaced and creates the staging directory of run `run_id`
    /// (removing those killed runs left).
    pub fn create(out: &Path, run_id: &str) -> Result<Staging, ExportError> {
        out_dir::check_replaceable(out)?;
        let out = out_dir::resolve(out)?;
        let parent = out.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(io_error(parent))?;
        let name = out.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| "out".to_owned());
        remove_stale_staging(parent, &name)?;
        let dir = parent.join(format!(".{name}.staging-{run_id}"));
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        Ok(Staging { out, dir })
    }

    /// The staging directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the part directories of table `table` (see [`part_dirs`]), which other
    /// processes write its parts into.
    pub fn create_part_dirs(&self, table: &str) -> Result<(), ExportError> {
        for name in part_dirs(table) {
            let path = self.dir.join(name);
            fs::create_dir(&path).map_err(io_error(&path))?;
        }
        Ok(())
    }

    /// Checks a table written in parts by other processes: each part file it lists is in its
    /// directory with its size, and the directories hold nothing else (what a killed attempt
    /// left is removed).
    pub fn check_parts(&self, table: &TableInfo) -> Result<(), ExportError> {
        let listed: BTreeSet<&str> = table.files.iter().map(|file| file.name.as_str()).collect();
        for file in &table.files {
            let path = self.dir.join(&file.name);
            let bytes = fs::metadata(&path).map_err(io_error(&path))?.len();
            if bytes != file.bytes {
                return Err(ExportError::Io {
                    path,
                    source: std::io::Error::other(format!("{bytes} bytes, the task that wrote it said {}", file.bytes)),
                });
            }
        }
        for dir in part_dirs(&table.name) {
            let path = self.dir.join(&dir);
            let unlisted =
                crmkpi_schema::dir_entries::list(&path, |name| !listed.contains(format!("{dir}/{name}").as_str()))
                    .map_err(io_error(&path))?;
            for name in unlisted {
                let entry = path.join(&name);
                if !name.starts_with(out_dir::TEMPORARY_PREFIX) {
                    let source = std::io::Error::other("a file no task reported for this table");
                    return Err(ExportError::Io { path: entry, source });
                }
                fs::remove_file(&entry).map_err(io_error(&entry))?;
            }
        }
        Ok(())
    }

    /// Writes the manifest of the tables written and (unless skipped) `report.html`, then puts
    /// the staging directory in the place of `out`. Returns the manifest written.
    pub fn commit(
        self,
        input: ManifestInput,
        tables: Vec<TableInfo>,
        report: ReportChoice,
    ) -> Result<Manifest, ExportError> {
        let Staging { out, dir: staging } = self;
        let manifest = Manifest::new(input, tables);
        let manifest_path = staging.join("manifest.json");
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|error| ExportError::Io { path: manifest_path.clone(), source: std::io::Error::other(error) })?;
        fs::write(&manifest_path, json).map_err(io_error(&manifest_path))?;
        if let ReportChoice::Render(ingest) = report {
            report::write_report(&staging, ingest)?;
        }
        sync_dir(&staging)?;
        crmkpi_schema::pause::pause_at("export:before_swap");
        // Checked again: a file someone put into `out` while the tables were computed is kept.
        if let Err(error) = out_dir::check_replaceable(&out) {
            fs::remove_dir_all(&staging).map_err(io_error(&staging))?;
            return Err(error.into());
        }
        replace_dir(&staging, &out)?;
        Ok(manifest)
    }
}

/// Removes staging directories that killed runs left next to `out`.
fn remove_stale_staging(parent: &Path, name: &str) -> Result<(), ExportError> {
    let prefix = format!(".{name}.staging-");
    for entry in fs::read_dir(parent).map_err(io_error(parent))? {
        let entry = entry.map_err(io_error(parent))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(io_error(&path))?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), ExportError> {
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        File::open(&path).and_then(|file| file.sync_all()).map_err(io_error(&path))?;
    }
    Ok(())
}

/// Puts `staging` in the place of `out` in one atomic step, then removes the old contents.
fn replace_dir(staging: &Path, out: &Path) -> Result<(), ExportError> {
    if !out.exists() {
        return fs::rename(staging, out).map_err(io_error(out));
    }
    rustix::fs::renameat_with(rustix::fs::CWD, staging, rustix::fs::CWD, out, rustix::fs::RenameFlags::EXCHANGE)
        .map_err(|errno| ExportError::Io { path: out.to_owned(), source: errno.into() })?;
    // The new outputs are in place: old contents that cannot be removed (a straggling Spark
    // task still writing into them) are left for the next run, which removes stale staging
    // directories.
    if let Err(error) = fs::remove_dir_all(staging) {
        tracing::warn!(path = %staging.display(), %error, "the previous outputs could not be removed");
    }
    Ok(())
}

/// Writes a table's Parquet and CSV files into `dir` (`<name>.parquet`, `<name>.csv`).
pub fn write_table(dir: &Path, table: &OutputTable) -> Result<TableInfo, ExportError> {
    let (parquet, csv) = write_files(dir, table, &format!("{}.parquet", table.name), &format!("{}.csv", table.name))?;
    Ok(TableInfo {
        name: table.name.clone(),
        rows: table.frame.height() as u64,
        columns: columns_of(table.frame.schema()),
        files: vec![parquet, csv],
    })
}

/// One part of a table written as part files (a Spark task's rows of a per-entity table).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TablePart {
    /// The part's rows.
    pub rows: u64,
    /// Its Parquet and CSV files, named inside the output directory.
    pub files: Vec<FileInfo>,
}

/// The directories of table `table`'s part files in an output directory: `<table>.parquet`
/// and `<table>.csv`.
pub fn part_dirs(table: &str) -> [String; 2] {
    [format!("{table}.parquet"), format!("{table}.csv")]
}

/// Writes part `part` of a table into `dir`: `<name>.parquet/part-<part>.parquet` and
/// `<name>.csv/part-<part>.csv` (each with the table's header; the directories, see
/// [`part_dirs`], must exist), under temporary names renamed into place, so that a retried or
/// speculative attempt replaces a part whole.
pub fn write_table_part(dir: &Path, table: &OutputTable, part: u32) -> Result<TablePart, ExportError> {
    let [parquet_dir, csv_dir] = part_dirs(&table.name);
    let (parquet, csv) = write_files(
        dir,
        table,
        &format!("{parquet_dir}/part-{part:05}.parquet"),
        &format!("{csv_dir}/part-{part:05}.csv"),
    )?;
    Ok(TablePart { rows: table.frame.height() as u64, files: vec![parquet, csv] })
}

/// The manifest entry of a table written in parts: its rows, and its Parquet then CSV part
/// files in part order.
pub fn table_of_parts(name: &str, schema: &Schema, parts: &[TablePart]) -> TableInfo {
    let files = |extension: &str| {
        let mut files: Vec<FileInfo> = parts
            .iter()
            .flat_map(|part| part.files.iter().filter(|file| file.name.ends_with(extension)).cloned())
            .collect();
        files.sort_by(|u, v| u.name.cmp(&v.name));
        files
    };
    TableInfo {
        name: name.to_owned(),
        rows: parts.iter().map(|part| part.rows).sum(),
        columns: columns_of(schema),
        files: files(".parquet").into_iter().chain(files(".csv")).collect(),
    }
}

fn columns_of(schema: &Schema) -> Vec<ColumnInfo> {
    schema.iter().map(|(name, dtype)| ColumnInfo { name: name.to_string(), r#type: type_name(dtype) }).collect()
}

/// Writes a table's rows as the Parquet file `parquet` and the CSV file `csv` (names inside
/// `dir`), each under a temporary name renamed into place.
fn write_files(dir: &Path, table: &OutputTable, parquet: &str, csv: &str) -> Result<(FileInfo, FileInfo), ExportError> {
    let write_error = |path: &Path| {
        let table = table.name.clone();
        let path = path.to_owned();
        move |source| ExportError::Write { table, path, source }
    };
    // The two files are written and hashed side by side: neither writer keeps both cores busy.
    let (parquet, csv) = rayon::join(
        || {
            write_file(dir, parquet, |file| {
                ParquetWriter::new(file)
                    .with_compression(ParquetCompression::Zstd(None))
                    .with_statistics(StatisticsOptions::full())
                    .finish(&mut table.frame.clone())
                    .map(|_| ())
                    .map_err(write_error(&dir.join(parquet)))
            })
        },
        || {
            write_file(dir, csv, |file| {
                CsvWriter::new(file)
                    .include_header(true)
                    .with_datetime_format(Some("%Y-%m-%dT%H:%M:%S%.fZ".into()))
                    .with_date_format(Some("%Y-%m-%d".into()))
                    .with_null_value("".into())
                    .with_quote_style(QuoteStyle::Necessary)
                    .finish(&mut table.frame.clone())
                    .map_err(write_error(&dir.join(csv)))
            })
        },
    );
    Ok((parquet?, csv?))
}

/// Writes the file `name` (inside `dir`, whose subdirectory it names must exist) with `write`,
/// under a temporary name renamed into place; returns its name, size and hash. The file is
/// readable as one `File::create` makes (0666 less the umask).
fn write_file(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut File) -> Result<(), ExportError>,
) -> Result<FileInfo, ExportError> {
    let path = dir.join(name);
    let parent = path.parent().unwrap_or(dir);
    let mut partial = tempfile::Builder::new()
        .prefix(out_dir::TEMPORARY_PREFIX)
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(parent)
        .map_err(io_error(parent))?;
    write(partial.as_file_mut())?;
    let mut info = file_info(partial.path())?;
    partial.persist(&path).map_err(|error| ExportError::Io { path: path.clone(), source: error.error })?;
    info.name = name.to_owned();
    Ok(info)
}

fn file_info(path: &Path) -> Result<FileInfo, ExportError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let read = file.read(&mut buffer).map_err(io_error(path))?;
        if read == 0 {
            break;
        }
        bytes += read as u64;
        hasher.update(&buffer[..read]);
    }
    file.sync_all().map_err(io_error(path))?;
    Ok(FileInfo {
        name: path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default(),
        bytes,
        sha256: hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect(),
    })
}

/// The spec's type name of a column (outputs.md: `date`, `ts`, `str`, `i64`, `f64`, `bool`).
pub fn type_name(dtype: &DataType) -> String {
    match dtype {
        DataType::Date => "date".to_owned(),
        DataType::Datetime(_, _) => "ts".to_owned(),
        DataType::String => "str".to_owned(),
        DataType::Int64 => "i64".to_owned(),
        DataType::Float64 => "f64".to_owned(),
        DataType::Boolean => "bool".to_owned(),
        other => other.to_string(),
    }
}

//! Input discovery and decoding: an input argument is a file, a directory (read recursively,
//! files sorted by path, other extensions skipped) or a glob; the format (NDJSON or CSV) and
//! compression (none, gzip, zstd) are taken from the file name.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::IngestError;

/// The record format of a dump file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (`.ndjson`, `.jsonl`, `.json`).
    Ndjson,
    /// CSV with a header row (`.csv`).
    Csv,
}

/// The compression of a dump file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain text.
    None,
    /// gzip (`.gz`), possibly several members.
    Gzip,
    /// Zstandard (`.zst`), possibly several frames.
    Zstd,
}

/// One dump file to read: its path as the user named it, its format and compression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpFile {
    /// The path as given on the command line (joined below a given directory).
    pub path: PathBuf,
    /// Record format.
    pub format: Format,
    /// Compression.
    pub compression: Compression,
}

impl DumpFile {
    /// The path as text, as reported in rejects and run records.
    pub fn display_path(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

/// Format and compression from a file name, or `None` when it is not a dump.
pub fn classify(path: &Path) -> Option<(Format, Compression)> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let (stem, compression) = if let Some(stem) = name.strip_suffix(".gz") {
        (stem, Compression::Gzip)
    } else if let Some(stem) = name.strip_suffix(".zst") {
        (stem, Compression::Zstd)
    } else {
        (name.as_str(), Compression::None)
    };
    let format = if [".ndjson", ".jsonl", ".json"].iter().any(|ext| stem.ends_with(ext)) {
        Format::Ndjson
    } else if stem.ends_with(".csv") {
        Format::Csv
    } else {
        return None;
    };
    Some((format, compression))
}

/// Expands input arguments into dump files in path order (the string order of the full path),
/// each file once.
pub fn expand_inputs(inputs: &[String]) -> Result<Vec<DumpFile>, IngestError> {
    let mut files = Vec::new();
    for input in inputs {
        let path = Path::new(input);
        if path.is_dir() {
            collect_dir(path, &mut files)?;
        } else if path.exists() {
            let (format, compression) =
                classify(path).ok_or_else(|| IngestError::UnknownFormat { path: input.clone() })?;
            files.push(DumpFile { path: path.to_owned(), format, compression });
        } else if input.contains(['*', '?', '[']) {
            expand_glob(input, &mut files)?;
        } else {
            return Err(IngestError::NoSuchInput { input: input.clone() });
        }
    }
    files.sort_by(|left, right| left.path.as_os_str().cmp(right.path.as_os_str()));
    files.dedup_by(|left, right| left.path == right.path);
    Ok(files)
}

fn expand_glob(pattern: &str, files: &mut Vec<DumpFile>) -> Result<(), IngestError> {
    let paths = glob::glob(pattern)
        .map_err(|error| IngestError::BadGlob { input: pattern.to_owned(), message: error.to_string() })?;
    let before = files.len();
    for entry in paths {
        let path = entry.map_err(|error| IngestError::Read {
            path: error.path().to_string_lossy().into_owned(),
            line: 0,
            source: io::Error::other(error.to_string()),
        })?;
        if path.is_dir() {
            collect_dir(&path, files)?;
        } else if let Some((format, compression)) = classify(&path) {
            files.push(DumpFile { path, format, compression });
        }
    }
    if files.len() == before {
        return Err(IngestError::NoSuchInput { input: pattern.to_owned() });
    }
    Ok(())
}

fn collect_dir(dir: &Path, files: &mut Vec<DumpFile>) -> Result<(), IngestError> {
    let read_error = |source| IngestError::Read { path: dir.to_string_lossy().into_owned(), line: 0, source };
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.is_dir() {
            collect_dir(&path, files)?;
        } else if let Some((format, compression)) = classify(&path) {
            files.push(DumpFile { path, format, compression });
        }
    }
    Ok(())
}

/// The identity of a dump file's content: a 128-bit hash of its bytes as stored. The same dump
/// read from another path has the same identity; two different files never share one.
pub fn content_identity(file: &DumpFile) -> Result<u128, IngestError> {
    let read_error = |source| IngestError::Read { path: file.display_path(), line: 0, source };
    let mut raw = File::open(&file.path).map_err(read_error)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match raw.read(&mut buffer) {
            Ok(0) => return Ok(hasher.digest128()),
            Ok(read) => hasher.update(&buffer[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(read_error(error)),
        }
    }
}

/// Counts the bytes read from the underlying (compressed) file, for progress reporting.
#[derive(Debug, Clone, Default)]
pub struct ByteCounter(Arc<AtomicU64>);

impl ByteCounter {
    /// Bytes read so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct CountingReader<R> {
    inner: R,
    counter: ByteCounter,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.counter.0.fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
}

/// Opens a dump file as a buffered stream of decompressed bytes.
pub fn open(file: &DumpFile, counter: ByteCounter) -> Result<Box<dyn BufRead + Send>, IngestError> {
    let read_error = |source| IngestError::Read { path: file.display_path(), line: 0, source };
    let raw = File::open(&file.path).map_err(read_error)?;
    let counted = CountingReader { inner: raw, counter };
    const BUFFER: usize = 1 << 20;
    Ok(match file.compression {
        Compression::None => Box::new(BufReader::with_capacity(BUFFER, counted)),
        Compression::Gzip => {
            Box::new(BufReader::with_capacity(BUFFER, flate2::read::MultiGzDecoder::new(BufReader::new(counted))))
        }
        Compression::Zstd => {
            Box::new(BufReader::with_capacity(BUFFER, zstd::stream::read::Decoder::new(counted).map_err(read_error)?))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_name() {
        assert_eq!(classify(Path::new("a/b.ndjson")), Some((Format::Ndjson, Compression::None)));
        assert_eq!(classify(Path::new("b.JSONL.gz")), Some((Format::Ndjson, Compression::Gzip)));
        assert_eq!(classify(Path::new("b.json.zst")), Some((Format::Ndjson, Compression::Zstd)));
        assert_eq!(classify(Path::new("b.csv.gz")), Some((Format::Csv, Compression::Gzip)));
        assert_eq!(classify(Path::new("b.txt")), None);
        assert_eq!(classify(Path::new("b.gz")), None);
    }
}

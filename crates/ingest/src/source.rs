//! Input discovery and decoding: an input argument is a file, a directory (read recursively,
//! files sorted by path, other extensions skipped) or a glob; the format (NDJSON or CSV) and
//! compression (none, gzip, zstd) are taken from the file name.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use twox_hash::XxHash3_128;

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
    let mut hasher = XxHash3_128::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match raw.read(&mut buffer) {
            Ok(0) => return Ok(hasher.finish_128()),
            Ok(read) => hasher.write(&buffer[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(read_error(error)),
        }
    }
}

/// What the reader of a dump file saw of its bytes as stored (compressed): how many, for
/// progress reporting, and their hash, from which the file's [`content_identity`] is known at
/// its end without reading it a second time.
#[derive(Clone)]
pub struct RawBytes(Arc<RawState>);

struct RawState {
    /// The file's size when it was opened.
    size: u64,
    count: AtomicU64,
    hash: Mutex<XxHash3_128>,
}

impl RawBytes {
    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }

    /// The file's content identity, when the bytes read are the whole file as it was opened;
    /// `None` when the reader stopped before its end.
    pub fn identity(&self) -> Option<u128> {
        let hash = self.0.hash.lock().unwrap_or_else(PoisonError::into_inner);
        (self.count() == self.0.size).then(|| hash.finish_128())
    }
}

struct CountingReader<R> {
    inner: R,
    raw: RawBytes,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.raw.0.hash.lock().unwrap_or_else(PoisonError::into_inner).write(&buf[..read]);
        self.raw.0.count.fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
}

/// Bytes of a gzip file read at a time.
const COMPRESSED_BUFFER: usize = 1 << 16;

/// Opens a dump file as a stream of decompressed bytes, with what is read of its bytes as
/// stored. A plain file is read without a buffer of its own (the NDJSON reader reads straight
/// into where the records are kept; the CSV reader buffers the stream).
pub fn open(file: &DumpFile) -> Result<(Box<dyn Read + Send>, RawBytes), IngestError> {
    let read_error = |source| IngestError::Read { path: file.display_path(), line: 0, source };
    let raw = File::open(&file.path).map_err(read_error)?;
    let size = raw.metadata().map_err(read_error)?.len();
    let raw_bytes =
        RawBytes(Arc::new(RawState { size, count: AtomicU64::new(0), hash: Mutex::new(XxHash3_128::new()) }));
    let counted = CountingReader { inner: raw, raw: raw_bytes.clone() };
    let reader: Box<dyn Read + Send> = match file.compression {
        Compression::None => Box::new(counted),
        Compression::Gzip => {
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(COMPRESSED_BUFFER, counted)))
        }
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(counted).map_err(read_error)?),
    };
    Ok((reader, raw_bytes))
}

#[cfg(test)]
mod tests {
    use std::io::BufRead;

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

    /// The stream's hash of a file read to its end is the file's content identity, for plain
    /// and compressed files; a file read in part (a plain file longer than the read buffer)
    /// has none.
    #[test]
    fn a_file_read_whole_has_its_content_identity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text: String = (0..100_000).map(|n| format!("{{\"event_id\":\"e{n}\"}}\n")).collect();
        let plain = dir.path().join("dump.ndjson");
        std::fs::write(&plain, &text).expect("write");
        let gzip = dir.path().join("dump.ndjson.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut encoder, text.as_bytes()).expect("gzip");
        std::fs::write(&gzip, encoder.finish().expect("gzip")).expect("write");
        let zstd = dir.path().join("dump.ndjson.zst");
        std::fs::write(&zstd, zstd::encode_all(text.as_bytes(), 1).expect("zstd")).expect("write");
        for path in [plain, gzip, zstd] {
            let file = expand_inputs(&[path.to_string_lossy().into_owned()]).expect("inputs").remove(0);
            let (reader, raw_bytes) = open(&file).expect("open");
            let mut reader = BufReader::new(reader);
            let mut first_line = String::new();
            reader.read_line(&mut first_line).expect("read");
            if file.compression == Compression::None {
                assert_eq!(raw_bytes.identity(), None, "{} read in part", path.display());
            }
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).expect("read");
            assert_eq!(first_line.len() + rest.len(), text.len());
            assert_eq!(raw_bytes.identity(), Some(content_identity(&file).expect("identity")), "{}", path.display());
        }
    }

    /// A file's content identity is the XXH3-128 of its bytes that lakes hold (an independent
    /// implementation of XXH3 says so): files from empty to several read buffers long, their
    /// lengths around XXH3's block and stripe sizes.
    #[test]
    fn content_identities_stay_those_lakes_hold() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes: Vec<u8> = (0..(3 << 20) + 5).map(|n: u32| (n.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for length in [0, 1, 16, 128, 240, 241, 1024, 1025, (1 << 20) - 1, 1 << 20, (1 << 20) + 7, bytes.len()] {
            let path = dir.path().join(format!("dump-{length}.ndjson"));
            std::fs::write(&path, &bytes[..length]).expect("write");
            let file = expand_inputs(&[path.to_string_lossy().into_owned()]).expect("inputs").remove(0);
            let (mut reader, raw_bytes) = open(&file).expect("open");
            io::copy(&mut reader, &mut io::sink()).expect("read");
            let expected = xxhash_rust::xxh3::xxh3_128(&bytes[..length]);
            assert_eq!(content_identity(&file).expect("identity"), expected, "{length} bytes");
            assert_eq!(raw_bytes.identity(), Some(expected), "{length} bytes, as read");
        }
    }
}

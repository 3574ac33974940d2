//! Streaming reader of one dump file: a reader thread decompresses the file and splits it
//! into records (an NDJSON line; a CSV record, which may span lines, found by csv-core's state
//! machine; blank lines are skipped but counted), batches of records are parsed and validated
//! in parallel on the rayon pool, and the outcomes are handed on in file order while the next
//! batch is parsed. Memory stays bounded by a few batches whatever the file's size.
//!
//! Encoding: a UTF-8 byte-order mark at the start of the file is dropped. The first line must
//! be UTF-8 (else the file is an error: likely compressed without its extension); a later
//! record that is not UTF-8 is a `malformed_record`, its `raw` text in the rejects with the
//! invalid bytes replaced by U+FFFD.

use std::borrow::Cow;
use std::io::BufRead;
use std::sync::mpsc;

use crmkpi_schema::Config;
use rayon::prelude::*;

use crate::csv_records::{CsvCells, CsvRecord, CsvSplitter};
use crate::error::IngestError;
use crate::record::{CsvHeader, parse_json_line};
use crate::source::{ByteCounter, DumpFile, Format, open};
use crate::validate::{Event, RejectReason, validate};

/// Records per batch handed from the reader thread to the parsers.
const BATCH_RECORDS: usize = 16_384;
/// Records per piece of a batch parsed and digested by one task.
const PIECE_RECORDS: usize = 2_048;

/// The UTF-8 byte-order mark some exporters write at the start of a file.
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// One record's text with the line it starts on (1-based), as the reader thread found it.
struct RecordText {
    line: u64,
    /// The record as written (invalid UTF-8 replaced by U+FFFD).
    text: String,
    body: RecordBody,
}

/// What the parsers get of a record besides its text.
enum RecordBody {
    /// An NDJSON line: the text is the JSON.
    Json,
    /// A CSV record's unquoted cells.
    Csv(CsvCells),
    /// Not UTF-8, or a CSV quote still open at the end of the file.
    Malformed,
}

impl RecordText {
    /// A CSV record, malformed when it is not UTF-8 or has no cells.
    fn from_csv(record: CsvRecord) -> RecordText {
        match (String::from_utf8(record.raw), record.cells) {
            (Ok(text), Some(cells)) => RecordText { line: record.line, text, body: RecordBody::Csv(cells) },
            (Ok(text), None) => RecordText { line: record.line, text, body: RecordBody::Malformed },
            (Err(error), _) => RecordText {
                line: record.line,
                text: String::from_utf8_lossy(error.as_bytes()).into_owned(),
                body: RecordBody::Malformed,
            },
        }
    }
}

/// One record of a dump after validation, before deduplication; it borrows from the batch of
/// records read.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// The line it starts on.
    pub line: u64,
    /// The record's text (kept in case it is rejected, by validation or by deduplication).
    pub raw: &'a str,
    /// The normalised event, or why the record is rejected.
    pub verdict: Result<Event<Cow<'a, str>>, RejectReason>,
}

/// Reads `file` to its end. The records of a batch are parsed and validated in parallel, a
/// piece at a time, and each piece is handed to `digest` in the same task; `on_piece` gets the
/// digested pieces in file order, a batch's pieces while the next batch is parsed, and
/// `on_progress` the compressed bytes and the records handed on so far after each batch.
pub fn read_dump<T: Send>(
    file: &DumpFile,
    config: &Config,
    digest: impl for<'a> Fn(Vec<Parsed<'a>>) -> Result<T, IngestError> + Sync,
    mut on_piece: impl FnMut(T) -> Result<(), IngestError> + Send,
    mut on_progress: impl FnMut(u64, u64),
) -> Result<(), IngestError> {
    let counter = ByteCounter::default();
    let reader = open(file, counter.clone())?;
    let (sender, receiver) = mpsc::sync_channel::<Result<Vec<RecordText>, IngestError>>(2);
    let mut hand_on = |pieces: Vec<T>| pieces.into_iter().try_for_each(&mut on_piece);
    std::thread::scope(|scope| {
        scope.spawn(|| split_records(file, reader, sender));
        let mut header: Option<Option<CsvHeader>> = None;
        // The pieces of the last batch, not handed on yet, and the records read before it.
        let (mut digested, mut digested_records, mut records): (Vec<T>, u64, u64) = (Vec::new(), 0, 0);
        for batch in receiver {
            let mut batch = batch?;
            if file.format == Format::Csv && header.is_none() && !batch.is_empty() {
                header = Some(match batch.remove(0).body {
                    RecordBody::Csv(cells) => CsvHeader::from_cells(&cells),
                    RecordBody::Json | RecordBody::Malformed => None,
                });
            }
            let csv_header = header.as_ref().and_then(Option::as_ref);
            let previous = std::mem::take(&mut digested);
            let (pieces, handed) = rayon::join(
                || {
                    batch
                        .par_chunks(PIECE_RECORDS)
                        .map(|piece| {
                            digest(piece.iter().map(|record| parse_record(csv_header, record, config)).collect())
                        })
                        .collect::<Result<Vec<T>, IngestError>>()
                },
                || hand_on(previous),
            );
            handed?;
            digested = pieces?;
            records += digested_records;
            digested_records = batch.len() as u64;
            on_progress(counter.get(), records);
        }
        hand_on(digested)?;
        on_progress(counter.get(), records + digested_records);
        Ok(())
    })
}

fn parse_record<'a>(header: Option<&CsvHeader>, record: &'a RecordText, config: &Config) -> Parsed<'a> {
    let raw_record = match &record.body {
        RecordBody::Json => parse_json_line(&record.text),
        RecordBody::Csv(cells) => header.and_then(|header| header.parse_record(cells)),
        RecordBody::Malformed => None,
    };
    let verdict = raw_record.ok_or(RejectReason::MalformedRecord).and_then(|raw| validate(raw, config));
    Parsed { line: record.line, raw: &record.text, verdict }
}

/// The reader thread: splits the decompressed stream into records and sends them in batches.
/// A read error or a file whose first line is not UTF-8 ends the stream with an error.
fn split_records(
    file: &DumpFile,
    mut reader: Box<dyn BufRead + Send>,
    sender: mpsc::SyncSender<Result<Vec<RecordText>, IngestError>>,
) {
    let mut batch = Vec::with_capacity(BATCH_RECORDS);
    let mut bytes = Vec::new();
    let mut line_number = 0u64;
    let mut csv = (file.format == Format::Csv).then(CsvSplitter::default);
    let mut csv_records = Vec::new();
    loop {
        bytes.clear();
        match reader.read_until(b'\n', &mut bytes) {
            Ok(0) => break,
            Ok(_) => {}
            Err(source) => {
                let _ = sender.send(Err(IngestError::Read { path: file.display_path(), line: line_number, source }));
                return;
            }
        }
        line_number += 1;
        let mut line = bytes.as_slice();
        if line_number == 1 {
            line = line.strip_prefix(UTF8_BOM).unwrap_or(line);
            if std::str::from_utf8(line).is_err() {
                let _ = sender.send(Err(IngestError::NotUtf8 { path: file.display_path() }));
                return;
            }
        }
        match &mut csv {
            Some(splitter) => {
                splitter.feed_line(line_number, line, &mut csv_records);
                batch.extend(csv_records.drain(..).map(RecordText::from_csv));
            }
            None => batch.extend(ndjson_record(line_number, line)),
        }
        if batch.len() >= BATCH_RECORDS && sender.send(Ok(std::mem::take(&mut batch))).is_err() {
            return;
        }
    }
    if let Some(splitter) = &mut csv {
        splitter.finish(&mut csv_records);
        batch.extend(csv_records.drain(..).map(RecordText::from_csv));
    }
    if !batch.is_empty() {
        let _ = sender.send(Ok(batch));
    }
}

/// Whether a line is blank: only spaces, tabs, line and page breaks, vertical tabs (the
/// whitespace of Python's `bytes.isspace`, which a data engineer's `line.strip()` skips too).
pub(crate) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
}

/// One NDJSON line as a record (without its line terminator), `None` when it is blank.
fn ndjson_record(line_number: u64, line: &[u8]) -> Option<RecordText> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if is_blank(line) {
        return None;
    }
    Some(match std::str::from_utf8(line) {
        Ok(text) => RecordText { line: line_number, text: text.to_owned(), body: RecordBody::Json },
        Err(_) => RecordText {
            line: line_number,
            text: String::from_utf8_lossy(line).into_owned(),
            body: RecordBody::Malformed,
        },
    })
}

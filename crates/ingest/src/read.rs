//! Streaming reader of one dump file: a reader thread decompresses the file and splits it
//! into records (an NDJSON line; a CSV record, which may span lines, found by csv-core's state
//! machine; blank lines are skipped but counted), batches of records are parsed and validated
//! in parallel on the rayon pool, and the outcomes are handed on in file order while the next
//! batch is parsed and the reader thread splits the one after. Memory stays bounded by a few
//! batches whatever the file's size.
//!
//! Encoding: a UTF-8 byte-order mark at the start of the file is dropped. The first line must
//! be UTF-8 (else the file is an error: likely compressed without its extension); a later
//! record that is not UTF-8 is a `malformed_record`, its `raw` text in the rejects with the
//! invalid bytes replaced by U+FFFD.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};
use std::ops::Range;
use std::sync::mpsc;

use crmkpi_schema::Config;
use rayon::prelude::*;

use crate::csv_records::{CsvCells, CsvRecord, CsvSplitter};
use crate::error::IngestError;
use crate::record::{CsvHeader, RawRecord, Unescaped, parse_json_line};
use crate::source::{DumpFile, Format, open};
use crate::validate::{EventView, RejectReason, validate};

/// Records per batch handed from the reader thread to the parsers. Each batch's join costs
/// wake-ups of the pool's workers; its parsed records (about 300 bytes each, their text
/// borrowed) are read several times after parsing (their ids filtered, their columns filled,
/// then dropped). 4,096 of them measured 3% faster than 8,192 on 2 cores before a line's string
/// ends were found 32 bytes at a time; since, with a shorter parse, 8,192 are 1% to 4% faster
/// (fewer joins, the same instructions; 16,384 no faster).
const BATCH_RECORDS: usize = 1 << 13;
/// Bytes read from a dump at a time.
const READ_BYTES: usize = 1 << 17;
/// Records parsed at least by one task.
const PIECE_RECORDS: usize = 256;

/// The UTF-8 byte-order mark some exporters write at the start of a file.
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// Records as the reader thread found them: their bytes one after another, and each one's
/// line, place and body.
struct Batch {
    /// The records' bytes are the first `filled`; the rest is room for the next read, zeroed
    /// once when the batch grows and read into as it is (a batch is reused: reading into
    /// spare capacity would zero it again at every read).
    text: Vec<u8>,
    filled: usize,
    records: Vec<RecordSpan>,
    /// The strings unescaped from the records' JSON, which their events borrow.
    unescaped: Unescaped,
}

/// One record of a [`Batch`]: the line it starts on (1-based), where its bytes are, and what
/// the parsers get of it besides its text.
struct RecordSpan {
    line: u64,
    range: Range<usize>,
    body: RecordBody,
}

/// What the parsers get of a record besides its text.
enum RecordBody {
    /// An NDJSON line: the text is the JSON.
    Json,
    /// A CSV record's unquoted cells.
    Csv(CsvCells),
    /// A CSV quote still open at the end of the file.
    Malformed,
}

impl Batch {
    /// An empty batch: one that was handed on and came back, or a new one.
    fn reused_or_new(returned: &mpsc::Receiver<Batch>) -> Batch {
        match returned.try_recv() {
            Ok(mut batch) => {
                batch.filled = 0;
                batch.records.clear();
                batch.unescaped.clear();
                batch
            }
            Err(_) => Batch {
                text: Vec::with_capacity(BATCH_RECORDS * 160 + READ_BYTES),
                filled: 0,
                records: Vec::with_capacity(BATCH_RECORDS),
                unescaped: Unescaped::default(),
            },
        }
    }

    /// Reads the next bytes of `reader` onto the end of the text, without copying them from a
    /// buffer of the reader's: up to [`READ_BYTES`], fewer only at the end of the stream (a
    /// decompressor hands out less at a time); how many (0 at the end of the stream).
    fn read_from(&mut self, reader: &mut impl Read) -> std::io::Result<usize> {
        let room = self.room(READ_BYTES);
        let mut read = 0;
        while read < room.len() {
            match reader.read(&mut room[read..]) {
                Ok(0) => break,
                Ok(bytes) => read += bytes,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        self.filled += read;
        Ok(read)
    }

    /// The records' bytes.
    fn text(&self) -> &[u8] {
        &self.text[..self.filled]
    }

    /// `bytes` added to the end of the text.
    fn append(&mut self, bytes: &[u8]) {
        self.room(bytes.len()).copy_from_slice(bytes);
        self.filled += bytes.len();
    }

    /// The `bytes` after the text, to be written.
    fn room(&mut self, bytes: usize) -> &mut [u8] {
        let end = self.filled + bytes;
        if self.text.len() < end {
            self.text.resize(end, 0);
        }
        &mut self.text[self.filled..end]
    }

    /// Adds a CSV record (its text copied), malformed when it has no cells.
    fn push_csv(&mut self, record: CsvRecord) {
        let start = self.filled;
        self.append(&record.raw);
        let body = record.cells.map_or(RecordBody::Malformed, RecordBody::Csv);
        self.records.push(RecordSpan { line: record.line, range: start..self.filled, body });
    }
}

/// One record of a dump after validation, before deduplication; it borrows from the batch of
/// records read.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// The line it starts on.
    pub line: u64,
    /// The record's text (kept in case it is rejected, by validation or by deduplication); a
    /// record that is not UTF-8 has its invalid bytes replaced by U+FFFD.
    pub raw: Cow<'a, str>,
    /// The normalised event, or why the record is rejected.
    pub verdict: Result<EventView<'a>, RejectReason>,
}

impl Parsed<'_> {
    /// The value of a place in a batch's parsed records before its record is parsed into it.
    fn placeholder() -> Self {
        Parsed { line: 0, raw: Cow::Borrowed(""), verdict: Err(RejectReason::MalformedRecord) }
    }
}

/// Reads `file` to its end. The records of a batch are parsed and validated in parallel, then
/// `prepare`d; batch after batch in file order, each is handed to `on_batch` with what
/// `prepare` made of it, on a rayon worker, while the next batch is parsed and prepared and the
/// reader thread splits the one after. Each batch's join waits for both sides, so work moved
/// between `on_batch` (which must take the batches one after another) and `prepare` pays only
/// while the side it leaves ends last (see the README's measurements: the parse side does in
/// most joins now). `on_progress` gets the compressed bytes and the records handed on so far
/// after each batch. Returns the file's content identity when it was read whole as it was
/// opened (see [`crate::source::RawBytes::identity`]).
pub fn read_dump<P: Send>(
    file: &DumpFile,
    config: &Config,
    prepare: impl for<'a> Fn(&[Parsed<'a>]) -> P + Sync,
    mut on_batch: impl for<'a> FnMut(&[Parsed<'a>], P) -> Result<(), IngestError> + Send,
    mut on_progress: impl FnMut(u64, u64),
) -> Result<Option<u128>, IngestError> {
    let (reader, raw_bytes) = open(file)?;
    let (sender, receiver) = mpsc::sync_channel::<Result<Batch, IngestError>>(2);
    // Batches handed on go back to the reader thread, which fills them again: their memory is
    // reused rather than allocated (and faulted in) anew for every batch.
    let (returned, returned_batches) = mpsc::channel::<Batch>();
    std::thread::scope(|scope| {
        scope.spawn(|| match file.format {
            Format::Ndjson => split_ndjson(file, reader, sender, returned_batches),
            Format::Csv => split_csv(file, reader, sender, returned_batches),
        });
        let mut header: Option<Option<CsvHeader>> = None;
        let mut records = 0;
        // The batch parsed last, with what `prepare` made of it: handed to `on_batch` on one
        // worker while the next one is parsed (on_batch's serial work, taking the records in
        // order, no longer leaves the other worker idle).
        let mut parsed_last: Option<(ParsedBatch, P)> = None;
        let mut spare_parsed = Vec::new();
        for batch in receiver {
            let mut batch = batch?;
            if file.format == Format::Csv && header.is_none() && !batch.records.is_empty() {
                header = Some(match batch.records.remove(0).body {
                    RecordBody::Csv(cells) => CsvHeader::from_cells(&cells),
                    RecordBody::Json | RecordBody::Malformed => None,
                });
            }
            let csv_header = header.as_ref().and_then(Option::as_ref);
            let spare = std::mem::take(&mut spare_parsed);
            let on_batch = &mut on_batch;
            let last = parsed_last.take();
            let (next, (taken, last)) = rayon::join(
                || {
                    let next = parse_batch(batch, csv_header, config, spare);
                    let prepared = next.with_dependent(|_, parsed| prepare(parsed));
                    (next, prepared)
                },
                || match last {
                    Some((last, prepared)) => (last.with_dependent(|_, parsed| on_batch(parsed, prepared)), Some(last)),
                    None => (Ok(()), None),
                },
            );
            taken?;
            parsed_last = Some(next);
            if let Some(mut last) = last {
                records += last.borrow_dependent().len() as u64;
                on_progress(raw_bytes.count(), records);
                spare_parsed = last.with_dependent_mut(|_, parsed| recycled(std::mem::take(parsed)));
                // The reader thread may have ended (the last batch).
                let _ = returned.send(last.into_owner());
            }
        }
        if let Some((last, prepared)) = parsed_last {
            last.with_dependent(|_, parsed| on_batch(parsed, prepared))?;
            records += last.borrow_dependent().len() as u64;
            on_progress(raw_bytes.count(), records);
        }
        Ok::<(), IngestError>(())
    })?;
    // The reader thread has ended: everything it read is counted and hashed.
    Ok(raw_bytes.identity())
}

self_cell::self_cell!(
    /// A batch with its records parsed and validated, which borrow its text.
    struct ParsedBatch {
        owner: Batch,
        #[covariant]
        dependent: ParsedRecords,
    }
);

/// The records of a [`ParsedBatch`].
type ParsedRecords<'a> = Vec<Parsed<'a>>;

/// Parses and validates a batch's records in parallel, into the allocation of `parsed`.
fn parse_batch(batch: Batch, header: Option<&CsvHeader>, config: &Config, parsed: Vec<Parsed<'_>>) -> ParsedBatch {
    ParsedBatch::new(batch, |batch| {
        let mut parsed = recycled(parsed);
        // The batch's text checked as UTF-8 at once (with AVX2 where the machine has it), far
        // faster than record by record (which a batch holding a record that is not UTF-8 is).
        let text = simdutf8::basic::from_utf8(batch.text()).ok();
        // Each record is parsed into its place: returned, its parsed record (about 300 bytes)
        // was copied twice, into the returned value and into the vector (its event is still
        // moved once, from validation's result).
        parsed.resize_with(batch.records.len(), Parsed::placeholder);
        parsed
            .par_iter_mut()
            .zip(&batch.records)
            .with_min_len(PIECE_RECORDS)
            .for_each(|(parsed, record)| parse_record(header, batch, text, record, config, parsed));
        parsed
    })
}

/// The allocation of `parsed`, emptied, for the records of the next batch (which borrow
/// another batch).
fn recycled<'b>(mut parsed: Vec<Parsed<'_>>) -> Vec<Parsed<'b>> {
    parsed.clear();
    // Collecting a vector's items as another type of the same layout reuses its allocation;
    // it has none, so the closure never runs.
    parsed.into_iter().map(|_| unreachable!("the vector was cleared")).collect()
}

/// Parses and validates one record of `batch`, whose text is `text` when it is UTF-8 whole,
/// into `parsed`.
fn parse_record<'a>(
    header: Option<&CsvHeader>,
    batch: &'a Batch,
    text: Option<&'a str>,
    record: &'a RecordSpan,
    config: &Config,
    parsed: &mut Parsed<'a>,
) {
    let bytes = &batch.text()[record.range.clone()];
    let utf8 = text.and_then(|text| text.get(record.range.clone())).map_or_else(|| std::str::from_utf8(bytes), Ok);
    // The record is read and validated where it lies: it is large, and every move of it is a
    // copy.
    let mut raw_record = RawRecord::default();
    let (raw, well_formed) = match utf8 {
        Ok(raw) => {
            let well_formed = match &record.body {
                RecordBody::Json => parse_json_line(raw, &batch.unescaped, &mut raw_record),
                RecordBody::Csv(cells) => header.is_some_and(|header| header.parse_record(cells, &mut raw_record)),
                RecordBody::Malformed => false,
            };
            (Cow::Borrowed(raw), well_formed)
        }
        Err(_) => (String::from_utf8_lossy(bytes), false),
    };
    parsed.line = record.line;
    parsed.raw = raw;
    parsed.verdict = if well_formed { validate(&raw_record, config) } else { Err(RejectReason::MalformedRecord) };
}

/// The reader thread of an NDJSON dump: reads the decompressed stream straight into batches
/// ([`READ_BYTES`] at a time), splits them into lines and sends them. A read error or a file
/// whose first line is not UTF-8 ends the stream with an error.
fn split_ndjson(
    file: &DumpFile,
    mut reader: Box<dyn Read + Send>,
    sender: mpsc::SyncSender<Result<Batch, IngestError>>,
    returned: mpsc::Receiver<Batch>,
) {
    let mut batch = Batch::reused_or_new(&returned);
    let mut line_number = 0u64;
    // Where the line being read starts in the batch's text (its end not read yet).
    let mut line_start = 0;
    // The ends of the lines of the bytes just read (reused from read to read).
    let mut ends: Vec<usize> = Vec::new();
    loop {
        let read = match batch.read_from(&mut reader) {
            Ok(read) => read,
            Err(source) => {
                let _ = sender.send(Err(IngestError::Read { path: file.display_path(), line: line_number, source }));
                return;
            }
        };
        // Bytes of the text (up to the bytes just read) that went with batches sent since.
        let mut cut = 0;
        let scanned = batch.filled - read;
        ends.clear();
        if read == 0 {
            // The last line, without a line end.
            ends.extend((line_start < batch.filled).then_some(batch.filled));
        } else {
            ends.extend(memchr::memchr_iter(b'\n', &batch.text()[scanned..]).map(|end| scanned + end + 1));
        }
        for &end in &ends {
            line_number += 1;
            // Positions after a cut are in the next batch's text, shorter by what was sent.
            let end = end - cut;
            if let Err(error) = batch.push_ndjson_line(line_number, line_start..end) {
                let _ = sender.send(Err(error.at(file)));
                return;
            }
            line_start = end;
            if batch.records.len() == BATCH_RECORDS {
                let mut next = Batch::reused_or_new(&returned);
                next.append(&batch.text()[line_start..]);
                batch.filled = line_start;
                cut += line_start;
                line_start = 0;
                if sender.send(Ok(std::mem::replace(&mut batch, next))).is_err() {
                    return;
                }
            }
        }
        if read == 0 {
            break;
        }
    }
    if !batch.records.is_empty() {
        let _ = sender.send(Ok(batch));
    }
}

/// The first line of a dump is not UTF-8.
struct FirstLineNotUtf8;

impl FirstLineNotUtf8 {
    fn at(self, file: &DumpFile) -> IngestError {
        IngestError::NotUtf8 { path: file.display_path() }
    }
}

/// Where the text of a file's first line starts (after a UTF-8 byte-order mark), when the
/// line is UTF-8.
fn first_line_start(line: &[u8]) -> Result<usize, FirstLineNotUtf8> {
    let start = if line.starts_with(UTF8_BOM) { UTF8_BOM.len() } else { 0 };
    std::str::from_utf8(&line[start..]).map(|_| start).map_err(|_| FirstLineNotUtf8)
}

impl Batch {
    /// Adds the NDJSON line at `range` of the text (with its line end), unless it is blank.
    fn push_ndjson_line(&mut self, line_number: u64, mut range: Range<usize>) -> Result<(), FirstLineNotUtf8> {
        if line_number == 1 {
            range.start += first_line_start(&self.text()[range.clone()])?;
        }
        let line = &self.text()[range.clone()];
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !is_blank(line) {
            self.records.push(RecordSpan {
                line: line_number,
                range: range.start..range.start + line.len(),
                body: RecordBody::Json,
            });
        }
        Ok(())
    }
}

/// The reader thread of a CSV dump: splits the decompressed stream into records (csv-core
/// finds where a record ends, which may be lines later) and sends them in batches. A read error
/// or a file whose first line is not UTF-8 ends the stream with an error.
fn split_csv(
    file: &DumpFile,
    reader: Box<dyn Read + Send>,
    sender: mpsc::SyncSender<Result<Batch, IngestError>>,
    returned: mpsc::Receiver<Batch>,
) {
    let mut reader = BufReader::with_capacity(READ_BYTES, reader);
    let mut batch = Batch::reused_or_new(&returned);
    let mut line_number = 0u64;
    let mut splitter = CsvSplitter::default();
    let mut csv_records = Vec::new();
    let mut bytes = Vec::new();
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
            match first_line_start(line) {
                Ok(start) => line = &line[start..],
                Err(error) => {
                    let _ = sender.send(Err(error.at(file)));
                    return;
                }
            }
        }
        splitter.feed_line(line_number, line, &mut csv_records);
        csv_records.drain(..).for_each(|record| batch.push_csv(record));
        if batch.records.len() >= BATCH_RECORDS
            && sender.send(Ok(std::mem::replace(&mut batch, Batch::reused_or_new(&returned)))).is_err()
        {
            return;
        }
    }
    splitter.finish(&mut csv_records);
    csv_records.drain(..).for_each(|record| batch.push_csv(record));
    if !batch.records.is_empty() {
        let _ = sender.send(Ok(batch));
    }
}

/// Whether a line is blank: only spaces, tabs, line and page breaks, vertical tabs (the
/// whitespace of Python's `bytes.isspace`, which a data engineer's `line.strip()` skips too).
pub(crate) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that hands out a few bytes at a time and is interrupted now and then, as a
    /// decompressor or a pipe may be.
    struct Trickle<'a> {
        bytes: &'a [u8],
        reads: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            self.reads += 1;
            if self.reads.is_multiple_of(5) {
                return Err(std::io::Error::from(std::io::ErrorKind::Interrupted));
            }
            let read = buffer.len().min(self.bytes.len()).min(1_000);
            buffer[..read].copy_from_slice(&self.bytes[..read]);
            self.bytes = &self.bytes[read..];
            Ok(read)
        }
    }

    /// A batch takes [`READ_BYTES`] at a time from a stream of short and interrupted reads,
    /// fewer only at its end, and holds every byte in order.
    #[test]
    fn a_batch_reads_a_trickling_stream_whole() {
        let bytes: Vec<u8> = (0..READ_BYTES * 2 + 777).map(|n| (n % 251) as u8).collect();
        let mut stream = Trickle { bytes: &bytes, reads: 0 };
        let mut batch = Batch { text: Vec::new(), filled: 0, records: Vec::new(), unescaped: Unescaped::default() };
        let mut reads = Vec::new();
        loop {
            match batch.read_from(&mut stream).expect("read") {
                0 => break,
                read => reads.push(read),
            }
        }
        assert_eq!(reads, [READ_BYTES, READ_BYTES, 777]);
        assert_eq!(batch.text(), bytes);
    }
}

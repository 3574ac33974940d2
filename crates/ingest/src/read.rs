//! Streaming reader of one dump file: a reader thread decompresses and splits the file into
//! records (a CSV record may span lines; blank lines are skipped but counted), batches of
//! records are parsed and validated in parallel on the rayon pool, and the outcomes are handed
//! on in file order. Memory stays bounded by a few batches whatever the file's size.

use std::io::BufRead;
use std::sync::mpsc;

use crmkpi_schema::Config;
use rayon::prelude::*;

use crate::error::IngestError;
use crate::record::{CsvHeader, csv_quote_open, parse_json_line};
use crate::source::{ByteCounter, DumpFile, Format, open};
use crate::validate::{Event, RejectReason, validate};

/// Records per batch handed from the reader thread to the parsers.
const BATCH_RECORDS: usize = 16_384;

/// One record's text with the line it starts on (1-based).
struct RecordText {
    line: u64,
    text: String,
}

/// What became of one record of a dump, before deduplication.
#[derive(Debug)]
pub enum Outcome {
    /// The record is a valid event.
    Valid {
        /// The line it starts on.
        line: u64,
        /// The record's text, kept in case deduplication rejects it.
        raw: String,
        /// The normalised event.
        event: Box<Event>,
    },
    /// The record is invalid.
    Invalid {
        /// The line it starts on.
        line: u64,
        /// The record's text.
        raw: String,
        /// Why.
        reason: RejectReason,
    },
}

/// Reads `file` to its end, calling `on_outcome` for each record in file order and
/// `on_progress` after each batch with the compressed bytes and the records read so far.
pub fn read_dump(
    file: &DumpFile,
    config: &Config,
    mut on_outcome: impl FnMut(Outcome) -> Result<(), IngestError>,
    mut on_progress: impl FnMut(u64, u64),
) -> Result<(), IngestError> {
    let counter = ByteCounter::default();
    let mut records = 0u64;
    let reader = open(file, counter.clone())?;
    let (sender, receiver) = mpsc::sync_channel::<Result<Vec<RecordText>, IngestError>>(2);
    std::thread::scope(|scope| {
        scope.spawn(|| split_records(file, reader, sender));
        let mut header: Option<Option<CsvHeader>> = None;
        for batch in receiver {
            let mut batch = batch?;
            if file.format == Format::Csv && header.is_none() && !batch.is_empty() {
                let header_text = batch.remove(0);
                header = Some(CsvHeader::parse(&header_text.text));
            }
            let csv_header = header.as_ref().and_then(Option::as_ref);
            let outcomes: Vec<Outcome> =
                batch.into_par_iter().map(|record| parse_record(file.format, csv_header, record, config)).collect();
            records += outcomes.len() as u64;
            for outcome in outcomes {
                on_outcome(outcome)?;
            }
            on_progress(counter.get(), records);
        }
        Ok(())
    })
}

fn parse_record(format: Format, header: Option<&CsvHeader>, record: RecordText, config: &Config) -> Outcome {
    let raw_record = match format {
        Format::Ndjson => parse_json_line(&record.text),
        Format::Csv => header.and_then(|header| header.parse_record(&record.text)),
    };
    match raw_record.ok_or(RejectReason::MalformedRecord).and_then(|raw| validate(&raw, config)) {
        Ok(event) => Outcome::Valid { line: record.line, raw: record.text, event: Box::new(event) },
        Err(reason) => Outcome::Invalid { line: record.line, raw: record.text, reason },
    }
}

/// The reader thread: splits the decompressed stream into record texts and sends them in
/// batches. A read error or a file that is not UTF-8 at its start ends the stream with an error.
fn split_records(
    file: &DumpFile,
    mut reader: Box<dyn BufRead + Send>,
    sender: mpsc::SyncSender<Result<Vec<RecordText>, IngestError>>,
) {
    let mut batch = Vec::with_capacity(BATCH_RECORDS);
    let mut bytes = Vec::new();
    let mut line_number = 0u64;
    let mut pending: Option<RecordText> = None;
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
        if bytes.ends_with(b"\n") {
            bytes.pop();
        }
        let text = match std::str::from_utf8(&bytes) {
            Ok(text) => text.to_owned(),
            Err(_) if line_number == 1 => {
                let _ = sender.send(Err(IngestError::NotUtf8 { path: file.display_path() }));
                return;
            }
            Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
        };
        let complete = match (&mut pending, file.format) {
            (Some(open_record), _) => {
                open_record.text.push('\n');
                open_record.text.push_str(&text);
                !csv_quote_open(&open_record.text)
            }
            (None, _) if text.trim_end_matches('\r').trim().is_empty() => continue,
            (None, Format::Csv) => {
                let quote_open = csv_quote_open(&text);
                pending = Some(RecordText { line: line_number, text });
                !quote_open
            }
            (None, Format::Ndjson) => {
                pending = Some(RecordText { line: line_number, text });
                true
            }
        };
        if complete && let Some(mut record) = pending.take() {
            if record.text.ends_with('\r') {
                record.text.pop();
            }
            batch.push(record);
            if batch.len() == BATCH_RECORDS && sender.send(Ok(std::mem::take(&mut batch))).is_err() {
                return;
            }
        }
    }
    if let Some(record) = pending.take() {
        batch.push(record);
    }
    if !batch.is_empty() {
        let _ = sender.send(Ok(batch));
    }
}

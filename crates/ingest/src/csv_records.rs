//! CSV records: the dump's lines are fed to csv-core's RFC 4180 state machine (the one the
//! `csv` crate uses), which finds where each record ends and unquotes its cells.
//!
//! Only a quote at the start of a cell opens a quoted cell, so a stray quote inside an
//! unquoted cell (`ab"c`) is kept as text and cannot swallow the following lines; a quote after
//! a closing quote is taken leniently (`"ab"c` is `abc`), as Python's `csv` module reads both.
//! A quoted cell may span lines: the record's line is the line it starts on. A quote still
//! open at the end of the file leaves a record without cells (a `malformed_record`). Lines
//! that are empty or only white space between records are skipped.

use csv_core::{ReadRecordResult, Reader};

/// The unquoted cells of one CSV record: their bytes one after another, and where each ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvCells {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl CsvCells {
    /// Number of cells.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the record has no cell (never the case for a record csv-core found).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The cells' bytes in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(start, end)| &self.data[start..end])
    }
}

/// One CSV record as written in the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRecord {
    /// The line it starts on (1-based).
    pub line: u64,
    /// Its bytes as written, without the line terminator.
    pub raw: Vec<u8>,
    /// Its cells; `None` when a quote was still open at the end of the file.
    pub cells: Option<CsvCells>,
}

/// Splits a CSV dump, fed line by line, into records.
#[derive(Debug)]
pub struct CsvSplitter {
    parser: Reader,
    /// Line of the record in progress.
    start_line: u64,
    /// Bytes of the record in progress as written.
    raw: Vec<u8>,
    /// Unquoted cell bytes of the record in progress (`data_len` of them used).
    data: Vec<u8>,
    data_len: usize,
    /// Cell ends of the record in progress (`ends_len` of them used).
    ends: Vec<usize>,
    ends_len: usize,
}

impl Default for CsvSplitter {
    fn default() -> Self {
        CsvSplitter {
            parser: Reader::new(),
            start_line: 0,
            raw: Vec::new(),
            data: vec![0; 1024],
            data_len: 0,
            ends: vec![0; 32],
            ends_len: 0,
        }
    }
}

impl CsvSplitter {
    /// Feeds line `line_number` of the file (with its `\n` when it has one) and appends the
    /// records it completes to `records`.
    pub fn feed_line(&mut self, line_number: u64, line: &[u8], records: &mut Vec<CsvRecord>) {
        if self.raw.is_empty() && crate::read::is_blank(line) {
            return;
        }
        self.feed(line_number, line, records);
    }

    /// Ends the file: completes the record in progress, if any. A quote left open makes it a
    /// record without cells.
    pub fn finish(&mut self, records: &mut Vec<CsvRecord>) {
        if self.raw.is_empty() {
            return;
        }
        let before = records.len();
        // A line end completes the record unless it is inside an open quote.
        self.feed(self.start_line, b"\n", records);
        if records.len() == before {
            let raw = std::mem::take(&mut self.raw);
            records.push(CsvRecord { line: self.start_line, raw: trim_terminator(raw), cells: None });
            self.parser.reset();
            self.data_len = 0;
            self.ends_len = 0;
        }
    }

    fn feed(&mut self, line_number: u64, mut input: &[u8], records: &mut Vec<CsvRecord>) {
        while !input.is_empty() {
            if self.raw.is_empty() {
                self.start_line = line_number;
            }
            let (result, read, written, ended) =
                self.parser.read_record(input, &mut self.data[self.data_len..], &mut self.ends[self.ends_len..]);
            self.raw.extend_from_slice(&input[..read]);
            input = &input[read..];
            self.data_len += written;
            self.ends_len += ended;
            match result {
                ReadRecordResult::OutputFull => self.data.resize(self.data.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record => {
                    let cells = CsvCells {
                        data: self.data[..self.data_len].to_vec(),
                        ends: self.ends[..self.ends_len].to_vec(),
                    };
                    let raw = trim_terminator(std::mem::take(&mut self.raw));
                    records.push(CsvRecord { line: self.start_line, raw, cells: Some(cells) });
                    self.data_len = 0;
                    self.ends_len = 0;
                }
                ReadRecordResult::InputEmpty | ReadRecordResult::End => {}
            }
            // Line terminators between records (the `\n` of a `\r\n`) belong to no record.
            if self.raw.iter().all(|byte| matches!(byte, b'\r' | b'\n')) {
                self.raw.clear();
            }
        }
    }
}

/// A record's bytes without the line terminator that ended it.
fn trim_terminator(mut raw: Vec<u8>) -> Vec<u8> {
    while raw.last().is_some_and(|byte| matches!(byte, b'\r' | b'\n')) {
        raw.pop();
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (line, raw, cells) of every record of `text`.
    fn split(text: &str) -> Vec<(u64, String, Option<Vec<String>>)> {
        let mut splitter = CsvSplitter::default();
        let mut records = Vec::new();
        for (index, line) in text.split_inclusive('\n').enumerate() {
            splitter.feed_line(index as u64 + 1, line.as_bytes(), &mut records);
        }
        splitter.finish(&mut records);
        records
            .into_iter()
            .map(|record| {
                let cells = record
                    .cells
                    .map(|cells| cells.iter().map(|cell| String::from_utf8(cell.to_vec()).expect("utf-8")).collect());
                (record.line, String::from_utf8(record.raw).expect("utf-8"), cells)
            })
            .collect()
    }

    fn cells(values: &[&str]) -> Option<Vec<String>> {
        Some(values.iter().map(|value| (*value).to_owned()).collect())
    }

    #[test]
    fn quoting() {
        assert_eq!(
            split("a,\"b,c\",\"d\"\"e\",\n"),
            vec![(1, "a,\"b,c\",\"d\"\"e\",".into(), cells(&["a", "b,c", "d\"e", ""]))]
        );
        assert_eq!(
            split("\"multi\nline\",x\ny"),
            vec![(1, "\"multi\nline\",x".into(), cells(&["multi\nline", "x"])), (3, "y".into(), cells(&["y"])),]
        );
        // Lenient like Python's csv: text after a closing quote is appended.
        assert_eq!(split("\"a\"b,x"), vec![(1, "\"a\"b,x".into(), cells(&["ab", "x"]))]);
    }

    #[test]
    fn a_stray_quote_in_an_unquoted_cell_is_text() {
        assert_eq!(
            split("a,b\"c,d\r\ne,f,g\r\n"),
            vec![(1, "a,b\"c,d".into(), cells(&["a", "b\"c", "d"])), (2, "e,f,g".into(), cells(&["e", "f", "g"])),]
        );
    }

    #[test]
    fn an_open_quote_at_the_end_has_no_cells() {
        assert_eq!(
            split("a,b\n\n  \n\"open,x\nmore\n"),
            vec![(1, "a,b".into(), cells(&["a", "b"])), (4, "\"open,x\nmore".into(), None),]
        );
    }

    #[test]
    fn blank_lines_inside_quotes_belong_to_the_record() {
        assert_eq!(
            split("\"x\n\n\",y\n\nz\n"),
            vec![(1, "\"x\n\n\",y".into(), cells(&["x\n\n", "y"])), (5, "z".into(), cells(&["z"]))]
        );
    }

    #[test]
    fn long_records_grow_the_buffers() {
        let cell = "v".repeat(5_000);
        let line = vec![cell.as_str(); 100].join(",");
        let records = split(&format!("{line}\n"));
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].2.as_ref().map(Vec::len), Some(100));
        assert!(records[0].2.iter().flatten().all(|value| *value == cell));
    }
}

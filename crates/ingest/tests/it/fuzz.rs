//! Fuzzed dumps (issue: "never a panic, every record read gets exactly one outcome"): random
//! bytes, valid records truncated or edited byte by byte (inserted, overwritten, deleted), CSV
//! cells quoted at random, stray quotes and line breaks, invalid UTF-8, whole files in another
//! encoding (with a UTF-8 byte-order mark, Latin-1, UTF-16), as NDJSON and CSV, plain, gzip and
//! zstd, compressed streams damaged. Whatever the input, the ingest does not panic; it either
//! fails with an error naming the file (a file that is not text at its start, or whose
//! compression is corrupt) and leaves the lake empty, or accounts for every record read
//! (`read = accepted + duplicates + rejected`, per file), an NDJSON file's record count is its
//! non-blank line count, and the lake afterwards reads back with exactly the accepted events
//! and the rejected records.
//!
//! `CRMKPI_FUZZ_CASES` sets the number of cases (CI runs the default 48; `just fuzz` many more).

use std::io::Write;

use crmkpi_ingest::{IngestError, Lake, NoProgress, ingest};
use proptest::prelude::*;

use crate::common::{config_with, lake_events, lake_rejects};

/// How a dump file is stored.
#[derive(Debug, Clone, Copy)]
enum Storage {
    Plain,
    Gzip,
    Zstd,
}

/// How a whole file's text is encoded.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    Utf8,
    /// UTF-8 after a byte-order mark.
    Utf8Bom,
    /// Each character one byte (`?` beyond U+00FF).
    Latin1,
    /// Little-endian, after its byte-order mark.
    Utf16,
}

/// One record: a valid one (a CSV record's cells quoted where the bits of its `u16` say, or
/// where they must be; NDJSON records ignore it), a damaged one, or noise.
#[derive(Debug, Clone)]
enum Piece {
    Valid(usize, u16),
    Truncated(usize, u16, usize),
    Edited(usize, u16, Vec<Edit>),
    Noise(Vec<u8>),
    Blank,
}

/// A change of one byte of a record's text, at a place taken modulo its length.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, u8),
    Overwrite(usize, u8),
    Delete(usize),
}

const NDJSON_RECORDS: [&str; 6] = [
    r#"{"event_id":"e1","event_type":"order_placed","occurred_at":"2024-03-04T17:32:58+01:00","customer_id":"c1","order_id":"o1","amount":12.5,"currency":"USD"}"#,
    r#"{"event_id":"e2","event_type":"site_visited","occurred_at":"2024-03-05 10:00:00","customer_id":"c2é"}"#,
    r#"{"event_id":"e3","event_type":"survey_answered","occurred_at":1709800000000,"customer_id":"c1","survey":"nps","score":9}"#,
    r#"{"event_id":"e1","event_type":"order_placed","occurred_at":"2024-03-04T16:32:58Z","customer_id":"c1","order_id":"o1","amount":"12.50","currency":"USD"}"#,
    r#"{"event_id":"e4","event_type":"deal_stage_changed","occurred_at":"2024-03-06T09:00:00Z","deal_id":"d1","stage":"proposal","extra":{"a":[1,2]}}"#,
    r#"{"event_id":12345678901234567890123,"event_type":"lead_created","occurred_at":"2024-03-07T09:00:00Z","customer_id":1.50}"#,
];

const CSV_HEADER: &str =
    "event_id,event_type,occurred_at,customer_id,order_id,amount,currency,survey,score,stage,deal_id";
/// The cells of the CSV records (the same events as some NDJSON records, and more).
const CSV_RECORDS: [[&str; 11]; 6] = [
    ["e1", "order_placed", "2024-03-04T17:32:58+01:00", "c1", "o1", "12.5", "USD", "", "", "", ""],
    ["e2", "site_visited", "2024-03-05 10:00:00", "c2é", "", "", "", "", "", "", ""],
    ["e3", "survey_answered", "2024-03-06T10:00:00Z", "c1", "", "", "", "nps", "9", "", ""],
    ["e5", "deal_stage_changed", "2024-03-06T09:00:00Z", "", "", "", "", "", "", "pro\"posal", "d\nz"],
    ["e6", "site_visited", "2024-03-07T09:00:00Z", "c,3", "", "", "", "", "", "", ""],
    ["e1", "order_placed", "2024-03-04T16:32:58Z", "c1", "o1", "12.50", "USD", "", "", "", ""],
];

/// A CSV record of `cells`, each quoted when its bit in `quoting` is set or when it holds a
/// quote, a comma or a line break (RFC 4180: a quote inside is doubled).
fn csv_line(cells: &[&str], quoting: u16) -> String {
    let cell = |(place, text): (usize, &&str)| {
        if quoting & (1 << place) != 0 || text.contains(['"', ',', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            (*text).to_owned()
        }
    };
    cells.iter().enumerate().map(cell).collect::<Vec<_>>().join(",")
}

fn piece() -> impl Strategy<Value = Piece> {
    let byte = || {
        prop_oneof![
            Just(b'"'),
            Just(b','),
            Just(b'\n'),
            Just(b'\r'),
            Just(b'{'),
            Just(b'}'),
            Just(b'\\'),
            Just(0xff),
            Just(0xc3),
            Just(0x00),
            any::<u8>()
        ]
    };
    let edit = move || {
        prop_oneof![
            (0..200usize, byte()).prop_map(|(at, byte)| Edit::Insert(at, byte)),
            (0..200usize, byte()).prop_map(|(at, byte)| Edit::Overwrite(at, byte)),
            (0..200usize).prop_map(Edit::Delete),
        ]
    };
    prop_oneof![
        4 => (0..6usize, any::<u16>()).prop_map(|(record, quoting)| Piece::Valid(record, quoting)),
        2 => (0..6usize, any::<u16>(), 0..200usize)
            .prop_map(|(record, quoting, at)| Piece::Truncated(record, quoting, at)),
        3 => (0..6usize, any::<u16>(), prop::collection::vec(edit(), 1..4))
            .prop_map(|(record, quoting, edits)| Piece::Edited(record, quoting, edits)),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Piece::Noise),
        1 => Just(Piece::Blank),
    ]
}

fn storage() -> impl Strategy<Value = Storage> {
    prop_oneof![Just(Storage::Plain), Just(Storage::Gzip), Just(Storage::Zstd)]
}

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![
        6 => Just(Encoding::Utf8),
        1 => Just(Encoding::Utf8Bom),
        2 => Just(Encoding::Latin1),
        1 => Just(Encoding::Utf16),
    ]
}

/// A byte of a compressed file overwritten (at a place taken modulo its length), or none.
fn damage() -> impl Strategy<Value = Option<(usize, u8)>> {
    prop::option::weighted(0.1, (any::<usize>(), any::<u8>()))
}

/// The bytes of one piece in a format (without its line end).
fn bytes_of(piece: &Piece, csv: bool) -> Vec<u8> {
    let record = |record: usize, quoting: u16| -> Vec<u8> {
        if csv {
            csv_line(&CSV_RECORDS[record], quoting).into_bytes()
        } else {
            NDJSON_RECORDS[record].as_bytes().to_vec()
        }
    };
    match piece {
        Piece::Valid(index, quoting) => record(*index, *quoting),
        Piece::Truncated(index, quoting, at) => {
            let mut text = record(*index, *quoting);
            text.truncate(*at);
            text
        }
        Piece::Edited(index, quoting, edits) => {
            let mut text = record(*index, *quoting);
            for edit in edits {
                match *edit {
                    Edit::Insert(at, byte) => text.insert(at % (text.len() + 1), byte),
                    Edit::Overwrite(at, byte) if !text.is_empty() => {
                        let at = at % text.len();
                        text[at] = byte;
                    }
                    Edit::Delete(at) if !text.is_empty() => {
                        text.remove(at % text.len());
                    }
                    Edit::Overwrite(..) | Edit::Delete(_) => {}
                }
            }
            text
        }
        Piece::Noise(bytes) => bytes.clone(),
        Piece::Blank => Vec::new(),
    }
}

/// The UTF-8 byte-order mark.
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// A file's text in `encoding` (in Latin-1 and UTF-16, its invalid UTF-8 first read as
/// U+FFFD).
fn encode(text: &[u8], encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Utf8 => text.to_vec(),
        Encoding::Utf8Bom => [UTF8_BOM, text].concat(),
        Encoding::Latin1 => {
            String::from_utf8_lossy(text).chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')).collect()
        }
        Encoding::Utf16 => {
            let text = String::from_utf8_lossy(text);
            std::iter::once(0xfeff).chain(text.encode_utf16()).flat_map(u16::to_le_bytes).collect()
        }
    }
}

/// Whether ingest must refuse a file of these (decompressed) bytes as not text: its first
/// line, after a UTF-8 byte-order mark, is not UTF-8 (events.md: "not UTF-8 at the start").
fn not_text_at_its_start(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let first_line = bytes.split_inclusive(|&byte| byte == b'\n').next().unwrap_or_default();
    std::str::from_utf8(first_line).is_err()
}

fn store(bytes: &[u8], storage: Storage) -> Vec<u8> {
    match storage {
        Storage::Plain => bytes.to_vec(),
        Storage::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(bytes).expect("gzip");
            encoder.finish().expect("gzip")
        }
        Storage::Zstd => zstd::stream::encode_all(bytes, 1).expect("zstd"),
    }
}

fn cases() -> u32 {
    std::env::var("CRMKPI_FUZZ_CASES").ok().and_then(|text| text.parse().ok()).unwrap_or(48)
}

/// A file's bytes as written: encoded, stored, and a byte of a compressed stream damaged.
fn file_bytes(text: &[u8], encoding: Encoding, storage: Storage, damage: Option<(usize, u8)>) -> Vec<u8> {
    let mut bytes = store(&encode(text, encoding), storage);
    if let (Some((at, byte)), Storage::Gzip | Storage::Zstd) = (damage, storage) {
        let at = at % bytes.len();
        bytes[at] = byte;
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_dump_is_accounted_for(
        ndjson in prop::collection::vec(piece(), 0..40),
        csv in prop::collection::vec(piece(), 0..40),
        (ndjson_encoding, csv_encoding) in (encoding(), encoding()),
        (ndjson_storage, csv_storage) in (storage(), storage()),
        (ndjson_damage, csv_damage) in (damage(), damage()),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ndjson_text = Vec::new();
        for piece in &ndjson {
            ndjson_text.extend(bytes_of(piece, false));
            ndjson_text.push(b'\n');
        }
        let mut csv_text = format!("{CSV_HEADER}\n").into_bytes();
        for piece in &csv {
            csv_text.extend(bytes_of(piece, true));
            csv_text.extend(b"\r\n");
        }
        let suffix = |storage| match storage {
            Storage::Plain => "",
            Storage::Gzip => ".gz",
            Storage::Zstd => ".zst",
        };
        let ndjson_path = dir.path().join(format!("a.ndjson{}", suffix(ndjson_storage)));
        let csv_path = dir.path().join(format!("b.csv{}", suffix(csv_storage)));
        let ndjson_bytes = file_bytes(&ndjson_text, ndjson_encoding, ndjson_storage, ndjson_damage);
        std::fs::write(&ndjson_path, ndjson_bytes).expect("write");
        std::fs::write(&csv_path, file_bytes(&csv_text, csv_encoding, csv_storage, csv_damage)).expect("write");
        // Which files ingest must refuse, and which it may (a damaged compressed stream is
        // refused, or decodes to other text).
        let files = [
            ("a.ndjson", &ndjson_text, ndjson_encoding, ndjson_storage, ndjson_damage),
            ("b.csv", &csv_text, csv_encoding, csv_storage, csv_damage),
        ]
        .map(|(name, text, encoding, storage, damage)| {
            let damaged = damage.is_some() && !matches!(storage, Storage::Plain);
            let must_refuse = !damaged && not_text_at_its_start(&encode(text, encoding));
            (name, must_refuse, must_refuse || damaged)
        });

        let lake_dir = dir.path().join("lake");
        let inputs = [dir.path().join("*.*").to_string_lossy().into_owned()];
        let report = match ingest(&Lake::new(&lake_dir), &inputs, &config_with(1.0), &NoProgress) {
            Ok(report) => report,
            // A file that does not start with UTF-8 text, or whose compression is corrupt, is
            // refused as a whole, by name, and the lake stays as it was (empty).
            Err(IngestError::NotUtf8 { path } | IngestError::Read { path, .. }) => {
                let named = files.iter().find(|(name, _, _)| path.contains(name));
                prop_assert!(named.is_some_and(|(_, _, may_refuse)| *may_refuse), "{} refused: {:?}", path, files);
                prop_assert_eq!(lake_events(&lake_dir).height(), 0);
                prop_assert!(lake_rejects(&lake_dir).is_empty());
                return Ok(());
            }
            Err(other) => return Err(TestCaseError::fail(format!("ingest failed: {other}"))),
        };
        prop_assert!(files.iter().all(|(_, must_refuse, _)| !must_refuse), "a file not refused: {:?}", files);
        let summary = &report.summary;
        prop_assert_eq!(summary.files.len(), 2);
        for stats in &summary.files {
            prop_assert_eq!(stats.read, stats.accepted + stats.duplicates + stats.rejected_total(), "{}", stats.path);
        }
        // Blank: only the whitespace of Python's bytes.isspace (what `line.strip()` skips). A
        // damaged stream that still decodes may hold other lines.
        if ndjson_damage.is_none() || matches!(ndjson_storage, Storage::Plain) {
            let text = encode(&ndjson_text, ndjson_encoding);
            let text = text.strip_prefix(UTF8_BOM).unwrap_or(&text);
            let non_blank_lines = text.split(|&byte| byte == b'\n').filter(|line| {
                !line.iter().all(|byte| b" \t\n\r\x0b\x0c".contains(byte))
            }).count() as u64;
            prop_assert_eq!(summary.files[0].read, non_blank_lines, "every NDJSON line is one record");
        }
        prop_assert_eq!(lake_events(&lake_dir).height() as u64, summary.accepted);
        prop_assert_eq!(lake_rejects(&lake_dir).len() as u64, summary.rejected_total());
    }
}

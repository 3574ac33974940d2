//! Fuzzed dumps (issue: "never a panic, every record read gets exactly one outcome"): random
//! bytes, valid records truncated or mutated byte by byte, random CSV quoting, stray quotes and
//! line breaks, invalid UTF-8, as NDJSON and CSV, plain, gzip and zstd. Whatever the input, the
//! ingest does not panic; it either fails with an error naming the file (a file that is not
//! text at its start) or accounts for every record read (`read = accepted + duplicates +
//! rejected`, per file), an NDJSON file's record count is its non-blank line count, and the lake
//! afterwards reads back with exactly the accepted events and the rejected records.
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

/// One record: a valid one, a damaged one, or noise.
#[derive(Debug, Clone)]
enum Piece {
    Valid(usize),
    Truncated(usize, usize),
    Mutated(usize, Vec<(usize, u8)>),
    Noise(Vec<u8>),
    Blank,
}

const NDJSON_RECORDS: [&str; 6] = [
    r#"{"event_id":"e1","event_type":"order_placed","occurred_at":"2024-03-04T17:32:58+01:00","customer_id":"c1","order_id":"o1","amount":12.5,"currency":"USD"}"#,
    r#"{"event_id":"e2","event_type":"site_visited","occurred_at":"2024-03-05 10:00:00","customer_id":"c2"}"#,
    r#"{"event_id":"e3","event_type":"survey_answered","occurred_at":1709800000000,"customer_id":"c1","survey":"nps","score":9}"#,
    r#"{"event_id":"e1","event_type":"order_placed","occurred_at":"2024-03-04T16:32:58Z","customer_id":"c1","order_id":"o1","amount":"12.50","currency":"USD"}"#,
    r#"{"event_id":"e4","event_type":"deal_stage_changed","occurred_at":"2024-03-06T09:00:00Z","deal_id":"d1","stage":"proposal","extra":{"a":[1,2]}}"#,
    r#"{"event_id":12345678901234567890123,"event_type":"lead_created","occurred_at":"2024-03-07T09:00:00Z","customer_id":1.50}"#,
];

const CSV_HEADER: &str =
    "event_id,event_type,occurred_at,customer_id,order_id,amount,currency,survey,score,stage,deal_id";
const CSV_RECORDS: [&str; 6] = [
    "e1,order_placed,2024-03-04T17:32:58+01:00,c1,o1,12.5,USD,,,,",
    "e2,site_visited,2024-03-05 10:00:00,c2,,,,,,,",
    "e3,survey_answered,2024-03-06T10:00:00Z,c1,,,,nps,9,,",
    "\"e5\",\"deal_stage_changed\",\"2024-03-06T09:00:00Z\",,,,,,,\"pro\"\"posal\",\"d\nz\"",
    "e6,site_visited,2024-03-07T09:00:00Z,\"c,3\",,,,,,,",
    "e1,order_placed,2024-03-04T16:32:58Z,c1,o1,12.50,USD,,,,",
];

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        4 => (0..6usize).prop_map(Piece::Valid),
        2 => (0..6usize, 0..200usize).prop_map(|(record, at)| Piece::Truncated(record, at)),
        3 => (0..6usize, prop::collection::vec((0..200usize, prop_oneof![
                Just(b'"'), Just(b','), Just(b'\n'), Just(b'\r'), Just(b'{'), Just(b'}'), Just(b'\\'),
                Just(0xff), Just(0xc3), Just(0x00), any::<u8>()
            ]), 1..4))
            .prop_map(|(record, edits)| Piece::Mutated(record, edits)),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Piece::Noise),
        1 => Just(Piece::Blank),
    ]
}

fn storage() -> impl Strategy<Value = Storage> {
    prop_oneof![Just(Storage::Plain), Just(Storage::Gzip), Just(Storage::Zstd)]
}

/// The bytes of one piece in a format (without its line end).
fn bytes_of(piece: &Piece, csv: bool) -> Vec<u8> {
    let records: &[&str; 6] = if csv { &CSV_RECORDS } else { &NDJSON_RECORDS };
    match piece {
        Piece::Valid(record) => records[*record].as_bytes().to_vec(),
        Piece::Truncated(record, at) => {
            let text = records[*record].as_bytes();
            text[..(*at).min(text.len())].to_vec()
        }
        Piece::Mutated(record, edits) => {
            let mut text = records[*record].as_bytes().to_vec();
            for (at, byte) in edits {
                let at = at % (text.len() + 1);
                text.insert(at, *byte);
            }
            text
        }
        Piece::Noise(bytes) => bytes.clone(),
        Piece::Blank => Vec::new(),
    }
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

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_dump_is_accounted_for(
        ndjson in prop::collection::vec(piece(), 0..40),
        csv in prop::collection::vec(piece(), 0..40),
        ndjson_storage in storage(),
        csv_storage in storage(),
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
        std::fs::write(&ndjson_path, store(&ndjson_text, ndjson_storage)).expect("write");
        std::fs::write(&csv_path, store(&csv_text, csv_storage)).expect("write");

        let lake_dir = dir.path().join("lake");
        let inputs = [dir.path().join("*.*").to_string_lossy().into_owned()];
        let report = match ingest(&Lake::new(&lake_dir), &inputs, &config_with(1.0), &NoProgress) {
            Ok(report) => report,
            // A file that does not start with UTF-8 text is refused as a whole, by name.
            Err(IngestError::NotUtf8 { path }) => {
                prop_assert!(path.ends_with("a.ndjson") || path.contains("a.ndjson") || path.contains("b.csv"));
                return Ok(());
            }
            Err(other) => return Err(TestCaseError::fail(format!("ingest failed: {other}"))),
        };
        let summary = &report.summary;
        prop_assert_eq!(summary.files.len(), 2);
        for stats in &summary.files {
            prop_assert_eq!(stats.read, stats.accepted + stats.duplicates + stats.rejected_total(), "{}", stats.path);
        }
        // Blank: only the whitespace of Python's bytes.isspace (what `line.strip()` skips).
        let non_blank_lines = ndjson_text.split(|&byte| byte == b'\n').filter(|line| {
            !line.iter().all(|byte| b" \t\n\r\x0b\x0c".contains(byte))
        }).count() as u64;
        prop_assert_eq!(summary.files[0].read, non_blank_lines, "every NDJSON line is one record");
        prop_assert_eq!(lake_events(&lake_dir).height() as u64, summary.accepted);
        prop_assert_eq!(lake_rejects(&lake_dir).len() as u64, summary.rejected_total());
    }
}

//! One fixture record per reject reason of events.md, each asserting the exact reason and
//! line, including the order in which reasons win when several apply.

use std::io::Write;

use crmkpi_ingest::{IngestError, Lake, NoProgress, RunStatus, ingest};

use crate::common::{config_with, ingest_into, lake_events, lake_rejects, strings, write_dump};

/// Line by line: the record, and what must become of it.
const NDJSON_FIXTURE: &[(&str, Option<&str>)] = &[
    (
        r#"{"event_id":"e1","event_type":"order_placed","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1","order_id":"o1","amount":10}"#,
        None,
    ),
    (r#"{"event_id": "e2", "event_type": "order_placed""#, Some("malformed_record")),
    (r#"[1, 2, 3]"#, Some("malformed_record")),
    ("", None),
    (
        r#"{"event_id":{"x":1},"event_type":"site_visited","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1"}"#,
        Some("malformed_record"),
    ),
    (r#"{"event_type":"site_visited","occurred_at":"bad","customer_id":"c1"}"#, Some("missing_field:event_id")),
    (r#"{"event_id":"e7","occurred_at":"bad"}"#, Some("missing_field:event_type")),
    (r#"{"event_id":"e8","event_type":"deal_closed"}"#, Some("missing_field:occurred_at")),
    (
        r#"{"event_id":"e9","event_type":"deal_closed","occurred_at":"2024-01-05T10:00:00Z"}"#,
        Some("unknown_event_type"),
    ),
    (
        r#"{"event_id":"e10","event_type":"order_placed","occurred_at":"bad","amount":-1}"#,
        Some("missing_field:customer_id"),
    ),
    (
        r#"{"event_id":"e11","event_type":"order_placed","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1","amount":5}"#,
        Some("missing_field:order_id"),
    ),
    (
        r#"{"event_id":"e12","event_type":"order_placed","occurred_at":"2024-13-05T10:00:00Z","customer_id":"c1","order_id":"o12","amount":-5}"#,
        Some("invalid_timestamp"),
    ),
    (
        r#"{"event_id":"e13","event_type":"deal_created","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1","deal_id":"d1","amount":"ten"}"#,
        Some("invalid_amount"),
    ),
    (
        r#"{"event_id":"e14","event_type":"survey_answered","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1","survey":"nps","score":11,"currency":"GBP"}"#,
        Some("invalid_score"),
    ),
    (
        r#"{"event_id":"e15","event_type":"survey_answered","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1","survey":"stars","score":3}"#,
        Some("invalid_score"),
    ),
    (
        r#"{"event_id":"e16","event_type":"spend_recorded","occurred_at":"2024-01-05T10:00:00Z","amount":100,"category":"branding","currency":"GBP"}"#,
        Some("invalid_category"),
    ),
    (
        r#"{"event_id":"e17","event_type":"order_placed","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1","order_id":"o17","amount":5,"currency":"usd"}"#,
        Some("unknown_currency"),
    ),
    (
        r#"{"event_id":"e1","event_type":"order_placed","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1","order_id":"o1","amount":11}"#,
        Some("conflicting_duplicate"),
    ),
    (
        r#"{"event_id":"e1","event_type":"order_placed","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1","order_id":"o1","amount":10}"#,
        None,
    ),
    (
        r#"{"event_id":"e1","event_type":"order_placed","occurred_at":"never","customer_id":"c1","order_id":"o1","amount":10}"#,
        Some("invalid_timestamp"),
    ),
    (
        r#"{"event_id":"","event_type":"site_visited","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1"}"#,
        Some("missing_field:event_id"),
    ),
    (
        r#"{"event_id":"e22","event_type":"site_visited","occurred_at":"2024-01-05T10:00:00Z","customer_id":null}"#,
        Some("missing_field:customer_id"),
    ),
    (
        r#"{"event_id":"e23","event_type":"survey_answered","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1","survey":"csat","score":4.0,"amount":true}"#,
        Some("invalid_amount"),
    ),
    (
        r#"{"event_id":23,"event_type":"site_visited","occurred_at":1704448800000,"customer_id":42,"extra":{"ignored":true}}"#,
        None,
    ),
    (
        r#"{"event_id":"e25","event_type":"survey_answered","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1","survey":"csat","score":"4.5"}"#,
        Some("invalid_score"),
    ),
];

#[test]
fn every_ndjson_reject_reason_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text: Vec<&str> = NDJSON_FIXTURE.iter().map(|(line, _)| *line).collect();
    let path = write_dump(dir.path(), "fixture.ndjson", &text.join("\n"));
    let lake = dir.path().join("lake");
    let report = ingest_into(&lake, &[path], &config_with(1.0));

    let expected: Vec<(String, i64, String)> = NDJSON_FIXTURE
        .iter()
        .enumerate()
        .filter_map(|(index, (_, reason))| {
            reason.map(|reason| ("fixture.ndjson".to_owned(), index as i64 + 1, reason.to_owned()))
        })
        .collect();
    assert_eq!(lake_rejects(&lake), expected);
    // 25 lines, one blank: 24 records; e1 and "23" accepted, one plain duplicate.
    assert_eq!(report.summary.read, 24);
    assert_eq!(report.summary.accepted, 2);
    assert_eq!(report.summary.duplicates, 1);
    assert_eq!(report.summary.rejected_total(), 21);
    let events = lake_events(&lake);
    assert_eq!(strings(&events, "event_id"), vec![Some("23".to_owned()), Some("e1".to_owned())]);
    assert_eq!(strings(&events, "customer_id"), vec![Some("42".to_owned()), Some("c1".to_owned())]);
}

#[test]
fn csv_reject_reasons_and_multi_line_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "event_id,event_type,occurred_at,customer_id,order_id,amount,currency,extra\n\
c1,order_placed,2024-01-05T10:00:00Z,cust,o1,\"1,000.5\",,x\n\
c2,order_placed,2024-01-05T10:00:00Z,cust,o2,12.5,USD,x\n\
c3,order_placed,2024-01-05T10:00:00Z,cust\n\
c4,site_visited,2024-01-05T10:00:00Z,\"multi\n\
line\",,,,x\n\
\n\
c5,order_placed,\"2024-01-05T10:00:00Z\",cust,o5,abc,,\"unterminated\n";
    let path = write_dump(dir.path(), "fixture.csv", text);
    let lake = dir.path().join("lake");
    let report = ingest_into(&lake, &[path], &config_with(1.0));
    assert_eq!(
        lake_rejects(&lake),
        vec![
            ("fixture.csv".to_owned(), 2, "invalid_amount".to_owned()),
            ("fixture.csv".to_owned(), 4, "malformed_record".to_owned()),
            ("fixture.csv".to_owned(), 8, "malformed_record".to_owned()),
        ]
    );
    assert_eq!(report.summary.read, 5);
    let events = lake_events(&lake);
    assert_eq!(strings(&events, "customer_id"), vec![Some("cust".to_owned()), Some("multi\nline".to_owned())]);
    // 12.5 USD at 0.5 EUR per USD.
    let amounts: Vec<Option<f64>> = events.column("amount").expect("amount").f64().expect("f64").iter().collect();
    assert_eq!(amounts, vec![Some(6.25), None]);
    assert_eq!(strings(&events, "currency"), vec![Some("USD".to_owned()), None]);
}

#[test]
fn an_event_in_csv_and_in_ndjson_is_one_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = write_dump(
        dir.path(),
        "a.csv",
        "event_id,event_type,occurred_at,customer_id,order_id,amount\ne1,order_placed,2024-01-05 11:00:00+01:00,c1,o1,10.0\n",
    );
    let ndjson = write_dump(
        dir.path(),
        "b.ndjson",
        r#"{"event_id":"e1","event_type":"order_placed","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1","order_id":"o1","amount":10}"#,
    );
    let report = ingest_into(&dir.path().join("lake"), &[ndjson, csv], &config_with(0.0));
    assert_eq!((report.summary.accepted, report.summary.duplicates, report.summary.rejected_total()), (1, 1, 0));
    // Files are read in path order: the CSV (a.csv) is the accepted one.
    assert_eq!(report.summary.files[0].accepted, 1);
    assert!(report.summary.files[0].path.ends_with("a.csv"));
}

#[test]
fn reject_ratio_over_the_limit_keeps_only_rejects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good =
        r#"{"event_id":"e1","event_type":"site_visited","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1"}"#;
    let bad = r#"{"event_id":"e2","event_type":"site_visited","occurred_at":"2024-01-05T10:00:00Z"}"#;
    let path = write_dump(dir.path(), "half.ndjson", &format!("{good}\n{bad}\n"));
    // Exactly at the limit passes: 1 of 2 rejected with max 0.5.
    let at_limit = ingest_into(&dir.path().join("lake_ok"), std::slice::from_ref(&path), &config_with(0.5));
    assert_eq!(at_limit.status, RunStatus::Committed);
    assert_eq!(lake_events(&dir.path().join("lake_ok")).height(), 1);
    // Over the limit fails: rejects are kept, no event enters the lake.
    let lake = dir.path().join("lake_strict");
    let over = ingest_into(&lake, &[path], &config_with(0.49));
    assert_eq!(over.status, RunStatus::RejectRatioExceeded);
    assert_eq!(lake_events(&lake).height(), 0);
    assert_eq!(lake_rejects(&lake), vec![("half.ndjson".to_owned(), 2, "missing_field:customer_id".to_owned())]);
}

#[test]
fn corrupt_zstd_fails_and_leaves_the_lake_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake_dir = dir.path().join("lake");
    let first = write_dump(
        dir.path(),
        "first.ndjson",
        r#"{"event_id":"e0","event_type":"site_visited","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1"}"#,
    );
    ingest_into(&lake_dir, &[first], &config_with(0.0));
    let lake = Lake::new(&lake_dir);
    let runs_before = lake.runs().expect("runs");
    let files_before = lake.event_files().expect("files");

    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
    encoder.include_checksum(true).expect("checksum");
    for number in 0..20_000 {
        writeln!(encoder, r#"{{"event_id":"z{number}","event_type":"site_visited","occurred_at":"2024-02-05T10:00:00Z","customer_id":"c{number}"}}"#)
            .expect("write");
    }
    let mut compressed = encoder.finish().expect("finish");
    let middle = compressed.len() / 2;
    for byte in &mut compressed[middle..middle + 64] {
        *byte = !*byte;
    }
    let corrupt = dir.path().join("corrupt.ndjson.zst");
    std::fs::write(&corrupt, compressed).expect("write");

    let error = ingest(&lake, &[corrupt.to_string_lossy().into_owned()], &config_with(1.0), &NoProgress)
        .expect_err("a corrupt file stops the run");
    assert!(matches!(error, IngestError::Read { .. }), "{error}");
    assert!(error.to_string().contains("corrupt.ndjson.zst"), "{error}");
    assert_eq!(lake.runs().expect("runs"), runs_before);
    assert_eq!(lake.event_files().expect("files"), files_before);
    assert_eq!(std::fs::read_dir(lake_dir.join("_snapshots")).expect("snapshots").count(), 1);
    assert_eq!(lake_events(&lake_dir).height(), 1);
}

#[test]
fn unreadable_inputs_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::new(dir.path().join("lake"));
    let missing =
        ingest(&lake, &["no/such/file.ndjson".to_owned()], &config_with(0.0), &NoProgress).expect_err("missing");
    assert!(matches!(missing, IngestError::NoSuchInput { .. }), "{missing}");
    let binary = dir.path().join("binary.ndjson");
    std::fs::write(&binary, [0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe, b'\n']).expect("write");
    let not_text =
        ingest(&lake, &[binary.to_string_lossy().into_owned()], &config_with(0.0), &NoProgress).expect_err("binary");
    assert!(matches!(not_text, IngestError::NotUtf8 { .. }), "{not_text}");
    assert!(lake.runs().expect("runs").is_empty());
}

#[test]
fn a_second_writer_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::new(dir.path().join("lake"));
    let _held = lake.lock().expect("first lock");
    let path = write_dump(dir.path(), "one.ndjson", "");
    let error = ingest(&lake, &[path], &config_with(0.0), &NoProgress).expect_err("locked");
    assert!(matches!(error, IngestError::LakeLocked { .. }), "{error}");
    assert!(error.to_string().contains("another ingest"), "{error}");
}

//! Parsing fixtures beyond the reject reasons: encodings (a line that is not UTF-8, a
//! byte-order mark), CSV quoting (a stray quote in an unquoted cell), and JSON numbers in
//! string fields (kept as the text they were written with).

use crate::common::{config_with, ingest_into, lake_events, lake_rejects, strings, write_dump};

fn site_visit(event_id: &str, customer_id: &str) -> String {
    format!(
        r#"{{"event_id":"{event_id}","event_type":"site_visited","occurred_at":"2024-01-05T10:00:00Z","customer_id":"{customer_id}"}}"#
    )
}

/// A later line that is not UTF-8 is a `malformed_record` (not an event with U+FFFD in its
/// fields); the lines around it are read as usual. In CSV the same holds for a record.
#[test]
fn a_line_that_is_not_utf8_is_a_malformed_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Latin-1 "é" (0xE9) in a customer id on line 2.
    let latin1: Vec<u8> =
        site_visit("e2", "caf#").into_bytes().into_iter().map(|byte| if byte == b'#' { 0xE9 } else { byte }).collect();
    let ndjson = [site_visit("e1", "c1").into_bytes(), latin1, site_visit("e3", "c3").into_bytes()].join(&b'\n');
    let ndjson_path = dir.path().join("latin1.ndjson");
    std::fs::write(&ndjson_path, ndjson).expect("write");
    let csv = b"event_id,event_type,occurred_at,customer_id\n\
c1,site_visited,2024-01-05T10:00:00Z,x1\n\
c2,site_visited,2024-01-05T10:00:00Z,\"caf\xE9\n\
still c2\"\n\
c3,site_visited,2024-01-05T10:00:00Z,x3\n";
    let csv_path = dir.path().join("latin1.csv");
    std::fs::write(&csv_path, csv).expect("write");

    let lake = dir.path().join("lake");
    let inputs = [csv_path, ndjson_path].map(|path| path.to_string_lossy().into_owned());
    let report = ingest_into(&lake, &inputs, &config_with(1.0));
    assert_eq!(
        lake_rejects(&lake),
        vec![
            ("latin1.csv".to_owned(), 3, "malformed_record".to_owned()),
            ("latin1.ndjson".to_owned(), 2, "malformed_record".to_owned()),
        ]
    );
    assert_eq!((report.summary.read, report.summary.accepted, report.summary.rejected_total()), (6, 4, 2));
    let events = lake_events(&lake);
    assert_eq!(
        strings(&events, "event_id"),
        ["c1", "c3", "e1", "e3"].map(|id| Some(id.to_owned())).to_vec(),
        "no event carries a replacement character"
    );
}

/// JSON strings with escapes reach the lake unescaped, in every field of every record that has
/// them, over several batches (a batch's unescaped strings are kept while its events are
/// written, then let go of when the batch is filled again: 30,000 records are 8 batches, more
/// than are in flight at once).
#[test]
fn json_escapes_reach_the_lake_unescaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records = 30_000;
    let text: String = (0..records)
        .map(|n| {
            format!(
                "{{\"event_id\":\"e\\u005f{n:05}\",\"event_type\":\"site_visited\",\"occurred_at\":\"2024-01-05T10:00:00Z\",\
                 \"customer_id\":\"caf\\u00e9 \\\"{n}\\\"\",\"channel\":\"web\\\\{n}\"}}\n"
            )
        })
        .collect();
    let path = write_dump(dir.path(), "escapes.ndjson", &text);
    let lake = dir.path().join("lake");
    let report = ingest_into(&lake, &[path], &config_with(0.0));
    assert_eq!((report.summary.read, report.summary.accepted), (records, records));
    let events = lake_events(&lake);
    let expected = |text: &dyn Fn(u64) -> String| (0..records).map(|n| Some(text(n))).collect::<Vec<_>>();
    assert_eq!(strings(&events, "event_id"), expected(&|n| format!("e_{n:05}")));
    assert_eq!(strings(&events, "customer_id"), expected(&|n| format!("café \"{n}\"")));
    assert_eq!(strings(&events, "channel"), expected(&|n| format!("web\\{n}")));
}

/// A UTF-8 byte-order mark at the start of a file is not part of its first record, in NDJSON
/// as in CSV.
#[test]
fn a_byte_order_mark_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ndjson = write_dump(dir.path(), "bom.ndjson", &format!("\u{feff}{}\n", site_visit("e1", "c1")));
    let csv = write_dump(
        dir.path(),
        "bom.csv",
        "\u{feff}event_id,event_type,occurred_at,customer_id\nc1,site_visited,2024-01-05T10:00:00Z,x1\n",
    );
    let report = ingest_into(&dir.path().join("lake"), &[ndjson, csv], &config_with(0.0));
    assert_eq!((report.summary.read, report.summary.accepted), (2, 2));
}

/// A quote inside an unquoted cell is text (as Python's csv module reads it): the record keeps
/// it, and the following records are read one by one with their own lines, not joined into
/// one malformed record.
#[test]
fn a_stray_quote_in_an_unquoted_csv_cell_is_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "event_id,event_type,occurred_at,customer_id,channel\n\
s1,site_visited,2024-01-05T10:00:00Z,c1,5\" display\n\
s2,site_visited,2024-01-05T10:00:00Z,c2,organic\n\
s3,site_visited,2024-01-05T10:00:00Z\n\
\n\
s4,site_visited,2024-01-05T10:00:00Z,c4,\"quoted, with comma\"\n\
s5,site_visited,2024-01-05T10:00:00Z,c5,email\n";
    let path = write_dump(dir.path(), "stray.csv", text);
    let lake = dir.path().join("lake");
    let report = ingest_into(&lake, &[path], &config_with(1.0));
    assert_eq!(report.summary.read, 5);
    assert_eq!(report.summary.accepted, 4);
    assert_eq!(report.summary.files[0].read, 5);
    assert_eq!(lake_rejects(&lake), vec![("stray.csv".to_owned(), 4, "malformed_record".to_owned())]);
    let events = lake_events(&lake);
    assert_eq!(strings(&events, "event_id"), ["s1", "s2", "s4", "s5"].map(|id| Some(id.to_owned())).to_vec());
    assert_eq!(
        strings(&events, "channel"),
        ["5\" display", "organic", "quoted, with comma", "email"].map(|id| Some(id.to_owned())).to_vec()
    );
}

/// A JSON number in a string field becomes its JSON text as written: `1.50` stays `"1.50"`,
/// the same event as a CSV cell `1.50`.
#[test]
fn a_json_number_in_a_string_field_keeps_its_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ndjson = write_dump(
        dir.path(),
        "b.ndjson",
        r#"{"event_id":1.50,"event_type":"order_placed","occurred_at":"2024-01-05T10:00:00Z","customer_id":1e3,"order_id":-0.0,"amount":1.50}"#,
    );
    let csv = write_dump(
        dir.path(),
        "a.csv",
        "event_id,event_type,occurred_at,customer_id,order_id,amount\n1.50,order_placed,2024-01-05T10:00:00Z,1e3,-0.0,1.5\n",
    );
    let lake = dir.path().join("lake");
    let report = ingest_into(&lake, &[ndjson, csv], &config_with(0.0));
    assert_eq!((report.summary.accepted, report.summary.duplicates, report.summary.rejected_total()), (1, 1, 0));
    let events = lake_events(&lake);
    assert_eq!(strings(&events, "event_id"), vec![Some("1.50".to_owned())]);
    assert_eq!(strings(&events, "customer_id"), vec![Some("1e3".to_owned())]);
    assert_eq!(strings(&events, "order_id"), vec![Some("-0.0".to_owned())]);
}

/// A JSON boolean in a string field is its JSON text, `true` or `false`: the same event as a CSV
/// record with that text (a duplicate, not a conflict).
#[test]
fn a_json_boolean_in_a_string_field_is_its_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ndjson = write_dump(
        dir.path(),
        "b.ndjson",
        r#"{"event_id":"o1","event_type":"site_visited","occurred_at":"2024-01-05T10:00:00Z","customer_id":true,"channel":false}"#,
    );
    let csv = write_dump(
        dir.path(),
        "a.csv",
        "event_id,event_type,occurred_at,customer_id,channel\no1,site_visited,2024-01-05T10:00:00Z,true,false\n",
    );
    let lake = dir.path().join("lake");
    let report = ingest_into(&lake, &[ndjson, csv], &config_with(0.0));
    assert_eq!((report.summary.accepted, report.summary.duplicates, report.summary.rejected_total()), (1, 1, 0));
    let events = lake_events(&lake);
    assert_eq!(strings(&events, "customer_id"), vec![Some("true".to_owned())]);
    assert_eq!(strings(&events, "channel"), vec![Some("false".to_owned())]);
}

/// Integer ids beyond 64 bits keep all their digits: two ids that differ only past 2^64 (and
/// past f64 precision) are two events, not a duplicate.
#[test]
fn integer_ids_beyond_64_bits_stay_distinct() {
    let dir = tempfile::tempdir().expect("tempdir");
    let event = |id: &str| {
        format!(
            r#"{{"event_id":{id},"event_type":"site_visited","occurred_at":"2024-01-05T10:00:00Z","customer_id":{id}}}"#
        )
    };
    let first = "18446744073709551616000001";
    let second = "18446744073709551616000002";
    let path = write_dump(dir.path(), "big.ndjson", &format!("{}\n{}\n", event(first), event(second)));
    let lake = dir.path().join("lake");
    let report = ingest_into(&lake, &[path], &config_with(0.0));
    assert_eq!((report.summary.accepted, report.summary.duplicates, report.summary.rejected_total()), (2, 0, 0));
    let events = lake_events(&lake);
    assert_eq!(strings(&events, "event_id"), vec![Some(first.to_owned()), Some(second.to_owned())]);
    assert_eq!(strings(&events, "customer_id"), vec![Some(first.to_owned()), Some(second.to_owned())]);
}

/// A line of only whitespace (spaces, tabs, a vertical tab, a form feed, a carriage return) is
/// blank: skipped, not read, but counted for the line numbers after it (found by the fuzz test).
#[test]
fn a_line_of_whitespace_is_blank() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!("{}\n \t\x0b\x0c\r\n{}\n{{\n", site_visit("e1", "c1"), site_visit("e2", "c2"));
    let dump = write_dump(dir.path(), "blank.ndjson", &text);
    let lake = dir.path().join("lake");
    let report = ingest_into(&lake, &[dump], &config_with(1.0));
    assert_eq!(report.summary.read, 3);
    assert_eq!(report.summary.accepted, 2);
    assert_eq!(lake_rejects(&lake), vec![("blank.ndjson".to_owned(), 4, "malformed_record".to_owned())]);
}

/// Two bad records that a lone carriage return splits out of one line have the same line,
/// reason and text: both are rejects of the run (found by the long fuzz run), and a re-ingest
/// of the same file adds neither again.
#[test]
fn identical_rejects_of_one_run_are_all_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dump = write_dump(dir.path(), "cr.csv", "event_id,event_type,occurred_at\nbad\rbad\n");
    let lake = dir.path().join("lake");
    let first = ingest_into(&lake, std::slice::from_ref(&dump), &config_with(1.0));
    assert_eq!(first.summary.read, 2);
    assert_eq!(first.summary.rejected_total(), 2);
    assert_eq!(lake_rejects(&lake).len(), 2);
    let again = ingest_into(&lake, &[dump], &config_with(1.0));
    assert_eq!(again.summary.rejected_total(), 2);
    assert_eq!(lake_rejects(&lake).len(), 2, "a re-ingest adds no reject");
}

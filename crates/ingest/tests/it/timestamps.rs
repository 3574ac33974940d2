//! Each accepted `occurred_at` form lands as the right UTC instant: offsets, `Z`, a space
//! separator, fractions (truncated to microseconds), naive local times in a DST zone on both
//! DST edges (ambiguous: the earlier instant; in the gap: rejected), and epoch milliseconds.

use chrono_tz::Europe::Berlin;

use crate::common::{config_with, ingest_into, instants, lake_events, lake_rejects, micros, write_dump};

/// (line's `occurred_at` as JSON, the instant it must become, or None when rejected)
const CASES: &[(&str, Option<&str>)] = &[
    (r#""2024-03-04T17:32:58+01:00""#, Some("2024-03-04T16:32:58Z")),
    (r#""2024-03-04T16:32:58Z""#, Some("2024-03-04T16:32:58Z")),
    (r#""2024-03-04 16:32:58-05:30""#, Some("2024-03-04T22:02:58Z")),
    (r#""2024-03-04T16:32:58.123456789Z""#, Some("2024-03-04T16:32:58.123456Z")),
    // Naive: read in source_timezone = Europe/Berlin (CET, +01:00 in January).
    (r#""2024-01-15T10:00:00""#, Some("2024-01-15T09:00:00Z")),
    // Spring forward 2024-03-31: 02:00-03:00 does not exist.
    (r#""2024-03-31T02:30:00""#, None),
    (r#""2024-03-31T01:59:59""#, Some("2024-03-31T00:59:59Z")),
    (r#""2024-03-31T03:00:00""#, Some("2024-03-31T01:00:00Z")),
    // Fall back 2024-10-27: 02:00-03:00 happens twice; the earlier (CEST, +02:00) wins.
    (r#""2024-10-27T02:30:00""#, Some("2024-10-27T00:30:00Z")),
    (r#""2024-10-27T03:00:00""#, Some("2024-10-27T02:00:00Z")),
    // Epoch milliseconds as a JSON integer only.
    ("1709569978123", Some("2024-03-04T16:32:58.123Z")),
    (r#""1709569978123""#, None),
    ("1709569978.5", None),
    (r#""2024-03-04T16:32:60Z""#, None),
    (r#""2024-03-04T16:32Z""#, None),
    (r#""2024-03-04T16:32:58+0100""#, None),
];

#[test]
fn every_timestamp_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines: Vec<String> = CASES
        .iter()
        .enumerate()
        .map(|(index, (occurred_at, _))| {
            format!(r#"{{"event_id":"t{index:02}","event_type":"site_visited","customer_id":"c1","occurred_at":{occurred_at}}}"#)
        })
        .collect();
    let path = write_dump(dir.path(), "times.ndjson", &lines.join("\n"));
    let mut config = config_with(1.0);
    config.source_timezone = Berlin;
    let lake = dir.path().join("lake");
    ingest_into(&lake, &[path], &config);

    let expected_instants: Vec<i64> = CASES.iter().filter_map(|(_, expected)| expected.map(micros)).collect();
    assert_eq!(instants(&lake_events(&lake)), expected_instants);
    let expected_rejects: Vec<(String, i64, String)> = CASES
        .iter()
        .enumerate()
        .filter(|(_, (_, expected))| expected.is_none())
        .map(|(index, _)| ("times.ndjson".to_owned(), index as i64 + 1, "invalid_timestamp".to_owned()))
        .collect();
    assert_eq!(lake_rejects(&lake), expected_rejects);
}

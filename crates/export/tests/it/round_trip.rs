//! The Parquet and CSV files read back with polars equal the frames written, with the spec's
//! types and text formats; a second write replaces the directory whole.

use std::collections::BTreeMap;

use crmkpi_export::manifest::LakeInfo;
use crmkpi_export::{ManifestInput, OutputTable, ReportChoice, write_outputs};
use polars::prelude::*;

fn sample_frame() -> DataFrame {
    let day = Int32Chunked::from_vec("period".into(), vec![19_723, 19_754, 19_783]).into_date().into_column();
    let instant = Int64Chunked::from_slice_options(
        "closed_at".into(),
        &[Some(1_709_569_978_000_000), Some(1_709_569_978_123_456), None],
    )
    .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
    .into_column();
    let columns = vec![
        day,
        Column::new("segment".into(), vec![Some("all"), Some("channel=a,b \"quoted\""), None]),
        Column::new("count".into(), vec![Some(1i64), None, Some(-3)]),
        Column::new("value".into(), vec![Some(0.1f64), Some(2.5e-7), None]),
        Column::new("flag".into(), vec![Some(true), Some(false), None]),
        instant,
    ];
    DataFrame::new(3, columns).expect("frame")
}

fn manifest_input(run_id: &str) -> ManifestInput {
    ManifestInput {
        crmkpi_version: "test".to_owned(),
        run_id: run_id.to_owned(),
        as_of: "2024-03-04T16:32:58.000000Z".to_owned(),
        started_at: "2024-03-04T16:32:58.000Z".to_owned(),
        config: serde_json::json!({"timezone": "UTC"}),
        config_hash: "abc".to_owned(),
        lake: LakeInfo {
            path: "lake".to_owned(),
            events: 3,
            per_event_type: BTreeMap::from([("order_placed".to_owned(), 3)]),
        },
        warnings: vec![],
        stage_seconds: BTreeMap::new(),
    }
}

#[test]
fn parquet_and_csv_read_back_equal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let frame = sample_frame();
    let tables = vec![OutputTable { name: "sample".to_owned(), frame: frame.clone() }];
    let manifest = write_outputs(&out, &tables, manifest_input("run-1"), ReportChoice::Skip).expect("write");

    let parquet =
        ParquetReader::new(std::fs::File::open(out.join("sample.parquet")).expect("open")).finish().expect("read");
    assert_eq!(parquet, frame);
    assert_eq!(
        parquet.schema().get("closed_at"),
        Some(&DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)))
    );
    assert_eq!(parquet.schema().get("period"), Some(&DataType::Date));

    let csv = std::fs::read_to_string(out.join("sample.csv")).expect("csv");
    let expected_csv = "period,segment,count,value,flag,closed_at\n\
2024-01-01,all,1,0.1,true,2024-03-04T16:32:58Z\n\
2024-02-01,\"channel=a,b \"\"quoted\"\"\",,2.5e-7,false,2024-03-04T16:32:58.123456Z\n\
2024-03-01,,-3,,,\n";
    assert_eq!(csv, expected_csv);

    assert_eq!(manifest.tables.len(), 1);
    let table = &manifest.tables[0];
    assert_eq!(table.rows, 3);
    let types: Vec<(&str, &str)> =
        table.columns.iter().map(|column| (column.name.as_str(), column.r#type.as_str())).collect();
    assert_eq!(
        types,
        vec![
            ("period", "date"),
            ("segment", "str"),
            ("count", "i64"),
            ("value", "f64"),
            ("flag", "bool"),
            ("closed_at", "ts")
        ]
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).expect("manifest")).expect("json");
    for key in [
        "crmkpi_version",
        "run_id",
        "as_of",
        "started_at",
        "finished_at",
        "config",
        "config_hash",
        "lake",
        "tables",
        "warnings",
        "stage_seconds",
        "peak_memory_bytes",
    ] {
        assert!(written.get(key).is_some(), "manifest lacks {key}");
    }
    let csv_file = &table.files[1];
    assert_eq!(csv_file.name, "sample.csv");
    let digest: String =
        <sha2::Sha256 as sha2::Digest>::digest(csv.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect();
    assert_eq!(csv_file.sha256, digest);
}

#[test]
fn a_new_run_replaces_the_directory_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let first = vec![
        OutputTable { name: "one".to_owned(), frame: sample_frame() },
        OutputTable { name: "two".to_owned(), frame: sample_frame() },
    ];
    write_outputs(&out, &first, manifest_input("run-1"), ReportChoice::Skip).expect("first write");
    let second = vec![OutputTable { name: "one".to_owned(), frame: sample_frame().head(Some(1)) }];
    write_outputs(&out, &second, manifest_input("run-2"), ReportChoice::Skip).expect("second write");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("list")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["manifest.json", "one.csv", "one.parquet"]);
    let siblings: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(siblings, vec!["out"], "no staging directory is left behind");
}

//! The commands end to end: pipeline on a generated dump, summaries, exit codes 1/2/3 with
//! messages that say what and where, and identical files from two computes of one lake.

use polars::prelude::*;

use crate::common::{Workdir, assert_success};

#[test]
fn pipeline_writes_tables_and_manifest() {
    let workdir = Workdir::new();
    workdir.generate(3_000, 0.005);
    std::fs::write(workdir.path("crmkpi.toml"), "timezone = \"Europe/Berlin\"\n[fx]\nUSD = 0.9\n").expect("config");
    let output = workdir.run(&["pipeline", "dump", "--lake", "lake", "--out", "out"]);
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("kpi_monthly"), "{stdout}");

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(workdir.path("out/manifest.json")).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["config"]["timezone"], "Europe/Berlin");
    assert!(manifest["lake"]["events"].as_u64().expect("events") > 2_000);
    let table = &manifest["tables"][0];
    assert_eq!(table["name"], "kpi_monthly");
    let frame = ParquetReader::new(std::fs::File::open(workdir.path("out/kpi_monthly.parquet")).expect("open"))
        .finish()
        .expect("read");
    assert_eq!(frame.height() as u64, table["rows"].as_u64().expect("rows"));
    let schema: Vec<(String, DataType)> =
        frame.schema().iter().map(|(name, dtype)| (name.to_string(), dtype.clone())).collect();
    assert_eq!(
        schema,
        vec![
            ("period".to_owned(), DataType::Date),
            ("metric".to_owned(), DataType::String),
            ("segment".to_owned(), DataType::String),
            ("value".to_owned(), DataType::Float64),
            ("numerator".to_owned(), DataType::Float64),
            ("denominator".to_owned(), DataType::Float64),
        ]
    );
    let csv = std::fs::read_to_string(workdir.path("out/kpi_monthly.csv")).expect("csv");
    assert_eq!(csv.lines().count(), frame.height() + 1);
    assert!(csv.starts_with("period,metric,segment,value,numerator,denominator\n"));
}

#[test]
fn two_computes_of_one_lake_write_identical_tables() {
    let workdir = Workdir::new();
    workdir.generate(2_000, 0.0);
    assert_success(&workdir.run(&["ingest", "dump", "--lake", "lake"]));
    assert_success(&workdir.run(&["compute", "--lake", "lake", "--out", "first", "--as-of", "2024-12-31"]));
    assert_success(&workdir.run(&["compute", "--lake", "lake", "--out", "second", "--as-of", "2024-12-31"]));
    let mut compared = 0;
    for entry in std::fs::read_dir(workdir.path("first")).expect("list") {
        let file = entry.expect("entry").file_name();
        if file == "manifest.json" {
            continue;
        }
        let first = std::fs::read(workdir.path("first").join(&file)).expect("first");
        let second = std::fs::read(workdir.path("second").join(&file)).expect("second");
        assert!(first == second, "{file:?} differs between runs");
        compared += 1;
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(workdir.path("first/manifest.json")).expect("manifest"))
            .expect("json");
    let tables = manifest["tables"].as_array().expect("tables").len();
    assert!(tables >= 9, "{tables} tables");
    assert_eq!(compared, 2 * tables + 1, "every table as Parquet and CSV, and report.html");
}

#[test]
fn ingest_and_validate_print_a_json_summary() {
    let workdir = Workdir::new();
    workdir.generate(1_500, 0.004);
    let validate = workdir.run(&["--log-format", "json", "validate", "dump"]);
    assert_success(&validate);
    let ingest = workdir.run(&["--log-format", "json", "ingest", "dump", "--lake", "lake"]);
    assert_success(&ingest);
    for output in [validate, ingest] {
        let last = String::from_utf8_lossy(&output.stdout).lines().last().expect("summary line").to_owned();
        let summary: serde_json::Value = serde_json::from_str(&last).expect("one JSON object");
        let rejected: u64 = summary["rejected"]
            .as_object()
            .expect("by reason")
            .values()
            .map(|count| count.as_u64().expect("count"))
            .sum();
        let read = summary["read"].as_u64().expect("read");
        assert_eq!(read, 1_500);
        assert_eq!(
            read,
            summary["accepted"].as_u64().expect("accepted")
                + summary["duplicates"].as_u64().expect("duplicates")
                + rejected
        );
        assert_eq!(summary["files"].as_array().expect("files").len(), 3);
    }
    assert!(!workdir.path("lake_from_validate").exists());
}

/// A configuration value out of range (one that would make tables NaN) stops every command
/// with exit code 1 and a message naming the file and the key; nothing is written.
#[test]
fn out_of_range_configuration_exits_1_naming_the_key() {
    let workdir = Workdir::new();
    for (text, key) in [
        ("churn_after_days = 0\n", "churn_after_days"),
        ("[clv]\nunit_days = 0\n", "clv.unit_days"),
        ("[health]\nw_support = -0.1\n", "health.w_support"),
        ("[business_hours]\nstart = \"17:00\"\nend = \"09:00\"\n", "business_hours.end"),
    ] {
        std::fs::write(workdir.path("range.toml"), text).expect("config");
        let output = workdir.run(&["--config", "range.toml", "pipeline", "--lake", "lake", "--out", "out"]);
        assert_eq!(output.status.code(), Some(1), "{text}");
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains(&format!("`{key}`")) && message.contains("range.toml"), "{text}: {message}");
    }
    assert!(!workdir.path("lake").exists() && !workdir.path("out").exists());
}

#[test]
fn exit_codes_and_messages() {
    let workdir = Workdir::new();
    workdir.generate(1_000, 0.05);

    let too_dirty = workdir.run(&["ingest", "dump", "--lake", "lake"]);
    assert_eq!(too_dirty.status.code(), Some(3), "5% dirty > max_reject_ratio 1%");
    assert!(String::from_utf8_lossy(&too_dirty.stderr).contains("max_reject_ratio"));

    let missing = workdir.run(&["ingest", "nowhere/*.ndjson", "--lake", "lake"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nowhere/*.ndjson"));

    std::fs::write(workdir.path("bad.toml"), "churn_after_days = 90\n[clv]\nunit_dayz = 7\n").expect("config");
    let bad_config = workdir.run(&["--config", "bad.toml", "validate", "dump"]);
    assert_eq!(bad_config.status.code(), Some(1));
    let message = String::from_utf8_lossy(&bad_config.stderr);
    assert!(message.contains("unit_dayz") && message.contains("bad.toml"), "{message}");

    std::fs::write(workdir.path("loose.toml"), "max_reject_ratio = 0.5\n").expect("config");
    assert_success(&workdir.run(&["--config", "loose.toml", "ingest", "dump", "--lake", "lake"]));
    let unknown_table = workdir.run(&["compute", "--lake", "lake", "--out", "out", "--tables", "kpi_monthly,nope"]);
    assert_eq!(unknown_table.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown_table.stderr).contains("nope"));
    let bad_as_of = workdir.run(&["compute", "--lake", "lake", "--out", "out", "--as-of", "last tuesday"]);
    assert_eq!(bad_as_of.status.code(), Some(2));
    let usage = workdir.run(&["compute", "--lake"]);
    assert_eq!(usage.status.code(), Some(2));
    let no_lake = workdir.run(&["compute", "--lake", "empty", "--out", "out"]);
    assert_eq!(no_lake.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_lake.stderr).contains("crmkpi ingest"));
}

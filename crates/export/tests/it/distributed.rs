//! The distributed run (the engine's side of the Spark job) played in process, as Spark would
//! drive it: each bucket's events to its first-stage task, the shipments grouped by
//! destination (through their bytes), the driver's fits, the second-stage tasks writing the
//! per-entity tables' parts, the driver's tables and manifest. Its outputs equal `compute`'s.

use std::collections::BTreeMap;
use std::path::Path;

use crmkpi_export::compute_run::{ComputeRequest, NoProgress, compute};
use crmkpi_export::distributed::{self, DistributedRun, TO_DRIVER, TaskSpec};
use crmkpi_schema::Config;
use polars::prelude::*;

use crate::ingested_lake;

/// A lake of a generated dump of `events` events (in `<dir>/lake`), with its configuration.
fn generated_lake(dir: &Path, events: u64) -> Config {
    let config = Config::from_toml("timezone = \"America/New_York\"\n[fx]\nUSD = 0.92\n").expect("config");
    ingested_lake(dir, events, 11, &config);
    config
}

/// Runs the distributed run over `buckets` buckets as Spark would, writing into `out`.
fn run_distributed(lake: &Path, config: &Config, tables: &[String], buckets: u32, out: &Path) -> Vec<String> {
    let request = ComputeRequest { lake, config, tables, as_of: None, memory_limit: None, buckets: Some(buckets) };
    let mut run = DistributedRun::prepare(request, &NoProgress).expect("prepare");
    let spec = TaskSpec::from_json(&run.task_spec().to_json().expect("spec")).expect("spec read");
    // What Spark routes: each bucket's events, and the events of no entity to one more task.
    let context =
        crmkpi_compute::Context::new(crmkpi_compute::open_lake(lake).expect("lake").files, config.clone(), None)
            .expect("context")
            .with_buckets(buckets);
    let mut inputs: Vec<(i32, DataFrame)> =
        (0..buckets).map(|bucket| (bucket as i32, context.bucket_events(bucket).expect("bucket events"))).collect();
    inputs.push((distributed::GLOBAL_BUCKET, context.global_events().expect("global events")));
    let mut by_dest: BTreeMap<i32, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for (bucket, events) in inputs {
        for shipment in distributed::bucket_task(&spec, bucket, events).expect("first stage") {
            let (dest, name, bytes) = shipment.encode().expect("encoded");
            by_dest.entry(dest).or_default().push((name, bytes));
        }
    }
    for (name, bytes) in by_dest.remove(&TO_DRIVER).unwrap_or_default() {
        run.add_driver_shipment(&name, &distributed::decode_frame(&name, &bytes).expect("decoded")).expect("driver");
    }
    run.fit();
    let spec = TaskSpec::from_json(&run.task_spec().to_json().expect("spec")).expect("spec read");
    assert!(spec.fits.is_some() == crmkpi_compute::reads_fits(&crmkpi_compute::select_tables(tables).expect("tables")));
    let staging = run.begin_output(out).expect("staging");
    for (dest, shipments) in by_dest {
        let shipments = shipments
            .into_iter()
            .map(|(name, bytes)| {
                let frame = distributed::decode_frame(&name, &bytes).expect("decoded");
                (name, frame)
            })
            .collect();
        for (name, bytes) in distributed::stage_two_task(&spec, dest, shipments, &staging).expect("second stage") {
            run.add_result(&name, &bytes).expect("result");
        }
    }
    let (computed, manifest) = run.finish(false).expect("finish");
    assert!(
        computed
            .tables
            .iter()
            .all(|table| !["customers", "deals", "deal_stage_visits", "tickets"].contains(&table.name.as_str()))
    );
    manifest.input.warnings
}

/// A table as written: its Parquet file, or its Parquet parts concatenated and sorted by `keys`.
fn written(out: &Path, table: &str, keys: &[&str]) -> DataFrame {
    let path = out.join(format!("{table}.parquet"));
    let read = |path: &Path| ParquetReader::new(std::fs::File::open(path).expect("open")).finish().expect("read");
    if !path.is_dir() {
        return read(&path);
    }
    let mut parts: Vec<_> =
        std::fs::read_dir(&path).expect("parts").map(|entry| entry.expect("entry").path()).collect();
    parts.sort();
    assert!(!parts.is_empty(), "{table}: no parts");
    let frames: Vec<LazyFrame> = parts.iter().map(|part| read(part).lazy()).collect();
    concat(frames, UnionArgs::default())
        .expect("concat")
        .sort(keys.to_vec(), SortMultipleOptions::default())
        .collect()
        .expect("sorted")
}

const PER_ENTITY_KEYS: &[(&str, &[&str])] = &[
    ("customers", &["customer_id"]),
    ("deals", &["deal_id"]),
    ("deal_stage_visits", &["deal_id", "visit"]),
    ("tickets", &["ticket_id"]),
];

fn assert_same_outputs(single: &Path, spread: &Path, tables: &[&str], what: &str) {
    for table in tables {
        let keys = PER_ENTITY_KEYS.iter().find(|(name, _)| name == table).map(|(_, keys)| *keys);
        match keys {
            Some(keys) => {
                assert!(spread.join(format!("{table}.parquet")).is_dir(), "{what}: {table} in parts");
                let (expected, got) = (written(single, table, keys), written(spread, table, keys));
                assert!(got.equals_missing(&expected), "{what}: {table}\n{got}\n{expected}");
            }
            None => {
                for extension in ["parquet", "csv"] {
                    let file = format!("{table}.{extension}");
                    let same = std::fs::read(single.join(&file)).expect("single")
                        == std::fs::read(spread.join(&file)).expect("spread");
                    assert!(same, "{what}: {file} differs");
                }
            }
        }
    }
}

#[test]
fn a_run_spread_over_tasks_writes_what_compute_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = generated_lake(dir.path(), 6_000);
    let lake = dir.path().join("lake");
    let all: Vec<&str> = crmkpi_compute::TABLES.iter().map(|table| table.name).collect();
    let request =
        ComputeRequest { lake: &lake, config: &config, tables: &[], as_of: None, memory_limit: None, buckets: None };
    let single = dir.path().join("single");
    let computed = compute(request, &NoProgress).expect("compute");
    computed.write(&single, false).expect("written");
    // 1 bucket, a few, and more buckets than some entities fill.
    for buckets in [1, 3, 40] {
        let spread = dir.path().join(format!("spread-{buckets}"));
        let warnings = run_distributed(&lake, &config, &[], buckets, &spread);
        assert_eq!(warnings, computed.manifest_input.warnings, "{buckets} buckets");
        assert_same_outputs(&single, &spread, &all, &format!("{buckets} buckets"));
    }
}

#[test]
fn a_selection_of_tables_spread_over_tasks_writes_what_compute_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = generated_lake(dir.path(), 3_000);
    let lake = dir.path().join("lake");
    let tables: Vec<String> = ["deals", "stage_durations", "clv_model"].map(str::to_owned).to_vec();
    let request = ComputeRequest {
        lake: &lake,
        config: &config,
        tables: &tables,
        as_of: None,
        memory_limit: None,
        buckets: None,
    };
    let single = dir.path().join("single");
    compute(request, &NoProgress).expect("compute").write(&single, false).expect("written");
    let spread = dir.path().join("spread");
    run_distributed(&lake, &config, &tables, 5, &spread);
    assert_same_outputs(&single, &spread, &["deals", "stage_durations", "clv_model"], "three tables");
    assert!(!spread.join("customers.parquet").exists());
}

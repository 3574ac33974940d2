//! Test context: builds a lake from NDJSON lines or generated dumps with the ingest crate,
//! runs a table's plan, and reads the lake's events back as plain rows for the reference
//! implementations.

use std::collections::BTreeMap;
use std::path::Path;

use crmkpi_compute::{Context, Run, TABLES, compute_facts, compute_table, data_warnings, open_lake};
use crmkpi_ingest::generator::{GenerateOptions, generate};
use crmkpi_ingest::source::{Compression, Format};
use crmkpi_ingest::{Lake, NoProgress, ingest};
use crmkpi_schema::Config;
use polars::prelude::*;

/// A lake in a temporary directory.
pub struct TestLake {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

impl TestLake {
    /// A lake holding the given NDJSON records.
    pub fn from_lines(lines: &[String], config: &Config) -> TestLake {
        let dir = tempfile::tempdir().expect("tempdir");
        let dump = dir.path().join("dump.ndjson");
        std::fs::write(&dump, lines.join("\n")).expect("write dump");
        ingest(&Lake::new(dir.path().join("lake")), &[dump.to_string_lossy().into_owned()], config, &NoProgress)
            .expect("ingest");
        TestLake { dir }
    }

    /// A lake holding a generated dirty dump.
    pub fn generated(seed: u64, events: u64, config: &Config) -> TestLake {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = GenerateOptions {
            events,
            seed,
            out: dir.path().join("dump"),
            formats: vec![Format::Ndjson, Format::Csv],
            compressions: vec![Compression::None],
            dirty_rate: 0.01,
            events_per_file: events,
        };
        generate(&options).expect("generate");
        let mut config = config.clone();
        config.max_reject_ratio = 1.0;
        config.fx.insert("USD".to_owned(), 0.92);
        ingest(
            &Lake::new(dir.path().join("lake")),
            &[options.out.to_string_lossy().into_owned()],
            &config,
            &NoProgress,
        )
        .expect("ingest");
        TestLake { dir }
    }

    fn lake_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("lake")
    }

    /// The compute context over this lake.
    pub fn context(&self, config: &Config, as_of: Option<i64>) -> Context {
        let lake = open_lake(&self.lake_dir()).expect("open lake");
        Context::new(lake.files, config.clone(), as_of).expect("context")
    }

    /// Every event of the lake as a plain row.
    pub fn rows(&self) -> Vec<EventRow> {
        let files = Lake::new(self.lake_dir()).event_files().expect("files");
        files.iter().flat_map(|path| read_rows(path)).collect()
    }
}

/// The bucket counts every table is computed with: the outputs must not depend on them (a
/// bucket may well have no events at all).
const BUCKET_COUNTS: [u32; 2] = [1, 7];

/// Table `name` computed over the context's lake, checked to be identical for every bucket
/// count of [`BUCKET_COUNTS`].
pub fn table(context: &Context, name: &str) -> DataFrame {
    let frames: Vec<DataFrame> = BUCKET_COUNTS
        .iter()
        .map(|buckets| {
            let context = context.clone().with_buckets(*buckets);
            let spec = TABLES.iter().find(|table| table.name == name).expect("known table");
            // Only the facts the table declares are computed: its plan and its data checks must
            // need no other.
            let facts = compute_facts(&context, std::slice::from_ref(spec), &|_, _| {}).expect("facts");
            let run = Run::new(&context, &facts);
            data_warnings(&run, std::slice::from_ref(spec)).expect("data checks run");
            compute_table(&run, spec).expect("plan runs").frame
        })
        .collect();
    let expected = cells(&frames[0]);
    for (frame, buckets) in frames.iter().zip(BUCKET_COUNTS).skip(1) {
        let actual = cells(frame);
        let differing: Vec<_> = actual.iter().zip(&expected).filter(|(row, one)| row != one).take(3).collect();
        assert!(
            frame.equals_missing(&frames[0]) && differing.is_empty(),
            "{name} with {buckets} buckets differs from 1 bucket ({} and {} rows): {differing:?}",
            actual.len(),
            expected.len()
        );
    }
    frames.into_iter().next().expect("one bucket count")
}

/// Table `name` as a plan, for the tests written against plans.
pub fn plan(context: &Context, name: &str) -> PolarsResult<LazyFrame> {
    Ok(table(context, name).lazy())
}

/// The manifest warnings of a run of every table.
pub fn warnings(context: &Context) -> Vec<String> {
    let facts = compute_facts(context, TABLES, &|_, _| {}).expect("facts");
    data_warnings(&Run::new(context, &facts), TABLES).expect("warnings")
}

/// `kpi_monthly` as a plan.
pub fn kpi_monthly(context: &Context) -> PolarsResult<LazyFrame> {
    plan(context, "kpi_monthly")
}

/// `cohort_retention` as a plan.
pub fn cohort_retention(context: &Context) -> PolarsResult<LazyFrame> {
    plan(context, "cohort_retention")
}

/// `customers` as a plan.
pub fn customers(context: &Context) -> PolarsResult<LazyFrame> {
    plan(context, "customers")
}

/// `clv_model` as a plan.
pub fn clv_model(context: &Context) -> PolarsResult<LazyFrame> {
    plan(context, "clv_model")
}

/// The deal tables as plans.
pub mod sales {
    use crmkpi_compute::Context;
    use polars::prelude::*;

    /// `deals`.
    pub fn deals(context: &Context) -> PolarsResult<LazyFrame> {
        super::plan(context, "deals")
    }
    /// `deal_stage_visits`.
    pub fn deal_stage_visits(context: &Context) -> PolarsResult<LazyFrame> {
        super::plan(context, "deal_stage_visits")
    }
    /// `stage_durations`.
    pub fn stage_durations(context: &Context) -> PolarsResult<LazyFrame> {
        super::plan(context, "stage_durations")
    }
    /// `pipeline_forecast`.
    pub fn pipeline_forecast(context: &Context) -> PolarsResult<LazyFrame> {
        super::plan(context, "pipeline_forecast")
    }
    /// `rep_performance`.
    pub fn rep_performance(context: &Context) -> PolarsResult<LazyFrame> {
        super::plan(context, "rep_performance")
    }
    /// `lost_reasons`.
    pub fn lost_reasons(context: &Context) -> PolarsResult<LazyFrame> {
        super::plan(context, "lost_reasons")
    }
}

/// `tickets` as a plan.
pub mod service {
    /// `tickets`.
    pub fn tickets(context: &crmkpi_compute::Context) -> polars::prelude::PolarsResult<polars::prelude::LazyFrame> {
        super::plan(context, "tickets")
    }
}

/// `campaigns` as a plan.
pub mod marketing {
    /// `campaigns`.
    pub fn campaigns(context: &crmkpi_compute::Context) -> polars::prelude::PolarsResult<polars::prelude::LazyFrame> {
        super::plan(context, "campaigns")
    }
}

/// One lake event as plain Rust values.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// `event_id`.
    pub event_id: String,
    /// `event_type`.
    pub event_type: String,
    /// `occurred_at`, UTC microseconds.
    pub occurred_at: i64,
    /// Text fields by column name (null values absent).
    pub text: BTreeMap<String, String>,
    /// `amount` in the reporting currency.
    pub amount: Option<f64>,
    /// `score`.
    pub score: Option<i64>,
}

impl EventRow {
    /// A text field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.text.get(name).map(String::as_str)
    }
}

fn read_rows(path: &Path) -> Vec<EventRow> {
    let frame = ParquetReader::new(std::fs::File::open(path).expect("open")).finish().expect("read");
    let text_columns = [
        "customer_id",
        "deal_id",
        "order_id",
        "ticket_id",
        "campaign_id",
        "owner_id",
        "stage",
        "currency",
        "channel",
        "kind",
        "category",
        "survey",
        "reason",
    ];
    let string = |name: &str| -> Vec<Option<String>> {
        frame.column(name).expect("column").str().expect("str").iter().map(|value| value.map(str::to_owned)).collect()
    };
    let ids = string("event_id");
    let types = string("event_type");
    let instants: Vec<i64> = frame
        .column("occurred_at")
        .expect("occurred_at")
        .cast(&DataType::Int64)
        .expect("cast")
        .i64()
        .expect("i64")
        .no_null_iter()
        .collect();
    let amounts: Vec<Option<f64>> = frame.column("amount").expect("amount").f64().expect("f64").iter().collect();
    let scores: Vec<Option<i64>> = frame.column("score").expect("score").i64().expect("i64").iter().collect();
    let texts: Vec<(&str, Vec<Option<String>>)> = text_columns.iter().map(|name| (*name, string(name))).collect();
    (0..frame.height())
        .map(|row| EventRow {
            event_id: ids[row].clone().expect("id"),
            event_type: types[row].clone().expect("type"),
            occurred_at: instants[row],
            text: texts
                .iter()
                .filter_map(|(name, values)| values[row].clone().map(|value| ((*name).to_owned(), value)))
                .collect(),
            amount: amounts[row],
            score: scores[row],
        })
        .collect()
}

/// One row of `kpi_monthly`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    /// `period` as days since the epoch.
    pub period: i32,
    /// `metric`.
    pub metric: String,
    /// `segment`.
    pub segment: String,
    /// `value`.
    pub value: Option<f64>,
    /// `numerator`.
    pub numerator: Option<f64>,
    /// `denominator`.
    pub denominator: Option<f64>,
}

/// The rows of a `kpi_monthly` frame.
pub fn metric_rows(frame: &DataFrame) -> Vec<MetricRow> {
    let periods: Vec<i32> = frame
        .column("period")
        .expect("period")
        .cast(&DataType::Int32)
        .expect("cast")
        .i32()
        .expect("i32")
        .no_null_iter()
        .collect();
    let text = |name: &str| -> Vec<String> {
        frame.column(name).expect("column").str().expect("str").no_null_iter().map(str::to_owned).collect()
    };
    let number =
        |name: &str| -> Vec<Option<f64>> { frame.column(name).expect("column").f64().expect("f64").iter().collect() };
    let (metrics, segments) = (text("metric"), text("segment"));
    let (values, numerators, denominators) = (number("value"), number("numerator"), number("denominator"));
    (0..frame.height())
        .map(|row| MetricRow {
            period: periods[row],
            metric: metrics[row].clone(),
            segment: segments[row].clone(),
            value: values[row],
            numerator: numerators[row],
            denominator: denominators[row],
        })
        .collect()
}

/// Whether two optional numbers agree to a relative 1e-9.
pub fn close(left: Option<f64>, right: Option<f64>) -> bool {
    match (left, right) {
        (None, None) => true,
        (Some(left), Some(right)) => (left - right).abs() <= 1e-9 * left.abs().max(right.abs()).max(1.0),
        _ => false,
    }
}

/// An RFC 3339 instant as UTC microseconds.
pub fn micros(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text).expect("instant").timestamp_micros()
}

/// Days since the epoch of a date written `YYYY-MM-DD`.
pub fn day(text: &str) -> i32 {
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date");
    (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

/// One NDJSON record: `fields` are extra `"key": value` pairs written as given.
pub fn event(id: &str, event_type: &str, at: &str, fields: &[(&str, &str)]) -> String {
    let mut line = format!(r#"{{"event_id":"{id}","event_type":"{event_type}","occurred_at":"{at}""#);
    for (key, value) in fields {
        line.push_str(&format!(r#","{key}":{value}"#));
    }
    line.push('}');
    line
}

/// The rows of a frame as text cells (null as `None`; floats in full; timestamps as
/// microseconds), for comparing whole tables.
pub fn cells(frame: &DataFrame) -> Vec<Vec<Option<String>>> {
    let columns: Vec<Vec<Option<String>>> = frame
        .columns()
        .iter()
        .map(|column| {
            let column = match column.dtype() {
                DataType::Datetime(_, _) => column.cast(&DataType::Int64).expect("cast"),
                _ => column.clone(),
            };
            (0..column.len())
                .map(|row| {
                    let value = column.get(row).expect("value");
                    (!value.is_null()).then(|| match value {
                        AnyValue::Float64(number) => format!("{number:?}"),
                        other => other.to_string().trim_matches('"').to_owned(),
                    })
                })
                .collect()
        })
        .collect();
    (0..frame.height()).map(|row| columns.iter().map(|column| column[row].clone()).collect()).collect()
}

/// The value of a quantile by linear interpolation (numpy's default) of sorted values.
pub fn linear_quantile(sorted: &[f64], quantile: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let position = quantile * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    Some(sorted[below] + (sorted[above] - sorted[below]) * (position - below as f64))
}

/// The mean of values, `None` over nothing.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The local date of an instant in `zone`.
pub fn local_date(micros: i64, zone: chrono_tz::Tz) -> chrono::NaiveDate {
    use chrono::TimeZone as _;
    zone.from_utc_datetime(&chrono::DateTime::from_timestamp_micros(micros).expect("instant").naive_utc()).date_naive()
}

/// The reported months (first days) from the earliest event through `as_of`, in `zone`.
pub fn report_months(rows: &[EventRow], as_of: i64, zone: chrono_tz::Tz) -> Vec<chrono::NaiveDate> {
    use chrono::Datelike as _;
    let first = rows
        .iter()
        .filter(|row| row.occurred_at <= as_of)
        .map(|row| local_date(row.occurred_at, zone))
        .min()
        .expect("events");
    let last = local_date(as_of, zone);
    let mut months = Vec::new();
    let mut month = first.with_day(1).expect("first day");
    while month <= last {
        months.push(month);
        month = month.checked_add_months(chrono::Months::new(1)).expect("next month");
    }
    months
}

/// Days since the epoch of a date.
pub fn epoch_day(date: chrono::NaiveDate) -> i32 {
    (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

/// `kpi_monthly` values (value, numerator, denominator) keyed by (period, metric, segment).
pub type Metrics = BTreeMap<(i32, String, String), (Option<f64>, Option<f64>, Option<f64>)>;

/// `kpi_monthly` rows keyed by (period, metric, segment), for the given metrics only.
pub fn metrics_by_key(frame: &DataFrame, metrics: &[&str]) -> Metrics {
    metric_rows(frame)
        .into_iter()
        .filter(|row| metrics.contains(&row.metric.as_str()))
        .map(|row| ((row.period, row.metric, row.segment), (row.value, row.numerator, row.denominator)))
        .collect()
}

/// Asserts two keyed metric maps agree: same keys, values within 1e-9 relative.
pub fn assert_metrics_match(actual: &Metrics, expected: &Metrics, label: &str) {
    let missing: Vec<_> = expected.keys().filter(|key| !actual.contains_key(*key)).collect();
    let extra: Vec<_> = actual.keys().filter(|key| !expected.contains_key(*key)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{label}: missing {missing:?}, extra {extra:?}");
    for (key, (value, numerator, denominator)) in expected {
        let (actual_value, actual_numerator, actual_denominator) = actual[key];
        assert!(
            close(actual_value, *value)
                && close(actual_numerator, *numerator)
                && close(actual_denominator, *denominator),
            "{label} {key:?}: plan {:?}, reference {:?}",
            actual[key],
            (value, numerator, denominator)
        );
    }
}

/// Asserts two tables of cells are equal, numbers with a decimal point within 1e-9 relative.
pub fn assert_cells(actual: Vec<Vec<Option<String>>>, expected: Vec<Vec<Option<String>>>, label: &str) {
    let same = |left: &Option<String>, right: &Option<String>| match (left, right) {
        (Some(left), Some(right)) if left.contains('.') || right.contains('.') => {
            match (left.parse::<f64>(), right.parse::<f64>()) {
                (Ok(left), Ok(right)) => close(Some(left), Some(right)),
                _ => left == right,
            }
        }
        _ => left == right,
    };
    let equal = actual.len() == expected.len()
        && actual
            .iter()
            .zip(&expected)
            .all(|(left, right)| left.len() == right.len() && left.iter().zip(right).all(|(l, r)| same(l, r)));
    assert!(equal, "{label}:\n  plan:     {actual:?}\n  expected: {expected:?}");
}

/// A text cell.
pub fn text(value: &str) -> Option<String> {
    Some(value.to_owned())
}

/// A timestamp cell: the microseconds of an RFC 3339 instant.
pub fn instant(value: &str) -> Option<String> {
    Some(micros(value).to_string())
}

/// A float cell, as [`cells`] writes it.
pub fn number(value: f64) -> Option<String> {
    Some(format!("{value:?}"))
}

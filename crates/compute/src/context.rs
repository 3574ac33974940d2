//! The inputs every KPI plan shares: the lake's events up to `as_of` as a LazyFrame, the
//! resolved configuration, `as_of` itself and the reporting calendar.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use crmkpi_schema::{Config, EventType, LAKE_COLUMNS, event::LakeType};
use polars::prelude::*;

use crate::calendar::Calendar;
use crate::error::ComputeError;

/// Everything a KPI plan reads.
#[derive(Clone)]
pub struct Context {
    events: LazyFrame,
    /// The resolved configuration.
    pub config: Config,
    /// The run's observation instant, UTC microseconds.
    pub as_of: i64,
    /// The earliest `occurred_at` up to `as_of`, UTC microseconds.
    pub earliest_event: i64,
    /// Reported months and `day(as_of)`.
    pub calendar: Calendar,
    /// The customer summaries and model fits, computed once per run and shared by the
    /// `customers` and `clv_model` tables and the manifest warnings.
    pub(crate) clv_fits: Arc<OnceLock<Arc<crate::customers::FittedModels>>>,
    /// Frames several tables start from, by name, collected once per run (see [`Context::shared`]).
    shared_frames: Arc<Mutex<HashMap<&'static str, DataFrame>>>,
}

/// What the lake holds up to `as_of`: event count per event type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LakeStats {
    /// Events with `occurred_at <= as_of`.
    pub events: u64,
    /// The same by event type.
    pub per_event_type: BTreeMap<String, u64>,
}

/// The lake's schema as polars types.
fn lake_schema() -> Schema {
    LAKE_COLUMNS
        .iter()
        .map(|column| {
            let dtype = match column.lake_type {
                LakeType::Str => DataType::String,
                LakeType::Timestamp => DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
                LakeType::F64 => DataType::Float64,
                LakeType::I64 => DataType::Int64,
                LakeType::U64 => DataType::UInt64,
            };
            Field::new(column.name.into(), dtype)
        })
        .collect()
}

/// A lazy scan of the lake's committed event files (an empty frame of the lake's schema when
/// there are none).
pub fn scan_lake(files: &[PathBuf]) -> Result<LazyFrame, ComputeError> {
    let Some(first) = files.first() else {
        return Ok(DataFrame::empty_with_schema(&lake_schema()).lazy());
    };
    let scan_error = |source| ComputeError::Scan { first: first.clone(), source };
    let paths: Vec<PlRefPath> =
        files.iter().map(|path| PlRefPath::try_from_path(path)).collect::<PolarsResult<_>>().map_err(scan_error)?;
    let args = ScanArgsParquet { schema: Some(Arc::new(lake_schema())), ..ScanArgsParquet::default() };
    LazyFrame::scan_parquet_files(paths.into_iter().collect(), args).map_err(scan_error)
}

impl Context {
    /// Resolves `as_of` (default: the latest `occurred_at` in the lake) and the calendar.
    pub fn new(lake: LazyFrame, config: Config, as_of: Option<i64>) -> Result<Context, ComputeError> {
        let bounds = lake
            .clone()
            .filter(as_of.map_or(lit(true), |as_of| col("occurred_at").lt_eq(lit(as_of).cast(timestamp_type()))))
            .select([
                col("occurred_at").min().dt().timestamp(TimeUnit::Microseconds).alias("earliest"),
                col("occurred_at").max().dt().timestamp(TimeUnit::Microseconds).alias("latest"),
            ])
            .collect()
            .map_err(|source| ComputeError::Plan { table: "lake bounds".to_owned(), source })?;
        let value = |name: &str| bounds.column(name).ok().and_then(|column| column.i64().ok()?.get(0));
        let no_events = || ComputeError::NoEvents {
            as_of: as_of.map(|micros| format!(" up to {}", format_instant(micros))).unwrap_or_default(),
        };
        let (earliest, latest) = match (value("earliest"), value("latest")) {
            (Some(earliest), Some(latest)) => (earliest, latest),
            _ => return Err(no_events()),
        };
        let as_of = as_of.unwrap_or(latest);
        let calendar = Calendar::new(earliest, as_of, config.timezone);
        let events = lake.filter(col("occurred_at").lt_eq(lit(as_of).cast(timestamp_type())));
        Ok(Context {
            events,
            config,
            as_of,
            earliest_event: earliest,
            calendar,
            clv_fits: Arc::default(),
            shared_frames: Arc::default(),
        })
    }

    /// The frame `name` built by `plan`, collected the first time a table of this run asks for
    /// it and served from memory afterwards: the frames several tables start from (orders with
    /// their local days, lead origins, customers alive per month) are computed once per run.
    /// The frame is built from the context as it is at that first use; a context is not meant to
    /// change after [`Context::new`].
    pub fn shared(
        &self,
        name: &'static str,
        plan: impl FnOnce() -> PolarsResult<LazyFrame>,
    ) -> PolarsResult<LazyFrame> {
        let cached = self.lock_shared()?.get(name).map(|frame| frame.clone().lazy());
        if let Some(frame) = cached {
            return Ok(frame);
        }
        // Built without holding the lock: a shared frame's plan may use other shared frames.
        let frame = plan()?.collect()?;
        Ok(self.lock_shared()?.entry(name).or_insert(frame).clone().lazy())
    }

    fn lock_shared(&self) -> PolarsResult<std::sync::MutexGuard<'_, HashMap<&'static str, DataFrame>>> {
        self.shared_frames.lock().map_err(|_| polars_err!(ComputeError: "a shared frame's plan panicked"))
    }

    /// The lake's events with `occurred_at <= as_of`.
    pub fn events(&self) -> LazyFrame {
        self.events.clone()
    }

    /// The events of one type, up to `as_of`.
    pub fn events_of(&self, event_type: EventType) -> LazyFrame {
        self.events().filter(is_type(event_type))
    }

    /// Counts the events up to `as_of` by type, for the manifest.
    pub fn lake_stats(&self) -> Result<LakeStats, ComputeError> {
        let counts = self
            .events()
            .group_by([col("event_type")])
            .agg([len().alias("events")])
            .sort(["event_type"], SortMultipleOptions::default())
            .collect()
            .map_err(|source| ComputeError::Plan { table: "lake statistics".to_owned(), source })?;
        let mut stats = LakeStats::default();
        let types = counts.column("event_type").and_then(|column| column.str().cloned());
        let numbers = counts
            .column("events")
            .and_then(|column| column.cast(&DataType::UInt64))
            .and_then(|column| column.u64().cloned());
        if let (Ok(types), Ok(numbers)) = (types, numbers) {
            for (event_type, count) in types.iter().zip(numbers.iter()) {
                if let (Some(event_type), Some(count)) = (event_type, count) {
                    stats.events += count;
                    stats.per_event_type.insert(event_type.to_owned(), count);
                }
            }
        }
        Ok(stats)
    }
}

/// Whether an event row is of the given type.
pub fn is_type(event_type: EventType) -> Expr {
    col("event_type").eq(lit(event_type.name()))
}

/// The polars type of the lake's `occurred_at`.
pub fn timestamp_type() -> DataType {
    DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
}

/// An instant as RFC 3339 UTC text with microseconds.
pub fn format_instant(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

//! What every plan of a run shares: the lake's committed events up to `as_of` (a lazy scan),
//! the resolved configuration, `as_of`, the reporting calendar, and the entity buckets the
//! per-entity work is split into.
//!
//! A bucket holds whole entities: every event of a customer (`customer_id` of the
//! customer-keyed event types), of a deal (`deal_id`) or of a ticket (`ticket_id`) lands in
//! bucket `pmod(xxhash64(key), buckets)`, the XXH64 hash with seed 42 of the key's UTF-8 bytes
//! read as a signed 64-bit number: the same number Spark's `pmod(xxhash64(col), n)` gives.
//! Spend and CRM-user events belong to no entity; they are read once for the whole lake.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crmkpi_ingest::Lake;
use crmkpi_ingest::Snapshot;
use crmkpi_ingest::lake::lake_schema;
use crmkpi_schema::{Config, EventType};
use polars::prelude::*;
use twox_hash::XxHash64;

use crate::error::ComputeError;
use crate::time::calendar::Calendar;

/// The seed of Spark's `xxhash64`.
pub const SPARK_XXHASH64_SEED: u64 = 42;

/// Bytes of memory one event of a bucket takes while its facts are computed: the collected
/// columns and the intermediate frames of the per-entity plans (measured on a generated lake of
/// 10 million events: 3.7 GB for one bucket of all of them).
const BYTES_PER_BUCKET_EVENT: u64 = 400;
/// Events read at once by a pass over the whole lake.
const CHUNK_EVENTS: usize = 1_500_000;
/// Bytes the split holds per event of the chunk it is splitting: its columns and their
/// partition by bucket.
const BYTES_PER_CHUNK_EVENT: u64 = 700;
/// Events per bucket beyond which a run splits into more buckets whatever the memory limit:
/// smaller buckets compute faster (measured on a lake of 10 million events split once into
/// per-bucket files: 8.2 to 8.6 s of facts with 8 or 16 buckets, 11.3 s with 2, 10.2 s with
/// 64).
const TARGET_BUCKET_EVENTS: u64 = 1_000_000;
/// Bytes per event of the lake held besides the bucket: the merged per-entity facts, the parts
/// and the tables built from them (measured: 0.7 GB at 10 million events, 1.5 GB at 40
/// million; with a margin).
const BYTES_PER_LAKE_EVENT: u64 = 50;

/// The entity an event belongs to, by its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// Keyed by `customer_id`.
    Customer,
    /// Keyed by `deal_id`.
    Deal,
    /// Keyed by `ticket_id`.
    Ticket,
}

impl Entity {
    /// The entity of an event type; `None` for spend and CRM-user events.
    pub fn of(event_type: EventType) -> Option<Entity> {
        use EventType as T;
        match event_type {
            T::DealCreated | T::DealStageChanged | T::DealWon | T::DealLost => Some(Entity::Deal),
            T::TicketOpened
            | T::TicketAgentReplied
            | T::TicketCustomerReplied
            | T::TicketResolved
            | T::TicketReopened => Some(Entity::Ticket),
            T::SpendRecorded | T::CrmUserActive => None,
            _ => Some(Entity::Customer),
        }
    }

    /// The column holding the entity's key.
    pub fn key(self) -> &'static str {
        match self {
            Entity::Customer => "customer_id",
            Entity::Deal => "deal_id",
            Entity::Ticket => "ticket_id",
        }
    }
}

/// Spark's `xxhash64` of a string: XXH64 with seed 42 over its UTF-8 bytes, as a signed number.
pub fn spark_xxhash64(key: &str) -> i64 {
    i64::from_ne_bytes(XxHash64::oneshot(SPARK_XXHASH64_SEED, key.as_bytes()).to_ne_bytes())
}

/// The bucket of an entity key among `buckets`: `pmod(xxhash64(key), buckets)`.
pub fn bucket_of(key: &str, buckets: u32) -> u32 {
    let bucket = spark_xxhash64(key).rem_euclid(i64::from(buckets.max(1)));
    u32::try_from(bucket).unwrap_or(0)
}

/// The key column of each event type that belongs to an entity, by type name: what a Spark
/// job hashes to route events to the buckets.
pub fn entity_keys() -> Vec<(&'static str, &'static str)> {
    EventType::ALL
        .iter()
        .filter_map(|event_type| Entity::of(*event_type).map(|entity| (event_type.name(), entity.key())))
        .collect()
}

/// The events of no entity: spend and CRM-user activity.
fn global_types() -> Series {
    Series::new("global_types".into(), [EventType::SpendRecorded.name(), EventType::CrmUserActive.name()])
}

/// Whether an event row belongs to no entity.
pub fn is_global_event() -> Expr {
    col("event_type").is_in(lit(global_types()).implode(false), false)
}

/// The bucket (`u32`) of each event row among `buckets`, by its entity's key; null for the
/// events of no entity and for a missing key.
fn event_bucket(buckets: u32) -> Expr {
    map_multiple(
        move |columns: &mut [Column]| {
            let [types, customers, deals, tickets] = columns else {
                polars_bail!(ComputeError: "the bucket of an event needs 4 columns");
            };
            let (types, customers, deals, tickets) = (types.str()?, customers.str()?, deals.str()?, tickets.str()?);
            let entities: Vec<Option<Entity>> =
                types.iter().map(|name| name.and_then(EventType::from_name).and_then(Entity::of)).collect();
            let buckets: UInt32Chunked = entities
                .iter()
                .enumerate()
                .map(|(row, entity)| {
                    let key = match entity {
                        Some(Entity::Customer) => customers.get(row),
                        Some(Entity::Deal) => deals.get(row),
                        Some(Entity::Ticket) => tickets.get(row),
                        None => None,
                    };
                    key.map(|key| bucket_of(key, buckets))
                })
                .collect();
            Ok(buckets.with_name("bucket".into()).into_column())
        },
        [col("event_type"), col("customer_id"), col("deal_id"), col("ticket_id")],
        |_, _| Ok(Field::new("bucket".into(), DataType::UInt32)),
    )
}

/// The lake's columns the plans read (the provenance columns are left in the files).
pub const COMPUTE_COLUMNS: [&str; 16] = [
    "event_id",
    "event_type",
    "occurred_at",
    "customer_id",
    "deal_id",
    "ticket_id",
    "campaign_id",
    "owner_id",
    "stage",
    "amount",
    "channel",
    "kind",
    "category",
    "survey",
    "score",
    "reason",
];

/// Everything a plan reads besides its bucket's events.
#[derive(Clone)]
pub struct Context {
    lake: LazyFrame,
    files: Vec<PathBuf>,
    /// The lake's files in chunks for the passes over the whole lake.
    chunks: Vec<LakeChunk>,
    /// Events up to `as_of` by type, counted while `as_of` was resolved.
    stats: LakeStats,
    /// The resolved configuration.
    pub config: Config,
    /// The run's observation instant, UTC microseconds.
    pub as_of: i64,
    /// The earliest `occurred_at` up to `as_of`, UTC microseconds.
    pub earliest_event: i64,
    /// Events with `occurred_at <= as_of`.
    pub events: u64,
    /// Reported months and `day(as_of)`.
    pub calendar: Calendar,
    /// How many entity buckets the per-entity work is split into.
    pub buckets: u32,
}

/// What the lake holds up to `as_of`: event count per event type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LakeStats {
    /// Events with `occurred_at <= as_of`.
    pub events: u64,
    /// The same by event type.
    pub per_event_type: BTreeMap<String, u64>,
}

/// The columns of a bucket's events: [`COMPUTE_COLUMNS`] with the lake's types.
pub fn bucket_schema() -> Schema {
    let lake = lake_schema();
    lake.iter_fields().filter(|field| COMPUTE_COLUMNS.contains(&field.name().as_str())).collect()
}

/// A lake opened for compute: its committed snapshot (held, so that ingests and compactions
/// leave its files in place until this is dropped), the snapshot's run records and its event
/// files. The one way the CLI, the benchmarks and the tests read a lake.
pub struct OpenLake {
    /// The committed snapshot being read.
    pub snapshot: Snapshot,
    /// Its ingest run records, oldest first.
    pub runs: Vec<crmkpi_ingest::RunRecord>,
    /// Its event files.
    pub files: Vec<PathBuf>,
}

/// Opens the lake at `dir` for compute: an error when it is not a lake or holds no ingest run.
pub fn open_lake(dir: &Path) -> Result<OpenLake, ComputeError> {
    let lake_error = |source| ComputeError::Lake { lake: dir.to_owned(), source };
    let snapshot = Lake::new(dir).snapshot().map_err(lake_error)?;
    let Some(snapshot) = snapshot else {
        return Err(ComputeError::NotALake { lake: dir.to_owned() });
    };
    let runs = snapshot.runs().map_err(lake_error)?;
    if runs.is_empty() {
        return Err(ComputeError::NotALake { lake: dir.to_owned() });
    }
    let files = snapshot.event_files().map_err(lake_error)?;
    Ok(OpenLake { snapshot, runs, files })
}

/// A part of the lake read at once by a pass over the whole lake: consecutive whole files of
/// about [`CHUNK_EVENTS`] events together, or a range of rows of one larger file (a compacted
/// partition).
#[derive(Debug, Clone)]
pub struct LakeChunk {
    files: Vec<PathBuf>,
    /// First row and row count, for a range of one file.
    rows: Option<(i64, IdxSize)>,
}

impl LakeChunk {
    /// A lazy scan of the chunk's rows (only the row groups of a range are read).
    fn scan(&self) -> Result<LazyFrame, ComputeError> {
        let scan = scan_lake(&self.files)?;
        Ok(match self.rows {
            Some((first_row, rows)) => scan.slice(first_row, rows),
            None => scan,
        })
    }

    /// The chunk's first file, for error messages.
    pub fn first_file(&self) -> &Path {
        self.files.first().map_or(Path::new(""), PathBuf::as_path)
    }
}

/// The files in chunks of about [`CHUNK_EVENTS`] events (counted from the files' Parquet
/// footers): the passes over the whole lake (its bounds, its statistics, the split into
/// buckets) read one chunk at a time, so that their memory does not grow with the lake or with
/// its files.
fn lake_chunks(files: &[PathBuf], chunk_events: usize) -> Result<Vec<LakeChunk>, ComputeError> {
    let mut chunks = Vec::new();
    let (mut group, mut events) = (Vec::new(), 0);
    for path in files {
        let footer_error = |source| ComputeError::Scan { first: path.clone(), source };
        let file = std::fs::File::open(path).map_err(|error| footer_error(error.into()))?;
        let rows = ParquetReader::new(file).num_rows().map_err(footer_error)?;
        if !group.is_empty() && events + rows > chunk_events {
            chunks.push(LakeChunk { files: std::mem::take(&mut group), rows: None });
            events = 0;
        }
        if rows > chunk_events {
            let whole = IdxSize::try_from(chunk_events).unwrap_or(IdxSize::MAX);
            for first_row in (0..rows).step_by(chunk_events.max(1)) {
                let first_row = i64::try_from(first_row).unwrap_or(i64::MAX);
                chunks.push(LakeChunk { files: vec![path.clone()], rows: Some((first_row, whole)) });
            }
            continue;
        }
        group.push(path.clone());
        events += rows;
    }
    if !group.is_empty() {
        chunks.push(LakeChunk { files: group, rows: None });
    }
    Ok(chunks)
}

/// A lazy scan of the given event files (an empty frame of the lake's schema when there are
/// none).
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
    /// Resolves `as_of` (default: the latest `occurred_at` in the lake), the calendar and the
    /// number of buckets: about a million events each, more when `[compute] memory_limit`
    /// asks for it (see [`buckets_for`]).
    pub fn new(files: Vec<PathBuf>, config: Config, as_of: Option<i64>) -> Result<Context, ComputeError> {
        let up_to_as_of = as_of.map_or(lit(true), |as_of| col("occurred_at").lt_eq(lit(as_of).cast(timestamp_type())));
        let chunks = lake_chunks(&files, CHUNK_EVENTS)?;
        let (mut earliest, mut latest, mut events) = (None::<i64>, None::<i64>, 0_u64);
        let mut stats = LakeStats::default();
        // One pass: per event type, its count and first and last event.
        for chunk in &chunks {
            let per_type = chunk
                .scan()?
                .filter(up_to_as_of.clone())
                .group_by([col("event_type")])
                .agg([
                    col("occurred_at").min().dt().timestamp(TimeUnit::Microseconds).alias("earliest"),
                    col("occurred_at").max().dt().timestamp(TimeUnit::Microseconds).alias("latest"),
                    len().cast(DataType::UInt64).alias("events"),
                ])
                .collect()
                .map_err(|source| ComputeError::LakeBounds { source })?;
            let stats_error = |source| ComputeError::LakeStatistics { source };
            let column = |name: &str| per_type.column(name).map_err(stats_error);
            let types = column("event_type")?.str().map_err(stats_error)?;
            let firsts = column("earliest")?.i64().map_err(stats_error)?;
            let lasts = column("latest")?.i64().map_err(stats_error)?;
            let counts = column("events")?.u64().map_err(stats_error)?;
            for (((event_type, first), last), count) in
                types.iter().zip(firsts.iter()).zip(lasts.iter()).zip(counts.iter())
            {
                earliest = first.map_or(earliest, |first| Some(earliest.map_or(first, |earliest| earliest.min(first))));
                latest = last.map_or(latest, |last| Some(latest.map_or(last, |latest| latest.max(last))));
                let count = count.unwrap_or(0);
                events += count;
                if let Some(event_type) = event_type {
                    stats.events += count;
                    *stats.per_event_type.entry(event_type.to_owned()).or_default() += count;
                }
            }
        }
        let (Some(earliest), Some(latest)) = (earliest, latest) else {
            return Err(ComputeError::NoEvents {
                as_of: as_of.map(|micros| format!(" up to {}", format_instant(micros))).unwrap_or_default(),
            });
        };
        let as_of = as_of.unwrap_or(latest);
        let calendar = Calendar::new(earliest, as_of, config.timezone);
        let lake = scan_lake(&files)?.filter(col("occurred_at").lt_eq(lit(as_of).cast(timestamp_type())));
        let buckets = buckets_for(events, config.compute.memory_limit_bytes());
        Ok(Context { lake, files, chunks, stats, config, as_of, earliest_event: earliest, events, calendar, buckets })
    }

    /// The context of a task that is handed its bucket's events (a Spark task): no lake, the
    /// `as_of`, earliest event, event count and bucket count the driver's context resolved.
    pub fn for_task(config: Config, as_of: i64, earliest_event: i64, events: u64, buckets: u32) -> Context {
        let calendar = Calendar::new(earliest_event, as_of, config.timezone);
        let lake = DataFrame::empty_with_schema(&lake_schema()).lazy();
        Context {
            lake,
            files: Vec::new(),
            chunks: Vec::new(),
            stats: LakeStats::default(),
            config,
            as_of,
            earliest_event,
            events,
            calendar,
            buckets: buckets.max(1),
        }
    }

    /// Events of bucket `bucket` read elsewhere (by Spark) as this run reads them: the compute
    /// columns with the lake's types, up to `as_of`.
    pub fn received_bucket_events(&self, bucket: u32, events: DataFrame) -> Result<DataFrame, ComputeError> {
        let received_error = |source| ComputeError::ReceivedEvents { bucket, source };
        let columns: Vec<Expr> = bucket_schema()
            .iter_fields()
            .map(|field| col(field.name().clone()).strict_cast(field.dtype().clone()))
            .collect();
        events
            .lazy()
            .select(columns)
            .filter(col("occurred_at").lt_eq(lit(self.as_of).cast(timestamp_type())))
            .collect()
            .map_err(received_error)
    }

    /// The same context reading the lake in chunks of about `events` events (at least 1; by
    /// default 1.5 million): the unit of the passes over the whole lake and of the split.
    pub fn with_chunk_events(mut self, events: usize) -> Result<Context, ComputeError> {
        self.chunks = lake_chunks(&self.files, events.max(1))?;
        Ok(self)
    }

    /// The same context with its per-entity work split into `buckets` buckets (at least 1):
    /// the outputs are the same for every number.
    pub fn with_buckets(mut self, buckets: u32) -> Context {
        self.buckets = buckets.max(1);
        self
    }

    /// The events of bucket `bucket` (those of its customers, deals and tickets), collected.
    pub fn bucket_events(&self, bucket: u32) -> Result<DataFrame, ComputeError> {
        let entity_events =
            if self.buckets == 1 { is_global_event().not() } else { event_bucket(self.buckets).eq(lit(bucket)) };
        self.lake
            .clone()
            .select(COMPUTE_COLUMNS.map(col))
            .filter(entity_events)
            .collect()
            .map_err(|source| ComputeError::Bucket { bucket, buckets: self.buckets, source })
    }

    /// The lake's event files in groups of about 1.5 million events, for a pass over the whole
    /// lake.
    pub fn lake_chunks(&self) -> &[LakeChunk] {
        &self.chunks
    }

    /// The lake's event files read by this run.
    pub fn lake_files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The entity events up to `as_of` of some of the lake's files (a chunk), with their bucket
    /// (`u32` column `bucket`), collected: what splits the lake by bucket in one pass.
    pub fn bucketed_events(&self, chunk: &LakeChunk) -> Result<DataFrame, ComputeError> {
        chunk
            .scan()?
            .filter(col("occurred_at").lt_eq(lit(self.as_of).cast(timestamp_type())))
            .select(
                COMPUTE_COLUMNS
                    .map(col)
                    .into_iter()
                    .chain([event_bucket(self.buckets).alias("bucket")])
                    .collect::<Vec<_>>(),
            )
            .filter(col("bucket").is_not_null())
            .collect()
            .map_err(|source| ComputeError::Scan { first: chunk.first_file().to_owned(), source })
    }

    /// The events of no entity (spend and CRM-user activity), collected.
    pub fn global_events(&self) -> Result<DataFrame, ComputeError> {
        self.lake
            .clone()
            .select(COMPUTE_COLUMNS.map(col))
            .filter(is_global_event())
            .collect()
            .map_err(|source| ComputeError::GlobalEvents { source })
    }

    /// The events up to `as_of` by type, for the manifest.
    pub fn lake_stats(&self) -> &LakeStats {
        &self.stats
    }
}

/// Bytes of memory one event takes once split into its bucket and held until the bucket is
/// computed: the compute columns, most of it 16-byte string views (measured on the generated
/// lake of 10 million events: 1.9 GB, 195 bytes per event; with a margin, so that a run just
/// under the limit stays under it: at 10 million events the smallest limit that holds them,
/// 3,300 MiB (3.46 GB), saw a 3.15 GB peak).
const BYTES_PER_HELD_EVENT: u64 = 250;

/// Whether a run of `events` events in `buckets` buckets may hold every bucket's events in
/// memory from the split until the bucket is computed, instead of writing them to per-bucket
/// files and reading them back: when they fit in `memory_limit` bytes together with the larger
/// of what the split itself holds (one chunk) and what computing follows with (the merged
/// facts and one bucket's computation).
pub fn split_fits_in_memory(events: u64, buckets: u32, memory_limit: u64) -> bool {
    let held = events.saturating_mul(BYTES_PER_HELD_EVENT);
    let chunk = events.min(CHUNK_EVENTS as u64).saturating_mul(BYTES_PER_CHUNK_EVENT);
    let merged = events.saturating_mul(BYTES_PER_LAKE_EVENT);
    let bucket = events.div_ceil(u64::from(buckets.max(1))).saturating_mul(BYTES_PER_BUCKET_EVENT);
    held.saturating_add(chunk.max(merged.saturating_add(bucket))) <= memory_limit
}

/// The number of buckets for a run of `events` events within `memory_limit` bytes: what the
/// merged facts leave of the limit (at least a quarter of it) is shared out to the buckets,
/// and no bucket holds more than about [`TARGET_BUCKET_EVENTS`].
pub fn buckets_for(events: u64, memory_limit: u64) -> u32 {
    let merged = events.saturating_mul(BYTES_PER_LAKE_EVENT);
    let for_a_bucket = memory_limit.saturating_sub(merged).max(memory_limit / 4).max(1);
    let for_memory = events.saturating_mul(BYTES_PER_BUCKET_EVENT).div_ceil(for_a_bucket);
    let for_speed = events.div_ceil(TARGET_BUCKET_EVENTS);
    u32::try_from(for_memory.max(for_speed).max(1)).unwrap_or(u32::MAX)
}

/// Whether an event row is of the given type.
pub fn is_type(event_type: EventType) -> Expr {
    col("event_type").eq(lit(event_type.name()))
}

/// Whether an event row is of one of the given types.
pub fn is_any_type(event_types: &[EventType]) -> Expr {
    let names: Vec<&str> = event_types.iter().map(|event_type| event_type.name()).collect();
    col("event_type").is_in(lit(Series::new("event_types".into(), names)).implode(false), false)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// XXH64 reference values (the xxHash test vectors with seed 0, and with seed 42 as Spark
    /// hashes strings), read as signed numbers like Spark's `xxhash64`.
    #[test]
    fn spark_hash_and_buckets() {
        assert_eq!(XxHash64::oneshot(0, b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(spark_xxhash64(""), i64::from_ne_bytes(XxHash64::oneshot(42, b"").to_ne_bytes()));
        for key in ["c-1", "deal-77", "", "é-ünicode"] {
            for buckets in [1, 2, 7, 64] {
                let bucket = bucket_of(key, buckets);
                assert!(bucket < buckets);
                assert_eq!(i64::from(bucket), spark_xxhash64(key).rem_euclid(i64::from(buckets)));
            }
        }
        assert_eq!(bucket_of("anything", 1), 0);
    }

    /// A lake file of `rows` events with ids `<prefix>0`, `<prefix>1`, ... (other columns null).
    fn lake_file(dir: &Path, prefix: &str, rows: usize) -> PathBuf {
        let columns: Vec<Column> = lake_schema()
            .iter_fields()
            .map(|field| match field.name().as_str() {
                "event_id" => {
                    Column::new(field.name().clone(), (0..rows).map(|row| format!("{prefix}{row}")).collect::<Vec<_>>())
                }
                _ => Column::full_null(field.name().clone(), rows, field.dtype()),
            })
            .collect();
        let mut frame = DataFrame::new(rows, columns).expect("frame");
        let path = dir.join(format!("{prefix}.parquet"));
        ParquetWriter::new(std::fs::File::create(&path).expect("file")).finish(&mut frame).expect("written");
        path
    }

    #[test]
    fn large_files_are_read_in_row_ranges_and_small_ones_together() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let files = vec![lake_file(dir.path(), "a", 12), lake_file(dir.path(), "b", 3), lake_file(dir.path(), "c", 4)];
        let chunks = lake_chunks(&files, 5).expect("chunks");
        let shapes: Vec<(usize, Option<(i64, IdxSize)>)> =
            chunks.iter().map(|chunk| (chunk.files.len(), chunk.rows)).collect();
        assert_eq!(shapes, [(1, Some((0, 5))), (1, Some((5, 5))), (1, Some((10, 5))), (1, None), (1, None)]);
        let ids: Vec<String> = chunks
            .iter()
            .flat_map(|chunk| {
                let frame = chunk
                    .scan()
                    .and_then(|scan| {
                        scan.select([col("event_id")]).collect().map_err(|source| ComputeError::LakeBounds { source })
                    })
                    .expect("chunk read");
                frame
                    .column("event_id")
                    .expect("ids")
                    .str()
                    .expect("strings")
                    .iter()
                    .map(|id| id.expect("an id").to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        let expected: Vec<String> = (0..12)
            .map(|row| format!("a{row}"))
            .chain((0..3).map(|row| format!("b{row}")))
            .chain((0..4).map(|row| format!("c{row}")))
            .collect();
        assert_eq!(ids, expected, "every row once, in the files' order");
        assert_eq!(lake_chunks(&files, 100).expect("chunks").len(), 1, "small files are read together");
    }

    #[test]
    fn a_split_is_held_in_memory_only_within_the_limit() {
        const GIB: u64 = 1 << 30;
        // 10 million events in 10 buckets: 2.5 GB held, then 1.05 GB for a chunk, or 0.5 GB
        // merged and 0.4 GB for a bucket.
        assert!(split_fits_in_memory(10_000_000, 10, 4 * GIB));
        assert!(!split_fits_in_memory(10_000_000, 10, 2 * GIB));
        assert!(!split_fits_in_memory(20_000_000, 20, 4 * GIB));
        assert!(!split_fits_in_memory(100_000_000, 100, 4 * GIB));
        assert!(split_fits_in_memory(100_000_000, 100, 64 * GIB));
        assert!(!split_fits_in_memory(u64::MAX, 1, u64::MAX - 1));
    }

    #[test]
    fn bucket_count_follows_the_memory_limit() {
        const GIB: u64 = 1 << 30;
        assert_eq!(buckets_for(0, 4 * GIB), 1);
        assert_eq!(buckets_for(1_000_000, 4 * GIB), 1);
        assert_eq!(buckets_for(1_000_001, 4 * GIB), 2);
        // 10 million events: one bucket per million events, well within the limit.
        assert_eq!(buckets_for(10_000_000, 4 * GIB), 10);
        assert_eq!(buckets_for(10_000_000, 16 * GIB), 10);
        // A small limit: 0.5 GB of merged facts, 4 GB of events over what is left.
        assert_eq!(buckets_for(10_000_000, GIB), 10);
        assert_eq!(buckets_for(10_000_000, 512 << 20), 30);
        // 40 million events: 40 buckets.
        assert_eq!(buckets_for(40_000_000, 4 * GIB), 40);
        // The merged facts of 100 million events would take the whole limit: a quarter of it is
        // still given to each bucket, which is more than a million events need.
        assert_eq!(buckets_for(100_000_000, 4 * GIB), 100);
        assert!(buckets_for(40_000_000, GIB) > buckets_for(40_000_000, 4 * GIB));
    }
}

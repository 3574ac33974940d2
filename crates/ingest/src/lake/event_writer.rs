//! The lake's event files: the columns of accepted events, their UTC month partitions, and the
//! row groups of a month file, encoded and compressed (zstd) in parallel, column by column,
//! before they are appended to the file in order (polars' batched writer compresses the pages
//! one after another as it writes them). A [`MonthFiles`] writer does that on a thread of its
//! own, so that the next events are read while the last ones are encoded.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fs::File;
use std::io::BufWriter;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use chrono::{DateTime, Datelike};
use polars::io::parquet::write::{BatchedWriter, get_encodings};
use polars::prelude::*;
use polars_parquet::write::{
    CompressedPage, CompressionOptions, Compressor, Encoding, ParquetType, SchemaDescriptor, Version, WriteOptions,
    ZstdLevel, array_to_columns, to_parquet_schema,
};
use rayon::prelude::*;

use super::commit::parquet_writer;
use crate::error::IngestError;
use crate::validate::Event;
use crmkpi_schema::{EventType, LAKE_COLUMNS, LakeColumn, LakeType};
use polars::polars_utils::aliases::PlIndexSet;
use polars_arrow::array::{
    Array, DictionaryArray, MutablePrimitiveArray, MutableUtf8Array, PrimitiveArray, Utf8Array, Utf8ViewArray,
};
use polars_arrow::datatypes::{ArrowDataType, IntegerType};

/// A UTC month: (year, month).
pub type Month = (i32, u32);

/// The UTC month of an instant in microseconds since the epoch.
pub fn month_of(micros: i64) -> Option<Month> {
    DateTime::from_timestamp_micros(micros).map(|instant| (instant.year(), instant.month()))
}

/// The directory of a month partition under the lake.
pub fn month_dir((year, month): Month) -> String {
    format!("events/month={year:04}-{month:02}")
}

/// The column every event of a run shares, added when the events are written.
const INGEST_RUN: &str = "ingest_run";

/// Whether a lake column holds text that an event brings (all but `ingest_run`).
fn is_event_text(column: &LakeColumn) -> bool {
    column.lake_type == LakeType::Str && column.name != INGEST_RUN
}

/// The text columns written plain: ids, nearly all distinct. The other text columns (names and
/// codes, which repeat) are written as dictionaries.
const PLAIN_TEXT: [&str; 5] = ["event_id", "customer_id", "deal_id", "order_id", "ticket_id"];

/// Accepted events being collected column by column, in the lake's columns
/// ([`crmkpi_schema::LAKE_COLUMNS`]): an id's text is copied into its column, a name or code
/// only the first time the column meets it.
pub struct EventColumns {
    event_id: TextColumn,
    /// Each event's type, by its [`EventType::index`].
    event_type: Vec<u8>,
    /// The text fields' columns in lake order, from `customer_id` to `reason`.
    fields: Vec<TextColumn>,
    occurred_at: Vec<i64>,
    amount: Vec<Option<f64>>,
    score: Vec<Option<i64>>,
    content_hash: Vec<u64>,
}

/// A text field's column: its text one value after another, or the key of each value in a
/// dictionary of the values met (4 bytes a row).
enum TextColumn {
    Plain(MutableUtf8Array<i64>),
    /// Each row's key: the place of its value in `values`.
    Dictionary {
        keys: MutablePrimitiveArray<u32>,
        values: PlIndexSet<String>,
    },
}

impl TextColumn {
    fn new(name: &str, capacity: usize) -> TextColumn {
        if PLAIN_TEXT.contains(&name) {
            TextColumn::Plain(MutableUtf8Array::with_capacity(capacity))
        } else {
            TextColumn::Dictionary {
                keys: MutablePrimitiveArray::with_capacity(capacity),
                values: PlIndexSet::default(),
            }
        }
    }

    fn push(&mut self, text: Option<&str>) {
        match self {
            TextColumn::Plain(column) => column.push(text),
            TextColumn::Dictionary { keys, values } => keys.push(text.map(|text| {
                let key = values.get_index_of(text).unwrap_or_else(|| values.insert_full(text.to_owned()).0);
                key as u32
            })),
        }
    }

    fn finish(self) -> PolarsResult<ArrayRef> {
        match self {
            TextColumn::Plain(column) => {
                let array: Utf8Array<i64> = column.into();
                Ok(array.boxed())
            }
            TextColumn::Dictionary { keys, values } => {
                let values: Vec<&str> = values.iter().map(String::as_str).collect();
                dictionary(keys.into(), &values)
            }
        }
    }
}

impl EventColumns {
    /// Empty columns with room for `capacity` events.
    pub fn with_capacity(capacity: usize) -> EventColumns {
        EventColumns {
            event_id: TextColumn::new("event_id", capacity),
            event_type: Vec::with_capacity(capacity),
            fields: LAKE_COLUMNS
                .iter()
                .filter(|column| is_event_text(column) && !["event_id", "event_type"].contains(&column.name))
                .map(|column| TextColumn::new(column.name, capacity))
                .collect(),
            occurred_at: Vec::with_capacity(capacity),
            amount: Vec::with_capacity(capacity),
            score: Vec::with_capacity(capacity),
            content_hash: Vec::with_capacity(capacity),
        }
    }

    /// Events collected.
    pub fn len(&self) -> usize {
        self.occurred_at.len()
    }

    /// Appends an event.
    pub fn push<S: Deref<Target = str>>(&mut self, event: &Event<S>) {
        self.event_id.push(Some(&*event.event_id));
        self.event_type.push(event.event_type.index() as u8);
        for (column, text) in self.fields.iter_mut().zip(event.text.in_lake_order()) {
            column.push(text);
        }
        self.occurred_at.push(event.occurred_at);
        self.amount.push(event.amount);
        self.score.push(event.score);
        self.content_hash.push(event.content_hash);
    }

    /// The lake's columns of the events as Arrow arrays, `ingest_run` included. Ids are plain
    /// text; the other text columns are dictionaries of the values they hold (the types that
    /// occur, the run's id, the names and codes met), as the Parquet writer encodes them.
    pub fn finish(self, run_id: &str) -> PolarsResult<Vec<ArrayRef>> {
        let rows = self.len();
        let array = |column: Column| column.as_materialized_series().rechunk().to_arrow(0, CompatLevel::newest());
        // The text columns in lake order: the event's id and type, then its text fields.
        let mut text = [self.event_id.finish(), event_types(&self.event_type)]
            .into_iter()
            .chain(self.fields.into_iter().map(TextColumn::finish));
        let mut numbers = [
            Int64Chunked::from_vec("occurred_at".into(), self.occurred_at)
                .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
                .into_column(),
            Column::new("amount".into(), self.amount),
            Column::new("score".into(), self.score),
            Column::new("content_hash".into(), self.content_hash),
        ]
        .into_iter();
        LAKE_COLUMNS
            .iter()
            .map(|column| match column.name {
                INGEST_RUN => Some(dictionary(PrimitiveArray::from_vec(vec![0; rows]), &[run_id])),
                _ if is_event_text(column) => text.next(),
                _ => numbers.next().filter(|number| number.name() == column.name).map(|number| Ok(array(number))),
            })
            .collect::<Option<PolarsResult<Vec<ArrayRef>>>>()
            .ok_or_else(|| polars_err!(ComputeError: "the event columns do not match the lake's columns"))?
    }
}

/// The `event_type` column of events of the types at `indices` ([`EventType::index`]): a
/// dictionary of the types that occur, in [`EventType::ALL`]'s order.
fn event_types(indices: &[u8]) -> PolarsResult<ArrayRef> {
    let mut occurs = [false; EventType::ALL.len()];
    for &index in indices {
        occurs[index as usize] = true;
    }
    let mut keys = [0u32; EventType::ALL.len()];
    let mut names = Vec::new();
    for (index, event_type) in EventType::ALL.iter().enumerate().filter(|(index, _)| occurs[*index]) {
        keys[index] = names.len() as u32;
        names.push(event_type.name());
    }
    dictionary(PrimitiveArray::from_vec(indices.iter().map(|&index| keys[index as usize]).collect()), &names)
}

/// A text column of `values[key]` for each of `keys` (null where a key is), as a dictionary
/// array.
fn dictionary(keys: PrimitiveArray<u32>, values: &[&str]) -> PolarsResult<ArrayRef> {
    let values = Utf8ViewArray::from_slice_values(values);
    let dtype = ArrowDataType::Dictionary(IntegerType::UInt32, Box::new(values.dtype().clone()), false);
    Ok(DictionaryArray::try_new(dtype, keys, values.boxed())?.boxed())
}

/// The schema of the lake's event files, as polars types.
pub fn lake_schema() -> Schema {
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

/// Encodes and compresses row groups of the lake's event files.
pub struct EventEncoder {
    schema: Schema,
    arrow_schema: ArrowSchema,
    parquet_schema: SchemaDescriptor,
    encodings: Vec<Vec<Encoding>>,
    options: WriteOptions,
}

impl EventEncoder {
    /// The encoder of the lake's event columns.
    pub fn new() -> PolarsResult<EventEncoder> {
        let schema = lake_schema();
        let arrow_schema = schema.to_arrow(CompatLevel::newest());
        Ok(EventEncoder {
            parquet_schema: to_parquet_schema(&arrow_schema)?,
            encodings: get_encodings(&arrow_schema)
                .iter()
                .zip(arrow_schema.iter_values())
                .map(|(encodings, field)| match field.name.as_str() {
                    // Ids and instants written plain: smaller files than polars' dictionaries
                    // (40 against 44 MB for 2 million events), and no cardinality estimate or
                    // dictionary hashing while writing.
                    name if PLAIN_TEXT.contains(&name) => vec![Encoding::Plain; encodings.len()],
                    "occurred_at" | "content_hash" => vec![Encoding::Plain; encodings.len()],
                    _ => encodings.clone(),
                })
                .collect(),
            options: WriteOptions {
                statistics: StatisticsOptions::default(),
                version: Version::V1,
                // Level 1: a twentieth larger than the default level 3, a tenth faster to write.
                compression: CompressionOptions::Zstd(Some(ZstdLevel::try_new(1)?)),
                data_page_size: None,
            },
            arrow_schema,
            schema,
        })
    }

    /// A new event file at `path`, to which encoded row groups are appended.
    pub fn writer(&self, path: &Path) -> Result<BatchedWriter<BufWriter<File>>, IngestError> {
        parquet_writer(path)?
            .batched(&self.schema)
            .map_err(|source| IngestError::Parquet { path: path.to_owned(), source })
    }

    /// One row group of `events` (the lake's columns, [`EventColumns::finish`]), its columns
    /// encoded and compressed in parallel.
    pub fn encode(&self, events: &[ArrayRef]) -> PolarsResult<Vec<Vec<CompressedPage>>> {
        let fields: Vec<&ArrowField> = self.arrow_schema.iter_values().collect();
        // Text is a dictionary or plain text with 64-bit offsets in memory, and the same
        // Parquet strings in the file.
        let as_stored = |dtype: &ArrowDataType| match dtype {
            ArrowDataType::LargeUtf8 => ArrowDataType::Utf8View,
            dtype => dtype.clone(),
        };
        let matches = events.len() == fields.len()
            && events.iter().zip(&fields).all(|(array, field)| match array.dtype() {
                ArrowDataType::Dictionary(_, values, _) => values.as_ref() == field.dtype(),
                dtype => &as_stored(dtype) == field.dtype(),
            });
        if !matches {
            let dtypes: Vec<&ArrowDataType> = events.iter().map(|array| array.dtype()).collect();
            polars_bail!(SchemaMismatch: "event columns {dtypes:?}, expected {:?}", self.arrow_schema);
        }
        let columns: Vec<Vec<Vec<CompressedPage>>> = events
            .par_iter()
            .zip(self.parquet_schema.fields())
            .zip(&self.encodings)
            .map(|((array, parquet_type), encodings)| self.encode_column(array, parquet_type, encodings))
            .collect::<PolarsResult<_>>()?;
        Ok(columns.into_iter().flatten().collect())
    }

    fn encode_column(
        &self,
        array: &ArrayRef,
        parquet_type: &ParquetType,
        encodings: &[Encoding],
    ) -> PolarsResult<Vec<Vec<CompressedPage>>> {
        let options = match array.dtype() {
            // A dictionary's keys in one data page: the writer gives each data page of a
            // dictionary array the whole array's statistics, null count included, and the row
            // group's statistics add the pages' up (a row group of 525,000 rows, 3 pages of 4-byte
            // keys, had 3 times its nulls in its footer).
            ArrowDataType::Dictionary(..) => WriteOptions { data_page_size: Some(usize::MAX), ..self.options },
            _ => self.options,
        };
        array_to_columns(array, parquet_type.clone(), options, encodings)?
            .into_iter()
            .map(|pages| {
                let pages = pages.map(|page| {
                    page.map_err(|error| {
                        polars_parquet::read::ParquetError::FeatureNotSupported(format!("reraised in polars: {error}"))
                    })
                });
                Ok(Compressor::new_from_vec(pages, self.options.compression, Vec::new())
                    .collect::<Result<Vec<_>, _>>()?)
            })
            .collect()
    }
}

/// One event file of a run: its path under the run's snapshot and its writer, which appends
/// each chunk of the month's events as row groups.
pub struct MonthFile {
    /// The path under the snapshot.
    pub relative: String,
    /// The open writer.
    pub writer: BatchedWriter<BufWriter<File>>,
}

/// The event files of a run, a file per UTC month, written on a thread of their own: each
/// chunk of events sent is encoded (in parallel, on the rayon pool) and appended as a row group
/// per month while the caller collects the next chunk. One chunk waits at most. A third thread
/// fsyncs the files as their row groups are written, so that the commit's fsync finds little
/// left to write.
pub struct MonthFiles {
    sender: Option<SyncSender<Vec<(Month, EventColumns)>>>,
    thread: Option<JoinHandle<Result<BTreeMap<Month, MonthFile>, IngestError>>>,
}

impl MonthFiles {
    /// Starts the writer of run `run_id`'s event files under the snapshot `dir`.
    pub fn start(dir: &Path, run_id: &str) -> Result<MonthFiles, IngestError> {
        let encoder = EventEncoder::new().map_err(|source| IngestError::Parquet { path: dir.to_owned(), source })?;
        let (sender, receiver) = sync_channel::<Vec<(Month, EventColumns)>>(0);
        let (dir, run_id) = (dir.to_owned(), run_id.to_owned());
        let thread = std::thread::Builder::new()
            .name("crmkpi-event-files".to_owned())
            .spawn(move || {
                let (written, to_sync) = channel::<Vec<PathBuf>>();
                let syncer = std::thread::Builder::new()
                    .name("crmkpi-event-sync".to_owned())
                    .spawn(move || sync_written(to_sync))
                    .map_err(thread_error)?;
                let mut files = BTreeMap::new();
                for chunk in receiver {
                    let months = write_chunk(&encoder, &dir, &run_id, chunk, &mut files)?;
                    let paths = months.iter().map(|month| dir.join(&files[month].relative)).collect();
                    if written.send(paths).is_err() {
                        // The syncer stopped at an error, reported below: no more writing.
                        break;
                    }
                }
                drop(written);
                syncer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
                Ok(files)
            })
            .map_err(thread_error)?;
        Ok(MonthFiles { sender: Some(sender), thread: Some(thread) })
    }

    /// Hands a chunk of events, by month, to the writer; waits while it still encodes the last.
    pub fn send(&mut self, chunk: Vec<(Month, EventColumns)>) -> Result<(), IngestError> {
        if self.sender.as_ref().is_some_and(|sender| sender.send(chunk).is_ok()) {
            return Ok(());
        }
        // The writer stopped at an error (reported by `finish`), or was finished already.
        self.finish()?;
        Err(thread_error(std::io::Error::other("events sent to event files that were closed")))
    }

    /// Waits for every chunk to be written; the open files by month.
    pub fn finish(&mut self) -> Result<BTreeMap<Month, MonthFile>, IngestError> {
        self.sender = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(files)) => files,
            Some(Err(_)) => Err(thread_error(std::io::Error::other("the thread writing the event files panicked"))),
            None => Err(thread_error(std::io::Error::other("the event files were finished already"))),
        }
    }
}

/// fsyncs the event files as their row groups are written (`written` sends the files of each
/// chunk): their data goes to the disk while the run goes on. The first error ends it (an fsync
/// error may not be reported twice, so it is not left for the commit's fsync to find).
fn sync_written(written: Receiver<Vec<PathBuf>>) -> Result<(), IngestError> {
    for paths in written {
        for path in paths {
            File::open(&path)
                .and_then(|file| file.sync_data())
                .map_err(|source| IngestError::LakeIo { path, source })?;
        }
    }
    Ok(())
}

/// An error of the thread that writes the event files.
fn thread_error(source: std::io::Error) -> IngestError {
    IngestError::LakeIo { path: PathBuf::from("crmkpi-event-files thread"), source }
}

impl Drop for MonthFiles {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            // An abandoned run: its files are removed with its snapshot.
            let _ = thread.join();
        }
    }
}

/// Encodes a chunk's months in parallel and appends each as a row group to its month's file;
/// the months written.
fn write_chunk(
    encoder: &EventEncoder,
    dir: &Path,
    run_id: &str,
    chunk: Vec<(Month, EventColumns)>,
    files: &mut BTreeMap<Month, MonthFile>,
) -> Result<Vec<Month>, IngestError> {
    let encoded: Vec<(Month, usize, Vec<Vec<CompressedPage>>)> = chunk
        .into_par_iter()
        .map(|(month, events)| {
            let parquet_error = |source| IngestError::Parquet { path: dir.join(month_dir(month)), source };
            let rows = events.len();
            let columns = events.finish(run_id).map_err(parquet_error)?;
            Ok((month, rows, encoder.encode(&columns).map_err(parquet_error)?))
        })
        .collect::<Result<_, IngestError>>()?;
    let months = encoded.iter().map(|(month, _, _)| *month).collect();
    for (month, rows, pages) in encoded {
        let number = files.len();
        let month_file = match files.entry(month) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let relative = format!("{}/part-{run_id}-{number:05}.parquet", month_dir(month));
                let writer = encoder.writer(&dir.join(&relative))?;
                entry.insert(MonthFile { relative, writer })
            }
        };
        let path = dir.join(&month_file.relative);
        month_file
            .writer
            .write_row_group(rows as u64, &pages)
            .map_err(|source| IngestError::Parquet { path, source })?;
    }
    Ok(months)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::TextFields;

    fn event<'a>(event_id: &'a str, event_type: EventType, stage: Option<&'a str>) -> Event<&'a str> {
        Event {
            event_id,
            event_type,
            occurred_at: 0,
            text: TextFields { stage, customer_id: Some(event_id), ..TextFields::default() },
            amount: None,
            score: None,
            content_hash: 0,
        }
    }

    /// Names and codes are dictionaries of the values that occur, ids plain text; both read
    /// back as the text of every event.
    #[test]
    fn text_columns_hold_each_events_text() {
        let mut columns = EventColumns::with_capacity(4);
        for (event_id, event_type, stage) in [
            ("a", EventType::TicketOpened, None),
            ("b", EventType::DealStageChanged, Some("won")),
            ("c", EventType::TicketOpened, None),
            ("d", EventType::DealStageChanged, Some("won")),
        ] {
            columns.push(&event(event_id, event_type, stage));
        }
        let arrays = columns.finish("run-1").expect("columns");
        let place = |name: &str| LAKE_COLUMNS.iter().position(|column| column.name == name).expect("column");
        let dictionary_text = |name: &str| -> (Vec<Option<String>>, usize) {
            let dictionary = arrays[place(name)].as_any().downcast_ref::<DictionaryArray<u32>>().expect("a dictionary");
            let values = dictionary.values().as_any().downcast_ref::<Utf8ViewArray>().expect("text values");
            let text =
                dictionary.iter_typed::<Utf8ViewArray>().expect("typed").map(|text| text.map(str::to_owned)).collect();
            (text, values.len())
        };
        let types = ["ticket_opened", "deal_stage_changed", "ticket_opened", "deal_stage_changed"];
        assert_eq!(dictionary_text("event_type"), (types.map(|name| Some(name.to_owned())).to_vec(), 2));
        assert_eq!(dictionary_text("ingest_run"), (vec![Some("run-1".to_owned()); 4], 1));
        assert_eq!(dictionary_text("stage"), (vec![None, Some("won".into()), None, Some("won".into())], 1));
        let customers = arrays[place("customer_id")].as_any().downcast_ref::<Utf8Array<i64>>().expect("plain text");
        assert_eq!(customers.values_iter().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        assert!(EventEncoder::new().expect("encoder").encode(&arrays).is_ok());
    }

    /// A row group's statistics count each null once, also for a dictionary column of more
    /// rows than a default data page holds (1 MiB, 262,144 keys).
    #[test]
    fn a_large_row_groups_null_count_is_its_nulls() {
        use polars_parquet::parquet::page::DataPageHeader;
        let rows = 300_000;
        let mut columns = EventColumns::with_capacity(rows);
        for row in 0..rows {
            let event_id = format!("e{row}");
            columns.push(&event(&event_id, EventType::DealStageChanged, (row % 3 == 0).then_some("won")));
        }
        let pages =
            EventEncoder::new().expect("encoder").encode(&columns.finish("run-1").expect("columns")).expect("pages");
        let stage = LAKE_COLUMNS.iter().position(|column| column.name == "stage").expect("stage");
        let null_counts: i64 = pages[stage]
            .iter()
            .filter_map(|page| match page {
                CompressedPage::Data(page) => match page.header() {
                    DataPageHeader::V1(header) => {
                        header.statistics.as_ref().and_then(|statistics| statistics.null_count)
                    }
                    DataPageHeader::V2(header) => {
                        header.statistics.as_ref().and_then(|statistics| statistics.null_count)
                    }
                },
                CompressedPage::Dict(_) => None,
            })
            .sum();
        assert_eq!(null_counts, 200_000);
    }
}

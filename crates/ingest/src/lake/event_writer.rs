//! The lake's event files: the columns of accepted events, their UTC month partitions, and the
//! row groups of a month file, encoded and compressed (zstd; see [`PageCodec`]) in parallel,
//! column by column, before they are appended to the file in order (polars' batched writer
//! compresses the pages one after another as it writes them). A [`MonthFiles`] writer has each
//! chunk encoded by its caller and appends it on a thread of its own, so that the next events
//! are collected while the last ones are written.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fs::File;
use std::io::BufWriter;
use std::ops::{Deref, Range};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime};
use polars::io::parquet::write::{BatchedWriter, get_encodings};
use polars::prelude::*;
use polars_parquet::parquet::CowBuffer;
use polars_parquet::parquet::compression::Compression;
use polars_parquet::parquet::page::{CompressedDictPage, DataPageHeader};
use polars_parquet::write::{
    CompressedDataPage, CompressedPage, CompressionOptions, Encoding, Page, ParquetType, SchemaDescriptor, Version,
    WriteOptions, ZstdLevel, array_to_columns, to_parquet_schema,
};
use rayon::prelude::*;

use super::column_pages::{Present, dictionary_pages, number_pages, plain_pages};
use super::commit::parquet_writer;
use crate::error::IngestError;
use crate::validate::Event;
use crmkpi_schema::{EventType, LAKE_COLUMNS, LakeColumn, LakeType};
use polars::polars_utils::aliases::PlIndexSet;
use polars_arrow::datatypes::ArrowDataType;
use polars_parquet::parquet::schema::types::PrimitiveType;
use polars_parquet::parquet::types::NativeType;

/// A UTC month: (year, month).
pub type Month = (i32, u32);

/// The UTC month of an instant in microseconds since the epoch.
fn month_of(micros: i64) -> Option<Month> {
    DateTime::from_timestamp_micros(micros).map(|instant| (instant.year(), instant.month()))
}

/// The UTC months of instants, with the bounds of the months met so far (up to
/// [`KNOWN_MONTHS`]): a run's events fall in a few dozen months, and a month is computed once.
#[derive(Default)]
pub struct MonthBounds {
    /// The months met, by their first instant; their bounds do not overlap.
    known: Vec<(Range<i64>, Month)>,
    /// The place in `known` of the month found last, looked at first: in a dump whose events
    /// come in the order they occurred, a month's come one after another.
    last: usize,
}

/// The months whose bounds a [`MonthBounds`] keeps at most (instants spread over more months
/// have the others computed each time).
const KNOWN_MONTHS: usize = 1_024;

impl MonthBounds {
    /// The UTC month of an instant in microseconds since the epoch ([`month_of`]).
    pub fn month_of(&mut self, micros: i64) -> Option<Month> {
        if let Some((bounds, month)) = self.known.get(self.last)
            && bounds.contains(&micros)
        {
            return Some(*month);
        }
        let place = self.known.partition_point(|(bounds, _)| bounds.end <= micros);
        self.last = place;
        match self.known.get(place) {
            Some((bounds, month)) if bounds.contains(&micros) => Some(*month),
            _ => {
                let month = month_of(micros)?;
                if let Some(bounds) = month_bounds(month).filter(|_| self.known.len() < KNOWN_MONTHS) {
                    // The months after `place` start after `micros`, so after its month.
                    self.known.insert(place, (bounds, month));
                }
                Some(month)
            }
        }
    }
}

/// The instants of a UTC month: from its first microsecond to the next month's first.
fn month_bounds((year, month): Month) -> Option<Range<i64>> {
    let first_day = |year, month| {
        NaiveDate::from_ymd_opt(year, month, 1).map(|day| day.and_time(NaiveTime::MIN).and_utc().timestamp_micros())
    };
    let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    Some(first_day(year, month)?..first_day(next_year, next_month)?)
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

/// The text columns written plain: ids, nearly all distinct (plain made files smaller than
/// polars' dictionaries: 40 against 44 MB for 2 million events). The other text columns (names
/// and codes, which repeat) are written as dictionaries.
const PLAIN_TEXT: [&str; 5] = ["event_id", "customer_id", "deal_id", "order_id", "ticket_id"];

/// Accepted events being collected column by column, in the lake's columns
/// ([`crmkpi_schema::LAKE_COLUMNS`]): an id's text is copied into its column, a name or code
/// only the first time the column meets it. The columns are filled in parts
/// ([`EventColumns::parts`]), which may be filled in parallel.
pub struct EventColumns {
    fixed: FixedColumns,
    /// The text fields' columns in lake order, from `customer_id` to `reason`.
    fields: Vec<TextColumn>,
}

/// The columns every event has a value in, or a null of its own: id, type, instant, amount,
/// score and content hash.
pub struct FixedColumns {
    event_id: IdColumn,
    /// Each event's type, by its [`EventType::index`].
    event_type: Vec<u8>,
    occurred_at: Vec<i64>,
    amount: NumberColumn<f64>,
    score: NumberColumn<i64>,
    content_hash: Vec<u64>,
}

/// A column of numbers that few events have (amounts, scores): the rows that have one, and
/// their numbers.
pub struct NumberColumn<T> {
    rows: ValueRows,
    values: Vec<T>,
}

impl<T: Copy> NumberColumn<T> {
    fn new() -> NumberColumn<T> {
        NumberColumn { rows: ValueRows::default(), values: Vec::new() }
    }

    /// Sets row `row` (after every row set before) to `value`, when there is one.
    fn push(&mut self, row: u32, value: Option<T>) {
        if let Some(value) = value {
            self.rows.push(row);
            self.values.push(value);
        }
    }
}

impl<T: NativeType + PartialOrd> NumberColumn<T> {
    /// The column's pages, of `rows` rows, null in those without a number.
    fn pages(&self, primitive_type: &PrimitiveType, rows: usize) -> PolarsResult<Vec<Page>> {
        number_pages(primitive_type, rows, self.rows.among(rows), &self.values)
    }
}

/// The rows of a column that have a value, ascending.
#[derive(Default)]
struct ValueRows(Vec<u32>);

impl ValueRows {
    /// Adds row `row`, after every row added before.
    fn push(&mut self, row: u32) {
        debug_assert!(self.0.last().is_none_or(|last| *last < row), "rows set in ascending order");
        self.0.push(row);
    }

    /// The rows, among a column's `rows`.
    fn among(&self, rows: usize) -> Present<'_> {
        debug_assert!(self.0.last().is_none_or(|last| (*last as usize) < rows), "rows within the column");
        Present::Rows(&self.0)
    }
}

/// How many parts [`EventColumns::parts`] makes: the columns every event has a value in, and
/// the text fields' (read as one array of an event's fields; more parts of them read it more
/// often, 3% more instructions with three).
pub const COLUMN_PARTS: usize = 2;

/// A part of [`EventColumns`] filled on its own.
pub enum ColumnPart<'a> {
    /// The columns every event has a value in.
    Fixed(&'a mut FixedColumns),
    /// The columns of the text fields in lake order
    /// ([`crate::validate::TextFields::in_lake_order`]); the next event pushed is row `row`.
    Text { row: u32, columns: &'a mut [TextColumn] },
}

impl ColumnPart<'_> {
    /// Appends the part's values of `event`.
    pub fn push<S: Deref<Target = str>>(&mut self, event: &Event<S>) {
        match self {
            ColumnPart::Fixed(fixed) => fixed.push(event),
            ColumnPart::Text { row, columns } => {
                for (text, column) in event.text.in_lake_order().into_iter().zip(columns.iter_mut()) {
                    if let Some(text) = text {
                        column.push(*row, text);
                    }
                }
                *row += 1;
            }
        }
    }
}

impl FixedColumns {
    fn with_capacity(capacity: usize) -> FixedColumns {
        FixedColumns {
            event_id: IdColumn::with_capacity(capacity),
            event_type: Vec::with_capacity(capacity),
            occurred_at: Vec::with_capacity(capacity),
            amount: NumberColumn::new(),
            score: NumberColumn::new(),
            content_hash: Vec::with_capacity(capacity),
        }
    }

    fn push<S: Deref<Target = str>>(&mut self, event: &Event<S>) {
        self.event_id.push(&event.event_id);
        self.event_type.push(event.event_type.index() as u8);
        let row = self.occurred_at.len() as u32;
        self.occurred_at.push(event.occurred_at);
        self.amount.push(row, event.amount);
        self.score.push(row, event.score);
        self.content_hash.push(event.content_hash);
    }
}

/// The `event_id` column: every event's id, one after another. It becomes a plain
/// [`TextColumn`] of every row when finished; filled as one, whose push asks which kind of
/// values it holds, every event's id cost 0.5% more instructions.
pub struct IdColumn {
    /// Where each id ends in `bytes`.
    ends: Vec<i64>,
    bytes: Vec<u8>,
}

impl IdColumn {
    fn with_capacity(capacity: usize) -> IdColumn {
        IdColumn { ends: Vec::with_capacity(capacity), bytes: Vec::with_capacity(capacity * 16) }
    }

    fn push(&mut self, id: &str) {
        self.bytes.extend_from_slice(id.as_bytes());
        self.ends.push(self.bytes.len() as i64);
    }

    fn finish(self) -> TextColumn {
        TextColumn { rows: None, values: TextValues::Plain { ends: self.ends, bytes: self.bytes } }
    }
}

/// A text column, kept as the rows that have a value and their values: an event has a few of
/// its 13 text fields, and a column of mostly nulls costs nothing per null. Its pages are
/// encoded from them ([`super::column_pages`]), without an array of every row.
pub struct TextColumn {
    /// The rows with a value; `None` when every row has one (ids, types, the run).
    rows: Option<ValueRows>,
    values: TextValues,
}

/// The values of a [`TextColumn`]'s rows that have one.
enum TextValues {
    /// Ids, nearly all distinct: the text one value after another, and where each ends.
    Plain { ends: Vec<i64>, bytes: Vec<u8> },
    /// Names and codes, which repeat: each value's key, the place of its text in `values`.
    Dictionary { keys: Vec<u32>, values: Dictionary },
}

/// The values of a dictionary column, each once, in the order they were met (a value's key is
/// its place), with a table that finds a short value's key by its bytes read as two words:
/// nearly every name and code has 16 bytes or fewer, and the table neither hashes their text
/// nor compares it byte by byte (filling the text columns took 15% fewer instructions than
/// with the set alone).
#[derive(Default)]
struct Dictionary {
    values: PlIndexSet<String>,
    short_keys: ShortKeys,
}

impl Dictionary {
    fn of(values: PlIndexSet<String>) -> Dictionary {
        Dictionary { values, short_keys: ShortKeys::default() }
    }

    /// The key of `text`, added when it is new.
    fn key_of(&mut self, text: &str) -> u32 {
        let Dictionary { values, short_keys } = self;
        let key = match ShortText::of(text.as_bytes()) {
            Some(short) => short_keys.key_of(short, || values.insert_full(text.to_owned()).0),
            None => values.get_index_of(text).unwrap_or_else(|| values.insert_full(text.to_owned()).0),
        };
        key as u32
    }
}

/// A text of 16 bytes or fewer, as two words that hold every byte of it (for 8 bytes or more
/// its first 8 and its last 8, which overlap below 16; for 4 to 7 its first 4 and its last 4),
/// and its length: two texts are equal exactly when these are.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ShortText {
    first: u64,
    last: u64,
    length: u8,
}

impl ShortText {
    /// `None` for a text longer than 16 bytes.
    fn of(bytes: &[u8]) -> Option<ShortText> {
        let word = |word: Option<&[u8; 8]>| word.map_or(0, |word| u64::from_le_bytes(*word));
        let half = |half: Option<&[u8; 4]>| half.map_or(0, |half| u64::from(u32::from_le_bytes(*half)));
        let (first, last) = match bytes.len() {
            8..=16 => (word(bytes.first_chunk()), word(bytes.last_chunk())),
            4..=7 => (half(bytes.first_chunk()), half(bytes.last_chunk())),
            1..=3 => {
                let byte = |at: usize| u64::from(bytes[at]);
                (byte(0) | byte(bytes.len() / 2) << 8 | byte(bytes.len() - 1) << 16, 0)
            }
            0 => (0, 0),
            _ => return None,
        };
        Some(ShortText { first, last, length: bytes.len() as u8 })
    }

    /// Where the text's search starts in a table of `mask + 1` slots.
    fn slot(self, mask: usize) -> usize {
        let mixed =
            (self.first ^ self.last.rotate_left(29) ^ u64::from(self.length)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mixed >> 32) as usize & mask
    }
}

/// The keys of a dictionary's short values: open addressing, searched slot after slot from the
/// text's own, at most half full.
#[derive(Default)]
struct ShortKeys {
    slots: Vec<Option<(ShortText, usize)>>,
    len: usize,
}

impl ShortKeys {
    /// The key of `text`; `add`'s, kept, when the table does not hold it.
    fn key_of(&mut self, text: ShortText, add: impl FnOnce() -> usize) -> usize {
        if 2 * (self.len + 1) > self.slots.len() {
            self.grow();
        }
        let at = self.slot_of(text);
        if let Some((_, key)) = self.slots[at] {
            return key;
        }
        let key = add();
        self.slots[at] = Some((text, key));
        self.len += 1;
        key
    }

    /// The slot holding `text`, or the empty slot its search ends at.
    fn slot_of(&self, text: ShortText) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = text.slot(mask);
        while self.slots[at].is_some_and(|(held, _)| held != text) {
            at = (at + 1) & mask;
        }
        at
    }

    /// Twice the slots (16 at first), the texts held moved to their places in them.
    fn grow(&mut self) {
        let slots = (2 * self.slots.len()).max(16);
        let held = std::mem::replace(&mut self.slots, vec![None; slots]);
        for (text, key) in held.into_iter().flatten() {
            let at = self.slot_of(text);
            self.slots[at] = Some((text, key));
        }
    }
}

impl TextColumn {
    fn new(name: &str) -> TextColumn {
        let values = if PLAIN_TEXT.contains(&name) {
            TextValues::Plain { ends: Vec::new(), bytes: Vec::new() }
        } else {
            TextValues::Dictionary { keys: Vec::new(), values: Dictionary::default() }
        };
        TextColumn { rows: Some(ValueRows::default()), values }
    }

    /// A column of a value in every row, the row's key into `values`.
    fn dictionary_of_every_row(keys: Vec<u32>, values: PlIndexSet<String>) -> TextColumn {
        TextColumn { rows: None, values: TextValues::Dictionary { keys, values: Dictionary::of(values) } }
    }

    /// Sets row `row` (after every row set before) to `text`.
    fn push(&mut self, row: u32, text: &str) {
        if let Some(rows) = &mut self.rows {
            rows.push(row);
        }
        match &mut self.values {
            TextValues::Plain { ends, bytes } => {
                bytes.extend_from_slice(text.as_bytes());
                ends.push(bytes.len() as i64);
            }
            TextValues::Dictionary { keys, values } => keys.push(values.key_of(text)),
        }
    }

    /// The column's pages, of `rows` rows, null in those without a value.
    fn pages(&self, primitive_type: &PrimitiveType, rows: usize) -> PolarsResult<Vec<Page>> {
        let present = self.rows.as_ref().map_or(Present::Every, |present| present.among(rows));
        match &self.values {
            TextValues::Plain { ends, bytes } => plain_pages(primitive_type, rows, present, ends, bytes),
            TextValues::Dictionary { keys, values } => {
                let values: Vec<&str> = values.values.iter().map(String::as_str).collect();
                dictionary_pages(primitive_type, rows, present, keys, &values)
            }
        }
    }
}

/// A column of a row group, as it is encoded.
pub enum GroupColumn {
    /// Instants and content hashes, encoded by polars' writer.
    Numbers(ArrayRef),
    /// Text, amounts and scores, encoded by [`super::column_pages`].
    Paged(PagedColumn),
}

/// A column whose pages [`super::column_pages`] encodes from its rows with a value and their
/// values.
pub enum PagedColumn {
    /// A text column: plain (ids) or a dictionary (names and codes).
    Text(TextColumn),
    /// The amounts.
    Amounts(NumberColumn<f64>),
    /// The scores.
    Scores(NumberColumn<i64>),
}

impl PagedColumn {
    /// The Arrow type of the lake column it is.
    fn dtype(&self) -> ArrowDataType {
        match self {
            PagedColumn::Text(_) => ArrowDataType::Utf8View,
            PagedColumn::Amounts(_) => ArrowDataType::Float64,
            PagedColumn::Scores(_) => ArrowDataType::Int64,
        }
    }

    /// The column's pages, of `rows` rows.
    fn pages(&self, primitive_type: &PrimitiveType, rows: usize) -> PolarsResult<Vec<Page>> {
        match self {
            PagedColumn::Text(text) => text.pages(primitive_type, rows),
            PagedColumn::Amounts(amounts) => amounts.pages(primitive_type, rows),
            PagedColumn::Scores(scores) => scores.pages(primitive_type, rows),
        }
    }
}

impl EventColumns {
    /// Empty columns, the fixed ones with room for `capacity` events (the text columns grow
    /// with the values they are given).
    pub fn with_capacity(capacity: usize) -> EventColumns {
        EventColumns {
            fixed: FixedColumns::with_capacity(capacity),
            fields: LAKE_COLUMNS
                .iter()
                .filter(|column| is_event_text(column) && !["event_id", "event_type"].contains(&column.name))
                .map(|column| TextColumn::new(column.name))
                .collect(),
        }
    }

    /// Events collected.
    pub fn len(&self) -> usize {
        self.fixed.occurred_at.len()
    }

    /// The parts of the columns, each filled on its own: appending the same events, in the same
    /// order, to every part appends them to the columns. The columns hold fewer than 2^32 rows:
    /// the run's events are written out at 2^19 pending events, and one call of
    /// `StagedRun::add_events` adds a batch (8,192) or a block of replayed suspects (16,384).
    pub fn parts(&mut self) -> [ColumnPart<'_>; COLUMN_PARTS] {
        let row = self.fixed.occurred_at.len() as u32;
        [ColumnPart::Fixed(&mut self.fixed), ColumnPart::Text { row, columns: &mut self.fields }]
    }

    /// Appends `events`.
    #[cfg(test)]
    fn extend<S: Deref<Target = str>>(&mut self, events: &[Event<S>]) {
        for mut part in self.parts() {
            events.iter().for_each(|event| part.push(event));
        }
    }

    /// The lake's columns of the events, `ingest_run` included. Ids are plain text; the other
    /// text columns are dictionaries of the values they hold (the types that occur, the run's
    /// id, the names and codes met).
    pub fn finish(self, run_id: &str) -> PolarsResult<Vec<GroupColumn>> {
        let rows = self.len();
        let array = |column: Column| column.as_materialized_series().rechunk().to_arrow(0, CompatLevel::newest());
        // The text columns in lake order: the event's id and type, then its text fields.
        let FixedColumns { event_id, event_type, occurred_at, amount, score, content_hash } = self.fixed;
        let mut text = [event_id.finish(), event_types(&event_type)].into_iter().chain(self.fields);
        let (mut occurred_at, mut amount, mut score, mut content_hash) =
            (Some(occurred_at), Some(amount), Some(score), Some(content_hash));
        LAKE_COLUMNS
            .iter()
            .map(|column| match column.name {
                INGEST_RUN => Some(GroupColumn::Paged(PagedColumn::Text(TextColumn::dictionary_of_every_row(
                    vec![0; rows],
                    PlIndexSet::from_iter([run_id.to_owned()]),
                )))),
                _ if is_event_text(column) => text.next().map(|text| GroupColumn::Paged(PagedColumn::Text(text))),
                "occurred_at" => occurred_at.take().map(|instants| {
                    let instants = Int64Chunked::from_vec("occurred_at".into(), instants)
                        .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC));
                    GroupColumn::Numbers(array(instants.into_column()))
                }),
                "amount" => amount.take().map(|amounts| GroupColumn::Paged(PagedColumn::Amounts(amounts))),
                "score" => score.take().map(|scores| GroupColumn::Paged(PagedColumn::Scores(scores))),
                "content_hash" => content_hash
                    .take()
                    .map(|hashes| GroupColumn::Numbers(array(Column::new("content_hash".into(), hashes)))),
                _ => None,
            })
            .collect::<Option<Vec<GroupColumn>>>()
            .ok_or_else(|| polars_err!(ComputeError: "the event columns do not match the lake's columns"))
    }
}

/// The `event_type` column of events of the types at `indices` ([`EventType::index`]): a
/// dictionary of the types that occur, in [`EventType::ALL`]'s order.
fn event_types(indices: &[u8]) -> TextColumn {
    let mut occurs = [false; EventType::ALL.len()];
    for &index in indices {
        occurs[index as usize] = true;
    }
    let mut keys = [0u32; EventType::ALL.len()];
    let mut names = PlIndexSet::default();
    for (index, event_type) in EventType::ALL.iter().enumerate().filter(|(index, _)| occurs[*index]) {
        keys[index] = names.len() as u32;
        names.insert(event_type.name().to_owned());
    }
    TextColumn::dictionary_of_every_row(indices.iter().map(|&index| keys[index as usize]).collect(), names)
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
    /// How each column's pages are compressed.
    codecs: Vec<PageCodec>,
    options: WriteOptions,
}

/// How a column's pages are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageCodec {
    /// zstd at [`ZSTD_LEVEL`] (what the lake's Parquet files are written with).
    Zstd,
    /// Not compressed: for a column that zstd finds nothing to take out of.
    Uncompressed,
}

impl PageCodec {
    /// The codec of a lake column's pages: none for the columns zstd takes about a fifth or
    /// less out of, whose many small pages cost its set-up (tables built for each page) for
    /// little.
    /// The content hashes are uniform 64-bit numbers: zstd took nothing out of them (79 of 79
    /// MB for 10M events), at 0.6% of an ingest's instructions. The instants are deltas
    /// bit-packed already: zstd took 3% out of them (54.1 -> 52.4 MB), at 1.3% of an ingest's
    /// instructions. The keys of `event_type`, `campaign_id` and `owner_id` are bit-packed
    /// already: zstd took 18%, 13% and 21% out of them (together 11.1 -> 9.2 MB for 10M
    /// events), at 1.4% of an ingest's instructions; those of `category` and `ingest_run` it
    /// made larger. The event files of 2M events are 1% larger for these five (40.5 -> 40.9 MB).
    fn of(column: &str) -> PageCodec {
        match column {
            "content_hash" | "occurred_at" | "event_type" | "campaign_id" | "owner_id" | "category" | "ingest_run" => {
                PageCodec::Uncompressed
            }
            _ => PageCodec::Zstd,
        }
    }
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
                    // The content hash written plain: no cardinality estimate or dictionary
                    // hashing while writing. (Text, amounts and scores are encoded by `column_pages`.)
                    "content_hash" => vec![Encoding::Plain; encodings.len()],
                    // Instants as deltas bit-packed: 3% smaller event files than plain, and
                    // fewer bytes for zstd (2% fewer instructions for an ingest).
                    "occurred_at" => vec![Encoding::DeltaBinaryPacked; encodings.len()],
                    _ => encodings.clone(),
                })
                .collect(),
            codecs: arrow_schema.iter_values().map(|field| PageCodec::of(field.name.as_str())).collect(),
            // The pages are compressed by `compress_page`, at the level named here too.
            options: WriteOptions {
                statistics: StatisticsOptions::default(),
                version: Version::V1,
                compression: CompressionOptions::Zstd(Some(ZstdLevel::try_new(ZSTD_LEVEL)?)),
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

    /// One row group of `rows` events (the lake's columns, [`EventColumns::finish`]), its
    /// columns encoded and compressed in parallel.
    pub fn encode(&self, columns: &[GroupColumn], rows: usize) -> PolarsResult<Vec<Vec<CompressedPage>>> {
        let fields: Vec<&ArrowField> = self.arrow_schema.iter_values().collect();
        let matches = columns.len() == fields.len()
            && columns.iter().zip(&fields).all(|(column, field)| match column {
                GroupColumn::Numbers(array) => array.dtype() == field.dtype(),
                GroupColumn::Paged(paged) => &paged.dtype() == field.dtype(),
            });
        if !matches {
            polars_bail!(SchemaMismatch: "event columns that are not the lake's columns {:?}", self.arrow_schema);
        }
        let columns: Vec<Vec<Vec<CompressedPage>>> = columns
            .par_iter()
            .zip(self.parquet_schema.fields())
            .zip(&self.encodings)
            .zip(&self.codecs)
            .map(|(((column, parquet_type), encodings), &codec)| {
                let pages = match (column, parquet_type) {
                    (GroupColumn::Numbers(array), _) => {
                        return self.encode_column(array, parquet_type, encodings, codec);
                    }
                    (GroupColumn::Paged(paged), ParquetType::PrimitiveType(primitive)) => {
                        paged.pages(primitive, rows)?
                    }
                    _ => polars_bail!(SchemaMismatch: "a column of a nested type"),
                };
                Ok(vec![pages.into_iter().map(|page| compress_page(page, codec)).collect::<PolarsResult<_>>()?])
            })
            .collect::<PolarsResult<_>>()?;
        Ok(columns.into_iter().flatten().collect())
    }

    fn encode_column(
        &self,
        array: &ArrayRef,
        parquet_type: &ParquetType,
        encodings: &[Encoding],
        codec: PageCodec,
    ) -> PolarsResult<Vec<Vec<CompressedPage>>> {
        array_to_columns(array, parquet_type.clone(), self.options, encodings)?
            .into_iter()
            .map(|pages| pages.map(|page| compress_page(page?, codec)).collect())
            .collect()
    }
}

/// The zstd level of the event files' pages. Level 1: a twentieth larger than the default
/// level 3, a tenth faster to write.
const ZSTD_LEVEL: i32 = 1;

thread_local! {
    /// The zstd context of a thread that compresses pages, made at its first page: a context
    /// takes long to set up, and a row group has hundreds of pages.
    static PAGE_COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses an encoded page with `codec`; with zstd (version 1, the whole page at once) as
/// polars' writer does with [`CompressionOptions::Zstd`] at [`ZSTD_LEVEL`], but with the
/// context of the thread.
fn compress_page(page: Page, codec: PageCodec) -> PolarsResult<CompressedPage> {
    if codec == PageCodec::Uncompressed {
        return Ok(polars_parquet::parquet::write::compress(page, Vec::new(), CompressionOptions::Uncompressed)?);
    }
    PAGE_COMPRESSOR.with_borrow_mut(|compressor| {
        let compressor = match compressor {
            Some(compressor) => compressor,
            None => compressor.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
        };
        let mut compress = |bytes: &[u8]| -> std::io::Result<CowBuffer> {
            let mut compressed = Vec::with_capacity(zstd::zstd_safe::compress_bound(bytes.len()));
            compressor.compress_to_buffer(bytes, &mut compressed)?;
            Ok(CowBuffer::Owned(compressed))
        };
        Ok(match page {
            Page::Data(page) => {
                if !matches!(page.header(), DataPageHeader::V1(_)) {
                    polars_bail!(ComputeError: "a data page of version 2 where version 1 was asked for");
                }
                let num_rows =
                    page.num_rows.ok_or_else(|| polars_err!(ComputeError: "a data page without its rows"))?;
                CompressedPage::Data(CompressedDataPage::new(
                    page.header().clone(),
                    compress(page.buffer())?,
                    Compression::Zstd,
                    page.buffer().len(),
                    page.descriptor.clone(),
                    num_rows,
                ))
            }
            Page::Dict(page) => CompressedPage::Dict(CompressedDictPage::new(
                compress(&page.buffer)?,
                Compression::Zstd,
                page.buffer.len(),
                page.num_values,
                page.is_sorted,
            )),
        })
    })
}

/// One event file of a run: its path under the run's snapshot and its writer, which appends
/// each chunk of the month's events as row groups.
pub struct MonthFile {
    /// The path under the snapshot.
    pub relative: String,
    /// The open writer.
    pub writer: BatchedWriter<BufWriter<File>>,
}

/// The event files of a run, a file per UTC month. Each chunk of events sent is encoded in
/// parallel on the rayon pool by the caller, then appended as a row group per month by a thread
/// of its own while the caller collects the next chunk; one chunk waits at most. A third thread
/// fsyncs the files as their row groups are written, so that the commit's fsync finds little
/// left to write.
///
/// The writing thread never waits for the pool: the caller may be a worker of the pool (ingest
/// hands its batches on from one), and a worker waiting for a thread that waits for the pool
/// could be the worker that thread's work needs (the pool's workers run one another's work
/// while they wait).
pub struct MonthFiles {
    run: Arc<RunFiles>,
    sender: Option<SyncSender<EncodedChunk>>,
    thread: Option<JoinHandle<Result<BTreeMap<Month, MonthFile>, IngestError>>>,
}

/// A chunk's months encoded: each month's rows and its row group's pages.
type EncodedChunk = Vec<(Month, usize, Vec<Vec<CompressedPage>>)>;

/// What both sides of [`MonthFiles`] work with: the encoder, the run's snapshot directory and
/// the run's id (in its files' names).
struct RunFiles {
    encoder: EventEncoder,
    dir: PathBuf,
    run_id: String,
}

impl MonthFiles {
    /// Starts the writer of run `run_id`'s event files under the snapshot `dir`.
    pub fn start(dir: &Path, run_id: &str) -> Result<MonthFiles, IngestError> {
        let encoder = EventEncoder::new().map_err(|source| IngestError::Parquet { path: dir.to_owned(), source })?;
        let run = Arc::new(RunFiles { encoder, dir: dir.to_owned(), run_id: run_id.to_owned() });
        let (sender, receiver) = sync_channel::<EncodedChunk>(0);
        let written_run = Arc::clone(&run);
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
                    let months = written_run.write(chunk, &mut files)?;
                    let paths = months.iter().map(|month| written_run.dir.join(&files[month].relative)).collect();
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
        Ok(MonthFiles { run, sender: Some(sender), thread: Some(thread) })
    }

    /// Encodes a chunk of events, by month, and hands it to the writer; waits while it still
    /// writes the last.
    pub fn send(&mut self, chunk: Vec<(Month, EventColumns)>) -> Result<(), IngestError> {
        let encoded = self.run.encode(chunk)?;
        if self.sender.as_ref().is_some_and(|sender| sender.send(encoded).is_ok()) {
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

impl RunFiles {
    /// Encodes a chunk's months in parallel.
    fn encode(&self, chunk: Vec<(Month, EventColumns)>) -> Result<EncodedChunk, IngestError> {
        chunk
            .into_par_iter()
            .map(|(month, events)| {
                let parquet_error = |source| IngestError::Parquet { path: self.dir.join(month_dir(month)), source };
                let rows = events.len();
                let columns = events.finish(&self.run_id).map_err(parquet_error)?;
                Ok((month, rows, self.encoder.encode(&columns, rows).map_err(parquet_error)?))
            })
            .collect()
    }

    /// Appends each encoded month as a row group to its month's file; the months written.
    fn write(&self, encoded: EncodedChunk, files: &mut BTreeMap<Month, MonthFile>) -> Result<Vec<Month>, IngestError> {
        let months = encoded.iter().map(|(month, _, _)| *month).collect();
        for (month, rows, pages) in encoded {
            let number = files.len();
            let month_file = match files.entry(month) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    let relative = format!("{}/part-{}-{number:05}.parquet", month_dir(month), self.run_id);
                    let writer = self.encoder.writer(&self.dir.join(&relative))?;
                    entry.insert(MonthFile { relative, writer })
                }
            };
            let path = self.dir.join(&month_file.relative);
            month_file
                .writer
                .write_row_group(rows as u64, &pages)
                .map_err(|source| IngestError::Parquet { path, source })?;
        }
        Ok(months)
    }
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

    /// The lake columns of `rows` deal stage changes, every third one to `won`, every fourth
    /// with an amount and every fifth with a score.
    fn won_every_third(rows: usize) -> Vec<GroupColumn> {
        let event_ids: Vec<String> = (0..rows).map(|row| format!("e{row}")).collect();
        let events: Vec<_> = event_ids
            .iter()
            .enumerate()
            .map(|(row, event_id)| Event {
                amount: (row % 4 == 0).then_some(row as f64 / 2.0),
                score: (row % 5 == 0).then_some(row as i64 % 11),
                ..event(event_id, EventType::DealStageChanged, (row % 3 == 0).then_some("won"))
            })
            .collect();
        let mut columns = EventColumns::with_capacity(rows);
        columns.extend(&events);
        columns.finish("run-1").expect("columns")
    }

    /// The file of one row group of `rows` rows of `pages`.
    fn file_of(path: &Path, rows: usize, pages: &[Vec<CompressedPage>]) -> Vec<u8> {
        let mut writer = EventEncoder::new().expect("encoder").writer(path).expect("writer");
        writer.write_row_group(rows as u64, pages).expect("row group");
        writer.finish().expect("finish");
        std::fs::read(path).expect("read")
    }

    /// The lake's columns of `rows` rows as a reader of the file written of them reads them.
    fn read_back(columns: &[GroupColumn], rows: usize) -> DataFrame {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.parquet");
        file_of(&path, rows, &EventEncoder::new().expect("encoder").encode(columns, rows).expect("pages"));
        ParquetReader::new(File::open(&path).expect("open")).finish().expect("read")
    }

    /// The text of column `name` of `frame`, row by row.
    fn text_of(frame: &DataFrame, name: &str) -> Vec<Option<String>> {
        let column = frame.column(name).expect("column");
        column.str().expect("text").iter().map(|text| text.map(str::to_owned)).collect()
    }

    /// A dictionary's keys are those of a plain set of its values: for values of every length
    /// around the short texts' limit, and each with one byte changed at every place, each
    /// value's key is the one it got first, whether it is found by its words or by the set.
    #[test]
    fn a_dictionary_gives_each_distinct_value_one_key() {
        let mut values: Vec<String> = Vec::new();
        for length in 0..=20 {
            let base: String = (0..length).map(|at| char::from(b'a' + (at % 26) as u8)).collect();
            values.push(base.clone());
            for at in 0..length {
                let mut changed = base.clone().into_bytes();
                changed[at] = b'Z';
                values.push(String::from_utf8(changed).expect("ASCII"));
            }
        }
        let mut dictionary = Dictionary::default();
        let mut expected = PlIndexSet::default();
        for round in 0..2 {
            for value in values.iter().chain(values.iter().rev()) {
                let key = expected.insert_full(value.clone()).0 as u32;
                assert_eq!(dictionary.key_of(value), key, "{value:?}, round {round}");
            }
        }
        assert_eq!(dictionary.values, expected);
        assert!(ShortText::of(&[b'x'; 16]).is_some() && ShortText::of(&[b'x'; 17]).is_none());
    }

    /// The month of an instant is the same whether months' bounds are kept or not: at the
    /// edges of months and years, before 1970, in any order, past the months kept.
    #[test]
    fn kept_month_bounds_give_each_instants_month() {
        let micros = |text: &str| DateTime::parse_from_rfc3339(text).expect("instant").timestamp_micros();
        let edges = [
            "1969-12-31T23:59:59.999999Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59.999999Z",
            "2024-03-01T00:00:00Z",
            "2024-12-31T23:59:59.999999Z",
            "2025-01-01T00:00:00Z",
            "2025-01-15T12:00:00Z",
        ];
        let mut instants: Vec<i64> = edges.iter().map(|text| micros(text)).collect();
        instants.extend(instants.clone().iter().rev());
        instants.extend(instants.clone().iter().flat_map(|instant| [instant - 1, *instant, instant + 1]));
        let mut bounds = MonthBounds::default();
        for instant in instants {
            assert_eq!(bounds.month_of(instant), month_of(instant), "{instant}");
        }
        // More months than are kept: those past the limit are computed each time.
        let day = 86_400_000_000;
        let spread: Vec<i64> = (0..3_000).map(|month| month * 31 * day - 2_000 * 31 * day).collect();
        for instant in spread.iter().chain(spread.iter().rev()) {
            assert_eq!(bounds.month_of(*instant), month_of(*instant), "{instant}");
        }
        assert_eq!(bounds.known.len(), KNOWN_MONTHS);
        assert_eq!(bounds.month_of(micros("2024-02-29T23:59:59.999999Z")), Some((2024, 2)));
        assert_eq!(bounds.month_of(micros("2024-03-01T00:00:00Z")), Some((2024, 3)));
    }

    /// The instants chrono cannot represent have no month; the last month it can has no next
    /// month to bound it, and is still found.
    #[test]
    fn month_bounds_at_the_ends_of_time() {
        let mut bounds = MonthBounds::default();
        for instant in [i64::MIN, i64::MAX] {
            assert_eq!(bounds.month_of(instant), None, "{instant}");
        }
        let last = DateTime::<chrono::Utc>::MAX_UTC.timestamp_micros();
        let last_month = month_of(last).expect("the last month");
        assert_eq!(bounds.month_of(last), Some(last_month));
        assert_eq!(bounds.month_of(last - 1), Some(last_month));
    }

    /// Pages compressed with a thread's kept zstd context are, byte for byte, the pages polars'
    /// compressor makes of the same encoded pages with a context of each page's own: data pages
    /// of every column (polars' own encoding for instants and hashes) and dictionary pages; the
    /// content hashes' and the instants' pages are uncompressed, as polars' compressor leaves
    /// them.
    #[test]
    fn pages_compressed_with_a_kept_context_are_polars_pages() {
        use polars_parquet::write::Compressor;
        let rows = 20_000;
        let columns = won_every_third(rows);
        let encoder = EventEncoder::new().expect("encoder");
        let ours = encoder.encode(&columns, rows).expect("pages");
        let mut theirs = Vec::new();
        let fields = encoder.parquet_schema.fields();
        for (((column, parquet_type), encodings), codec) in
            columns.iter().zip(fields).zip(&encoder.encodings).zip(&encoder.codecs)
        {
            let pages = match (column, parquet_type) {
                (GroupColumn::Numbers(array), _) => {
                    array_to_columns(array, parquet_type.clone(), encoder.options, encodings).expect("encode")
                }
                (GroupColumn::Paged(paged), ParquetType::PrimitiveType(primitive)) => {
                    let pages = paged.pages(primitive, rows).expect("column pages");
                    vec![polars_parquet::parquet::write::DynIter::new(pages.into_iter().map(Ok))]
                }
                (_, _) => panic!("a nested column"),
            };
            for pages in pages {
                let pages = pages.map(|page| {
                    page.map_err(|error| polars_parquet::read::ParquetError::FeatureNotSupported(error.to_string()))
                });
                let compression = match codec {
                    PageCodec::Zstd => encoder.options.compression,
                    PageCodec::Uncompressed => CompressionOptions::Uncompressed,
                };
                let compressed = Compressor::new_from_vec(pages, compression, Vec::new());
                theirs.push(compressed.collect::<Result<Vec<_>, _>>().expect("compress"));
            }
        }
        let dictionary_pages = ours.iter().flatten().filter(|page| matches!(page, CompressedPage::Dict(_))).count();
        assert!(dictionary_pages > 0, "dictionary pages compared too");
        // The pages' bytes are private: the files written of them are compared.
        let dir = tempfile::tempdir().expect("tempdir");
        let ours_path = dir.path().join("ours.parquet");
        let ours = file_of(&ours_path, rows, &ours);
        assert!(ours == file_of(&dir.path().join("theirs.parquet"), rows, &theirs), "the files differ");
        // Each column's codec, as the file says: those `PageCodec::of` names uncompressed,
        // every other column zstd.
        let metadata =
            polars_parquet::read::read_metadata(&mut File::open(&ours_path).expect("open")).expect("metadata");
        for column in LAKE_COLUMNS {
            let chunk =
                metadata.row_groups[0].columns_under_root_iter(column.name).expect("column").next().expect("leaf");
            let expected = match column.name {
                "content_hash" | "occurred_at" | "event_type" | "campaign_id" | "owner_id" | "category"
                | "ingest_run" => Compression::Uncompressed,
                _ => Compression::Zstd,
            };
            assert_eq!(chunk.compression(), expected, "{}", column.name);
        }
    }

    /// Names and codes are dictionaries of the values that occur, ids plain text; both read
    /// back as the text of every event.
    #[test]
    fn text_columns_hold_each_events_text() {
        let mut columns = EventColumns::with_capacity(4);
        let events = [
            ("a", EventType::TicketOpened, None),
            ("b", EventType::DealStageChanged, Some("won")),
            ("c", EventType::TicketOpened, None),
            ("d", EventType::DealStageChanged, Some("won")),
        ]
        .map(|(event_id, event_type, stage)| event(event_id, event_type, stage));
        columns.extend(&events);
        let columns = columns.finish("run-1").expect("columns");
        let dictionary = |name: &str| {
            let place = LAKE_COLUMNS.iter().position(|column| column.name == name).expect("column");
            match &columns[place] {
                GroupColumn::Paged(PagedColumn::Text(TextColumn {
                    values: TextValues::Dictionary { values, .. },
                    ..
                })) => values.values.len(),
                _ => panic!("{name} is not a dictionary"),
            }
        };
        assert_eq!((dictionary("event_type"), dictionary("ingest_run"), dictionary("stage")), (2, 1, 1));
        let frame = read_back(&columns, 4);
        let some = |texts: &[&str]| texts.iter().map(|text| Some((*text).to_owned())).collect::<Vec<_>>();
        let types = ["ticket_opened", "deal_stage_changed", "ticket_opened", "deal_stage_changed"];
        assert_eq!(text_of(&frame, "event_type"), some(&types));
        assert_eq!(text_of(&frame, "ingest_run"), some(&["run-1"; 4]));
        assert_eq!(text_of(&frame, "stage"), vec![None, Some("won".into()), None, Some("won".into())]);
        assert_eq!(text_of(&frame, "customer_id"), some(&["a", "b", "c", "d"]));
        assert_eq!(text_of(&frame, "event_id"), some(&["a", "b", "c", "d"]));
    }

    /// A column of mostly nulls, filled over several batches, holds each row's value where it
    /// was given: nulls first, between values, last, and a column of nulls only.
    #[test]
    fn sparse_text_columns_keep_every_row_in_place() {
        let text = |row: usize, every: usize, value: &str| (row % every == every - 1).then(|| format!("{value}{row}"));
        let rows = 23;
        let owned: Vec<(String, Option<String>, Option<String>)> =
            (0..rows).map(|row| (format!("e{row}"), text(row, 5, "d"), text(row, 3, "won"))).collect();
        let events: Vec<Event<&str>> = owned
            .iter()
            .map(|(event_id, deal_id, stage)| Event {
                text: TextFields { deal_id: deal_id.as_deref(), stage: stage.as_deref(), ..TextFields::default() },
                ..event(event_id, EventType::DealStageChanged, None)
            })
            .collect();
        let mut columns = EventColumns::with_capacity(2);
        for batch in events.chunks(4) {
            columns.extend(batch);
        }
        let frame = read_back(&columns.finish("run-1").expect("columns"), rows);
        let expected = |every, value| (0..rows).map(|row| text(row, every, value)).collect::<Vec<_>>();
        assert_eq!(text_of(&frame, "event_id"), (0..rows).map(|row| Some(format!("e{row}"))).collect::<Vec<_>>());
        assert_eq!(text_of(&frame, "deal_id"), expected(5, "d"));
        assert_eq!(text_of(&frame, "stage"), expected(3, "won"));
        assert_eq!(text_of(&frame, "customer_id"), vec![None; rows]);
    }

    /// Events of every density of every text column (none, some, in runs, all), text longer
    /// than the bounds are cut to, with amounts and scores now and then, over several plain
    /// pages: the file written of their pages
    /// reads back as the file polars' writer writes of the same values laid out row by row,
    /// and its row group has the same statistics (minimum, maximum and null count of every
    /// text column, of the amounts and of the scores).
    #[test]
    fn column_pages_read_as_polars_pages_with_its_statistics() {
        use polars_parquet::parquet::statistics::Statistics;
        let rows = 150_000;
        let value = |column: usize, row: usize| -> Option<String> {
            let spread = (row * 7_919 + column * 104_729) % 1_000;
            match column % 5 {
                0 => None,
                // Text past the 64 bytes bounds are cut to, of characters of 1 and 2 bytes.
                1 => (spread < 3).then(|| format!("rare é{spread}{}", "ü\u{7f}".repeat(30))),
                2 => (row / 700).is_multiple_of(3).then(|| format!("run{}-{}", row / 700, "x".repeat(70))),
                3 => (spread < 500).then(|| format!("half-{column}-{}", spread % 17)),
                _ => Some(format!("{:x}", spread * row)),
            }
        };
        let fields: Vec<Vec<Option<String>>> =
            (0..13).map(|column| (0..rows).map(|row| value(column, row)).collect()).collect();
        let event_ids: Vec<String> = (0..rows).map(|row| format!("ev-{}", rows - row)).collect();
        let amounts: Vec<Option<f64>> =
            (0..rows).map(|row| (row % 3 == 1).then_some((row % 1_000) as f64 * 1.25)).collect();
        let scores: Vec<Option<i64>> = (0..rows).map(|row| (row % 17 == 0).then_some((row % 13) as i64 - 2)).collect();
        let events: Vec<Event<&str>> = (0..rows)
            .map(|row| {
                let field = |column: usize| fields[column][row].as_deref();
                let text = TextFields {
                    customer_id: field(0),
                    deal_id: field(1),
                    order_id: field(2),
                    ticket_id: field(3),
                    campaign_id: field(4),
                    owner_id: field(5),
                    stage: field(6),
                    currency: field(7),
                    channel: field(8),
                    kind: field(9),
                    category: field(10),
                    survey: field(11),
                    reason: field(12),
                };
                Event {
                    text,
                    amount: amounts[row],
                    score: scores[row],
                    ..event(&event_ids[row], EventType::ALL[row % EventType::ALL.len()], None)
                }
            })
            .collect();
        let mut columns = EventColumns::with_capacity(rows);
        for batch in events.chunks(4_096) {
            columns.extend(batch);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let ours_path = dir.path().join("ours.parquet");
        let columns = columns.finish("run-1").expect("columns");
        let pages = EventEncoder::new().expect("encoder").encode(&columns, rows).expect("pages");
        let plain_pages = pages[0].iter().filter(|page| matches!(page, CompressedPage::Data(_))).count();
        assert!(plain_pages >= 2, "event ids over {plain_pages} pages");
        file_of(&ours_path, rows, &pages);
        let ours = ParquetReader::new(File::open(&ours_path).expect("open")).finish().expect("read ours");

        // The same text, a row at a time, written by polars' writer.
        let text_names: Vec<&str> =
            LAKE_COLUMNS.iter().filter(|column| column.lake_type == LakeType::Str).map(|column| column.name).collect();
        let mut reference = DataFrame::new(
            rows,
            text_names
                .iter()
                .map(|name| {
                    let texts: Vec<Option<String>> = match *name {
                        "event_id" => event_ids.iter().cloned().map(Some).collect(),
                        "event_type" => (0..rows).map(|row| Some(EventType::ALL[row % 23].name().to_owned())).collect(),
                        INGEST_RUN => vec![Some("run-1".to_owned()); rows],
                        name => {
                            let field =
                                text_names.iter().filter(|name| !["event_id", "event_type", INGEST_RUN].contains(name));
                            let place = field.clone().position(|other| *other == name).expect("a text field");
                            fields[place].clone()
                        }
                    };
                    Column::new((*name).into(), texts)
                })
                .chain([Column::new("amount".into(), &amounts), Column::new("score".into(), &scores)])
                .collect(),
        )
        .expect("reference frame");
        let names: Vec<&str> = text_names.iter().copied().chain(["amount", "score"]).collect();
        let theirs_path = dir.path().join("theirs.parquet");
        ParquetWriter::new(File::create(&theirs_path).expect("create"))
            .with_statistics(StatisticsOptions::default())
            .finish(&mut reference)
            .expect("write reference");
        assert_eq!(ours.select(names.iter().copied()).expect("columns"), reference);

        let statistics = |path: &Path| {
            let metadata = polars_parquet::read::read_metadata(&mut File::open(path).expect("open")).expect("metadata");
            let row_group = &metadata.row_groups[0];
            names
                .iter()
                .map(|name| {
                    let column = row_group.columns_under_root_iter(name).expect("column").next().expect("leaf");
                    let bytes = |value: Option<[u8; 8]>| value.map(|value| value.to_vec());
                    match column.statistics(&metadata.footer_buf).expect("statistics").expect("valid statistics") {
                        Statistics::Binary(binary) => (binary.min_value, binary.max_value, binary.null_count),
                        Statistics::Double(numbers) => (
                            bytes(numbers.min_value.map(f64::to_le_bytes)),
                            bytes(numbers.max_value.map(f64::to_le_bytes)),
                            numbers.null_count,
                        ),
                        Statistics::Int64(numbers) => (
                            bytes(numbers.min_value.map(i64::to_le_bytes)),
                            bytes(numbers.max_value.map(i64::to_le_bytes)),
                            numbers.null_count,
                        ),
                        other => panic!("{name}: {other:?}"),
                    }
                })
                .collect::<Vec<_>>()
        };
        let ours_statistics = statistics(&ours_path);
        assert_eq!(ours_statistics, statistics(&theirs_path));
        assert!(ours_statistics.iter().any(|(_, _, nulls)| *nulls == Some(rows as i64)), "an empty column");
        assert!(ours_statistics.iter().any(|(_, _, nulls)| *nulls == Some(0)), "a full column");
    }

    /// Every data page that holds a value has its bounds: without them, the file's page index
    /// would mark the page as all null (polars' writer does), and a reader that filters pages by
    /// that index would skip it. Instants are delta-encoded.
    #[test]
    fn every_page_with_values_has_its_bounds() {
        use polars_parquet::parquet::page::DataPageHeader;
        let pages = EventEncoder::new().expect("encoder").encode(&won_every_third(1_000), 1_000).expect("pages");
        for (column, pages) in LAKE_COLUMNS.iter().zip(&pages) {
            for page in pages {
                let CompressedPage::Data(page) = page else { continue };
                let DataPageHeader::V1(header) = page.header() else { panic!("a version 1 page") };
                let statistics = header.statistics.as_ref().expect("statistics");
                if column.name == "occurred_at" {
                    assert_eq!(header.encoding, Encoding::DeltaBinaryPacked.into(), "instants delta-encoded");
                }
                let bounded = statistics.min_value.is_some() && statistics.max_value.is_some();
                let has_values = statistics.null_count < Some(i64::from(header.num_values));
                assert_eq!(bounded, has_values, "{}", column.name);
            }
        }
    }

    /// A row group's statistics count each null once, also for a dictionary column of more
    /// rows than a default data page holds (1 MiB, 262,144 keys).
    #[test]
    fn a_large_row_groups_null_count_is_its_nulls() {
        use polars_parquet::parquet::page::DataPageHeader;
        let pages = EventEncoder::new().expect("encoder").encode(&won_every_third(300_000), 300_000).expect("pages");
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

//! The Parquet pages of the lake's text columns and of its amounts and scores, encoded straight
//! from the rows that hold a value and their values, where polars' writer takes an Arrow array
//! laid out row by row and goes over every row again: its definition levels one row at a time,
//! its values through the validity bitmap, its bounds over the whole array. Here the
//! definition levels are the rows' bitmap, written 8 rows (a byte) at a time, the values are
//! copied once and the bounds are found among the values. The pages are of the kinds polars
//! writes: version 1; ids plain, in pages of about 1 MiB of values; names and codes a
//! dictionary page and one data page of keys; amounts and scores plain (polars' writer tries a
//! dictionary for them); each data page with its minimum, maximum and null count, text bounds
//! cut to 64 bytes as polars' writer cuts them and float bounds of zero signed as Parquet asks.

use std::ops::Range;

use polars::prelude::{PolarsResult, polars_bail, polars_err};
use polars_parquet::parquet::CowBuffer;
use polars_parquet::parquet::encoding::{Encoding, uleb128};
use polars_parquet::parquet::metadata::Descriptor;
use polars_parquet::parquet::page::{DataPage, DataPageHeader, DataPageHeaderV1, DictPage};
use polars_parquet::parquet::schema::Repetition;
use polars_parquet::parquet::schema::types::PrimitiveType;
use polars_parquet::parquet::statistics::{BinaryStatistics, ParquetStatistics, PrimitiveStatistics};
use polars_parquet::parquet::types::NativeType;
use polars_parquet::write::Page;

/// Which rows of a column chunk hold a value.
#[derive(Debug, Clone, Copy)]
pub enum Present<'a> {
    /// Every row.
    Every,
    /// These rows, ascending; the others are null.
    Rows(&'a [u32]),
}

/// The size of the values a data page is cut at (polars' writer's page size).
const PAGE_BYTES: usize = 1024 * 1024;

/// The bytes a text bound is cut to (polars' writer's default).
const BOUND_BYTES: usize = 64;

/// The pages of a chunk of `rows` rows of plain text: the values of the rows `present`, one
/// after another in `bytes`, each ending at its entry of `ends`.
pub fn plain_pages(
    primitive_type: &PrimitiveType,
    rows: usize,
    present: Present<'_>,
    ends: &[i64],
    bytes: &[u8],
) -> PolarsResult<Vec<Page>> {
    let value_bytes = bytes.len() + ends.len() * size_of::<u32>();
    paged(rows, present, value_bytes, |first_row, page_rows, page_present, range| {
        let place_of = |value: usize| match value {
            0 => Ok(0),
            value => offset(ends[value - 1]),
        };
        let (start, end) = (place_of(range.start)?, place_of(range.end)?);
        let values = range.len();
        // Room for every value and its length, and for one short copy past the last.
        let mut buffer =
            Vec::with_capacity(definition_level_bytes(page_rows) + (end - start) + values * 4 + SHORT_VALUE);
        put_levels(&mut buffer, primitive_type, page_rows, page_present, first_row)?;
        // Each value copied and ranked in one pass: its bytes are read once.
        let mut bounds = Bounds::default();
        let mut value_start = start;
        for value_end in &ends[range] {
            let value_end = offset(*value_end)?;
            put_plain_value(&mut buffer, bytes, value_start..value_end)?;
            bounds.add(&bytes[value_start..value_end]);
            value_start = value_end;
        }
        let statistics = bounds.statistics(primitive_type, page_rows - values);
        data_page(primitive_type, buffer, page_rows, statistics.serialize(), Encoding::Plain)
    })
}

/// The pages of a chunk of `rows` rows of numbers (amounts, scores): `values` of the rows
/// `present`, plain.
pub fn number_pages<T: NativeType + PartialOrd>(
    primitive_type: &PrimitiveType,
    rows: usize,
    present: Present<'_>,
    values: &[T],
) -> PolarsResult<Vec<Page>> {
    paged(rows, present, std::mem::size_of_val(values), |first_row, page_rows, page_present, range| {
        let values = &values[range];
        let mut buffer = Vec::with_capacity(definition_level_bytes(page_rows) + std::mem::size_of_val(values));
        put_levels(&mut buffer, primitive_type, page_rows, page_present, first_row)?;
        let mut min_max: Option<(T, T)> = None;
        for value in values {
            buffer.extend_from_slice(value.to_le_bytes().as_ref());
            min_max = Some(match min_max {
                None => (*value, *value),
                Some((min, max)) => (if *value < min { *value } else { min }, if *value > max { *value } else { max }),
            });
        }
        let statistics = PrimitiveStatistics {
            primitive_type: primitive_type.clone(),
            null_count: Some((page_rows - values.len()) as i64),
            distinct_count: None,
            min_value: min_max.map(|(min, _)| min.norm_min()),
            max_value: min_max.map(|(_, max)| max.norm_max()),
        };
        data_page(primitive_type, buffer, page_rows, statistics.serialize(), Encoding::Plain)
    })
}

/// The pages of a chunk of `rows` rows, of which those `present` hold values of `value_bytes`
/// in all, cut into pages of as many rows as hold about [`PAGE_BYTES`] of values on average
/// (none for no rows, as polars' writer does): `page` makes a page of its first row, its number
/// of rows, its rows with a value (rows of the chunk) and the range of those values.
fn paged(
    rows: usize,
    present: Present<'_>,
    value_bytes: usize,
    mut page: impl FnMut(usize, usize, Present<'_>, Range<usize>) -> PolarsResult<Page>,
) -> PolarsResult<Vec<Page>> {
    let rows_per_page = (PAGE_BYTES / (value_bytes / rows.max(1) + 1)).max(1);
    let mut pages = Vec::with_capacity(rows.div_ceil(rows_per_page));
    let mut first_value = 0;
    let mut first_row = 0;
    while first_row < rows {
        let end_row = (first_row + rows_per_page).min(rows);
        let (end_value, page_present) = match present {
            Present::Every => (end_row, Present::Every),
            Present::Rows(all) => {
                let end_value = first_value + all[first_value..].partition_point(|row| (*row as usize) < end_row);
                (end_value, Present::Rows(&all[first_value..end_value]))
            }
        };
        pages.push(page(first_row, end_row - first_row, page_present, first_value..end_value)?);
        (first_row, first_value) = (end_row, end_value);
    }
    Ok(pages)
}

/// The pages of a chunk of `rows` rows of names or codes: the dictionary of `values`, then one
/// data page of the rows `present` (none for no rows), whose `keys` are places in `values`
/// (every value of which some row holds).
pub fn dictionary_pages(
    primitive_type: &PrimitiveType,
    rows: usize,
    present: Present<'_>,
    keys: &[u32],
    values: &[&str],
) -> PolarsResult<Vec<Page>> {
    let mut dictionary = Vec::with_capacity(values.iter().map(|value| value.len() + 4).sum());
    for value in values {
        put_value(&mut dictionary, value.as_bytes())?;
    }
    let mut pages = vec![Page::Dict(DictPage::new(CowBuffer::Owned(dictionary), values.len(), false))];
    if rows > 0 {
        let statistics = bounds(primitive_type, values.iter().map(|value| value.as_bytes()), rows - keys.len());
        // The keys: their bit width, a group's header and at most 4 bytes a key, the last 8 padded.
        let mut buffer = Vec::with_capacity(definition_level_bytes(rows) + 1 + 10 + (keys.len() + 7) * 4);
        put_levels(&mut buffer, primitive_type, rows, present, 0)?;
        put_keys(&mut buffer, keys, bit_width(values.len().saturating_sub(1)));
        pages.push(data_page(primitive_type, buffer, rows, statistics.serialize(), Encoding::RleDictionary)?);
    }
    Ok(pages)
}

/// A version 1 data page of `rows` rows, its definition levels and values in `buffer`.
fn data_page(
    primitive_type: &PrimitiveType,
    buffer: Vec<u8>,
    rows: usize,
    statistics: ParquetStatistics,
    encoding: Encoding,
) -> PolarsResult<Page> {
    let num_values = i32::try_from(rows).map_err(|_| polars_err!(ComputeError: "a page of {rows} rows"))?;
    let header = DataPageHeaderV1 {
        num_values,
        encoding: encoding.into(),
        definition_level_encoding: Encoding::Rle.into(),
        repetition_level_encoding: Encoding::Rle.into(),
        statistics: Some(statistics),
    };
    // The levels' maxima as polars' writer leaves them (the levels are read from the schema).
    let descriptor = Descriptor { primitive_type: primitive_type.clone(), max_def_level: 0, max_rep_level: 0 };
    Ok(Page::Data(DataPage::new(DataPageHeader::V1(header), CowBuffer::Owned(buffer), descriptor, rows)))
}

/// The statistics of a page whose values (text) are `values`, with `nulls` rows without one:
/// the bounds cut to [`BOUND_BYTES`] ([`lower_bound`], [`upper_bound`]).
fn bounds<'a>(
    primitive_type: &PrimitiveType,
    values: impl Iterator<Item = &'a [u8]>,
    nulls: usize,
) -> BinaryStatistics {
    let mut bounds = Bounds::default();
    values.for_each(|value| bounds.add(value));
    bounds.statistics(primitive_type, nulls)
}

/// The least and the greatest of the text values added so far.
#[derive(Default)]
struct Bounds<'a> {
    min_max: Option<(Ranked<'a>, Ranked<'a>)>,
}

impl<'a> Bounds<'a> {
    /// Adds `value`, its first bytes as a number compared first: most comparisons end there,
    /// without a call to compare the bytes.
    #[inline(always)]
    fn add(&mut self, value: &'a [u8]) {
        let value = (leading_bytes(value), value);
        self.min_max = Some(match self.min_max {
            None => (value, value),
            Some((min, max)) => (min.min(value), max.max(value)),
        });
    }

    /// The statistics of a page of the values added and `nulls` rows without one: the bounds
    /// cut to [`BOUND_BYTES`] ([`lower_bound`], [`upper_bound`]).
    fn statistics(self, primitive_type: &PrimitiveType, nulls: usize) -> BinaryStatistics {
        BinaryStatistics {
            primitive_type: primitive_type.clone(),
            null_count: Some(nulls as i64),
            distinct_count: None,
            max_value: self.min_max.map(|(_, (_, max))| upper_bound(max)),
            min_value: self.min_max.map(|((_, min), _)| lower_bound(min).to_vec()),
        }
    }
}

/// A text value after its [`leading_bytes`]: ordered as the value.
type Ranked<'a> = (u64, &'a [u8]);

/// The first 8 bytes of `value` (zeros past its end) as a big-endian number: of two values,
/// the one with the smaller number is the smaller (the bytes differ first there, or the
/// smaller ends there); equal numbers say nothing.
fn leading_bytes(value: &[u8]) -> u64 {
    match value.first_chunk::<8>() {
        Some(leading) => u64::from_be_bytes(*leading),
        None => {
            let mut leading = [0u8; 8];
            leading[..value.len()].copy_from_slice(value);
            u64::from_be_bytes(leading)
        }
    }
}

/// The longest prefix of the text `value` of at most [`BOUND_BYTES`] that ends between two
/// characters: no greater than `value`.
fn lower_bound(value: &[u8]) -> &[u8] {
    if value.len() <= BOUND_BYTES {
        return value;
    }
    // A character starts at a byte that is not a continuation byte (0b10xx_xxxx).
    let end = (1..=BOUND_BYTES).rev().find(|end| (value[*end] as i8) >= -0x40).unwrap_or(0);
    &value[..end]
}

/// A text of at most [`BOUND_BYTES`] no less than the text `value`, as polars' writer makes
/// it: the [`lower_bound`] prefix with its last character that can be incremented within its
/// encoded length incremented, the characters after it dropped; `value` itself when there is
/// no such character.
fn upper_bound(value: &[u8]) -> Vec<u8> {
    let prefix = lower_bound(value);
    if prefix.len() == value.len() {
        return value.to_vec();
    }
    let Ok(prefix) = std::str::from_utf8(prefix) else { return value.to_vec() };
    let incremented = prefix.char_indices().rev().find_map(|(place, character)| {
        char::from_u32(character as u32 + 1)
            .filter(|next| next.len_utf8() == character.len_utf8())
            .map(|next| (place, next))
    });
    match incremented {
        Some((place, next)) => {
            let mut bound = prefix.as_bytes()[..place].to_vec();
            bound.extend_from_slice(next.encode_utf8(&mut [0; 4]).as_bytes());
            bound
        }
        None => value.to_vec(),
    }
}

/// The longest value [`put_plain_value`] copies as a block of this many bytes.
const SHORT_VALUE: usize = 16;

/// Appends the value at `place` in `bytes` as [`put_value`] does. A short value (nearly every
/// id) is copied as the [`SHORT_VALUE`] bytes from its start, when `bytes` has them, and the
/// bytes past it dropped again: one copy of a known size instead of a call to copy its bytes
/// (`buffer` has room for that many bytes past the value).
fn put_plain_value(buffer: &mut Vec<u8>, bytes: &[u8], place: Range<usize>) -> PolarsResult<()> {
    let length = place.len();
    match bytes.get(place.start..).and_then(<[u8]>::first_chunk::<SHORT_VALUE>) {
        Some(block) if length <= SHORT_VALUE && buffer.capacity() - buffer.len() >= 4 + SHORT_VALUE => {
            buffer.extend_from_slice(&(length as u32).to_le_bytes());
            let end = buffer.len() + length;
            buffer.extend_from_slice(block);
            buffer.truncate(end);
            Ok(())
        }
        _ => put_value(buffer, &bytes[place]),
    }
}

/// Appends a value as Parquet's plain encoding writes a byte array: its length, then its bytes.
fn put_value(buffer: &mut Vec<u8>, value: &[u8]) -> PolarsResult<()> {
    let length =
        u32::try_from(value.len()).map_err(|_| polars_err!(ComputeError: "a text of {} bytes", value.len()))?;
    buffer.extend_from_slice(&length.to_le_bytes());
    buffer.extend_from_slice(value);
    Ok(())
}

/// A place in a text column's bytes.
fn offset(end: i64) -> PolarsResult<usize> {
    usize::try_from(end).map_err(|_| polars_err!(ComputeError: "a text column ending at {end}"))
}

/// The bits a key up to `max` takes.
fn bit_width(max: usize) -> u32 {
    usize::BITS - max.leading_zeros()
}

/// The fewest bytes of 8 rows' equal levels that are written as a run rather than with the
/// levels around them.
const LEVEL_RUN_BYTES: usize = 2;

/// Appends the definition levels of a page of `rows` rows of which `present` hold a value, as
/// a column of `primitive_type` has them: an optional column's ([`put_definition_levels`]), a
/// required column's none (and then every row has a value).
fn put_levels(
    buffer: &mut Vec<u8>,
    primitive_type: &PrimitiveType,
    rows: usize,
    present: Present<'_>,
    first_row: usize,
) -> PolarsResult<()> {
    match (&primitive_type.field_info.repetition, present) {
        (Repetition::Optional, _) => put_definition_levels(buffer, rows, present, first_row),
        (_, Present::Every) => {}
        (_, Present::Rows(present)) if present.len() == rows => {}
        (_, Present::Rows(_)) => {
            polars_bail!(ComputeError: "nulls in the required column {}", primitive_type.field_info.name)
        }
    }
    Ok(())
}

/// At most how many bytes [`put_definition_levels`] appends for `rows` rows: their length, the
/// bitmap, and the headers of a bit-packed group and of a run (up to 10 bytes each, and a run's
/// value) for every run of whole bytes the bitmap can hold. Pages are laid out in buffers of
/// this room and their values': growing them as they filled copied them again.
fn definition_level_bytes(rows: usize) -> usize {
    let bitmap = rows.div_ceil(8);
    4 + bitmap + (bitmap / LEVEL_RUN_BYTES + 1) * 21
}

/// Appends the definition levels of a page of `rows` rows of which `present` hold a value
/// (rows of the chunk, the page's first being `first_row`): their length in 4 bytes, then the
/// levels (1 with a value, 0 null) in Parquet's hybrid of runs and bit-packed groups, of bit
/// width 1. A group of 8 levels bit-packed is a byte of the page's validity bitmap.
fn put_definition_levels(buffer: &mut Vec<u8>, rows: usize, present: Present<'_>, first_row: usize) {
    let start = buffer.len();
    buffer.extend_from_slice(&[0; 4]);
    match present {
        _ if rows == 0 => {}
        Present::Rows(present) if present.len() < rows => {
            let mut bitmap = vec![0u8; rows.div_ceil(8)];
            for row in present {
                let row = *row as usize - first_row;
                bitmap[row / 8] |= 1 << (row % 8);
            }
            put_bitmap(buffer, &bitmap, rows);
        }
        // Every row: one run of ones.
        _ => put_run(buffer, rows, 1, 1),
    }
    let length = (buffer.len() - start - 4) as u32;
    buffer[start..start + 4].copy_from_slice(&length.to_le_bytes());
}

/// Appends the levels of `rows` rows whose bitmap is `bitmap`: bytes of equal levels (0x00 or
/// 0xff) of at least [`LEVEL_RUN_BYTES`] as runs, the others bit-packed as they are. Only the
/// last byte may hold fewer than 8 rows; its spare bits are 0, so it ends a run of nulls
/// or is bit-packed last (a reader reads only the page's rows).
fn put_bitmap(buffer: &mut Vec<u8>, bitmap: &[u8], rows: usize) {
    let mut packed_from = 0;
    let mut at = 0;
    while at < bitmap.len() {
        let byte = bitmap[at];
        if byte != 0x00 && byte != 0xff {
            at += 1;
            continue;
        }
        let run_end = at + bitmap[at..].iter().take_while(|next| **next == byte).count();
        if run_end - at >= LEVEL_RUN_BYTES {
            put_bit_packed(buffer, &bitmap[packed_from..at]);
            put_run(buffer, (run_end * 8).min(rows) - at * 8, u32::from(byte & 1), 1);
            packed_from = run_end;
        }
        at = run_end;
    }
    put_bit_packed(buffer, &bitmap[packed_from..]);
}

/// Appends a bit-packed group of levels of bit width 1, 8 to a byte of `bitmap`.
fn put_bit_packed(buffer: &mut Vec<u8>, bitmap: &[u8]) {
    if !bitmap.is_empty() {
        put_uleb128(buffer, ((bitmap.len() as u64) << 1) | 1);
        buffer.extend_from_slice(bitmap);
    }
}

/// Appends a run of `count` times `value`, of `bit_width` bits.
fn put_run(buffer: &mut Vec<u8>, count: usize, value: u32, bit_width: u32) {
    put_uleb128(buffer, (count as u64) << 1);
    buffer.extend_from_slice(&value.to_le_bytes()[..bit_width.div_ceil(8) as usize]);
}

/// Appends the dictionary keys of a data page: their bit width in a byte, then the keys, as one
/// run when they are all equal, else bit-packed, 8 keys to `bit_width` bytes (the last 8 filled
/// with zeros).
fn put_keys(buffer: &mut Vec<u8>, keys: &[u32], bit_width: u32) {
    buffer.push(bit_width as u8);
    let Some(&first) = keys.first() else { return };
    if keys.iter().all(|key| *key == first) {
        put_run(buffer, keys.len(), first, bit_width);
        return;
    }
    let groups = keys.len().div_ceil(8);
    put_uleb128(buffer, ((groups as u64) << 1) | 1);
    let padding = std::iter::repeat_n(&0, groups * 8 - keys.len());
    let (mut bits, mut pending) = (0u64, 0u32);
    for key in keys.iter().chain(padding) {
        bits |= u64::from(*key) << pending;
        pending += bit_width;
        while pending >= 8 {
            buffer.push(bits as u8);
            bits >>= 8;
            pending -= 8;
        }
    }
}

/// Appends `value` as an unsigned LEB128 integer (a run's header).
fn put_uleb128(buffer: &mut Vec<u8>, value: u64) {
    let mut bytes = [0; 10];
    let used = uleb128::encode(value, &mut bytes);
    buffer.extend_from_slice(&bytes[..used]);
}

#[cfg(test)]
mod tests {
    use polars_parquet::parquet::encoding::hybrid_rle::HybridRleDecoder;
    use polars_parquet::parquet::page::DataPageHeader;
    use proptest::prelude::*;

    use super::*;

    /// The values of Parquet's hybrid encoding of bit width `bit_width`, read by the spec's
    /// rules a run at a time: a run header (count, then the value in whole bytes), or a
    /// bit-packed header (groups of 8 values, `bit_width` bytes each, least significant bit
    /// first). Panics when the data ends inside a run. Only a last bit-packed group may hold
    /// values past `count`, its padding; anything else past `count` fails the test.
    fn decode(mut data: &[u8], bit_width: u32, count: usize) -> Vec<u32> {
        let mut values = Vec::new();
        let mut padded = false;
        while !data.is_empty() {
            assert!(values.len() < count, "a run after the last value");
            let (header, used) = uleb128::decode(data);
            data = &data[used..];
            if header & 1 == 0 {
                let width = bit_width.div_ceil(8) as usize;
                let mut value = [0; 4];
                value[..width].copy_from_slice(&data[..width]);
                data = &data[width..];
                values.extend(std::iter::repeat_n(u32::from_le_bytes(value), (header >> 1) as usize));
                padded = false;
            } else {
                let bytes = (header >> 1) as usize * bit_width as usize;
                let (packed, rest) = data.split_at(bytes);
                let bit = |at: usize| u32::from(packed[at / 8] >> (at % 8) & 1);
                let count = (header >> 1) as usize * 8;
                values.extend((0..count).map(|value| {
                    (0..bit_width as usize).map(|place| bit(value * bit_width as usize + place) << place).sum::<u32>()
                }));
                data = rest;
                padded = true;
            }
        }
        let spare = values.len().checked_sub(count).expect("every value");
        assert!(spare == 0 || (padded && spare < 8), "{spare} values past the last");
        assert!(values[count..].iter().all(|value| *value == 0), "padding of zeros");
        values.truncate(count);
        values
    }

    /// Rows from the lengths of alternating runs of rows without and with a value.
    fn rows_of_runs(runs: &[usize]) -> (Vec<u32>, usize) {
        let (mut present, mut row) = (Vec::new(), 0);
        for (place, length) in runs.iter().enumerate() {
            if place % 2 == 1 {
                present.extend(row as u32..(row + length) as u32);
            }
            row += length;
        }
        (present, row)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// A page's bounds are the least and the greatest of its values compared as bytes:
        /// values sharing their first bytes, ending inside or past the first 8, holding zero
        /// bytes (which a value's end reads as), equal ones.
        #[test]
        fn bounds_are_the_least_and_greatest_values(
            values in prop::collection::vec(
                (prop::sample::select(vec![&b""[..], b"ev-7-", b"ev-7-64391", b"\0\0\0\0\0\0\0\0"]),
                 prop::collection::vec(prop::sample::select(vec![0u8, 1, b'a', 0x7f, 0xff]), 0..12)),
                1..40,
            ),
        ) {
            let values: Vec<Vec<u8>> = values.into_iter().map(|(prefix, rest)| [prefix, &rest[..]].concat()).collect();
            let primitive_type = PrimitiveType::from_physical(
                "text".into(),
                polars_parquet::parquet::schema::types::PhysicalType::ByteArray,
            );
            let statistics = bounds(&primitive_type, values.iter().map(Vec::as_slice), 3);
            let least = values.iter().min().expect("values");
            let greatest = values.iter().max().expect("values");
            prop_assert_eq!(statistics.min_value.as_deref(), Some(&least[..]));
            prop_assert_eq!(statistics.max_value.as_deref(), Some(&greatest[..]));
            prop_assert_eq!(statistics.null_count, Some(3));
        }

        /// The levels of a page read back, by the spec and by polars' reader, as 1 for each
        /// row with a value and 0 for the others: runs of any length, at any place, a last
        /// byte of fewer than 8 rows, a page that starts past the chunk's first row.
        #[test]
        fn definition_levels_read_back_as_the_rows(
            runs in prop::collection::vec(prop_oneof![1..4usize, 1..40usize, 60..200usize], 0..12),
            first_row in 0..20usize,
        ) {
            let (present, rows) = rows_of_runs(&runs);
            let shifted: Vec<u32> = present.iter().map(|row| row + first_row as u32).collect();
            let mut buffer = vec![7];
            put_definition_levels(&mut buffer, rows, Present::Rows(&shifted), first_row);
            let levels = &buffer[5..];
            prop_assert_eq!(u32::from_le_bytes(buffer[1..5].try_into().expect("4 bytes")) as usize, levels.len());
            let mut expected = vec![0; rows];
            for row in &present {
                expected[*row as usize] = 1;
            }
            prop_assert_eq!(decode(levels, 1, rows), expected.clone());
            let by_polars = HybridRleDecoder::new(levels, 1, rows).collect().expect("polars reads the levels");
            prop_assert_eq!(by_polars, expected);
        }

        /// Keys of every bit width read back as the keys, by the spec and by polars' reader.
        #[test]
        fn keys_read_back_as_the_keys(
            bit_width in 0..=20u32,
            seeds in prop::collection::vec(any::<u32>(), 0..100),
            repeated in any::<bool>(),
        ) {
            let mask = ((1u64 << bit_width) - 1) as u32;
            let keys: Vec<u32> = if repeated {
                vec![seeds.first().copied().unwrap_or(0) & mask; seeds.len()]
            } else {
                seeds.iter().map(|seed| seed & mask).collect()
            };
            let mut buffer = Vec::new();
            put_keys(&mut buffer, &keys, bit_width);
            prop_assert_eq!(u32::from(buffer[0]), bit_width);
            prop_assert_eq!(decode(&buffer[1..], bit_width, keys.len()), keys.clone());
            let by_polars = HybridRleDecoder::new(&buffer[1..], bit_width, keys.len()).collect().expect("polars reads the keys");
            prop_assert_eq!(by_polars, keys);
        }
    }

    /// Text bounds are cut as polars' writer cuts them: at most 64 bytes, between characters,
    /// the upper bound's last character that keeps its length incremented; a bound that cannot
    /// be cut is the whole value. Each is a bound: lower no greater, upper no less.
    #[test]
    fn text_bounds_are_cut_to_64_bytes() {
        let a70 = "a".repeat(70);
        assert_eq!(lower_bound(a70.as_bytes()), &a70.as_bytes()[..64]);
        assert_eq!(upper_bound(a70.as_bytes()), format!("{}b", "a".repeat(63)).into_bytes());
        // 'é' is 2 bytes: 63 of 'a' then 'é' crosses byte 64, so the cut is after 63 bytes.
        let crossing = format!("{}é{}", "a".repeat(63), "z".repeat(10));
        assert_eq!(lower_bound(crossing.as_bytes()), "a".repeat(63).as_bytes());
        assert_eq!(upper_bound(crossing.as_bytes()), format!("{}b", "a".repeat(62)).into_bytes());
        // DEL (0x7f) would become a 2-byte character: the character before it is incremented.
        let delete = format!("{}x\u{7f}{}", "a".repeat(62), "z".repeat(10));
        assert_eq!(upper_bound(delete.as_bytes()), format!("{}y", "a".repeat(62)).into_bytes());
        // No character can be incremented: the whole value.
        let last = "\u{10FFFF}".repeat(20);
        assert_eq!(upper_bound(last.as_bytes()), last.as_bytes());
        let short = "short é";
        assert_eq!(
            (lower_bound(short.as_bytes()), upper_bound(short.as_bytes())),
            (short.as_bytes(), short.as_bytes().to_vec())
        );
        for value in
            [&a70, &crossing, &delete, &last, &"ü".repeat(50), &format!("{}\u{D7FF}{}", "a".repeat(60), "b".repeat(9))]
        {
            let (lower, upper) = (lower_bound(value.as_bytes()), upper_bound(value.as_bytes()));
            assert!(lower <= value.as_bytes() && upper.as_slice() >= value.as_bytes(), "{value}");
            assert!(std::str::from_utf8(lower).is_ok() && std::str::from_utf8(&upper).is_ok(), "{value}");
        }
    }

    /// Plain text over many pages, a value in every seventh row: each page holds exactly the
    /// rows of its range, its levels and values are theirs, its null count and bounds are theirs
    /// (cut to 64 bytes), and the pages' rows add up to the chunk's.
    #[test]
    fn every_page_holds_the_values_of_its_rows() {
        use polars_parquet::parquet::schema::types::{PhysicalType, PrimitiveLogicalType};
        let mut primitive_type = PrimitiveType::from_physical("text".into(), PhysicalType::ByteArray);
        primitive_type.logical_type = Some(PrimitiveLogicalType::String);
        primitive_type.field_info.repetition = Repetition::Optional;
        let rows = 30_000;
        let present: Vec<u32> = (0..rows as u32).filter(|row| row % 7 == 3).collect();
        let texts: Vec<String> =
            present.iter().map(|row| format!("{:05}-{}", (row * 7_919) % 30_011, "é".repeat(1_000))).collect();
        let mut ends = Vec::new();
        let mut bytes = Vec::new();
        for text in &texts {
            bytes.extend_from_slice(text.as_bytes());
            ends.push(bytes.len() as i64);
        }
        let pages = plain_pages(&primitive_type, rows, Present::Rows(&present), &ends, &bytes).expect("pages");
        assert!(pages.len() > 5, "{} pages", pages.len());
        let mut first_row = 0;
        for page in &pages {
            let Page::Data(page) = page else { panic!("a data page") };
            let DataPageHeader::V1(header) = page.header() else { panic!("a version 1 page") };
            let page_rows = header.num_values as usize;
            let rows_here: Vec<usize> = present
                .iter()
                .map(|row| *row as usize)
                .filter(|row| (first_row..first_row + page_rows).contains(row))
                .collect();
            let values: Vec<&str> = rows_here.iter().map(|row| texts[(row - 3) / 7].as_str()).collect();
            let buffer = page.buffer();
            let levels_length = u32::from_le_bytes(buffer[..4].try_into().expect("4 bytes")) as usize;
            let levels = decode(&buffer[4..4 + levels_length], 1, page_rows);
            let expected_levels: Vec<u32> =
                (first_row..first_row + page_rows).map(|row| u32::from(rows_here.contains(&row))).collect();
            assert_eq!(levels, expected_levels);
            let mut rest = &buffer[4 + levels_length..];
            for value in &values {
                let length = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
                assert_eq!(&rest[4..4 + length], value.as_bytes());
                rest = &rest[4 + length..];
            }
            assert!(rest.is_empty());
            let statistics = header.statistics.as_ref().expect("statistics");
            assert_eq!(statistics.null_count, Some((page_rows - values.len()) as i64));
            let min = values.iter().min().map(|min| lower_bound(min.as_bytes()).to_vec());
            let max = values.iter().max().map(|max| upper_bound(max.as_bytes()));
            assert_eq!((&statistics.min_value, &statistics.max_value), (&min, &max));
            assert!(min.is_none_or(|min| min.len() <= 64), "bounds cut");
            first_row += page_rows;
        }
        assert_eq!(first_row, rows);
    }

    /// Values of every length from 0 to 40 bytes, short ones last (fewer than 16 bytes after
    /// them in the column's bytes), in a required column: the page holds each value's length
    /// and bytes, one after another, and nothing after the last.
    #[test]
    fn short_and_long_values_are_written_whole() {
        use polars_parquet::parquet::schema::types::PhysicalType;
        let mut primitive_type = PrimitiveType::from_physical("text".into(), PhysicalType::ByteArray);
        primitive_type.field_info.repetition = Repetition::Required;
        let texts: Vec<Vec<u8>> =
            (0..=40u8).rev().chain(0..=16).map(|length| (0..length).map(|byte| b'a' + byte % 26).collect()).collect();
        let mut ends = Vec::new();
        let mut bytes = Vec::new();
        for text in &texts {
            bytes.extend_from_slice(text);
            ends.push(bytes.len() as i64);
        }
        let pages = plain_pages(&primitive_type, texts.len(), Present::Every, &ends, &bytes).expect("pages");
        let [Page::Data(page)] = &pages[..] else { panic!("one data page") };
        let mut rest = page.buffer();
        for text in &texts {
            let length = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            assert_eq!(&rest[4..4 + length], &text[..]);
            rest = &rest[4 + length..];
        }
        assert!(rest.is_empty(), "{} bytes after the last value", rest.len());
    }

    /// A required column's pages have no definition levels, and nulls in one are an error; a
    /// chunk of no rows has no data page.
    #[test]
    fn required_columns_and_empty_chunks() {
        use polars_parquet::parquet::schema::types::PhysicalType;
        let mut required = PrimitiveType::from_physical("score".into(), PhysicalType::Int64);
        required.field_info.repetition = Repetition::Required;
        let pages = number_pages(&required, 3, Present::Rows(&[0, 1, 2]), &[1i64, 2, 3]).expect("pages");
        let [Page::Data(page)] = &pages[..] else { panic!("one data page") };
        assert_eq!(page.buffer(), [1i64, 2, 3].iter().flat_map(|value| value.to_le_bytes()).collect::<Vec<u8>>());
        assert!(number_pages(&required, 3, Present::Rows(&[0, 2]), &[1i64, 3]).is_err());
        let mut optional = required.clone();
        optional.field_info.repetition = Repetition::Optional;
        assert!(number_pages(&optional, 0, Present::Rows(&[]), &[] as &[i64]).expect("pages").is_empty());
        let dictionary = dictionary_pages(&optional, 0, Present::Rows(&[]), &[], &[]).expect("pages");
        assert!(matches!(&dictionary[..], [Page::Dict(_)]));
    }

    /// A page of every row has one run of ones; of no row, runs of zeros only.
    #[test]
    fn full_and_empty_pages_are_runs() {
        let mut every = Vec::new();
        put_definition_levels(&mut every, 1_000, Present::Every, 0);
        assert_eq!(every, [3, 0, 0, 0, 0xd0, 0x0f, 1]);
        let mut none = Vec::new();
        put_definition_levels(&mut none, 1_000, Present::Rows(&[]), 0);
        assert_eq!(none, [3, 0, 0, 0, 0xd0, 0x0f, 0]);
        assert_eq!(bit_width(0), 0);
        assert_eq!(bit_width(1), 1);
        assert_eq!(bit_width(22), 5);
    }
}

//! Raw records: the values of the 18 fields of one NDJSON line or CSV record, before
//! validation. JSON keeps the type it was written with (a number stays a number, with the text
//! it was written with); CSV cells are text. Malformed records (not JSON, not an object, wrong
//! CSV field count) are detected here.

use std::fmt;

use crmkpi_schema::Field;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::csv_records::CsvCells;
use crate::flat_json::scan_flat_object;

/// The value of one field as the dump wrote it, borrowed from the record's text (a JSON string
/// with escapes is unescaped into a string kept in the batch's [`Unescaped`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Value<'a> {
    /// Absent, JSON `null`, JSON `""` or an empty CSV cell.
    #[default]
    Null,
    /// A JSON string or a CSV cell.
    Text(&'a str),
    /// A JSON number, as the text it was written with (`1.50` stays `1.50`; an integer beyond
    /// 64 bits keeps all its digits).
    Number(&'a str),
    /// A JSON boolean.
    Bool(bool),
}

impl<'a> Value<'a> {
    /// The value of one JSON value's text (as serde_json validated it: no surrounding
    /// whitespace). Only a string with escapes is parsed again, into `unescaped`. An object or
    /// array is an error: a field's value must be flat, so the record is malformed.
    fn from_json(raw: &'a RawValue, unescaped: &'a Unescaped) -> Result<Value<'a>, serde_json::Error> {
        let text = raw.get();
        Ok(match text.as_bytes().first() {
            Some(b'"') => match text.get(1..text.len() - 1) {
                Some(inner) if !inner.contains('\\') => Value::Text(inner),
                _ => Value::Text(unescaped.keep(serde_json::from_str::<String>(text)?)),
            },
            Some(b'n') => Value::Null,
            Some(b't') => Value::Bool(true),
            Some(b'f') => Value::Bool(false),
            Some(b'{' | b'[') => return Err(de::Error::custom("a field's value is an object or an array")),
            _ => Value::Number(text),
        })
    }
}

/// The strings unescaped from a batch's JSON strings with escapes, the one kind of value that
/// is not a slice of its record's text. They are kept as long as the batch, so that every
/// value borrows: a record's values and its event are then slices, not strings of their own.
#[derive(Debug, Default)]
pub struct Unescaped(boxcar::Vec<String>);

impl Unescaped {
    /// Keeps `text`; the kept text.
    fn keep(&self, text: String) -> &str {
        &self.0[self.0.push(text)]
    }

    /// Lets go of the strings kept (for the next batch).
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// The strings unescaped by the unit tests' parses, kept for the whole test run.
    #[cfg(test)]
    pub(crate) fn for_tests() -> &'static Unescaped {
        static UNESCAPED: std::sync::LazyLock<Unescaped> = std::sync::LazyLock::new(Unescaped::default);
        &UNESCAPED
    }
}

/// The 18 field values of one record, indexed by [`Field`]: each one's text (a boolean's
/// `true` or `false`) and, beside it, what kind of value it was. Validation reads most fields
/// only as text, which is then one load instead of a match on the kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRecord<'a> {
    texts: [Option<&'a str>; 18],
    kinds: [ValueKind; 18],
}

/// What kind of value a field of a [`RawRecord`] holds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
enum ValueKind {
    #[default]
    Null,
    Text,
    Number,
    Bool,
}

impl<'a> RawRecord<'a> {
    /// The value of `field`.
    #[inline]
    pub fn get(&self, field: Field) -> Value<'a> {
        match (self.kinds[field as usize], self.texts[field as usize]) {
            (ValueKind::Text, Some(text)) => Value::Text(text),
            (ValueKind::Number, Some(text)) => Value::Number(text),
            (ValueKind::Bool, text) => Value::Bool(text == Some("true")),
            // Only `set` writes both, a text with every kind but null.
            (ValueKind::Null | ValueKind::Text | ValueKind::Number, _) => Value::Null,
        }
    }

    /// The text of `field`: a string's, a number's as written, a boolean's `true` or `false`;
    /// `None` when null.
    #[inline]
    pub fn text(&self, field: Field) -> Option<&'a str> {
        self.texts[field as usize]
    }

    /// Sets the value of `field`; empty text is null.
    // Always inlined: a value handed through memory is stored in two halves by the caller and
    // loaded whole here, which stalls (58% of this function's samples were that load).
    #[inline(always)]
    pub fn set(&mut self, field: Field, value: Value<'a>) {
        let (text, kind) = match value {
            Value::Null | Value::Text("") => (None, ValueKind::Null),
            Value::Text(text) => (Some(text), ValueKind::Text),
            Value::Number(text) => (Some(text), ValueKind::Number),
            Value::Bool(true) => (Some("true"), ValueKind::Bool),
            Value::Bool(false) => (Some("false"), ValueKind::Bool),
        };
        self.texts[field as usize] = text;
        self.kinds[field as usize] = kind;
    }
}

/// The fields a JSON object gave so far, a bit each: a field given twice makes the record
/// malformed (unknown keys may repeat).
#[derive(Debug, Default)]
pub(crate) struct GivenFields(u32);

impl GivenFields {
    /// Notes `field`; whether it was not given before.
    #[inline]
    pub(crate) fn first_time(&mut self, field: Field) -> bool {
        let bit = 1 << field as u32;
        let first = self.0 & bit == 0;
        self.0 |= bit;
        first
    }
}

/// Fills a record from a JSON object's keys.
struct RecordVisitor<'r, 'a> {
    record: &'r mut RawRecord<'a>,
    unescaped: &'a Unescaped,
}

impl<'de> Visitor<'de> for RecordVisitor<'_, 'de> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut given = GivenFields::default();
        while let Some(FieldKey(key)) = map.next_key::<FieldKey>()? {
            match key {
                Some(field) => {
                    if !given.first_time(field) {
                        return Err(de::Error::custom(format!("duplicate key `{field}`")));
                    }
                    let raw = map.next_value::<&'de RawValue>()?;
                    self.record.set(field, Value::from_json(raw, self.unescaped).map_err(de::Error::custom)?);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A JSON object's key: the field it names, `None` for a key that is not a field. It is read
/// without a copy of its text (serde's `Cow<str>` always makes one).
struct FieldKey(Option<Field>);

impl<'de> de::Deserialize<'de> for FieldKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FieldKey, D::Error> {
        deserializer.deserialize_str(FieldKeyVisitor)
    }
}

struct FieldKeyVisitor;

impl Visitor<'_> for FieldKeyVisitor {
    type Value = FieldKey;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a key")
    }

    /// A key as it lies in the line, or unescaped into serde_json's scratch space.
    fn visit_str<E: de::Error>(self, key: &str) -> Result<FieldKey, E> {
        Ok(FieldKey(Field::from_name(key)))
    }
}

/// Parses one NDJSON line into `record` (empty before); whether the line is a JSON object
/// (when not, `record` holds what was read before the error). The record is filled where it
/// lies: it is large, and every move of it is a copy. A flat object without escapes, the
/// common line, is read by [`scan_flat_object`]; any other line by serde_json, its strings with
/// escapes unescaped into `unescaped`.
pub fn parse_json_line<'a>(line: &'a str, unescaped: &'a Unescaped, record: &mut RawRecord<'a>) -> bool {
    if scan_flat_object(line, record).is_some() {
        return true;
    }
    *record = RawRecord::default();
    parse_json_line_with_serde(line, unescaped, record)
}

/// [`parse_json_line`] by serde_json alone.
pub(crate) fn parse_json_line_with_serde<'a>(
    line: &'a str,
    unescaped: &'a Unescaped,
    record: &mut RawRecord<'a>,
) -> bool {
    let mut deserializer = serde_json::Deserializer::from_str(line);
    deserializer.deserialize_map(RecordVisitor { record, unescaped }).is_ok() && deserializer.end().is_ok()
}

/// The header of a CSV dump: which field each column holds (`None`: an unknown column).
#[derive(Debug, Clone)]
pub struct CsvHeader {
    columns: Vec<Option<Field>>,
}

impl CsvHeader {
    /// Reads the header row's cells; `None` when one is not UTF-8.
    pub fn from_cells(cells: &CsvCells) -> Option<CsvHeader> {
        let columns = cells
            .iter()
            .map(|name| std::str::from_utf8(name).ok().map(|name| Field::from_name(name.trim())))
            .collect::<Option<Vec<_>>>()?;
        Some(CsvHeader { columns })
    }

    /// Reads one CSV record's cells into `record` (empty before); whether the record is well
    /// formed (the header's field count, every cell UTF-8).
    pub fn parse_record<'a>(&self, cells: &'a CsvCells, record: &mut RawRecord<'a>) -> bool {
        if cells.len() != self.columns.len() {
            return false;
        }
        for (column, cell) in self.columns.iter().zip(cells.iter()) {
            if let Some(field) = column {
                let Ok(text) = std::str::from_utf8(cell) else { return false };
                record.set(*field, Value::Text(text));
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv_records::CsvSplitter;

    fn json(line: &str) -> Option<RawRecord<'_>> {
        let mut record = RawRecord::default();
        parse_json_line(line, Unescaped::for_tests(), &mut record).then_some(record)
    }

    fn csv<'a>(header: &CsvHeader, cells: &'a CsvCells) -> Option<RawRecord<'a>> {
        let mut record = RawRecord::default();
        header.parse_record(cells, &mut record).then_some(record)
    }

    fn cells_of(line: &str) -> CsvCells {
        let mut records = Vec::new();
        let mut splitter = CsvSplitter::default();
        splitter.feed_line(1, line.as_bytes(), &mut records);
        splitter.finish(&mut records);
        records.remove(0).cells.expect("cells")
    }

    #[test]
    fn json_keeps_types() {
        let record = json(
            r#"{"event_id": 17, "event_type": "x", "amount": 1.5, "score": "7", "reason": "", "stage": null, "extra": {"a": 1}, "owner_id": true}"#,
        )
        .expect("object");
        assert_eq!(record.get(Field::EventId), Value::Number("17"));
        assert_eq!(record.get(Field::Amount), Value::Number("1.5"));
        assert_eq!(record.get(Field::Score), Value::Text("7"));
        assert_eq!(record.get(Field::Reason), Value::Null);
        assert_eq!(record.get(Field::Stage), Value::Null);
        assert_eq!(record.get(Field::OwnerId), Value::Bool(true));
    }

    /// An object or array as a field's value makes the record malformed, whichever field and
    /// however deep; under a key that is not a field it is ignored, as the key is.
    #[test]
    fn a_fields_nested_value_is_no_record() {
        for line in [
            r#"{"event_id": "e-1", "deal_id": [1]}"#,
            r#"{"event_id": "e-1", "deal_id": []}"#,
            r#"{"amount": {"value": 1.5}, "event_id": "e-1"}"#,
            r#"{"event_id": {}}"#,
            r#"{"event_id": "e-1", "reason": [{"a": [null]}]}"#,
        ] {
            assert!(json(line).is_none(), "{line}");
        }
        let record = json(r#"{"event_id": "e-1", "extra": [{"a": 1}], "more": {"b": [2]}}"#).expect("object");
        assert_eq!(record.get(Field::EventId), Value::Text("e-1"));
    }

    #[test]
    fn json_numbers_keep_their_text_and_strings_their_escapes() {
        let record = json(
            r#"{ "event_id" : 1.50 , "deal_id":123456789012345678901234567890,"order_id":-1e-7,"stage":"a\"b\u00e9","channel":"plain é"}"#,
        )
        .expect("object");
        assert_eq!(record.get(Field::EventId), Value::Number("1.50"));
        assert_eq!(record.get(Field::DealId), Value::Number("123456789012345678901234567890"));
        assert_eq!(record.get(Field::OrderId), Value::Number("-1e-7"));
        assert_eq!(record.get(Field::Stage), Value::Text("a\"bé"));
        assert_eq!(record.get(Field::Channel), Value::Text("plain é"));
    }

    #[test]
    fn json_keys_name_their_field_through_escapes() {
        let record = json(r#"{"event\u005fid": "e1", "st\u0061ge": "won", "unknown\n": 1}"#).expect("object");
        assert_eq!(record.get(Field::EventId), Value::Text("e1"));
        assert_eq!(record.get(Field::Stage), Value::Text("won"));
        // The same field twice, once escaped: a malformed record.
        assert!(json(r#"{"event_id": "a", "event\u005fid": "b"}"#).is_none());
    }

    #[test]
    fn json_rejects_non_objects() {
        assert!(json("[1, 2]").is_none());
        assert!(json("{\"event_id\": ").is_none());
        assert!(json("{} {}").is_none());
        assert!(json("{\"event_id\": \"a\", \"event_id\": \"b\"}").is_none());
        assert!(json("\"text\"").is_none());
    }

    #[test]
    fn csv_header_matches_by_name() {
        let header = CsvHeader::from_cells(&cells_of("occurred_at, event_id,unknown,event_type")).expect("header");
        let cells = cells_of("2024-01-01T00:00:00Z,e1,zzz,order_placed");
        let record = csv(&header, &cells).expect("record");
        assert_eq!(record.get(Field::EventId), Value::Text("e1"));
        assert_eq!(record.get(Field::EventType), Value::Text("order_placed"));
        assert!(csv(&header, &cells_of("a,b")).is_none());
    }
}

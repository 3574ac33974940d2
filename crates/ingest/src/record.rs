//! Raw records: the values of the 18 fields of one NDJSON line or CSV record, before
//! validation. JSON keeps the type it was written with (a number stays a number); CSV cells are
//! text. Malformed lines (not JSON, not an object, wrong CSV field count) are detected here.

use std::fmt;

use crmkpi_schema::Field;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The value of one field as the dump wrote it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// Absent, JSON `null`, JSON `""` or an empty CSV cell.
    #[default]
    Null,
    /// A JSON string or a CSV cell.
    Text(String),
    /// A JSON integer.
    Int(i64),
    /// A JSON number that is not an `i64` (fraction, exponent or out of range), with its text.
    Float(f64),
    /// A JSON boolean.
    Bool(bool),
    /// A JSON object or array.
    Nested,
}

/// The 18 field values of one record, indexed by [`Field`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRecord {
    values: [Value; 18],
}

impl RawRecord {
    /// The value of `field`.
    pub fn get(&self, field: Field) -> &Value {
        &self.values[field as usize]
    }

    /// Sets the value of `field`; empty text is null.
    pub fn set(&mut self, field: Field, value: Value) {
        self.values[field as usize] = match value {
            Value::Text(text) if text.is_empty() => Value::Null,
            other => other,
        };
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }
    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }
    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Int(value))
    }
    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(i64::try_from(value).map(Value::Int).unwrap_or(Value::Float(value as f64)))
    }
    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::Float(value))
    }
    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::Text(value.to_owned()))
    }
    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::Text(value))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Nested)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value::Nested)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = RawRecord;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRecord, A::Error> {
        let mut record = RawRecord::default();
        let mut seen = [false; 18];
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match Field::from_name(&key) {
                Some(field) => {
                    if std::mem::replace(&mut seen[field as usize], true) {
                        return Err(de::Error::custom(format!("duplicate key `{key}`")));
                    }
                    record.set(field, map.next_value::<Value>()?);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(record)
    }
}

/// Parses one NDJSON line into a raw record, or `None` when it is not a JSON object.
pub fn parse_json_line(line: &str) -> Option<RawRecord> {
    let mut deserializer = serde_json::Deserializer::from_str(line);
    let record = deserializer.deserialize_map(RecordVisitor).ok()?;
    deserializer.end().ok()?;
    Some(record)
}

/// The header of a CSV dump: which field each column holds (`None`: an unknown column).
#[derive(Debug, Clone)]
pub struct CsvHeader {
    columns: Vec<Option<Field>>,
}

impl CsvHeader {
    /// Reads the header row; a UTF-8 byte-order mark is dropped. `None` when it is not valid CSV.
    pub fn parse(line: &str) -> Option<CsvHeader> {
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        let names = split_csv_record(line)?;
        Some(CsvHeader { columns: names.iter().map(|name| Field::from_name(name.trim())).collect() })
    }

    /// Parses one CSV record into a raw record, or `None` when it is malformed (bad quoting or
    /// a field count different from the header's).
    pub fn parse_record(&self, text: &str) -> Option<RawRecord> {
        let cells = split_csv_record(text)?;
        if cells.len() != self.columns.len() {
            return None;
        }
        let mut record = RawRecord::default();
        for (column, cell) in self.columns.iter().zip(cells) {
            if let Some(field) = column {
                record.set(*field, Value::Text(cell));
            }
        }
        Some(record)
    }
}

/// Splits an RFC 4180 record (which may span lines) into its unquoted cells; `None` when a
/// quote is left open or text follows a closing quote.
pub fn split_csv_record(text: &str) -> Option<Vec<String>> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = text.chars().peekable();
    let mut at_cell_start = true;
    loop {
        match chars.next() {
            None => {
                cells.push(cell);
                return Some(cells);
            }
            Some('"') if at_cell_start => {
                loop {
                    match chars.next()? {
                        '"' if chars.peek() == Some(&'"') => {
                            chars.next();
                            cell.push('"');
                        }
                        '"' => break,
                        other => cell.push(other),
                    }
                }
                match chars.next() {
                    None => {
                        cells.push(cell);
                        return Some(cells);
                    }
                    Some(',') => {
                        cells.push(std::mem::take(&mut cell));
                        at_cell_start = true;
                    }
                    Some(_) => return None,
                }
            }
            Some(',') => {
                cells.push(std::mem::take(&mut cell));
                at_cell_start = true;
            }
            Some(other) => {
                cell.push(other);
                at_cell_start = false;
            }
        }
    }
}

/// Whether `text` leaves a CSV quote open (an odd number of quote characters), so that the
/// record continues on the next line.
pub fn csv_quote_open(text: &str) -> bool {
    text.bytes().filter(|byte| *byte == b'"').count() % 2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_types() {
        let record = parse_json_line(
            r#"{"event_id": 17, "event_type": "x", "amount": 1.5, "score": "7", "reason": "", "stage": null, "extra": {"a": 1}, "owner_id": true, "deal_id": [1]}"#,
        )
        .expect("object");
        assert_eq!(record.get(Field::EventId), &Value::Int(17));
        assert_eq!(record.get(Field::Amount), &Value::Float(1.5));
        assert_eq!(record.get(Field::Score), &Value::Text("7".into()));
        assert_eq!(record.get(Field::Reason), &Value::Null);
        assert_eq!(record.get(Field::Stage), &Value::Null);
        assert_eq!(record.get(Field::OwnerId), &Value::Bool(true));
        assert_eq!(record.get(Field::DealId), &Value::Nested);
    }

    #[test]
    fn json_rejects_non_objects() {
        assert!(parse_json_line("[1, 2]").is_none());
        assert!(parse_json_line("{\"event_id\": ").is_none());
        assert!(parse_json_line("{} {}").is_none());
        assert!(parse_json_line("{\"event_id\": \"a\", \"event_id\": \"b\"}").is_none());
        assert!(parse_json_line("\"text\"").is_none());
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(split_csv_record("a,\"b,c\",\"d\"\"e\",").expect("valid"), vec!["a", "b,c", "d\"e", ""]);
        assert_eq!(split_csv_record("\"multi\nline\",x").expect("valid"), vec!["multi\nline", "x"]);
        assert!(split_csv_record("\"open,x").is_none());
        assert!(split_csv_record("\"a\"b,x").is_none());
        assert!(csv_quote_open("a,\"b"));
        assert!(!csv_quote_open("a,\"b\""));
    }

    #[test]
    fn csv_header_matches_by_name() {
        let header = CsvHeader::parse("\u{feff}occurred_at,event_id,unknown,event_type").expect("header");
        let record = header.parse_record("2024-01-01T00:00:00Z,e1,zzz,order_placed").expect("record");
        assert_eq!(record.get(Field::EventId), &Value::Text("e1".into()));
        assert_eq!(record.get(Field::EventType), &Value::Text("order_placed".into()));
        assert!(header.parse_record("a,b").is_none());
    }
}

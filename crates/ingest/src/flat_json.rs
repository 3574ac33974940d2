//! The scanner of the NDJSON lines dumps are made of: one flat object whose keys and string
//! values have no escapes and whose values are strings, numbers, booleans and nulls. It fills a
//! record exactly as serde_json does ([`crate::record::parse_json_line`]), in one pass over the
//! line once its string ends are found 32 bytes at a time ([`StopMap`]), without serde's
//! machinery, and gives up on anything else: an escape, a nested value, a field given twice,
//! any syntax error. What it gives up on goes to serde_json, which decides; so the scanner
//! never judges a line malformed, it only takes the common case off serde's hands.

use crmkpi_schema::Field;
use wide::{CmpEq, u8x32};

use crate::record::{GivenFields, RawRecord, Value};

/// Fills `record` (empty before) from `line` when the line is a flat object; `None` when the
/// scanner gave up (then `record` may hold some of the line's values).
pub(crate) fn scan_flat_object<'a>(line: &'a str, record: &mut RawRecord<'a>) -> Option<()> {
    let mut cursor = Cursor { text: line, at: 0, stops: StopMap::of(line.as_bytes()) };
    cursor.skip_whitespace();
    cursor.expect(b'{')?;
    cursor.skip_whitespace();
    if cursor.peek() == Some(b'}') {
        cursor.at += 1;
    } else {
        // A field given twice is for serde to report.
        let mut given = GivenFields::default();
        loop {
            cursor.expect(b'"')?;
            let field = match field_key(line.as_bytes(), cursor.at) {
                Some(key) => {
                    cursor.at += key.length;
                    Some(key.field)
                }
                None => Field::from_name(cursor.string()?),
            };
            cursor.separator(b':')?;
            let value = cursor.value()?;
            if let Some(field) = field {
                if !given.first_time(field) {
                    return None;
                }
                record.set(field, value);
            }
            if cursor.separator(b',').is_none() {
                cursor.skip_whitespace();
                cursor.expect(b'}')?;
                break;
            }
        }
    }
    cursor.skip_whitespace();
    (cursor.at == line.len()).then_some(())
}

/// A field's name as a key spells it: the name and its closing quote, as the first bytes of
/// 16 read little-endian, and the mask of those bytes.
#[derive(Debug, Clone, Copy)]
struct FieldKey {
    field: Field,
    /// The name's bytes and the closing quote's.
    length: usize,
    bytes: u128,
    mask: u128,
}

impl FieldKey {
    const fn of(field: Field) -> FieldKey {
        let name = field.name().as_bytes();
        let mut bytes = (b'"' as u128) << (8 * name.len());
        let mut at = 0;
        while at < name.len() {
            bytes |= (name[at] as u128) << (8 * at);
            at += 1;
        }
        let length = name.len() + 1;
        // Every name is shorter than 15 bytes (`FieldKey`'s test).
        FieldKey { field, length, bytes, mask: (1 << (8 * length)) - 1 }
    }
}

/// How many bits of a key's first four bytes pick its slot in [`KEY_TABLE`].
const KEY_SLOT_BITS: u32 = 5;

/// The multiplier that sends the first four bytes of every field's name to a slot of its own
/// (found by a search; [`key_table`] does not compile with one that does not). Only `event_id`
/// and `event_type` share their first four bytes, and so their slot.
const KEY_SLOT_MULTIPLIER: u32 = 0x4e11_7f95;

/// The slot of a key whose first four bytes, read little-endian, are `first_bytes`.
const fn key_slot(first_bytes: u32) -> usize {
    (first_bytes.wrapping_mul(KEY_SLOT_MULTIPLIER) >> (32 - KEY_SLOT_BITS)) as usize
}

/// A slot's place for no field: its mask keeps no byte, so no window matches its bytes.
const NO_KEY: FieldKey = FieldKey { field: Field::EventId, length: 0, bytes: 1, mask: 0 };

/// The fields' keys by [`key_slot`], two places a slot.
static KEY_TABLE: [[FieldKey; 2]; 1 << KEY_SLOT_BITS] = key_table();

const fn key_table() -> [[FieldKey; 2]; 1 << KEY_SLOT_BITS] {
    let mut table = [[NO_KEY; 2]; 1 << KEY_SLOT_BITS];
    let mut at = 0;
    while at < Field::ALL.len() {
        let key = FieldKey::of(Field::ALL[at]);
        assert!(key.length > 4, "a field's name of four bytes or more");
        let slot = &mut table[key_slot(key.bytes as u32)];
        if slot[0].mask == 0 {
            slot[0] = key;
        } else if slot[1].mask == 0 && slot[0].bytes as u32 == key.bytes as u32 {
            slot[1] = key;
        } else {
            panic!("fields whose first four bytes differ share a slot of the key table");
        }
        at += 1;
    }
    table
}

/// The field whose name, with its closing quote, starts at `at` (just after a key's opening
/// quote), told from the 16 bytes there without looking for the key's end: a key of a field
/// spelled plainly, the common key. `None` for any other key (another name, an escape) and
/// when fewer than 16 bytes are left: [`Cursor::string`] and [`Field::from_name`] then read it.
#[inline]
fn field_key(bytes: &[u8], at: usize) -> Option<FieldKey> {
    let window = u128::from_le_bytes(bytes.get(at..at + 16)?.try_into().ok()?);
    let [first, second] = &KEY_TABLE[key_slot(window as u32)];
    if window & first.mask == first.bytes {
        Some(*first)
    } else {
        (window & second.mask == second.bytes).then_some(*second)
    }
}

/// A place in the line being scanned.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
    /// Where the line's strings may end; `None` for a line longer than [`MAPPED_LINE_BYTES`].
    stops: Option<StopMap>,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// The byte here, stepping past it.
    #[inline]
    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    /// Steps past `byte`, or gives up.
    #[inline]
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// Steps past JSON's whitespace (space, tab, line feed, carriage return; nothing else).
    #[inline]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Steps past `separator` and the whitespace around it; `None` (the cursor where it was)
    /// when another byte comes first. The common `: ` and `, ` are told at once.
    #[inline]
    fn separator(&mut self, separator: u8) -> Option<()> {
        let bytes = self.text.as_bytes();
        if let Some(&[first, b' ']) = bytes.get(self.at..self.at + 2)
            && first == separator
        {
            self.at += 2;
        } else {
            let at = self.at;
            self.skip_whitespace();
            if self.peek() != Some(separator) {
                self.at = at;
                return None;
            }
            self.at += 1;
        }
        self.skip_whitespace();
        Some(())
    }

    /// A string's text, the cursor just after its opening quote; gives up at an escape or a
    /// control character (which JSON forbids unescaped).
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        let start = self.at;
        let bytes = self.text.as_bytes();
        let end = match &self.stops {
            Some(stops) => quote_at(bytes, stops.next_stop(start)?)?,
            None => string_end(bytes, start)?,
        };
        self.at = end + 1;
        // Both ends are next to an ASCII quote: character boundaries.
        self.text.get(start..end)
    }

    /// The value here, as [`Value`] holds it (empty text is null when the record is set).
    #[inline]
    fn value(&mut self) -> Option<Value<'a>> {
        let start = self.at;
        match self.next()? {
            b'"' => self.string().map(Value::Text),
            b'-' | b'0'..=b'9' => {
                self.at = number_end(self.text.as_bytes(), start)?;
                self.text.get(start..self.at).map(Value::Number)
            }
            b'n' => self.literal("ull", Value::Null),
            b't' => self.literal("rue", Value::Bool(true)),
            b'f' => self.literal("alse", Value::Bool(false)),
            _ => None,
        }
    }

    /// `value` when the rest of its literal follows.
    #[inline]
    fn literal(&mut self, rest: &str, value: Value<'a>) -> Option<Value<'a>> {
        let end = self.at + rest.len();
        (self.text.as_bytes().get(self.at..end)? == rest.as_bytes()).then(|| {
            self.at = end;
            value
        })
    }
}

/// Lines of up to this many bytes get a [`StopMap`] (a generated record has about 150 bytes, at
/// most about 240); a longer line's strings are read eight bytes at a time ([`string_end`]).
const MAPPED_LINE_BYTES: usize = 512;

/// Where a line's strings may end: a bit for each of its quotes, backslashes and control
/// characters (bit `i % 64` of word `i / 64` for the line's byte `i`), found 32 bytes at a time
/// before the line is scanned. A string ends at the first of them after its opening quote,
/// when that one is a quote (as [`string_end`] finds, which takes about three times the
/// instructions for the strings of a generated record).
struct StopMap {
    words: [u64; MAPPED_LINE_BYTES / 64],
}

impl StopMap {
    /// The stops of `line`; `None` when it is longer than [`MAPPED_LINE_BYTES`].
    #[inline]
    fn of(line: &[u8]) -> Option<StopMap> {
        if line.len() > MAPPED_LINE_BYTES {
            return None;
        }
        let mut words = [0; MAPPED_LINE_BYTES / 64];
        let (chunks, rest) = line.as_chunks::<32>();
        for (index, chunk) in chunks.iter().enumerate() {
            words[index / 2] |= u64::from(chunk_stops(*chunk)) << (32 * (index % 2));
        }
        if !rest.is_empty() {
            // The last 32 bytes, whose first ones the chunks above had (no copy), or the line
            // with spaces after it (no stop).
            let stops = match line.last_chunk::<32>() {
                Some(last) => chunk_stops(*last) >> (32 - rest.len()),
                None => {
                    let mut padded = [b' '; 32];
                    padded[..rest.len()].copy_from_slice(rest);
                    chunk_stops(padded)
                }
            };
            words[chunks.len() / 2] |= u64::from(stops) << (32 * (chunks.len() % 2));
        }
        Some(StopMap { words })
    }

    /// The place of the first stop at or after `from`; `None` when the line has none there.
    #[inline]
    fn next_stop(&self, from: usize) -> Option<usize> {
        let mut word = from / 64;
        let mut bits = self.words.get(word)? & (u64::MAX << (from % 64));
        while bits == 0 {
            word += 1;
            bits = *self.words.get(word)?;
        }
        Some(word * 64 + bits.trailing_zeros() as usize)
    }
}

/// A bit for each byte of `chunk` that is a quote, a backslash or a control character.
#[inline]
fn chunk_stops(chunk: [u8; 32]) -> u32 {
    let bytes = u8x32::from(chunk);
    let quotes = bytes.cmp_eq(u8x32::splat(b'"'));
    let backslashes = bytes.cmp_eq(u8x32::splat(b'\\'));
    // A control character (below 0x20) is its own minimum with 0x1f.
    let controls = bytes.min(u8x32::splat(0x1f)).cmp_eq(bytes);
    (quotes | backslashes | controls).move_mask() as u32
}

/// Where the string starting at `start` (after its opening quote) ends: the place of its closing
/// quote; `None` at an escape, a control character or the end of the line. Eight bytes are
/// looked at a time, the last few of the line as a word padded with zero bytes (control
/// characters: the line's end). Only for lines too long for a [`StopMap`]: out of the scanner's
/// way.
#[cold]
#[inline(never)]
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let (words, last) = bytes.get(start..)?.as_chunks::<8>();
    let mut at = start;
    for word in words {
        let special = special_bytes(u64::from_le_bytes(*word));
        if special != 0 {
            return quote_at(bytes, at + (special.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let word = last.iter().rev().fold(0, |word, &byte| word << 8 | u64::from(byte));
    quote_at(bytes, at + (special_bytes(word).trailing_zeros() / 8) as usize)
}

/// `at` when the byte there is a quote.
#[inline]
fn quote_at(bytes: &[u8], at: usize) -> Option<usize> {
    (bytes.get(at) == Some(&b'"')).then_some(at)
}

/// The high bit of each byte of `word` (read little-endian) that is a quote, a backslash or a
/// control character. The lowest bit set is exact; bytes above it may be flagged without being
/// special (a borrow carries on), which does not matter, as only the first is looked at.
const fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    const fn below(word: u64, bound: u8) -> u64 {
        word.wrapping_sub(ONES * bound as u64) & !word & HIGH_BITS
    }
    below(word ^ (ONES * b'"' as u64), 1) | below(word ^ (ONES * b'\\' as u64), 1) | below(word, 0x20)
}

/// Where the number starting at `start` ends, by JSON's grammar: an optional minus, an
/// integer part without leading zeros, an optional fraction and exponent, each with digits.
fn number_end(bytes: &[u8], start: usize) -> Option<usize> {
    let digits_from = |at: usize| at + bytes[at..].iter().take_while(|byte| byte.is_ascii_digit()).count();
    let mut at = start + usize::from(bytes.get(start) == Some(&b'-'));
    at = match bytes.get(at)? {
        b'0' => at + 1,
        b'1'..=b'9' => digits_from(at + 1),
        _ => return None,
    };
    if bytes.get(at) == Some(&b'.') {
        let end = digits_from(at + 1);
        if end == at + 1 {
            return None;
        }
        at = end;
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        let end = digits_from(at);
        if end == at {
            return None;
        }
        at = end;
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::*;
    use crate::generator::{GenerateOptions, generate};
    use crate::record::{Unescaped, parse_json_line_with_serde};
    use crate::source::{Compression, Format};

    fn scanned(line: &str) -> Option<RawRecord<'_>> {
        let mut record = RawRecord::default();
        scan_flat_object(line, &mut record).map(|()| record)
    }

    fn by_serde(line: &str) -> Option<RawRecord<'_>> {
        let mut record = RawRecord::default();
        parse_json_line_with_serde(line, Unescaped::for_tests(), &mut record).then_some(record)
    }

    #[test]
    fn a_flat_object_is_read_as_serde_reads_it() {
        let line = " {\"event_id\":\"e1\" ,\t\"amount\": -1.50e+3,\"score\":7,\"stage\":\"\",\"reason\":null,\r\n\
                    \"owner_id\":true,\"channel\":\"plain é\",\"extra\":1,\"extra\":\"twice\",\"kind\":false,\
                    \"deal_id\":123456789012345678901234567890} ";
        let record = scanned(line).expect("a flat object");
        assert_eq!(record.get(Field::EventId), Value::Text("e1"));
        assert_eq!(record.get(Field::Amount), Value::Number("-1.50e+3"));
        assert_eq!(record.get(Field::Score), Value::Number("7"));
        assert_eq!(record.get(Field::Stage), Value::Null);
        assert_eq!(record.get(Field::Reason), Value::Null);
        assert_eq!(record.get(Field::OwnerId), Value::Bool(true));
        assert_eq!(record.get(Field::Kind), Value::Bool(false));
        assert_eq!(record.get(Field::Channel), Value::Text("plain é"));
        assert_eq!(record.get(Field::DealId), Value::Number("123456789012345678901234567890"));
        assert_eq!(Some(record), by_serde(line));
        assert_eq!(scanned("{}"), Some(RawRecord::default()));
        assert_eq!(scanned(" { } "), Some(RawRecord::default()));
    }

    /// Separators with no whitespace, the common single space (told at once) and more
    /// whitespace around them: read as serde reads them; a separator missing or doubled is
    /// for serde to reject.
    #[test]
    fn separators_with_any_whitespace_are_read_as_serde_reads_them() {
        let read = [
            r#"{"stage":"a","reason":"b"}"#,
            r#"{"stage": "a", "reason": "b"}"#,
            r#"{"stage" : "a" , "reason" :"b" }"#,
            "{\"stage\":  \"a\",\t\t\"reason\":\r\n\"b\"}",
            r#"{"stage": 1, "amount": 2.5, "kind": null, "reason": true}"#,
            r#"{"stage": "a",  "reason": "b"}"#,
        ];
        for line in read {
            let record = scanned(line).unwrap_or_else(|| panic!("not scanned: {line}"));
            assert_eq!(Some(record), by_serde(line), "{line}");
        }
        let rejected = [
            r#"{"stage" "a"}"#,
            r#"{"stage":: "a"}"#,
            r#"{"stage": "a" "reason": "b"}"#,
            r#"{"stage": "a",, "reason": "b"}"#,
            r#"{"stage": "a", }"#,
            r#"{"stage": "a";"reason": "b"}"#,
            r#"{"stage": "a" ,}"#,
        ];
        for line in rejected {
            assert_eq!(scanned(line), None, "{line}");
            assert_eq!(by_serde(line), None, "{line}");
        }
    }

    /// Every field's key is told from the bytes at its start, and only a key that is exactly a
    /// field's name: not one a byte longer or shorter, nor one with an escape, nor one too near
    /// the end of the line (which the scanner reads to its end instead).
    #[test]
    fn a_fields_key_is_told_from_its_first_bytes() {
        for field in Field::ALL {
            let name = field.name();
            assert!(name.len() < 15, "{name}");
            let key = |text: &str| field_key(text.as_bytes(), 0).map(|key| (key.field, key.length));
            assert_eq!(key(&format!("{name}\": \"a long value\"}}")), Some((field, name.len() + 1)), "{name}");
            assert_eq!(key(&format!("{name}x\": \"a long value\"}}")), None, "{name}");
            assert_eq!(key(&format!("{}\": \"a long value\"}}", &name[..name.len() - 1])), None, "{name}");
            assert_eq!(key(&format!("{}\\u0041\": \"a long value\"}}", &name[..1])), None, "{name}");
            assert_eq!(key(&format!("{name}\":1}}")), None, "{name}");
            let line = format!("{{\"{name}\": \"a\", \"{name}x\": \"b\"}}");
            let mut record = RawRecord::default();
            assert_eq!(scan_flat_object(&line, &mut record), Some(()), "{line}");
            assert_eq!(record.get(field), Value::Text("a"), "{line}");
            assert_eq!(Some(record), by_serde(&line), "{line}");
        }
        // Names of no field, in empty slots of the key table and in the fields' own slots.
        for name in ["zzzzz", "a", "event", "events", "event_ids", "even_id", "kin", "kindly", "stage_id"] {
            assert!(field_key(format!("{name}\": \"a long value\"}}").as_bytes(), 0).is_none(), "{name}");
        }
    }

    /// Lines the scanner leaves to serde_json: some are valid JSON (an escape, a nested value),
    /// some are not (serde then reports the record malformed).
    #[test]
    fn anything_but_a_flat_object_without_escapes_is_left_to_serde() {
        let valid = [
            r#"{"event_id": "a\"b"}"#,
            r#"{"event\u005fid": "a"}"#,
            r#"{"event_id": "a", "extra": {"nested": [1]}}"#,
            r#"{"event_id": "a", "extra": []}"#,
        ];
        for line in valid {
            assert_eq!(scanned(line), None, "{line}");
            assert!(by_serde(line).is_some(), "{line}");
        }
        let invalid = [
            "",
            "[]",
            "\"text\"",
            r#"{"event_id": "a",}"#,
            r#"{"event_id": "a" "stage": "b"}"#,
            r#"{"event_id" "a"}"#,
            r#"{"event_id": "a", "event_id": "b"}"#,
            r#"{"amount": 01}"#,
            r#"{"amount": 1.}"#,
            r#"{"amount": .5}"#,
            r#"{"amount": -}"#,
            r#"{"amount": 1e}"#,
            r#"{"amount": +1}"#,
            r#"{"amount": nul}"#,
            r#"{"amount": True}"#,
            "{\"stage\": \"tab\there\"}",
            "{\"stage\": \"a\"}\u{0b}",
            r#"{"stage": "a"} {}"#,
            r#"{"stage": "a"#,
            r#"{"stage": "a""#,
        ];
        for line in invalid {
            assert_eq!(scanned(line), None, "{line}");
            assert_eq!(by_serde(line), None, "{line}");
        }
    }

    /// Every line of a generated dump (dirty records aside) is read by the scanner: the common
    /// line never goes to serde_json.
    #[test]
    fn every_generated_line_is_a_flat_object() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let files = generate(&GenerateOptions {
            events: 5_000,
            seed: 7,
            out: dir.path().to_owned(),
            formats: vec![Format::Ndjson],
            compressions: vec![Compression::None],
            dirty_rate: 0.0,
            events_per_file: 5_000,
        })
        .expect("generated dump");
        let text = std::fs::read_to_string(&files[0]).expect("dump text");
        let mut lines = 0;
        for line in text.lines() {
            let record = scanned(line).unwrap_or_else(|| panic!("not scanned: {line}"));
            assert_eq!(Some(record), by_serde(line), "{line}");
            lines += 1;
        }
        assert_eq!(lines, 5_000);
    }

    /// An object of one member, for every key and value of the lists below: the scanner reads
    /// it exactly when serde_json does and it has no escape and no nested value.
    #[test]
    fn the_scanner_reads_every_flat_member_serde_reads() {
        for key in KEYS {
            for value in VALUES {
                let line = format!("{{{key}: {value}}}");
                let serde_record = by_serde(&line);
                let flat = !line.contains(['\\', '[']) && line.matches('{').count() == 1;
                let expected = serde_record.filter(|_| flat);
                assert_eq!(scanned(&line), expected, "{line}");
            }
        }
    }

    /// Where a string scanned one byte at a time ends: its closing quote, `None` at an escape,
    /// a control character or the end of the line.
    fn string_end_bytewise(bytes: &[u8], start: usize) -> Option<usize> {
        let stop = start + bytes[start..].iter().position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)?;
        (bytes[stop] == b'"').then_some(stop)
    }

    /// Every byte value at every place of strings of 0 to 19 bytes (through the 8-byte words and
    /// the tail), among fillers that look special to a careless bit trick (0xA2 and 0xDC are a
    /// quote and a backslash with the high bit set), with or without a special byte after it
    /// and a closing quote: the string ends where a byte-by-byte scan ends it.
    #[test]
    fn a_string_ends_where_a_byte_by_byte_scan_ends_it() {
        let mut cases = 0;
        for byte in 0..=255u8 {
            for filler in [b'a', b' ', 0x7f, 0x80, 0xa2, 0xdc, 0xff] {
                for length in 1..20 {
                    for place in 0..length {
                        for after in [None, Some(b'"'), Some(b'\\'), Some(0x00), Some(0x1f)] {
                            for closed in [true, false] {
                                let mut bytes = b"{\"k\": \"".to_vec();
                                let start = bytes.len();
                                bytes.extend(std::iter::repeat_n(filler, length));
                                bytes[start + place] = byte;
                                bytes.extend(after);
                                bytes.extend(closed.then_some(b'"'));
                                let expected = string_end_bytewise(&bytes, start);
                                assert_eq!(string_end(&bytes, start), expected, "{bytes:?}");
                                let mapped = StopMap::of(&bytes).expect("a short line");
                                let stop = mapped.next_stop(start).and_then(|stop| quote_at(&bytes, stop));
                                assert_eq!(stop, expected, "{bytes:?}");
                                cases += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 256 * 7 * 190 * 5 * 2);
    }

    /// A line longer than [`MAPPED_LINE_BYTES`], whose strings are read eight bytes at a time,
    /// is read as serde reads it, and as the same line shortened to fit a map is.
    #[test]
    fn a_line_too_long_for_a_stop_map_is_read_as_serde_reads_it() {
        let value = |length: usize| "v".repeat(length);
        let line = |length: usize| format!(r#"{{"event_id": "e1", "stage": "{}", "reason": "r"}}"#, value(length));
        let (long, short) = (line(MAPPED_LINE_BYTES), line(10));
        assert!(StopMap::of(long.as_bytes()).is_none() && StopMap::of(short.as_bytes()).is_some());
        for line in [&long, &short] {
            let record = scanned(line).unwrap_or_else(|| panic!("not scanned: {line}"));
            assert_eq!(Some(record.clone()), by_serde(line), "{line}");
            assert_eq!(record.get(Field::Reason), Value::Text("r"));
        }
        assert_eq!(scanned(&long).map(|record| record.get(Field::Stage)), Some(Value::Text(&value(MAPPED_LINE_BYTES))));
        let unterminated = format!(r#"{{"stage": "{}"#, value(MAPPED_LINE_BYTES));
        assert_eq!(scanned(&unterminated), None);
    }

    const KEYS: [&str; 13] = [
        r#""event_id""#,
        r#""event_idx""#,
        r#""event_i""#,
        r#""occurred_at""#,
        r#""a key longer than sixteen bytes""#,
        r#""amount""#,
        r#""stage""#,
        r#""score""#,
        r#""extra""#,
        r#""""#,
        r#""event\u005fid""#,
        r#""ké""#,
        "\"owner\u{1}\"",
    ];
    const VALUES: [&str; 55] = [
        "1e+",
        "-.5",
        "1.e5",
        "-0.0",
        "0.5E-0",
        "truex",
        "falsey",
        "nulls",
        "\"a\u{0}b\"",
        "\"a\u{7f}\"",
        "\"a\u{1f}\"",
        "\"\u{1}\"",
        "\"1234567\"",
        "\"12345678\"",
        "\"é\u{b}\"",
        r#""e1""#,
        r#""""#,
        r#""é ü""#,
        r#""a\"b""#,
        r#""a\\b""#,
        r#""\u00e9""#,
        r#""\ud800""#,
        "\"tab\there\"",
        r#""long text that spans more than eight bytes""#,
        r#""a quote follows"""#,
        "0",
        "-0",
        "12",
        "01",
        "1.",
        "1.50",
        "-1e-7",
        "1E+2",
        "1e",
        "-",
        "123456789012345678901234567890",
        ".5",
        "+1",
        "0x1",
        "1.5e3.2",
        "-01",
        "2e00",
        "null",
        "true",
        "false",
        "nul",
        "True",
        "nulll",
        "{}",
        "[1]",
        r#"{"a":[]}"#,
        "[",
        "}",
        r#""unterminated"#,
        "",
    ];
    const SPACES: [&str; 7] = ["", "", " ", "\t", "\r\n", "\u{0b}", "\u{a0}"];
    const INSERTED: [&str; 18] =
        [",", ":", "\"", "}", "{", "\\", " ", "é", "\u{0}", "\u{1f}", "\u{7f}", "0", "-", ".", "e", "x", "n", "\t"];

    /// A line from the pieces: spaces, keys, values and separators, each chosen by the index
    /// of its list.
    fn line_of(members: &[(usize, usize, [usize; 4])], spaces: [usize; 2], separator: usize) -> String {
        let mut line = format!("{}{{", SPACES[spaces[0]]);
        for (place, (key, value, around)) in members.iter().enumerate() {
            if place > 0 {
                line.push_str([",", ",", ",", ", ", ",,", ";"][separator % 6]);
            }
            line.push_str(SPACES[around[0]]);
            line.push_str(KEYS[*key]);
            line.push_str(SPACES[around[1]]);
            line.push(':');
            line.push_str(SPACES[around[2]]);
            line.push_str(VALUES[*value]);
            line.push_str(SPACES[around[3]]);
        }
        line.push('}');
        line.push_str(SPACES[spaces[1]]);
        line
    }

    fn space() -> impl Strategy<Value = usize> {
        0..SPACES.len()
    }

    /// A byte of a line for the stop map's test: often a stop or a byte that looks like one
    /// to a careless comparison (0xA2 and 0xDC: a quote and a backslash with the high bit set).
    fn line_byte() -> impl Strategy<Value = u8> {
        prop_oneof![select(&[b'"', b'\\', 0x00, 0x1f, 0x20, 0x7f, 0x80, 0xa2, 0xdc, 0xff][..]), any::<u8>()]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// A line's stop map has a bit for exactly its quotes, backslashes and control
        /// characters, through its 32-byte chunks and its tail: the first stop from any place
        /// is the one a byte-by-byte search finds.
        #[test]
        fn a_stop_map_holds_a_lines_quotes_backslashes_and_control_characters(
            line in prop::collection::vec(line_byte(), 0..=MAPPED_LINE_BYTES),
        ) {
            let stops = StopMap::of(&line).expect("a line that fits a map");
            for from in 0..=line.len() {
                let expected = line[from..]
                    .iter()
                    .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
                    .map(|place| from + place);
                prop_assert_eq!(stops.next_stop(from), expected, "from {} of {:?}", from, line);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever the line, a line the scanner reads is one serde_json reads, into the same
        /// record.
        #[test]
        fn the_scanner_reads_a_line_as_serde_does(
            members in prop::collection::vec((0..KEYS.len(), 0..VALUES.len(), [space(), space(), space(), space()]), 0..6),
            spaces in [space(), space()],
            separator in 0..24usize,
            edit in prop::option::of((any::<prop::sample::Index>(), select(&INSERTED[..]), any::<bool>())),
        ) {
            let mut line = line_of(&members, spaces, separator);
            if let Some((place, inserted, delete)) = edit {
                let boundaries: Vec<usize> =
                    (0..=line.len()).filter(|&at| line.is_char_boundary(at)).collect();
                let at = *place.get(&boundaries);
                if delete {
                    if let Some(removed) = line[at..].chars().next() {
                        line.replace_range(at..at + removed.len_utf8(), "");
                    }
                } else {
                    line.insert_str(at, inserted);
                }
            }
            let serde_record = by_serde(&line);
            match scanned(&line) {
                Some(record) => prop_assert_eq!(Some(record), serde_record, "{:?}", line),
                // What serde reads without an escape or a nested value, the scanner reads too.
                None => prop_assert!(
                    serde_record.is_none() || line.contains(['\\', '[']) || line.matches('{').count() > 1,
                    "{:?}", line
                ),
            }
        }
    }
}

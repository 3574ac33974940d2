//! Validation and normalisation of one raw record into an [`Event`], or the reject reason of
//! events.md, checked in the spec's order: `malformed_record`; `missing_field` for the common
//! fields; `unknown_event_type`; `missing_field` for the type's required fields; then
//! `invalid_timestamp`, `invalid_amount`, `invalid_score`, `invalid_category`,
//! `unknown_currency`. (`conflicting_duplicate` is decided by deduplication, after this.)

use std::fmt;
use std::ops::Deref;

use chrono::{LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;
use crmkpi_schema::{Config, EventType, Field};
use twox_hash::XxHash3_64;

use crate::record::{RawRecord, Value};

/// Why a record was rejected: the reasons of events.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Not valid JSON, wrong number of CSV fields, not an object.
    MalformedRecord,
    /// A common or required field is null, empty or absent.
    MissingField(Field),
    /// `event_type` is not one of the 23 types.
    UnknownEventType,
    /// `occurred_at` cannot be parsed (or is a local time in a DST gap).
    InvalidTimestamp,
    /// `amount` present but not a number, negative, NaN or infinite.
    InvalidAmount,
    /// Unknown survey, or score not an integer in the survey's range.
    InvalidScore,
    /// `category` not one of `acquisition`, `retention`, `crm`.
    InvalidCategory,
    /// A currency with no `[fx]` rate.
    UnknownCurrency,
    /// An `event_id` seen before with different content.
    ConflictingDuplicate,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::MalformedRecord => f.write_str("malformed_record"),
            RejectReason::MissingField(field) => write!(f, "missing_field:{field}"),
            RejectReason::UnknownEventType => f.write_str("unknown_event_type"),
            RejectReason::InvalidTimestamp => f.write_str("invalid_timestamp"),
            RejectReason::InvalidAmount => f.write_str("invalid_amount"),
            RejectReason::InvalidScore => f.write_str("invalid_score"),
            RejectReason::InvalidCategory => f.write_str("invalid_category"),
            RejectReason::UnknownCurrency => f.write_str("unknown_currency"),
            RejectReason::ConflictingDuplicate => f.write_str("conflicting_duplicate"),
        }
    }
}

/// An accepted, normalised event: text fields as text, `occurred_at` as UTC microseconds,
/// `amount` converted to the reporting currency. The text is owned (`String`) or, as an
/// [`EventView`], borrowed from where the event was decoded; both encode alike.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event<S = String> {
    /// Unique id of the event.
    pub event_id: S,
    /// Its type.
    pub event_type: EventType,
    /// The instant, UTC microseconds since the epoch.
    pub occurred_at: i64,
    /// Text fields from `customer_id` to `reason` in lake order (amount and score excluded).
    pub text: TextFields<S>,
    /// Amount in the reporting currency.
    pub amount: Option<f64>,
    /// Survey answer (only on `survey_answered`).
    pub score: Option<i64>,
    /// Hash of the parsed content, equal for identical events from CSV and NDJSON.
    pub content_hash: u64,
}

/// The optional text fields of an event.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TextFields<S = String> {
    /// Lead / contact / account id.
    pub customer_id: Option<S>,
    /// Opportunity id.
    pub deal_id: Option<S>,
    /// Order id.
    pub order_id: Option<S>,
    /// Ticket id.
    pub ticket_id: Option<S>,
    /// Campaign id.
    pub campaign_id: Option<S>,
    /// CRM user.
    pub owner_id: Option<S>,
    /// Pipeline stage.
    pub stage: Option<S>,
    /// Currency code as given.
    pub currency: Option<S>,
    /// Channel.
    pub channel: Option<S>,
    /// Order kind.
    pub kind: Option<S>,
    /// Spend category (only on `spend_recorded`).
    pub category: Option<S>,
    /// Survey name (only on `survey_answered`).
    pub survey: Option<S>,
    /// Lost reason.
    pub reason: Option<S>,
}

/// An event whose text is borrowed.
pub type EventView<'a> = Event<&'a str>;

impl<S: Deref<Target = str>> Event<S> {
    /// The event with its text borrowed.
    pub fn view(&self) -> EventView<'_> {
        let [
            customer_id,
            deal_id,
            order_id,
            ticket_id,
            campaign_id,
            owner_id,
            stage,
            currency,
            channel,
            kind,
            category,
            survey,
            reason,
        ] = self.text.in_lake_order();
        Event {
            event_id: &*self.event_id,
            event_type: self.event_type,
            occurred_at: self.occurred_at,
            text: TextFields {
                customer_id,
                deal_id,
                order_id,
                ticket_id,
                campaign_id,
                owner_id,
                stage,
                currency,
                channel,
                kind,
                category,
                survey,
                reason,
            },
            amount: self.amount,
            score: self.score,
            content_hash: self.content_hash,
        }
    }
}

impl<S: Deref<Target = str>> TextFields<S> {
    /// The fields' text in lake order, from `customer_id` to `reason`.
    #[inline]
    pub fn in_lake_order(&self) -> [Option<&str>; 13] {
        [
            self.customer_id.as_deref(),
            self.deal_id.as_deref(),
            self.order_id.as_deref(),
            self.ticket_id.as_deref(),
            self.campaign_id.as_deref(),
            self.owner_id.as_deref(),
            self.stage.as_deref(),
            self.currency.as_deref(),
            self.channel.as_deref(),
            self.kind.as_deref(),
            self.category.as_deref(),
            self.survey.as_deref(),
            self.reason.as_deref(),
        ]
    }
}

/// Validates and normalises one raw record under the run's configuration. The event's text is
/// the record's (slices of the dump's text, or of its batch's unescaped strings).
// Always inlined into the parse of a record: one copy fewer of each event (about 300 bytes)
// on its way into the record's verdict.
#[inline(always)]
pub fn validate<'a>(record: &RawRecord<'a>, config: &Config) -> Result<EventView<'a>, RejectReason> {
    let present = |record: &RawRecord, field: Field| record.text(field).is_some();
    for field in [Field::EventId, Field::EventType, Field::OccurredAt] {
        if !present(record, field) {
            return Err(RejectReason::MissingField(field));
        }
    }
    let event_type = match record.get(Field::EventType) {
        Value::Text(name) => EventType::from_name(name),
        Value::Number(name) => EventType::from_name(name),
        _ => None,
    }
    .ok_or(RejectReason::UnknownEventType)?;
    if let Some(missing) = event_type.required_fields().iter().find(|field| !present(record, **field)) {
        return Err(RejectReason::MissingField(*missing));
    }
    let occurred_at = parse_occurred_at(&record.get(Field::OccurredAt), config.source_timezone)
        .ok_or(RejectReason::InvalidTimestamp)?;
    let given_amount = parse_amount(&record.get(Field::Amount))?;
    let given_score = record.get(Field::Score);
    // A string field's text: JSON numbers and booleans as their JSON text as written (`1.50`
    // stays `1.50`). (Objects and arrays make a record malformed when it is parsed.)
    let event_id = record.text(Field::EventId).unwrap_or_default();
    let (survey, score) = if event_type == EventType::SurveyAnswered {
        let survey = record.text(Field::Survey).unwrap_or_default();
        let score = parse_score(survey, &given_score).ok_or(RejectReason::InvalidScore)?;
        (Some(survey), Some(score))
    } else {
        (None, None)
    };
    let category = if event_type == EventType::SpendRecorded {
        let category = record.text(Field::Category).unwrap_or_default();
        if !matches!(category, "acquisition" | "retention" | "crm") {
            return Err(RejectReason::InvalidCategory);
        }
        Some(category)
    } else {
        None
    };
    let currency = record.text(Field::Currency);
    let rate = match &currency {
        Some(code) => config.fx_rate(code).ok_or(RejectReason::UnknownCurrency)?,
        None => 1.0,
    };
    let fields = TextFields {
        customer_id: record.text(Field::CustomerId),
        deal_id: record.text(Field::DealId),
        order_id: record.text(Field::OrderId),
        ticket_id: record.text(Field::TicketId),
        campaign_id: record.text(Field::CampaignId),
        owner_id: record.text(Field::OwnerId),
        stage: record.text(Field::Stage),
        currency,
        channel: record.text(Field::Channel),
        kind: record.text(Field::Kind),
        category,
        survey,
        reason: record.text(Field::Reason),
    };
    let content_hash = content_hash(event_id, event_type, occurred_at, &fields, given_amount, score);
    Ok(Event {
        event_id,
        event_type,
        occurred_at,
        text: fields,
        amount: given_amount.map(|amount| amount * rate),
        score,
        content_hash,
    })
}

/// A stable 64-bit hash of an event's parsed content (amount as given, before conversion): XXH3
/// of the fields in lake order, each text as a presence byte, its length and its bytes, then
/// the time, the amount and the score. The bytes are laid out in one buffer and hashed at once
/// (the same digest as feeding them to a streaming hasher piece by piece, faster: no copy into
/// its block buffer per piece); the buffer is on the stack when the content fits, as nearly
/// every event's does.
fn content_hash<S: Deref<Target = str>>(
    event_id: &str,
    event_type: EventType,
    occurred_at: i64,
    fields: &TextFields<S>,
    amount: Option<f64>,
    score: Option<i64>,
) -> u64 {
    const ON_STACK: usize = 256;
    let mut content = Content { texts: [None; CONTENT_TEXTS], occurred_at, amount, score };
    content.texts[0] = Some(event_id);
    content.texts[1] = Some(event_type.name());
    content.texts[2..].copy_from_slice(&fields.in_lake_order());
    let mut on_stack = [0; ON_STACK];
    if let Some(length) = content.lay_out(&mut on_stack) {
        return XxHash3_64::oneshot(&on_stack[..length]);
    }
    // Longer than the stack buffer: laid out again in a buffer of the most bytes it can take.
    let mut on_heap = vec![0; content.most_bytes()];
    let length = content.lay_out(&mut on_heap).expect("the most bytes the content can take hold it");
    XxHash3_64::oneshot(&on_heap[..length])
}

/// The texts an event's content hash covers: the id, the type and the 13 fields in lake order.
const CONTENT_TEXTS: usize = 15;

/// What an event's content hash covers, in the order it is laid out.
struct Content<'a> {
    texts: [Option<&'a str>; CONTENT_TEXTS],
    occurred_at: i64,
    amount: Option<f64>,
    score: Option<i64>,
}

impl Content<'_> {
    /// The most bytes the content can take: every text present (a presence byte and a length
    /// before its bytes), then the time, and the amount and the score present.
    fn most_bytes(&self) -> usize {
        let text_bytes: usize = self.texts.iter().map(|text| text.map_or(0, str::len)).sum();
        self.texts.len() * (1 + 8) + text_bytes + 8 + 2 * (1 + 8)
    }

    /// Writes the content at the start of `out`, zeroed before, and returns its length; `None`
    /// when `out` is too short (never when it is [`Self::most_bytes`] long). An absent text or
    /// number is a zero byte: `out`'s own, stepped over.
    #[inline]
    fn lay_out(&self, out: &mut [u8]) -> Option<usize> {
        let mut at = 0;
        // Writes `bytes` next, or steps over a zero byte for `None`.
        let mut put = |bytes: Option<&[u8]>| -> Option<()> {
            match bytes {
                Some(bytes) => {
                    out.get_mut(at..at + bytes.len())?.copy_from_slice(bytes);
                    at += bytes.len();
                }
                None => at += 1,
            }
            Some(())
        };
        for text in &self.texts {
            if let Some(text) = text {
                put(Some(&present(text.len() as u64)))?;
            }
            put(text.map(str::as_bytes))?;
        }
        put(Some(&self.occurred_at.to_le_bytes()))?;
        let amount = self.amount.map(|amount| present(amount.to_bits()));
        let score = self.score.map(|score| present(score as u64));
        put(amount.as_ref().map(<[u8; 9]>::as_slice))?;
        put(score.as_ref().map(<[u8; 9]>::as_slice))?;
        (at <= out.len()).then_some(at)
    }
}

/// A presence byte followed by eight little-endian bytes (a text's length, or a value).
#[inline]
fn present(value: u64) -> [u8; 9] {
    let mut bytes = [1; 9];
    bytes[1..].copy_from_slice(&value.to_le_bytes());
    bytes
}

/// `amount`: a JSON number or a numeric string, finite and >= 0; `Ok(None)` when absent.
fn parse_amount(value: &Value<'_>) -> Result<Option<f64>, RejectReason> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::Number(text) => *text,
        Value::Text(text) => text,
        Value::Bool(_) => return Err(RejectReason::InvalidAmount),
    };
    let amount = text.parse::<f64>().map_err(|_| RejectReason::InvalidAmount)?;
    if amount.is_finite() && amount >= 0.0 { Ok(Some(amount + 0.0)) } else { Err(RejectReason::InvalidAmount) }
}

/// `score` of a `survey_answered`: an integer, an integral float or an integer string, inside
/// the survey's range (`nps` 0..10, `csat` 1..5, `ces` 1..7).
fn parse_score(survey: &str, value: &Value<'_>) -> Option<i64> {
    let range = match survey {
        "nps" => 0..=10,
        "csat" => 1..=5,
        "ces" => 1..=7,
        _ => return None,
    };
    let score = match value {
        Value::Number(text) => match text.parse::<i64>() {
            Ok(number) => number,
            Err(_) => {
                let number = text.parse::<f64>().ok()?;
                if number.fract() != 0.0 || number.abs() >= 1e15 {
                    return None;
                }
                number as i64
            }
        },
        Value::Text(text) => text.parse::<i64>().ok()?,
        _ => return None,
    };
    range.contains(&score).then_some(score)
}

/// `occurred_at`: RFC 3339 text (offset optional, then read in `source_timezone`), or in
/// NDJSON a JSON integer of Unix epoch milliseconds (no fraction or exponent). Returns UTC microseconds.
pub fn parse_occurred_at(value: &Value<'_>, source_timezone: Tz) -> Option<i64> {
    match value {
        Value::Number(text) => text.parse::<i64>().ok()?.checked_mul(1000),
        Value::Text(text) => parse_timestamp(text, source_timezone),
        _ => None,
    }
}

/// Parses `YYYY-MM-DD(T| )HH:MM:SS[.fraction][Z|+HH:MM|-HH:MM]` into UTC microseconds.
/// Fractions beyond microseconds are truncated; second 60 is invalid; a timestamp without an
/// offset is local time in `zone`, the earlier instant when ambiguous, invalid in a DST gap.
/// Every event's instant is read: the date and the time are read eight bytes at a time and
/// turned into an instant by arithmetic; only a local time goes through chrono-tz.
pub fn parse_timestamp(text: &str, zone: Tz) -> Option<i64> {
    let (prefix, rest) = text.as_bytes().split_first_chunk::<19>()?;
    let DateTime { year, month, day, hour, minute, second } = DateTime::read(prefix)?;
    let (micros, rest) = fraction_micros(rest)?;
    let seconds = days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3_600 + minute * 60 + second);
    let instant = seconds * 1_000_000 + i64::from(micros);
    match rest {
        [] => {
            let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
            let local = NaiveDateTime::new(date, NaiveTime::from_hms_micro_opt(hour, minute, second, micros)?);
            let utc = match zone.from_local_datetime(&local) {
                LocalResult::Single(instant) => instant.naive_utc(),
                LocalResult::Ambiguous(earlier, _) => earlier.naive_utc(),
                LocalResult::None => return None,
            };
            Some(utc.and_utc().timestamp_micros())
        }
        [b'Z' | b'z'] => Some(instant),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = digit_values([*h1, *h2, *m1, *m2])?;
            let hours = i64::from(digits[0] * 10 + digits[1]);
            let minutes = i64::from(digits[2] * 10 + digits[3]);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = (hours * 60 + minutes) * 60_000_000;
            Some(if *sign == b'+' { instant - offset } else { instant + offset })
        }
        _ => None,
    }
}

/// The microseconds of the `.fraction` that `text` starts with (digits beyond the sixth
/// truncated; 0 without a fraction), and the text after it; `None` for a dot without digits.
fn fraction_micros(text: &[u8]) -> Option<(u32, &[u8])> {
    let Some(fraction) = text.strip_prefix(b".") else {
        return Some((0, text));
    };
    let digits = fraction.iter().take_while(|byte| byte.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut micros = 0;
    for position in 0..6 {
        let digit = fraction.get(position).filter(|_| position < digits).map_or(0, |d| u32::from(d - b'0'));
        micros = micros * 10 + digit;
    }
    Some((micros, &fraction[digits..]))
}

/// A valid date of the proleptic Gregorian calendar and a time of day without leap seconds.
struct DateTime {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl DateTime {
    /// Reads `YYYY-MM-DD(T| )HH:MM:SS`: the date's first eight bytes and the time's eight as
    /// two words whose digits are checked and paired at once; `None` unless every digit and
    /// separator is in its place and the date and time exist.
    fn read(text: &[u8; 19]) -> Option<DateTime> {
        let (date, rest) = text.split_first_chunk::<8>()?;
        let (&[day_tens, day_ones, separator], time) = rest.split_first_chunk::<3>()?;
        let time: &[u8; 8] = time.try_into().ok()?;
        // `YYYY-MM-`: digits in bytes 0 to 3, 5 and 6; dashes in bytes 4 and 7.
        let date = digit_pairs(
            u64::from_le_bytes(*date),
            0x00ff_ff00_ffff_ffff,
            0xff00_00ff_0000_0000,
            0x2d00_002d_0000_0000,
        )?;
        // `HH:MM:SS`: digits in bytes 0, 1, 3, 4, 6 and 7; colons in bytes 2 and 5.
        let time = digit_pairs(
            u64::from_le_bytes(*time),
            0xffff_00ff_ff00_ffff,
            0x0000_ff00_00ff_0000,
            0x0000_3a00_003a_0000,
        )?;
        let day = digit_values([day_tens, day_ones])?;
        if !matches!(separator, b'T' | b't' | b' ') {
            return None;
        }
        let pair = |pairs: u64, byte: u32| (pairs >> (8 * byte)) as u32 & 0xff;
        let date_time = DateTime {
            year: pair(date, 0) * 100 + pair(date, 2),
            month: pair(date, 5),
            day: u32::from(day[0] * 10 + day[1]),
            hour: pair(time, 0),
            minute: pair(time, 3),
            second: pair(time, 6),
        };
        let exists = (1..=12).contains(&date_time.month)
            && (1..=days_in_month(date_time.year, date_time.month)).contains(&date_time.day)
            && date_time.hour < 24
            && date_time.minute < 60
            && date_time.second < 60;
        exists.then_some(date_time)
    }
}

/// The values of ASCII digits; `None` when a byte is not one.
fn digit_values<const N: usize>(bytes: [u8; N]) -> Option<[u8; N]> {
    let values = bytes.map(|byte| byte.wrapping_sub(b'0'));
    values.iter().all(|value| *value <= 9).then_some(values)
}

/// The two-digit numbers of `word` (eight text bytes, little-endian): byte `i` of the result
/// is the number written in bytes `i` and `i + 1`, where both are digits. `None` unless the
/// bytes of `digits` (a mask) are ASCII digits and those of `separators` (a mask) are `expected`.
fn digit_pairs(word: u64, digits: u64, separators: u64, expected: u64) -> Option<u64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    if word & separators != expected {
        return None;
    }
    // A digit becomes its value (0 to 9); a byte that is not one has its high bit set here,
    // or after adding 0x76 (a carry out of such a byte only flags the byte above it too).
    let values = word ^ (ONES * u64::from(b'0'));
    if (values | values.wrapping_add(ONES * 0x76)) & (ONES * 0x80) & digits != 0 {
        return None;
    }
    // Each byte times ten plus the byte above: at most 99, no carry between bytes.
    Some((values & digits) * 10 + ((values & digits) >> 8))
}

/// The days in `month` (1 to 12) of `year` in the proleptic Gregorian calendar.
fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`: years counted from March, in eras of 400 years).
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Berlin;

    /// The content hash as lakes store it, fed piece by piece to a streaming XXH3 (how it was
    /// computed before the pieces were laid out in one buffer).
    fn streamed_content_hash(
        event_id: &str,
        event_type: EventType,
        occurred_at: i64,
        fields: &TextFields,
        amount: Option<f64>,
        score: Option<i64>,
    ) -> u64 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut put_text = |text: Option<&str>| match text {
            Some(text) => {
                hasher.update(&[1]);
                hasher.update(&(text.len() as u64).to_le_bytes());
                hasher.update(text.as_bytes());
            }
            None => hasher.update(&[0]),
        };
        put_text(Some(event_id));
        put_text(Some(event_type.name()));
        for text in fields.in_lake_order() {
            put_text(text);
        }
        hasher.update(&occurred_at.to_le_bytes());
        match amount {
            Some(amount) => {
                hasher.update(&[1]);
                hasher.update(&amount.to_bits().to_le_bytes());
            }
            None => hasher.update(&[0]),
        }
        match score {
            Some(score) => {
                hasher.update(&[1]);
                hasher.update(&score.to_le_bytes());
            }
            None => hasher.update(&[0]),
        }
        hasher.digest()
    }

    #[test]
    fn content_hashes_stay_those_lakes_hold() {
        let long = "x".repeat(300);
        let fields = TextFields {
            customer_id: Some("c-1".to_owned()),
            deal_id: Some(String::new()),
            stage: Some(long.clone()),
            reason: Some("é ünicode".to_owned()),
            ..TextFields::default()
        };
        let cases = [
            ("e-1", EventType::OrderPlaced, 1_700_000_000_000_000, TextFields::default(), Some(12.5), None),
            ("e-2", EventType::SurveyAnswered, -5, fields.clone(), None, Some(9)),
            (long.as_str(), EventType::DealStageChanged, 0, fields, Some(0.0), Some(-1)),
        ];
        for (event_id, event_type, occurred_at, fields, amount, score) in cases {
            assert_eq!(
                content_hash(event_id, event_type, occurred_at, &fields, amount, score),
                streamed_content_hash(event_id, event_type, occurred_at, &fields, amount, score),
                "{event_id}"
            );
        }
        // Every length around the stack buffer's end (256 bytes): the content of an
        // `order_placed` without other texts fills it with an id of 187 bytes when it has an
        // amount and a score (of 203 bytes without), and is laid out again on the heap past it.
        for (length, amount, score) in [(187, Some(1.5), Some(7)), (203, None, None)] {
            let laid_out = |event_id: &str| {
                let mut texts = [None; CONTENT_TEXTS];
                texts[0] = Some(event_id);
                texts[1] = Some(EventType::OrderPlaced.name());
                Content { texts, occurred_at: 9, amount, score }.lay_out(&mut [0; 256])
            };
            assert_eq!(laid_out(&"i".repeat(length)), Some(256), "an id of {length} bytes");
            assert_eq!(laid_out(&"i".repeat(length + 1)), None, "an id of {} bytes", length + 1);
        }
        for length in 0..=220 {
            let event_id = "i".repeat(length);
            for (amount, score) in [(None, None), (Some(1.5), Some(7))] {
                assert_eq!(
                    content_hash(&event_id, EventType::OrderPlaced, 9, &TextFields::<String>::default(), amount, score),
                    streamed_content_hash(&event_id, EventType::OrderPlaced, 9, &TextFields::default(), amount, score),
                    "an id of {length} bytes"
                );
            }
        }
        // One value pinned: a change of the layout (or of the hash) would make every id of an
        // existing lake look like a conflicting duplicate.
        let pinned = content_hash("e-1", EventType::OrderPlaced, 0, &TextFields::<String>::default(), None, None);
        assert_eq!(pinned, 0xf353_3fc7_f108_f0cb, "{pinned:#x}");
    }

    #[test]
    fn the_lake_order_is_customer_id_to_reason() {
        let names = ["c", "d", "o", "t", "camp", "own", "st", "cur", "ch", "k", "cat", "sur", "r"];
        let fields = TextFields {
            customer_id: Some(names[0]),
            deal_id: Some(names[1]),
            order_id: Some(names[2]),
            ticket_id: Some(names[3]),
            campaign_id: Some(names[4]),
            owner_id: Some(names[5]),
            stage: Some(names[6]),
            currency: Some(names[7]),
            channel: Some(names[8]),
            kind: Some(names[9]),
            category: Some(names[10]),
            survey: Some(names[11]),
            reason: Some(names[12]),
        };
        assert_eq!(fields.in_lake_order(), names.map(Some));
        let no_reason = TextFields { reason: None, ..fields };
        assert_eq!(no_reason.in_lake_order()[12], None);
        assert_eq!(no_reason.in_lake_order()[..12], names.map(Some)[..12]);
    }

    fn micros(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text).expect("reference instant").timestamp_micros()
    }

    /// [`parse_timestamp`] as it read every instant with chrono's types before (its fraction
    /// read as it still is, by [`fraction_micros`]): the reference it must agree with.
    fn parse_timestamp_by_chrono(text: &str, zone: Tz) -> Option<i64> {
        let bytes = text.as_bytes();
        if bytes.len() < 19 {
            return None;
        }
        let number = |range: std::ops::Range<usize>| -> Option<u32> {
            let digits = bytes.get(range)?;
            digits
                .iter()
                .all(u8::is_ascii_digit)
                .then(|| digits.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
        };
        if bytes[4] != b'-'
            || bytes[7] != b'-'
            || !matches!(bytes[10], b'T' | b't' | b' ')
            || bytes[13] != b':'
            || bytes[16] != b':'
        {
            return None;
        }
        let date = NaiveDate::from_ymd_opt(i32::try_from(number(0..4)?).ok()?, number(5..7)?, number(8..10)?)?;
        let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        if second >= 60 {
            return None;
        }
        let (micros, rest) = fraction_micros(&bytes[19..])?;
        let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)?;
        let local = NaiveDateTime::new(date, time);
        let utc = match rest {
            [] => match zone.from_local_datetime(&local) {
                LocalResult::Single(instant) => instant.naive_utc(),
                LocalResult::Ambiguous(earlier, _) => earlier.naive_utc(),
                LocalResult::None => return None,
            },
            [b'Z' | b'z'] => local,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let digits = [*h1, *h2, *m1, *m2];
                if !digits.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                let hours = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
                let minutes = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
                if hours > 23 || minutes > 59 {
                    return None;
                }
                let offset = chrono::Duration::minutes(hours * 60 + minutes);
                if *sign == b'+' { local - offset } else { local + offset }
            }
            _ => return None,
        };
        Some(utc.and_utc().timestamp_micros())
    }

    /// Every day of years around the calendar's turns (leap years by 4, 100 and 400, year 0 and
    /// 9999), days 0 and 32 and months 0 and 13 besides, at every hour, minute and second from
    /// 0 to 61 of one day: read as chrono reads them.
    #[test]
    fn every_date_and_time_is_read_as_chrono_reads_it() {
        let mut valid = 0;
        for year in [0, 1, 4, 100, 400, 1582, 1899, 1900, 1969, 1970, 1999, 2000, 2023, 2024, 2100, 2400, 9999] {
            for month in 0..=13 {
                for day in 0..=32 {
                    let text = format!("{year:04}-{month:02}-{day:02}T23:59:59.999999Z");
                    let read = parse_timestamp(&text, Tz::UTC);
                    assert_eq!(read, parse_timestamp_by_chrono(&text, Tz::UTC), "{text}");
                    valid += usize::from(read.is_some());
                }
            }
        }
        // 17 years of 365 days, 6 of them leap years (0, 4, 400, 2000, 2024 and 2400).
        assert_eq!(valid, 17 * 365 + 6);
        for hour in 0..=61 {
            for minute in 0..=61 {
                for second in 0..=61 {
                    let text = format!("2024-02-29 {hour:02}:{minute:02}:{second:02}+01:30");
                    assert_eq!(parse_timestamp(&text, Tz::UTC), parse_timestamp_by_chrono(&text, Tz::UTC), "{text}");
                }
            }
        }
    }

    /// Every byte value in every place of a timestamp: read as chrono reads it.
    #[test]
    fn any_byte_anywhere_is_read_as_chrono_reads_it() {
        let text = *b"2024-12-31T23:59:58.5Z";
        for place in 0..text.len() {
            for byte in 0..=255u8 {
                let mut bytes = text;
                bytes[place] = byte;
                let text = String::from_utf8_lossy(&bytes);
                assert_eq!(parse_timestamp(&text, Tz::UTC), parse_timestamp_by_chrono(&text, Tz::UTC), "{text}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 20_000, failure_persistence: None, ..Default::default() })]

        /// Timestamps of every part in and out of range, every separator and suffix, and one
        /// byte changed anywhere: read as chrono reads them, in UTC and in a zone with DST.
        #[test]
        fn timestamps_are_read_as_chrono_reads_them(
            parts in (0u32..10_000, 0u32..14, 0u32..33, 0u32..26, 0u32..62, 0u32..62),
            separator in proptest::sample::select(vec!["T", "t", " ", "_"]),
            fraction in proptest::sample::select(vec!["", ".", ".5", ".123456", ".1234567", ".12x"]),
            suffix in proptest::sample::select(vec!["", "Z", "z", "+01:00", "-02:30", "+23:59", "+24:00", "-00:60", "+0100", "Zjunk", "+1a:00"]),
            edit in proptest::option::of((0usize..40, proptest::sample::select(vec![b'0', b'9', b'-', b':', b'/', b'a', 0x00, 0xff]))),
        ) {
            let (year, month, day, hour, minute, second) = parts;
            let text = format!("{year:04}-{month:02}-{day:02}{separator}{hour:02}:{minute:02}:{second:02}{fraction}{suffix}");
            let mut bytes = text.into_bytes();
            if let Some((place, byte)) = edit
                && let Some(at) = bytes.get_mut(place)
            {
                *at = byte;
            }
            let text = String::from_utf8_lossy(&bytes);
            for zone in [Tz::UTC, Berlin] {
                proptest::prop_assert_eq!(parse_timestamp(&text, zone), parse_timestamp_by_chrono(&text, zone), "{}", text);
            }
        }
    }

    #[test]
    fn rfc3339_forms() {
        let utc = Tz::UTC;
        assert_eq!(parse_timestamp("2024-03-04T17:32:58+01:00", utc), Some(micros("2024-03-04T16:32:58Z")));
        assert_eq!(parse_timestamp("2024-03-04 16:32:58Z", utc), Some(micros("2024-03-04T16:32:58Z")));
        assert_eq!(parse_timestamp("2024-03-04T16:32:58.1234567Z", utc), Some(micros("2024-03-04T16:32:58.123456Z")));
        assert_eq!(parse_timestamp("2024-03-04T16:32:58.5-02:30", utc), Some(micros("2024-03-04T19:02:58.5Z")));
        for bad in [
            "2024-03-04T16:32Z",
            "2024-03-04T16:32:60Z",
            "2024-03-04T16:32:58+0100",
            "2024-02-30T10:00:00Z",
            "2024-03-04T24:00:00Z",
            "2024-03-04T16:32:58.Z",
            "2024-03-04T16:32:58Zjunk",
            "04.03.2024 16:32:58",
        ] {
            assert_eq!(parse_timestamp(bad, utc), None, "{bad}");
        }
    }

    #[test]
    fn naive_times_in_a_dst_zone() {
        assert_eq!(parse_timestamp("2024-01-15T10:00:00", Berlin), Some(micros("2024-01-15T09:00:00Z")));
        // Fall back: 02:30 happens twice on 2024-10-27; the earlier is CEST (+02:00).
        assert_eq!(parse_timestamp("2024-10-27T02:30:00", Berlin), Some(micros("2024-10-27T00:30:00Z")));
        // Spring forward: 02:30 does not exist on 2024-03-31.
        assert_eq!(parse_timestamp("2024-03-31T02:30:00", Berlin), None);
        assert_eq!(parse_timestamp("2024-03-31T03:00:00", Berlin), Some(micros("2024-03-31T01:00:00Z")));
    }

    #[test]
    fn epoch_millis_only_as_json_integer() {
        let utc = Tz::UTC;
        fn number(text: &str) -> Value<'_> {
            Value::Number(text)
        }
        assert_eq!(parse_occurred_at(&number("1709569978000"), utc), Some(micros("2024-03-04T16:32:58Z")));
        assert_eq!(parse_occurred_at(&Value::Text("1709569978000"), utc), None);
        assert_eq!(parse_occurred_at(&number("1.5"), utc), None);
        assert_eq!(parse_occurred_at(&number("1709569978000.0"), utc), None);
        assert_eq!(parse_occurred_at(&number("1.709569978e12"), utc), None);
        let beyond = i64::MAX.to_string();
        assert_eq!(parse_occurred_at(&number(&beyond), utc), None);
    }

    #[test]
    fn amounts_and_scores() {
        assert_eq!(parse_amount(&Value::Text("12.50")), Ok(Some(12.5)));
        assert_eq!(parse_amount(&Value::Number("3")), Ok(Some(3.0)));
        assert_eq!(parse_amount(&Value::Number("1.50")), Ok(Some(1.5)));
        assert_eq!(parse_amount(&Value::Number("1e400")), Err(RejectReason::InvalidAmount));
        for bad in ["-1", "NaN", "inf", "12,50", "abc"] {
            assert_eq!(parse_amount(&Value::Text(bad)), Err(RejectReason::InvalidAmount), "{bad}");
        }
        assert_eq!(parse_amount(&Value::Bool(true)), Err(RejectReason::InvalidAmount));
        assert_eq!(parse_score("nps", &Value::Number("7.0")), Some(7));
        assert_eq!(parse_score("nps", &Value::Number("7e0")), Some(7));
        assert_eq!(parse_score("nps", &Value::Number("99999999999999999999")), None);
        assert_eq!(parse_score("nps", &Value::Text("10")), Some(10));
        assert_eq!(parse_score("nps", &Value::Number("11")), None);
        assert_eq!(parse_score("csat", &Value::Number("0")), None);
        assert_eq!(parse_score("ces", &Value::Number("7")), Some(7));
        assert_eq!(parse_score("nps", &Value::Number("7.5")), None);
        assert_eq!(parse_score("NPS", &Value::Number("7")), None);
    }
}

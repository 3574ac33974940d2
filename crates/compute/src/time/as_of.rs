//! Parsing of `--as-of`: an RFC 3339 instant, a timestamp without offset (read in the
//! reporting time zone), or a date `YYYY-MM-DD`, meaning the end of that local day.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

use crate::error::ComputeError;

/// The `as_of` instant in UTC microseconds. A date means the last microsecond of that local
/// day; an ambiguous local time is the earlier instant; a local time in a DST gap is an error.
pub fn parse_as_of(text: &str, zone: Tz) -> Result<i64, ComputeError> {
    let bad = |detail: &str| ComputeError::BadAsOf { text: text.to_owned(), detail: detail.to_owned() };
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.timestamp_micros());
    }
    let local = |naive: NaiveDateTime| match zone.from_local_datetime(&naive) {
        LocalResult::Single(instant) | LocalResult::Ambiguous(instant, _) => Ok(instant.timestamp_micros()),
        LocalResult::None => Err(bad(&format!(" (it does not exist in {zone}: a DST gap)"))),
    };
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return local(naive);
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let next_day = date.succ_opt().ok_or_else(|| bad(""))?;
        let next_midnight = first_instant_of(next_day, zone).ok_or_else(|| bad(""))?;
        return Ok(next_midnight - 1);
    }
    Err(bad(""))
}

/// The first instant (UTC microseconds) of a local date: its midnight, or the end of a DST
/// gap that swallows midnight.
fn first_instant_of(date: NaiveDate, zone: Tz) -> Option<i64> {
    (0..=24 * 60).find_map(|minute| {
        let local = date.and_hms_opt(0, 0, 0)? + chrono::Duration::minutes(minute);
        match zone.from_local_datetime(&local) {
            LocalResult::Single(instant) | LocalResult::Ambiguous(instant, _) => Some(instant.timestamp_micros()),
            LocalResult::None => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Berlin;

    fn micros(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).expect("instant").timestamp_micros()
    }

    #[test]
    fn forms() {
        assert_eq!(parse_as_of("2024-03-04T17:00:00+01:00", Berlin).expect("rfc3339"), micros("2024-03-04T16:00:00Z"));
        assert_eq!(parse_as_of("2024-03-04T17:00:00", Berlin).expect("local"), micros("2024-03-04T16:00:00Z"));
        assert_eq!(parse_as_of("2024-03-04", Berlin).expect("date"), micros("2024-03-04T22:59:59.999999Z"));
        assert_eq!(parse_as_of("2024-03-30", Berlin).expect("date before DST"), micros("2024-03-30T22:59:59.999999Z"));
        assert!(parse_as_of("2024-03-31T02:30:00", Berlin).is_err());
        assert!(parse_as_of("yesterday", Berlin).is_err());
    }
}

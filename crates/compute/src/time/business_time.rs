//! Business time (kpis.md, "Service"): the length of `[a, b)` inside business time, which on
//! every local date that is a `business_hours.days` weekday and not a holiday is the local
//! interval `[start, end)` in `business_hours.timezone`, DST-aware.
//!
//! Closed form, set-based: a calendar table holds, for every local date of the run, that day's
//! business interval as UTC instants and the business microseconds of all earlier days. The
//! business clock `B(t)` of an instant is a join on its local date:
//! `B(t) = before(date) + clamp(t - start, 0, end - start)`, and business time between `a` and
//! `b` is `B(b) - B(a)`. No loop over minutes or days per ticket.

use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone as _};
use chrono_tz::Tz;
use crmkpi_schema::BusinessHours;
use polars::prelude::*;

use crate::time::calendar::{epoch_days, local_date};

/// The first valid instant (UTC microseconds) at or after a local time: the earlier instant
/// when ambiguous, the end of the gap when the local time does not exist.
fn instant_of(date: NaiveDate, time: NaiveTime, zone: Tz) -> i64 {
    let local = NaiveDateTime::new(date, time);
    (0..=180)
        .find_map(|minute| match zone.from_local_datetime(&(local + Duration::minutes(minute))) {
            LocalResult::Single(instant) | LocalResult::Ambiguous(instant, _) => Some(instant.timestamp_micros()),
            LocalResult::None => None,
        })
        .unwrap_or_else(|| local.and_utc().timestamp_micros())
}

/// One row per local date from the day before `first` to the day after `last` (in the
/// schedule's zone): `business_date` (date), `day_start`, `day_end` (UTC microseconds, null on
/// non-business days) and `business_before` (business microseconds of all earlier dates).
pub fn business_calendar(hours: &BusinessHours, zone: Tz, first: i64, last: i64) -> PolarsResult<LazyFrame> {
    let first_date = local_date(first, zone) - Duration::days(1);
    let last_date = local_date(last, zone) + Duration::days(1);
    let weekdays: Vec<chrono::Weekday> = hours.days.iter().map(|day| day.weekday()).collect();
    let (mut dates, mut starts, mut ends, mut before) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut total = 0i64;
    let mut date = first_date;
    while date <= last_date {
        dates.push(epoch_days(date));
        before.push(total);
        if weekdays.contains(&date.weekday()) && !hours.holidays.contains(&date) {
            let start = instant_of(date, hours.start_time(), zone);
            let end = instant_of(date, hours.end_time(), zone);
            starts.push(Some(start));
            ends.push(Some(end));
            total += (end - start).max(0);
        } else {
            starts.push(None);
            ends.push(None);
        }
        date += Duration::days(1);
    }
    let height = dates.len();
    let frame = DataFrame::new(
        height,
        vec![
            Int32Chunked::from_vec("business_date".into(), dates).into_date().into_column(),
            Column::new("day_start".into(), starts),
            Column::new("day_end".into(), ends),
            Column::new("business_before".into(), before),
        ],
    )?;
    Ok(frame.lazy())
}

/// Adds `output`: the business clock `B(t)` (microseconds) of the timestamp column `instant`,
/// null where `instant` is null.
pub fn with_business_clock(frame: LazyFrame, calendar: LazyFrame, zone: Tz, instant: &str, output: &str) -> LazyFrame {
    let zone = TimeZone::opt_try_new(Some(zone.name())).ok().flatten().unwrap_or(TimeZone::UTC);
    let key = format!("{output}_date");
    let micros = col(instant).dt().timestamp(TimeUnit::Microseconds);
    let since_start = micros - col("day_start");
    let day_length = col("day_end") - col("day_start");
    let into_day = when(since_start.clone().lt(lit(0i64)))
        .then(lit(0i64))
        .when(since_start.clone().gt(day_length.clone()))
        .then(day_length)
        .otherwise(since_start);
    frame
        .with_column(col(instant).dt().convert_time_zone(zone).dt().date().alias(&key))
        .join(calendar, [col(&key)], [col("business_date")], JoinArgs::new(JoinType::Left))
        .with_column(
            when(col(instant).is_null())
                .then(lit(NULL).cast(DataType::Int64))
                .otherwise(col("business_before") + into_day.fill_null(lit(0i64)))
                .alias(output),
        )
        .drop(cols([key.as_str(), "day_start", "day_end", "business_before"]))
}

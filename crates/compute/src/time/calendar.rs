//! Calendar periods in the reporting time zone: local days, months as a running index, and the
//! month grid from the month of the earliest event through the month of `as_of`.
//!
//! A month is identified by `month_index = year * 12 + (month - 1)` of its local days; tables
//! carry its first day as `period` (a `DATE`).

use chrono::TimeZone as _;
use chrono::{Datelike, NaiveDate};
use chrono_tz::Tz;
use polars::prelude::*;

/// Days from 0001-01-01 (chrono's day numbering) to the Unix epoch.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// The months a run reports on and the local day of `as_of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    /// Month index of the earliest event.
    pub first_month: i32,
    /// Month index of `as_of`.
    pub last_month: i32,
    /// `day(as_of)`: the local date of `as_of`, in days since 1970-01-01.
    pub as_of_day: i32,
}

/// The month index of a local date.
pub fn month_index_of(date: NaiveDate) -> i32 {
    date.year() * 12 + date.month0() as i32
}

/// The first day of a month index.
pub fn month_start(month_index: i32) -> NaiveDate {
    let year = month_index.div_euclid(12);
    let month = month_index.rem_euclid(12) as u32 + 1;
    NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(NaiveDate::MIN)
}

/// Days since 1970-01-01 of a date (the physical value of a polars `Date`).
pub fn epoch_days(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

/// The local date, in `zone`, of an instant given in UTC microseconds.
pub fn local_date(micros: i64, zone: Tz) -> NaiveDate {
    let instant = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    zone.from_utc_datetime(&instant.naive_utc()).date_naive()
}

impl Calendar {
    /// The calendar of a run whose earliest event and `as_of` are the given instants.
    pub fn new(earliest_event: i64, as_of: i64, zone: Tz) -> Calendar {
        let as_of_date = local_date(as_of, zone);
        Calendar {
            first_month: month_index_of(local_date(earliest_event, zone)),
            last_month: month_index_of(as_of_date),
            as_of_day: epoch_days(as_of_date),
        }
    }

    /// One row per reported month: `month_index` (i32), `period` (date of its first day `F`)
    /// and `last_day` (its last day `L`: `day(as_of)` for the month of `as_of`).
    pub fn month_grid(&self) -> LazyFrame {
        let months: Vec<i32> = (self.first_month..=self.last_month).collect();
        let periods: Vec<i32> = months.iter().map(|month| epoch_days(month_start(*month))).collect();
        let last_days: Vec<i32> =
            months.iter().map(|month| (epoch_days(month_start(month + 1)) - 1).min(self.as_of_day)).collect();
        let period = Int32Chunked::from_vec("period".into(), periods).into_date().into_column();
        let last_day = Int32Chunked::from_vec("last_day".into(), last_days).into_date().into_column();
        let frame = DataFrame::new(months.len(), vec![Column::new("month_index".into(), months), period, last_day]);
        frame.unwrap_or_default().lazy()
    }
}

/// The local date (polars `Date`) of a UTC timestamp expression in `zone`.
pub fn local_day(instant: Expr, zone: Tz) -> Expr {
    instant.dt().convert_time_zone(zone_of(zone)).dt().date()
}

/// The month index of a UTC timestamp expression's local date in `zone`.
pub fn local_month(instant: Expr, zone: Tz) -> Expr {
    let local = instant.dt().convert_time_zone(zone_of(zone));
    local.clone().dt().year().cast(DataType::Int32) * lit(12) + local.dt().month().cast(DataType::Int32) - lit(1)
}

/// The month index of a polars `Date` expression.
pub fn month_of_day(day: Expr) -> Expr {
    day.clone().dt().year().cast(DataType::Int32) * lit(12) + day.dt().month().cast(DataType::Int32) - lit(1)
}

fn zone_of(zone: Tz) -> TimeZone {
    TimeZone::opt_try_new(Some(zone.name())).ok().flatten().unwrap_or(TimeZone::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Berlin;

    #[test]
    fn months_and_days() {
        let date = NaiveDate::from_ymd_opt(2024, 3, 15).expect("date");
        assert_eq!(month_start(month_index_of(date)), NaiveDate::from_ymd_opt(2024, 3, 1).expect("date"));
        assert_eq!(epoch_days(NaiveDate::from_ymd_opt(1970, 1, 2).expect("date")), 1);
        // 2024-03-31T22:30Z is already April 1st in Berlin (CEST, +02:00).
        let micros = chrono::DateTime::parse_from_rfc3339("2024-03-31T22:30:00Z").expect("instant").timestamp_micros();
        assert_eq!(local_date(micros, Berlin), NaiveDate::from_ymd_opt(2024, 4, 1).expect("date"));
        let calendar = Calendar::new(micros, micros, Berlin);
        assert_eq!(calendar.first_month, 2024 * 12 + 3);
    }
}

//! Time in the reporting zone: the month calendar, business time and `--as-of`.

pub mod as_of;
pub mod business_time;
pub mod calendar;

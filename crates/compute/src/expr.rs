//! Expressions every layer uses: exact, order-independent sums and means, typed nulls, and
//! elapsed time between two instants.
//!
//! Float addition is not associative, and polars adds a group's values in an order (and
//! chunking) that varies from run to run; adding fixed-point integers instead makes every sum
//! and mean bit-identical across runs and across entity buckets, so two computes over the same
//! lake write identical files (outputs.md). Each value is scaled to an integer count of its
//! smallest unit (money: micro-units of the reporting currency; durations: the microseconds
//! they were computed from), summed as `i64` (exact, in any order and in any split), and scaled
//! back.

use polars::prelude::*;

/// Money: micro-units of the reporting currency.
pub const MONEY: f64 = 1e6;
/// Hours, counted in microseconds.
pub const HOURS: f64 = 3_600_000_000.0;
/// Minutes, counted in microseconds.
pub const MINUTES: f64 = 60_000_000.0;
/// Days, counted in microseconds.
pub const DAYS: f64 = 86_400_000_000.0;

/// The exact sum of `values` as an `i64` count of units (`scale` units per value unit): the
/// additive part a bucket contributes; 0 over nothing.
pub fn exact_units(values: Expr, scale: f64) -> Expr {
    (values * lit(scale)).round(0, RoundMode::HalfAwayFromZero).cast(DataType::Int64).sum()
}

/// A count of units (see [`exact_units`]) back in value units.
pub fn from_units(units: Expr, scale: f64) -> Expr {
    divided_by(units.cast(DataType::Float64), scale)
}

/// `value / divisor` for a constant divisor, as polars divides a column by a constant: times
/// the reciprocal. Written out so that a one-row frame (a bucket with one entity, where polars
/// would divide two scalars) gives the same bits as a long one.
pub fn divided_by(value: Expr, divisor: f64) -> Expr {
    value * lit(1.0 / divisor)
}

/// The exact sum of `values` (in a unit with `scale` integer steps per unit): 0 over nothing.
pub fn exact_sum(values: Expr, scale: f64) -> Expr {
    from_units(exact_units(values, scale), scale)
}

/// The exact mean of the non-null `values`: null over nothing.
pub fn exact_mean(values: Expr, scale: f64) -> Expr {
    let count = values.clone().count();
    when(count.clone().gt(lit(0))).then(exact_sum(values, scale) / count.cast(DataType::Float64)).otherwise(null_f64())
}

/// A mean that is null over nothing: `sum / count` when `count > 0`.
pub fn mean_or_null(sum: Expr, count: Expr) -> Expr {
    when(count.clone().gt(lit(0)))
        .then(sum.cast(DataType::Float64) / count.cast(DataType::Float64))
        .otherwise(null_f64())
}

/// The count of the rows where `flag` holds, as `i64`.
pub fn count_where(flag: Expr) -> Expr {
    flag.cast(DataType::Int64).sum()
}

/// A null of type f64.
pub fn null_f64() -> Expr {
    lit(NULL).cast(DataType::Float64)
}

/// A null of type str.
pub fn null_str() -> Expr {
    lit(NULL).cast(DataType::String)
}

/// `later - earlier` of two timestamp expressions in units of `micros_per_unit`.
pub fn elapsed(later: Expr, earlier: Expr, micros_per_unit: f64) -> Expr {
    divided_by(
        (later.dt().timestamp(TimeUnit::Microseconds) - earlier.dt().timestamp(TimeUnit::Microseconds))
            .cast(DataType::Float64),
        micros_per_unit,
    )
}

/// A number for each run of equal `key`s, the same for all rows of a run and different from
/// the other runs': in a frame sorted by `key`, a window `.over([col(run)])` on it partitions
/// the rows exactly as `.over([col(key)])` does, but by integers instead of text (hashing and
/// comparing the text keys was a tenth of a bucket's facts).
pub fn runs_of(key: &str) -> Expr {
    col(key).neq_missing(col(key).shift(lit(1))).cast(DataType::UInt32).cum_sum(false)
}

/// A polars `Date` expression as days since 1970-01-01 (`i32`).
pub fn days(date: Expr) -> Expr {
    date.cast(DataType::Int32)
}

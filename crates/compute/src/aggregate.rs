//! Exact, order-independent sums and means. Float addition is not associative, and polars adds
//! a group's values in an order (and chunking) that varies from run to run; adding fixed-point
//! integers instead makes every sum and mean bit-identical across runs, so two computes over the
//! same lake write identical files (outputs.md).
//!
//! Each value is scaled to an integer count of its smallest unit (money: micro-units of the
//! reporting currency; durations: the microseconds they were computed from), summed as `i64`
//! (exact, in any order), and scaled back.

use polars::prelude::*;

/// Money: micro-units of the reporting currency.
pub const MONEY: f64 = 1e6;
/// Hours, counted in microseconds.
pub const HOURS: f64 = 3_600_000_000.0;
/// Minutes, counted in microseconds.
pub const MINUTES: f64 = 60_000_000.0;
/// Days, counted in microseconds.
pub const DAYS: f64 = 86_400_000_000.0;

/// The exact sum of `values` (in a unit with `scale` integer steps per unit): 0 over nothing.
pub fn exact_sum(values: Expr, scale: f64) -> Expr {
    (values * lit(scale)).round(0, RoundMode::HalfAwayFromZero).cast(DataType::Int64).sum().cast(DataType::Float64)
        / lit(scale)
}

/// The exact mean of the non-null `values`: null over nothing.
pub fn exact_mean(values: Expr, scale: f64) -> Expr {
    let count = values.clone().count();
    when(count.clone().gt(lit(0)))
        .then(exact_sum(values, scale) / count.cast(DataType::Float64))
        .otherwise(lit(NULL).cast(DataType::Float64))
}

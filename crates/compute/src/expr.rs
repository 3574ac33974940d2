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
/// the other runs': in a frame sorted by `key`, each entity's rows are one run. The `_in_run`
/// expressions below compute per entity what a window `.over([col(key)])` would, with whole-
/// column operations instead of grouping (hashing the text keys was a tenth of a bucket's facts,
/// and a window evaluates its expression once per group).
pub fn runs_of(key: &str) -> Expr {
    run_starts(key).cast(DataType::UInt32).cum_sum(false)
}

/// Whether each row is the first of its run of equal `run` values (the columns it is used on
/// have no nulls).
pub fn run_starts(run: &str) -> Expr {
    col(run).neq_missing(col(run).shift(lit(1)))
}

/// Whether each row is the last of its run of equal `run` values.
pub fn run_ends(run: &str) -> Expr {
    col(run).neq_missing(col(run).shift(lit(-1)))
}

/// The previous row's `value` within the run (null on a run's first row):
/// `value.shift(1).over([col(run)])`.
pub fn previous_in_run(value: Expr, run: &str) -> Expr {
    when(run_starts(run)).then(lit(NULL)).otherwise(value.shift(lit(1)))
}

/// The next row's `value` within the run (null on a run's last row):
/// `value.shift(-1).over([col(run)])`.
pub fn next_in_run(value: Expr, run: &str) -> Expr {
    when(run_ends(run)).then(lit(NULL)).otherwise(value.shift(lit(-1)))
}

/// Each row's position in its run, from 1 (`IDX_DTYPE`): `cum_count(false).over([col(run)])` of
/// a column without nulls.
pub fn position_in_run(run: &str) -> Expr {
    let row = col(run).cum_count(false);
    let first_row_of_run = when(run_starts(run)).then(row.clone()).otherwise(lit(0)).cum_max(false);
    (row - first_row_of_run + lit(1)).cast(IDX_DTYPE)
}

/// The running sum of `value` within the run: `value.cum_sum(false).over([col(run)])`, for an
/// integer `value` that is never null nor negative (the sum before each run is then the running
/// maximum of the sums before the runs so far; a null would be skipped by that maximum, and
/// floats would not subtract exactly).
pub fn cum_sum_in_run(value: Expr, run: &str) -> Expr {
    let total = value.clone().cum_sum(false);
    let before_run = when(run_starts(run)).then(total.clone() - value).otherwise(lit(0)).cum_max(false);
    total - before_run
}

/// A polars `Date` expression as days since 1970-01-01 (`i32`).
pub fn days(date: Expr) -> Expr {
    date.cast(DataType::Int32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs of one, two and three rows, with a null and a zero among the values.
    fn runs() -> LazyFrame {
        df!(
            "key" => ["a", "b", "b", "c", "c", "c"],
            "value" => [Some(3i64), Some(1), None, Some(0), Some(2), Some(5)],
        )
        .expect("frame")
        .lazy()
        .with_column(runs_of("key").alias("run"))
    }

    #[test]
    fn run_expressions_equal_their_windows() {
        let window = |expr: Expr| expr.over([col("key")]).expect("window");
        let compared = runs()
            .select([
                col("run"),
                previous_in_run(col("value"), "run").alias("previous"),
                window(col("value").shift(lit(1))).alias("previous_window"),
                next_in_run(col("value"), "run").alias("next"),
                window(col("value").shift(lit(-1))).alias("next_window"),
                position_in_run("run").alias("position"),
                window(col("key").cum_count(false)).alias("position_window"),
                cum_sum_in_run(col("value").fill_null(lit(0i64)), "run").alias("sum"),
                window(col("value").fill_null(lit(0i64)).cum_sum(false)).alias("sum_window"),
            ])
            .collect()
            .expect("collect");
        let column = |name: &str| compared.column(name).expect(name).as_materialized_series().clone();
        assert_eq!(column("run").u32().expect("u32").into_no_null_iter().collect::<Vec<_>>(), [1, 2, 2, 3, 3, 3]);
        for name in ["previous", "next", "position", "sum"] {
            assert!(column(name).equals_missing(&column(&format!("{name}_window"))), "{name}: {compared}");
        }
        // The hand-computed values, not only the windows' agreement.
        let sums: Vec<i64> = column("sum").i64().expect("i64").into_no_null_iter().collect();
        assert_eq!(sums, [3, 1, 1, 0, 2, 7]);
        let positions: Vec<u32> =
            column("position").cast(&DataType::UInt32).expect("u32").u32().expect("u32").into_no_null_iter().collect();
        assert_eq!(positions, [1, 1, 2, 1, 2, 3]);
    }
}

//! The `clv_formula` rows of `kpi_monthly` (segment `all`), the textbook recipe over the 12
//! months W ending with month m: `apv = revenue / orders` in W, `purchase_frequency = orders /
//! distinct ordering customers` in W, `lifespan_years = 1 / annual_churn` with `annual_churn =
//! |S12 \ E12| / |S12|` (S12 alive on the day before W starts, that is `S(m - 11)`; E12 alive
//! on L, that is `E(m)`), and `clv_formula = apv * purchase_frequency * lifespan_years` (null
//! when any part is null).

use polars::prelude::*;

use crate::context::Context;
use crate::expr::{MONEY, from_units, mean_or_null, null_f64, previous_in_run};
use crate::facts::customers::alive_months;
use crate::facts::orders::{MONTHLY_ORDERS, customer_months};
use crate::facts::{Bucket, Facts, Part};
use crate::metrics::rows::{MetricValue, metric_rows};

/// A bucket's parts (besides the shared monthly order sums): the starts and ends of its customers' coverage of
/// the 12-month windows (see [`window_coverage`]); and per window month the customers alive
/// before it and still alive at its end.
pub fn parts(bucket: &Bucket) -> PolarsResult<Vec<Part>> {
    let coverage = bucket.cached("clv_formula_coverage", || Ok(window_coverage(customer_months(bucket)?)))?;
    let changes = |at: &str, name: &str| {
        coverage.clone().group_by([col(at).alias("month_index")]).agg([len().cast(DataType::Int64).alias(name)])
    };
    let alive = alive_months(bucket)?;
    let alive_before = alive
        .clone()
        .filter(col("alive_start"))
        .select([col("customer_id"), (col("month_index") + lit(11)).alias("window_month")]);
    let alive_after = alive.filter(col("alive_end")).select([
        col("customer_id"),
        col("month_index").alias("window_month"),
        lit(true).alias("still_alive"),
    ]);
    let churn = alive_before
        .join(
            alive_after,
            [col("customer_id"), col("window_month")],
            [col("customer_id"), col("window_month")],
            JoinArgs::new(JoinType::Left),
        )
        .group_by([col("window_month")])
        .agg([
            len().cast(DataType::Int64).alias("alive_before"),
            col("still_alive").fill_null(lit(false)).cast(DataType::Int64).sum().alias("still_alive"),
        ]);
    Ok(vec![
        Part { name: "clv_formula_window_starts", keys: &["month_index"], frame: changes("covered_from", "starting") },
        Part { name: "clv_formula_window_ends", keys: &["month_index"], frame: changes("covered_until", "ending") },
        Part { name: "clv_formula_churn", keys: &["window_month"], frame: churn },
    ])
}

/// Per customer and month o with an order: the 12-month windows ending in o..=o+11 contain it;
/// of those, the ones not already covered by the customer's previous order month p start at
/// `covered_from = max(o, p + 12)`, and coverage ends before `covered_until = o + 12`. So every
/// customer adds +1 at each start and -1 at each end, and a running sum over the months counts
/// each customer once per window it is in, without pairing every order month with its 12
/// windows.
/// `customer_months` are the distinct (customer, month) pairs with an order, in customer and
/// month order (see [`customer_months`]).
fn window_coverage(customer_months: LazyFrame) -> LazyFrame {
    let previous = previous_in_run(col("month_index"), "customer_run");
    // With no previous order month the comparison is null and the window starts at o.
    let previous_end = col("previous_month") + lit(12);
    customer_months.with_column(previous.alias("previous_month")).select([
        when(previous_end.clone().gt(col("month_index")))
            .then(previous_end)
            .otherwise(col("month_index"))
            .alias("covered_from"),
        (col("month_index") + lit(12)).alias("covered_until"),
    ])
}

/// The `clv_formula` rows: the windows' sums from the merged monthly parts.
pub fn rows(context: &Context, facts: &Facts) -> PolarsResult<LazyFrame> {
    let key = || lit(1i32).alias("join_key");
    // A month's orders belong to the windows ending in that month and the 11 after it.
    let offsets = DataFrame::new(12, vec![Column::new("month_offset".into(), (0..12).collect::<Vec<i32>>())])?
        .lazy()
        .with_column(key());
    let window_orders = facts
        .part(MONTHLY_ORDERS)?
        .with_column(key())
        .inner_join(offsets, col("join_key"), col("join_key"))
        .with_column((col("month_index") + col("month_offset")).alias("window_month"))
        .group_by([col("window_month")])
        .agg([from_units(col("revenue_units").sum(), MONEY).alias("revenue"), col("orders").sum().alias("orders")]);
    let window_customers = context
        .calendar
        .month_grid()
        .select([col("month_index")])
        .left_join(facts.part("clv_formula_window_starts")?, col("month_index"), col("month_index"))
        .left_join(facts.part("clv_formula_window_ends")?, col("month_index"), col("month_index"))
        .sort(["month_index"], SortMultipleOptions::default())
        .select([
            col("month_index"),
            (col("starting").fill_null(lit(0i64)) - col("ending").fill_null(lit(0i64)))
                .cum_sum(false)
                .alias("customers"),
        ]);
    let apv = mean_or_null(col("revenue"), col("orders"));
    let purchase_frequency = mean_or_null(col("orders"), col("customers"));
    let annual_churn = mean_or_null(col("alive_before") - col("still_alive"), col("alive_before"));
    let lifespan_years = when(annual_churn.clone().gt(lit(0.0))).then(lit(1.0) / annual_churn).otherwise(null_f64());
    let wide = context
        .calendar
        .month_grid()
        .left_join(window_orders, col("month_index"), col("window_month"))
        .left_join(window_customers, col("month_index"), col("month_index"))
        .left_join(facts.part("clv_formula_churn")?, col("month_index"), col("window_month"))
        .with_column(lit("all").alias("segment"));
    Ok(metric_rows(&wide, "clv_formula", MetricValue::Plain(apv * purchase_frequency * lifespan_years)))
}

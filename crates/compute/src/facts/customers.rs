//! Per customer (a `customer_id` with an `order_placed`, kpis.md "Customers, activity and
//! churn"): the RFM summary, the latest NPS answer, and the months in which it is alive.
//!
//! `alive(c, d)` holds when c has an order on a local day in `(d - churn_after_days, d]`. For
//! month m with days `F..L`: `S(m)` (alive on `F - 1`), `E(m)` (alive on `L`), `new(m)` (first
//! order day in m).

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::expr::{MONEY, count_where, days, divided_by, exact_sum, mean_or_null};
use crate::facts::Bucket;
use crate::facts::orders::orders;

/// Name of the customer summaries fact.
pub const CUSTOMERS: &str = "customers";
/// Name of the latest-NPS fact.
pub const LATEST_NPS: &str = "latest_nps";

/// Per customer: the RFM summary at `as_of` with the conventions of the BG/NBD literature and
/// `lifetimes` (orders of one local day are one purchase, amounts summed): `first_order_at`,
/// `last_order_at`, `orders`, `revenue`, `frequency` (order days - 1), `recency` and `t` in
/// `clv.unit_days` units, `monetary_value` (mean of the repeat days' totals, 0 without repeat),
/// `last_order_day`, and `recent_order_days` (order days in `(day(as_of) - 365, day(as_of)]`).
pub fn rfm(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    let context = bucket.context;
    let unit = f64::from(context.config.clv.unit_days);
    let as_of_day = context.calendar.as_of_day;
    // Orders of one local day are one purchase: the order days are the days' first orders.
    let order_day = col("first_of_day");
    Ok(orders(bucket)?
        .group_by([col("customer_run")])
        .agg([
            col("customer_id").first(),
            col("occurred_at").min().alias("first_order_at"),
            col("occurred_at").max().alias("last_order_at"),
            len().cast(DataType::Int64).alias("orders"),
            exact_sum(col("amount"), MONEY).alias("revenue"),
            count_where(order_day.clone()).alias("order_days"),
            col("day").min().alias("first_order_day"),
            col("day").max().alias("last_order_day"),
            count_where(order_day.and(days(col("day")).gt(lit(as_of_day - 365)))).alias("recent_order_days"),
            exact_sum(when(col("on_first_day")).then(lit(0.0)).otherwise(col("amount")), MONEY).alias("repeat_revenue"),
        ])
        .with_columns([
            (col("order_days") - lit(1i64)).alias("frequency"),
            divided_by((days(col("last_order_day")) - days(col("first_order_day"))).cast(DataType::Float64), unit)
                .alias("recency"),
            divided_by((lit(as_of_day) - days(col("first_order_day"))).cast(DataType::Float64), unit).alias("t"),
        ])
        .with_column(mean_or_null(col("repeat_revenue"), col("frequency")).fill_null(lit(0.0)).alias("monetary_value"))
        .select([
            col("customer_id"),
            col("first_order_at"),
            col("last_order_at"),
            col("orders"),
            col("revenue"),
            col("frequency"),
            col("recency"),
            col("t"),
            col("monetary_value"),
            col("last_order_day"),
            col("recent_order_days"),
        ]))
}

/// Per customer with an NPS answer: `latest_nps`, the score of the latest (ties by `event_id`).
pub fn latest_nps(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    Ok(bucket
        .events_of(EventType::SurveyAnswered)
        .filter(col("survey").eq(lit("nps")))
        .sort(["customer_id", "occurred_at", "event_id"], SortMultipleOptions::default())
        .group_by([col("customer_id")])
        .agg([col("score").last().alias("latest_nps")]))
}

/// Per customer and reported month in which the customer is alive at the start or the end:
/// `alive_start` (member of `S(m)`), `alive_end` (of `E(m)`), `is_new` (of `new(m)`).
///
/// An order day `d` keeps its customer alive on the days `d ..= d + churn_after_days - 1`, so
/// it can only matter for the few months from the month of `d` to the month of
/// `d + churn_after_days`: each distinct order day is paired with those months only.
pub fn alive_months(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    bucket.cached("alive_months", || alive_months_plan(bucket))
}

fn alive_months_plan(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    let context = bucket.context;
    let churn_days = i32::try_from(context.config.churn_after_days).unwrap_or(i32::MAX / 2);
    let churn = lit(churn_days);
    let order_rows = orders(bucket)?;
    let order_days = order_rows.clone().filter(col("first_of_day")).select([
        col("customer_run"),
        col("customer_id"),
        col("day"),
        col("month_index"),
    ]);
    let new_months = order_rows.filter(col("first_of_customer")).select([
        col("customer_run"),
        col("month_index"),
        lit(true).alias("is_new"),
    ]);
    let month_span = churn_days / 28 + 2;
    let offsets = DataFrame::new(
        usize::try_from(month_span).unwrap_or(0),
        vec![Column::new("month_offset".into(), (0..month_span).collect::<Vec<i32>>())],
    )?
    .lazy()
    .with_column(lit(1i32).alias("join_key"));
    let day = days(col("day"));
    let start_of_month = days(col("period"));
    let end_of_month = days(col("last_day"));
    let alive_start = day.clone().gt_eq(start_of_month.clone() - churn.clone()).and(day.clone().lt(start_of_month));
    let alive_end = day.clone().gt(end_of_month.clone() - churn).and(day.lt_eq(end_of_month));
    Ok(order_days
        .with_column(lit(1i32).alias("join_key"))
        .inner_join(offsets, col("join_key"), col("join_key"))
        .select([
            col("customer_run"),
            col("customer_id"),
            col("day"),
            (col("month_index") + col("month_offset")).alias("month_index"),
        ])
        .inner_join(context.calendar.month_grid(), col("month_index"), col("month_index"))
        .with_columns([alive_start.alias("alive_start"), alive_end.alias("alive_end")])
        .filter(col("alive_start").or(col("alive_end")))
        .group_by([col("customer_run"), col("month_index")])
        .agg([col("customer_id").first(), col("alive_start").any(true), col("alive_end").any(true)])
        .join(
            new_months,
            [col("customer_run"), col("month_index")],
            [col("customer_run"), col("month_index")],
            JoinArgs::new(JoinType::Left),
        )
        .select([
            col("customer_id"),
            col("month_index"),
            col("alive_start"),
            col("alive_end"),
            col("is_new").fill_null(lit(false)),
        ]))
}

//! Table `cohort_retention` (kpis.md, "Cohort retention"): the cohort of a customer is the
//! month of its first order day. For cohort month `k0` and each `k >= 0` up to the month of
//! `as_of`: `retained` (cohort customers with an order in month `k0 + k`), `retained_or_after`
//! (with an order in any month from `k0 + k` on), their rates over the cohort size, and
//! `is_complete` (month `k0 + k` ends before the month of `as_of`). For segment `all` and per
//! acquisition channel `channel=<x>` (`unknown` without a lead). One plan, no per-cohort loop.

use polars::prelude::*;

use crate::context::Context;
use crate::leads::lead_origins;
use crate::revenue::orders;

/// Per customer: `segment` (one row for `all`, one for its channel), `cohort` and
/// `last_order_month` (month indices).
fn cohort_members(context: &Context, customer_months: LazyFrame) -> LazyFrame {
    let channels = lead_origins(context).select([col("customer_id"), col("channel")]);
    let customers = customer_months
        .group_by([col("customer_id")])
        .agg([col("month_index").min().alias("cohort"), col("month_index").max().alias("last_order_month")])
        .left_join(channels, col("customer_id"), col("customer_id"));
    let all = customers.clone().with_column(lit("all").alias("segment"));
    let by_channel =
        customers.with_column((lit("channel=") + col("channel").fill_null(lit("unknown"))).alias("segment"));
    concat([all, by_channel], UnionArgs::default()).unwrap_or_else(|_| DataFrame::empty().lazy()).select([
        col("customer_id"),
        col("segment"),
        col("cohort"),
        col("last_order_month"),
    ])
}

/// Table `cohort_retention`, sorted by `segment`, `cohort_month`, `months_since`.
pub fn cohort_retention(context: &Context) -> PolarsResult<LazyFrame> {
    let customer_months =
        orders(context).select([col("customer_id"), col("month_index")]).unique(None, UniqueKeepStrategy::Any);
    let members = cohort_members(context, customer_months.clone());
    let months = context.calendar.month_grid().select([col("month_index"), col("period")]);
    let last_month = context.calendar.last_month;
    let key = || lit(1i32).alias("join_key");
    // Every member against every month from its cohort on: counts retained_or_after.
    let member_months = members
        .clone()
        .with_column(key())
        .inner_join(months.clone().with_column(key()), col("join_key"), col("join_key"))
        .filter(col("month_index").gt_eq(col("cohort")));
    let ordered = customer_months.with_column(lit(true).alias("ordered"));
    let counts = member_months
        .join(
            ordered,
            [col("customer_id"), col("month_index")],
            [col("customer_id"), col("month_index")],
            JoinArgs::new(JoinType::Left),
        )
        .group_by([col("segment"), col("cohort"), col("month_index")])
        .agg([
            col("ordered").fill_null(lit(false)).cast(DataType::Int64).sum().alias("retained"),
            col("last_order_month").gt_eq(col("month_index")).cast(DataType::Int64).sum().alias("retained_or_after"),
        ]);
    let sizes =
        members.group_by([col("segment"), col("cohort")]).agg([len().cast(DataType::Int64).alias("cohort_size")]);
    let cohort_months =
        months.clone().select([col("month_index").alias("cohort"), col("period").alias("cohort_month")]);
    let rate = |count: &str| col(count).cast(DataType::Float64) / col("cohort_size").cast(DataType::Float64);
    Ok(counts
        .join(sizes, [col("segment"), col("cohort")], [col("segment"), col("cohort")], JoinArgs::new(JoinType::Inner))
        .inner_join(cohort_months, col("cohort"), col("cohort"))
        .select([
            col("segment"),
            col("cohort_month"),
            (col("month_index") - col("cohort")).cast(DataType::Int64).alias("months_since"),
            col("cohort_size"),
            col("retained"),
            rate("retained").alias("retention_rate"),
            col("retained_or_after"),
            rate("retained_or_after").alias("retention_rate_or_after"),
            col("month_index").lt(lit(last_month)).alias("is_complete"),
        ])
        .sort(["segment", "cohort_month", "months_since"], SortMultipleOptions::default()))
}

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

/// Per customer: `channel` (acquisition channel, `unknown` without a lead), `cohort` and
/// `last_order_month` (month indices).
fn cohort_members(context: &Context, customer_months: LazyFrame) -> PolarsResult<LazyFrame> {
    let channels = lead_origins(context)?.select([col("customer_id"), col("channel")]);
    Ok(customer_months
        .group_by([col("customer_id")])
        .agg([col("month_index").min().alias("cohort"), col("month_index").max().alias("last_order_month")])
        .left_join(channels, col("customer_id"), col("customer_id"))
        .with_column(col("channel").fill_null(lit("unknown"))))
}

/// Counts keyed by `channel` and `keys` as rows per segment: `channel=<x>` for each channel
/// and `all` with the counts summed over channels.
fn per_segment(per_channel: LazyFrame, keys: &[&str], count: &str) -> PolarsResult<LazyFrame> {
    let columns = || {
        let mut columns = vec![col("segment")];
        columns.extend(keys.iter().map(|key| col(*key)));
        columns.push(col(count));
        columns
    };
    let all = per_channel
        .clone()
        .group_by(keys.iter().map(|key| col(*key)).collect::<Vec<_>>())
        .agg([col(count).sum()])
        .with_column(lit("all").alias("segment"))
        .select(columns());
    let by_channel = per_channel.with_column((lit("channel=") + col("channel")).alias("segment")).select(columns());
    concat([all, by_channel], UnionArgs::default())
}

/// Table `cohort_retention`, sorted by `segment`, `cohort_month`, `months_since`. Counts are
/// aggregated per acquisition channel before anything else (the `all` segment sums them), and
/// before they meet the month grid: retained customers per (segment, cohort, month), and
/// `retained_or_after` from the number of members whose last order month is at or after each
/// month.
pub fn cohort_retention(context: &Context) -> PolarsResult<LazyFrame> {
    let customer_months =
        orders(context)?.select([col("customer_id"), col("month_index")]).unique(None, UniqueKeepStrategy::Any);
    let members = cohort_members(context, customer_months.clone())?;
    let months = context.calendar.month_grid().select([col("month_index"), col("period")]);
    let last_month = context.calendar.last_month;
    let key = || lit(1i32).alias("join_key");
    let counted = |keys: &[&str]| (keys.iter().map(|key| col(*key)).collect::<Vec<_>>(), [len().cast(DataType::Int64)]);
    let (size_keys, size_count) = counted(&["channel", "cohort"]);
    let sizes = per_segment(
        members.clone().group_by(size_keys).agg(size_count.map(|count| count.alias("cohort_size"))),
        &["cohort"],
        "cohort_size",
    )?;
    let (retained_keys, retained_count) = counted(&["channel", "cohort", "month_index"]);
    let retained = per_segment(
        customer_months
            .inner_join(
                members.clone().select([col("customer_id"), col("channel"), col("cohort")]),
                col("customer_id"),
                col("customer_id"),
            )
            .group_by(retained_keys)
            .agg(retained_count.map(|count| count.alias("retained"))),
        &["cohort", "month_index"],
        "retained",
    )?;
    let (last_keys, last_count) = counted(&["channel", "cohort", "last_order_month"]);
    let last_orders = per_segment(
        members.group_by(last_keys).agg(last_count.map(|count| count.alias("members"))),
        &["cohort", "last_order_month"],
        "members",
    )?;
    let cells = sizes
        .with_column(key())
        .inner_join(months.clone().with_column(key()), col("join_key"), col("join_key"))
        .filter(col("month_index").gt_eq(col("cohort")))
        .select([col("segment"), col("cohort"), col("month_index"), col("cohort_size")]);
    let retained_or_after = cells
        .clone()
        .join(
            last_orders,
            [col("segment"), col("cohort")],
            [col("segment"), col("cohort")],
            JoinArgs::new(JoinType::Inner),
        )
        .filter(col("last_order_month").gt_eq(col("month_index")))
        .group_by([col("segment"), col("cohort"), col("month_index")])
        .agg([col("members").sum().alias("retained_or_after")]);
    let cell_keys = || [col("segment"), col("cohort"), col("month_index")];
    let cohort_months = months.select([col("month_index").alias("cohort"), col("period").alias("cohort_month")]);
    let rate = |count: &str| col(count).cast(DataType::Float64) / col("cohort_size").cast(DataType::Float64);
    Ok(cells
        .join(retained, cell_keys(), cell_keys(), JoinArgs::new(JoinType::Left))
        .join(retained_or_after, cell_keys(), cell_keys(), JoinArgs::new(JoinType::Left))
        .inner_join(cohort_months, col("cohort"), col("cohort"))
        .select([
            col("segment"),
            col("cohort_month"),
            (col("month_index") - col("cohort")).cast(DataType::Int64).alias("months_since"),
            col("cohort_size"),
            col("retained").fill_null(lit(0i64)),
            rate("retained").fill_null(lit(0.0)).alias("retention_rate"),
            col("retained_or_after").fill_null(lit(0i64)),
            rate("retained_or_after").fill_null(lit(0.0)).alias("retention_rate_or_after"),
            col("month_index").lt(lit(last_month)).alias("is_complete"),
        ])
        .sort(["segment", "cohort_month", "months_since"], SortMultipleOptions::default()))
}

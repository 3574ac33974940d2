//! Table `cohort_retention` (kpis.md, "Cohort retention"): the cohort of a customer is the
//! month of its first order day. For cohort month `k0` and each `k >= 0` up to the month of
//! `as_of`: `retained` (cohort customers with an order in month `k0 + k`), `retained_or_after`
//! (with an order in any month from `k0 + k` on), their rates over the cohort size, and
//! `is_complete` (month `k0 + k` ends before the month of `as_of`). For segment `all` and per
//! acquisition channel `channel=<x>` (`unknown` without a lead). One plan, no per-cohort loop.

use polars::prelude::*;

use crate::facts::leads::lead_origins;
use crate::facts::orders::{customer_months, orders};
use crate::facts::{Bucket, Part};
use crate::tables::Run;

/// Per channel of a bucket's customers: cohort sizes, retained customers per cohort and month,
/// and members per cohort and last order month. A customer's `channel` is its acquisition
/// channel (`unknown` without a lead), its `cohort` and `last_order_month` month indices.
pub fn parts(bucket: &Bucket) -> PolarsResult<Vec<Part>> {
    let months = customer_months(bucket)?;
    let members = bucket.cached("cohort_members", || cohort_members(bucket))?;
    let count = |rows: LazyFrame, keys: &[&str], name: &str| {
        let keys: Vec<Expr> = ["channel"].iter().chain(keys).map(|key| col(*key)).collect();
        rows.group_by(keys).agg([len().cast(DataType::Int64).alias(name)])
    };
    let retained = months.inner_join(
        members.clone().select([col("customer_run"), col("channel"), col("cohort")]),
        col("customer_run"),
        col("customer_run"),
    );
    Ok(vec![
        Part {
            name: "cohort_sizes",
            keys: &["channel", "cohort"],
            frame: count(members.clone(), &["cohort"], "cohort_size"),
        },
        Part {
            name: "cohort_retained",
            keys: &["channel", "cohort", "month_index"],
            frame: count(retained, &["cohort", "month_index"], "retained"),
        },
        Part {
            name: "cohort_last_orders",
            keys: &["channel", "cohort", "last_order_month"],
            frame: count(members, &["cohort", "last_order_month"], "members"),
        },
    ])
}

/// A bucket's customers with an order: `customer_run`, `customer_id`, `cohort` (the month of
/// the first order day), `last_order_month` and `channel`. Computed once per bucket.
fn cohort_members(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    let orders = orders(bucket)?;
    let last_order_months = orders
        .clone()
        .filter(col("last_of_customer"))
        .select([col("customer_run"), col("month_index").alias("last_order_month")]);
    let channels = lead_origins(bucket)?.select([col("customer_id"), col("channel")]);
    Ok(orders
        .filter(col("first_of_customer"))
        .select([col("customer_run"), col("customer_id"), col("month_index").alias("cohort")])
        .inner_join(last_order_months, col("customer_run"), col("customer_run"))
        .left_join(channels, col("customer_id"), col("customer_id"))
        .with_column(col("channel").fill_null(lit("unknown"))))
}

/// Counts per channel (`channel`, the keys, `count`) by segment: per channel (segment
/// `channel=<x>`) and summed over the channels (segment `all`). Columns: `segment`, the keys,
/// `count`.
fn per_segment(per_channel: LazyFrame, keys: &[&str], count: &str) -> PolarsResult<LazyFrame> {
    let key_columns = || keys.iter().map(|key| col(*key)).collect::<Vec<_>>();
    let output = || [col("segment")].into_iter().chain(key_columns()).chain([col(count)]).collect::<Vec<_>>();
    let all = per_channel
        .clone()
        .group_by(key_columns())
        .agg([col(count).sum()])
        .with_column(lit("all").alias("segment"))
        .select(output());
    let by_channel = per_channel.with_column((lit("channel=") + col("channel")).alias("segment")).select(output());
    concat([all, by_channel], UnionArgs::default())
}

/// The rows sorted by `segment`, `cohort_month`, `months_since`. Counts are
/// aggregated per acquisition channel before anything else (the `all` segment sums them), and
/// before they meet the month grid: retained customers per (segment, cohort, month), and
/// `retained_or_after` from the number of members whose last order month is at or after each
/// month.
pub fn plan(run: &Run) -> PolarsResult<LazyFrame> {
    let context = run.context;
    let months = context.calendar.month_grid().select([col("month_index"), col("period")]);
    let last_month = context.calendar.last_month;
    let key = || lit(1i32).alias("join_key");
    let sizes = per_segment(run.facts.part("cohort_sizes")?, &["cohort"], "cohort_size")?;
    let retained = per_segment(run.facts.part("cohort_retained")?, &["cohort", "month_index"], "retained")?;
    let last_orders = per_segment(run.facts.part("cohort_last_orders")?, &["cohort", "last_order_month"], "members")?;
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

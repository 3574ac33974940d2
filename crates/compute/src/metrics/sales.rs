//! The deal rows of `kpi_monthly` (kpis.md "Deals, pipeline and stage durations"), by the
//! local month of the close, from the per-deal facts; and the closed-deal aggregates the
//! `rep_performance` and `lost_reasons` tables share.

use polars::prelude::*;

use crate::context::Context;
use crate::expr::{DAYS, MONEY, exact_mean, exact_sum, null_f64};
use crate::facts::Facts;
use crate::facts::deals::DEALS;
use crate::metrics::rows::{MetricValue, all_months, metric_rows};
use crate::time::calendar::local_month;

/// Closed deals with the local month of their close and the amounts the metrics sum.
pub fn closed_deals(context: &Context, facts: &Facts) -> PolarsResult<LazyFrame> {
    Ok(facts.entity(DEALS)?.filter(col("closed_at").is_not_null()).with_columns([
        local_month(col("closed_at"), context.config.timezone).alias("month_index"),
        col("status").eq(lit("won")).alias("is_won"),
    ]))
}

/// The deal metrics of a group of closed deals: counts, won and lost amounts (null as 0), mean
/// won amount over won deals with an amount, and the won deals' cycle mean and median.
pub fn close_aggregates() -> [Expr; 7] {
    let won = col("is_won");
    let lost = col("is_won").not();
    [
        won.clone().cast(DataType::Int64).sum().alias("deals_won"),
        lost.clone().cast(DataType::Int64).sum().alias("deals_lost"),
        exact_sum(col("amount").fill_null(lit(0.0)).filter(won.clone()), MONEY).alias("won_amount"),
        exact_sum(col("amount").fill_null(lit(0.0)).filter(lost), MONEY).alias("lost_amount"),
        exact_mean(col("amount").filter(won.clone()), MONEY).alias("avg_deal_size"),
        exact_mean(col("cycle_days").filter(won.clone()), DAYS).alias("sales_cycle_days_mean"),
        col("cycle_days").filter(won).median().alias("sales_cycle_days_median"),
    ]
}

/// Deals created and closed per month with their amounts (null as 0), cumulated over the
/// month grid: the deals open at the end of each month are those created by then and not
/// closed by then (a deal never closes before it is created).
fn open_pipeline(context: &Context, facts: &Facts) -> PolarsResult<LazyFrame> {
    let zone = context.config.timezone;
    let summaries = facts.entity(DEALS)?;
    let created = summaries.clone().group_by([local_month(col("created_at"), zone).alias("month_index")]).agg([
        len().cast(DataType::Int64).alias("created"),
        exact_sum(col("amount").fill_null(lit(0.0)), MONEY).alias("created_amount"),
    ]);
    let closed = summaries
        .filter(col("closed_at").is_not_null())
        .group_by([local_month(col("closed_at"), zone).alias("month_index")])
        .agg([
            len().cast(DataType::Int64).alias("closed"),
            exact_sum(col("amount").fill_null(lit(0.0)), MONEY).alias("closed_amount"),
        ]);
    Ok(context
        .calendar
        .month_grid()
        .left_join(created, col("month_index"), col("month_index"))
        .left_join(closed, col("month_index"), col("month_index"))
        .sort(["month_index"], SortMultipleOptions::default())
        .select([
            col("month_index"),
            (col("created").fill_null(lit(0i64)) - col("closed").fill_null(lit(0i64)))
                .cum_sum(false)
                .alias("pipeline_open_deals"),
            (col("created_amount").fill_null(lit(0.0)) - col("closed_amount").fill_null(lit(0.0)))
                .cum_sum(false)
                .alias("pipeline_value"),
        ]))
}

/// The deal rows of `kpi_monthly` (segment `all`), by the local month of the close:
/// `deals_won`, `deals_lost`, `win_rate`, `win_rate_amount`, `avg_deal_size`,
/// `sales_cycle_days_mean`, `sales_cycle_days_median`, `pipeline_open_deals`,
/// `pipeline_value`, `pipeline_velocity`.
pub fn rows(context: &Context, facts: &Facts) -> PolarsResult<LazyFrame> {
    let per_month = closed_deals(context, facts)?.group_by([col("month_index")]).agg(close_aggregates());
    let win_rate = when((col("deals_won") + col("deals_lost")).gt(lit(0)))
        .then(col("deals_won").cast(DataType::Float64) / (col("deals_won") + col("deals_lost")).cast(DataType::Float64))
        .otherwise(null_f64());
    let velocity = when(col("sales_cycle_days_mean").neq(lit(0.0)))
        .then(
            col("pipeline_open_deals").cast(DataType::Float64) * win_rate * col("avg_deal_size")
                / col("sales_cycle_days_mean"),
        )
        .otherwise(null_f64());
    let wide = all_months(
        context,
        [per_month, open_pipeline(context, facts)?],
        &["deals_won", "deals_lost", "won_amount", "lost_amount"],
    );
    let rows = [
        metric_rows(&wide, "deals_won", MetricValue::Plain(col("deals_won"))),
        metric_rows(&wide, "deals_lost", MetricValue::Plain(col("deals_lost"))),
        metric_rows(
            &wide,
            "win_rate",
            MetricValue::Ratio {
                numerator: col("deals_won"),
                denominator: col("deals_won") + col("deals_lost"),
                scale: 1.0,
            },
        ),
        metric_rows(
            &wide,
            "win_rate_amount",
            MetricValue::Ratio {
                numerator: col("won_amount"),
                denominator: col("won_amount") + col("lost_amount"),
                scale: 1.0,
            },
        ),
        metric_rows(&wide, "avg_deal_size", MetricValue::Plain(col("avg_deal_size"))),
        metric_rows(&wide, "sales_cycle_days_mean", MetricValue::Plain(col("sales_cycle_days_mean"))),
        metric_rows(&wide, "sales_cycle_days_median", MetricValue::Plain(col("sales_cycle_days_median"))),
        metric_rows(&wide, "pipeline_open_deals", MetricValue::Plain(col("pipeline_open_deals"))),
        metric_rows(&wide, "pipeline_value", MetricValue::Plain(col("pipeline_value"))),
        metric_rows(&wide, "pipeline_velocity", MetricValue::Plain(velocity)),
    ];
    concat(rows, UnionArgs::default())
}

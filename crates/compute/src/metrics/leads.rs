//! Leads (kpis.md), by the local month of the lead's earliest `lead_created`, for segment
//! `all` and per lead channel `channel=<x>` (`unknown` when null): `leads_created`,
//! `lead_qualification_rate`, `lead_conversion_rate`, `lead_response_hours_mean/_median`,
//! `time_to_conversion_days_mean/_median` from the per-lead facts; and for segment `all` only,
//! `site_visitors` and `site_conversion_rate` from the buckets' additive parts.

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::context::{Context, is_any_type};
use crate::expr::{DAYS, HOURS, count_where, exact_mean};
use crate::facts::leads::LEADS;
use crate::facts::{Bucket, Facts, Part};
use crate::metrics::rows::{MetricValue, metric_rows, plain, share};
use crate::time::calendar::local_month;

fn lead_aggregates() -> [Expr; 7] {
    [
        len().cast(DataType::Int64).alias("leads_created"),
        count_where(col("qualified")).alias("qualified"),
        count_where(col("converted")).alias("converted"),
        exact_mean(col("response_hours"), HOURS).alias("lead_response_hours_mean"),
        col("response_hours").median().alias("lead_response_hours_median"),
        exact_mean(col("conversion_days"), DAYS).alias("time_to_conversion_days_mean"),
        col("conversion_days").median().alias("time_to_conversion_days_median"),
    ]
}

fn lead_metric_rows(wide: &LazyFrame) -> Vec<LazyFrame> {
    vec![
        plain(wide, "leads_created"),
        share(wide, "lead_qualification_rate", "qualified", "leads_created"),
        share(wide, "lead_conversion_rate", "converted", "leads_created"),
        plain(wide, "lead_response_hours_mean"),
        plain(wide, "lead_response_hours_median"),
        plain(wide, "time_to_conversion_days_mean"),
        plain(wide, "time_to_conversion_days_median"),
    ]
}

/// Per local month of a bucket: its distinct site visitors and how many of them have a
/// `lead_created` or an `order_placed` in the same month.
pub fn parts(bucket: &Bucket) -> PolarsResult<Vec<Part>> {
    let zone = bucket.context.config.timezone;
    let month = || local_month(col("occurred_at"), zone).alias("month_index");
    let visitors = bucket
        .events_of(EventType::SiteVisited)
        .select([col("customer_id"), month()])
        .unique(None, UniqueKeepStrategy::Any);
    let converted = bucket
        .events()
        .filter(is_any_type(&[EventType::LeadCreated, EventType::OrderPlaced]))
        .select([col("customer_id"), month()])
        .unique(None, UniqueKeepStrategy::Any)
        .with_column(lit(true).alias("converted"));
    let per_month = visitors
        .join(
            converted,
            [col("customer_id"), col("month_index")],
            [col("customer_id"), col("month_index")],
            JoinArgs::new(JoinType::Left),
        )
        .group_by([col("month_index")])
        .agg([
            len().cast(DataType::Int64).alias("site_visitors"),
            count_where(col("converted").fill_null(lit(false))).alias("site_converted"),
        ]);
    Ok(vec![Part { name: "site_visits", keys: &["month_index"], frame: per_month }])
}

/// The lead rows of `kpi_monthly`: segment `all` for every reported month, `channel=<x>` for
/// the months in which channel x has at least one lead.
pub fn rows(context: &Context, facts: &Facts) -> PolarsResult<LazyFrame> {
    let leads = facts.entity(LEADS)?;
    let grid = context.calendar.month_grid();
    let all_months = leads.clone().group_by([col("month_index")]).agg(lead_aggregates());
    let all = grid
        .clone()
        .left_join(all_months, col("month_index"), col("month_index"))
        .left_join(facts.part("site_visits")?, col("month_index"), col("month_index"))
        .with_columns([
            col("leads_created").fill_null(lit(0i64)),
            col("qualified").fill_null(lit(0i64)),
            col("converted").fill_null(lit(0i64)),
            col("site_visitors").fill_null(lit(0i64)),
            col("site_converted").fill_null(lit(0i64)),
            lit("all").alias("segment"),
        ]);
    let channels = leads
        .group_by([col("month_index"), col("channel")])
        .agg(lead_aggregates())
        .inner_join(grid, col("month_index"), col("month_index"))
        .with_column((lit("channel=") + col("channel")).alias("segment"));
    let mut rows = lead_metric_rows(&all);
    rows.extend(lead_metric_rows(&channels));
    rows.push(plain(&all, "site_visitors"));
    rows.push(metric_rows(
        &all,
        "site_conversion_rate",
        MetricValue::Ratio { numerator: col("site_converted"), denominator: col("site_visitors"), scale: 1.0 },
    ));
    concat(rows, UnionArgs::default())
}

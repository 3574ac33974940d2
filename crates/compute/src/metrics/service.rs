//! Service (kpis.md), rows of `kpi_monthly` for segment `all` by the local month of the
//! ticket's opening, from the per-ticket facts.

use polars::prelude::*;

use crate::context::Context;
use crate::expr::{MINUTES, exact_mean};
use crate::facts::Facts;
use crate::facts::tickets::TICKETS;
use crate::metrics::rows::{MetricValue, all_months, metric_rows};
use crate::time::calendar::local_month;

/// The service rows of `kpi_monthly` (segment `all`), by the local month of the opening:
/// `tickets_opened`, first response and resolution means and medians (calendar) and means
/// (business), `agent_replies_per_ticket`, `reopen_rate`, `fcr_rate` (over resolved tickets).
pub fn rows(context: &Context, facts: &Facts) -> PolarsResult<LazyFrame> {
    let resolved = col("resolved");
    let per_month = facts
        .entity(TICKETS)?
        .with_column(local_month(col("opened_at"), context.config.timezone).alias("month_index"))
        .group_by([col("month_index")])
        .agg([
            len().cast(DataType::Int64).alias("tickets_opened"),
            exact_mean(col("first_response_minutes"), MINUTES).alias("first_response_minutes_mean"),
            col("first_response_minutes").median().alias("first_response_minutes_median"),
            exact_mean(col("first_response_business_minutes"), MINUTES).alias("first_response_business_minutes_mean"),
            exact_mean(col("resolution_minutes"), MINUTES).alias("resolution_minutes_mean"),
            col("resolution_minutes").median().alias("resolution_minutes_median"),
            exact_mean(col("resolution_business_minutes"), MINUTES).alias("resolution_business_minutes_mean"),
            col("agent_replies").filter(resolved.clone()).mean().alias("agent_replies_per_ticket"),
            resolved.clone().cast(DataType::Int64).sum().alias("resolved_tickets"),
            resolved.clone().and(col("reopens").gt(lit(0i64))).cast(DataType::Int64).sum().alias("reopened_tickets"),
            resolved.and(col("fcr")).cast(DataType::Int64).sum().alias("fcr_tickets"),
        ]);
    let wide =
        all_months(context, [per_month], &["tickets_opened", "resolved_tickets", "reopened_tickets", "fcr_tickets"]);
    let plain = |name: &str| metric_rows(&wide, name, MetricValue::Plain(col(name)));
    let share = |name: &str, numerator: &str| {
        metric_rows(
            &wide,
            name,
            MetricValue::Ratio { numerator: col(numerator), denominator: col("resolved_tickets"), scale: 1.0 },
        )
    };
    let rows = vec![
        plain("tickets_opened"),
        plain("first_response_minutes_mean"),
        plain("first_response_minutes_median"),
        plain("first_response_business_minutes_mean"),
        plain("resolution_minutes_mean"),
        plain("resolution_minutes_median"),
        plain("resolution_business_minutes_mean"),
        plain("agent_replies_per_ticket"),
        share("reopen_rate", "reopened_tickets"),
        share("fcr_rate", "fcr_tickets"),
    ];
    concat(rows, UnionArgs::default())
}

//! Customers, activity and churn (kpis.md), rows of `kpi_monthly` for segment `all`:
//! `customers_start`, `customers_end`, `churned_customers`, `reactivated_customers`,
//! `churn_rate`, `retention_rate`, `retention_cost_per_customer` and `engagement_rate`, from
//! the months each customer is alive in (see [`crate::facts::customers`]).

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::context::{Context, is_any_type};
use crate::expr::{MONEY, count_where, exact_sum, mean_or_null};
use crate::facts::customers::alive_months;
use crate::facts::{Bucket, Facts, Part};
use crate::metrics::rows::{MetricValue, all_months, metric_rows, plain, share};
use crate::time::calendar::local_month;

/// Per month of a bucket: its customers alive at the start and the end, churned, retained,
/// reactivated, and engaged.
pub fn parts(bucket: &Bucket) -> PolarsResult<Vec<Part>> {
    let engaging =
        [EventType::CampaignResponded, EventType::SiteVisited, EventType::SurveyAnswered, EventType::EmailSubscribed];
    let engaged = bucket
        .events()
        .filter(is_any_type(&engaging))
        .select([
            col("customer_id"),
            local_month(col("occurred_at"), bucket.context.config.timezone).alias("month_index"),
        ])
        .unique(None, UniqueKeepStrategy::Any)
        .with_column(lit(true).alias("engaged"));
    let (start, end, new) = (col("alive_start"), col("alive_end"), col("is_new"));
    let per_month = alive_months(bucket)?
        .join(
            engaged,
            [col("customer_id"), col("month_index")],
            [col("customer_id"), col("month_index")],
            JoinArgs::new(JoinType::Left),
        )
        .group_by([col("month_index")])
        .agg([
            count_where(start.clone()).alias("customers_start"),
            count_where(end.clone()).alias("customers_end"),
            count_where(start.clone().and(end.clone().not())).alias("churned_customers"),
            count_where(start.clone().and(end.clone())).alias("retained_customers"),
            count_where(end.and(start.clone().not()).and(new.not())).alias("reactivated_customers"),
            count_where(start.and(col("engaged").fill_null(lit(false)))).alias("engaged_customers"),
        ]);
    Ok(vec![Part { name: "churn", keys: &["month_index"], frame: per_month }])
}

/// The churn and engagement rows of `kpi_monthly` (segment `all`).
pub fn rows(context: &Context, facts: &Facts) -> PolarsResult<LazyFrame> {
    let retention_spend = facts
        .global_events_of(EventType::SpendRecorded)
        .filter(col("category").eq(lit("retention")))
        .with_column(local_month(col("occurred_at"), context.config.timezone).alias("month_index"))
        .group_by([col("month_index")])
        .agg([exact_sum(col("amount"), MONEY).alias("retention_spend")]);
    let wide = all_months(
        context,
        [facts.part("churn")?, retention_spend],
        &[
            "customers_start",
            "customers_end",
            "churned_customers",
            "retained_customers",
            "reactivated_customers",
            "engaged_customers",
            "retention_spend",
        ],
    );
    let rows = vec![
        plain(&wide, "customers_start"),
        plain(&wide, "customers_end"),
        plain(&wide, "churned_customers"),
        plain(&wide, "reactivated_customers"),
        share(&wide, "churn_rate", "churned_customers", "customers_start"),
        share(&wide, "retention_rate", "retained_customers", "customers_start"),
        metric_rows(
            &wide,
            "retention_cost_per_customer",
            MetricValue::Plain(mean_or_null(col("retention_spend"), col("customers_start"))),
        ),
        share(&wide, "engagement_rate", "engaged_customers", "customers_start"),
    ];
    concat(rows, UnionArgs::default())
}

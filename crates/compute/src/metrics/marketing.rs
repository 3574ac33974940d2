//! Marketing, spend and adoption (kpis.md, "Revenue and marketing"): the rows `cac`,
//! `crm_roi`, `renewal_rate`, `email_list_size_start`, `email_list_growth_rate`,
//! `campaign_response_rate`, `crm_active_users`, `crm_adoption_rate` of `kpi_monthly`. Orders,
//! renewals, email list changes and campaign pairs are per customer (additive parts of the
//! buckets); spend and CRM-user activity belong to no entity and are read whole.

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::context::{Context, is_type};
use crate::expr::{MONEY, count_where, exact_sum, from_units, mean_or_null, null_f64, previous_in_run, runs_of};
use crate::facts::orders::{MONTHLY_NEW_CUSTOMERS, MONTHLY_ORDERS};
use crate::facts::{Bucket, Facts, Part};
use crate::metrics::rows::{MetricValue, all_months, metric_rows};
use crate::time::calendar::local_month;

fn month_of_event(context: &Context) -> Expr {
    local_month(col("occurred_at"), context.config.timezone).alias("month_index")
}

/// Spend per month by category: `acquisition_spend`, `retention_spend`, `crm_spend`.
fn spend_per_month(context: &Context, facts: &Facts) -> LazyFrame {
    let category = |name: &str| exact_sum(col("amount").filter(col("category").eq(lit(name))), MONEY);
    facts
        .global_events_of(EventType::SpendRecorded)
        .with_column(month_of_event(context))
        .group_by([col("month_index")])
        .agg([
            category("acquisition").alias("acquisition_spend"),
            category("retention").alias("retention_spend"),
            category("crm").alias("crm_spend"),
        ])
}

/// Email list changes per month: a customer's state starts unsubscribed; only events that
/// change it count (`subscribes`, `unsubscribes`).
fn email_changes_per_month(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    let subscribed = is_type(EventType::EmailSubscribed);
    let previous = previous_in_run(col("subscribed"), "customer_run").fill_null(lit(false));
    Ok(bucket
        .events()
        .filter(subscribed.clone().or(is_type(EventType::EmailUnsubscribed)))
        .select([col("customer_id"), col("occurred_at"), col("event_id"), subscribed.alias("subscribed")])
        .sort(["customer_id", "occurred_at", "event_id"], SortMultipleOptions::default())
        .with_column(runs_of("customer_id").alias("customer_run"))
        .with_column(previous.alias("was_subscribed"))
        .filter(col("subscribed").neq(col("was_subscribed")))
        .with_column(month_of_event(bucket.context))
        .group_by([col("month_index")])
        .agg([
            count_where(col("subscribed")).alias("subscribes"),
            count_where(col("subscribed").not()).alias("unsubscribes"),
        ]))
}

/// (campaign, customer) pairs by the month they were first sent, and how many of them have a
/// response at any time up to `as_of`.
fn campaign_pairs_per_month(bucket: &Bucket) -> LazyFrame {
    let responded = bucket
        .events_of(EventType::CampaignResponded)
        .select([col("campaign_id"), col("customer_id")])
        .unique(None, UniqueKeepStrategy::Any)
        .with_column(lit(true).alias("responded"));
    bucket
        .events_of(EventType::CampaignSent)
        .group_by([col("campaign_id"), col("customer_id")])
        .agg([col("occurred_at").min()])
        .join(
            responded,
            [col("campaign_id"), col("customer_id")],
            [col("campaign_id"), col("customer_id")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(month_of_event(bucket.context))
        .group_by([col("month_index")])
        .agg([
            len().cast(DataType::Int64).alias("pairs_sent"),
            count_where(col("responded").fill_null(lit(false))).alias("pairs_responded"),
        ])
}

/// Per month of a bucket: renewals, email list changes and campaign pairs (orders and new
/// customers are the shared monthly order parts).
pub fn parts(bucket: &Bucket) -> PolarsResult<Vec<Part>> {
    let renewals = bucket
        .events()
        .filter(is_type(EventType::SubscriptionRenewed).or(is_type(EventType::SubscriptionCancelled)))
        .with_column(month_of_event(bucket.context))
        .group_by([col("month_index")])
        .agg([
            count_where(is_type(EventType::SubscriptionRenewed)).alias("renewed"),
            count_where(is_type(EventType::SubscriptionCancelled)).alias("cancelled"),
        ]);
    let month = &["month_index"];
    Ok(vec![
        Part { name: "renewals", keys: month, frame: renewals },
        Part { name: "email_changes", keys: month, frame: email_changes_per_month(bucket)? },
        Part { name: "campaign_pairs", keys: month, frame: campaign_pairs_per_month(bucket) },
    ])
}

/// The marketing rows of `kpi_monthly` (segment `all`).
pub fn rows(context: &Context, facts: &Facts) -> PolarsResult<LazyFrame> {
    let active_users = facts
        .global_events_of(EventType::CrmUserActive)
        .with_column(month_of_event(context))
        .group_by([col("month_index")])
        .agg([col("owner_id").drop_nulls().n_unique().cast(DataType::Int64).alias("crm_active_users")]);
    let seats = context.config.crm_seats.map_or(null_f64(), |seats| lit(f64::from(seats)));
    let parts = [
        facts.part(MONTHLY_ORDERS)?.with_column(from_units(col("revenue_units"), MONEY).alias("revenue")),
        facts.part(MONTHLY_NEW_CUSTOMERS)?,
        spend_per_month(context, facts),
        facts.part("renewals")?,
        facts.part("email_changes")?,
        facts.part("campaign_pairs")?,
        active_users,
    ];
    let sums = [
        "revenue",
        "new_customers",
        "acquisition_spend",
        "retention_spend",
        "crm_spend",
        "renewed",
        "cancelled",
        "subscribes",
        "unsubscribes",
        "pairs_sent",
        "pairs_responded",
        "crm_active_users",
    ];
    let wide = all_months(context, parts, &sums).sort(["month_index"], SortMultipleOptions::default()).with_columns([
        (col("subscribes") - col("unsubscribes"))
            .cum_sum(false)
            .shift_and_fill(lit(1), lit(0i64))
            .alias("email_list_size_start"),
        seats.alias("crm_seats"),
    ]);
    let rows = vec![
        metric_rows(&wide, "cac", MetricValue::Plain(mean_or_null(col("acquisition_spend"), col("new_customers")))),
        metric_rows(
            &wide,
            "crm_roi",
            MetricValue::Ratio {
                numerator: col("revenue") - col("crm_spend"),
                denominator: col("crm_spend"),
                scale: 100.0,
            },
        ),
        metric_rows(
            &wide,
            "renewal_rate",
            MetricValue::Ratio {
                numerator: col("renewed"),
                denominator: col("renewed") + col("cancelled"),
                scale: 1.0,
            },
        ),
        metric_rows(&wide, "email_list_size_start", MetricValue::Plain(col("email_list_size_start"))),
        metric_rows(
            &wide,
            "email_list_growth_rate",
            MetricValue::Ratio {
                numerator: col("subscribes") - col("unsubscribes"),
                denominator: col("email_list_size_start"),
                scale: 100.0,
            },
        ),
        metric_rows(
            &wide,
            "campaign_response_rate",
            MetricValue::Ratio { numerator: col("pairs_responded"), denominator: col("pairs_sent"), scale: 1.0 },
        ),
        metric_rows(&wide, "crm_active_users", MetricValue::Plain(col("crm_active_users"))),
        metric_rows(
            &wide,
            "crm_adoption_rate",
            MetricValue::Ratio { numerator: col("crm_active_users"), denominator: col("crm_seats"), scale: 1.0 },
        ),
    ];
    concat(rows, UnionArgs::default())
}

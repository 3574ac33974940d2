//! Table `campaigns` (outputs.md, kpis.md "Revenue and marketing"): every `campaign_id` seen in
//! sent, responded or spend events, with `sent` and `responded` (distinct customers),
//! `response_rate`, `spend`, and the orders attributed to it (each order goes to the campaign
//! of the customer's latest `campaign_responded` at or before it and at most
//! `attribution_window_days` earlier, edge included), `roas`. Sends, responses and attributed
//! orders are per customer (additive parts of the buckets); spend is read whole.

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::expr::{MONEY, exact_sum, exact_units, from_units, mean_or_null, null_f64};
use crate::facts::orders::orders;
use crate::facts::{Bucket, Part};
use crate::tables::Run;

/// Per campaign of a bucket: its distinct customers sent to and responding, and the orders
/// attributed to it with their exact revenue.
pub fn parts(bucket: &Bucket) -> PolarsResult<Vec<Part>> {
    let distinct_customers = |event_type: EventType, name: &str| {
        bucket.events_of(event_type).filter(col("campaign_id").is_not_null()).group_by([col("campaign_id")]).agg([col(
            "customer_id",
        )
        .n_unique()
        .cast(DataType::Int64)
        .alias(name)])
    };
    let window = i64::from(bucket.context.config.attribution_window_days) * 86_400_000_000;
    let responses = bucket.events_of(EventType::CampaignResponded).select([
        col("customer_id"),
        col("occurred_at").dt().timestamp(TimeUnit::Microseconds).alias("responded_at"),
        col("event_id").alias("response_id"),
        col("campaign_id"),
    ]);
    let attributed = orders(bucket)?
        .select([
            col("event_id").alias("order_event_id"),
            col("customer_id"),
            col("occurred_at").dt().timestamp(TimeUnit::Microseconds).alias("ordered_at"),
            col("amount"),
        ])
        .inner_join(responses, col("customer_id"), col("customer_id"))
        .filter(
            col("responded_at")
                .lt_eq(col("ordered_at"))
                .and((col("ordered_at") - col("responded_at")).lt_eq(lit(window))),
        )
        .sort(["order_event_id", "responded_at", "response_id"], SortMultipleOptions::default())
        .group_by([col("order_event_id")])
        .agg([col("campaign_id").last(), col("amount").first()])
        .filter(col("campaign_id").is_not_null())
        .group_by([col("campaign_id")])
        .agg([
            len().cast(DataType::Int64).alias("attributed_orders"),
            exact_units(col("amount"), MONEY).alias("attributed_revenue_units"),
        ]);
    let campaign = &["campaign_id"];
    Ok(vec![
        Part { name: "campaign_sent", keys: campaign, frame: distinct_customers(EventType::CampaignSent, "sent") },
        Part {
            name: "campaign_responded",
            keys: campaign,
            frame: distinct_customers(EventType::CampaignResponded, "responded"),
        },
        Part { name: "campaign_attributed", keys: campaign, frame: attributed },
    ])
}

/// One row per campaign, sorted by `campaign_id`.
pub fn plan(run: &Run) -> PolarsResult<LazyFrame> {
    let facts = run.facts;
    let spending = facts.global_events_of(EventType::SpendRecorded).filter(col("campaign_id").is_not_null());
    let spend = spending.clone().group_by([col("campaign_id")]).agg([exact_sum(col("amount"), MONEY).alias("spend")]);
    let (sent, responded, attributed) =
        (facts.part("campaign_sent")?, facts.part("campaign_responded")?, facts.part("campaign_attributed")?);
    let campaign_ids = concat(
        [
            sent.clone().select([col("campaign_id")]),
            responded.clone().select([col("campaign_id")]),
            spending.select([col("campaign_id")]),
        ],
        UnionArgs::default(),
    )?
    .unique(None, UniqueKeepStrategy::Any);
    Ok(campaign_ids
        .left_join(sent, col("campaign_id"), col("campaign_id"))
        .left_join(responded, col("campaign_id"), col("campaign_id"))
        .left_join(spend, col("campaign_id"), col("campaign_id"))
        .left_join(attributed, col("campaign_id"), col("campaign_id"))
        .with_columns([
            col("sent").fill_null(lit(0i64)),
            col("responded").fill_null(lit(0i64)),
            col("spend").fill_null(lit(0.0)),
            col("attributed_orders").fill_null(lit(0i64)),
            from_units(col("attributed_revenue_units").fill_null(lit(0i64)), MONEY).alias("attributed_revenue"),
        ])
        .select([
            col("campaign_id"),
            col("sent"),
            col("responded"),
            mean_or_null(col("responded"), col("sent")).alias("response_rate"),
            col("spend"),
            col("attributed_orders"),
            col("attributed_revenue"),
            when(col("spend").gt(lit(0.0)))
                .then(col("attributed_revenue") / col("spend"))
                .otherwise(null_f64())
                .alias("roas"),
        ])
        .sort(["campaign_id"], SortMultipleOptions::default()))
}

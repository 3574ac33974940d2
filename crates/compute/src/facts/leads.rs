//! Per lead (a `customer_id` with a `lead_created`, kpis.md "Leads"): its origin and its facts.

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::expr::{DAYS, HOURS, elapsed};
use crate::facts::Bucket;
use crate::facts::orders::first_order_instants;
use crate::time::calendar::local_month;

/// Name of the lead origins fact.
pub const LEAD_ORIGINS: &str = "lead_origins";
/// Name of the lead facts.
pub const LEADS: &str = "leads";

/// Per lead: `customer_id`, its earliest `lead_created` (`lead_created_at`, ties by
/// `event_id`) and that event's `channel` (`unknown` when null).
pub fn lead_origins(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    bucket.cached(LEAD_ORIGINS, || {
        Ok(bucket
            .events_of(EventType::LeadCreated)
            .select([col("customer_id"), col("occurred_at"), col("event_id"), col("channel")])
            .sort(["customer_id", "occurred_at", "event_id"], SortMultipleOptions::default())
            .group_by([col("customer_id")])
            .agg([col("occurred_at").first().alias("lead_created_at"), col("channel").first().alias("channel")])
            .with_column(col("channel").fill_null(lit("unknown"))))
    })
}

/// Per lead: `customer_id`, month of creation, channel, whether qualified (at any time up to
/// `as_of`) and converted (a customer), response hours (first contact at or after creation)
/// and days to conversion (first order ever, when at or after creation).
pub fn lead_facts(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    let qualified = bucket
        .events_of(EventType::LeadQualified)
        .group_by([col("customer_id")])
        .agg([lit(true).alias("qualified")])
        .select([col("customer_id"), col("qualified")]);
    let first_orders = first_order_instants(bucket)?;
    let origins = lead_origins(bucket)?;
    let first_contacts = bucket
        .events_of(EventType::LeadContacted)
        .select([col("customer_id"), col("occurred_at")])
        .inner_join(
            origins.clone().select([col("customer_id"), col("lead_created_at")]),
            col("customer_id"),
            col("customer_id"),
        )
        .filter(col("occurred_at").gt_eq(col("lead_created_at")))
        .group_by([col("customer_id")])
        .agg([col("occurred_at").min().alias("first_contact_at")]);
    Ok(origins
        .left_join(qualified, col("customer_id"), col("customer_id"))
        .left_join(first_orders, col("customer_id"), col("customer_id"))
        .left_join(first_contacts, col("customer_id"), col("customer_id"))
        .select([
            col("customer_id"),
            local_month(col("lead_created_at"), bucket.context.config.timezone).alias("month_index"),
            col("channel"),
            col("qualified").fill_null(lit(false)),
            col("first_order_at").is_not_null().alias("converted"),
            elapsed(col("first_contact_at"), col("lead_created_at"), HOURS).alias("response_hours"),
            when(col("first_order_at").gt_eq(col("lead_created_at")))
                .then(elapsed(col("first_order_at"), col("lead_created_at"), DAYS))
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias("conversion_days"),
        ]))
}

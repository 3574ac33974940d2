//! Leads (kpis.md), by the local month of the lead's earliest `lead_created`, for segment
//! `all` and per lead channel `channel=<x>` (`unknown` when null): `leads_created`,
//! `lead_qualification_rate`, `lead_conversion_rate`, `lead_response_hours_mean/_median`,
//! `time_to_conversion_days_mean/_median`; and for segment `all` only, `site_visitors` and
//! `site_conversion_rate`.

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::aggregate::{DAYS, HOURS, exact_mean};

use crate::calendar::local_month;
use crate::context::Context;
use crate::kpi_monthly::{MetricValue, metric_rows};
use crate::revenue::orders;
use crate::sales::elapsed;

/// Per lead (a `customer_id` with a `lead_created`): its earliest `lead_created`
/// (`lead_created_at`, ties by `event_id`) and that event's `channel` (`unknown` when null).
/// Collected once per run.
pub fn lead_origins(context: &Context) -> PolarsResult<LazyFrame> {
    context.shared("lead_origins", || {
        Ok(context
            .events_of(EventType::LeadCreated)
            .select([col("customer_id"), col("occurred_at"), col("event_id"), col("channel")])
            .sort(["customer_id", "occurred_at", "event_id"], SortMultipleOptions::default())
            .group_by([col("customer_id")])
            .agg([col("occurred_at").first().alias("lead_created_at"), col("channel").first().alias("channel")])
            .with_column(col("channel").fill_null(lit("unknown"))))
    })
}

/// Per lead: month of creation, channel, whether qualified (at any time up to `as_of`) and
/// converted (a customer), response hours (first contact at or after creation) and days to
/// conversion (first order ever, when at or after creation).
fn lead_facts(context: &Context) -> PolarsResult<LazyFrame> {
    let qualified = context
        .events_of(EventType::LeadQualified)
        .group_by([col("customer_id")])
        .agg([lit(true).alias("qualified")])
        .select([col("customer_id"), col("qualified")]);
    let first_orders =
        orders(context)?.group_by([col("customer_id")]).agg([col("occurred_at").min().alias("first_order_at")]);
    let origins = lead_origins(context)?;
    let first_contacts = context
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
            local_month(col("lead_created_at"), context.config.timezone).alias("month_index"),
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

fn lead_aggregates() -> [Expr; 7] {
    [
        len().cast(DataType::Int64).alias("leads_created"),
        col("qualified").cast(DataType::Int64).sum().alias("qualified"),
        col("converted").cast(DataType::Int64).sum().alias("converted"),
        exact_mean(col("response_hours"), HOURS).alias("lead_response_hours_mean"),
        col("response_hours").median().alias("lead_response_hours_median"),
        exact_mean(col("conversion_days"), DAYS).alias("time_to_conversion_days_mean"),
        col("conversion_days").median().alias("time_to_conversion_days_median"),
    ]
}

fn lead_metric_rows(wide: &LazyFrame) -> Vec<LazyFrame> {
    let share = |numerator: &str| MetricValue::Ratio {
        numerator: col(numerator),
        denominator: col("leads_created"),
        scale: 1.0,
    };
    let plain = |name: &str| metric_rows(wide, name, MetricValue::Plain(col(name)));
    vec![
        plain("leads_created"),
        metric_rows(wide, "lead_qualification_rate", share("qualified")),
        metric_rows(wide, "lead_conversion_rate", share("converted")),
        plain("lead_response_hours_mean"),
        plain("lead_response_hours_median"),
        plain("time_to_conversion_days_mean"),
        plain("time_to_conversion_days_median"),
    ]
}

/// Distinct site visitors per local month and how many of them have a `lead_created` or an
/// `order_placed` in the same month.
fn site_visits(context: &Context) -> LazyFrame {
    let zone = context.config.timezone;
    let month = || local_month(col("occurred_at"), zone).alias("month_index");
    let visitors = context
        .events_of(EventType::SiteVisited)
        .select([col("customer_id"), month()])
        .unique(None, UniqueKeepStrategy::Any);
    let converting_types =
        Series::new("converting_types".into(), [EventType::LeadCreated.name(), EventType::OrderPlaced.name()]);
    let converted = context
        .events()
        .filter(col("event_type").is_in(lit(converting_types).implode(false), false))
        .select([col("customer_id"), month()])
        .unique(None, UniqueKeepStrategy::Any)
        .with_column(lit(true).alias("converted"));
    visitors
        .join(
            converted,
            [col("customer_id"), col("month_index")],
            [col("customer_id"), col("month_index")],
            JoinArgs::new(JoinType::Left),
        )
        .group_by([col("month_index")])
        .agg([
            len().cast(DataType::Int64).alias("site_visitors"),
            col("converted").fill_null(lit(false)).cast(DataType::Int64).sum().alias("site_converted"),
        ])
}

/// The lead rows of `kpi_monthly`: segment `all` for every reported month, `channel=<x>` for
/// the months in which channel x has at least one lead.
pub fn monthly(context: &Context) -> PolarsResult<LazyFrame> {
    // Read twice below (segment all and per channel), so collected once like the other
    // frames several plans share.
    let facts = context.shared("lead_facts", || lead_facts(context))?;
    let grid = context.calendar.month_grid();
    let all_months = facts.clone().group_by([col("month_index")]).agg(lead_aggregates());
    let all = grid
        .clone()
        .left_join(all_months, col("month_index"), col("month_index"))
        .left_join(site_visits(context), col("month_index"), col("month_index"))
        .with_columns([
            col("leads_created").fill_null(lit(0i64)),
            col("qualified").fill_null(lit(0i64)),
            col("converted").fill_null(lit(0i64)),
            col("site_visitors").fill_null(lit(0i64)),
            col("site_converted").fill_null(lit(0i64)),
            lit("all").alias("segment"),
        ]);
    let channels = facts
        .group_by([col("month_index"), col("channel")])
        .agg(lead_aggregates())
        .inner_join(grid, col("month_index"), col("month_index"))
        .with_column((lit("channel=") + col("channel")).alias("segment"));
    let mut rows = lead_metric_rows(&all);
    rows.extend(lead_metric_rows(&channels));
    rows.push(metric_rows(&all, "site_visitors", MetricValue::Plain(col("site_visitors"))));
    rows.push(metric_rows(
        &all,
        "site_conversion_rate",
        MetricValue::Ratio { numerator: col("site_converted"), denominator: col("site_visitors"), scale: 1.0 },
    ));
    concat(rows, UnionArgs::default())
}

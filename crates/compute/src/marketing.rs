//! Marketing, spend and adoption (kpis.md, "Revenue and marketing"): table `campaigns` and the
//! rows `cac`, `crm_roi`, `renewal_rate`, `email_list_size_start`, `email_list_growth_rate`,
//! `campaign_response_rate`, `crm_active_users`, `crm_adoption_rate` of `kpi_monthly`.

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::aggregate::{MONEY, exact_sum};

use crate::calendar::local_month;
use crate::context::{Context, is_type};
use crate::kpi_monthly::{MetricValue, all_months, mean_or_null, metric_rows, null_f64};
use crate::revenue::{first_order_days, orders};

fn month_of_event(context: &Context) -> Expr {
    local_month(col("occurred_at"), context.config.timezone).alias("month_index")
}

/// Spend per month by category: `acquisition_spend`, `retention_spend`, `crm_spend`.
fn spend_per_month(context: &Context) -> LazyFrame {
    let category = |name: &str| exact_sum(col("amount").filter(col("category").eq(lit(name))), MONEY);
    context.events_of(EventType::SpendRecorded).with_column(month_of_event(context)).group_by([col("month_index")]).agg(
        [
            category("acquisition").alias("acquisition_spend"),
            category("retention").alias("retention_spend"),
            category("crm").alias("crm_spend"),
        ],
    )
}

/// Email list changes per month: a customer's state starts unsubscribed; only events that
/// change it count (`subscribes`, `unsubscribes`).
fn email_changes_per_month(context: &Context) -> PolarsResult<LazyFrame> {
    let subscribed = is_type(EventType::EmailSubscribed);
    let previous = col("subscribed").shift(lit(1)).over([col("customer_id")])?.fill_null(lit(false));
    Ok(context
        .events()
        .filter(subscribed.clone().or(is_type(EventType::EmailUnsubscribed)))
        .select([col("customer_id"), col("occurred_at"), col("event_id"), subscribed.alias("subscribed")])
        .sort(["customer_id", "occurred_at", "event_id"], SortMultipleOptions::default())
        .with_column(previous.alias("was_subscribed"))
        .filter(col("subscribed").neq(col("was_subscribed")))
        .with_column(month_of_event(context))
        .group_by([col("month_index")])
        .agg([
            col("subscribed").cast(DataType::Int64).sum().alias("subscribes"),
            col("subscribed").not().cast(DataType::Int64).sum().alias("unsubscribes"),
        ]))
}

/// (campaign, customer) pairs by the month they were first sent, and how many of them have a
/// response at any time up to `as_of`.
fn campaign_pairs_per_month(context: &Context) -> LazyFrame {
    let responded = context
        .events_of(EventType::CampaignResponded)
        .select([col("campaign_id"), col("customer_id")])
        .unique(None, UniqueKeepStrategy::Any)
        .with_column(lit(true).alias("responded"));
    context
        .events_of(EventType::CampaignSent)
        .group_by([col("campaign_id"), col("customer_id")])
        .agg([col("occurred_at").min()])
        .join(
            responded,
            [col("campaign_id"), col("customer_id")],
            [col("campaign_id"), col("customer_id")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(month_of_event(context))
        .group_by([col("month_index")])
        .agg([
            len().cast(DataType::Int64).alias("pairs_sent"),
            col("responded").fill_null(lit(false)).cast(DataType::Int64).sum().alias("pairs_responded"),
        ])
}

/// The marketing rows of `kpi_monthly` (segment `all`).
pub fn monthly(context: &Context) -> PolarsResult<LazyFrame> {
    let order_rows = orders(context)?;
    let revenue =
        order_rows.clone().group_by([col("month_index")]).agg([exact_sum(col("amount"), MONEY).alias("revenue")]);
    let new_customers = first_order_days(order_rows)
        .select([crate::calendar::month_of_day(col("first_order_day")).alias("month_index")])
        .group_by([col("month_index")])
        .agg([len().cast(DataType::Int64).alias("new_customers")]);
    let renewals = context
        .events()
        .filter(is_type(EventType::SubscriptionRenewed).or(is_type(EventType::SubscriptionCancelled)))
        .with_column(month_of_event(context))
        .group_by([col("month_index")])
        .agg([
            is_type(EventType::SubscriptionRenewed).cast(DataType::Int64).sum().alias("renewed"),
            is_type(EventType::SubscriptionCancelled).cast(DataType::Int64).sum().alias("cancelled"),
        ]);
    let active_users = context
        .events_of(EventType::CrmUserActive)
        .with_column(month_of_event(context))
        .group_by([col("month_index")])
        .agg([col("owner_id").drop_nulls().n_unique().cast(DataType::Int64).alias("crm_active_users")]);
    let seats = context.config.crm_seats.map_or(null_f64(), |seats| lit(f64::from(seats)));
    let parts = [
        revenue,
        new_customers,
        spend_per_month(context),
        renewals,
        email_changes_per_month(context)?,
        campaign_pairs_per_month(context),
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

/// Table `campaigns`: every `campaign_id` seen in sent, responded or spend events, with `sent`
/// and `responded` (distinct customers), `response_rate`, `spend`, and the orders attributed to
/// it (each order goes to the campaign of the customer's latest `campaign_responded` at or
/// before it and at most `attribution_window_days` earlier, edge included), `roas`.
pub fn campaigns(context: &Context) -> PolarsResult<LazyFrame> {
    let distinct_customers = |event_type: EventType, name: &str| {
        context
            .events_of(event_type)
            .group_by([col("campaign_id")])
            .agg([col("customer_id").n_unique().cast(DataType::Int64).alias(name)])
    };
    let spend = context
        .events_of(EventType::SpendRecorded)
        .filter(col("campaign_id").is_not_null())
        .group_by([col("campaign_id")])
        .agg([exact_sum(col("amount"), MONEY).alias("spend")]);
    let window = i64::from(context.config.attribution_window_days) * 86_400_000_000;
    let responses = context.events_of(EventType::CampaignResponded).select([
        col("customer_id"),
        col("occurred_at").dt().timestamp(TimeUnit::Microseconds).alias("responded_at"),
        col("event_id").alias("response_id"),
        col("campaign_id"),
    ]);
    let attributed = context
        .events_of(EventType::OrderPlaced)
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
        .group_by([col("campaign_id")])
        .agg([
            len().cast(DataType::Int64).alias("attributed_orders"),
            exact_sum(col("amount"), MONEY).alias("attributed_revenue"),
        ]);
    let campaign_ids = concat(
        [
            context.events_of(EventType::CampaignSent).select([col("campaign_id")]),
            context.events_of(EventType::CampaignResponded).select([col("campaign_id")]),
            context.events_of(EventType::SpendRecorded).select([col("campaign_id")]),
        ],
        UnionArgs::default(),
    )?
    .filter(col("campaign_id").is_not_null())
    .unique(None, UniqueKeepStrategy::Any);
    Ok(campaign_ids
        .left_join(distinct_customers(EventType::CampaignSent, "sent"), col("campaign_id"), col("campaign_id"))
        .left_join(
            distinct_customers(EventType::CampaignResponded, "responded"),
            col("campaign_id"),
            col("campaign_id"),
        )
        .left_join(spend, col("campaign_id"), col("campaign_id"))
        .left_join(attributed, col("campaign_id"), col("campaign_id"))
        .with_columns([
            col("sent").fill_null(lit(0i64)),
            col("responded").fill_null(lit(0i64)),
            col("spend").fill_null(lit(0.0)),
            col("attributed_orders").fill_null(lit(0i64)),
            col("attributed_revenue").fill_null(lit(0.0)),
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

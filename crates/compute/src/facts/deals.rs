//! Per deal (kpis.md "Deals, pipeline and stage durations"): the deal's timeline, its summary
//! and its stage visits, from the deal's own events.
//!
//! A deal's events are ordered by `occurred_at`, ties by type (created, stage_changed,
//! won/lost), then `event_id`; its first `deal_won`/`deal_lost` closes it and later events are
//! ignored. The deal events are sorted once; visits come from a shift within each deal (no
//! per-deal loops).

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::expr::{
    DAYS, HOURS, cum_sum_in_run, elapsed, next_in_run, null_str, position_in_run, previous_in_run, runs_of,
};
use crate::facts::Bucket;

/// Name of the deal summaries fact.
pub const DEALS: &str = "deals";
/// Name of the stage visits fact.
pub const STAGE_VISITS: &str = "stage_visits";

/// `deal_created`.
pub const CREATED: &str = EventType::DealCreated.name();
/// `deal_stage_changed`.
pub const STAGE_CHANGED: &str = EventType::DealStageChanged.name();
/// `deal_won`.
pub const WON: &str = EventType::DealWon.name();
/// `deal_lost`.
pub const LOST: &str = EventType::DealLost.name();

/// The deal events that count: up to `as_of`, in the deal's order, up to and including the
/// first close. Columns: `deal_id`, `deal_run` (a number per deal, see [`runs_of`]),
/// `event_type`, `occurred_at`, `stage`, `amount`, `customer_id`, `owner_id`, `reason`,
/// `is_close`, `is_first_created`, `visit_stage` (the stage the event moves the deal to, null
/// when it moves nothing). Computed once per bucket.
fn deal_timeline(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    bucket.cached("deal_timeline", || deal_timeline_plan(bucket))
}

fn deal_timeline_plan(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    let deal_types = Series::new("deal_types".into(), [CREATED, STAGE_CHANGED, WON, LOST]);
    let type_rank = when(col("event_type").eq(lit(CREATED)))
        .then(lit(0i32))
        .when(col("event_type").eq(lit(STAGE_CHANGED)))
        .then(lit(1i32))
        .otherwise(lit(2i32));
    let is_close = col("event_type").eq(lit(WON)).or(col("event_type").eq(lit(LOST)));
    let is_created = col("event_type").eq(lit(CREATED));
    let sorted = bucket
        .events()
        .filter(col("event_type").is_in(lit(deal_types).implode(false), false).and(col("deal_id").is_not_null()))
        .select([
            col("deal_id"),
            col("event_type"),
            col("occurred_at"),
            col("event_id"),
            col("stage"),
            col("amount"),
            col("customer_id"),
            col("owner_id"),
            col("reason"),
            type_rank.alias("type_rank"),
        ])
        .sort(["deal_id", "occurred_at", "type_rank", "event_id"], SortMultipleOptions::default())
        .with_column(runs_of("deal_id").alias("deal_run"));
    let created_so_far = cum_sum_in_run(is_created.clone().cast(DataType::Int64), "deal_run");
    let closes_so_far = cum_sum_in_run(is_close.clone().cast(DataType::Int64), "deal_run");
    let with_counts = sorted.with_columns([
        is_close.clone().alias("is_close"),
        is_created.clone().and(created_so_far.eq(lit(1i64))).alias("is_first_created"),
        (closes_so_far - is_close.cast(DataType::Int64)).alias("closes_before"),
    ]);
    let moves_stage = col("is_first_created").or(col("event_type").eq(lit(STAGE_CHANGED)));
    Ok(with_counts
        // Up to and including the first close.
        .filter(col("closes_before").eq(lit(0i64)))
        .with_column(when(moves_stage).then(col("stage")).otherwise(null_str()).alias("visit_stage"))
        .select([
            col("deal_id"),
            col("deal_run"),
            col("event_type"),
            col("occurred_at"),
            col("stage"),
            col("amount"),
            col("customer_id"),
            col("owner_id"),
            col("reason"),
            col("is_close"),
            col("is_first_created"),
            col("visit_stage"),
        ]))
}

/// Per deal from its timeline: `deal_id`, `customer_id`, `owner_id`, `created_at`,
/// `closed_at`, `status` (`won`, `lost`, `open`), `stage` (of the last visit), `amount` (last
/// non-null up to the close), `cycle_days`, `lost_reason`. Computed once per bucket.
pub fn deal_summaries(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    bucket.cached(DEALS, || Ok(summaries_of(deal_timeline(bucket)?)))
}

fn summaries_of(timeline: LazyFrame) -> LazyFrame {
    let first_created = col("is_first_created");
    timeline
        .group_by([col("deal_id")])
        .agg([
            col("customer_id").filter(first_created.clone()).first().alias("customer_id"),
            col("owner_id").filter(first_created.clone()).first().alias("owner_id"),
            col("occurred_at").filter(first_created).first().alias("created_event_at"),
            col("occurred_at").first().alias("first_event_at"),
            col("occurred_at").filter(col("is_close")).first().alias("closed_at"),
            col("event_type").filter(col("is_close")).first().alias("close_type"),
            col("reason").filter(col("event_type").eq(lit(LOST))).first().alias("lost_reason"),
            col("amount").drop_nulls().last().alias("amount"),
            col("visit_stage").drop_nulls().last().alias("stage"),
        ])
        .with_column(col("created_event_at").fill_null(col("first_event_at")).alias("created_at"))
        .with_columns([
            when(col("closed_at").is_null())
                .then(lit("open"))
                .when(col("close_type").eq(lit(WON)))
                .then(lit("won"))
                .otherwise(lit("lost"))
                .alias("status"),
            elapsed(col("closed_at"), col("created_at"), DAYS).alias("cycle_days"),
        ])
}

/// Visits of a timeline: a visit starts with the created stage or a change to a stage other
/// than the current one; it ends at the next visit (`advanced`) or the close (`won`/`lost`),
/// else it is `open`. Columns: `deal_id`, `visit`, `stage`, `entered_at`, `exited_at`,
/// `hours`, `outcome`.
pub fn stage_visits(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    let timeline = deal_timeline(bucket)?;
    let summaries = deal_summaries(bucket)?.select([col("deal_id"), col("closed_at"), col("status")]);
    let previous_stage = previous_in_run(col("visit_stage"), "deal_run");
    let visit_number = position_in_run("deal_run");
    let next_entered = next_in_run(col("entered_at"), "deal_run");
    let closes = col("status").neq(lit("open"));
    Ok(timeline
        .filter(col("visit_stage").is_not_null())
        .with_column(previous_stage.alias("previous_stage"))
        .filter(col("previous_stage").is_null().or(col("visit_stage").neq(col("previous_stage"))))
        .select([
            col("deal_id"),
            col("deal_run"),
            col("visit_stage").alias("stage"),
            col("occurred_at").alias("entered_at"),
        ])
        .with_columns([visit_number.cast(DataType::Int64).alias("visit"), next_entered.alias("next_entered_at")])
        .left_join(summaries, col("deal_id"), col("deal_id"))
        .with_columns([
            when(col("next_entered_at").is_not_null())
                .then(col("next_entered_at"))
                .when(closes.clone())
                .then(col("closed_at"))
                .otherwise(lit(NULL).cast(crate::context::timestamp_type()))
                .alias("exited_at"),
            when(col("next_entered_at").is_not_null())
                .then(lit("advanced"))
                .when(closes)
                .then(col("status"))
                .otherwise(lit("open"))
                .alias("outcome"),
        ])
        .with_column(elapsed(col("exited_at"), col("entered_at"), HOURS).alias("hours"))
        .select([
            col("deal_id"),
            col("visit"),
            col("stage"),
            col("entered_at"),
            col("exited_at"),
            col("hours"),
            col("outcome"),
        ]))
}

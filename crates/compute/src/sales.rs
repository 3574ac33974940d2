//! Deals, pipeline and stage durations (kpis.md): tables `deals`, `deal_stage_visits`,
//! `stage_durations`, `pipeline_forecast`, `rep_performance`, `lost_reasons`, and the deal rows
//! of `kpi_monthly`.
//!
//! A deal's events are ordered by `occurred_at`, ties by type (created, stage_changed,
//! won/lost), then `event_id`; its first `deal_won`/`deal_lost` closes it and later events are
//! ignored. The deal events are sorted once; visits come from a shift within each deal (no
//! per-deal loops). Everything per deal is computed from that deal's own events; the monthly
//! and per-stage aggregates sit on top.

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::aggregate::{DAYS, HOURS, MONEY, exact_mean, exact_sum};

use crate::calendar::local_month;
use crate::context::Context;
use crate::kpi_monthly::{MetricValue, all_months, metric_rows, null_f64};
use crate::leads::lead_origins;

const CREATED: &str = EventType::DealCreated.name();
const STAGE_CHANGED: &str = EventType::DealStageChanged.name();
const WON: &str = EventType::DealWon.name();
const LOST: &str = EventType::DealLost.name();

/// A null of type str.
fn null_str() -> Expr {
    lit(NULL).cast(DataType::String)
}

/// `later - earlier` of two timestamp expressions in units of `micros_per_unit`.
pub fn elapsed(later: Expr, earlier: Expr, micros_per_unit: f64) -> Expr {
    (later.dt().timestamp(TimeUnit::Microseconds) - earlier.dt().timestamp(TimeUnit::Microseconds))
        .cast(DataType::Float64)
        / lit(micros_per_unit)
}

/// The deal events that count: up to `as_of`, in the deal's order, up to and including the
/// first close. Columns: `deal_id`, `event_type`, `occurred_at`, `stage`, `amount`,
/// `customer_id`, `owner_id`, `reason`, `is_close`, `is_first_created`, `visit_stage` (the
/// stage the event moves the deal to, null when it moves nothing). Collected once per run.
pub fn deal_timeline(context: &Context) -> PolarsResult<LazyFrame> {
    context.shared("deal_timeline", || deal_timeline_plan(context))
}

fn deal_timeline_plan(context: &Context) -> PolarsResult<LazyFrame> {
    let deal_types = Series::new("deal_types".into(), [CREATED, STAGE_CHANGED, WON, LOST]);
    let type_rank = when(col("event_type").eq(lit(CREATED)))
        .then(lit(0i32))
        .when(col("event_type").eq(lit(STAGE_CHANGED)))
        .then(lit(1i32))
        .otherwise(lit(2i32));
    let is_close = col("event_type").eq(lit(WON)).or(col("event_type").eq(lit(LOST)));
    let is_created = col("event_type").eq(lit(CREATED));
    let sorted = context
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
        .sort(["deal_id", "occurred_at", "type_rank", "event_id"], SortMultipleOptions::default());
    let position = col("occurred_at").cum_count(false).over([col("deal_id")])?;
    let created_so_far = is_created.clone().cast(DataType::Int64).cum_sum(false).over([col("deal_id")])?;
    let with_positions = sorted.with_columns([
        position.alias("position"),
        is_close.clone().alias("is_close"),
        is_created.clone().and(created_so_far.eq(lit(1i64))).alias("is_first_created"),
    ]);
    let first_close = when(col("is_close")).then(col("position")).otherwise(lit(NULL)).min().over([col("deal_id")])?;
    let moves_stage = col("is_first_created").or(col("event_type").eq(lit(STAGE_CHANGED)));
    Ok(with_positions
        .with_column(first_close.alias("close_position"))
        .filter(col("close_position").is_null().or(col("position").lt_eq(col("close_position"))))
        .with_column(when(moves_stage).then(col("stage")).otherwise(null_str()).alias("visit_stage"))
        .select([
            col("deal_id"),
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
/// non-null up to the close), `cycle_days`, `lost_reason`. Collected once per run.
fn deal_summaries(context: &Context) -> PolarsResult<LazyFrame> {
    context.shared("deal_summaries", || Ok(summaries_of(deal_timeline(context)?)))
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

/// Table `deals`: one row per deal, sorted by `deal_id`; `channel` is the channel of the
/// customer's earliest `lead_created` (`unknown` when none or null).
pub fn deals(context: &Context) -> PolarsResult<LazyFrame> {
    let summaries = deal_summaries(context)?;
    let channels = lead_origins(context)?.select([col("customer_id"), col("channel")]);
    Ok(summaries
        .left_join(channels, col("customer_id"), col("customer_id"))
        .select([
            col("deal_id"),
            col("customer_id"),
            col("owner_id"),
            col("channel").fill_null(lit("unknown")),
            col("created_at"),
            col("closed_at"),
            col("status"),
            col("stage"),
            col("amount"),
            col("cycle_days"),
            col("lost_reason"),
        ])
        .sort(["deal_id"], SortMultipleOptions::default()))
}

/// Visits of a timeline: a visit starts with the created stage or a change to a stage other
/// than the current one; it ends at the next visit (`advanced`) or the close (`won`/`lost`),
/// else it is `open`. Collected once per run.
fn stage_visits(context: &Context) -> PolarsResult<LazyFrame> {
    context.shared("stage_visits", || stage_visits_plan(context))
}

fn stage_visits_plan(context: &Context) -> PolarsResult<LazyFrame> {
    let timeline = deal_timeline(context)?;
    let summaries = deal_summaries(context)?.select([col("deal_id"), col("closed_at"), col("status")]);
    let previous_stage = col("visit_stage").shift(lit(1)).over([col("deal_id")])?;
    let visit_number = col("entered_at").cum_count(false).over([col("deal_id")])?;
    let next_entered = col("entered_at").shift(lit(-1)).over([col("deal_id")])?;
    let closes = col("status").neq(lit("open"));
    Ok(timeline
        .filter(col("visit_stage").is_not_null())
        .with_column(previous_stage.alias("previous_stage"))
        .filter(col("previous_stage").is_null().or(col("visit_stage").neq(col("previous_stage"))))
        .select([col("deal_id"), col("visit_stage").alias("stage"), col("occurred_at").alias("entered_at")])
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

/// Table `deal_stage_visits`: one row per visit, sorted by `deal_id`, `visit`.
pub fn deal_stage_visits(context: &Context) -> PolarsResult<LazyFrame> {
    Ok(stage_visits(context)?.sort(["deal_id", "visit"], SortMultipleOptions::default()))
}

fn count_of(outcome: &str) -> Expr {
    col("outcome").eq(lit(outcome)).cast(DataType::Int64).sum()
}

/// Table `stage_durations`: per stage, `visits` (open ones included), `completed_visits`,
/// mean, median and p90 hours over completed visits, counts per outcome, and
/// `conversion_rate = (advanced + won) / (advanced + won + lost)` (null when no visit ended).
pub fn stage_durations(context: &Context) -> PolarsResult<LazyFrame> {
    let visits = stage_visits(context)?;
    let moved_on = col("advanced") + col("won");
    let ended = col("advanced") + col("won") + col("lost");
    Ok(visits
        .group_by([col("stage")])
        .agg([
            len().cast(DataType::Int64).alias("visits"),
            col("outcome").neq(lit("open")).cast(DataType::Int64).sum().alias("completed_visits"),
            exact_mean(col("hours"), HOURS).alias("mean_hours"),
            col("hours").median().alias("median_hours"),
            col("hours").quantile(lit(0.9), QuantileMethod::Linear).alias("p90_hours"),
            count_of("advanced").alias("advanced"),
            count_of("won").alias("won"),
            count_of("lost").alias("lost"),
            count_of("open").alias("open"),
        ])
        .with_column(
            when(ended.clone().gt(lit(0)))
                .then(moved_on.cast(DataType::Float64) / ended.cast(DataType::Float64))
                .otherwise(null_f64())
                .alias("conversion_rate"),
        )
        .sort(["stage"], SortMultipleOptions::default()))
}

/// Table `pipeline_forecast`: per stage of the deals open at `as_of` (a null stage is a row of
/// its own), `open_deals`, `open_amount` (null amounts count 0), the configured
/// `win_probability` (null when not configured) and `weighted_amount`.
pub fn pipeline_forecast(context: &Context) -> PolarsResult<LazyFrame> {
    let probabilities = &context.config.pipeline.win_probability;
    let stages: Vec<&str> = probabilities.keys().map(String::as_str).collect();
    let values: Vec<f64> = probabilities.values().copied().collect();
    let configured = DataFrame::new(
        stages.len(),
        vec![Column::new("stage".into(), stages), Column::new("win_probability".into(), values)],
    )?
    .lazy();
    Ok(deal_summaries(context)?
        .filter(col("status").eq(lit("open")))
        .group_by([col("stage")])
        .agg([
            len().cast(DataType::Int64).alias("open_deals"),
            exact_sum(col("amount").fill_null(lit(0.0)), MONEY).alias("open_amount"),
        ])
        .left_join(configured, col("stage"), col("stage"))
        .with_column((col("open_amount") * col("win_probability")).alias("weighted_amount"))
        .select([col("stage"), col("open_deals"), col("open_amount"), col("win_probability"), col("weighted_amount")])
        .sort(["stage"], SortMultipleOptions::default()))
}

/// Closed deals with the local month of their close and the amounts the metrics sum.
fn closed_deals(context: &Context) -> PolarsResult<LazyFrame> {
    Ok(deal_summaries(context)?.filter(col("closed_at").is_not_null()).with_columns([
        local_month(col("closed_at"), context.config.timezone).alias("month_index"),
        col("status").eq(lit("won")).alias("is_won"),
    ]))
}

/// The deal metrics of a group of closed deals: counts, won and lost amounts (null as 0), mean
/// won amount over won deals with an amount, and the won deals' cycle mean and median.
fn close_aggregates() -> [Expr; 7] {
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

/// Table `rep_performance`: per month of the close and `owner_id` (a null owner is a row of its
/// own), where something closed: `deals_won`, `deals_lost`, `win_rate`, `won_amount`,
/// `avg_deal_size`, `sales_cycle_days_mean`.
pub fn rep_performance(context: &Context) -> PolarsResult<LazyFrame> {
    Ok(closed_deals(context)?
        .group_by([col("month_index"), col("owner_id")])
        .agg(close_aggregates())
        .inner_join(context.calendar.month_grid(), col("month_index"), col("month_index"))
        .with_column(
            (col("deals_won").cast(DataType::Float64) / (col("deals_won") + col("deals_lost")).cast(DataType::Float64))
                .alias("win_rate"),
        )
        .select([
            col("period"),
            col("owner_id"),
            col("deals_won"),
            col("deals_lost"),
            col("win_rate"),
            col("won_amount"),
            col("avg_deal_size"),
            col("sales_cycle_days_mean"),
        ])
        .sort(["period", "owner_id"], SortMultipleOptions::default()))
}

/// Table `lost_reasons`: per month of the close and reason (`unknown` when null), where a deal
/// was lost: `deals_lost`, `amount_lost` (null amounts count 0).
pub fn lost_reasons(context: &Context) -> PolarsResult<LazyFrame> {
    Ok(closed_deals(context)?
        .filter(col("is_won").not())
        .with_column(col("lost_reason").fill_null(lit("unknown")).alias("reason"))
        .group_by([col("month_index"), col("reason")])
        .agg([
            len().cast(DataType::Int64).alias("deals_lost"),
            exact_sum(col("amount").fill_null(lit(0.0)), MONEY).alias("amount_lost"),
        ])
        .inner_join(context.calendar.month_grid(), col("month_index"), col("month_index"))
        .select([col("period"), col("reason"), col("deals_lost"), col("amount_lost")])
        .sort(["period", "reason"], SortMultipleOptions::default()))
}

/// Deals created and closed per month with their amounts (null as 0), cumulated over the
/// month grid: the deals open at the end of each month are those created by then and not
/// closed by then (a deal never closes before it is created).
fn open_pipeline(context: &Context) -> PolarsResult<LazyFrame> {
    let zone = context.config.timezone;
    let summaries = deal_summaries(context)?;
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
pub fn monthly(context: &Context) -> PolarsResult<LazyFrame> {
    let per_month = closed_deals(context)?.group_by([col("month_index")]).agg(close_aggregates());
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
        [per_month, open_pipeline(context)?],
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

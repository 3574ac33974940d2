//! Service (kpis.md), by the local month of `ticket_opened`: table `tickets` and the service
//! rows of `kpi_monthly`.
//!
//! A ticket opens at its first `ticket_opened` (tickets without one are left out); it is
//! resolved when it has a `ticket_resolved` after its last `ticket_reopened` (events ordered by
//! `occurred_at`, then `event_id`). Every per-ticket value comes from that ticket's own events.

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::aggregate::{MINUTES, exact_mean};

use crate::business_time::{business_calendar, with_business_clock};
use crate::calendar::local_month;
use crate::context::{Context, is_type};
use crate::kpi_monthly::{MetricValue, all_months, metric_rows};
use crate::sales::elapsed;

fn ticket_events(context: &Context) -> LazyFrame {
    let types = Series::new(
        "ticket_types".into(),
        [
            EventType::TicketOpened.name(),
            EventType::TicketAgentReplied.name(),
            EventType::TicketCustomerReplied.name(),
            EventType::TicketResolved.name(),
            EventType::TicketReopened.name(),
        ],
    );
    context
        .events()
        .filter(col("event_type").is_in(lit(types).implode(false), false).and(col("ticket_id").is_not_null()))
        .select([
            col("ticket_id"),
            col("event_type"),
            col("occurred_at"),
            col("event_id"),
            col("customer_id"),
            col("channel"),
        ])
        .sort(["ticket_id", "occurred_at", "event_id"], SortMultipleOptions::default())
}

/// Table `tickets`, one row per opened ticket, sorted by `ticket_id`: opening, first agent
/// response at or after it, `resolved_at` (its last `ticket_resolved`), calendar and business
/// minutes (resolution times only for resolved tickets), agent replies, reopens, `resolved`
/// and `fcr` (resolved with exactly one agent reply and no reopen). Collected once per run.
pub fn tickets(context: &Context) -> PolarsResult<LazyFrame> {
    context.shared("tickets", || tickets_plan(context))
}

fn tickets_plan(context: &Context) -> PolarsResult<LazyFrame> {
    let events = ticket_events(context)
        .with_column(col("occurred_at").cum_count(false).over([col("ticket_id")])?.alias("position"));
    let opened = events.clone().filter(is_type(EventType::TicketOpened)).group_by([col("ticket_id")]).agg([
        col("occurred_at").first().alias("opened_at"),
        col("customer_id").first().alias("customer_id"),
        col("channel").first().alias("channel"),
    ]);
    let per_ticket = events.clone().group_by([col("ticket_id")]).agg([
        is_type(EventType::TicketAgentReplied).cast(DataType::Int64).sum().alias("agent_replies"),
        is_type(EventType::TicketReopened).cast(DataType::Int64).sum().alias("reopens"),
        col("position").filter(is_type(EventType::TicketResolved)).max().alias("last_resolved_position"),
        col("position").filter(is_type(EventType::TicketReopened)).max().alias("last_reopened_position"),
        col("occurred_at").filter(is_type(EventType::TicketResolved)).last().alias("last_resolved_at"),
    ]);
    let first_responses = events
        .filter(is_type(EventType::TicketAgentReplied))
        .select([col("ticket_id"), col("occurred_at")])
        .inner_join(opened.clone().select([col("ticket_id"), col("opened_at")]), col("ticket_id"), col("ticket_id"))
        .filter(col("occurred_at").gt_eq(col("opened_at")))
        .group_by([col("ticket_id")])
        .agg([col("occurred_at").min().alias("first_response_at")]);
    let resolved = col("last_resolved_position").is_not_null().and(
        col("last_reopened_position").is_null().or(col("last_resolved_position").gt(col("last_reopened_position"))),
    );
    let hours = &context.config.business_hours;
    let zone = hours.timezone.unwrap_or(context.config.timezone);
    let calendar = business_calendar(hours, zone, context.earliest_event, context.as_of)?;
    let joined = opened
        .left_join(per_ticket, col("ticket_id"), col("ticket_id"))
        .left_join(first_responses, col("ticket_id"), col("ticket_id"))
        .with_column(resolved.alias("resolved"))
        .with_column(col("last_resolved_at").alias("resolved_at"));
    let clocked =
        [("opened_at", "opened_clock"), ("first_response_at", "response_clock"), ("resolved_at", "resolved_clock")]
            .into_iter()
            .fold(joined, |frame, (instant, clock)| with_business_clock(frame, calendar.clone(), zone, instant, clock));
    let business_minutes = |clock: &str| (col(clock) - col("opened_clock")).cast(DataType::Float64) / lit(MINUTES);
    Ok(clocked
        .select([
            col("ticket_id"),
            col("customer_id"),
            col("channel"),
            col("opened_at"),
            col("first_response_at"),
            elapsed(col("first_response_at"), col("opened_at"), MINUTES).alias("first_response_minutes"),
            business_minutes("response_clock").alias("first_response_business_minutes"),
            col("resolved_at"),
            only_resolved(elapsed(col("resolved_at"), col("opened_at"), MINUTES)).alias("resolution_minutes"),
            only_resolved(business_minutes("resolved_clock")).alias("resolution_business_minutes"),
            col("agent_replies"),
            col("reopens"),
            col("resolved"),
            col("resolved").and(col("agent_replies").eq(lit(1i64))).and(col("reopens").eq(lit(0i64))).alias("fcr"),
        ])
        .sort(["ticket_id"], SortMultipleOptions::default()))
}

/// A per-ticket resolution value, null unless the ticket is resolved (reopened after its last
/// resolution, it has a `resolved_at` but no resolution time).
fn only_resolved(value: Expr) -> Expr {
    when(col("resolved")).then(value).otherwise(lit(NULL).cast(DataType::Float64))
}

/// The service rows of `kpi_monthly` (segment `all`), by the local month of the opening:
/// `tickets_opened`, first response and resolution means and medians (calendar) and means
/// (business), `agent_replies_per_ticket`, `reopen_rate`, `fcr_rate` (over resolved tickets).
pub fn monthly(context: &Context) -> PolarsResult<LazyFrame> {
    let resolved = col("resolved");
    let per_month = tickets(context)?
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

/// The survey rows of `kpi_monthly` (segment `all`), by the local month of the answer: `nps`
/// (`(promoters 9-10 - detractors 0-6) / responses * 100`), `nps_responses`, `csat` (share of
/// answers >= 4, times 100), `csat_mean`, `ces_mean`.
pub fn surveys_monthly(context: &Context) -> PolarsResult<LazyFrame> {
    let survey = |name: &str| col("survey").eq(lit(name));
    let score = col("score");
    let per_month = context
        .events_of(EventType::SurveyAnswered)
        .with_column(local_month(col("occurred_at"), context.config.timezone).alias("month_index"))
        .group_by([col("month_index")])
        .agg([
            survey("nps").cast(DataType::Int64).sum().alias("nps_responses"),
            (survey("nps").and(score.clone().gt_eq(lit(9i64))).cast(DataType::Int64)
                - survey("nps").and(score.clone().lt_eq(lit(6i64))).cast(DataType::Int64))
            .sum()
            .alias("nps_net"),
            survey("csat").cast(DataType::Int64).sum().alias("csat_responses"),
            survey("csat").and(score.clone().gt_eq(lit(4i64))).cast(DataType::Int64).sum().alias("csat_satisfied"),
            score.clone().filter(survey("csat")).cast(DataType::Float64).mean().alias("csat_mean"),
            score.filter(survey("ces")).cast(DataType::Float64).mean().alias("ces_mean"),
        ]);
    let wide = all_months(context, [per_month], &["nps_responses", "nps_net", "csat_responses", "csat_satisfied"]);
    let rows = vec![
        metric_rows(
            &wide,
            "nps",
            MetricValue::Ratio { numerator: col("nps_net"), denominator: col("nps_responses"), scale: 100.0 },
        ),
        metric_rows(&wide, "nps_responses", MetricValue::Plain(col("nps_responses"))),
        metric_rows(
            &wide,
            "csat",
            MetricValue::Ratio { numerator: col("csat_satisfied"), denominator: col("csat_responses"), scale: 100.0 },
        ),
        metric_rows(&wide, "csat_mean", MetricValue::Plain(col("csat_mean"))),
        metric_rows(&wide, "ces_mean", MetricValue::Plain(col("ces_mean"))),
    ];
    concat(rows, UnionArgs::default())
}

/// The number of tickets that have events but no `ticket_opened` (left out of `tickets`).
pub fn tickets_without_opening(context: &Context) -> PolarsResult<u64> {
    let counts = ticket_events(context)
        .group_by([col("ticket_id")])
        .agg([is_type(EventType::TicketOpened).any(true).alias("has_opening")])
        .filter(col("has_opening").not())
        .select([len().cast(DataType::UInt64).alias("tickets")])
        .collect()?;
    Ok(counts.column("tickets")?.u64()?.get(0).unwrap_or(0))
}

//! Per ticket (kpis.md "Service"): the `tickets` rows, from the ticket's own events.
//!
//! A ticket opens at its first `ticket_opened` (tickets without one are left out); it is
//! resolved when it has a `ticket_resolved` after its last `ticket_reopened` (events ordered by
//! `occurred_at`, then `event_id`).

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::context::is_type;
use crate::expr::{MINUTES, divided_by, elapsed, position_in_run, runs_of};
use crate::facts::Bucket;
use crate::time::business_time::{business_calendar, with_business_clock};

/// Name of the tickets fact.
pub const TICKETS: &str = "tickets";
/// Name of the fact listing tickets with events but no `ticket_opened`.
pub const UNOPENED_TICKETS: &str = "unopened_tickets";

/// The bucket's ticket events in each ticket's order, with `ticket_run` numbering the tickets
/// (see [`runs_of`]) and `position` (1, 2, … within the ticket). Computed once per bucket.
fn ticket_events(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    bucket.cached("ticket_events", || ticket_events_plan(bucket))
}

fn ticket_events_plan(bucket: &Bucket) -> PolarsResult<LazyFrame> {
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
    Ok(bucket
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
        .with_column(runs_of("ticket_id").alias("ticket_run"))
        .with_column(position_in_run("ticket_run").alias("position")))
}

/// The `tickets` rows, one per opened ticket: opening, first agent
/// response at or after it, `resolved_at` (its last `ticket_resolved`), calendar and business
/// minutes (resolution times only for resolved tickets), agent replies, reopens, `resolved`
/// and `fcr` (resolved with exactly one agent reply and no reopen).
pub fn tickets(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    let events = ticket_events(bucket)?;
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
    let context = bucket.context;
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
    let business_minutes =
        |clock: &str| divided_by((col(clock) - col("opened_clock")).cast(DataType::Float64), MINUTES);
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

/// Tickets that have events but no `ticket_opened` (left out of `tickets`): `ticket_id`.
pub fn unopened_tickets(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    Ok(ticket_events(bucket)?
        .group_by([col("ticket_id")])
        .agg([is_type(EventType::TicketOpened).any(true).alias("has_opening")])
        .filter(col("has_opening").not())
        .select([col("ticket_id")]))
}

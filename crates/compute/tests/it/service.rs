//! Tickets in calendar and business minutes, the service and survey rows of `kpi_monthly`:
//! hand-computed fixtures for every business-time edge (worked out in the comments), NPS and
//! CSAT boundaries, and a differential test against a slow day-by-day reference.

use std::collections::BTreeMap;

use crate::common::{kpi_monthly, service};
use chrono::{Datelike, Duration, NaiveDate, TimeZone as _};
use chrono_tz::Tz;
use crmkpi_schema::Config;
use polars::prelude::*;

use crate::common::{
    EventRow, Metrics, TestLake, assert_cells, assert_metrics_match, cells, day, epoch_day, event, instant,
    linear_quantile, local_date, mean, metrics_by_key, micros, number, report_months, text,
};

const SERVICE_METRICS: [&str; 10] = [
    "tickets_opened",
    "first_response_minutes_mean",
    "first_response_minutes_median",
    "first_response_business_minutes_mean",
    "resolution_minutes_mean",
    "resolution_minutes_median",
    "resolution_business_minutes_mean",
    "agent_replies_per_ticket",
    "reopen_rate",
    "fcr_rate",
];
const SURVEY_METRICS: [&str; 5] = ["nps", "nps_responses", "csat", "csat_mean", "ces_mean"];

fn berlin_config() -> Config {
    let text = r#"
timezone = "Europe/Berlin"
[business_hours]
timezone = "Europe/Berlin"
days = ["mon", "tue", "wed", "thu", "fri"]
start = "09:00"
end = "17:00"
holidays = ["2024-12-25"]
"#;
    Config::from_toml(text).expect("config")
}

fn ticket(id: &str, event_type: &str, at: &str, ticket_id: &str) -> String {
    let ticket = format!("\"{ticket_id}\"");
    if event_type == "ticket_opened" {
        event(id, event_type, at, &[("ticket_id", &ticket), ("customer_id", "\"c1\""), ("channel", "\"email\"")])
    } else {
        event(id, event_type, at, &[("ticket_id", &ticket)])
    }
}

fn fixture_lines() -> Vec<String> {
    vec![
        // t1: Friday 16:00 CET before the spring DST switch; reply Monday 10:00 CEST; resolved
        // Tuesday 12:00 CEST. Business: Fri 60 + Mon 60 = 120 to the reply; Fri 60 + Mon 480 +
        // Tue 180 = 720 to the resolution. Calendar: 15:00Z Fri to 08:00Z Mon = 65 h = 3900
        // min; to 10:00Z Tue = 91 h = 5460 min.
        ticket("a1", "ticket_opened", "2024-03-29T15:00:00Z", "t1"),
        ticket("a2", "ticket_agent_replied", "2024-04-01T08:00:00Z", "t1"),
        ticket("a3", "ticket_resolved", "2024-04-02T10:00:00Z", "t1"),
        // t2: opened and answered on a Saturday: 0 business minutes, 120 calendar; unresolved.
        ticket("b1", "ticket_opened", "2024-06-01T08:00:00Z", "t2"),
        ticket("b2", "ticket_agent_replied", "2024-06-01T10:00:00Z", "t2"),
        // t3: Tuesday 16:30 CET before the 25th (a holiday); reply 16:45 (15 min of both);
        // resolved Thursday 09:15: 30 + 0 + 15 = 45 business minutes; calendar 40 h 45 min =
        // 2445. One reply, no reopen: first-contact resolution.
        ticket("c1", "ticket_opened", "2024-12-24T15:30:00Z", "t3"),
        ticket("c2", "ticket_agent_replied", "2024-12-24T15:45:00Z", "t3"),
        ticket("c3", "ticket_resolved", "2024-12-26T08:15:00Z", "t3"),
        // t4: a reply before the opening (counted in agent_replies, not as first response),
        // resolved then reopened: not resolved (resolved_at 09:00, no resolution time). First
        // response 30 min after opening.
        ticket("d0", "ticket_agent_replied", "2024-01-08T07:00:00Z", "t4"),
        ticket("d1", "ticket_opened", "2024-01-08T08:00:00Z", "t4"),
        ticket("d2", "ticket_agent_replied", "2024-01-08T08:30:00Z", "t4"),
        ticket("d3", "ticket_resolved", "2024-01-08T09:00:00Z", "t4"),
        ticket("d4", "ticket_reopened", "2024-01-09T08:00:00Z", "t4"),
        // t5: reopened and resolved at one instant: ordered by event_id (r1 reopen, r2
        // resolve), so resolved; 180 minutes of both kinds.
        ticket("e1", "ticket_opened", "2024-01-10T08:00:00Z", "t5"),
        ticket("r2", "ticket_resolved", "2024-01-10T11:00:00Z", "t5"),
        ticket("r1", "ticket_reopened", "2024-01-10T11:00:00Z", "t5"),
        // t6: no ticket_opened: left out.
        ticket("f1", "ticket_agent_replied", "2024-01-10T08:00:00Z", "t6"),
        // t7: Friday 16:00 CEST before the autumn switch, resolved Monday 10:00 CET:
        // 60 + 60 = 120 business minutes; 14:00Z Fri to 09:00Z Mon = 67 h = 4020 calendar.
        ticket("g1", "ticket_opened", "2024-10-25T14:00:00Z", "t7"),
        ticket("g2", "ticket_resolved", "2024-10-28T09:00:00Z", "t7"),
        // t8: open for three months, Thursday 2024-02-01 09:00 CET to 2024-05-02 09:00 CEST:
        // weekdays Feb 21 + Mar 21 + Apr 22 + May 1st = 65 days * 480 = 31200 business
        // minutes; 91 days less the hour DST took = 130980 calendar minutes.
        ticket("h1", "ticket_opened", "2024-02-01T08:00:00Z", "t8"),
        ticket("h2", "ticket_resolved", "2024-05-02T07:00:00Z", "t8"),
    ]
}

#[test]
fn fixture_tickets_in_business_minutes() {
    let config = berlin_config();
    let lake = TestLake::from_lines(&fixture_lines(), &config);
    let context = lake.context(&config, Some(micros("2024-12-31T00:00:00Z")));
    let actual = cells(&service::tickets(&context).and_then(LazyFrame::collect).expect("plan runs"));
    let row = |id: &str,
               opened: &str,
               response: Option<(&str, f64, f64)>,
               resolution: Option<(&str, f64, f64)>,
               replies: &str,
               reopens: &str,
               resolved: bool,
               fcr: bool| {
        vec![
            text(id),
            text("c1"),
            text("email"),
            instant(opened),
            response.and_then(|(at, _, _)| instant(at)),
            response.and_then(|(_, minutes, _)| number(minutes)),
            response.and_then(|(_, _, business)| number(business)),
            resolution.and_then(|(at, _, _)| instant(at)),
            resolution.and_then(|(_, minutes, _)| number(minutes)),
            resolution.and_then(|(_, _, business)| number(business)),
            text(replies),
            text(reopens),
            text(&resolved.to_string()),
            text(&fcr.to_string()),
        ]
    };
    let expected = vec![
        row(
            "t1",
            "2024-03-29T15:00:00Z",
            Some(("2024-04-01T08:00:00Z", 3900.0, 120.0)),
            Some(("2024-04-02T10:00:00Z", 5460.0, 720.0)),
            "1",
            "0",
            true,
            true,
        ),
        row("t2", "2024-06-01T08:00:00Z", Some(("2024-06-01T10:00:00Z", 120.0, 0.0)), None, "1", "0", false, false),
        row(
            "t3",
            "2024-12-24T15:30:00Z",
            Some(("2024-12-24T15:45:00Z", 15.0, 15.0)),
            Some(("2024-12-26T08:15:00Z", 2445.0, 45.0)),
            "1",
            "0",
            true,
            true,
        ),
        {
            // Reopened after its resolution: `resolved_at` is its last ticket_resolved, and as
            // it is not resolved it has no resolution time.
            let mut t4 = row(
                "t4",
                "2024-01-08T08:00:00Z",
                Some(("2024-01-08T08:30:00Z", 30.0, 30.0)),
                None,
                "2",
                "1",
                false,
                false,
            );
            t4[7] = instant("2024-01-08T09:00:00Z");
            t4
        },
        row("t5", "2024-01-10T08:00:00Z", None, Some(("2024-01-10T11:00:00Z", 180.0, 180.0)), "0", "1", true, false),
        row("t7", "2024-10-25T14:00:00Z", None, Some(("2024-10-28T09:00:00Z", 4020.0, 120.0)), "0", "0", true, false),
        row(
            "t8",
            "2024-02-01T08:00:00Z",
            None,
            Some(("2024-05-02T07:00:00Z", 130980.0, 31200.0)),
            "0",
            "0",
            true,
            false,
        ),
    ];
    assert_cells(actual, expected, "tickets");
    // t6 has a reply but no ticket_opened: left out, and said so in the manifest's warnings.
    let warnings = crate::common::warnings(&context);
    let unopened = "1 tickets have events but no ticket_opened and are left out of the service KPIs".to_owned();
    assert!(warnings.contains(&unopened), "{warnings:?}");
}

#[test]
fn fixture_survey_boundaries() {
    let answer = |id: &str, at: &str, survey: &str, score: i64| {
        event(
            id,
            "survey_answered",
            at,
            &[("customer_id", "\"c1\""), ("survey", &format!("\"{survey}\"")), ("score", &score.to_string())],
        )
    };
    let lines = vec![
        // January: NPS 6 (detractor), 7, 8 (passives), 9, 10 (promoters): (2 - 1) / 5 * 100 = 20.
        answer("n6", "2024-01-05T10:00:00Z", "nps", 6),
        answer("n7", "2024-01-05T10:00:00Z", "nps", 7),
        answer("n8", "2024-01-05T10:00:00Z", "nps", 8),
        answer("n9", "2024-01-05T10:00:00Z", "nps", 9),
        answer("n10", "2024-01-05T10:00:00Z", "nps", 10),
        // CSAT 3 (not satisfied) and 4 (satisfied): 50; mean 3.5. CES 1 and 7: mean 4.
        answer("s3", "2024-01-06T10:00:00Z", "csat", 3),
        answer("s4", "2024-01-06T10:00:00Z", "csat", 4),
        answer("e1", "2024-01-07T10:00:00Z", "ces", 1),
        answer("e7", "2024-01-07T10:00:00Z", "ces", 7),
        // February: only a visit, no answers.
        event("v1", "site_visited", "2024-02-03T10:00:00Z", &[("customer_id", "\"c1\"")]),
    ];
    let config = Config::default();
    let lake = TestLake::from_lines(&lines, &config);
    let frame = kpi_monthly(&lake.context(&config, None)).and_then(LazyFrame::collect).expect("plan runs");
    let mut expected: Metrics = BTreeMap::new();
    let mut put = |period: &str, metric: &str, value: Option<f64>, parts: Option<(f64, f64)>| {
        expected.insert(
            (day(period), metric.to_owned(), "all".to_owned()),
            (value, parts.map(|p| p.0), parts.map(|p| p.1)),
        );
    };
    put("2024-01-01", "nps", Some(20.0), Some((1.0, 5.0)));
    put("2024-01-01", "nps_responses", Some(5.0), None);
    put("2024-01-01", "csat", Some(50.0), Some((1.0, 2.0)));
    put("2024-01-01", "csat_mean", Some(3.5), None);
    put("2024-01-01", "ces_mean", Some(4.0), None);
    put("2024-02-01", "nps", None, Some((0.0, 0.0)));
    put("2024-02-01", "nps_responses", Some(0.0), None);
    put("2024-02-01", "csat", None, Some((0.0, 0.0)));
    put("2024-02-01", "csat_mean", None, None);
    put("2024-02-01", "ces_mean", None, None);
    assert_metrics_match(&metrics_by_key(&frame, &SURVEY_METRICS), &expected, "surveys");
}

/// Slow reference of business time: walk every local date between the two instants and add
/// the overlap of `[a, b)` with that day's business interval.
fn reference_business_minutes(a: i64, b: i64, config: &Config) -> f64 {
    let hours = &config.business_hours;
    let zone = hours.timezone.unwrap_or(config.timezone);
    let local = |date: NaiveDate, time: chrono::NaiveTime| {
        let naive = date.and_time(time);
        (0..=180)
            .find_map(|minute| zone.from_local_datetime(&(naive + Duration::minutes(minute))).earliest())
            .expect("valid local time")
            .timestamp_micros()
    };
    let mut total = 0i64;
    let mut date = local_date(a, zone) - Duration::days(1);
    while date <= local_date(b, zone) + Duration::days(1) {
        let weekday_ok = hours.days.iter().any(|day| day.weekday() == date.weekday());
        if weekday_ok && !hours.holidays.contains(&date) {
            let (start, end) = (local(date, hours.start_time()), local(date, hours.end_time()));
            total += (b.min(end) - a.max(start)).max(0);
        }
        date += Duration::days(1);
    }
    total as f64 / 60e6
}

/// A ticket as the reference computes it.
struct ReferenceTicket {
    opened_at: i64,
    first_response: Option<i64>,
    /// The last `ticket_resolved`, whether or not a reopening followed.
    last_resolved: Option<i64>,
    /// The resolution: the last `ticket_resolved` when no `ticket_reopened` follows it.
    resolved_at: Option<i64>,
    agent_replies: i64,
    reopens: i64,
}

fn reference_tickets(rows: &[EventRow], as_of: i64) -> BTreeMap<String, ReferenceTicket> {
    let mut by_ticket: BTreeMap<String, Vec<&EventRow>> = BTreeMap::new();
    for row in rows.iter().filter(|row| row.occurred_at <= as_of && row.event_type.starts_with("ticket_")) {
        if let Some(ticket) = row.get("ticket_id") {
            by_ticket.entry(ticket.to_owned()).or_default().push(row);
        }
    }
    let mut tickets = BTreeMap::new();
    for (ticket_id, mut events) in by_ticket {
        events.sort_by(|left, right| (left.occurred_at, &left.event_id).cmp(&(right.occurred_at, &right.event_id)));
        let Some(opening) = events.iter().find(|event| event.event_type == "ticket_opened") else { continue };
        let opened_at = opening.occurred_at;
        let mut resolved_state = false;
        let mut last_resolved = None;
        let (mut agent_replies, mut reopens, mut first_response) = (0, 0, None);
        for event in &events {
            match event.event_type.as_str() {
                "ticket_agent_replied" => {
                    agent_replies += 1;
                    if event.occurred_at >= opened_at && first_response.is_none() {
                        first_response = Some(event.occurred_at);
                    }
                }
                "ticket_reopened" => {
                    reopens += 1;
                    resolved_state = false;
                }
                "ticket_resolved" => {
                    resolved_state = true;
                    last_resolved = Some(event.occurred_at);
                }
                _ => {}
            }
        }
        let resolved_at = last_resolved.filter(|_| resolved_state);
        tickets.insert(
            ticket_id,
            ReferenceTicket { opened_at, first_response, last_resolved, resolved_at, agent_replies, reopens },
        );
    }
    tickets
}

fn check_seed(seed: u64, config: &Config, as_of: i64) {
    let lake = TestLake::generated(seed, 5_000, config);
    let context = lake.context(config, Some(as_of));
    let rows = lake.rows();
    let tickets = reference_tickets(&rows, as_of);
    let label = format!("seed {seed}");
    let minutes = |from: i64, to: i64| (to - from) as f64 / 60e6;
    let opened_rows: BTreeMap<&String, &EventRow> = rows
        .iter()
        .filter(|row| row.event_type == "ticket_opened" && row.occurred_at <= as_of)
        .fold(BTreeMap::new(), |mut first: BTreeMap<&String, &EventRow>, row| {
            let ticket = row.text.get("ticket_id").expect("ticket");
            let entry = first.entry(ticket).or_insert(row);
            if (row.occurred_at, &row.event_id) < (entry.occurred_at, &entry.event_id) {
                *entry = row;
            }
            first
        });
    let expected: Vec<Vec<Option<String>>> = tickets
        .iter()
        .map(|(ticket_id, ticket)| {
            let opening = opened_rows[ticket_id];
            let resolved = ticket.resolved_at.is_some();
            vec![
                Some(ticket_id.clone()),
                opening.get("customer_id").map(str::to_owned),
                opening.get("channel").map(str::to_owned),
                Some(ticket.opened_at.to_string()),
                ticket.first_response.map(|at| at.to_string()),
                ticket.first_response.and_then(|at| number(minutes(ticket.opened_at, at))),
                ticket.first_response.and_then(|at| number(reference_business_minutes(ticket.opened_at, at, config))),
                ticket.last_resolved.map(|at| at.to_string()),
                ticket.resolved_at.and_then(|at| number(minutes(ticket.opened_at, at))),
                ticket.resolved_at.and_then(|at| number(reference_business_minutes(ticket.opened_at, at, config))),
                Some(ticket.agent_replies.to_string()),
                Some(ticket.reopens.to_string()),
                Some(resolved.to_string()),
                Some((resolved && ticket.agent_replies == 1 && ticket.reopens == 0).to_string()),
            ]
        })
        .collect();
    let actual = cells(&service::tickets(&context).and_then(LazyFrame::collect).expect("plan runs"));
    assert_cells(actual, expected, &format!("{label}: tickets"));

    let zone = config.timezone;
    let mut metrics: Metrics = BTreeMap::new();
    for month in report_months(&rows, as_of, zone) {
        let in_month: Vec<&ReferenceTicket> = tickets
            .values()
            .filter(|ticket| local_date(ticket.opened_at, zone).with_day(1).expect("first day") == month)
            .collect();
        let mut responses: Vec<f64> =
            in_month.iter().filter_map(|t| t.first_response.map(|at| minutes(t.opened_at, at))).collect();
        let business_responses: Vec<f64> = in_month
            .iter()
            .filter_map(|t| t.first_response.map(|at| reference_business_minutes(t.opened_at, at, config)))
            .collect();
        let resolved: Vec<&&ReferenceTicket> = in_month.iter().filter(|t| t.resolved_at.is_some()).collect();
        let mut resolutions: Vec<f64> =
            resolved.iter().filter_map(|t| t.resolved_at.map(|at| minutes(t.opened_at, at))).collect();
        let business_resolutions: Vec<f64> = resolved
            .iter()
            .filter_map(|t| t.resolved_at.map(|at| reference_business_minutes(t.opened_at, at, config)))
            .collect();
        responses.sort_by(f64::total_cmp);
        resolutions.sort_by(f64::total_cmp);
        let replies: Vec<f64> = resolved.iter().map(|t| t.agent_replies as f64).collect();
        let resolved_count = resolved.len() as f64;
        let reopened = resolved.iter().filter(|t| t.reopens > 0).count() as f64;
        let fcr = resolved.iter().filter(|t| t.agent_replies == 1 && t.reopens == 0).count() as f64;
        let share =
            |count: f64| ((resolved_count > 0.0).then(|| count / resolved_count), Some(count), Some(resolved_count));
        let period = epoch_day(month);
        let mut put = |metric: &str, value: (Option<f64>, Option<f64>, Option<f64>)| {
            metrics.insert((period, metric.to_owned(), "all".to_owned()), value);
        };
        put("tickets_opened", (Some(in_month.len() as f64), None, None));
        put("first_response_minutes_mean", (mean(&responses), None, None));
        put("first_response_minutes_median", (linear_quantile(&responses, 0.5), None, None));
        put("first_response_business_minutes_mean", (mean(&business_responses), None, None));
        put("resolution_minutes_mean", (mean(&resolutions), None, None));
        put("resolution_minutes_median", (linear_quantile(&resolutions, 0.5), None, None));
        put("resolution_business_minutes_mean", (mean(&business_resolutions), None, None));
        put("agent_replies_per_ticket", (mean(&replies), None, None));
        put("reopen_rate", share(reopened));
        put("fcr_rate", share(fcr));
    }
    let frame = kpi_monthly(&context).and_then(LazyFrame::collect).expect("plan runs");
    assert_metrics_match(&metrics_by_key(&frame, &SERVICE_METRICS), &metrics, &label);
}

#[test]
fn differential_against_day_by_day_reference() {
    let berlin = berlin_config();
    let new_york = Config::from_toml(
        "timezone = \"Europe/Berlin\"\n[business_hours]\ntimezone = \"America/New_York\"\ndays = [\"mon\", \"wed\", \"sat\"]\nstart = \"08:30\"\nend = \"20:15\"\nholidays = [\"2024-07-04\", \"2024-11-28\"]\n",
    )
    .expect("config");
    let defaults = Config { timezone: Tz::UTC, ..Config::default() };
    for (seed, config, as_of) in [
        (31u64, &berlin, "2025-03-31T23:59:59Z"),
        (32, &new_york, "2024-11-03T06:30:00Z"),
        (33, &defaults, "2025-06-30T12:00:00Z"),
        (34, &berlin, "2024-10-27T01:30:00Z"),
    ] {
        check_seed(seed, config, micros(as_of));
    }
}

#[test]
fn fixture_business_days_spanning_dst_switches() {
    // A night schedule, Sundays 01:00-05:00 in Berlin. On 2024-03-31 the clocks jump from
    // 02:00 to 03:00, so that business day lasts 3 hours (180 minutes); on 2024-10-27 they
    // fall back from 03:00 to 02:00, so it lasts 5 hours (300 minutes).
    let config = Config::from_toml(
        "[business_hours]\ntimezone = \"Europe/Berlin\"\ndays = [\"sun\"]\nstart = \"01:00\"\nend = \"05:00\"\n",
    )
    .expect("config");
    let lines = vec![
        // Saturday noon to Monday noon around each switch.
        ticket("s1", "ticket_opened", "2024-03-30T11:00:00Z", "spring"),
        ticket("s2", "ticket_resolved", "2024-04-01T10:00:00Z", "spring"),
        ticket("f1", "ticket_opened", "2024-10-26T10:00:00Z", "autumn"),
        ticket("f2", "ticket_resolved", "2024-10-28T11:00:00Z", "autumn"),
    ];
    let lake = TestLake::from_lines(&lines, &config);
    let frame = service::tickets(&lake.context(&config, None)).and_then(LazyFrame::collect).expect("plan runs");
    let business: Vec<Option<f64>> =
        frame.column("resolution_business_minutes").expect("column").f64().expect("f64").iter().collect();
    // Rows are sorted by ticket_id: autumn, spring.
    assert_eq!(business, vec![Some(300.0), Some(180.0)]);
}

//! Lead and site rows of `kpi_monthly`: a hand-computed fixture (a lead contacted before it
//! was created, a lead with no channel, a conversion before creation, site visitors converting
//! in the same month) and a differential test against a row-by-row reference.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::common::kpi_monthly;
use chrono::Datelike;
use chrono_tz::Tz;
use crmkpi_schema::Config;
use polars::prelude::*;

use crate::common::{
    EventRow, Metrics, TestLake, assert_metrics_match, day, epoch_day, event, linear_quantile, local_date, mean,
    metrics_by_key, micros, report_months,
};

const LEAD_METRICS: [&str; 9] = [
    "leads_created",
    "lead_qualification_rate",
    "lead_conversion_rate",
    "lead_response_hours_mean",
    "lead_response_hours_median",
    "time_to_conversion_days_mean",
    "time_to_conversion_days_median",
    "site_visitors",
    "site_conversion_rate",
];

fn customer(id: &str) -> (&'static str, String) {
    ("customer_id", format!("\"{id}\""))
}

fn line(id: &str, event_type: &str, at: &str, extra: &[(&'static str, String)]) -> String {
    let fields: Vec<(&str, &str)> = extra.iter().map(|(key, value)| (*key, value.as_str())).collect();
    event(id, event_type, at, &fields)
}

#[test]
fn fixture_lead_metrics() {
    let lines = vec![
        line("s1", "site_visited", "2023-12-15T00:00:00Z", &[customer("c1")]),
        line("s2", "site_visited", "2023-12-16T00:00:00Z", &[customer("v9")]),
        line("s3", "site_visited", "2024-01-02T00:00:00Z", &[customer("v9")]),
        line("s4", "site_visited", "2024-01-03T00:00:00Z", &[customer("c2")]),
        line("s5", "site_visited", "2024-01-04T00:00:00Z", &[customer("c2")]),
        // c1: qualified before it was created (counts), contacted before creation (ignored)
        // and 36 h after it; first order 21 days after creation.
        line("q1", "lead_qualified", "2023-12-10T00:00:00Z", &[customer("c1")]),
        line("k1", "lead_contacted", "2023-12-19T00:00:00Z", &[customer("c1")]),
        line("l1", "lead_created", "2023-12-20T00:00:00Z", &[customer("c1"), ("channel", "\"referral\"".to_owned())]),
        line("k2", "lead_contacted", "2023-12-21T12:00:00Z", &[customer("c1")]),
        line("l9", "lead_created", "2024-01-20T00:00:00Z", &[customer("c1"), ("channel", "\"email\"".to_owned())]),
        line(
            "o1",
            "order_placed",
            "2024-01-10T00:00:00Z",
            &[customer("c1"), ("order_id", "\"o1\"".to_owned()), ("amount", "10".to_owned())],
        ),
        // c2: no channel; ordered before its lead was created (converted, but no time to
        // conversion); contacted only before creation (no response time).
        line(
            "o2",
            "order_placed",
            "2024-01-01T00:00:00Z",
            &[customer("c2"), ("order_id", "\"o2\"".to_owned()), ("amount", "10".to_owned())],
        ),
        line("k3", "lead_contacted", "2024-01-04T00:00:00Z", &[customer("c2")]),
        line("l2", "lead_created", "2024-01-05T00:00:00Z", &[customer("c2")]),
        line("x1", "crm_user_active", "2024-02-10T00:00:00Z", &[("owner_id", "\"u1\"".to_owned())]),
    ];
    let config = Config::default();
    let lake = TestLake::from_lines(&lines, &config);
    let frame = kpi_monthly(&lake.context(&config, Some(micros("2024-02-15T00:00:00Z"))))
        .and_then(LazyFrame::collect)
        .expect("plan runs");
    let mut expected: Metrics = BTreeMap::new();
    let mut put = |period: &str, metric: &str, segment: &str, value: Option<f64>, parts: Option<(f64, f64)>| {
        expected.insert(
            (day(period), metric.to_owned(), segment.to_owned()),
            (value, parts.map(|p| p.0), parts.map(|p| p.1)),
        );
    };
    for segment in ["all", "channel=referral"] {
        put("2023-12-01", "leads_created", segment, Some(1.0), None);
        put("2023-12-01", "lead_qualification_rate", segment, Some(1.0), Some((1.0, 1.0)));
        put("2023-12-01", "lead_conversion_rate", segment, Some(1.0), Some((1.0, 1.0)));
        put("2023-12-01", "lead_response_hours_mean", segment, Some(36.0), None);
        put("2023-12-01", "lead_response_hours_median", segment, Some(36.0), None);
        put("2023-12-01", "time_to_conversion_days_mean", segment, Some(21.0), None);
        put("2023-12-01", "time_to_conversion_days_median", segment, Some(21.0), None);
    }
    for segment in ["all", "channel=unknown"] {
        put("2024-01-01", "leads_created", segment, Some(1.0), None);
        put("2024-01-01", "lead_qualification_rate", segment, Some(0.0), Some((0.0, 1.0)));
        put("2024-01-01", "lead_conversion_rate", segment, Some(1.0), Some((1.0, 1.0)));
        for metric in [
            "lead_response_hours_mean",
            "lead_response_hours_median",
            "time_to_conversion_days_mean",
            "time_to_conversion_days_median",
        ] {
            put("2024-01-01", metric, segment, None, None);
        }
    }
    put("2024-02-01", "leads_created", "all", Some(0.0), None);
    put("2024-02-01", "lead_qualification_rate", "all", None, Some((0.0, 0.0)));
    put("2024-02-01", "lead_conversion_rate", "all", None, Some((0.0, 0.0)));
    for metric in [
        "lead_response_hours_mean",
        "lead_response_hours_median",
        "time_to_conversion_days_mean",
        "time_to_conversion_days_median",
    ] {
        put("2024-02-01", metric, "all", None, None);
    }
    // December: visitors c1 (a lead that month) and v9; January: v9 and c2 (an order and a
    // lead that month); February: none.
    put("2023-12-01", "site_visitors", "all", Some(2.0), None);
    put("2023-12-01", "site_conversion_rate", "all", Some(0.5), Some((1.0, 2.0)));
    put("2024-01-01", "site_visitors", "all", Some(2.0), None);
    put("2024-01-01", "site_conversion_rate", "all", Some(0.5), Some((1.0, 2.0)));
    put("2024-02-01", "site_visitors", "all", Some(0.0), None);
    put("2024-02-01", "site_conversion_rate", "all", None, Some((0.0, 0.0)));
    assert_metrics_match(&metrics_by_key(&frame, &LEAD_METRICS), &expected, "fixture");
}

/// Row-by-row reference of the lead and site metrics.
fn reference(rows: &[EventRow], as_of: i64, zone: Tz) -> Metrics {
    let rows: Vec<&EventRow> = rows.iter().filter(|row| row.occurred_at <= as_of).collect();
    let month_of = |instant: i64| local_date(instant, zone).with_day(1).expect("first day");
    let of_type = |event_type: &'static str| rows.iter().copied().filter(move |row| row.event_type == event_type);
    let customer = |row: &EventRow| row.get("customer_id").expect("customer").to_owned();

    let mut origins: HashMap<String, (i64, String, String)> = HashMap::new();
    for row in of_type("lead_created") {
        let candidate = (row.occurred_at, row.event_id.clone(), row.get("channel").unwrap_or("unknown").to_owned());
        let entry = origins.entry(customer(row)).or_insert_with(|| candidate.clone());
        if (candidate.0, &candidate.1) < (entry.0, &entry.1) {
            *entry = candidate;
        }
    }
    let qualified: BTreeSet<String> = of_type("lead_qualified").map(customer).collect();
    let mut first_order: HashMap<String, i64> = HashMap::new();
    for row in of_type("order_placed") {
        let entry = first_order.entry(customer(row)).or_insert(row.occurred_at);
        *entry = (*entry).min(row.occurred_at);
    }
    let mut first_contact: HashMap<String, i64> = HashMap::new();
    for row in of_type("lead_contacted") {
        let who = customer(row);
        if origins.get(&who).is_some_and(|origin| row.occurred_at >= origin.0) {
            let entry = first_contact.entry(who).or_insert(row.occurred_at);
            *entry = (*entry).min(row.occurred_at);
        }
    }
    // (month, segment) -> (leads, qualified, converted, response hours, conversion days)
    type Group = (usize, usize, usize, Vec<f64>, Vec<f64>);
    let mut groups: BTreeMap<(chrono::NaiveDate, String), Group> = BTreeMap::new();
    for (who, (created, _, channel)) in &origins {
        for segment in ["all".to_owned(), format!("channel={channel}")] {
            let group = groups.entry((month_of(*created), segment)).or_default();
            group.0 += 1;
            group.1 += usize::from(qualified.contains(who));
            group.2 += usize::from(first_order.contains_key(who));
            if let Some(contact) = first_contact.get(who) {
                group.3.push((contact - created) as f64 / 3_600e6);
            }
            if let Some(order) = first_order.get(who).filter(|order| **order >= *created) {
                group.4.push((order - created) as f64 / 86_400e6);
            }
        }
    }
    let visitors: BTreeSet<(chrono::NaiveDate, String)> =
        of_type("site_visited").map(|row| (month_of(row.occurred_at), customer(row))).collect();
    let converting: BTreeSet<(chrono::NaiveDate, String)> = of_type("lead_created")
        .chain(of_type("order_placed"))
        .map(|row| (month_of(row.occurred_at), customer(row)))
        .collect();

    let all_rows: Vec<EventRow> = rows.iter().map(|row| (*row).clone()).collect();
    let mut expected = BTreeMap::new();
    let put_group = |month: chrono::NaiveDate, segment: &str, group: &Group, expected: &mut Metrics| {
        let period = epoch_day(month);
        let (leads, qualified, converted, response, conversion) = group;
        let mut response = response.clone();
        let mut conversion = conversion.clone();
        response.sort_by(f64::total_cmp);
        conversion.sort_by(f64::total_cmp);
        let leads = *leads as f64;
        let share = |count: usize| ((leads > 0.0).then(|| count as f64 / leads), Some(count as f64), Some(leads));
        let mut put = |metric: &str, value: (Option<f64>, Option<f64>, Option<f64>)| {
            expected.insert((period, metric.to_owned(), segment.to_owned()), value);
        };
        put("leads_created", (Some(leads), None, None));
        put("lead_qualification_rate", share(*qualified));
        put("lead_conversion_rate", share(*converted));
        put("lead_response_hours_mean", (mean(&response), None, None));
        put("lead_response_hours_median", (linear_quantile(&response, 0.5), None, None));
        put("time_to_conversion_days_mean", (mean(&conversion), None, None));
        put("time_to_conversion_days_median", (linear_quantile(&conversion, 0.5), None, None));
    };
    for month in report_months(&all_rows, as_of, zone) {
        let empty: Group = Default::default();
        put_group(month, "all", groups.get(&(month, "all".to_owned())).unwrap_or(&empty), &mut expected);
        let month_visitors: Vec<_> = visitors.iter().filter(|(seen, _)| *seen == month).collect();
        let converted = month_visitors.iter().filter(|visit| converting.contains(**visit)).count() as f64;
        let count = month_visitors.len() as f64;
        let period = epoch_day(month);
        expected.insert((period, "site_visitors".to_owned(), "all".to_owned()), (Some(count), None, None));
        expected.insert(
            (period, "site_conversion_rate".to_owned(), "all".to_owned()),
            ((count > 0.0).then(|| converted / count), Some(converted), Some(count)),
        );
    }
    for ((month, segment), group) in &groups {
        if segment != "all" {
            put_group(*month, segment, group, &mut expected);
        }
    }
    expected
}

#[test]
fn differential_against_row_by_row_reference() {
    let cases = [
        (21u64, Tz::UTC, "2025-03-31T23:59:59Z"),
        (22, chrono_tz::Europe::Berlin, "2024-10-27T01:30:00Z"),
        (23, chrono_tz::America::Los_Angeles, "2025-06-30T12:00:00Z"),
        (24, chrono_tz::Australia::Sydney, "2025-01-15T00:00:00Z"),
        (25, Tz::UTC, "2025-07-15T00:00:00Z"),
    ];
    for (seed, zone, as_of) in cases {
        let config = Config { timezone: zone, ..Config::default() };
        let lake = TestLake::generated(seed, 5_000, &config);
        let as_of = micros(as_of);
        let frame = kpi_monthly(&lake.context(&config, Some(as_of))).and_then(LazyFrame::collect).expect("plan runs");
        let expected = reference(&lake.rows(), as_of, zone);
        assert_metrics_match(&metrics_by_key(&frame, &LEAD_METRICS), &expected, &format!("seed {seed}"));
    }
}

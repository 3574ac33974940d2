//! Table `cohort_retention`: a hand-computed fixture per segment (a partial `as_of` month, a
//! customer without a lead) and a differential test against a row-by-row reference.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::common::cohort_retention;
use chrono::Datelike;
use chrono_tz::Tz;
use crmkpi_schema::Config;
use polars::prelude::*;

use crate::common::{EventRow, TestLake, assert_cells, cells, event, local_date, micros, report_months};

fn order(id: &str, customer: &str, at: &str) -> String {
    event(
        id,
        "order_placed",
        at,
        &[("customer_id", &format!("\"{customer}\"")), ("order_id", &format!("\"{id}\"")), ("amount", "10")],
    )
}

#[test]
fn fixture_cohorts_per_segment() {
    let lead = |id: &str, customer: &str, at: &str| {
        event(id, "lead_created", at, &[("customer_id", &format!("\"{customer}\"")), ("channel", "\"referral\"")])
    };
    let lines = vec![
        lead("l1", "c1", "2024-01-01T00:00:00Z"),
        lead("l3", "c3", "2024-02-01T00:00:00Z"),
        order("o1", "c1", "2024-01-05T00:00:00Z"),
        order("o2", "c1", "2024-03-03T00:00:00Z"),
        order("o3", "c2", "2024-01-20T00:00:00Z"),
        order("o4", "c3", "2024-02-10T00:00:00Z"),
        order("o5", "c3", "2024-02-12T00:00:00Z"),
    ];
    let config = Config::default();
    let lake = TestLake::from_lines(&lines, &config);
    let context = lake.context(&config, Some(micros("2024-03-15T00:00:00Z")));
    let actual = cells(&cohort_retention(&context).and_then(LazyFrame::collect).expect("plan runs"));
    let row = |segment: &str, cohort: &str, since: i64, size: i64, retained: i64, after: i64, complete: bool| {
        vec![
            Some(segment.to_owned()),
            Some(cohort.to_owned()),
            Some(since.to_string()),
            Some(size.to_string()),
            Some(retained.to_string()),
            Some(format!("{:?}", retained as f64 / size as f64)),
            Some(after.to_string()),
            Some(format!("{:?}", after as f64 / size as f64)),
            Some(complete.to_string()),
        ]
    };
    let expected = vec![
        // January cohort {c1, c2}: c1 comes back in March; March (as_of's month) is incomplete.
        row("all", "2024-01-01", 0, 2, 2, 2, true),
        row("all", "2024-01-01", 1, 2, 0, 1, true),
        row("all", "2024-01-01", 2, 2, 1, 1, false),
        // February cohort {c3}.
        row("all", "2024-02-01", 0, 1, 1, 1, true),
        row("all", "2024-02-01", 1, 1, 0, 0, false),
        row("channel=referral", "2024-01-01", 0, 1, 1, 1, true),
        row("channel=referral", "2024-01-01", 1, 1, 0, 1, true),
        row("channel=referral", "2024-01-01", 2, 1, 1, 1, false),
        row("channel=referral", "2024-02-01", 0, 1, 1, 1, true),
        row("channel=referral", "2024-02-01", 1, 1, 0, 0, false),
        // c2 has no lead: channel unknown.
        row("channel=unknown", "2024-01-01", 0, 1, 1, 1, true),
        row("channel=unknown", "2024-01-01", 1, 1, 0, 0, true),
        row("channel=unknown", "2024-01-01", 2, 1, 0, 0, false),
    ];
    assert_cells(actual, expected, "cohorts");
}

fn reference(rows: &[EventRow], as_of: i64, zone: Tz) -> Vec<Vec<Option<String>>> {
    let rows: Vec<&EventRow> = rows.iter().filter(|row| row.occurred_at <= as_of).collect();
    let month_of = |instant: i64| local_date(instant, zone).with_day(1).expect("first day");
    let mut order_months: HashMap<String, BTreeSet<chrono::NaiveDate>> = HashMap::new();
    for row in rows.iter().filter(|row| row.event_type == "order_placed") {
        order_months
            .entry(row.get("customer_id").expect("customer").to_owned())
            .or_default()
            .insert(month_of(row.occurred_at));
    }
    let mut earliest_lead: HashMap<String, (i64, String, String)> = HashMap::new();
    for row in rows.iter().filter(|row| row.event_type == "lead_created") {
        let candidate = (row.occurred_at, row.event_id.clone(), row.get("channel").unwrap_or("unknown").to_owned());
        let entry = earliest_lead
            .entry(row.get("customer_id").expect("customer").to_owned())
            .or_insert_with(|| candidate.clone());
        if (candidate.0, &candidate.1) < (entry.0, &entry.1) {
            *entry = candidate;
        }
    }
    let all_rows: Vec<EventRow> = rows.iter().map(|row| (**row).clone()).collect();
    let months = report_months(&all_rows, as_of, zone);
    let last_month = *months.last().expect("months");
    let mut members: BTreeMap<(String, chrono::NaiveDate), Vec<&BTreeSet<chrono::NaiveDate>>> = BTreeMap::new();
    for (customer, months_ordered) in &order_months {
        let cohort = *months_ordered.iter().next().expect("an order");
        let channel = earliest_lead.get(customer).map_or("unknown", |lead| lead.2.as_str());
        for segment in ["all".to_owned(), format!("channel={channel}")] {
            members.entry((segment, cohort)).or_default().push(months_ordered);
        }
    }
    let mut expected = Vec::new();
    for ((segment, cohort), customers) in &members {
        let size = customers.len() as f64;
        for (since, month) in months.iter().filter(|month| *month >= cohort).enumerate() {
            let retained = customers.iter().filter(|ordered| ordered.contains(month)).count();
            let after = customers.iter().filter(|ordered| ordered.iter().any(|seen| seen >= month)).count();
            expected.push(vec![
                Some(segment.clone()),
                Some(cohort.to_string()),
                Some(since.to_string()),
                Some(customers.len().to_string()),
                Some(retained.to_string()),
                Some(format!("{:?}", retained as f64 / size)),
                Some(after.to_string()),
                Some(format!("{:?}", after as f64 / size)),
                Some((*month < last_month).to_string()),
            ]);
        }
    }
    expected
}

#[test]
fn differential_against_row_by_row_reference() {
    for (seed, zone, as_of) in [
        (61u64, Tz::UTC, "2025-03-31T23:59:59Z"),
        (62, chrono_tz::Europe::Berlin, "2024-10-31T23:30:00Z"),
        (63, chrono_tz::America::Sao_Paulo, "2025-06-30T12:00:00Z"),
    ] {
        let config = Config { timezone: zone, ..Config::default() };
        let lake = TestLake::generated(seed, 5_000, &config);
        let as_of = micros(as_of);
        let actual = cells(
            &cohort_retention(&lake.context(&config, Some(as_of))).and_then(LazyFrame::collect).expect("plan runs"),
        );
        assert_cells(actual, reference(&lake.rows(), as_of, zone), &format!("seed {seed}"));
    }
}

/// Orders around 2009-11-01 in America/St_Johns, where clocks went back at 00:01 local time:
/// an order at 02:45Z falls on Oct 31, after one at 02:30:30Z on Nov 1. The cohorts still
/// follow the orders' local days, not their order in time.
pub fn clocks_back_orders() -> Vec<String> {
    vec![
        order("o1", "c1", "2009-11-01T02:30:30Z"),
        order("o2", "c1", "2009-11-01T02:45:00Z"),
        order("o3", "c1", "2009-11-01T02:00:00Z"),
        order("o4", "c1", "2009-12-15T12:00:00Z"),
        order("o5", "c2", "2009-11-01T03:00:00Z"),
    ]
}

#[test]
fn local_days_that_go_back_in_time() {
    let zone = chrono_tz::America::St_Johns;
    assert_eq!(local_date(micros("2009-11-01T02:30:30Z"), zone).day(), 1, "Nov 1, before the change");
    assert_eq!(local_date(micros("2009-11-01T02:45:00Z"), zone).day(), 31, "Oct 31, after it");
    let config = Config { timezone: zone, ..Config::default() };
    let lake = TestLake::from_lines(&clocks_back_orders(), &config);
    let as_of = micros("2009-12-31T23:59:59Z");
    let actual =
        cells(&cohort_retention(&lake.context(&config, Some(as_of))).and_then(LazyFrame::collect).expect("plan runs"));
    assert_cells(actual, reference(&lake.rows(), as_of, zone), "St_Johns");
}

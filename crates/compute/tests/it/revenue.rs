//! `revenue`, `orders`, `apv`, `new_customers` of `kpi_monthly`: a hand-computed fixture in a
//! DST zone, and a differential test against a row-by-row reference on generated dumps.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::common::kpi_monthly;
use chrono::{Datelike, TimeZone};
use chrono_tz::Europe::Berlin;
use chrono_tz::Tz;
use crmkpi_schema::Config;
use polars::prelude::LazyFrame;

use crate::common::{MetricRow, TestLake, close, day, metric_rows, micros};

const REVENUE_METRICS: [&str; 4] = ["revenue", "orders", "apv", "new_customers"];
const ALL_REVENUE_METRICS: [&str; 7] =
    ["revenue", "orders", "apv", "new_customers", "net_new_revenue", "upsell_rate", "cross_sell_rate"];

fn order(id: &str, customer: &str, at: &str, amount: f64) -> String {
    format!(
        r#"{{"event_id":"{id}","event_type":"order_placed","occurred_at":"{at}","customer_id":"{customer}","order_id":"o-{id}","amount":{amount}}}"#
    )
}

fn revenue_rows(rows: Vec<MetricRow>) -> Vec<MetricRow> {
    rows.into_iter().filter(|row| REVENUE_METRICS.contains(&row.metric.as_str())).collect()
}

#[test]
fn fixture_in_berlin_around_midnight_and_dst() {
    let config = Config { timezone: Berlin, ..Config::default() };
    let lines = vec![
        r#"{"event_id":"v1","event_type":"site_visited","occurred_at":"2024-01-10T12:00:00Z","customer_id":"x"}"#
            .to_owned(),
        // 2024-01-31T23:30Z is 00:30 on February 1st in Berlin: a February order.
        order("a1", "c1", "2024-01-31T23:30:00Z", 100.0),
        order("a2", "c1", "2024-02-10T10:00:00Z", 50.0),
        // 21:59:59Z on March 31st is 23:59:59 CEST: still March.
        order("b1", "c2", "2024-03-31T21:59:59Z", 30.0),
        // 22:00Z is midnight of April 1st CEST.
        order("b2", "c2", "2024-03-31T22:00:00Z", 20.0),
        // After as_of: ignored.
        order("b3", "c3", "2024-04-20T10:00:00Z", 999.0),
    ];
    let lake = TestLake::from_lines(&lines, &config);
    let as_of = micros("2024-04-15T12:00:00Z");
    let frame = kpi_monthly(&lake.context(&config, Some(as_of))).and_then(LazyFrame::collect).expect("plan runs");
    let rows = revenue_rows(metric_rows(&frame));

    let expect = |period: &str, metric: &str, value: Option<f64>| MetricRow {
        period: day(period),
        metric: metric.to_owned(),
        segment: "all".to_owned(),
        value,
        numerator: None,
        denominator: None,
    };
    let expected = vec![
        // January: only a visit; sums are 0, the mean is null.
        expect("2024-01-01", "apv", None),
        expect("2024-01-01", "new_customers", Some(0.0)),
        expect("2024-01-01", "orders", Some(0.0)),
        expect("2024-01-01", "revenue", Some(0.0)),
        // February: 100 + 50 from c1, who is new.
        expect("2024-02-01", "apv", Some(75.0)),
        expect("2024-02-01", "new_customers", Some(1.0)),
        expect("2024-02-01", "orders", Some(2.0)),
        expect("2024-02-01", "revenue", Some(150.0)),
        // March: c2's first order, 30.
        expect("2024-03-01", "apv", Some(30.0)),
        expect("2024-03-01", "new_customers", Some(1.0)),
        expect("2024-03-01", "orders", Some(1.0)),
        expect("2024-03-01", "revenue", Some(30.0)),
        // April (partial, up to as_of): c2's second order; c3's order is after as_of.
        expect("2024-04-01", "apv", Some(20.0)),
        expect("2024-04-01", "new_customers", Some(0.0)),
        expect("2024-04-01", "orders", Some(1.0)),
        expect("2024-04-01", "revenue", Some(20.0)),
    ];
    assert_eq!(rows, expected);
}

/// A kpi_monthly value: (value, numerator, denominator).
type Value = (Option<f64>, Option<f64>, Option<f64>);

/// Row-by-row reference: per local month, sum and count the orders up to `as_of`; a
/// customer's first order day decides the month it is new in and which orders are new
/// revenue; upsell and cross-sell rates count distinct customers.
fn reference(lake: &TestLake, zone: Tz, as_of: i64, new_revenue_window_days: u32) -> BTreeMap<(i32, String), Value> {
    let local = |micros: i64| {
        zone.from_utc_datetime(&chrono::DateTime::from_timestamp_micros(micros).expect("instant").naive_utc())
            .date_naive()
    };
    let events: Vec<_> = lake.rows().into_iter().filter(|row| row.occurred_at <= as_of).collect();
    let first_month = events.iter().map(|row| local(row.occurred_at)).min().expect("events");
    let last = local(as_of);
    let mut months = Vec::new();
    let mut month = first_month.with_day(1).expect("first day");
    while month <= last {
        months.push(month);
        month = month.checked_add_months(chrono::Months::new(1)).expect("next month");
    }
    let orders_placed: Vec<_> = events.iter().filter(|row| row.event_type == "order_placed").collect();
    let mut first_order: HashMap<String, chrono::NaiveDate> = HashMap::new();
    for row in &orders_placed {
        let date = local(row.occurred_at);
        let first = first_order.entry(row.get("customer_id").expect("customer").to_owned()).or_insert(date);
        *first = (*first).min(date);
    }
    let mut revenue: HashMap<chrono::NaiveDate, f64> = HashMap::new();
    let mut orders: HashMap<chrono::NaiveDate, u64> = HashMap::new();
    let mut net_new: HashMap<chrono::NaiveDate, f64> = HashMap::new();
    let mut ordering: HashMap<chrono::NaiveDate, BTreeSet<String>> = HashMap::new();
    let mut upsell: HashMap<chrono::NaiveDate, BTreeSet<String>> = HashMap::new();
    let mut cross_sell: HashMap<chrono::NaiveDate, BTreeSet<String>> = HashMap::new();
    for row in &orders_placed {
        let date = local(row.occurred_at);
        let month = date.with_day(1).expect("first day");
        let amount = row.amount.expect("orders have amounts");
        let customer = row.get("customer_id").expect("customer").to_owned();
        *revenue.entry(month).or_default() += amount;
        *orders.entry(month).or_default() += 1;
        if (date - first_order[&customer]).num_days() < i64::from(new_revenue_window_days) {
            *net_new.entry(month).or_default() += amount;
        }
        match row.get("kind") {
            Some("upsell") => {
                upsell.entry(month).or_default().insert(customer.clone());
            }
            Some("cross_sell") => {
                cross_sell.entry(month).or_default().insert(customer.clone());
            }
            _ => {}
        }
        ordering.entry(month).or_default().insert(customer);
    }
    let mut new_customers: HashMap<chrono::NaiveDate, u64> = HashMap::new();
    for date in first_order.values() {
        *new_customers.entry(date.with_day(1).expect("first day")).or_default() += 1;
    }
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let mut expected = BTreeMap::new();
    for month in months {
        let period = (month - epoch).num_days() as i32;
        let month_revenue = revenue.get(&month).copied().unwrap_or(0.0);
        let month_orders = orders.get(&month).copied().unwrap_or(0);
        let customers = ordering.get(&month).map_or(0, BTreeSet::len) as f64;
        let share = |sets: &HashMap<chrono::NaiveDate, BTreeSet<String>>| {
            let count = sets.get(&month).map_or(0, BTreeSet::len) as f64;
            ((customers > 0.0).then(|| count / customers), Some(count), Some(customers))
        };
        let mut put = |metric: &str, value: Value| {
            expected.insert((period, metric.to_owned()), value);
        };
        put("revenue", (Some(month_revenue), None, None));
        put("orders", (Some(month_orders as f64), None, None));
        put("apv", ((month_orders > 0).then(|| month_revenue / month_orders as f64), None, None));
        put("new_customers", (Some(new_customers.get(&month).copied().unwrap_or(0) as f64), None, None));
        put("net_new_revenue", (Some(net_new.get(&month).copied().unwrap_or(0.0)), None, None));
        put("upsell_rate", share(&upsell));
        put("cross_sell_rate", share(&cross_sell));
    }
    expected
}

#[test]
fn differential_against_row_by_row_reference() {
    for (seed, zone) in
        [(1u64, Tz::UTC), (2, Berlin), (3, chrono_tz::America::New_York), (4, Berlin), (5, chrono_tz::Asia::Kolkata)]
    {
        let window = 30 + seed as u32 * 20;
        let config = Config { timezone: zone, new_revenue_window_days: window, ..Config::default() };
        let lake = TestLake::generated(seed, 4_000, &config);
        // An as_of inside the data, so that later events are cut off and the last month is partial.
        let as_of = micros("2025-02-14T23:30:00Z") + seed as i64 * 3_600_000_000;
        let frame = kpi_monthly(&lake.context(&config, Some(as_of))).and_then(LazyFrame::collect).expect("plan runs");
        let actual: BTreeMap<(i32, String), Value> = metric_rows(&frame)
            .into_iter()
            .filter(|row| ALL_REVENUE_METRICS.contains(&row.metric.as_str()))
            .map(|row| {
                assert_eq!(row.segment, "all");
                ((row.period, row.metric), (row.value, row.numerator, row.denominator))
            })
            .collect();
        let expected = reference(&lake, zone, as_of, window);
        assert_eq!(actual.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "seed {seed}");
        for (key, value) in &expected {
            let found = actual[key];
            assert!(
                close(found.0, value.0) && close(found.1, value.1) && close(found.2, value.2),
                "seed {seed} {key:?}: plan {found:?}, reference {value:?}"
            );
        }
    }
}

#[test]
fn fixture_net_new_upsell_and_cross_sell() {
    let kind_order = |id: &str, customer: &str, at: &str, amount: f64, kind: Option<&str>| {
        let line = order(id, customer, at, amount);
        match kind {
            Some(kind) => format!("{},\"kind\":\"{kind}\"}}", line.trim_end_matches('}')),
            None => line,
        }
    };
    let lines = vec![
        kind_order("a1", "c1", "2024-01-01T10:00:00Z", 100.0, Some("new")),
        // 29 days after c1's first order day: still new revenue (window 30 days).
        kind_order("a2", "c1", "2024-01-30T10:00:00Z", 20.0, Some("cross_sell")),
        // 30 days after: no longer new revenue.
        kind_order("a3", "c1", "2024-01-31T10:00:00Z", 50.0, Some("upsell")),
        kind_order("b1", "c2", "2024-01-15T10:00:00Z", 10.0, None),
        r#"{"event_id":"v1","event_type":"site_visited","occurred_at":"2024-02-05T10:00:00Z","customer_id":"x"}"#
            .to_owned(),
    ];
    let config = Config { new_revenue_window_days: 30, ..Config::default() };
    let lake = TestLake::from_lines(&lines, &config);
    let frame = kpi_monthly(&lake.context(&config, None)).and_then(LazyFrame::collect).expect("plan runs");
    let rows: Vec<(i32, String, Value)> = metric_rows(&frame)
        .into_iter()
        .filter(|row| ["net_new_revenue", "upsell_rate", "cross_sell_rate"].contains(&row.metric.as_str()))
        .map(|row| (row.period, row.metric, (row.value, row.numerator, row.denominator)))
        .collect();
    let (january, february) = (day("2024-01-01"), day("2024-02-01"));
    assert_eq!(
        rows,
        vec![
            // January: 100 + 20 + 10 new; c1 of the two ordering customers upsold and cross-sold.
            (january, "cross_sell_rate".to_owned(), (Some(0.5), Some(1.0), Some(2.0))),
            (january, "net_new_revenue".to_owned(), (Some(130.0), None, None)),
            (january, "upsell_rate".to_owned(), (Some(0.5), Some(1.0), Some(2.0))),
            // February: no order.
            (february, "cross_sell_rate".to_owned(), (None, Some(0.0), Some(0.0))),
            (february, "net_new_revenue".to_owned(), (Some(0.0), None, None)),
            (february, "upsell_rate".to_owned(), (None, Some(0.0), Some(0.0))),
        ]
    );
}

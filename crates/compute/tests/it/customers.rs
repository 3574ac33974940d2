//! Churn, retention, reactivation, engagement and retention cost rows of `kpi_monthly`: a
//! hand-computed fixture (a customer who churns and reactivates, a partial `as_of` month, a
//! month before anyone is alive) and a differential test against a day-by-day reference.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::common::kpi_monthly;
use chrono::{Datelike, Duration, NaiveDate};
use chrono_tz::Tz;
use crmkpi_schema::Config;
use polars::prelude::*;

use crate::common::{
    EventRow, Metrics, TestLake, assert_metrics_match, day, epoch_day, event, local_date, metrics_by_key, micros,
    report_months,
};

const CHURN_METRICS: [&str; 8] = [
    "customers_start",
    "customers_end",
    "churned_customers",
    "reactivated_customers",
    "churn_rate",
    "retention_rate",
    "retention_cost_per_customer",
    "engagement_rate",
];

#[test]
fn fixture_churn_and_reactivation() {
    let order = |id: &str, customer: &str, at: &str| {
        event(
            id,
            "order_placed",
            at,
            &[("customer_id", &format!("\"{customer}\"")), ("order_id", &format!("\"{id}\"")), ("amount", "10")],
        )
    };
    let touch = |id: &str, ty: &str, customer: &str, at: &str| {
        event(id, ty, at, &[("customer_id", &format!("\"{customer}\""))])
    };
    let lines = vec![
        order("o1", "c1", "2024-01-10T12:00:00Z"),
        order("o2", "c1", "2024-03-05T12:00:00Z"),
        order("o3", "c2", "2024-01-31T12:00:00Z"),
        order("o4", "c2", "2024-02-10T12:00:00Z"),
        order("o5", "c3", "2024-02-29T12:00:00Z"),
        touch("t1", "site_visited", "c1", "2024-02-15T12:00:00Z"),
        touch("t2", "email_subscribed", "c2", "2024-03-15T12:00:00Z"),
        touch("t3", "lead_created", "c3", "2024-03-15T12:00:00Z"),
        event(
            "t4",
            "survey_answered",
            "2024-04-02T12:00:00Z",
            &[("customer_id", "\"c1\""), ("survey", "\"nps\""), ("score", "9")],
        ),
        event("s1", "spend_recorded", "2024-02-20T12:00:00Z", &[("category", "\"retention\""), ("amount", "100")]),
    ];
    let config = Config { churn_after_days: 30, ..Config::default() };
    let lake = TestLake::from_lines(&lines, &config);
    let frame = kpi_monthly(&lake.context(&config, Some(micros("2024-04-10T18:00:00Z"))))
        .and_then(LazyFrame::collect)
        .expect("plan runs");
    let mut expected: Metrics = BTreeMap::new();
    let mut month = |period: &str,
                     start: f64,
                     end: f64,
                     churned: f64,
                     retained: f64,
                     reactivated: f64,
                     engaged: f64,
                     cost: Option<f64>| {
        let mut put = |metric: &str, value: Option<f64>, parts: Option<(f64, f64)>| {
            expected.insert(
                (day(period), metric.to_owned(), "all".to_owned()),
                (value, parts.map(|p| p.0), parts.map(|p| p.1)),
            );
        };
        let share = |count: f64| (start > 0.0).then(|| count / start);
        put("customers_start", Some(start), None);
        put("customers_end", Some(end), None);
        put("churned_customers", Some(churned), None);
        put("reactivated_customers", Some(reactivated), None);
        put("churn_rate", share(churned), Some((churned, start)));
        put("retention_rate", share(retained), Some((retained, start)));
        put("retention_cost_per_customer", cost, None);
        put("engagement_rate", share(engaged), Some((engaged, start)));
    };
    // January: nobody alive on Dec 31st; c1 and c2 (both new) alive on Jan 31st.
    month("2024-01-01", 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, None);
    // February: S = {c1, c2} (orders in [Jan 2, Jan 31]); E = {c2, c3} (orders in (Jan 30,
    // Feb 29]); c1 churned, c2 retained, c3 is new. c1 visited the site: engaged 1 of 2.
    // Retention spend 100 over 2 customers at the start.
    month("2024-02-01", 2.0, 2.0, 1.0, 1.0, 0.0, 1.0, Some(50.0));
    // March: S = {c2, c3}; E = {c1}: both churned, c1 reactivated. c2 subscribed (engaged);
    // c3's lead_created is no engagement.
    month("2024-03-01", 2.0, 1.0, 2.0, 0.0, 1.0, 1.0, Some(0.0));
    // April, partial: L = April 10th, so E looks at (Mar 11, Apr 10]: c1's March 5th order is
    // too old: S = {c1}, E = {}. c1 answered a survey: engaged.
    month("2024-04-01", 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, Some(0.0));
    assert_metrics_match(&metrics_by_key(&frame, &CHURN_METRICS), &expected, "fixture");
}

/// The local order days of each customer.
fn order_days_by_customer<'a>(
    rows: impl Iterator<Item = &'a EventRow>,
    zone: Tz,
) -> HashMap<String, BTreeSet<NaiveDate>> {
    let mut order_days: HashMap<String, BTreeSet<NaiveDate>> = HashMap::new();
    for row in rows.filter(|row| row.event_type == "order_placed") {
        order_days
            .entry(row.get("customer_id").expect("customer").to_owned())
            .or_default()
            .insert(local_date(row.occurred_at, zone));
    }
    order_days
}

/// Day-by-day reference of the churn metrics.
fn reference(rows: &[EventRow], as_of: i64, config: &Config) -> Metrics {
    let zone = config.timezone;
    let rows: Vec<&EventRow> = rows.iter().filter(|row| row.occurred_at <= as_of).collect();
    let churn = i64::from(config.churn_after_days);
    let order_days = order_days_by_customer(rows.iter().copied(), zone);
    let alive = |customer: &str, on: NaiveDate| {
        order_days[customer].iter().any(|day| *day > on - Duration::days(churn) && *day <= on)
    };
    let engaging = ["campaign_responded", "site_visited", "survey_answered", "email_subscribed"];
    let as_of_day = local_date(as_of, zone);
    let all_rows: Vec<EventRow> = rows.iter().map(|row| (**row).clone()).collect();
    let mut metrics: Metrics = BTreeMap::new();
    for month in report_months(&all_rows, as_of, zone) {
        let last = (month.checked_add_months(chrono::Months::new(1)).expect("next") - Duration::days(1)).min(as_of_day);
        let start: BTreeSet<&str> =
            order_days.keys().map(String::as_str).filter(|c| alive(c, month - Duration::days(1))).collect();
        let end: BTreeSet<&str> = order_days.keys().map(String::as_str).filter(|c| alive(c, last)).collect();
        let new: BTreeSet<&str> = order_days
            .iter()
            .filter(|(_, days)| days.iter().next().is_some_and(|first| first.with_day(1) == Some(month)))
            .map(|(customer, _)| customer.as_str())
            .collect();
        let engaged: BTreeSet<&str> = rows
            .iter()
            .filter(|row| {
                engaging.contains(&row.event_type.as_str())
                    && local_date(row.occurred_at, zone).with_day(1) == Some(month)
            })
            .filter_map(|row| row.get("customer_id"))
            .collect();
        let retention_spend: f64 = rows
            .iter()
            .filter(|row| row.event_type == "spend_recorded" && row.get("category") == Some("retention"))
            .filter(|row| local_date(row.occurred_at, zone).with_day(1) == Some(month))
            .filter_map(|row| row.amount)
            .sum();
        let s = start.len() as f64;
        let churned = start.difference(&end).count() as f64;
        let retained = start.intersection(&end).count() as f64;
        let reactivated = end.iter().filter(|c| !start.contains(*c) && !new.contains(*c)).count() as f64;
        let engaged_start = start.iter().filter(|c| engaged.contains(*c)).count() as f64;
        let share = |count: f64| ((s > 0.0).then(|| count / s), Some(count), Some(s));
        let period = epoch_day(month);
        let mut put = |metric: &str, value: (Option<f64>, Option<f64>, Option<f64>)| {
            metrics.insert((period, metric.to_owned(), "all".to_owned()), value);
        };
        put("customers_start", (Some(s), None, None));
        put("customers_end", (Some(end.len() as f64), None, None));
        put("churned_customers", (Some(churned), None, None));
        put("reactivated_customers", (Some(reactivated), None, None));
        put("churn_rate", share(churned));
        put("retention_rate", share(retained));
        put("retention_cost_per_customer", ((s > 0.0).then(|| retention_spend / s), None, None));
        put("engagement_rate", share(engaged_start));
    }
    metrics
}

#[test]
fn differential_against_day_by_day_reference() {
    for (seed, zone, churn, as_of) in [
        (51u64, Tz::UTC, 90, "2025-03-31T23:59:59Z"),
        (52, chrono_tz::Europe::Berlin, 45, "2024-10-27T01:30:00Z"),
        (53, chrono_tz::America::New_York, 120, "2025-06-30T12:00:00Z"),
        (54, chrono_tz::Pacific::Auckland, 30, "2025-01-15T00:00:00Z"),
    ] {
        let config = Config { timezone: zone, churn_after_days: churn, ..Config::default() };
        let lake = TestLake::generated(seed, 5_000, &config);
        let as_of = micros(as_of);
        let frame = kpi_monthly(&lake.context(&config, Some(as_of))).and_then(LazyFrame::collect).expect("plan runs");
        let expected = reference(&lake.rows(), as_of, &config);
        assert_metrics_match(&metrics_by_key(&frame, &CHURN_METRICS), &expected, &format!("seed {seed}"));
    }
}

#[test]
fn fixture_clv_formula() {
    let order = |id: &str, customer: &str, at: &str, amount: &str| {
        event(
            id,
            "order_placed",
            at,
            &[("customer_id", &format!("\"{customer}\"")), ("order_id", &format!("\"{id}\"")), ("amount", amount)],
        )
    };
    let lines = vec![
        order("o1", "c1", "2023-01-15T12:00:00Z", "100"),
        order("o2", "c2", "2023-01-20T12:00:00Z", "20"),
        order("o3", "c1", "2023-06-10T12:00:00Z", "50"),
        order("o4", "c1", "2024-01-05T12:00:00Z", "30"),
    ];
    let config = Config { churn_after_days: 30, ..Config::default() };
    let lake = TestLake::from_lines(&lines, &config);
    let frame = kpi_monthly(&lake.context(&config, Some(micros("2024-01-31T12:00:00Z"))))
        .and_then(LazyFrame::collect)
        .expect("plan runs");
    let values: BTreeMap<i32, Option<f64>> = metrics_by_key(&frame, &["clv_formula"])
        .into_iter()
        .map(|((period, _, _), (value, numerator, denominator))| {
            assert_eq!((numerator, denominator), (None, None));
            (period, value)
        })
        .collect();
    assert_eq!(values.len(), 13);
    // Only January 2024 has a 12-month window (Feb 2023 - Jan 2024) whose start has customers
    // alive: S12 = alive on 2023-01-31 = {c1, c2}, E12 = alive on 2024-01-31 = {c1}: annual
    // churn 1/2, lifespan 2 years. W holds o3 and o4: apv 40, 2 orders by 1 customer.
    // 40 * 2 * 2 = 160. Every earlier window starts before anyone was alive: null.
    for (period, value) in &values {
        let expected = (*period == day("2024-01-01")).then_some(160.0);
        assert_eq!(*value, expected, "{period}");
    }
}

/// Day-by-day reference of `clv_formula`.
fn reference_clv(rows: &[EventRow], as_of: i64, config: &Config) -> BTreeMap<i32, Option<f64>> {
    let zone = config.timezone;
    let all: Vec<EventRow> = rows.iter().filter(|row| row.occurred_at <= as_of).cloned().collect();
    let orders: Vec<&EventRow> = all.iter().filter(|row| row.event_type == "order_placed").collect();
    let churn = i64::from(config.churn_after_days);
    let order_days = order_days_by_customer(orders.iter().copied(), zone);
    let alive = |customer: &str, on: NaiveDate| {
        order_days[customer].iter().any(|day| *day > on - Duration::days(churn) && *day <= on)
    };
    let as_of_day = local_date(as_of, zone);
    let mut values = BTreeMap::new();
    for month in report_months(&all, as_of, zone) {
        let window_start = month.checked_sub_months(chrono::Months::new(11)).expect("window start");
        let last = (month.checked_add_months(chrono::Months::new(1)).expect("next") - Duration::days(1)).min(as_of_day);
        let in_window: Vec<&&EventRow> =
            orders.iter().filter(|row| (window_start..=last).contains(&local_date(row.occurred_at, zone))).collect();
        let revenue: f64 = in_window.iter().filter_map(|row| row.amount).sum();
        let count = in_window.len() as f64;
        let customers = in_window.iter().filter_map(|row| row.get("customer_id")).collect::<BTreeSet<_>>().len() as f64;
        let before: BTreeSet<&str> =
            order_days.keys().map(String::as_str).filter(|c| alive(c, window_start - Duration::days(1))).collect();
        let lost = before.iter().filter(|c| !alive(c, last)).count() as f64;
        let apv = (count > 0.0).then(|| revenue / count);
        let frequency = (customers > 0.0).then(|| count / customers);
        let annual_churn = (!before.is_empty()).then(|| lost / before.len() as f64);
        let lifespan = annual_churn.filter(|churn| *churn > 0.0).map(|churn| 1.0 / churn);
        let value = match (apv, frequency, lifespan) {
            (Some(apv), Some(frequency), Some(lifespan)) => Some(apv * frequency * lifespan),
            _ => None,
        };
        values.insert(epoch_day(month), value);
    }
    values
}

#[test]
fn differential_clv_formula() {
    for (seed, zone, churn) in
        [(71u64, Tz::UTC, 90), (72, chrono_tz::Europe::Berlin, 30), (73, chrono_tz::America::Denver, 60)]
    {
        let config = Config { timezone: zone, churn_after_days: churn, ..Config::default() };
        let lake = TestLake::generated(seed, 6_000, &config);
        let as_of = micros("2025-06-30T23:00:00Z");
        let frame = kpi_monthly(&lake.context(&config, Some(as_of))).and_then(LazyFrame::collect).expect("plan runs");
        let actual: BTreeMap<i32, Option<f64>> = metrics_by_key(&frame, &["clv_formula"])
            .into_iter()
            .map(|((period, _, _), (value, _, _))| (period, value))
            .collect();
        let expected = reference_clv(&lake.rows(), as_of, &config);
        assert!(expected.values().any(Option::is_some), "seed {seed}: some month has a value");
        assert_eq!(actual.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
        for (period, value) in &expected {
            assert!(
                crate::common::close(actual[period], *value),
                "seed {seed} {period}: plan {:?}, reference {value:?}",
                actual[period]
            );
        }
    }
}

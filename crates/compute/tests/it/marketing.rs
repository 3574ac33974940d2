//! Campaigns and the marketing rows of `kpi_monthly`: a hand-computed fixture (an email state
//! machine with repeated subscribes, attribution exactly at the window edge and one second
//! past it, responders never sent the campaign) and a differential test against a row-by-row
//! reference on generated dumps.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::common::{kpi_monthly, marketing};
use chrono::Datelike;
use chrono_tz::Tz;
use crmkpi_schema::Config;
use polars::prelude::*;

use crate::common::{
    EventRow, Metrics, TestLake, assert_cells, assert_metrics_match, cells, day, epoch_day, event, local_date,
    metrics_by_key, micros, report_months,
};

const MARKETING_METRICS: [&str; 8] = [
    "cac",
    "crm_roi",
    "renewal_rate",
    "email_list_size_start",
    "email_list_growth_rate",
    "campaign_response_rate",
    "crm_active_users",
    "crm_adoption_rate",
];

fn quoted(value: &str) -> String {
    format!("\"{value}\"")
}

fn fixture_lines() -> Vec<String> {
    let customer_event =
        |id: &str, ty: &str, at: &str, customer: &str| event(id, ty, at, &[("customer_id", &quoted(customer))]);
    let campaign_event = |id: &str, ty: &str, at: &str, campaign: &str, customer: &str| {
        event(id, ty, at, &[("campaign_id", &quoted(campaign)), ("customer_id", &quoted(customer))])
    };
    let order = |id: &str, at: &str, customer: &str, amount: &str| {
        event(
            id,
            "order_placed",
            at,
            &[("customer_id", &quoted(customer)), ("order_id", &quoted(id)), ("amount", amount)],
        )
    };
    let spend = |id: &str, at: &str, category: &str, amount: &str, campaign: Option<&str>| {
        let campaign = campaign.map(quoted);
        let mut fields = vec![("category", quoted(category)), ("amount", amount.to_owned())];
        if let Some(campaign) = campaign {
            fields.push(("campaign_id", campaign));
        }
        let fields: Vec<(&str, &str)> = fields.iter().map(|(key, value)| (*key, value.as_str())).collect();
        event(id, "spend_recorded", at, &fields)
    };
    let active = |id: &str, at: &str, user: &str| event(id, "crm_user_active", at, &[("owner_id", &quoted(user))]);
    vec![
        order("o1", "2024-01-05T10:00:00Z", "c1", "100"),
        spend("p1", "2024-01-10T10:00:00Z", "acquisition", "500", None),
        spend("p2", "2024-01-10T10:00:00Z", "crm", "50", None),
        spend("p3", "2024-01-11T10:00:00Z", "retention", "30", None),
        spend("p4", "2024-02-01T10:00:00Z", "acquisition", "200", Some("k1")),
        spend("p5", "2024-03-02T10:00:00Z", "retention", "0", Some("k3")),
        customer_event("r1", "subscription_renewed", "2024-01-15T10:00:00Z", "c1"),
        customer_event("r2", "subscription_renewed", "2024-01-16T10:00:00Z", "c1"),
        customer_event("r3", "subscription_cancelled", "2024-01-17T10:00:00Z", "c1"),
        // Email: c1 subscribes twice (the second changes nothing), leaves, subscribes twice in
        // February, leaves in March; c2's first event is an unsubscribe (no change).
        customer_event("m1", "email_subscribed", "2024-01-02T10:00:00Z", "c1"),
        customer_event("m2", "email_subscribed", "2024-01-03T10:00:00Z", "c1"),
        customer_event("m3", "email_unsubscribed", "2024-01-20T10:00:00Z", "c1"),
        customer_event("m4", "email_unsubscribed", "2024-01-15T10:00:00Z", "c2"),
        customer_event("m5", "email_subscribed", "2024-02-05T10:00:00Z", "c1"),
        customer_event("m6", "email_subscribed", "2024-02-06T10:00:00Z", "c1"),
        customer_event("m7", "email_subscribed", "2024-02-10T10:00:00Z", "c2"),
        customer_event("m8", "email_unsubscribed", "2024-03-03T10:00:00Z", "c1"),
        // Campaigns: (k1, c1) first sent in January, never answered; (k1, c2) and (k2, c2)
        // first sent in February, both answered.
        campaign_event("s1", "campaign_sent", "2024-01-25T00:00:00Z", "k1", "c1"),
        campaign_event("s2", "campaign_sent", "2024-02-03T00:00:00Z", "k1", "c1"),
        campaign_event("s3", "campaign_sent", "2024-02-01T00:00:00Z", "k1", "c2"),
        campaign_event("s4", "campaign_sent", "2024-02-02T00:00:00Z", "k2", "c2"),
        campaign_event("a1", "campaign_responded", "2024-02-01T12:00:00Z", "k1", "c2"),
        campaign_event("a2", "campaign_responded", "2024-02-09T00:00:00Z", "k2", "c2"),
        campaign_event("a3", "campaign_responded", "2024-03-05T00:00:00Z", "k4", "c1"),
        // o2 comes exactly 7 days after c2's k1 response: attributed to k1. o3 one second
        // later: outside the window, and k2's response comes after it: not attributed.
        order("o2", "2024-02-08T12:00:00Z", "c2", "40"),
        order("o3", "2024-02-08T12:00:01Z", "c2", "10"),
        active("u1a", "2024-01-03T10:00:00Z", "u1"),
        active("u1b", "2024-01-04T10:00:00Z", "u1"),
        active("u2a", "2024-01-04T10:00:00Z", "u2"),
        active("u1c", "2024-03-04T10:00:00Z", "u1"),
    ]
}

fn fixture_config() -> Config {
    Config { crm_seats: Some(10), ..Config::default() }
}

#[test]
fn fixture_campaigns_table() {
    let config = fixture_config();
    let lake = TestLake::from_lines(&fixture_lines(), &config);
    let context = lake.context(&config, Some(micros("2024-03-10T00:00:00Z")));
    let actual = cells(&marketing::campaigns(&context).and_then(LazyFrame::collect).expect("plan runs"));
    let text = |value: &str| Some(value.to_owned());
    let number = |value: f64| Some(format!("{value:?}"));
    let expected = vec![
        // k1: sent to c1 and c2, answered by c2, 200 spent, o2 attributed: roas 40 / 200.
        vec![text("k1"), text("2"), text("1"), number(0.5), number(200.0), text("1"), number(40.0), number(0.2)],
        // k2: answered after the orders: nothing attributed; no spend: roas null.
        vec![text("k2"), text("1"), text("1"), number(1.0), number(0.0), text("0"), number(0.0), None],
        // k3: only a spend event of 0.
        vec![text("k3"), text("0"), text("0"), None, number(0.0), text("0"), number(0.0), None],
        // k4: a responder who was never sent it.
        vec![text("k4"), text("0"), text("1"), None, number(0.0), text("0"), number(0.0), None],
    ];
    assert_cells(actual, expected, "campaigns");
}

#[test]
fn fixture_marketing_metrics() {
    let config = fixture_config();
    let lake = TestLake::from_lines(&fixture_lines(), &config);
    let frame = kpi_monthly(&lake.context(&config, Some(micros("2024-03-10T00:00:00Z"))))
        .and_then(LazyFrame::collect)
        .expect("plan runs");
    let mut expected: Metrics = BTreeMap::new();
    let mut put = |period: &str, metric: &str, value: Option<f64>, parts: Option<(f64, f64)>| {
        expected.insert(
            (day(period), metric.to_owned(), "all".to_owned()),
            (value, parts.map(|p| p.0), parts.map(|p| p.1)),
        );
    };
    // January: 500 acquisition / 1 new customer; (100 - 50) / 50 * 100; 2 of 3 renewals; the
    // list starts empty, +1 -1; (k1, c1) unanswered; u1 and u2 of 10 seats.
    put("2024-01-01", "cac", Some(500.0), None);
    put("2024-01-01", "crm_roi", Some(100.0), Some((50.0, 50.0)));
    put("2024-01-01", "renewal_rate", Some(2.0 / 3.0), Some((2.0, 3.0)));
    put("2024-01-01", "email_list_size_start", Some(0.0), None);
    put("2024-01-01", "email_list_growth_rate", None, Some((0.0, 0.0)));
    put("2024-01-01", "campaign_response_rate", Some(0.0), Some((0.0, 1.0)));
    put("2024-01-01", "crm_active_users", Some(2.0), None);
    put("2024-01-01", "crm_adoption_rate", Some(0.2), Some((2.0, 10.0)));
    // February: 200 / 1 (c2); revenue 50 with no CRM spend; the list starts empty, +2.
    put("2024-02-01", "cac", Some(200.0), None);
    put("2024-02-01", "crm_roi", None, Some((50.0, 0.0)));
    put("2024-02-01", "renewal_rate", None, Some((0.0, 0.0)));
    put("2024-02-01", "email_list_size_start", Some(0.0), None);
    put("2024-02-01", "email_list_growth_rate", None, Some((2.0, 0.0)));
    put("2024-02-01", "campaign_response_rate", Some(1.0), Some((2.0, 2.0)));
    put("2024-02-01", "crm_active_users", Some(0.0), None);
    put("2024-02-01", "crm_adoption_rate", Some(0.0), Some((0.0, 10.0)));
    // March (to as_of): the list starts at 2 and loses c1: -1 / 2 * 100.
    put("2024-03-01", "cac", None, None);
    put("2024-03-01", "crm_roi", None, Some((0.0, 0.0)));
    put("2024-03-01", "renewal_rate", None, Some((0.0, 0.0)));
    put("2024-03-01", "email_list_size_start", Some(2.0), None);
    put("2024-03-01", "email_list_growth_rate", Some(-50.0), Some((-1.0, 2.0)));
    put("2024-03-01", "campaign_response_rate", None, Some((0.0, 0.0)));
    put("2024-03-01", "crm_active_users", Some(1.0), None);
    put("2024-03-01", "crm_adoption_rate", Some(0.1), Some((1.0, 10.0)));
    assert_metrics_match(&metrics_by_key(&frame, &MARKETING_METRICS), &expected, "fixture");
}

/// Row-by-row reference of the campaigns table and the marketing metrics.
fn reference(rows: &[EventRow], as_of: i64, config: &Config) -> (Vec<Vec<Option<String>>>, Metrics) {
    let zone = config.timezone;
    let mut rows: Vec<&EventRow> = rows.iter().filter(|row| row.occurred_at <= as_of).collect();
    rows.sort_by(|left, right| (left.occurred_at, &left.event_id).cmp(&(right.occurred_at, &right.event_id)));
    let month_of = |instant: i64| local_date(instant, zone).with_day(1).expect("first day");
    let get = |row: &EventRow, name: &str| row.get(name).map(str::to_owned);

    // Campaigns.
    let mut ids = BTreeSet::new();
    let mut sent: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut responded: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut spend: HashMap<String, f64> = HashMap::new();
    let mut responses: HashMap<String, Vec<(i64, String, String)>> = HashMap::new();
    for row in &rows {
        let campaign = get(row, "campaign_id");
        match (row.event_type.as_str(), campaign) {
            ("campaign_sent", Some(campaign)) => {
                ids.insert(campaign.clone());
                sent.entry(campaign).or_default().insert(get(row, "customer_id").expect("customer"));
            }
            ("campaign_responded", Some(campaign)) => {
                ids.insert(campaign.clone());
                let customer = get(row, "customer_id").expect("customer");
                responded.entry(campaign.clone()).or_default().insert(customer.clone());
                responses.entry(customer).or_default().push((row.occurred_at, row.event_id.clone(), campaign));
            }
            ("spend_recorded", Some(campaign)) => {
                ids.insert(campaign.clone());
                *spend.entry(campaign).or_default() += row.amount.expect("amount");
            }
            _ => {}
        }
    }
    let window = i64::from(config.attribution_window_days) * 86_400_000_000;
    let mut attributed: HashMap<String, (usize, f64)> = HashMap::new();
    for order in rows.iter().filter(|row| row.event_type == "order_placed") {
        let customer = order.get("customer_id").expect("customer");
        let latest = responses
            .get(customer)
            .into_iter()
            .flatten()
            .filter(|(at, _, _)| *at <= order.occurred_at && order.occurred_at - at <= window)
            .max_by(|left, right| (left.0, &left.1).cmp(&(right.0, &right.1)));
        if let Some((_, _, campaign)) = latest {
            let entry = attributed.entry(campaign.clone()).or_default();
            entry.0 += 1;
            entry.1 += order.amount.expect("amount");
        }
    }
    let number = |value: f64| Some(format!("{value:?}"));
    let campaigns = ids
        .iter()
        .map(|id| {
            let sent_count = sent.get(id).map_or(0, BTreeSet::len);
            let responded_count = responded.get(id).map_or(0, BTreeSet::len);
            let spent = spend.get(id).copied().unwrap_or(0.0);
            let (orders, revenue) = attributed.get(id).copied().unwrap_or((0, 0.0));
            vec![
                Some(id.clone()),
                Some(sent_count.to_string()),
                Some(responded_count.to_string()),
                (sent_count > 0).then(|| responded_count as f64 / sent_count as f64).and_then(number),
                number(spent),
                Some(orders.to_string()),
                number(revenue),
                (spent > 0.0).then(|| revenue / spent).and_then(number),
            ]
        })
        .collect();

    // Monthly metrics.
    let mut first_order: HashMap<String, i64> = HashMap::new();
    let mut email_subscribed: HashMap<String, bool> = HashMap::new();
    let mut email_changes: Vec<(chrono::NaiveDate, i64)> = Vec::new();
    let mut first_sent: HashMap<(String, String), i64> = HashMap::new();
    let mut responded_pairs: BTreeSet<(String, String)> = BTreeSet::new();
    for row in &rows {
        match row.event_type.as_str() {
            "order_placed" => {
                first_order.entry(get(row, "customer_id").expect("customer")).or_insert(row.occurred_at);
            }
            "email_subscribed" | "email_unsubscribed" => {
                let subscribe = row.event_type == "email_subscribed";
                let state = email_subscribed.entry(get(row, "customer_id").expect("customer")).or_insert(false);
                if *state != subscribe {
                    *state = subscribe;
                    email_changes.push((month_of(row.occurred_at), if subscribe { 1 } else { -1 }));
                }
            }
            "campaign_sent" => {
                let pair = (get(row, "campaign_id").expect("campaign"), get(row, "customer_id").expect("customer"));
                first_sent.entry(pair).or_insert(row.occurred_at);
            }
            "campaign_responded" => {
                responded_pairs
                    .insert((get(row, "campaign_id").expect("campaign"), get(row, "customer_id").expect("customer")));
            }
            _ => {}
        }
    }
    let all_rows: Vec<EventRow> = rows.iter().map(|row| (**row).clone()).collect();
    let mut metrics: Metrics = BTreeMap::new();
    for month in report_months(&all_rows, as_of, zone) {
        let in_month = |row: &&&EventRow| month_of(row.occurred_at) == month;
        let revenue: f64 = rows
            .iter()
            .filter(in_month)
            .filter(|row| row.event_type == "order_placed")
            .filter_map(|row| row.amount)
            .sum();
        let spend_of = |category: &str| -> f64 {
            rows.iter()
                .filter(in_month)
                .filter(|row| row.event_type == "spend_recorded" && row.get("category") == Some(category))
                .filter_map(|row| row.amount)
                .sum::<f64>()
        };
        let new_customers =
            first_order.values().filter(|at| local_date(**at, zone).with_day(1) == Some(month)).count() as f64;
        let count_of =
            |event_type: &str| rows.iter().filter(in_month).filter(|row| row.event_type == event_type).count() as f64;
        let (renewed, cancelled) = (count_of("subscription_renewed"), count_of("subscription_cancelled"));
        let size_start: i64 =
            email_changes.iter().filter(|(changed, _)| *changed < month).map(|(_, change)| change).sum();
        let net: i64 = email_changes.iter().filter(|(changed, _)| *changed == month).map(|(_, change)| change).sum();
        let pairs: Vec<&(String, String)> =
            first_sent.iter().filter(|(_, at)| month_of(**at) == month).map(|(pair, _)| pair).collect();
        let answered = pairs.iter().filter(|pair| responded_pairs.contains(**pair)).count() as f64;
        let users: BTreeSet<&str> = rows
            .iter()
            .filter(in_month)
            .filter(|row| row.event_type == "crm_user_active")
            .filter_map(|row| row.get("owner_id"))
            .collect();
        let ratio = |numerator: f64, denominator: f64, scale: f64| {
            ((denominator != 0.0).then(|| numerator / denominator * scale), Some(numerator), Some(denominator))
        };
        let crm = spend_of("crm");
        let active = users.len() as f64;
        let period = epoch_day(month);
        let mut put = |metric: &str, value: (Option<f64>, Option<f64>, Option<f64>)| {
            metrics.insert((period, metric.to_owned(), "all".to_owned()), value);
        };
        put("cac", ((new_customers > 0.0).then(|| spend_of("acquisition") / new_customers), None, None));
        put("crm_roi", ratio(revenue - crm, crm, 100.0));
        put("renewal_rate", ratio(renewed, renewed + cancelled, 1.0));
        put("email_list_size_start", (Some(size_start as f64), None, None));
        put("email_list_growth_rate", ratio(net as f64, size_start as f64, 100.0));
        put("campaign_response_rate", ratio(answered, pairs.len() as f64, 1.0));
        put("crm_active_users", (Some(active), None, None));
        let seats = config.crm_seats.map(f64::from);
        put("crm_adoption_rate", (seats.and_then(|seats| (seats != 0.0).then(|| active / seats)), Some(active), seats));
    }
    (campaigns, metrics)
}

#[test]
fn differential_against_row_by_row_reference() {
    for (seed, zone, seats, as_of) in [
        (41u64, Tz::UTC, Some(30), "2025-03-31T23:59:59Z"),
        (42, chrono_tz::Europe::Berlin, None, "2024-10-27T01:30:00Z"),
        (43, chrono_tz::America::Chicago, Some(12), "2025-06-30T12:00:00Z"),
        (44, Tz::UTC, Some(25), "2025-07-15T00:00:00Z"),
    ] {
        let config = Config { timezone: zone, crm_seats: seats, attribution_window_days: 3, ..Config::default() };
        let lake = TestLake::generated(seed, 5_000, &config);
        let as_of = micros(as_of);
        let context = lake.context(&config, Some(as_of));
        let (campaigns, metrics) = reference(&lake.rows(), as_of, &config);
        let actual = cells(&marketing::campaigns(&context).and_then(LazyFrame::collect).expect("plan runs"));
        assert_cells(actual, campaigns, &format!("seed {seed}: campaigns"));
        let frame = kpi_monthly(&context).and_then(LazyFrame::collect).expect("plan runs");
        assert_metrics_match(&metrics_by_key(&frame, &MARKETING_METRICS), &metrics, &format!("seed {seed}"));
    }
}

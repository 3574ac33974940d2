//! Table `customers` and `clv_model`: a hand-computed fixture of the RFM conventions (orders of
//! one day merged), `is_alive` and the health score; a differential test of the RFM summaries
//! against a row-by-row reference whose model fits must equal the table's; a differential test
//! of the per-customer predictions and health scores; and the CDNOW reference fits.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::common::{clv_model, customers, warnings};
use chrono::NaiveDate;
use chrono_tz::Tz;
use crmkpi_compute::clv::{Rfm, RfmGroup, fit_bg_nbd, fit_gamma_gamma};
use crmkpi_schema::Config;
use polars::prelude::*;

use crate::common::{EventRow, TestLake, cells, close, event, local_date, micros};

fn order(id: &str, customer: &str, at: &str, amount: &str) -> String {
    event(
        id,
        "order_placed",
        at,
        &[("customer_id", &format!("\"{customer}\"")), ("order_id", &format!("\"{id}\"")), ("amount", amount)],
    )
}

#[test]
fn fixture_rfm_alive_and_health() {
    let lines = vec![
        order("o0", "c2", "2023-12-01T10:00:00Z", "20"),
        // c1: two orders on January 1st are one purchase of 150.
        order("o1", "c1", "2024-01-01T10:00:00Z", "100"),
        order("o2", "c1", "2024-01-01T15:00:00Z", "50"),
        order("o3", "c1", "2024-01-15T10:00:00Z", "30"),
        order("o4", "c1", "2024-03-04T10:00:00Z", "60"),
        event(
            "n1",
            "survey_answered",
            "2024-02-01T10:00:00Z",
            &[("customer_id", "\"c1\""), ("survey", "\"nps\""), ("score", "4")],
        ),
        event(
            "n2",
            "survey_answered",
            "2024-03-01T10:00:00Z",
            &[("customer_id", "\"c1\""), ("survey", "\"nps\""), ("score", "8")],
        ),
        event("k1", "ticket_opened", "2024-03-10T10:00:00Z", &[("customer_id", "\"c1\""), ("ticket_id", "\"t1\"")]),
        event("l1", "lead_created", "2023-11-20T10:00:00Z", &[("customer_id", "\"c2\""), ("channel", "\"email\"")]),
        // c3: first order on as_of's own day.
        order("o5", "c3", "2024-03-31T05:00:00Z", "40"),
    ];
    let config = Config::default();
    let lake = TestLake::from_lines(&lines, &config);
    let context = lake.context(&config, Some(micros("2024-03-31T12:00:00Z")));
    let frame = customers(&context).and_then(LazyFrame::collect).expect("plan runs");
    let actual: Vec<Vec<Option<String>>> = cells(
        &frame
            .select([
                "customer_id",
                "acquisition_channel",
                "orders",
                "revenue",
                "frequency",
                "recency",
                "t",
                "monetary_value",
                "historical_clv",
                "is_alive",
            ])
            .expect("columns"),
    );
    let number = |value: f64| Some(format!("{value:?}"));
    let text = |value: &str| Some(value.to_owned());
    let expected = vec![
        // c1: days Jan 1 (150), Jan 15 (30), Mar 4 (60): frequency 2, recency 63 days = 9
        // weeks, t = 90 days to Mar 31, monetary (30 + 60) / 2; last order 27 days ago: alive.
        vec![
            text("c1"),
            text("unknown"),
            text("4"),
            number(240.0),
            text("2"),
            number(9.0),
            number(90.0 / 7.0),
            number(45.0),
            number(240.0),
            text("true"),
        ],
        // c2: one order 121 days before as_of: frequency 0, monetary 0, not alive.
        vec![
            text("c2"),
            text("email"),
            text("1"),
            number(20.0),
            text("0"),
            number(0.0),
            number(121.0 / 7.0),
            number(0.0),
            number(20.0),
            text("false"),
        ],
        // c3: ordered on as_of's day: frequency, recency and t all 0; alive.
        vec![
            text("c3"),
            text("unknown"),
            text("1"),
            number(40.0),
            text("0"),
            number(0.0),
            number(0.0),
            number(0.0),
            number(40.0),
            text("true"),
        ],
    ];
    crate::common::assert_cells(actual, expected, "customers");
    // Health, weights 0.4 / 0.3 / 0.2 / 0.1:
    // c1: recency 1 - 27/90 = 0.7; frequency 3/12; latest NPS 8 -> 0.8; one open ticket -> 2/3.
    // c2: recency 0 (121 days > 90); frequency 1/12; no NPS -> 0.5; no ticket -> 1.
    let health: Vec<Option<f64>> = frame.column("health_score").expect("health").f64().expect("f64").iter().collect();
    let c1 = 100.0 * (0.4 * 0.7 + 0.3 * 0.25 + 0.2 * 0.8 + 0.1 * (2.0 / 3.0));
    let c2 = 100.0 * (0.3 / 12.0 + 0.2 * 0.5 + 0.1);
    // c3: ordered on as_of's day: recency 1; one order day; no NPS; no ticket.
    let c3 = 100.0 * (0.4 + 0.3 / 12.0 + 0.2 * 0.5 + 0.1);
    assert!(close(health[0], Some(c1)) && close(health[1], Some(c2)) && close(health[2], Some(c3)), "{health:?}");
    // Only one customer with repeat purchases: Gamma-Gamma is not fitted.
    let models = clv_model(&context).and_then(LazyFrame::collect).expect("plan runs");
    let gamma: Vec<Vec<Option<String>>> =
        cells(&models).into_iter().filter(|row| row[0].as_deref() == Some("gamma_gamma")).collect();
    let value_of = |name: &str| gamma.iter().find(|row| row[1].as_deref() == Some(name)).and_then(|row| row[2].clone());
    assert_eq!(value_of("p"), None);
    assert_eq!(value_of("converged"), Some("0.0".to_owned()));
    assert_eq!(value_of("customers"), Some("1.0".to_owned()));
    let warnings = warnings(&context);
    assert!(warnings.iter().any(|warning| warning.starts_with("Gamma-Gamma not fitted")), "{warnings:?}");
}

/// Row-by-row RFM reference, by customer.
fn reference_rfm(rows: &[EventRow], as_of: i64, config: &Config) -> BTreeMap<String, Rfm> {
    let zone = config.timezone;
    let unit = f64::from(config.clv.unit_days);
    let mut days: HashMap<String, BTreeMap<NaiveDate, f64>> = HashMap::new();
    for row in rows.iter().filter(|row| row.event_type == "order_placed" && row.occurred_at <= as_of) {
        *days
            .entry(row.get("customer_id").expect("customer").to_owned())
            .or_default()
            .entry(local_date(row.occurred_at, zone))
            .or_default() += row.amount.expect("amount");
    }
    let as_of_day = local_date(as_of, zone);
    days.into_iter()
        .map(|(customer, totals)| {
            let first = *totals.keys().next().expect("a day");
            let last = *totals.keys().last().expect("a day");
            let repeat: Vec<f64> = totals.iter().skip(1).map(|(_, total)| *total).collect();
            let frequency = repeat.len() as f64;
            let rfm = Rfm {
                frequency,
                recency: (last - first).num_days() as f64 / unit,
                t: (as_of_day - first).num_days() as f64 / unit,
                monetary_value: if repeat.is_empty() { 0.0 } else { repeat.iter().sum::<f64>() / frequency },
            };
            (customer, rfm)
        })
        .collect()
}

#[test]
fn differential_rfm_and_fits() {
    for (seed, zone, unit_days) in [(81u64, Tz::UTC, 7u32), (82, chrono_tz::Europe::Berlin, 1)] {
        let mut config = Config { timezone: zone, ..Config::default() };
        config.clv.unit_days = unit_days;
        let lake = TestLake::generated(seed, 6_000, &config);
        let as_of = micros("2025-05-31T21:00:00Z");
        let context = lake.context(&config, Some(as_of));
        let expected = reference_rfm(&lake.rows(), as_of, &config);
        let frame = customers(&context).and_then(LazyFrame::collect).expect("plan runs");
        let ids: Vec<String> = frame
            .column("customer_id")
            .expect("id")
            .str()
            .expect("str")
            .iter()
            .map(|id| id.expect("id").to_owned())
            .collect();
        assert_eq!(ids.iter().collect::<BTreeSet<_>>(), expected.keys().collect::<BTreeSet<_>>(), "seed {seed}");
        for name in ["frequency", "recency", "t", "monetary_value"] {
            let column = frame.column(name).expect("column").cast(&DataType::Float64).expect("cast");
            for (id, value) in ids.iter().zip(column.f64().expect("f64").iter()) {
                let rfm = &expected[id];
                let want = match name {
                    "frequency" => rfm.frequency,
                    "recency" => rfm.recency,
                    "t" => rfm.t,
                    _ => rfm.monetary_value,
                };
                assert!(close(value, Some(want)), "seed {seed} {id} {name}: plan {value:?}, reference {want}");
            }
        }
        // The table's fits are the fits of the reference summaries.
        let summaries: Vec<Rfm> = expected.values().copied().collect();
        let bg = fit_bg_nbd(&RfmGroup::of_customers(&summaries)).expect("enough customers");
        let gg = fit_gamma_gamma(&RfmGroup::of_customers(&summaries)).expect("enough spenders");
        let models = clv_model(&context).and_then(LazyFrame::collect).expect("plan runs");
        let values: BTreeMap<(String, String), Option<f64>> = cells(&models)
            .into_iter()
            .map(|row| {
                (
                    (row[0].clone().expect("model"), row[1].clone().expect("parameter")),
                    row[2].as_ref().map(|v| v.parse().expect("number")),
                )
            })
            .collect();
        let near = |model: &str, parameter: &str, want: f64| {
            let found = values[&(model.to_owned(), parameter.to_owned())].expect("fitted");
            assert!(
                (found - want).abs() <= 1e-4 * want.abs().max(1.0),
                "seed {seed} {model}.{parameter}: table {found}, reference fit {want}"
            );
        };
        near("bg_nbd", "log_likelihood", bg.log_likelihood);
        near("gamma_gamma", "log_likelihood", gg.log_likelihood);
        near("gamma_gamma", "p", gg.params.p);
        near("bg_nbd", "r", bg.params.r);
        assert_eq!(values[&("bg_nbd".to_owned(), "customers".to_owned())], Some(summaries.len() as f64));
    }
}

/// Open tickets per customer at `as_of`, row by row: a ticket with a `ticket_opened` belongs to
/// the customer of its first one and is open unless its last resolution or reopening (by
/// `occurred_at`, then `event_id`) is a resolution.
fn reference_open_tickets(rows: &[EventRow], as_of: i64) -> HashMap<String, f64> {
    let mut tickets: BTreeMap<&str, Vec<&EventRow>> = BTreeMap::new();
    for row in rows.iter().filter(|row| row.occurred_at <= as_of && row.event_type.starts_with("ticket_")) {
        if let Some(ticket) = row.get("ticket_id") {
            tickets.entry(ticket).or_default().push(row);
        }
    }
    let mut open: HashMap<String, f64> = HashMap::new();
    for events in tickets.values_mut() {
        events.sort_by(|x, y| (x.occurred_at, &x.event_id).cmp(&(y.occurred_at, &y.event_id)));
        let Some(opening) = events.iter().find(|row| row.event_type == "ticket_opened") else {
            continue;
        };
        let last_change =
            events.iter().rev().find(|row| row.event_type == "ticket_resolved" || row.event_type == "ticket_reopened");
        let resolved = last_change.is_some_and(|row| row.event_type == "ticket_resolved");
        if let (false, Some(customer)) = (resolved, opening.get("customer_id")) {
            *open.entry(customer.to_owned()).or_default() += 1.0;
        }
    }
    open
}

/// Per-customer predictions and health, row by row from the reference summaries and the fits
/// made on them: `p_alive` and the Gamma-Gamma value in closed form, `predicted_clv` as the
/// discounted monthly sum of BG/NBD increments, `is_alive` and `health_score` from the
/// customer's order days, latest NPS and open tickets.
#[test]
fn differential_predictions_and_health() {
    for (seed, zone, churn_after_days) in [(85u64, Tz::UTC, 90u32), (86, chrono_tz::Europe::Berlin, 45)] {
        let mut config = Config { timezone: zone, churn_after_days, ..Config::default() };
        config.clv.monthly_discount_rate = 0.02;
        config.health.w_recency = 0.25;
        config.health.w_frequency = 0.25;
        config.health.w_sentiment = 0.3;
        config.health.w_support = 0.2;
        let lake = TestLake::generated(seed, 8_000, &config);
        let as_of = micros("2025-04-30T22:30:00Z");
        let context = lake.context(&config, Some(as_of));
        let rows = lake.rows();
        let summaries = reference_rfm(&rows, as_of, &config);
        let all: Vec<Rfm> = summaries.values().copied().collect();
        let bg = fit_bg_nbd(&RfmGroup::of_customers(&all)).expect("BG/NBD fit").params;
        let gg = fit_gamma_gamma(&RfmGroup::of_customers(&all)).expect("Gamma-Gamma fit").params;
        let as_of_day = local_date(as_of, zone);
        let mut order_days: HashMap<&str, BTreeSet<NaiveDate>> = HashMap::new();
        let mut latest_nps: HashMap<&str, (i64, &str, f64)> = HashMap::new();
        for row in rows.iter().filter(|row| row.occurred_at <= as_of) {
            let Some(customer) = row.get("customer_id") else { continue };
            if row.event_type == "order_placed" {
                order_days.entry(customer).or_default().insert(local_date(row.occurred_at, zone));
            }
            if row.event_type == "survey_answered" && row.get("survey") == Some("nps") {
                let answer = (row.occurred_at, row.event_id.as_str(), row.score.expect("score") as f64);
                let latest = latest_nps.entry(customer).or_insert(answer);
                if (answer.0, answer.1) > (latest.0, latest.1) {
                    *latest = answer;
                }
            }
        }
        let open_tickets = reference_open_tickets(&rows, as_of);
        let frame = customers(&context).and_then(LazyFrame::collect).expect("plan runs");
        let table = cells(&frame);
        let names: Vec<String> = frame.get_column_names().iter().map(|name| name.to_string()).collect();
        let at = |name: &str| names.iter().position(|column| column == name).expect("column");
        let number =
            |row: &[Option<String>], name: &str| row[at(name)].as_ref().map(|v| v.parse::<f64>().expect("number"));
        let near = |got: Option<f64>, want: f64, what: &str| {
            let got = got.unwrap_or_else(|| panic!("seed {seed} {what}: null, want {want}"));
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1e-3),
                "seed {seed} {what}: table {got}, reference {want}"
            );
        };
        assert_eq!(table.len(), summaries.len());
        for row in &table {
            let id = row[at("customer_id")].clone().expect("id");
            let rfm = &summaries[&id];
            let (x, m) = (rfm.frequency, rfm.monetary_value);
            near(
                number(row, "expected_purchases"),
                bg.conditional_expected_purchases(52.0, rfm),
                &format!("{id} expected_purchases"),
            );
            let p_alive = if x == 0.0 {
                1.0
            } else {
                1.0 / (1.0 + bg.a / (bg.b + x - 1.0) * ((bg.alpha + rfm.t) / (bg.alpha + rfm.recency)).powf(bg.r + x))
            };
            near(number(row, "p_alive"), p_alive, &format!("{id} p_alive"));
            let value =
                if x == 0.0 { gg.p * gg.v / (gg.q - 1.0) } else { gg.p * (gg.v + x * m) / (gg.p * x + gg.q - 1.0) };
            near(number(row, "expected_avg_order_value"), value, &format!("{id} expected_avg_order_value"));
            let mut clv = 0.0;
            for i in 1..=12 {
                let increment = bg.conditional_expected_purchases(f64::from(i) * 4.345, rfm)
                    - bg.conditional_expected_purchases(f64::from(i - 1) * 4.345, rfm);
                clv += value * increment / 1.02f64.powi(i);
            }
            near(number(row, "predicted_clv"), clv, &format!("{id} predicted_clv"));
            let days = &order_days[id.as_str()];
            let since_last = (as_of_day - *days.iter().last().expect("a day")).num_days() as f64;
            let alive = since_last < f64::from(churn_after_days);
            assert_eq!(row[at("is_alive")].as_deref(), Some(if alive { "true" } else { "false" }), "seed {seed} {id}");
            let recent = days.iter().filter(|day| (as_of_day - **day).num_days() < 365).count() as f64;
            let sentiment = latest_nps.get(id.as_str()).map_or(0.5, |answer| answer.2 / 10.0);
            let support = 1.0 - (open_tickets.get(&id).copied().unwrap_or(0.0) / 3.0).min(1.0);
            let health = 100.0
                * (0.25 * (1.0 - since_last / f64::from(churn_after_days)).max(0.0)
                    + 0.25 * (recent / 12.0).min(1.0)
                    + 0.3 * sentiment
                    + 0.2 * support);
            near(number(row, "health_score"), health, &format!("{id} health_score"));
        }
    }
}

/// The CDNOW sample (2,357 customers of the March 1997 cohort, calibration period to
/// 1997-09-30, weeks) as summarised in Fader & Hardie's notes and shipped with `lifetimes`
/// (`cdnow_customers_summary_with_transactions.csv`): x, t_x, T and the mean repeat spend zbar.
fn cdnow_customers() -> Vec<Rfm> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cdnow_summary.csv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    text.lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<f64> = line.split(',').map(|field| field.parse().expect("number")).collect();
            Rfm { frequency: fields[1], recency: fields[2], t: fields[3], monetary_value: fields[4] }
        })
        .collect()
}

/// The literature's reference fits on CDNOW: BG/NBD r = 0.243, alpha = 4.414, a = 0.793,
/// b = 2.426 with log-likelihood -9582.4 (Fader, Hardie & Lee 2005), Gamma-Gamma p = 6.25,
/// q = 3.74, v = 15.44 on the 946 customers with repeat purchases (Fader & Hardie 2013).
#[test]
fn cdnow_reference_fits() {
    let customers = cdnow_customers();
    assert_eq!(customers.len(), 2357);
    let bg = fit_bg_nbd(&RfmGroup::of_customers(&customers)).expect("BG/NBD fit");
    assert!(bg.converged, "{bg:?}");
    let p = bg.params;
    for (got, want, name) in [(p.r, 0.243, "r"), (p.alpha, 4.414, "alpha"), (p.a, 0.793, "a"), (p.b, 2.426, "b")] {
        assert!((got - want).abs() <= 0.0005 * want.max(1.0), "{name}: fitted {got}, reference {want}");
    }
    assert!((bg.log_likelihood - -9582.4).abs() < 0.05, "log-likelihood {}", bg.log_likelihood);
    println!("CDNOW BG/NBD: {bg:?}");
    // The paper's worked example: x = 2, t_x = 30.43, T = 38.86 expects 1.226 purchases in the
    // next 39 weeks.
    let example = Rfm { frequency: 2.0, recency: 30.43, t: 38.86, monetary_value: 0.0 };
    let expected = p.conditional_expected_purchases(39.0, &example);
    assert!((expected - 1.226).abs() < 0.0005, "expected purchases {expected}");
    let gg = fit_gamma_gamma(&RfmGroup::of_customers(&customers)).expect("Gamma-Gamma fit");
    assert!(gg.converged, "{gg:?}");
    let spenders = customers.iter().filter(|c| c.frequency > 0.0).count();
    assert_eq!(spenders, 946);
    println!("CDNOW Gamma-Gamma: {gg:?}");
    let g = gg.params;
    for (got, want, name) in [(g.p, 6.25, "p"), (g.q, 3.74, "q"), (g.v, 15.44, "v")] {
        assert!((got - want).abs() <= 0.005 + 0.0005 * want, "{name}: fitted {got}, reference {want}");
    }
}

/// The RFM summaries count local order days where clocks go back across midnight
/// (America/St_Johns, 2009-11-01): c1's orders fall on Oct 31, Nov 1, Oct 31 and Dec 15 in time
/// order, three distinct days.
#[test]
fn rfm_where_local_days_go_back_in_time() {
    let config = Config { timezone: chrono_tz::America::St_Johns, ..Config::default() };
    let lake = TestLake::from_lines(&crate::cohorts::clocks_back_orders(), &config);
    let as_of = micros("2009-12-31T23:59:59Z");
    let expected = reference_rfm(&lake.rows(), as_of, &config);
    assert_eq!(expected["c1"].frequency, 2.0, "the reference sees three order days");
    let frame = customers(&lake.context(&config, Some(as_of))).and_then(LazyFrame::collect).expect("plan runs");
    let rows = cells(&frame.select(["customer_id", "frequency", "recency", "t", "monetary_value"]).expect("columns"));
    for row in rows {
        let id = row[0].clone().expect("id");
        let value = |index: usize| row[index].as_ref().map(|v| v.parse::<f64>().expect("number"));
        let want = &expected[&id];
        for (index, name, wanted) in [
            (1, "frequency", want.frequency),
            (2, "recency", want.recency),
            (3, "t", want.t),
            (4, "monetary", want.monetary_value),
        ] {
            assert!(close(value(index), Some(wanted)), "{id} {name}: plan {:?}, reference {wanted}", value(index));
        }
    }
}

//! Deals, stage visits, stage durations, forecast, rep performance, lost reasons and the deal
//! rows of `kpi_monthly`: a hand-computed fixture with every edge case of kpis.md, and a
//! differential test against a row-by-row reference on generated dumps over many seeds.

use std::collections::{BTreeMap, HashMap};

use crate::common::{kpi_monthly, sales};
use chrono::Datelike;
use chrono_tz::Tz;
use crmkpi_schema::Config;
use polars::prelude::*;

use crate::common::{
    EventRow, TestLake, assert_cells, assert_metrics_match, cells, epoch_day, event, instant, linear_quantile,
    local_date, mean, metrics_by_key, micros, number, report_months, text,
};

const DEAL_METRICS: [&str; 10] = [
    "deals_won",
    "deals_lost",
    "win_rate",
    "win_rate_amount",
    "avg_deal_size",
    "sales_cycle_days_mean",
    "sales_cycle_days_median",
    "pipeline_open_deals",
    "pipeline_value",
    "pipeline_velocity",
];

fn fixture_config() -> Config {
    let mut config = Config::default();
    config.pipeline.win_probability.insert("qualification".to_owned(), 0.1);
    config.pipeline.win_probability.insert("proposal".to_owned(), 0.4);
    config
}

/// Four deals covering the edge cases; see the expected values in the test below.
fn fixture_lines() -> Vec<String> {
    let deal = |id: &str, ty: &str, at: &str, deal_id: &str, fields: &[(&str, &str)]| {
        let mut all = vec![("deal_id", deal_id)];
        all.extend_from_slice(fields);
        event(id, ty, at, &all)
    };
    vec![
        event("l1", "lead_created", "2023-12-20T00:00:00Z", &[("customer_id", "\"c1\""), ("channel", "\"referral\"")]),
        event("l2", "lead_created", "2024-01-20T00:00:00Z", &[("customer_id", "\"c1\""), ("channel", "\"email\"")]),
        event("l3", "lead_created", "2024-01-05T00:00:00Z", &[("customer_id", "\"c2\"")]),
        // da: back a stage and forward again, a same-stage change, the amount changed twice,
        // events after the close.
        deal(
            "a1",
            "deal_created",
            "2024-01-01T00:00:00Z",
            "\"da\"",
            &[("customer_id", "\"c1\""), ("owner_id", "\"u1\""), ("stage", "\"qualification\""), ("amount", "100")],
        ),
        deal("a2", "deal_stage_changed", "2024-01-02T00:00:00Z", "\"da\"", &[("stage", "\"proposal\"")]),
        deal(
            "a3",
            "deal_stage_changed",
            "2024-01-03T00:00:00Z",
            "\"da\"",
            &[("stage", "\"proposal\""), ("amount", "150")],
        ),
        deal("a4", "deal_stage_changed", "2024-01-04T00:00:00Z", "\"da\"", &[("stage", "\"qualification\"")]),
        deal(
            "a5",
            "deal_stage_changed",
            "2024-01-05T12:00:00Z",
            "\"da\"",
            &[("stage", "\"proposal\""), ("amount", "200")],
        ),
        deal("a6", "deal_won", "2024-01-06T00:00:00Z", "\"da\"", &[]),
        deal(
            "a7",
            "deal_stage_changed",
            "2024-01-07T00:00:00Z",
            "\"da\"",
            &[("stage", "\"negotiation\""), ("amount", "999")],
        ),
        deal("a8", "deal_lost", "2024-01-08T00:00:00Z", "\"da\"", &[]),
        // db: no deal_created; lost and won at the same instant: the tie goes by event_id, so
        // the loss (b2) closes it and the win's amount is ignored.
        deal(
            "b1",
            "deal_stage_changed",
            "2024-01-10T00:00:00Z",
            "\"db\"",
            &[("stage", "\"negotiation\""), ("amount", "50")],
        ),
        deal("b3", "deal_won", "2024-01-12T00:00:00Z", "\"db\"", &[("amount", "70")]),
        deal("b2", "deal_lost", "2024-01-12T00:00:00Z", "\"db\"", &[("reason", "\"price\"")]),
        // dc: a stage change at the creation instant (types order created first), open at
        // as_of (its win comes after as_of), no amount.
        deal("c0", "deal_stage_changed", "2024-01-15T00:00:00Z", "\"dc\"", &[("stage", "\"proposal\"")]),
        deal(
            "c9",
            "deal_created",
            "2024-01-15T00:00:00Z",
            "\"dc\"",
            &[("customer_id", "\"c2\""), ("owner_id", "\"u2\""), ("stage", "\"qualification\"")],
        ),
        deal("c8", "deal_won", "2024-03-01T00:00:00Z", "\"dc\"", &[("amount", "5")]),
        // dd: created without a stage, lost without a reason or amount.
        deal(
            "d1",
            "deal_created",
            "2024-02-01T00:00:00Z",
            "\"dd\"",
            &[("customer_id", "\"c3\""), ("owner_id", "\"u1\"")],
        ),
        deal("d2", "deal_stage_changed", "2024-02-02T00:00:00Z", "\"dd\"", &[("stage", "\"qualification\"")]),
        deal("d3", "deal_lost", "2024-02-03T00:00:00Z", "\"dd\"", &[]),
    ]
}

#[test]
fn fixture_deals_visits_and_durations() {
    let config = fixture_config();
    let lake = TestLake::from_lines(&fixture_lines(), &config);
    let context = lake.context(&config, Some(micros("2024-02-15T00:00:00Z")));
    let collect = |plan: PolarsResult<LazyFrame>| cells(&plan.and_then(LazyFrame::collect).expect("plan runs"));

    assert_cells(
        collect(sales::deals(&context)),
        vec![
            vec![
                text("da"),
                text("c1"),
                text("u1"),
                text("referral"),
                instant("2024-01-01T00:00:00Z"),
                instant("2024-01-06T00:00:00Z"),
                text("won"),
                text("proposal"),
                number(200.0),
                number(5.0),
                None,
            ],
            vec![
                text("db"),
                None,
                None,
                text("unknown"),
                instant("2024-01-10T00:00:00Z"),
                instant("2024-01-12T00:00:00Z"),
                text("lost"),
                text("negotiation"),
                number(50.0),
                number(2.0),
                text("price"),
            ],
            vec![
                text("dc"),
                text("c2"),
                text("u2"),
                text("unknown"),
                instant("2024-01-15T00:00:00Z"),
                None,
                text("open"),
                text("proposal"),
                None,
                None,
                None,
            ],
            vec![
                text("dd"),
                text("c3"),
                text("u1"),
                text("unknown"),
                instant("2024-02-01T00:00:00Z"),
                instant("2024-02-03T00:00:00Z"),
                text("lost"),
                text("qualification"),
                None,
                number(2.0),
                None,
            ],
        ],
        "fixture",
    );

    let visit = |deal: &str,
                 number_: &str,
                 stage: &str,
                 entered: &str,
                 exited: Option<&str>,
                 hours: Option<f64>,
                 outcome: &str| {
        vec![
            text(deal),
            text(number_),
            text(stage),
            instant(entered),
            exited.and_then(instant),
            hours.and_then(number),
            text(outcome),
        ]
    };
    assert_cells(
        collect(sales::deal_stage_visits(&context)),
        vec![
            visit(
                "da",
                "1",
                "qualification",
                "2024-01-01T00:00:00Z",
                Some("2024-01-02T00:00:00Z"),
                Some(24.0),
                "advanced",
            ),
            visit("da", "2", "proposal", "2024-01-02T00:00:00Z", Some("2024-01-04T00:00:00Z"), Some(48.0), "advanced"),
            visit(
                "da",
                "3",
                "qualification",
                "2024-01-04T00:00:00Z",
                Some("2024-01-05T12:00:00Z"),
                Some(36.0),
                "advanced",
            ),
            visit("da", "4", "proposal", "2024-01-05T12:00:00Z", Some("2024-01-06T00:00:00Z"), Some(12.0), "won"),
            visit("db", "1", "negotiation", "2024-01-10T00:00:00Z", Some("2024-01-12T00:00:00Z"), Some(48.0), "lost"),
            visit(
                "dc",
                "1",
                "qualification",
                "2024-01-15T00:00:00Z",
                Some("2024-01-15T00:00:00Z"),
                Some(0.0),
                "advanced",
            ),
            visit("dc", "2", "proposal", "2024-01-15T00:00:00Z", None, None, "open"),
            visit("dd", "1", "qualification", "2024-02-02T00:00:00Z", Some("2024-02-03T00:00:00Z"), Some(24.0), "lost"),
        ],
        "fixture",
    );

    // negotiation: db's 48 h, lost. proposal: 48 (advanced), 12 (won), one open: p90 of
    // [12, 48] = 12 + 0.9 * 36 = 44.4. qualification: 24, 36, 0 (advanced), 24 (lost): mean 21,
    // median 24, p90 at position 2.7 of [0, 24, 24, 36] = 24 + 0.7 * 12 = 32.4.
    let stage = |name: &str,
                 visits: &str,
                 completed: &str,
                 mean_: f64,
                 median: f64,
                 p90: f64,
                 counts: [&str; 4],
                 conversion: f64| {
        let mut row = vec![text(name), text(visits), text(completed), number(mean_), number(median), number(p90)];
        row.extend(counts.iter().map(|count| text(count)));
        row.push(number(conversion));
        row
    };
    assert_cells(
        collect(sales::stage_durations(&context)),
        vec![
            stage("negotiation", "1", "1", 48.0, 48.0, 48.0, ["0", "0", "1", "0"], 0.0),
            stage("proposal", "3", "2", 30.0, 30.0, 44.4, ["1", "1", "0", "1"], 1.0),
            stage("qualification", "4", "4", 21.0, 24.0, 32.4, ["3", "0", "1", "0"], 0.75),
        ],
        "fixture",
    );

    assert_cells(
        collect(sales::pipeline_forecast(&context)),
        vec![vec![text("proposal"), text("1"), number(0.0), number(0.4), number(0.0)]],
        "fixture",
    );
    assert_cells(
        collect(sales::rep_performance(&context)),
        vec![
            vec![text("2024-01-01"), None, text("0"), text("1"), number(0.0), number(0.0), None, None],
            vec![
                text("2024-01-01"),
                text("u1"),
                text("1"),
                text("0"),
                number(1.0),
                number(200.0),
                number(200.0),
                number(5.0),
            ],
            vec![text("2024-02-01"), text("u1"), text("0"), text("1"), number(0.0), number(0.0), None, None],
        ],
        "fixture",
    );
    assert_cells(
        collect(sales::lost_reasons(&context)),
        vec![
            vec![text("2024-01-01"), text("price"), text("1"), number(50.0)],
            vec![text("2024-02-01"), text("unknown"), text("1"), number(0.0)],
        ],
        "fixture",
    );
}

#[test]
fn fixture_monthly_deal_metrics() {
    let config = fixture_config();
    let lake = TestLake::from_lines(&fixture_lines(), &config);
    let frame = kpi_monthly(&lake.context(&config, Some(micros("2024-02-15T00:00:00Z"))))
        .and_then(LazyFrame::collect)
        .expect("plan runs");
    let actual = metrics_by_key(&frame, &DEAL_METRICS);
    let mut expected = BTreeMap::new();
    let mut put = |period: &str, metric: &str, value: Option<f64>, parts: Option<(f64, f64)>| {
        let key = (crate::common::day(period), metric.to_owned(), "all".to_owned());
        expected.insert(key, (value, parts.map(|parts| parts.0), parts.map(|parts| parts.1)));
    };
    // December 2023 (the first event, a lead): nothing closed, nothing open.
    for (metric, value) in [
        ("deals_won", Some(0.0)),
        ("deals_lost", Some(0.0)),
        ("pipeline_open_deals", Some(0.0)),
        ("pipeline_value", Some(0.0)),
    ] {
        put("2023-12-01", metric, value, None);
    }
    put("2023-12-01", "win_rate", None, Some((0.0, 0.0)));
    put("2023-12-01", "win_rate_amount", None, Some((0.0, 0.0)));
    for metric in ["avg_deal_size", "sales_cycle_days_mean", "sales_cycle_days_median", "pipeline_velocity"] {
        put("2023-12-01", metric, None, None);
    }
    // January: da won (200, 5 days), db lost (50); open at the end: dc (no amount).
    // Velocity = 1 open * 0.5 * 200 / 5 days = 20 per day.
    put("2024-01-01", "deals_won", Some(1.0), None);
    put("2024-01-01", "deals_lost", Some(1.0), None);
    put("2024-01-01", "win_rate", Some(0.5), Some((1.0, 2.0)));
    put("2024-01-01", "win_rate_amount", Some(0.8), Some((200.0, 250.0)));
    put("2024-01-01", "avg_deal_size", Some(200.0), None);
    put("2024-01-01", "sales_cycle_days_mean", Some(5.0), None);
    put("2024-01-01", "sales_cycle_days_median", Some(5.0), None);
    put("2024-01-01", "pipeline_open_deals", Some(1.0), None);
    put("2024-01-01", "pipeline_value", Some(0.0), None);
    put("2024-01-01", "pipeline_velocity", Some(20.0), None);
    // February (to as_of): dd lost without an amount; dc still open.
    put("2024-02-01", "deals_won", Some(0.0), None);
    put("2024-02-01", "deals_lost", Some(1.0), None);
    put("2024-02-01", "win_rate", Some(0.0), Some((0.0, 1.0)));
    put("2024-02-01", "win_rate_amount", None, Some((0.0, 0.0)));
    for metric in ["avg_deal_size", "sales_cycle_days_mean", "sales_cycle_days_median", "pipeline_velocity"] {
        put("2024-02-01", metric, None, None);
    }
    put("2024-02-01", "pipeline_open_deals", Some(1.0), None);
    put("2024-02-01", "pipeline_value", Some(0.0), None);
    assert_metrics_match(&actual, &expected, "fixture");
}

/// A deal as the reference computes it, walking its events one by one.
#[derive(Debug, Clone)]
struct ReferenceDeal {
    customer_id: Option<String>,
    owner_id: Option<String>,
    created_at: i64,
    closed_at: Option<i64>,
    status: &'static str,
    amount: Option<f64>,
    lost_reason: Option<String>,
    visits: Vec<(String, i64)>,
}

impl ReferenceDeal {
    fn stage(&self) -> Option<&str> {
        self.visits.last().map(|(stage, _)| stage.as_str())
    }
    fn cycle_days(&self) -> Option<f64> {
        self.closed_at.map(|closed| (closed - self.created_at) as f64 / 86_400e6)
    }
}

fn type_rank(event_type: &str) -> u8 {
    match event_type {
        "deal_created" => 0,
        "deal_stage_changed" => 1,
        _ => 2,
    }
}

fn reference_deals(rows: &[EventRow], as_of: i64) -> BTreeMap<String, ReferenceDeal> {
    let mut by_deal: BTreeMap<String, Vec<&EventRow>> = BTreeMap::new();
    for row in rows {
        if let Some(deal_id) =
            row.get("deal_id").filter(|_| row.occurred_at <= as_of && row.event_type.starts_with("deal_"))
        {
            by_deal.entry(deal_id.to_owned()).or_default().push(row);
        }
    }
    let mut deals = BTreeMap::new();
    for (deal_id, mut events) in by_deal {
        events.sort_by(|left, right| {
            (left.occurred_at, type_rank(&left.event_type), &left.event_id).cmp(&(
                right.occurred_at,
                type_rank(&right.event_type),
                &right.event_id,
            ))
        });
        let mut deal = ReferenceDeal {
            customer_id: None,
            owner_id: None,
            created_at: events[0].occurred_at,
            closed_at: None,
            status: "open",
            amount: None,
            lost_reason: None,
            visits: Vec::new(),
        };
        let mut seen_created = false;
        for event in events {
            if event.amount.is_some() {
                deal.amount = event.amount;
            }
            let moved_to = match event.event_type.as_str() {
                "deal_created" if !seen_created => {
                    seen_created = true;
                    deal.created_at = event.occurred_at;
                    deal.customer_id = event.get("customer_id").map(str::to_owned);
                    deal.owner_id = event.get("owner_id").map(str::to_owned);
                    event.get("stage")
                }
                "deal_stage_changed" => event.get("stage"),
                "deal_won" | "deal_lost" => {
                    deal.closed_at = Some(event.occurred_at);
                    deal.status = if event.event_type == "deal_won" { "won" } else { "lost" };
                    deal.lost_reason = event.get("reason").filter(|_| deal.status == "lost").map(str::to_owned);
                    break;
                }
                _ => None,
            };
            if let Some(stage) = moved_to.filter(|stage| deal.stage() != Some(*stage)) {
                deal.visits.push((stage.to_owned(), event.occurred_at));
            }
        }
        deals.insert(deal_id, deal);
    }
    deals
}

/// The channel of each customer's earliest `lead_created` (ties by `event_id`).
fn reference_channels(rows: &[EventRow], as_of: i64) -> HashMap<String, String> {
    let mut earliest: HashMap<String, (i64, String, String)> = HashMap::new();
    for row in rows.iter().filter(|row| row.event_type == "lead_created" && row.occurred_at <= as_of) {
        let customer = row.get("customer_id").expect("customer").to_owned();
        let candidate = (row.occurred_at, row.event_id.clone(), row.get("channel").unwrap_or("unknown").to_owned());
        let entry = earliest.entry(customer).or_insert_with(|| candidate.clone());
        if (candidate.0, &candidate.1) < (entry.0, &entry.1) {
            *entry = candidate;
        }
    }
    earliest.into_iter().map(|(customer, (_, _, channel))| (customer, channel)).collect()
}

fn opt_text(value: Option<&str>) -> Option<String> {
    value.map(str::to_owned)
}

fn opt_number(value: Option<f64>) -> Option<String> {
    value.map(|value| format!("{value:?}"))
}

/// A reference visit: deal, number, stage, entered, exited, outcome.
type ReferenceVisit = (String, i64, String, i64, Option<i64>, &'static str);

fn visit_rows(deals: &BTreeMap<String, ReferenceDeal>) -> Vec<ReferenceVisit> {
    let mut rows = Vec::new();
    for (deal_id, deal) in deals {
        for (index, (stage, entered)) in deal.visits.iter().enumerate() {
            let (exited, outcome) = match (deal.visits.get(index + 1), deal.closed_at) {
                (Some((_, next)), _) => (Some(*next), "advanced"),
                (None, Some(closed)) => (Some(closed), deal.status),
                (None, None) => (None, "open"),
            };
            rows.push((deal_id.clone(), index as i64 + 1, stage.clone(), *entered, exited, outcome));
        }
    }
    rows
}

fn check_seed(seed: u64, zone: Tz, as_of: i64) {
    let mut config = fixture_config();
    config.timezone = zone;
    let lake = TestLake::generated(seed, 5_000, &config);
    let context = lake.context(&config, Some(as_of));
    let rows = lake.rows();
    let deals = reference_deals(&rows, as_of);
    let channels = reference_channels(&rows, as_of);
    let collect = |plan: PolarsResult<LazyFrame>| cells(&plan.and_then(LazyFrame::collect).expect("plan runs"));
    let label = format!("seed {seed}");

    let expected_deals: Vec<Vec<Option<String>>> = deals
        .iter()
        .map(|(deal_id, deal)| {
            let channel =
                deal.customer_id.as_ref().and_then(|customer| channels.get(customer)).map_or("unknown", String::as_str);
            vec![
                Some(deal_id.clone()),
                deal.customer_id.clone(),
                deal.owner_id.clone(),
                Some(channel.to_owned()),
                Some(deal.created_at.to_string()),
                deal.closed_at.map(|closed| closed.to_string()),
                Some(deal.status.to_owned()),
                opt_text(deal.stage()),
                opt_number(deal.amount),
                opt_number(deal.cycle_days()),
                deal.lost_reason.clone(),
            ]
        })
        .collect();
    assert_cells(collect(sales::deals(&context)), expected_deals, &format!("{label}: deals"));

    let visits = visit_rows(&deals);
    let expected_visits: Vec<Vec<Option<String>>> = visits
        .iter()
        .map(|(deal_id, number, stage, entered, exited, outcome)| {
            vec![
                Some(deal_id.clone()),
                Some(number.to_string()),
                Some(stage.clone()),
                Some(entered.to_string()),
                exited.map(|exited| exited.to_string()),
                opt_number(exited.map(|exited| (exited - entered) as f64 / 3_600e6)),
                Some((*outcome).to_owned()),
            ]
        })
        .collect();
    assert_cells(collect(sales::deal_stage_visits(&context)), expected_visits, &format!("{label}: visits"));

    let mut by_stage: BTreeMap<String, Vec<(Option<f64>, &str)>> = BTreeMap::new();
    for (_, _, stage, entered, exited, outcome) in &visits {
        by_stage
            .entry(stage.clone())
            .or_default()
            .push((exited.map(|exited| (exited - entered) as f64 / 3_600e6), outcome));
    }
    let expected_durations: Vec<Vec<Option<String>>> = by_stage
        .iter()
        .map(|(stage, stage_visits)| {
            let mut hours: Vec<f64> = stage_visits.iter().filter_map(|(hours, _)| *hours).collect();
            hours.sort_by(f64::total_cmp);
            let count = |outcome: &str| stage_visits.iter().filter(|(_, seen)| *seen == outcome).count();
            let (advanced, won, lost, open) = (count("advanced"), count("won"), count("lost"), count("open"));
            let ended = advanced + won + lost;
            vec![
                Some(stage.clone()),
                Some(stage_visits.len().to_string()),
                Some(hours.len().to_string()),
                opt_number(mean(&hours)),
                opt_number(linear_quantile(&hours, 0.5)),
                opt_number(linear_quantile(&hours, 0.9)),
                Some(advanced.to_string()),
                Some(won.to_string()),
                Some(lost.to_string()),
                Some(open.to_string()),
                opt_number((ended > 0).then(|| (advanced + won) as f64 / ended as f64)),
            ]
        })
        .collect();
    assert_cells(collect(sales::stage_durations(&context)), expected_durations, &format!("{label}: stage durations"));

    let mut forecast: BTreeMap<Option<String>, (usize, f64)> = BTreeMap::new();
    for deal in deals.values().filter(|deal| deal.status == "open") {
        let entry = forecast.entry(deal.stage().map(str::to_owned)).or_default();
        entry.0 += 1;
        entry.1 += deal.amount.unwrap_or(0.0);
    }
    let expected_forecast: Vec<Vec<Option<String>>> = forecast
        .iter()
        .map(|(stage, (open, amount))| {
            let probability = stage.as_ref().and_then(|stage| config.pipeline.win_probability.get(stage)).copied();
            vec![
                stage.clone(),
                Some(open.to_string()),
                opt_number(Some(*amount)),
                opt_number(probability),
                opt_number(probability.map(|p| p * amount)),
            ]
        })
        .collect();
    assert_cells(collect(sales::pipeline_forecast(&context)), expected_forecast, &format!("{label}: forecast"));

    let month_of = |instant: i64| local_date(instant, zone).with_day(1).expect("first day");
    let mut reps: BTreeMap<(chrono::NaiveDate, Option<String>), Vec<&ReferenceDeal>> = BTreeMap::new();
    let mut losses: BTreeMap<(chrono::NaiveDate, String), (usize, f64)> = BTreeMap::new();
    for deal in deals.values() {
        let Some(closed) = deal.closed_at else { continue };
        reps.entry((month_of(closed), deal.owner_id.clone())).or_default().push(deal);
        if deal.status == "lost" {
            let entry = losses
                .entry((month_of(closed), deal.lost_reason.clone().unwrap_or_else(|| "unknown".to_owned())))
                .or_default();
            entry.0 += 1;
            entry.1 += deal.amount.unwrap_or(0.0);
        }
    }
    let expected_reps: Vec<Vec<Option<String>>> = reps
        .iter()
        .map(|((month, owner), closed)| {
            let won: Vec<_> = closed.iter().filter(|deal| deal.status == "won").collect();
            let amounts: Vec<f64> = won.iter().filter_map(|deal| deal.amount).collect();
            let cycles: Vec<f64> = won.iter().filter_map(|deal| deal.cycle_days()).collect();
            vec![
                Some(month.to_string()),
                owner.clone(),
                Some(won.len().to_string()),
                Some((closed.len() - won.len()).to_string()),
                opt_number(Some(won.len() as f64 / closed.len() as f64)),
                opt_number(Some(amounts.iter().sum::<f64>() + 0.0)),
                opt_number(mean(&amounts)),
                opt_number(mean(&cycles)),
            ]
        })
        .collect();
    assert_cells(collect(sales::rep_performance(&context)), expected_reps, &format!("{label}: rep performance"));
    let expected_losses: Vec<Vec<Option<String>>> = losses
        .iter()
        .map(|((month, reason), (count, amount))| {
            vec![Some(month.to_string()), Some(reason.clone()), Some(count.to_string()), opt_number(Some(*amount))]
        })
        .collect();
    assert_cells(collect(sales::lost_reasons(&context)), expected_losses, &format!("{label}: lost reasons"));

    let as_of_day = local_date(as_of, zone);
    let mut expected = BTreeMap::new();
    for month in report_months(&rows, as_of, zone) {
        let next_month = month.checked_add_months(chrono::Months::new(1)).expect("next month");
        let last_day = (next_month - chrono::Duration::days(1)).min(as_of_day);
        let closed: Vec<&ReferenceDeal> =
            deals.values().filter(|deal| deal.closed_at.is_some_and(|closed| month_of(closed) == month)).collect();
        let won: Vec<&&ReferenceDeal> = closed.iter().filter(|deal| deal.status == "won").collect();
        let lost = closed.len() - won.len();
        let won_amount: f64 = won.iter().map(|deal| deal.amount.unwrap_or(0.0)).sum();
        let lost_amount: f64 =
            closed.iter().filter(|deal| deal.status == "lost").map(|deal| deal.amount.unwrap_or(0.0)).sum();
        let sizes: Vec<f64> = won.iter().filter_map(|deal| deal.amount).collect();
        let mut cycles: Vec<f64> = won.iter().filter_map(|deal| deal.cycle_days()).collect();
        cycles.sort_by(f64::total_cmp);
        let open: Vec<&ReferenceDeal> = deals
            .values()
            .filter(|deal| {
                local_date(deal.created_at, zone) <= last_day
                    && deal.closed_at.is_none_or(|closed| local_date(closed, zone) > last_day)
            })
            .collect();
        let win_rate = (!closed.is_empty()).then(|| won.len() as f64 / closed.len() as f64);
        let cycle_mean = mean(&cycles);
        let velocity = match (win_rate, mean(&sizes), cycle_mean) {
            (Some(rate), Some(size), Some(cycle)) if cycle != 0.0 => Some(open.len() as f64 * rate * size / cycle),
            _ => None,
        };
        let period = epoch_day(month);
        let mut put = |metric: &str, value: Option<f64>, parts: Option<(f64, f64)>| {
            expected.insert(
                (period, metric.to_owned(), "all".to_owned()),
                (value, parts.map(|parts| parts.0), parts.map(|parts| parts.1)),
            );
        };
        put("deals_won", Some(won.len() as f64), None);
        put("deals_lost", Some(lost as f64), None);
        put("win_rate", win_rate, Some((won.len() as f64, closed.len() as f64)));
        let amount_total = won_amount + lost_amount;
        put(
            "win_rate_amount",
            (amount_total != 0.0).then(|| won_amount / amount_total),
            Some((won_amount, amount_total)),
        );
        put("avg_deal_size", mean(&sizes), None);
        put("sales_cycle_days_mean", cycle_mean, None);
        put("sales_cycle_days_median", linear_quantile(&cycles, 0.5), None);
        put("pipeline_open_deals", Some(open.len() as f64), None);
        put("pipeline_value", Some(open.iter().map(|deal| deal.amount.unwrap_or(0.0)).sum()), None);
        put("pipeline_velocity", velocity, None);
    }
    let frame = kpi_monthly(&context).and_then(LazyFrame::collect).expect("plan runs");
    assert_metrics_match(&metrics_by_key(&frame, &DEAL_METRICS), &expected, &label);
}

#[test]
fn differential_against_row_by_row_reference() {
    let cases = [
        (11u64, Tz::UTC, "2025-03-31T23:59:59Z"),
        (12, chrono_tz::Europe::Berlin, "2024-10-27T01:30:00Z"),
        (13, chrono_tz::America::New_York, "2025-06-30T12:00:00Z"),
        (14, chrono_tz::Europe::Berlin, "2025-01-15T00:00:00Z"),
        (15, chrono_tz::Asia::Tokyo, "2024-12-01T00:00:00Z"),
        (16, Tz::UTC, "2025-07-15T00:00:00Z"),
    ];
    for (seed, zone, as_of) in cases {
        check_seed(seed, zone, micros(as_of));
    }
}

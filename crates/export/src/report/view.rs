//! The report's view model: the page and its sections, built from the manifest and the tables.
//! Every number shown is a value of a table (carried with its [`CellRef`]) or a count of rows;
//! nothing here reads a clock. Sections whose data is absent say why instead of drawing empty
//! axes.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::chart::{
    self, BarChart, CellRef, Funnel, FunnelStage, HeatCell, Heatmap, Histogram, LineChart, Point, Series,
};
use super::data::{ManifestView, Table};
use super::format::{Unit, grouped, month_name, short_month};
use super::{LatestIngest, ReportError};

/// The whole page.
#[derive(Debug, Serialize)]
pub struct Page {
    /// The `<title>` and top heading.
    pub title: String,
    /// `as_of · reporting zone · currency`, repeated under every section title.
    pub context: String,
    /// Facts of the run for the header.
    pub run_facts: Vec<(String, String)>,
    /// The sections, in order.
    pub sections: Vec<Section>,
}

/// A titled part of the page.
#[derive(Debug, Serialize)]
pub struct Section {
    /// Anchor id.
    pub id: &'static str,
    /// The title, in the spec's words.
    pub title: String,
    /// Why the section has nothing to show, when so.
    pub empty: Option<String>,
    /// The content.
    pub blocks: Vec<Block>,
}

/// One piece of a section.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Block {
    /// Headline numbers.
    Cards {
        /// The cards.
        cards: Vec<Card>,
    },
    /// Charts side by side under one heading.
    Charts {
        /// The heading.
        heading: String,
        /// The charts.
        charts: Vec<Figure>,
    },
    /// A table of values.
    Table {
        /// The heading.
        heading: String,
        /// Column heads.
        head: Vec<String>,
        /// Rows of cells.
        rows: Vec<Vec<Cell>>,
    },
    /// A sentence.
    Note {
        /// The heading (may be empty).
        heading: String,
        /// The text.
        text: String,
    },
    /// A bulleted list.
    List {
        /// The heading.
        heading: String,
        /// The items.
        items: Vec<String>,
    },
}

/// A chart with its caption.
#[derive(Debug, Serialize)]
pub struct Figure {
    /// The caption.
    pub caption: String,
    /// The `<svg>` element.
    pub svg: String,
    /// Small multiples are drawn smaller.
    pub small: bool,
}

/// A headline number with the month before.
#[derive(Debug, Serialize)]
pub struct Card {
    /// The metric's name.
    pub label: String,
    /// Its value in the last complete month.
    pub value: Cell,
    /// The month before, named.
    pub previous_label: String,
    /// Its value in the month before.
    pub previous: Cell,
    /// The change, or empty when it cannot be computed.
    pub change: String,
}

/// A table cell or number: the text shown and its `data-*` attributes.
#[derive(Debug, Serialize)]
pub struct Cell {
    /// The text shown.
    pub text: String,
    /// The `data-*` attributes, already escaped ([`CellRef::attributes`]).
    pub attributes: String,
    /// Right-aligned.
    pub numeric: bool,
}

impl Cell {
    fn text(text: impl Into<String>) -> Cell {
        Cell { text: text.into(), attributes: String::new(), numeric: false }
    }

    fn number(text: String) -> Cell {
        Cell { text, attributes: String::new(), numeric: true }
    }

    fn value(unit: Unit, reference: CellRef) -> Cell {
        Cell { text: unit.format_option(reference.value), attributes: reference.attributes(), numeric: true }
    }
}

/// Builds the page from the manifest, the tables and the latest ingest.
pub fn build(
    manifest: &ManifestView,
    tables: &BTreeMap<String, Table>,
    ingest: Option<&LatestIngest>,
) -> Result<Page, ReportError> {
    let timezone = manifest.setting("timezone", "UTC");
    let currency = manifest.setting("currency", "EUR");
    let context = format!("as of {} · reporting zone {timezone} · currency {currency}", manifest.as_of);
    let kpis = tables.get("kpi_monthly").map(Kpis::new).transpose()?;
    let months = kpis.as_ref().map(|kpis| Months::of(&kpis.periods)).unwrap_or_default();
    let builder = Builder { manifest, tables, kpis: kpis.as_ref(), months, currency: &currency };
    let sections = vec![
        builder.headline(),
        builder.trends(),
        builder.cohorts()?,
        builder.pipeline()?,
        builder.reps()?,
        builder.campaigns()?,
        builder.customers()?,
        builder.data_quality(ingest),
    ];
    let run_facts = vec![
        ("as_of".to_owned(), manifest.as_of.clone()),
        ("reporting zone".to_owned(), timezone),
        ("currency".to_owned(), currency.clone()),
        ("crmkpi".to_owned(), manifest.crmkpi_version.clone()),
        ("events in the lake up to as_of".to_owned(), grouped(manifest.lake.events as f64, 0)),
    ];
    Ok(Page { title: format!("crmkpi report as of {}", manifest.as_of), context, run_facts, sections })
}

/// One row of `cohort_retention` as the heatmap draws it.
struct CohortCell {
    cohort: String,
    months_since: usize,
    size: Option<f64>,
    rate: Option<f64>,
    complete: bool,
}

/// `kpi_monthly` by metric and segment.
struct Kpis {
    /// The months of segment `all`, in order.
    periods: Vec<String>,
    /// (metric, segment) → period → value.
    values: BTreeMap<(String, String), BTreeMap<String, Option<f64>>>,
}

impl Kpis {
    fn new(table: &Table) -> Result<Kpis, ReportError> {
        let periods = table.strings("period")?;
        let metrics = table.strings("metric")?;
        let segments = table.strings("segment")?;
        let values = table.numbers("value")?;
        let mut by_metric: BTreeMap<(String, String), BTreeMap<String, Option<f64>>> = BTreeMap::new();
        let mut all_periods = BTreeSet::new();
        for (((period, metric), segment), value) in periods.into_iter().zip(metrics).zip(segments).zip(values) {
            let (Some(period), Some(metric), Some(segment)) = (period, metric, segment) else { continue };
            if segment == "all" {
                all_periods.insert(period.clone());
            }
            by_metric.entry((metric, segment)).or_default().insert(period, value);
        }
        Ok(Kpis { periods: all_periods.into_iter().collect(), values: by_metric })
    }

    fn value(&self, metric: &str, period: &str) -> Option<f64> {
        self.values.get(&(metric.to_owned(), "all".to_owned())).and_then(|values| values.get(period).copied().flatten())
    }

    /// The cell of `metric` in `period` for segment `all`.
    fn reference(&self, metric: &str, period: &str) -> CellRef {
        CellRef {
            table: "kpi_monthly",
            key: format!("{period}|{metric}|all"),
            column: "value",
            value: self.value(metric, period),
        }
    }

    fn series(&self, metric: &str, name: &str) -> Series {
        let points = self
            .periods
            .iter()
            .map(|period| {
                let reference = self.reference(metric, period);
                Point { value: reference.value, cell: Some(reference) }
            })
            .collect();
        Series { name: name.to_owned(), points }
    }

    /// Whether `metric` is positive in some month.
    fn any_positive(&self, metric: &str) -> bool {
        self.values
            .get(&(metric.to_owned(), "all".to_owned()))
            .is_some_and(|values| values.values().any(|value| value.is_some_and(|value| value > 0.0)))
    }
}

/// The months the headline compares: the last complete month (the month before the month of
/// `as_of`, like `cohort_retention.is_complete`) and the month before it.
#[derive(Debug, Default, Clone)]
struct Months {
    last_complete: Option<String>,
    previous: Option<String>,
}

impl Months {
    fn of(periods: &[String]) -> Months {
        let count = periods.len();
        Months {
            last_complete: count.checked_sub(2).and_then(|index| periods.get(index)).cloned(),
            previous: count.checked_sub(3).and_then(|index| periods.get(index)).cloned(),
        }
    }
}

struct Builder<'a> {
    manifest: &'a ManifestView,
    tables: &'a BTreeMap<String, Table>,
    kpis: Option<&'a Kpis>,
    months: Months,
    currency: &'a str,
}

/// A trend chart: caption, unit, the metrics and their legend names.
struct TrendChart {
    caption: &'static str,
    unit: Unit,
    metrics: &'static [(&'static str, &'static str)],
}

/// A group of trend charts, with the metric whose absence empties it and why.
struct TrendGroup {
    heading: &'static str,
    present_when: &'static str,
    absent: &'static str,
    charts: &'static [TrendChart],
}

const TRENDS: &[TrendGroup] = &[
    TrendGroup {
        heading: "Revenue and orders",
        present_when: "orders",
        absent: "no orders in the lake",
        charts: &[
            TrendChart { caption: "Revenue", unit: Unit::Money, metrics: &[("revenue", "revenue")] },
            TrendChart { caption: "Orders", unit: Unit::Count, metrics: &[("orders", "orders")] },
        ],
    },
    TrendGroup {
        heading: "New and churned customers, churn rate and retention rate",
        present_when: "customers_end",
        absent: "no customers in the lake",
        charts: &[
            TrendChart {
                caption: "New and churned customers",
                unit: Unit::Count,
                metrics: &[("new_customers", "new customers"), ("churned_customers", "churned customers")],
            },
            TrendChart {
                caption: "Churn rate and retention rate",
                unit: Unit::Fraction,
                metrics: &[("churn_rate", "churn rate"), ("retention_rate", "retention rate")],
            },
        ],
    },
    TrendGroup {
        heading: "NPS, CSAT and CES",
        present_when: "nps_responses",
        absent: "no survey answers in the lake",
        charts: &[
            TrendChart { caption: "NPS", unit: Unit::Points, metrics: &[("nps", "NPS")] },
            TrendChart { caption: "CSAT (share of answers ≥ 4)", unit: Unit::Percent, metrics: &[("csat", "CSAT")] },
            TrendChart {
                caption: "CSAT and CES mean scores",
                unit: Unit::Score,
                metrics: &[("csat_mean", "CSAT mean"), ("ces_mean", "CES mean")],
            },
        ],
    },
    TrendGroup {
        heading: "Win rate and pipeline value",
        present_when: "pipeline_open_deals",
        absent: "no deals in the lake",
        charts: &[
            TrendChart {
                caption: "Win rate",
                unit: Unit::Fraction,
                metrics: &[("win_rate", "win rate"), ("win_rate_amount", "win rate by amount")],
            },
            TrendChart {
                caption: "Pipeline value (open deals at month end)",
                unit: Unit::Money,
                metrics: &[("pipeline_value", "pipeline value")],
            },
        ],
    },
    TrendGroup {
        heading: "Lead conversion and lead response time",
        present_when: "leads_created",
        absent: "no leads in the lake",
        charts: &[
            TrendChart {
                caption: "Lead conversion and qualification rates",
                unit: Unit::Fraction,
                metrics: &[("lead_conversion_rate", "conversion"), ("lead_qualification_rate", "qualification")],
            },
            TrendChart {
                caption: "Lead response time (hours)",
                unit: Unit::Hours,
                metrics: &[("lead_response_hours_mean", "mean"), ("lead_response_hours_median", "median")],
            },
        ],
    },
    TrendGroup {
        heading: "Ticket first response and resolution times",
        present_when: "tickets_opened",
        absent: "no tickets in the lake",
        charts: &[
            TrendChart {
                caption: "First response time (minutes)",
                unit: Unit::Minutes,
                metrics: &[
                    ("first_response_minutes_mean", "mean"),
                    ("first_response_minutes_median", "median"),
                    ("first_response_business_minutes_mean", "mean, business minutes"),
                ],
            },
            TrendChart {
                caption: "Resolution time (minutes)",
                unit: Unit::Minutes,
                metrics: &[
                    ("resolution_minutes_mean", "mean"),
                    ("resolution_minutes_median", "median"),
                    ("resolution_business_minutes_mean", "mean, business minutes"),
                ],
            },
        ],
    },
];

/// The headline metrics: name in kpi_monthly, label, unit.
const HEADLINE: &[(&str, &str, Unit)] = &[
    ("revenue", "Revenue", Unit::Money),
    ("new_customers", "New customers", Unit::Count),
    ("churn_rate", "Churn rate", Unit::Fraction),
    ("nps", "NPS", Unit::Points),
    ("win_rate", "Win rate", Unit::Fraction),
    ("lead_conversion_rate", "Lead conversion rate", Unit::Fraction),
    ("first_response_minutes_median", "First response time, median (minutes)", Unit::Minutes),
];

fn section(id: &'static str, title: impl Into<String>, blocks: Vec<Block>) -> Section {
    Section { id, title: title.into(), empty: None, blocks }
}

fn empty_section(id: &'static str, title: impl Into<String>, why: impl Into<String>) -> Section {
    Section { id, title: title.into(), empty: Some(why.into()), blocks: Vec::new() }
}

fn not_computed(table: &str) -> String {
    format!("table {table} was not computed in this run (it was left out with --tables)")
}

/// A point carrying its cell.
fn point(reference: CellRef) -> Point {
    Point { value: reference.value, cell: Some(reference) }
}

/// Text of a key value: the value, or `(none)` for a null.
fn label(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "(none)".to_owned())
}

impl Builder<'_> {
    fn money_label(&self, what: &str) -> String {
        format!("{what} ({})", self.currency)
    }

    fn headline(&self) -> Section {
        let id = "headline";
        let Some(kpis) = self.kpis else {
            return empty_section(id, "Headline numbers", not_computed("kpi_monthly"));
        };
        let Some(month) = &self.months.last_complete else {
            return empty_section(
                id,
                "Headline numbers",
                "no complete month yet: the lake's events all fall in the month of as_of",
            );
        };
        let previous = self.months.previous.clone().unwrap_or_default();
        let cards = HEADLINE
            .iter()
            .map(|(metric, name, unit)| {
                let current = kpis.reference(metric, month);
                let before = kpis.reference(metric, &previous);
                let change = unit.change(current.value, before.value).unwrap_or_default();
                let name = if *metric == "revenue" { self.money_label(name) } else { (*name).to_owned() };
                Card {
                    label: name,
                    value: Cell::value(*unit, current),
                    previous_label: if previous.is_empty() { String::new() } else { month_name(&previous) },
                    previous: Cell::value(*unit, before),
                    change,
                }
            })
            .collect();
        section(
            id,
            format!("Headline numbers of {}, the last complete month", month_name(month)),
            vec![Block::Cards { cards }],
        )
    }

    fn trends(&self) -> Section {
        let id = "trends";
        let title = "Monthly trends";
        let Some(kpis) = self.kpis else { return empty_section(id, title, not_computed("kpi_monthly")) };
        let mut blocks = vec![Block::Note {
            heading: String::new(),
            text: format!(
                "Segment all, by calendar month in the reporting zone. The shaded last month, {}, runs up to as_of and is not complete.",
                kpis.periods.last().map(|period| month_name(period)).unwrap_or_default()
            ),
        }];
        for group in TRENDS {
            if !kpis.any_positive(group.present_when) {
                blocks.push(Block::Note { heading: group.heading.to_owned(), text: group.absent.to_owned() });
                continue;
            }
            let charts = group
                .charts
                .iter()
                .map(|trend| {
                    let unit_label = match trend.unit {
                        Unit::Money => self.currency.to_owned(),
                        Unit::Fraction | Unit::Percent => "%".to_owned(),
                        Unit::Points => "points".to_owned(),
                        Unit::Score => "score".to_owned(),
                        Unit::Hours => "hours".to_owned(),
                        Unit::Minutes => "minutes".to_owned(),
                        Unit::Count | Unit::Multiple => String::new(),
                    };
                    let chart = LineChart {
                        title: trend.caption.to_owned(),
                        unit: trend.unit,
                        unit_label,
                        periods: &kpis.periods,
                        series: trend.metrics.iter().map(|(metric, name)| kpis.series(metric, name)).collect(),
                        partial_last: true,
                    };
                    Figure { caption: trend.caption.to_owned(), svg: chart::line_chart(&chart), small: false }
                })
                .collect();
            blocks.push(Block::Charts { heading: group.heading.to_owned(), charts });
        }
        section(id, title, blocks)
    }

    fn cohorts(&self) -> Result<Section, ReportError> {
        let id = "cohorts";
        let title = "Cohort retention";
        let Some(table) = self.tables.get("cohort_retention") else {
            return Ok(empty_section(id, title, not_computed("cohort_retention")));
        };
        if table.height() == 0 {
            return Ok(empty_section(id, title, "no customers in the lake: no order_placed up to as_of"));
        }
        let segments = table.strings("segment")?;
        let cohort_months = table.strings("cohort_month")?;
        let months_since = table.numbers("months_since")?;
        let sizes = table.numbers("cohort_size")?;
        let rates = table.numbers("retention_rate")?;
        let complete = table.numbers("is_complete")?;
        let mut by_segment: BTreeMap<String, Vec<CohortCell>> = BTreeMap::new();
        for index in 0..table.height() {
            let (Some(segment), Some(cohort), Some(since)) =
                (&segments[index], &cohort_months[index], months_since[index])
            else {
                continue;
            };
            by_segment.entry(segment.clone()).or_default().push(CohortCell {
                cohort: cohort.clone(),
                months_since: since.max(0.0) as usize,
                size: sizes[index],
                rate: rates[index],
                complete: complete[index].is_some_and(|value| value > 0.0),
            });
        }
        // One colour scale for all segments: the largest rate of segment all after month 0,
        // rounded up to 10 %.
        let largest = by_segment
            .get("all")
            .into_iter()
            .flatten()
            .filter(|row| row.months_since > 0)
            .filter_map(|row| row.rate)
            .fold(0.0f64, f64::max);
        let scale_max = ((largest * 10.0).ceil() / 10.0).clamp(0.1, 1.0);
        let heatmap = |segment: &str, rows: &[CohortCell], small: bool| {
            let cohorts: Vec<String> =
                rows.iter().map(|row| row.cohort.clone()).collect::<BTreeSet<_>>().into_iter().collect();
            let columns = rows.iter().map(|row| row.months_since).max().unwrap_or(0) + 1;
            let sizes: BTreeMap<&str, Option<f64>> =
                rows.iter().filter(|row| row.months_since == 0).map(|row| (row.cohort.as_str(), row.size)).collect();
            let cells = rows
                .iter()
                .map(|CohortCell { cohort, months_since: since, size, rate, complete }| HeatCell {
                    row: cohorts.iter().position(|name| name == cohort).unwrap_or(0),
                    column: *since,
                    value: *rate,
                    complete: *complete,
                    tooltip: format!(
                        "cohort {}, month {since}: {} of {}{}",
                        short_month(cohort),
                        Unit::Fraction.format_option(*rate),
                        Unit::Count.format_option(*size),
                        if *complete { "" } else { " (incomplete)" }
                    ),
                    cell: Some(CellRef {
                        table: "cohort_retention",
                        key: format!("{segment}|{cohort}|{since}"),
                        column: "retention_rate",
                        value: *rate,
                    }),
                })
                .collect();
            let row_labels = cohorts
                .iter()
                .map(|cohort| {
                    let size = sizes.get(cohort.as_str()).copied().flatten();
                    if small {
                        short_month(cohort)
                    } else {
                        format!("{} (n={})", short_month(cohort), Unit::Count.format_option(size))
                    }
                })
                .collect();
            chart::heatmap(&Heatmap {
                title: format!("Retention by cohort month, {segment}"),
                id: format!("heat-{}", segment.replace(|c: char| !c.is_ascii_alphanumeric(), "-")),
                rows: row_labels,
                columns: (0..columns).map(|index| index.to_string()).collect(),
                column_title: "months since the first order".to_owned(),
                cells,
                scale_max,
                cell_size: if small { 9.0 } else { 24.0 },
                show_values: !small,
                legend: !small,
            })
        };
        let mut blocks = vec![Block::Note {
            heading: String::new(),
            text:
                "Share of each cohort (customers by the month of their first order) with an order in the month shown; \
                   hatched cells are months that have not ended at as_of."
                    .to_owned(),
        }];
        if let Some(rows) = by_segment.get("all") {
            blocks.push(Block::Charts {
                heading: "Segment all".to_owned(),
                charts: vec![Figure {
                    caption: "all customers".to_owned(),
                    svg: heatmap("all", rows, false),
                    small: false,
                }],
            });
        }
        let channels: Vec<Figure> = by_segment
            .iter()
            .filter(|(segment, _)| segment.as_str() != "all")
            .map(|(segment, rows)| Figure { caption: segment.clone(), svg: heatmap(segment, rows, true), small: true })
            .collect();
        if !channels.is_empty() {
            blocks.push(Block::Charts { heading: "By acquisition channel".to_owned(), charts: channels });
        }
        Ok(section(id, title, blocks))
    }

    /// The stage order: configured win probabilities ascending, then the other stages by
    /// visits, most first, then name.
    fn stage_rank(&self, stage: &Option<String>, visits: Option<f64>) -> (u8, i64, i64, String) {
        let probability = stage.as_ref().and_then(|stage| {
            self.manifest
                .config
                .pointer(&format!("/pipeline/win_probability/{stage}"))
                .and_then(serde_json::Value::as_f64)
        });
        match probability {
            Some(probability) => (0, (probability * 1e6) as i64, 0, label(stage)),
            None => (1, 0, -(visits.unwrap_or(0.0) as i64), label(stage)),
        }
    }

    fn pipeline(&self) -> Result<Section, ReportError> {
        let id = "pipeline";
        let title = "Pipeline: stage conversion, stage durations and forecast";
        let (Some(durations), Some(forecast)) =
            (self.tables.get("stage_durations"), self.tables.get("pipeline_forecast"))
        else {
            return Ok(empty_section(id, title, not_computed("stage_durations or pipeline_forecast")));
        };
        if durations.height() == 0 && forecast.height() == 0 {
            return Ok(empty_section(id, title, "no deals in the lake"));
        }
        let mut blocks = Vec::new();
        if durations.height() > 0 {
            let stages = durations.strings("stage")?;
            let visits = durations.numbers("visits")?;
            let conversion = durations.numbers("conversion_rate")?;
            let median = durations.numbers("median_hours")?;
            let p90 = durations.numbers("p90_hours")?;
            let mut order: Vec<usize> = (0..stages.len()).collect();
            order.sort_by_key(|&index| self.stage_rank(&stages[index], visits[index]));
            let reference = |index: usize, column: &'static str, value: Option<f64>| CellRef {
                table: "stage_durations",
                key: stages[index].clone().unwrap_or_default(),
                column,
                value,
            };
            let funnel = Funnel {
                title: "Stage visits and conversion".to_owned(),
                stages: order
                    .iter()
                    .map(|&index| FunnelStage {
                        name: label(&stages[index]),
                        visits: point(reference(index, "visits", visits[index])),
                        conversion: point(reference(index, "conversion_rate", conversion[index])),
                    })
                    .collect(),
            };
            let bars = BarChart {
                title: "Stage durations, median and p90 (hours)".to_owned(),
                unit: Unit::Hours,
                unit_label: "hours".to_owned(),
                categories: order.iter().map(|&index| label(&stages[index])).collect(),
                series: vec![
                    Series {
                        name: "median".to_owned(),
                        points: order
                            .iter()
                            .map(|&index| point(reference(index, "median_hours", median[index])))
                            .collect(),
                    },
                    Series {
                        name: "p90".to_owned(),
                        points: order.iter().map(|&index| point(reference(index, "p90_hours", p90[index]))).collect(),
                    },
                ],
            };
            blocks.push(Block::Charts {
                heading: "Stage conversion and stage durations".to_owned(),
                charts: vec![
                    Figure {
                        caption: "Visits per stage; converted = (advanced + won) / ended visits".to_owned(),
                        svg: chart::funnel(&funnel),
                        small: false,
                    },
                    Figure {
                        caption: "Completed visits, hours".to_owned(),
                        svg: chart::bar_chart(&bars),
                        small: false,
                    },
                ],
            });
        }
        if forecast.height() == 0 {
            blocks.push(Block::Note {
                heading: "Forecast by stage".to_owned(),
                text: "no open deals at as_of".to_owned(),
            });
        } else {
            let stages = forecast.strings("stage")?;
            let open_deals = forecast.numbers("open_deals")?;
            let open_amount = forecast.numbers("open_amount")?;
            let probability = forecast.numbers("win_probability")?;
            let weighted = forecast.numbers("weighted_amount")?;
            let mut order: Vec<usize> = (0..stages.len()).collect();
            order.sort_by_key(|&index| self.stage_rank(&stages[index], open_deals[index]));
            let reference = |index: usize, column: &'static str, value: Option<f64>| CellRef {
                table: "pipeline_forecast",
                key: stages[index].clone().unwrap_or_default(),
                column,
                value,
            };
            let bars = BarChart {
                title: self.money_label("Open and weighted amount by stage"),
                unit: Unit::Money,
                unit_label: self.currency.to_owned(),
                categories: order.iter().map(|&index| label(&stages[index])).collect(),
                series: vec![
                    Series {
                        name: "open amount".to_owned(),
                        points: order
                            .iter()
                            .map(|&index| point(reference(index, "open_amount", open_amount[index])))
                            .collect(),
                    },
                    Series {
                        name: "weighted amount".to_owned(),
                        points: order
                            .iter()
                            .map(|&index| point(reference(index, "weighted_amount", weighted[index])))
                            .collect(),
                    },
                ],
            };
            blocks.push(Block::Charts {
                heading: "Forecast by stage".to_owned(),
                charts: vec![Figure {
                    caption: "Open deals at as_of; weighted = open amount × win probability".to_owned(),
                    svg: chart::bar_chart(&bars),
                    small: false,
                }],
            });
            blocks.push(Block::Table {
                heading: String::new(),
                head: vec![
                    "stage".to_owned(),
                    "open deals".to_owned(),
                    self.money_label("open amount"),
                    "win probability".to_owned(),
                    self.money_label("weighted amount"),
                ],
                rows: order
                    .iter()
                    .map(|&index| {
                        vec![
                            Cell::text(label(&stages[index])),
                            Cell::value(Unit::Count, reference(index, "open_deals", open_deals[index])),
                            Cell::value(Unit::Money, reference(index, "open_amount", open_amount[index])),
                            Cell::value(Unit::Fraction, reference(index, "win_probability", probability[index])),
                            Cell::value(Unit::Money, reference(index, "weighted_amount", weighted[index])),
                        ]
                    })
                    .collect(),
            });
        }
        Ok(section(id, title, blocks))
    }

    /// The latest period of `periods` not after the last complete month (any period when
    /// there is no complete month).
    fn reported_period(&self, periods: &[Option<String>]) -> Option<String> {
        periods
            .iter()
            .flatten()
            .filter(|period| self.months.last_complete.as_ref().is_none_or(|last| *period <= last))
            .max()
            .cloned()
    }

    fn reps(&self) -> Result<Section, ReportError> {
        let id = "reps";
        let title = "Reps and lost reasons";
        let (Some(reps), Some(lost)) = (self.tables.get("rep_performance"), self.tables.get("lost_reasons")) else {
            return Ok(empty_section(id, title, not_computed("rep_performance or lost_reasons")));
        };
        let periods = reps.strings("period")?;
        let Some(month) = self.reported_period(&periods) else {
            return Ok(empty_section(id, title, "no deals closed in the lake up to the last complete month"));
        };
        let owners = reps.strings("owner_id")?;
        let won = reps.numbers("deals_won")?;
        let lost_deals = reps.numbers("deals_lost")?;
        let win_rate = reps.numbers("win_rate")?;
        let won_amount = reps.numbers("won_amount")?;
        let mut rows: Vec<usize> =
            (0..reps.height()).filter(|&index| periods[index].as_ref() == Some(&month)).collect();
        rows.sort_by(|&a, &b| {
            won_amount[b]
                .unwrap_or(0.0)
                .total_cmp(&won_amount[a].unwrap_or(0.0))
                .then_with(|| owners[a].cmp(&owners[b]))
        });
        let reference = |index: usize, column: &'static str, value: Option<f64>| CellRef {
            table: "rep_performance",
            key: format!("{month}|{}", owners[index].clone().unwrap_or_default()),
            column,
            value,
        };
        let bars = BarChart {
            title: self.money_label("Won amount by rep"),
            unit: Unit::Money,
            unit_label: self.currency.to_owned(),
            categories: rows.iter().map(|&index| label(&owners[index])).collect(),
            series: vec![Series {
                name: "won amount".to_owned(),
                points: rows.iter().map(|&index| point(reference(index, "won_amount", won_amount[index]))).collect(),
            }],
        };
        let rates = BarChart {
            title: "Win rate by rep".to_owned(),
            unit: Unit::Fraction,
            unit_label: "%".to_owned(),
            categories: rows.iter().map(|&index| label(&owners[index])).collect(),
            series: vec![Series {
                name: "win rate".to_owned(),
                points: rows.iter().map(|&index| point(reference(index, "win_rate", win_rate[index]))).collect(),
            }],
        };
        let mut blocks = vec![
            Block::Charts {
                heading: format!("Reps in {}, by the month deals closed", month_name(&month)),
                charts: vec![
                    Figure { caption: self.money_label("Won amount"), svg: chart::bar_chart(&bars), small: false },
                    Figure { caption: "Win rate".to_owned(), svg: chart::bar_chart(&rates), small: false },
                ],
            },
            Block::Table {
                heading: String::new(),
                head: vec![
                    "rep (owner_id)".to_owned(),
                    "deals won".to_owned(),
                    "deals lost".to_owned(),
                    "win rate".to_owned(),
                    self.money_label("won amount"),
                ],
                rows: rows
                    .iter()
                    .map(|&index| {
                        vec![
                            Cell::text(label(&owners[index])),
                            Cell::value(Unit::Count, reference(index, "deals_won", won[index])),
                            Cell::value(Unit::Count, reference(index, "deals_lost", lost_deals[index])),
                            Cell::value(Unit::Fraction, reference(index, "win_rate", win_rate[index])),
                            Cell::value(Unit::Money, reference(index, "won_amount", won_amount[index])),
                        ]
                    })
                    .collect(),
            },
        ];
        let lost_periods = lost.strings("period")?;
        let reasons = lost.strings("reason")?;
        let deals_lost = lost.numbers("deals_lost")?;
        let amount_lost = lost.numbers("amount_lost")?;
        let mut rows: Vec<usize> =
            (0..lost.height()).filter(|&index| lost_periods[index].as_ref() == Some(&month)).collect();
        let heading = format!("Lost reasons in {}", month_name(&month));
        if rows.is_empty() {
            blocks.push(Block::Note { heading, text: format!("no deals lost in {}", month_name(&month)) });
            return Ok(section(id, title, blocks));
        }
        rows.sort_by(|&a, &b| {
            deals_lost[b]
                .unwrap_or(0.0)
                .total_cmp(&deals_lost[a].unwrap_or(0.0))
                .then_with(|| reasons[a].cmp(&reasons[b]))
        });
        let reference = |index: usize, column: &'static str, value: Option<f64>| CellRef {
            table: "lost_reasons",
            key: format!("{month}|{}", reasons[index].clone().unwrap_or_default()),
            column,
            value,
        };
        let bars = BarChart {
            title: "Deals lost by reason".to_owned(),
            unit: Unit::Count,
            unit_label: "deals".to_owned(),
            categories: rows.iter().map(|&index| label(&reasons[index])).collect(),
            series: vec![Series {
                name: "deals lost".to_owned(),
                points: rows.iter().map(|&index| point(reference(index, "deals_lost", deals_lost[index]))).collect(),
            }],
        };
        blocks.push(Block::Charts {
            heading,
            charts: vec![Figure { caption: "Deals lost".to_owned(), svg: chart::bar_chart(&bars), small: false }],
        });
        blocks.push(Block::Table {
            heading: String::new(),
            head: vec!["reason".to_owned(), "deals lost".to_owned(), self.money_label("amount lost")],
            rows: rows
                .iter()
                .map(|&index| {
                    vec![
                        Cell::text(label(&reasons[index])),
                        Cell::value(Unit::Count, reference(index, "deals_lost", deals_lost[index])),
                        Cell::value(Unit::Money, reference(index, "amount_lost", amount_lost[index])),
                    ]
                })
                .collect(),
        });
        Ok(section(id, title, blocks))
    }

    fn campaigns(&self) -> Result<Section, ReportError> {
        let id = "campaigns";
        let title = "Campaigns: response rate, spend, attributed revenue and ROAS";
        let Some(table) = self.tables.get("campaigns") else {
            return Ok(empty_section(id, title, not_computed("campaigns")));
        };
        if table.height() == 0 {
            return Ok(empty_section(id, title, "no campaigns in the lake"));
        }
        let ids = table.strings("campaign_id")?;
        let sent = table.numbers("sent")?;
        let responded = table.numbers("responded")?;
        let response_rate = table.numbers("response_rate")?;
        let spend = table.numbers("spend")?;
        let revenue = table.numbers("attributed_revenue")?;
        let roas = table.numbers("roas")?;
        let reference = |index: usize, column: &'static str, value: Option<f64>| CellRef {
            table: "campaigns",
            key: ids[index].clone().unwrap_or_default(),
            column,
            value,
        };
        let mut by_roas: Vec<usize> = (0..table.height()).collect();
        by_roas.sort_by(|&a, &b| {
            let key = |index: usize| roas[index].unwrap_or(f64::NEG_INFINITY);
            key(b).total_cmp(&key(a)).then_with(|| ids[a].cmp(&ids[b]))
        });
        let bars = BarChart {
            title: "ROAS by campaign".to_owned(),
            unit: Unit::Multiple,
            unit_label: "attributed revenue / spend".to_owned(),
            categories: by_roas.iter().map(|&index| label(&ids[index])).collect(),
            series: vec![Series {
                name: "ROAS".to_owned(),
                points: by_roas.iter().map(|&index| point(reference(index, "roas", roas[index]))).collect(),
            }],
        };
        let blocks = vec![
            Block::Charts {
                heading: "Return on ad spend".to_owned(),
                charts: vec![Figure {
                    caption: "ROAS, highest first (no value: no spend recorded)".to_owned(),
                    svg: chart::bar_chart(&bars),
                    small: false,
                }],
            },
            Block::Table {
                heading: "All campaigns".to_owned(),
                head: vec![
                    "campaign".to_owned(),
                    "sent".to_owned(),
                    "responded".to_owned(),
                    "response rate".to_owned(),
                    self.money_label("spend"),
                    self.money_label("attributed revenue"),
                    "ROAS".to_owned(),
                ],
                rows: (0..table.height())
                    .map(|index| {
                        vec![
                            Cell::text(label(&ids[index])),
                            Cell::value(Unit::Count, reference(index, "sent", sent[index])),
                            Cell::value(Unit::Count, reference(index, "responded", responded[index])),
                            Cell::value(Unit::Fraction, reference(index, "response_rate", response_rate[index])),
                            Cell::value(Unit::Money, reference(index, "spend", spend[index])),
                            Cell::value(Unit::Money, reference(index, "attributed_revenue", revenue[index])),
                            Cell::value(Unit::Multiple, reference(index, "roas", roas[index])),
                        ]
                    })
                    .collect(),
            },
        ];
        Ok(section(id, title, blocks))
    }

    fn customers(&self) -> Result<Section, ReportError> {
        let id = "customers";
        let title = "Customers and customer lifetime value (CLV)";
        let mut blocks = Vec::new();
        match self.tables.get("customers") {
            None => blocks.push(Block::Note { heading: "Customers".to_owned(), text: not_computed("customers") }),
            Some(table) if table.height() == 0 => {
                return Ok(empty_section(id, title, "no customers in the lake: no order_placed up to as_of"));
            }
            Some(table) => {
                let predicted = table.numbers("predicted_clv")?;
                let p_alive = table.numbers("p_alive")?;
                let alive = table.numbers("is_alive")?;
                let alive_count = alive.iter().filter(|value| value.is_some_and(|value| value > 0.0)).count();
                let missing_clv = predicted.iter().filter(|value| value.is_none()).count();
                blocks.push(Block::Note {
                    heading: String::new(),
                    text: format!(
                        "{} customers, {} of them alive at as_of (an order in the last churn_after_days); predicted CLV over the configured horizon{}.",
                        grouped(table.height() as f64, 0),
                        grouped(alive_count as f64, 0),
                        if missing_clv > 0 { format!(", null for {} customers (no spend model)", grouped(missing_clv as f64, 0)) } else { String::new() }
                    ),
                });
                blocks.push(Block::Charts {
                    heading: "Distributions".to_owned(),
                    charts: vec![
                        Figure {
                            caption: self.money_label("Predicted CLV"),
                            svg: chart::histogram(&Histogram {
                                title: "Customers by predicted CLV".to_owned(),
                                x_label: self.money_label("predicted CLV"),
                                bins: value_bins(&predicted),
                            }),
                            small: false,
                        },
                        Figure {
                            caption: "P(alive)".to_owned(),
                            svg: chart::histogram(&Histogram {
                                title: "Customers by P(alive)".to_owned(),
                                x_label: "P(alive)".to_owned(),
                                bins: fraction_bins(&p_alive),
                            }),
                            small: false,
                        },
                    ],
                });
            }
        }
        match self.tables.get("clv_model") {
            None => blocks.push(Block::Note { heading: "Model fits".to_owned(), text: not_computed("clv_model") }),
            Some(table) => {
                let models = table.strings("model")?;
                let parameters = table.strings("parameter")?;
                let values = table.numbers("value")?;
                let rows = (0..table.height())
                    .map(|index| {
                        let parameter = label(&parameters[index]);
                        let unit = match parameter.as_str() {
                            "customers" | "iterations" | "converged" => Unit::Count,
                            _ => Unit::Score,
                        };
                        let reference = CellRef {
                            table: "clv_model",
                            key: format!("{}|{parameter}", models[index].clone().unwrap_or_default()),
                            column: "value",
                            value: values[index],
                        };
                        let text = match (parameter.as_str(), reference.value) {
                            ("r" | "alpha" | "a" | "b" | "p" | "q" | "v", Some(value)) => format!("{value:.4}"),
                            ("converged", Some(value)) => if value > 0.0 { "yes" } else { "no" }.to_owned(),
                            _ => unit.format_option(reference.value),
                        };
                        vec![
                            Cell::text(label(&models[index])),
                            Cell::text(parameter),
                            Cell { text, attributes: reference.attributes(), numeric: true },
                        ]
                    })
                    .collect();
                blocks.push(Block::Table {
                    heading: "Model fits (BG/NBD and Gamma-Gamma)".to_owned(),
                    head: vec!["model".to_owned(), "parameter".to_owned(), "value".to_owned()],
                    rows,
                });
            }
        }
        let model_warnings: Vec<String> = self
            .manifest
            .warnings
            .iter()
            .filter(|warning| warning.contains("BG/NBD") || warning.contains("Gamma-Gamma"))
            .cloned()
            .collect();
        if model_warnings.is_empty() {
            blocks.push(Block::Note {
                heading: "Model warnings".to_owned(),
                text: "none: both models were fitted".to_owned(),
            });
        } else {
            blocks.push(Block::List { heading: "Model warnings".to_owned(), items: model_warnings });
        }
        Ok(section(id, title, blocks))
    }

    fn data_quality(&self, ingest: Option<&LatestIngest>) -> Section {
        let mut blocks = Vec::new();
        if self.manifest.warnings.is_empty() {
            blocks.push(Block::Note { heading: "Warnings of this run".to_owned(), text: "none".to_owned() });
        } else {
            blocks.push(Block::List {
                heading: "Warnings of this run".to_owned(),
                items: self.manifest.warnings.clone(),
            });
        }
        match ingest {
            None => blocks.push(Block::Note {
                heading: "Rejects of the latest ingest".to_owned(),
                text: "not shown: the report was rendered without the lake (crmkpi report --out DIR --lake LAKE adds them)"
                    .to_owned(),
            }),
            Some(ingest) => {
                let rejected: u64 = ingest.rejected.values().sum();
                blocks.push(Block::Note {
                    heading: format!("Rejects of the latest ingest, {}", ingest.run_id),
                    text: format!(
                        "finished {}: {} records read, {} accepted, {} duplicates, {} rejected{}",
                        ingest.finished_at,
                        grouped(ingest.read as f64, 0),
                        grouped(ingest.accepted as f64, 0),
                        grouped(ingest.duplicates as f64, 0),
                        grouped(rejected as f64, 0),
                        if rejected == 0 { "" } else { " (by reason below; the records are in the lake's rejects/)" }
                    ),
                });
                if rejected > 0 {
                    let mut reasons: Vec<(&String, &u64)> = ingest.rejected.iter().collect();
                    reasons.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
                    let bars = BarChart {
                        title: "Rejected records by reason".to_owned(),
                        unit: Unit::Count,
                        unit_label: "records".to_owned(),
                        categories: reasons.iter().map(|(reason, _)| (*reason).clone()).collect(),
                        series: vec![Series {
                            name: "rejected".to_owned(),
                            points: reasons.iter().map(|(_, count)| Point { value: Some(**count as f64), cell: None }).collect(),
                        }],
                    };
                    blocks.push(Block::Charts {
                        heading: String::new(),
                        charts: vec![Figure { caption: "Rejected records".to_owned(), svg: chart::bar_chart(&bars), small: false }],
                    });
                }
            }
        }
        blocks.push(Block::Table {
            heading: "Events in the lake up to as_of, by event type".to_owned(),
            head: vec!["event type".to_owned(), "events".to_owned()],
            rows: self
                .manifest
                .lake
                .per_event_type
                .iter()
                .map(|(event_type, count)| {
                    vec![Cell::text(event_type.clone()), Cell::number(grouped(*count as f64, 0))]
                })
                .collect(),
        });
        section("data-quality", "Data quality", blocks)
    }
}

/// Counts of `values` in ten bins of width 0.1 over `[0, 1]`.
fn fraction_bins(values: &[Option<f64>]) -> Vec<(String, u64)> {
    let mut counts = [0u64; 10];
    for value in values.iter().flatten() {
        counts[((value * 10.0).floor().max(0.0) as usize).min(9)] += 1;
    }
    counts.iter().enumerate().map(|(index, count)| (format!("{}–{} %", index * 10, index * 10 + 10), *count)).collect()
}

/// Counts of the non-negative `values` in round-edged bins up to their 95th percentile, the
/// last bin open-ended.
fn value_bins(values: &[Option<f64>]) -> Vec<(String, u64)> {
    let mut sorted: Vec<f64> = values.iter().flatten().copied().collect();
    sorted.sort_by(f64::total_cmp);
    let Some(&largest) = sorted.last() else { return Vec::new() };
    let upper = sorted[((sorted.len() - 1) as f64 * 0.95).round() as usize].max(largest.min(1.0));
    let edges = chart::nice_ticks(0.0, upper, 12);
    let step = edges.get(1).copied().unwrap_or(1.0) - edges.first().copied().unwrap_or(0.0);
    let bins = edges.len().saturating_sub(1).max(1);
    let mut counts = vec![0u64; bins + 1];
    for value in &sorted {
        let index = ((value - edges[0]) / step).floor().max(0.0) as usize;
        counts[index.min(bins)] += 1;
    }
    let unit = Unit::Money;
    let mut labelled: Vec<(String, u64)> = counts
        .iter()
        .enumerate()
        .map(|(index, count)| {
            let from = edges[0] + step * index as f64;
            if index == bins {
                (format!("≥ {}", unit.tick(from)), *count)
            } else {
                (format!("{}–{}", unit.tick(from), unit.tick(from + step)), *count)
            }
        })
        .collect();
    if labelled.last().is_some_and(|(_, count)| *count == 0) {
        labelled.pop();
    }
    labelled
}

#[cfg(test)]
mod tests {
    use super::super::format::exact;
    use super::*;

    #[test]
    fn the_last_complete_month_is_the_one_before_as_ofs_month() {
        let periods: Vec<String> = ["2025-04-01", "2025-05-01", "2025-06-01"].map(str::to_owned).to_vec();
        let months = Months::of(&periods);
        assert_eq!(months.last_complete.as_deref(), Some("2025-05-01"));
        assert_eq!(months.previous.as_deref(), Some("2025-04-01"));
        assert!(Months::of(&periods[..1]).last_complete.is_none());
    }

    #[test]
    fn bins_cover_every_value() {
        let values = [Some(0.0), Some(0.05), Some(0.95), Some(1.0), None];
        let bins = fraction_bins(&values);
        assert_eq!(bins.len(), 10);
        assert_eq!(bins.iter().map(|(_, count)| count).sum::<u64>(), 4);
        assert_eq!(bins[9], ("90–100 %".to_owned(), 2));
        let money: Vec<Option<f64>> =
            (0..100).map(|value| Some(f64::from(value) * 10.0)).chain([Some(50_000.0)]).collect();
        let bins = value_bins(&money);
        assert_eq!(bins.iter().map(|(_, count)| count).sum::<u64>(), 101);
        assert!(bins.last().is_some_and(|(label, count)| label.starts_with('≥') && *count >= 1), "{bins:?}");
        assert!(value_bins(&[None]).is_empty());
    }

    #[test]
    fn exact_values_follow_the_cells() {
        let cell =
            Cell::value(Unit::Fraction, CellRef { table: "t", key: "k".to_owned(), column: "c", value: Some(0.25) });
        assert_eq!(cell.text, "25.0 %");
        assert!(cell.attributes.contains(&format!("data-value=\"{}\"", exact(Some(0.25)))));
    }
}

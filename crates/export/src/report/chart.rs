//! The report's small chart module: line charts over months, horizontal bar charts, column
//! histograms, a stage funnel and a heatmap, each written as one inline `<svg>` element with
//! axes, ticks, labels, a legend and `<title>` tooltips, and no script.
//!
//! Colours are the Okabe–Ito palette (distinguishable with every common colour-vision
//! deficiency) and lines also differ by dash pattern, so that a grey print still tells them
//! apart; the heatmap uses the viridis scale, which is perceptually uniform and readable in
//! grey. Every mark that shows a value of a table carries that value's [`CellRef`] as `data-*`
//! attributes. Coordinates are printed with one decimal, so the same input gives the same
//! bytes.

use std::fmt::Write as _;

use super::format::{Unit, exact, short_month};

/// The series colours (Okabe–Ito, without its yellow, which is too light on white).
const PALETTE: [&str; 6] = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9"];
/// Dash patterns by series, so that lines differ without colour too.
const DASHES: [&str; 4] = ["", "6 3", "2 3", "8 3 2 3"];
/// The viridis colour scale at 10 evenly spaced stops.
const VIRIDIS: [(u8, u8, u8); 10] = [
    (0x44, 0x01, 0x54),
    (0x48, 0x28, 0x78),
    (0x3e, 0x49, 0x89),
    (0x31, 0x68, 0x8e),
    (0x26, 0x82, 0x8e),
    (0x1f, 0x9e, 0x89),
    (0x35, 0xb7, 0x79),
    (0x6e, 0xce, 0x58),
    (0xb5, 0xde, 0x2b),
    (0xfd, 0xe7, 0x25),
];
const FONT: &str = r#"font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" font-size="11""#;
const AXIS_COLOUR: &str = "#666";
const GRID_COLOUR: &str = "#e3e3e3";

/// Where a shown value comes from: a table, the row's key columns joined by `|`, a column,
/// and the exact value.
#[derive(Debug, Clone, PartialEq)]
pub struct CellRef {
    /// The table's name.
    pub table: &'static str,
    /// The row's key column values joined by `|` (a null key is empty).
    pub key: String,
    /// The column shown.
    pub column: &'static str,
    /// The exact value (null: `None`).
    pub value: Option<f64>,
}

impl CellRef {
    /// The `data-table`, `data-key`, `data-column` and `data-value` attributes, each preceded
    /// by a space, escaped for HTML and SVG.
    pub fn attributes(&self) -> String {
        format!(
            r#" data-table="{}" data-key="{}" data-column="{}" data-value="{}""#,
            escape(self.table),
            escape(&self.key),
            escape(self.column),
            exact(self.value)
        )
    }
}

/// One value of a series: the value and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The value; null leaves a gap.
    pub value: Option<f64>,
    /// Its table cell, when it is one.
    pub cell: Option<CellRef>,
}

/// A named sequence of points, one per x position or category.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend's name.
    pub name: String,
    /// One point per x position or category.
    pub points: Vec<Point>,
}

/// Lines over months.
#[derive(Debug, Clone)]
pub struct LineChart<'a> {
    /// What the chart shows (its accessible name).
    pub title: String,
    /// How values are printed.
    pub unit: Unit,
    /// The y axis label (e.g. the currency).
    pub unit_label: String,
    /// The months (`YYYY-MM-DD`, first days), in order.
    pub periods: &'a [String],
    /// The lines.
    pub series: Vec<Series>,
    /// Shade the last month as running up to `as_of`.
    pub partial_last: bool,
}

/// Horizontal bars, one group per category.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// What the chart shows.
    pub title: String,
    /// How values are printed.
    pub unit: Unit,
    /// The value axis label.
    pub unit_label: String,
    /// The categories, top to bottom.
    pub categories: Vec<String>,
    /// One bar per category in each series.
    pub series: Vec<Series>,
}

/// Columns counting how many values fall in each bin.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// What the chart shows.
    pub title: String,
    /// The x axis label.
    pub x_label: String,
    /// The bins, left to right: label and count.
    pub bins: Vec<(String, u64)>,
}

/// One stage of a funnel.
#[derive(Debug, Clone)]
pub struct FunnelStage {
    /// The stage name.
    pub name: String,
    /// How many visits the stage had.
    pub visits: Point,
    /// The share of ended visits that advanced or were won.
    pub conversion: Point,
}

/// Stages as centred bars whose width is their visits, labelled with their conversion.
#[derive(Debug, Clone)]
pub struct Funnel {
    /// What the chart shows.
    pub title: String,
    /// The stages, first to last.
    pub stages: Vec<FunnelStage>,
}

/// One heatmap cell.
#[derive(Debug, Clone)]
pub struct HeatCell {
    /// Row index.
    pub row: usize,
    /// Column index.
    pub column: usize,
    /// The value in `[0, 1]`; null is drawn empty.
    pub value: Option<f64>,
    /// False marks the cell as incomplete (hatched).
    pub complete: bool,
    /// The tooltip.
    pub tooltip: String,
    /// Its table cell.
    pub cell: Option<CellRef>,
}

/// A grid of fractions coloured on the viridis scale.
#[derive(Debug, Clone)]
pub struct Heatmap {
    /// What the chart shows.
    pub title: String,
    /// A document-unique id prefix for the hatch pattern.
    pub id: String,
    /// Row labels, top to bottom.
    pub rows: Vec<String>,
    /// Column labels, left to right.
    pub columns: Vec<String>,
    /// Column axis title.
    pub column_title: String,
    /// The cells.
    pub cells: Vec<HeatCell>,
    /// The value drawn in the brightest colour (larger values are clamped to it).
    pub scale_max: f64,
    /// Cell edge in pixels.
    pub cell_size: f64,
    /// Print each value inside its cell.
    pub show_values: bool,
    /// Draw the colour legend.
    pub legend: bool,
}

/// `text` escaped for HTML and SVG text and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// A coordinate with one decimal.
fn n(value: f64) -> String {
    let value = if value.abs() < 0.05 { 0.0 } else { value };
    format!("{value:.1}")
}

/// Ticks for values of `unit`: counts get whole-number ticks.
fn unit_ticks(unit: Unit, min: f64, max: f64, target: usize) -> Vec<f64> {
    if unit == Unit::Count && max - min < target as f64 {
        return nice_ticks(min, min + target as f64, target);
    }
    nice_ticks(min, max, target)
}

/// Round tick values covering `[min, max]`, about `target` of them.
pub fn nice_ticks(min: f64, max: f64, target: usize) -> Vec<f64> {
    let (min, max) = if max > min {
        (min, max)
    } else if min == 0.0 {
        (0.0, 1.0)
    } else {
        (min - min.abs() * 0.5, max + max.abs() * 0.5)
    };
    let raw = (max - min) / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let normalised = raw / magnitude;
    let step = magnitude
        * if normalised < 1.5 {
            1.0
        } else if normalised < 3.0 {
            2.0
        } else if normalised < 7.0 {
            5.0
        } else {
            10.0
        };
    let first = (min / step).floor();
    let last = (max / step).ceil();
    let count = (last - first).round() as i64;
    (0..=count).map(|index| (first + index as f64) * step).collect()
}

fn svg_open(out: &mut String, width: f64, height: f64, title: &str) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{t}" {FONT}><title>{t}</title>"#,
        w = n(width),
        h = n(height),
        t = escape(title)
    );
}

/// Legend entries in a row starting at (`x`, `y`): a line or box in the series' style, then its name.
fn legend(out: &mut String, names: &[&str], x: f64, y: f64, boxes: bool) {
    let mut left = x;
    for (index, name) in names.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        if boxes {
            let _ = write!(out, r#"<rect x="{}" y="{}" width="12" height="8" fill="{colour}"/>"#, n(left), n(y - 7.0));
        } else {
            let _ = write!(
                out,
                r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="2.5" stroke-dasharray="{}"/>"#,
                n(left),
                n(y - 3.0),
                n(left + 18.0),
                n(y - 3.0),
                DASHES[index % DASHES.len()]
            );
        }
        let _ = write!(out, r#"<text x="{}" y="{}">{}</text>"#, n(left + 22.0), n(y), escape(name));
        left += 30.0 + name.chars().count() as f64 * 6.2;
    }
}

/// A line chart of monthly values.
pub fn line_chart(chart: &LineChart) -> String {
    let (width, height) = (560.0, 250.0);
    let (left, right, top, bottom) = (62.0, 14.0, 44.0, 36.0);
    let plot_width = width - left - right;
    let plot_height = height - top - bottom;
    let values: Vec<f64> =
        chart.series.iter().flat_map(|series| series.points.iter().filter_map(|point| point.value)).collect();
    let low = values.iter().copied().fold(0.0f64, f64::min);
    let high = values.iter().copied().fold(0.0f64, f64::max);
    let ticks = unit_ticks(chart.unit, low, high, 5);
    let (y_min, y_max) = (ticks.first().copied().unwrap_or(0.0), ticks.last().copied().unwrap_or(1.0));
    let y_of = |value: f64| top + plot_height - (value - y_min) / (y_max - y_min) * plot_height;
    let count = chart.periods.len().max(1);
    let step = plot_width / count as f64;
    let x_of = |index: usize| left + step * (index as f64 + 0.5);
    let mut out = String::new();
    svg_open(&mut out, width, height, &chart.title);
    if chart.partial_last && !chart.periods.is_empty() {
        let x = left + step * (count - 1) as f64;
        let _ = write!(
            out,
            r##"<rect x="{}" y="{}" width="{}" height="{}" fill="#f1f1f1"><title>{}: runs to as_of, incomplete</title></rect>"##,
            n(x),
            n(top),
            n(step),
            n(plot_height),
            escape(&short_month(&chart.periods[count - 1]))
        );
    }
    for tick in &ticks {
        let y = y_of(*tick);
        let _ = write!(
            out,
            r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{GRID_COLOUR}"/><text x="{}" y="{}" text-anchor="end" fill="{AXIS_COLOUR}">{}</text>"#,
            n(left),
            n(width - right),
            n(left - 6.0),
            n(y + 4.0),
            escape(&chart.unit.tick(*tick)),
            y = n(y)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" fill="{AXIS_COLOUR}">{}</text>"#,
        n(left - 56.0),
        n(top - 10.0),
        escape(&chart.unit_label)
    );
    let label_every = count.div_ceil(9);
    for (index, period) in chart.periods.iter().enumerate() {
        if (count - 1 - index).is_multiple_of(label_every) {
            let x = x_of(index);
            let _ = write!(
                out,
                r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="{AXIS_COLOUR}"/><text x="{x}" y="{}" text-anchor="middle" fill="{AXIS_COLOUR}">{}</text>"#,
                n(top + plot_height),
                n(top + plot_height + 4.0),
                n(top + plot_height + 16.0),
                escape(&short_month(period)),
                x = n(x)
            );
        }
    }
    let _ = write!(
        out,
        r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{AXIS_COLOUR}"/>"#,
        n(left),
        n(width - right),
        y = n(top + plot_height)
    );
    for (index, series) in chart.series.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        let mut path = String::new();
        let mut pen_down = false;
        for (position, point) in series.points.iter().enumerate() {
            match point.value {
                Some(value) => {
                    let _ =
                        write!(path, "{}{},{}", if pen_down { "L" } else { "M" }, n(x_of(position)), n(y_of(value)));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !path.is_empty() {
            let _ = write!(
                out,
                r#"<path d="{path}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{}"/>"#,
                DASHES[index % DASHES.len()]
            );
        }
        for (position, point) in series.points.iter().enumerate() {
            let Some(value) = point.value else { continue };
            let attributes = point.cell.as_ref().map(CellRef::attributes).unwrap_or_default();
            let period = chart.periods.get(position).map(|period| short_month(period)).unwrap_or_default();
            let _ = write!(
                out,
                r#"<circle cx="{}" cy="{}" r="2.5" fill="{colour}"{attributes}><title>{}, {}: {}</title></circle>"#,
                n(x_of(position)),
                n(y_of(value)),
                escape(&series.name),
                escape(&period),
                escape(&chart.unit.format(value))
            );
        }
    }
    let names: Vec<&str> = chart.series.iter().map(|series| series.name.as_str()).collect();
    legend(&mut out, &names, left, 16.0, false);
    out.push_str("</svg>");
    out
}

/// A horizontal bar chart, one group of bars per category, the value printed after each bar.
pub fn bar_chart(chart: &BarChart) -> String {
    let longest = chart.categories.iter().map(|label| label.chars().count()).max().unwrap_or(0).min(28);
    let left = 16.0 + longest as f64 * 6.4;
    let (width, right, top, bottom) = (560.0, 64.0, 40.0, 28.0);
    let bar = 12.0;
    let group = bar * chart.series.len().max(1) as f64 + 8.0;
    let plot_height = group * chart.categories.len().max(1) as f64;
    let height = top + plot_height + bottom;
    let plot_width = width - left - right;
    let values: Vec<f64> =
        chart.series.iter().flat_map(|series| series.points.iter().filter_map(|point| point.value)).collect();
    let low = values.iter().copied().fold(0.0f64, f64::min);
    let high = values.iter().copied().fold(0.0f64, f64::max);
    let ticks = unit_ticks(chart.unit, low, high, 4);
    let (x_min, x_max) = (ticks.first().copied().unwrap_or(0.0), ticks.last().copied().unwrap_or(1.0));
    let x_of = |value: f64| left + (value - x_min) / (x_max - x_min) * plot_width;
    let mut out = String::new();
    svg_open(&mut out, width, height, &chart.title);
    for tick in &ticks {
        let x = x_of(*tick);
        let _ = write!(
            out,
            r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="{GRID_COLOUR}"/><text x="{x}" y="{}" text-anchor="middle" fill="{AXIS_COLOUR}">{}</text>"#,
            n(top),
            n(top + plot_height),
            n(top + plot_height + 14.0),
            escape(&chart.unit.tick(*tick)),
            x = n(x)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end" fill="{AXIS_COLOUR}">{}</text>"#,
        n(width - 4.0),
        n(top + plot_height + 26.0),
        escape(&chart.unit_label)
    );
    for (category_index, category) in chart.categories.iter().enumerate() {
        let group_top = top + group * category_index as f64 + 4.0;
        let label: String = if category.chars().count() > 28 {
            category.chars().take(27).chain(std::iter::once('…')).collect()
        } else {
            category.clone()
        };
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            n(left - 6.0),
            n(group_top + group / 2.0),
            escape(&label)
        );
        for (series_index, series) in chart.series.iter().enumerate() {
            let Some(point) = series.points.get(category_index) else { continue };
            let y = group_top + bar * series_index as f64;
            let Some(value) = point.value else {
                let _ = write!(
                    out,
                    r#"<text x="{}" y="{}" fill="{AXIS_COLOUR}">no value</text>"#,
                    n(x_of(0.0) + 4.0),
                    n(y + bar - 3.0)
                );
                continue;
            };
            let (start, end) = (x_of(0.0).min(x_of(value)), x_of(0.0).max(x_of(value)));
            let attributes = point.cell.as_ref().map(CellRef::attributes).unwrap_or_default();
            let text = chart.unit.format(value);
            let _ = write!(
                out,
                r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"{attributes}><title>{}, {}: {}</title></rect><text x="{}" y="{}">{}</text>"#,
                n(start),
                n(y),
                n((end - start).max(0.5)),
                n(bar - 2.0),
                PALETTE[series_index % PALETTE.len()],
                escape(category),
                escape(&series.name),
                escape(&text),
                n(end + 4.0),
                n(y + bar - 3.0),
                escape(&text)
            );
        }
    }
    let _ = write!(
        out,
        r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="{AXIS_COLOUR}"/>"#,
        n(top),
        n(top + plot_height),
        x = n(x_of(0.0))
    );
    let names: Vec<&str> = chart.series.iter().map(|series| series.name.as_str()).collect();
    legend(&mut out, &names, left, 16.0, true);
    out.push_str("</svg>");
    out
}

/// A column histogram with its count above each column.
pub fn histogram(chart: &Histogram) -> String {
    let (width, height) = (560.0, 246.0);
    let (left, right, top, bottom) = (48.0, 10.0, 24.0, 68.0);
    let plot_width = width - left - right;
    let plot_height = height - top - bottom;
    let high = chart.bins.iter().map(|(_, count)| *count).max().unwrap_or(0) as f64;
    let ticks = unit_ticks(Unit::Count, 0.0, high, 4);
    let y_max = ticks.last().copied().unwrap_or(1.0);
    let y_of = |value: f64| top + plot_height - value / y_max * plot_height;
    let step = plot_width / chart.bins.len().max(1) as f64;
    let mut out = String::new();
    svg_open(&mut out, width, height, &chart.title);
    for tick in &ticks {
        let y = y_of(*tick);
        let _ = write!(
            out,
            r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{GRID_COLOUR}"/><text x="{}" y="{}" text-anchor="end" fill="{AXIS_COLOUR}">{}</text>"#,
            n(left),
            n(width - right),
            n(left - 6.0),
            n(y + 4.0),
            escape(&Unit::Count.tick(*tick)),
            y = n(y)
        );
    }
    let _ = write!(out, r#"<text x="4" y="{}" fill="{AXIS_COLOUR}">customers</text>"#, n(top - 10.0));
    let label_every = chart.bins.len().div_ceil(10).max(1);
    for (index, (label, count)) in chart.bins.iter().enumerate() {
        let x = left + step * index as f64;
        let y = y_of(*count as f64);
        let _ = write!(
            out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {} customers</title></rect>"#,
            n(x + 1.0),
            n(y),
            n((step - 2.0).max(0.5)),
            n(top + plot_height - y),
            PALETTE[0],
            escape(label),
            count
        );
        if *count > 0 {
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" text-anchor="middle" font-size="9">{count}</text>"#,
                n(x + step / 2.0),
                n(y - 3.0)
            );
        }
        if index.is_multiple_of(label_every) {
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" text-anchor="end" fill="{AXIS_COLOUR}" transform="rotate(-35 {} {})">{}</text>"#,
                n(x + step / 2.0),
                n(top + plot_height + 14.0),
                n(x + step / 2.0),
                n(top + plot_height + 14.0),
                escape(label)
            );
        }
    }
    let _ = write!(
        out,
        r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{AXIS_COLOUR}"/><text x="{}" y="{}" text-anchor="end" fill="{AXIS_COLOUR}">{}</text>"#,
        n(left),
        n(width - right),
        n(width - right),
        n(height - 4.0),
        escape(&chart.x_label),
        y = n(top + plot_height)
    );
    out.push_str("</svg>");
    out
}

/// A funnel: one centred bar per stage, as wide as its visits, labelled with the visits and
/// the stage's conversion.
pub fn funnel(chart: &Funnel) -> String {
    let (width, row, top) = (560.0, 34.0, 8.0);
    let label_width = 130.0;
    let plot_width = width - label_width - 10.0;
    let height = top + row * chart.stages.len().max(1) as f64 + 8.0;
    let widest = chart.stages.iter().filter_map(|stage| stage.visits.value).fold(0.0f64, f64::max);
    let mut out = String::new();
    svg_open(&mut out, width, height, &chart.title);
    for (index, stage) in chart.stages.iter().enumerate() {
        let y = top + row * index as f64;
        let visits = stage.visits.value.unwrap_or(0.0);
        let bar_width = if widest > 0.0 { (visits / widest * plot_width).max(2.0) } else { 2.0 };
        let x = label_width + (plot_width - bar_width) / 2.0;
        let attributes = stage.visits.cell.as_ref().map(CellRef::attributes).unwrap_or_default();
        let conversion_attributes = stage.conversion.cell.as_ref().map(CellRef::attributes).unwrap_or_default();
        let visits_text = Unit::Count.format(visits);
        let conversion_text = Unit::Fraction.format_option(stage.conversion.value);
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end" font-weight="600">{}</text><rect x="{}" y="{}" width="{}" height="{}" fill="{}"{attributes}><title>{}: {} visits, conversion {}</title></rect><text x="{}" y="{}" text-anchor="middle" fill="{}"><tspan font-weight="600">{}</tspan> visits · <tspan{conversion_attributes}>{}</tspan> converted</text>"#,
            n(label_width - 8.0),
            n(y + row / 2.0 + 4.0),
            escape(&stage.name),
            n(x),
            n(y + 3.0),
            n(bar_width),
            n(row - 6.0),
            PALETTE[index % PALETTE.len()],
            escape(&stage.name),
            escape(&visits_text),
            escape(&conversion_text),
            n(label_width + plot_width / 2.0),
            n(y + row / 2.0 + 4.0),
            if bar_width > 240.0 { "#fff" } else { "#000" },
            escape(&visits_text),
            escape(&conversion_text)
        );
    }
    out.push_str("</svg>");
    out
}

/// The viridis colour of `fraction` in `[0, 1]`, as `#rrggbb`.
pub fn viridis(fraction: f64) -> String {
    let position = fraction.clamp(0.0, 1.0) * (VIRIDIS.len() - 1) as f64;
    let index = (position.floor() as usize).min(VIRIDIS.len() - 2);
    let weight = position - index as f64;
    let (from, to) = (VIRIDIS[index], VIRIDIS[index + 1]);
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * weight).round() as u8;
    format!("#{:02x}{:02x}{:02x}", mix(from.0, to.0), mix(from.1, to.1), mix(from.2, to.2))
}

/// A heatmap of fractions; incomplete cells are hatched.
pub fn heatmap(chart: &Heatmap) -> String {
    let size = chart.cell_size;
    let longest = chart.rows.iter().map(|label| label.chars().count()).max().unwrap_or(0);
    let left = 12.0 + longest as f64 * if size >= 20.0 { 6.4 } else { 5.2 };
    let top = if size >= 20.0 { 34.0 } else { 22.0 };
    let legend_height = if chart.legend { 44.0 } else { 4.0 };
    let width = (left + size * chart.columns.len() as f64 + 8.0).max(if chart.legend { 360.0 } else { 0.0 });
    let height = top + size * chart.rows.len() as f64 + legend_height;
    let font = if size >= 20.0 { 11.0 } else { 8.0 };
    let pattern = format!("{}-hatch", chart.id);
    let mut out = String::new();
    svg_open(&mut out, width, height, &chart.title);
    let _ = write!(
        out,
        r##"<defs><pattern id="{}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff" fill-opacity="0.3"/><line x1="1" y1="0" x2="1" y2="6" stroke="#fff" stroke-width="1.6"/><line x1="4" y1="0" x2="4" y2="6" stroke="#000" stroke-width="1" stroke-opacity="0.55"/></pattern></defs>"##,
        escape(&pattern)
    );
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" fill="{AXIS_COLOUR}" font-size="{font}">{}</text>"#,
        n(left),
        n(top - if size >= 20.0 { 20.0 } else { 12.0 }),
        escape(&chart.column_title)
    );
    let column_label_every = if size >= 20.0 { 1 } else { 3 };
    for (index, label) in chart.columns.iter().enumerate() {
        if index.is_multiple_of(column_label_every) {
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" text-anchor="middle" fill="{AXIS_COLOUR}" font-size="{font}">{}</text>"#,
                n(left + size * (index as f64 + 0.5)),
                n(top - 4.0),
                escape(label)
            );
        }
    }
    let row_label_every = if size >= 20.0 { 1 } else { 3 };
    for (index, label) in chart.rows.iter().enumerate() {
        if index.is_multiple_of(row_label_every) {
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" text-anchor="end" fill="{AXIS_COLOUR}" font-size="{font}">{}</text>"#,
                n(left - 4.0),
                n(top + size * (index as f64 + 0.5) + font / 3.0),
                escape(label)
            );
        }
    }
    out.push_str(r##"<g stroke="#fff" stroke-width="0.5">"##);
    for cell in &chart.cells {
        let x = left + size * cell.column as f64;
        let y = top + size * cell.row as f64;
        let fraction = cell.value.map(|value| if chart.scale_max > 0.0 { value / chart.scale_max } else { 0.0 });
        let fill = fraction.map_or_else(|| "#fff".to_owned(), viridis);
        let attributes = cell.cell.as_ref().map(CellRef::attributes).unwrap_or_default();
        let _ = write!(
            out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}"{attributes}><title>{}</title></rect>"#,
            n(x),
            n(y),
            n(size),
            n(size),
            escape(&cell.tooltip)
        );
        if !cell.complete {
            let _ = write!(
                out,
                r#"<rect x="{}" y="{}" width="{}" height="{}" fill="url(#{})" pointer-events="none"/>"#,
                n(x),
                n(y),
                n(size),
                n(size),
                escape(&pattern)
            );
        }
        if chart.show_values
            && let Some(value) = cell.value
        {
            let dark = fraction.unwrap_or(0.0) < 0.6;
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" text-anchor="middle" font-size="9" fill="{}" stroke="none" pointer-events="none">{}</text>"#,
                n(x + size / 2.0),
                n(y + size / 2.0 + 3.0),
                if dark { "#fff" } else { "#000" },
                (value * 100.0).round()
            );
        }
    }
    out.push_str("</g>");
    if chart.legend {
        let y = top + size * chart.rows.len() as f64 + 14.0;
        let steps = 20;
        let step_width = 8.0;
        for index in 0..steps {
            let fraction = index as f64 / (steps - 1) as f64;
            let _ = write!(
                out,
                r#"<rect x="{}" y="{}" width="{}" height="10" fill="{}"/>"#,
                n(left + step_width * index as f64),
                n(y),
                n(step_width + 0.5),
                viridis(fraction)
            );
        }
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" fill="{AXIS_COLOUR}">0 %</text><text x="{}" y="{}" text-anchor="end" fill="{AXIS_COLOUR}">{} % or more</text>"#,
            n(left),
            n(y + 24.0),
            n(left + step_width * steps as f64),
            n(y + 24.0),
            (chart.scale_max * 100.0).round()
        );
        let hatch_x = left + step_width * steps as f64 + 24.0;
        let _ = write!(
            out,
            r##"<rect x="{}" y="{}" width="14" height="14" fill="{}"/><rect x="{}" y="{}" width="14" height="14" fill="url(#{})"/><text x="{}" y="{}">incomplete: the month has not ended</text>"##,
            n(hatch_x),
            n(y - 2.0),
            viridis(0.3),
            n(hatch_x),
            n(y - 2.0),
            escape(&pattern),
            n(hatch_x + 20.0),
            n(y + 9.0)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(value: Option<f64>) -> Point {
        Point { value, cell: None }
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(nice_ticks(0.0, 97.0, 5), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(nice_ticks(-30.0, 45.0, 5), vec![-40.0, -20.0, 0.0, 20.0, 40.0, 60.0]);
        assert_eq!(nice_ticks(0.0, 0.0, 5), vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        let ticks = nice_ticks(0.0, 0.37, 4);
        assert!(ticks.first() == Some(&0.0) && ticks.last().is_some_and(|last| *last >= 0.37), "{ticks:?}");
    }

    #[test]
    fn viridis_runs_from_purple_to_yellow() {
        assert_eq!(viridis(0.0), "#440154");
        assert_eq!(viridis(1.0), "#fde725");
        assert_eq!(viridis(2.0), "#fde725");
    }

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn a_line_chart_has_axes_legend_tooltips_and_cell_references() {
        let periods = vec!["2025-01-01".to_owned(), "2025-02-01".to_owned(), "2025-03-01".to_owned()];
        let cell = CellRef {
            table: "kpi_monthly",
            key: "2025-01-01|revenue|all".to_owned(),
            column: "value",
            value: Some(1500.5),
        };
        let chart = LineChart {
            title: "Revenue".to_owned(),
            unit: Unit::Money,
            unit_label: "EUR".to_owned(),
            periods: &periods,
            series: vec![Series {
                name: "Revenue".to_owned(),
                points: vec![Point { value: Some(1500.5), cell: Some(cell) }, point(None), point(Some(900.0))],
            }],
            partial_last: true,
        };
        let svg = line_chart(&chart);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(
            r#"data-table="kpi_monthly" data-key="2025-01-01|revenue|all" data-column="value" data-value="1500.5""#
        ));
        assert!(svg.contains("<title>Revenue, Jan 25: 1,500</title>"), "{svg}");
        assert!(svg.contains(">EUR</text>") && svg.contains(">Mar 25</text>"));
        // The null in February breaks the line: two separate moves.
        assert_eq!(svg.matches("<path d=\"M").count(), 1);
        assert_eq!(svg.matches('M').count() - svg.matches("Mar").count(), 2, "{svg}");
        assert_eq!(svg, line_chart(&chart), "deterministic");
    }

    #[test]
    fn bar_chart_prints_each_value_and_marks_nulls() {
        let chart = BarChart {
            title: "Spend".to_owned(),
            unit: Unit::Money,
            unit_label: "EUR".to_owned(),
            categories: vec!["a".to_owned(), "b".to_owned()],
            series: vec![Series { name: "spend".to_owned(), points: vec![point(Some(12.5)), point(None)] }],
        };
        let svg = bar_chart(&chart);
        assert!(svg.contains(">12.50</text>") && svg.contains(">no value</text>"), "{svg}");
    }

    #[test]
    fn heatmap_hatches_incomplete_cells() {
        let cells = vec![
            HeatCell { row: 0, column: 0, value: Some(1.0), complete: true, tooltip: "a".to_owned(), cell: None },
            HeatCell { row: 0, column: 1, value: Some(0.25), complete: false, tooltip: "b".to_owned(), cell: None },
        ];
        let chart = Heatmap {
            title: "Retention".to_owned(),
            id: "all".to_owned(),
            rows: vec!["Jan 25".to_owned()],
            columns: vec!["0".to_owned(), "1".to_owned()],
            column_title: "months since".to_owned(),
            cells,
            scale_max: 0.5,
            cell_size: 24.0,
            show_values: true,
            legend: true,
        };
        let svg = heatmap(&chart);
        assert_eq!(svg.matches(r#"fill="url(#all-hatch)" pointer-events"#).count(), 1, "{svg}");
        assert!(svg.contains(">100</text>") && svg.contains(">25</text>") && svg.contains("50 % or more"));
    }

    #[test]
    fn histogram_and_funnel_render() {
        let svg = histogram(&Histogram {
            title: "P(alive)".to_owned(),
            x_label: "P(alive)".to_owned(),
            bins: vec![("0–10 %".to_owned(), 3), ("10–20 %".to_owned(), 0)],
        });
        assert!(svg.contains("<title>0–10 %: 3 customers</title>"));
        let svg = funnel(&Funnel {
            title: "Stages".to_owned(),
            stages: vec![FunnelStage {
                name: "proposal".to_owned(),
                visits: point(Some(40.0)),
                conversion: point(Some(0.5)),
            }],
        });
        assert!(svg.contains("40</tspan> visits") && svg.contains("50.0 %</tspan> converted"), "{svg}");
    }
}

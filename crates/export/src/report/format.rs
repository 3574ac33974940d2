//! How the report prints numbers: one [`Unit`] per kind of value (money, counts, fractions,
//! the `* 100` KPIs, durations), each with a fixed number of decimals and `,` thousands
//! separators, so that the same value always gives the same text. The exact value travels
//! next to the text in a `data-value` attribute ([`exact`]).

/// What a number measures, which decides how it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// An amount in the reporting currency.
    Money,
    /// A count of things.
    Count,
    /// A fraction in `[0, 1]`, printed as a percentage.
    Fraction,
    /// A KPI the spec already multiplies by 100 (CSAT), printed as a percentage.
    Percent,
    /// NPS points, `-100..100`.
    Points,
    /// A mean survey score or a model parameter.
    Score,
    /// A duration in hours.
    Hours,
    /// A duration in minutes.
    Minutes,
    /// A ratio of two amounts (ROAS).
    Multiple,
}

impl Unit {
    /// The value as the report prints it, with its unit sign where it has one.
    pub fn format(self, value: f64) -> String {
        let value = if value == 0.0 { 0.0 } else { value };
        match self {
            Unit::Money if value.abs() >= 1000.0 => grouped(value, 0),
            Unit::Money => grouped(value, 2),
            Unit::Count if value.fract() == 0.0 => grouped(value, 0),
            Unit::Count => grouped(value, 1),
            Unit::Fraction => format!("{} %", grouped(value * 100.0, 1)),
            Unit::Percent => format!("{} %", grouped(value, 1)),
            Unit::Points | Unit::Hours | Unit::Minutes => grouped(value, 1),
            Unit::Score => grouped(value, 2),
            Unit::Multiple => format!("{}×", grouped(value, 2)),
        }
    }

    /// [`Unit::format`] with `–` for a null.
    pub fn format_option(self, value: Option<f64>) -> String {
        value.map_or_else(|| "–".to_owned(), |value| self.format(value))
    }

    /// A short axis tick label: `12k`, `1.5M`, `40 %`.
    pub fn tick(self, value: f64) -> String {
        let value = if value == 0.0 { 0.0 } else { value };
        match self {
            Unit::Fraction => format!("{} %", trimmed(value * 100.0)),
            Unit::Percent => format!("{} %", trimmed(value)),
            _ if value.abs() >= 1_000_000.0 => format!("{}M", trimmed(value / 1_000_000.0)),
            _ if value.abs() >= 10_000.0 => format!("{}k", trimmed(value / 1000.0)),
            _ => trimmed(value),
        }
    }

    /// The change from `previous` to `current` as the headline prints it: percentage points
    /// for fractions, points for NPS and CSAT, a relative change otherwise. `None` when either
    /// is null or a relative change has nothing to divide by.
    pub fn change(self, current: Option<f64>, previous: Option<f64>) -> Option<String> {
        let (current, previous) = (current?, previous?);
        let signed = |difference: f64, decimals: usize| {
            let difference = if difference == 0.0 { 0.0 } else { difference };
            let sign = if difference > 0.0 { "+" } else { "" };
            format!("{sign}{}", grouped(difference, decimals))
        };
        match self {
            Unit::Fraction => Some(format!("{} pp", signed((current - previous) * 100.0, 1))),
            Unit::Percent | Unit::Points => Some(format!("{} points", signed(current - previous, 1))),
            _ if previous == 0.0 => None,
            _ => Some(format!("{} %", signed((current - previous) / previous.abs() * 100.0, 1))),
        }
    }
}

/// The exact value for a `data-value` attribute: Rust's shortest round-trip form, empty for a
/// null.
pub fn exact(value: Option<f64>) -> String {
    value.map(|value| format!("{value}")).unwrap_or_default()
}

/// `value` with `decimals` decimals and `,` between thousands.
pub fn grouped(value: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, value.abs());
    let (integer, fraction) = text.split_once('.').map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let mut out = String::with_capacity(text.len() + integer.len() / 3 + 1);
    let rounds_to_zero = text.bytes().all(|byte| byte == b'0' || byte == b'.');
    if value < 0.0 && !rounds_to_zero {
        out.push('-');
    }
    for (index, digit) in integer.chars().enumerate() {
        if index > 0 && (integer.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if let Some(fraction) = fraction {
        out.push('.');
        out.push_str(fraction);
    }
    out
}

/// A tick value with at most two decimals and no trailing zeros.
fn trimmed(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".to_owned() } else { text.to_owned() }
}

/// `2025-06-01` as `June 2025`; other text unchanged.
pub fn month_name(period: &str) -> String {
    month_parts(period).map_or_else(|| period.to_owned(), |(year, month)| format!("{} {year}", MONTH_NAMES[month]))
}

/// `2025-05-01` as `May 25`, for axis ticks.
pub fn short_month(period: &str) -> String {
    month_parts(period).map_or_else(
        || period.to_owned(),
        |(year, month)| format!("{} {}", MONTHS[month], year.get(2..).unwrap_or(year)),
    )
}

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

fn month_parts(period: &str) -> Option<(&str, usize)> {
    let year = period.get(0..4)?;
    let month: usize = period.get(5..7)?.parse().ok()?;
    (1..=12).contains(&month).then_some((year, month - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_print_fixed_decimals_and_thousands() {
        assert_eq!(Unit::Money.format(1_234_567.891), "1,234,568");
        assert_eq!(Unit::Money.format(204.655), "204.66");
        assert_eq!(Unit::Count.format(12_000.0), "12,000");
        assert_eq!(Unit::Fraction.format(0.216_216), "21.6 %");
        assert_eq!(Unit::Points.format(-12.34), "-12.3");
        assert_eq!(Unit::Points.format(-0.01), "0.0");
        assert_eq!(Unit::Multiple.format(3.456), "3.46×");
        assert_eq!(Unit::Count.format_option(None), "–");
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(Unit::Money.tick(25_000.0), "25k");
        assert_eq!(Unit::Count.tick(1_500_000.0), "1.5M");
        assert_eq!(Unit::Fraction.tick(0.4), "40 %");
        assert_eq!(Unit::Hours.tick(2.5), "2.5");
        assert_eq!(Unit::Hours.tick(-0.0), "0");
    }

    #[test]
    fn changes_are_relative_or_in_points() {
        assert_eq!(Unit::Money.change(Some(110.0), Some(100.0)).as_deref(), Some("+10.0 %"));
        assert_eq!(Unit::Fraction.change(Some(0.2), Some(0.25)).as_deref(), Some("-5.0 pp"));
        assert_eq!(Unit::Points.change(Some(30.0), Some(30.0)).as_deref(), Some("0.0 points"));
        assert_eq!(Unit::Count.change(Some(3.0), Some(0.0)), None);
        assert_eq!(Unit::Count.change(None, Some(1.0)), None);
    }

    #[test]
    fn exact_values_round_trip() {
        assert_eq!(exact(Some(0.1 + 0.2)), "0.30000000000000004");
        assert_eq!(exact(Some(5.0)), "5");
        assert_eq!(exact(None), "");
    }

    #[test]
    fn months_are_named() {
        assert_eq!(month_name("2025-06-01"), "June 2025");
        assert_eq!(short_month("2024-12-01"), "Dec 24");
        assert_eq!(month_name("unknown"), "unknown");
    }
}

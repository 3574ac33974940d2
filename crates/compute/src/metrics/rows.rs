//! The long rows of `kpi_monthly` (one per month, metric and segment with `value`, and for
//! rate and share metrics their `numerator` and `denominator`) from a family's wide frame.

use polars::prelude::*;

use crate::context::Context;
use crate::expr::null_f64;

/// The wide frame of segment `all` a family's rows are read from: every reported month, with
/// the family's per-month `parts` joined on `month_index`, and the `sums` (counts and amounts)
/// 0 in months that have none.
pub fn all_months(context: &Context, parts: impl IntoIterator<Item = LazyFrame>, sums: &[&str]) -> LazyFrame {
    parts
        .into_iter()
        .fold(context.calendar.month_grid(), |wide, part| wide.left_join(part, col("month_index"), col("month_index")))
        .with_columns(sums.iter().map(|name| col(*name).fill_null(lit(0))).collect::<Vec<_>>())
        .with_column(lit("all").alias("segment"))
}

/// How a metric's row is filled.
#[derive(Debug, Clone)]
pub enum MetricValue {
    /// A count, sum, mean or median: `value` only.
    Plain(Expr),
    /// A rate or share: `value = numerator / denominator * scale` (null when the denominator
    /// is 0), with both parts kept.
    Ratio {
        /// Numerator.
        numerator: Expr,
        /// Denominator.
        denominator: Expr,
        /// 1 for fractions, 100 for the `* 100` metrics.
        scale: f64,
    },
}

/// Long rows of one metric from a wide frame with `period` and `segment` columns.
pub fn metric_rows(wide: &LazyFrame, metric: &str, value: MetricValue) -> LazyFrame {
    let (value, numerator, denominator) = match value {
        MetricValue::Plain(value) => (value.cast(DataType::Float64), null_f64(), null_f64()),
        MetricValue::Ratio { numerator, denominator, scale } => {
            let numerator = numerator.cast(DataType::Float64);
            let denominator = denominator.cast(DataType::Float64);
            let value = when(denominator.clone().neq(lit(0.0)))
                .then(numerator.clone() / denominator.clone() * lit(scale))
                .otherwise(null_f64());
            (value, numerator, denominator)
        }
    };
    wide.clone().select([
        col("period"),
        lit(metric).alias("metric"),
        col("segment"),
        value.alias("value"),
        numerator.alias("numerator"),
        denominator.alias("denominator"),
    ])
}

/// A metric read as is from the wide frame's column of the same name.
pub fn plain(wide: &LazyFrame, name: &str) -> LazyFrame {
    metric_rows(wide, name, MetricValue::Plain(col(name)))
}

/// A share `numerator / denominator` of two columns of the wide frame.
pub fn share(wide: &LazyFrame, metric: &str, numerator: &str, denominator: &str) -> LazyFrame {
    metric_rows(
        wide,
        metric,
        MetricValue::Ratio { numerator: col(numerator), denominator: col(denominator), scale: 1.0 },
    )
}

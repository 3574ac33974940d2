//! Table `kpi_monthly`: one row per month, metric and segment with `value`, and for the rate
//! and share metrics their `numerator` and `denominator`. Each KPI family contributes its rows;
//! this module turns a family's wide per-month frame into these long rows and assembles them.

use polars::prelude::*;

use crate::context::Context;
use crate::{customers, leads, marketing, revenue, sales, service};

/// A KPI family's share of `kpi_monthly`: its name and the function building its rows.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// Family name, e.g. `churn` (the benchmark reports each family's time under it).
    pub name: &'static str,
    /// Builds the family's rows (`period`, `metric`, `segment`, `value`, `numerator`, `denominator`).
    pub rows: fn(&Context) -> PolarsResult<LazyFrame>,
}

/// The families whose rows make up `kpi_monthly`.
pub const FAMILIES: &[Family] = &[
    Family { name: "revenue", rows: revenue::monthly },
    Family { name: "churn", rows: customers::monthly },
    Family { name: "clv_formula", rows: customers::clv_formula },
    Family { name: "sales", rows: sales::monthly },
    Family { name: "leads", rows: leads::monthly },
    Family { name: "service", rows: service::monthly },
    Family { name: "surveys", rows: service::surveys_monthly },
    Family { name: "marketing", rows: marketing::monthly },
];

/// The rows of `kpi_monthly`, sorted by `period`, `metric`, `segment`.
pub fn kpi_monthly(context: &Context) -> PolarsResult<LazyFrame> {
    let families = FAMILIES.iter().map(|family| (family.rows)(context)).collect::<PolarsResult<Vec<_>>>()?;
    Ok(concat(families, UnionArgs::default())?.sort(["period", "metric", "segment"], SortMultipleOptions::default()))
}

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

/// A null of type f64.
pub fn null_f64() -> Expr {
    lit(NULL).cast(DataType::Float64)
}

/// A mean that is null over nothing: `sum / count` when `count > 0`.
pub fn mean_or_null(sum: Expr, count: Expr) -> Expr {
    when(count.clone().gt(lit(0)))
        .then(sum.cast(DataType::Float64) / count.cast(DataType::Float64))
        .otherwise(null_f64())
}

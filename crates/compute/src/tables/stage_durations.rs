//! Table `stage_durations` (outputs.md): per stage, the visits and their durations.

use polars::prelude::*;

use crate::expr::{HOURS, exact_mean, null_f64};
use crate::facts::deals::STAGE_VISITS;
use crate::tables::Run;

fn count_of(outcome: &str) -> Expr {
    col("outcome").eq(lit(outcome)).cast(DataType::Int64).sum()
}

/// Per stage, `visits` (open ones included), `completed_visits`,
/// mean, median and p90 hours over completed visits, counts per outcome, and
/// `conversion_rate = (advanced + won) / (advanced + won + lost)` (null when no visit ended).
pub fn plan(run: &Run) -> PolarsResult<LazyFrame> {
    let visits = run.facts.entity(STAGE_VISITS)?;
    let moved_on = col("advanced") + col("won");
    let ended = col("advanced") + col("won") + col("lost");
    Ok(visits
        .group_by([col("stage")])
        .agg([
            len().cast(DataType::Int64).alias("visits"),
            col("outcome").neq(lit("open")).cast(DataType::Int64).sum().alias("completed_visits"),
            exact_mean(col("hours"), HOURS).alias("mean_hours"),
            col("hours").median().alias("median_hours"),
            col("hours").quantile(lit(0.9), QuantileMethod::Linear).alias("p90_hours"),
            count_of("advanced").alias("advanced"),
            count_of("won").alias("won"),
            count_of("lost").alias("lost"),
            count_of("open").alias("open"),
        ])
        .with_column(
            when(ended.clone().gt(lit(0)))
                .then(moved_on.cast(DataType::Float64) / ended.cast(DataType::Float64))
                .otherwise(null_f64())
                .alias("conversion_rate"),
        )
        .sort(["stage"], SortMultipleOptions::default()))
}

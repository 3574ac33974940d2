//! Table `pipeline_forecast` (outputs.md): the deals open at `as_of` per stage, weighted by
//! the configured win probabilities.

use polars::prelude::*;

use crate::expr::{MONEY, exact_sum};
use crate::facts::deals::DEALS;
use crate::tables::Run;

/// Per stage of the deals open at `as_of` (a null stage is a row of
/// its own), `open_deals`, `open_amount` (null amounts count 0), the configured
/// `win_probability` (null when not configured) and `weighted_amount`.
pub fn plan(run: &Run) -> PolarsResult<LazyFrame> {
    let probabilities = &run.context.config.pipeline.win_probability;
    let stages: Vec<&str> = probabilities.keys().map(String::as_str).collect();
    let values: Vec<f64> = probabilities.values().copied().collect();
    let configured = DataFrame::new(
        stages.len(),
        vec![Column::new("stage".into(), stages), Column::new("win_probability".into(), values)],
    )?
    .lazy();
    Ok(run
        .facts
        .entity(DEALS)?
        .filter(col("status").eq(lit("open")))
        .group_by([col("stage")])
        .agg([
            len().cast(DataType::Int64).alias("open_deals"),
            exact_sum(col("amount").fill_null(lit(0.0)), MONEY).alias("open_amount"),
        ])
        .left_join(configured, col("stage"), col("stage"))
        .with_column((col("open_amount") * col("win_probability")).alias("weighted_amount"))
        .select([col("stage"), col("open_deals"), col("open_amount"), col("win_probability"), col("weighted_amount")])
        .sort(["stage"], SortMultipleOptions::default()))
}

//! Table `lost_reasons` (outputs.md): lost deals per month of the close and reason.

use polars::prelude::*;

use crate::expr::{MONEY, exact_sum};
use crate::metrics::sales::closed_deals;
use crate::tables::Run;

/// Per month of the close and reason (`unknown` when null), where a deal
/// was lost: `deals_lost`, `amount_lost` (null amounts count 0).
pub fn plan(run: &Run) -> PolarsResult<LazyFrame> {
    Ok(closed_deals(run.context, run.facts)?
        .filter(col("is_won").not())
        .with_column(col("lost_reason").fill_null(lit("unknown")).alias("reason"))
        .group_by([col("month_index"), col("reason")])
        .agg([
            len().cast(DataType::Int64).alias("deals_lost"),
            exact_sum(col("amount").fill_null(lit(0.0)), MONEY).alias("amount_lost"),
        ])
        .inner_join(run.context.calendar.month_grid(), col("month_index"), col("month_index"))
        .select([col("period"), col("reason"), col("deals_lost"), col("amount_lost")])
        .sort(["period", "reason"], SortMultipleOptions::default()))
}

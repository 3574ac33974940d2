//! Table `rep_performance` (outputs.md): closed deals per month of the close and owner.

use polars::prelude::*;

use crate::metrics::sales::{close_aggregates, closed_deals};
use crate::tables::Run;

/// Per month of the close and `owner_id` (a null owner is a row of its
/// own), where something closed: `deals_won`, `deals_lost`, `win_rate`, `won_amount`,
/// `avg_deal_size`, `sales_cycle_days_mean`.
pub fn plan(run: &Run) -> PolarsResult<LazyFrame> {
    Ok(closed_deals(run.context, run.facts)?
        .group_by([col("month_index"), col("owner_id")])
        .agg(close_aggregates())
        .inner_join(run.context.calendar.month_grid(), col("month_index"), col("month_index"))
        .with_column(
            (col("deals_won").cast(DataType::Float64) / (col("deals_won") + col("deals_lost")).cast(DataType::Float64))
                .alias("win_rate"),
        )
        .select([
            col("period"),
            col("owner_id"),
            col("deals_won"),
            col("deals_lost"),
            col("win_rate"),
            col("won_amount"),
            col("avg_deal_size"),
            col("sales_cycle_days_mean"),
        ])
        .sort(["period", "owner_id"], SortMultipleOptions::default()))
}

//! Table `deals` (outputs.md): one row per deal from the per-deal facts, with the acquisition
//! channel of its customer.

use polars::prelude::*;

use crate::facts::deals::DEALS;
use crate::facts::leads::LEAD_ORIGINS;
use crate::tables::Run;

/// One row per deal, sorted by `deal_id`; `channel` is the channel of the
/// customer's earliest `lead_created` (`unknown` when none or null).
pub fn plan(run: &Run) -> PolarsResult<LazyFrame> {
    let summaries = run.facts.entity(DEALS)?;
    let channels = run.facts.entity(LEAD_ORIGINS)?.select([col("customer_id"), col("channel")]);
    Ok(summaries
        .left_join(channels, col("customer_id"), col("customer_id"))
        .select([
            col("deal_id"),
            col("customer_id"),
            col("owner_id"),
            col("channel").fill_null(lit("unknown")),
            col("created_at"),
            col("closed_at"),
            col("status"),
            col("stage"),
            col("amount"),
            col("cycle_days"),
            col("lost_reason"),
        ])
        .sort(["deal_id"], SortMultipleOptions::default()))
}

//! Table `deal_stage_visits` (outputs.md): one row per stage visit of a deal.

use polars::prelude::*;

use crate::facts::deals::STAGE_VISITS;
use crate::tables::Run;

/// One row per visit, sorted by `deal_id`, `visit`.
pub fn plan(run: &Run) -> PolarsResult<LazyFrame> {
    Ok(run.facts.entity(STAGE_VISITS)?.sort(["deal_id", "visit"], SortMultipleOptions::default()))
}

//! Table `tickets` (outputs.md, kpis.md "Service"): one row per opened ticket.

use polars::prelude::*;

use crate::facts::tickets::TICKETS;
use crate::tables::Run;

/// One row per opened ticket, sorted by `ticket_id`.
pub fn plan(run: &Run) -> PolarsResult<LazyFrame> {
    Ok(run.facts.entity(TICKETS)?.sort(["ticket_id"], SortMultipleOptions::default()))
}

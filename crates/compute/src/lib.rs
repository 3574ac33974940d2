//! crmkpi's compute stage: every KPI of kpis.md as lazy polars plans over the event lake, in
//! layers that import only downward:
//!
//! 1. [`expr`] (exact sums and means, typed nulls, elapsed time) and [`time`] (calendar,
//!    business time, `--as-of`);
//! 2. [`context`]: the lake scan up to `as_of`, the configuration, the calendar and the entity
//!    buckets (XXH64 seed 42 of the entity key, as Spark's `xxhash64`);
//! 3. [`facts`]: per-entity facts (a customer's orders and RFM, a lead's origin, a deal's
//!    timeline and stage visits, a ticket's times), computed one bucket at a time from that
//!    bucket's events only, and merged;
//! 4. [`clv`] (special functions, optimiser, BG/NBD, Gamma-Gamma, the run's fits) and
//!    [`metrics`] (one file per `kpi_monthly` family: its additive per-bucket parts and its
//!    rows);
//! 5. [`tables`] (one file per output table) and the [`registry`] on top, which runs the
//!    buckets and the tables.
//!
//! Memory follows one bucket's events plus the merged per-entity facts, not the lake: the
//! number of buckets comes from the lake's size and `[compute] memory_limit`, and the outputs
//! are the same for every number of buckets (sums are exact integers, medians and fits read
//! the merged per-entity rows).
//!
//! Adding a KPI family is one file in `metrics/` and one line in [`metrics::FAMILIES`]; adding
//! a table is one file in `tables/` and one line in [`registry::TABLES`], which names the
//! per-entity facts the table reads (a run computes only those of its tables).

pub mod clv;
pub mod context;
pub mod error;
pub mod expr;
pub mod facts;
pub mod metrics;
pub mod registry;
pub mod tables;
pub mod time;

pub use context::{Context, LakeStats, OpenLake, open_lake, scan_lake};
pub use error::ComputeError;
pub use registry::{
    TABLES, bucket_facts, checks_unopened_tickets, compute_facts, compute_facts_from, compute_table, compute_tables,
    data_warnings, reads_fits, select_tables, unopened_tickets_warning,
};
pub use tables::{FitSource, Placement, Run, TableSpec};
pub use time::as_of::parse_as_of;
pub use time::calendar::Calendar;

use polars::prelude::DataFrame;

/// A computed output table: its name (outputs.md) and its rows, sorted by its key columns.
#[derive(Debug, Clone)]
pub struct Table {
    /// Table name, e.g. `kpi_monthly`.
    pub name: &'static str,
    /// The rows.
    pub frame: DataFrame,
}

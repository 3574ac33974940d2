//! The KPI families of `kpi_monthly` (kpis.md), one file each. A family declares the additive
//! parts it needs from each entity bucket (counts and exact sums per month) and builds its
//! rows from the merged parts and the per-entity facts. Adding a family is one file here and
//! one line in [`FAMILIES`].

pub mod churn;
pub mod clv_formula;
pub mod leads;
pub mod marketing;
pub mod revenue;
pub mod rows;
pub mod sales;
pub mod service;
pub mod surveys;

use polars::prelude::*;

use crate::context::Context;
use crate::facts::{Bucket, Facts, Part};

/// A KPI family's share of `kpi_monthly`.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// Family name, e.g. `churn` (errors and the benchmark name it).
    pub name: &'static str,
    /// The family's additive parts of one bucket.
    pub parts: fn(&Bucket) -> PolarsResult<Vec<Part>>,
    /// Builds the family's rows (`period`, `metric`, `segment`, `value`, `numerator`,
    /// `denominator`) from the merged facts.
    pub rows: fn(&Context, &Facts) -> PolarsResult<LazyFrame>,
}

/// The families whose rows make up `kpi_monthly`.
pub const FAMILIES: &[Family] = &[
    Family { name: "revenue", parts: revenue::parts, rows: revenue::rows },
    Family { name: "churn", parts: churn::parts, rows: churn::rows },
    Family { name: "clv_formula", parts: clv_formula::parts, rows: clv_formula::rows },
    Family { name: "sales", parts: no_parts, rows: sales::rows },
    Family { name: "leads", parts: leads::parts, rows: leads::rows },
    Family { name: "service", parts: no_parts, rows: service::rows },
    Family { name: "surveys", parts: surveys::parts, rows: surveys::rows },
    Family { name: "marketing", parts: marketing::parts, rows: marketing::rows },
];

/// The parts of a family that reads only per-entity facts.
pub fn no_parts(_: &Bucket) -> PolarsResult<Vec<Part>> {
    Ok(Vec::new())
}

//! The output tables (outputs.md), one file each: a table's per-bucket parts (if it has any)
//! and its plan over the merged facts. Adding a table is one file here and one line in
//! [`crate::registry::TABLES`].

pub mod campaigns;
pub mod clv_model;
pub mod cohort_retention;
pub mod customers;
pub mod deal_stage_visits;
pub mod deals;
pub mod kpi_monthly;
pub mod lost_reasons;
pub mod pipeline_forecast;
pub mod rep_performance;
pub mod stage_durations;
pub mod tickets;

use std::sync::{Arc, OnceLock};

use polars::prelude::*;

use crate::clv::fits::CustomerModels;
use crate::context::Context;
use crate::facts::{Bucket, Facts, Part};

/// What a table's plan reads: the context, the merged facts, and the CLV fits (made on first
/// use and shared by `customers`, `clv_model` and the manifest's warnings).
pub struct Run<'a> {
    /// The run's context.
    pub context: &'a Context,
    /// The merged facts of all buckets.
    pub facts: &'a Facts,
    models: OnceLock<Arc<CustomerModels>>,
}

impl<'a> Run<'a> {
    /// A run over merged facts.
    pub fn new(context: &'a Context, facts: &'a Facts) -> Run<'a> {
        Run { context, facts, models: OnceLock::new() }
    }

    /// The CLV fits, made the first time a table asks.
    pub fn models(&self) -> PolarsResult<Arc<CustomerModels>> {
        if let Some(models) = self.models.get() {
            return Ok(models.clone());
        }
        let models = Arc::new(CustomerModels::fit(self.facts)?);
        Ok(self.models.get_or_init(|| models).clone())
    }
}

/// An output table crmkpi computes.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    /// Table name, as in outputs.md.
    pub name: &'static str,
    /// The per-entity facts (of [`crate::facts::ENTITY_FACTS`]) that its plan and its data
    /// checks read: a run computes only those of its tables.
    pub facts: &'static [&'static str],
    /// The table's additive parts of one bucket (none for tables of per-entity facts only).
    pub parts: fn(&Bucket) -> PolarsResult<Vec<Part>>,
    /// Builds the table's lazy plan, rows sorted by its key columns.
    pub plan: fn(&Run) -> PolarsResult<LazyFrame>,
}

/// The parts of a table that reads only per-entity facts.
pub fn no_parts(_: &Bucket) -> PolarsResult<Vec<Part>> {
    Ok(Vec::new())
}

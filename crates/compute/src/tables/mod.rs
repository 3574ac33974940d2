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

use crate::clv::fits::{ClvFits, CustomerModels};
use crate::context::Context;
use crate::facts::{Bucket, Facts, Part};

/// What a table's plan reads: the context, the merged facts, and the CLV fits (made on first
/// use and shared by `customers`, `clv_model` and the manifest's warnings).
pub struct Run<'a> {
    /// The run's context.
    pub context: &'a Context,
    /// The merged facts of all buckets (or, in a Spark task, of the entities of one part).
    pub facts: &'a Facts,
    fits: FitSource,
    models: OnceLock<Arc<CustomerModels>>,
}

/// Where a run's CLV fits come from.
#[derive(Debug, Clone)]
pub enum FitSource {
    /// Fitted to the run's own customers (a run whose facts hold all of them).
    Facts,
    /// Fitted elsewhere: by a Spark job's driver, for the tasks that predict.
    Given(ClvFits),
    /// None: a task whose tables read no fits.
    Unavailable,
}

impl<'a> Run<'a> {
    /// A run over merged facts, fitting the CLV models to them when a table asks.
    pub fn new(context: &'a Context, facts: &'a Facts) -> Run<'a> {
        Run::with_fits(context, facts, FitSource::Facts)
    }

    /// A run over facts whose CLV fits come from `fits`.
    pub fn with_fits(context: &'a Context, facts: &'a Facts, fits: FitSource) -> Run<'a> {
        Run { context, facts, fits, models: OnceLock::new() }
    }

    /// The CLV fits and the customers' model inputs, made the first time a table asks.
    pub fn models(&self) -> PolarsResult<Arc<CustomerModels>> {
        if let Some(models) = self.models.get() {
            return Ok(models.clone());
        }
        let models = Arc::new(match &self.fits {
            FitSource::Facts => CustomerModels::fit(self.facts)?,
            FitSource::Given(fits) => CustomerModels::with_fits(self.facts, fits.clone())?,
            FitSource::Unavailable => polars_bail!(ComputeError: "this task has no CLV fits"),
        });
        Ok(self.models.get_or_init(|| models).clone())
    }
}

/// Where a Spark job computes a table (a single-node run computes every table from the merged
/// facts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// One row per entity: computed in parts, each from the facts of the entities whose value
    /// of this column falls in the part's bucket (the table's rows of those entities need
    /// only those facts).
    PerEntity(&'static str),
    /// From the facts and parts of all buckets merged, in one task.
    Merged,
    /// From the CLV fits only, on the driver.
    Fits,
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
    /// Where a Spark job computes it.
    pub placement: Placement,
}

/// The parts of a table that reads only per-entity facts.
pub fn no_parts(_: &Bucket) -> PolarsResult<Vec<Part>> {
    Ok(Vec::new())
}

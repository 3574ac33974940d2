//! crmkpi's compute stage: every KPI family of kpis.md as a lazy polars plan over the event
//! lake. Each family is a module with one public function per output table (or per table's
//! share of `kpi_monthly`); [`compute_tables`] runs the plans of the requested tables.
//!
//! Per-entity steps (a customer's, a deal's, a ticket's events) are grouped by that entity so
//! they can run on one customer bucket at a time; global steps (monthly aggregates, model fits)
//! sit on top of them.

pub mod aggregate;
pub mod as_of;
pub mod business_time;
pub mod calendar;
pub mod clv_model;
pub mod cohorts;
pub mod context;
pub mod customers;
pub mod error;
pub mod kpi_monthly;
pub mod leads;
pub mod marketing;
pub mod revenue;
pub mod sales;
pub mod service;

pub use as_of::parse_as_of;
pub use calendar::Calendar;
pub use context::{Context, LakeStats, scan_lake};
pub use error::ComputeError;

use polars::prelude::*;

/// A computed output table: its name (outputs.md) and its rows, sorted by its key columns.
#[derive(Debug, Clone)]
pub struct Table {
    /// Table name, e.g. `kpi_monthly`.
    pub name: &'static str,
    /// The rows.
    pub frame: DataFrame,
}

/// An output table crmkpi computes: its name and the function building its plan.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    /// Table name, as in outputs.md.
    pub name: &'static str,
    /// Builds the table's lazy plan, rows sorted by its key columns.
    pub plan: fn(&Context) -> PolarsResult<LazyFrame>,
}

/// The tables this version computes, in output order.
pub const TABLES: &[TableSpec] = &[
    TableSpec { name: "kpi_monthly", plan: kpi_monthly::kpi_monthly },
    TableSpec { name: "cohort_retention", plan: cohorts::cohort_retention },
    TableSpec { name: "customers", plan: customers::customers },
    TableSpec { name: "clv_model", plan: customers::clv_model },
    TableSpec { name: "deals", plan: sales::deals },
    TableSpec { name: "deal_stage_visits", plan: sales::deal_stage_visits },
    TableSpec { name: "stage_durations", plan: sales::stage_durations },
    TableSpec { name: "pipeline_forecast", plan: sales::pipeline_forecast },
    TableSpec { name: "rep_performance", plan: sales::rep_performance },
    TableSpec { name: "lost_reasons", plan: sales::lost_reasons },
    TableSpec { name: "tickets", plan: service::tickets },
    TableSpec { name: "campaigns", plan: marketing::campaigns },
];

/// Checks table names given with `--tables` against [`TABLES`]; no names means all tables.
pub fn select_tables(names: &[String]) -> Result<Vec<TableSpec>, ComputeError> {
    if names.is_empty() {
        return Ok(TABLES.to_vec());
    }
    names
        .iter()
        .map(|name| {
            TABLES.iter().copied().find(|table| table.name == name).ok_or_else(|| ComputeError::UnknownTable {
                name: name.clone(),
                known: TABLES.iter().map(|table| table.name).collect::<Vec<_>>().join(", "),
            })
        })
        .collect()
}

/// Runs the plans of the given tables.
pub fn compute_tables(context: &Context, tables: &[TableSpec]) -> Result<Vec<Table>, ComputeError> {
    tables
        .iter()
        .map(|table| {
            let frame = (table.plan)(context)
                .and_then(LazyFrame::collect)
                .map_err(|source| ComputeError::Plan { table: table.name.to_owned(), source })?;
            Ok(Table { name: table.name, frame })
        })
        .collect()
}

/// Warnings about the data behind the selected tables, for the manifest and the log: tickets
/// the service KPIs leave out, and model fits that could not be made or did not converge.
pub fn data_warnings(context: &Context, tables: &[TableSpec]) -> Result<Vec<String>, ComputeError> {
    let selected = |names: &[&str]| tables.iter().any(|table| names.contains(&table.name));
    let mut warnings = Vec::new();
    if selected(&["kpi_monthly", "tickets"]) {
        let plan_error = |source| ComputeError::Plan { table: "tickets".to_owned(), source };
        let unopened = service::tickets_without_opening(context).map_err(plan_error)?;
        if unopened > 0 {
            warnings.push(format!(
                "{unopened} tickets have events but no ticket_opened and are left out of the service KPIs"
            ));
        }
    }
    if selected(&["customers", "clv_model"]) {
        let model_error = |source| ComputeError::Plan { table: "clv_model".to_owned(), source };
        warnings.extend(customers::clv_warnings(context).map_err(model_error)?);
    }
    Ok(warnings)
}

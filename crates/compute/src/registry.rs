//! The registry of output tables and the run that computes them: one pass over the entity
//! buckets (each bucket's events read once, its per-entity facts and the selected tables'
//! additive parts computed from them by [`bucket_facts`], here or in a Spark task), the merge,
//! then each table's plan over the merged facts.

use polars::prelude::*;

use crate::context::Context;
use crate::error::ComputeError;
use crate::facts::customers::{CUSTOMERS, LATEST_NPS};
use crate::facts::deals::{DEALS, STAGE_VISITS};
use crate::facts::leads::{LEAD_ORIGINS, LEADS};
use crate::facts::orders::monthly_order_parts;
use crate::facts::tickets::{TICKETS, UNOPENED_TICKETS};
use crate::facts::{Bucket, BucketFacts, BucketPlans, Facts, FactsBuilder, Owner};
use crate::tables::{Placement, Run, TableSpec, no_parts};
use crate::{Table, tables};

/// The tables this version computes, in output order.
pub const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "kpi_monthly",
        facts: &[LEADS, DEALS, TICKETS, UNOPENED_TICKETS],
        parts: tables::kpi_monthly::parts,
        plan: tables::kpi_monthly::plan,
        placement: Placement::Merged,
    },
    TableSpec {
        name: "cohort_retention",
        facts: &[],
        parts: tables::cohort_retention::parts,
        plan: tables::cohort_retention::plan,
        placement: Placement::Merged,
    },
    TableSpec {
        name: "customers",
        facts: &[CUSTOMERS, LATEST_NPS, TICKETS, LEAD_ORIGINS],
        parts: no_parts,
        plan: tables::customers::plan,
        placement: Placement::PerEntity("customer_id"),
    },
    TableSpec {
        name: "clv_model",
        facts: &[CUSTOMERS],
        parts: no_parts,
        plan: tables::clv_model::plan,
        placement: Placement::Fits,
    },
    TableSpec {
        name: "deals",
        facts: &[DEALS, LEAD_ORIGINS],
        parts: no_parts,
        plan: tables::deals::plan,
        placement: Placement::PerEntity("customer_id"),
    },
    TableSpec {
        name: "deal_stage_visits",
        facts: &[STAGE_VISITS],
        parts: no_parts,
        plan: tables::deal_stage_visits::plan,
        placement: Placement::PerEntity("deal_id"),
    },
    TableSpec {
        name: "stage_durations",
        facts: &[STAGE_VISITS],
        parts: no_parts,
        plan: tables::stage_durations::plan,
        placement: Placement::Merged,
    },
    TableSpec {
        name: "pipeline_forecast",
        facts: &[DEALS],
        parts: no_parts,
        plan: tables::pipeline_forecast::plan,
        placement: Placement::Merged,
    },
    TableSpec {
        name: "rep_performance",
        facts: &[DEALS],
        parts: no_parts,
        plan: tables::rep_performance::plan,
        placement: Placement::Merged,
    },
    TableSpec {
        name: "lost_reasons",
        facts: &[DEALS],
        parts: no_parts,
        plan: tables::lost_reasons::plan,
        placement: Placement::Merged,
    },
    TableSpec {
        name: "tickets",
        facts: &[TICKETS, UNOPENED_TICKETS],
        parts: no_parts,
        plan: tables::tickets::plan,
        placement: Placement::PerEntity("ticket_id"),
    },
    TableSpec {
        name: "campaigns",
        facts: &[],
        parts: tables::campaigns::parts,
        plan: tables::campaigns::plan,
        placement: Placement::Merged,
    },
];

/// Checks table names given with `--tables` against [`TABLES`]; no names means all tables. A
/// name given twice selects its table once (at its first place).
pub fn select_tables(names: &[String]) -> Result<Vec<TableSpec>, ComputeError> {
    if names.is_empty() {
        return Ok(TABLES.to_vec());
    }
    let mut selected: Vec<TableSpec> = Vec::with_capacity(names.len());
    for name in names {
        let table =
            TABLES.iter().copied().find(|table| table.name == name).ok_or_else(|| ComputeError::UnknownTable {
                name: name.clone(),
                known: TABLES.iter().map(|table| table.name).collect::<Vec<_>>().join(", "),
            })?;
        if selected.iter().all(|known| known.name != table.name) {
            selected.push(table);
        }
    }
    Ok(selected)
}

/// Computes the facts of every bucket and merges them: the per-entity facts, and the additive
/// parts of the given tables, each bucket's events read from the lake. `on_bucket(done,
/// buckets)` is called after each bucket.
pub fn compute_facts(
    context: &Context,
    tables: &[TableSpec],
    on_bucket: &dyn Fn(u32, u32),
) -> Result<Facts, ComputeError> {
    compute_facts_from(context, tables, &|number| context.bucket_events(number), on_bucket)
}

/// [`compute_facts`] with each bucket's events from `events_of(bucket)` (a run that split the
/// lake by bucket once reads them from the split).
pub fn compute_facts_from(
    context: &Context,
    tables: &[TableSpec],
    events_of: &dyn Fn(u32) -> Result<DataFrame, ComputeError>,
    on_bucket: &dyn Fn(u32, u32),
) -> Result<Facts, ComputeError> {
    let mut builder = FactsBuilder::default();
    for number in 0..context.buckets {
        let started = std::time::Instant::now();
        let events = events_of(number)?;
        tracing::debug!(
            bucket = number,
            buckets = context.buckets,
            events = events.height(),
            seconds = started.elapsed().as_secs_f64(),
            "bucket events read"
        );
        builder.add(bucket_facts(&Bucket::new(context, number, events), tables)?);
        on_bucket(number + 1, context.buckets);
    }
    builder.finish(context.global_events()?)
}

/// The facts of one bucket: every per-entity fact, the monthly order sums, and the additive
/// parts of the given tables. What a Spark task computes for its bucket.
pub fn bucket_facts(bucket: &Bucket, tables: &[TableSpec]) -> Result<BucketFacts, ComputeError> {
    let needed = |fact: &str| tables.iter().any(|table| table.facts.contains(&fact));
    let mut plans = BucketPlans::entity_facts(bucket, needed)?;
    let order_parts = monthly_order_parts(bucket).map_err(|source| ComputeError::Fact {
        fact: "monthly orders",
        bucket: bucket.number,
        source,
    })?;
    plans.add_parts(Owner::Fact("monthly orders"), order_parts);
    for table in tables {
        let parts = (table.parts)(bucket).map_err(|source| ComputeError::Table { table: table.name, source })?;
        plans.add_parts(Owner::Table(table.name), parts);
    }
    plans.collect()
}

/// Runs one table's plan over the merged facts.
pub fn compute_table(run: &Run, table: &TableSpec) -> Result<Table, ComputeError> {
    let frame = (table.plan)(run)
        .and_then(LazyFrame::collect)
        .map_err(|source| ComputeError::Table { table: table.name, source })?;
    Ok(Table { name: table.name, frame })
}

/// Computes the given tables: the facts of every bucket, then each table's plan.
pub fn compute_tables(context: &Context, tables: &[TableSpec]) -> Result<Vec<Table>, ComputeError> {
    let facts = compute_facts(context, tables, &|_, _| {})?;
    let run = Run::new(context, &facts);
    tables.iter().map(|table| compute_table(&run, table)).collect()
}

/// Warnings about the data behind the selected tables, for the manifest and the log: tickets
/// the service KPIs leave out, and model fits that could not be made or did not converge.
pub fn data_warnings(run: &Run, tables: &[TableSpec]) -> Result<Vec<String>, ComputeError> {
    let mut warnings = Vec::new();
    if checks_unopened_tickets(tables) {
        let unopened = run
            .facts
            .entity_frame(UNOPENED_TICKETS)
            .map_err(|source| ComputeError::DataCheck { check: "tickets without ticket_opened", source })?
            .height();
        warnings.extend(unopened_tickets_warning(unopened as u64));
    }
    if reads_fits(tables) {
        let models = run.models().map_err(|source| ComputeError::Fit { source })?;
        warnings.extend(crate::clv::fits::warnings(&models.fits));
    }
    Ok(warnings)
}

/// The warning about tickets that have events but no `ticket_opened`, if there are any.
pub fn unopened_tickets_warning(tickets: u64) -> Option<String> {
    (tickets > 0)
        .then(|| format!("{tickets} tickets have events but no ticket_opened and are left out of the service KPIs"))
}

/// Whether some of the tables read the CLV fits (`customers`, `clv_model`: those of the
/// customers' facts); their data checks warn about the fits.
pub fn reads_fits(tables: &[TableSpec]) -> bool {
    tables.iter().any(|table| table.facts.contains(&CUSTOMERS))
}

/// Whether some of the tables leave out tickets without `ticket_opened` (`kpi_monthly`,
/// `tickets`); their data checks count them.
pub fn checks_unopened_tickets(tables: &[TableSpec]) -> bool {
    tables.iter().any(|table| table.facts.contains(&UNOPENED_TICKETS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_named_twice_is_selected_once_in_the_order_given() {
        let names = ["deals", "kpi_monthly", "deals"].map(str::to_owned);
        let selected: Vec<&str> = select_tables(&names).expect("known tables").iter().map(|table| table.name).collect();
        assert_eq!(selected, ["deals", "kpi_monthly"]);
        assert_eq!(select_tables(&[]).expect("all").len(), TABLES.len());
        let unknown = select_tables(&["nope".to_owned()]).expect_err("unknown");
        assert!(unknown.to_string().contains("nope"), "{unknown}");
    }
}

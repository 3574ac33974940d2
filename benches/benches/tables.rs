//! Per-table compute time: each table's plan collected from the lake, median of
//! `CRMKPI_BENCH_RUNS` (default 3) runs; then the same for each family of `kpi_monthly`.
//! `CRMKPI_BENCH_TABLES` (comma-separated table or family names) restricts what is timed.
//! Every run starts from a fresh context, so the model fits of `customers` are timed each run.
//! Last, the customer-analytics tables and `kpi_monthly` families together on one context, as
//! one `compute` run shares the orders, lead origins, customers alive per month and the fits.

use crmkpi_benches::{bench_config, bench_lake, median_of};
use crmkpi_compute::kpi_monthly::FAMILIES;
use crmkpi_compute::{Context, TABLES, scan_lake};
use polars::prelude::{LazyFrame, PolarsResult};

/// Builds a table's or a family's plan.
type Plan = fn(&Context) -> PolarsResult<LazyFrame>;

/// The tables and `kpi_monthly` families of customer analytics (churn, retention, cohorts,
/// customer value), timed together.
const CUSTOMER_ANALYTICS: [&str; 7] =
    ["cohort_retention", "customers", "clv_model", "revenue", "churn", "clv_formula", "marketing"];

fn main() {
    let lake = bench_lake();
    let runs: usize = std::env::var("CRMKPI_BENCH_RUNS").ok().and_then(|text| text.parse().ok()).unwrap_or(3);
    let only: Option<Vec<String>> =
        std::env::var("CRMKPI_BENCH_TABLES").ok().map(|names| names.split(',').map(str::to_owned).collect());
    let wanted = |name: &str| only.as_ref().is_none_or(|names| names.iter().any(|wanted| wanted == name));
    let files = lake.event_files().unwrap_or_default();
    let context = || match scan_lake(&files).and_then(|scan| Context::new(scan, bench_config(), None)) {
        Ok(context) => context,
        Err(error) => {
            eprintln!("cannot open the benchmark lake {}: {error}", lake.root().display());
            std::process::exit(1);
        }
    };
    let time = |name: &str, plan: Plan| {
        let mut rows = 0;
        let median = median_of(runs, context, |context| {
            rows = plan(&context).and_then(|plan| plan.collect()).map(|frame| frame.height()).unwrap_or(0);
        });
        println!("  {name:<20} {:>9.3} s  {rows} rows", median.as_secs_f64());
    };
    println!("table plans on {} ({} files), median of {runs} runs:", lake.root().display(), files.len());
    for table in TABLES.iter().filter(|table| wanted(table.name)) {
        time(table.name, table.plan);
    }
    println!("kpi_monthly families, median of {runs} runs:");
    for family in FAMILIES.iter().filter(|family| wanted(family.name)) {
        time(family.name, family.rows);
    }
    let plans: Vec<(&str, Plan)> = TABLES
        .iter()
        .map(|table| (table.name, table.plan))
        .chain(FAMILIES.iter().map(|family| (family.name, family.rows)))
        .filter(|(name, _)| CUSTOMER_ANALYTICS.contains(name))
        .collect();
    let median = median_of(runs, context, |context| {
        for (name, plan) in &plans {
            if let Err(error) = plan(&context).and_then(LazyFrame::collect) {
                eprintln!("{name}: {error}");
            }
        }
    });
    println!("customer analytics together ({}), median of {runs} runs:", CUSTOMER_ANALYTICS.join(", "));
    println!("  {:<20} {:>9.3} s", "total", median.as_secs_f64());
}

//! Compute time, median of `CRMKPI_BENCH_RUNS` (default 3) runs on the benchmark lake: the
//! entity facts of every bucket (the lake split into per-bucket files as `compute` does with
//! more than one bucket, then per bucket its events read once, the per-entity facts and every
//! table's additive parts), then each table's plan and each `kpi_monthly` family's rows over
//! the merged facts, then all 12 tables as one `compute` runs them.
//! `CRMKPI_BENCH_TABLES` (comma-separated table or family names) restricts the per-table
//! timings; `CRMKPI_BENCH_BUCKETS` sets the number of buckets (default: from the memory limit).

use crmkpi_benches::{bench_config, bench_lake, median_of};
use crmkpi_compute::metrics::FAMILIES;
use std::collections::BTreeMap;

use crmkpi_compute::{Context, Run, TABLES, compute_table, open_lake};
use crmkpi_export::compute_run::{NoProgress, merged_facts};
use polars::prelude::LazyFrame;

fn main() {
    let lake = bench_lake();
    let runs: usize = std::env::var("CRMKPI_BENCH_RUNS").ok().and_then(|text| text.parse().ok()).unwrap_or(3);
    let only: Option<Vec<String>> =
        std::env::var("CRMKPI_BENCH_TABLES").ok().map(|names| names.split(',').map(str::to_owned).collect());
    let buckets: Option<u32> = std::env::var("CRMKPI_BENCH_BUCKETS").ok().and_then(|text| text.parse().ok());
    let wanted = |name: &str| only.as_ref().is_none_or(|names| names.iter().any(|wanted| wanted == name));
    let context = || -> Context {
        let opened = open_lake(lake.root()).and_then(|lake| Context::new(lake.files, bench_config(), None));
        match opened {
            Ok(context) => buckets.map_or(context.clone(), |buckets| context.with_buckets(buckets)),
            Err(error) => {
                eprintln!("cannot open the benchmark lake {}: {error}", lake.root().display());
                std::process::exit(1);
            }
        }
    };
    let base = context();
    println!(
        "compute on {} ({} events, {} buckets), median of {runs} runs:",
        lake.root().display(),
        base.events,
        base.buckets
    );
    let facts_of = |context: &Context| match merged_facts(context, TABLES, &NoProgress, &mut BTreeMap::new()) {
        Ok(facts) => facts,
        Err(error) => {
            eprintln!("entity facts: {error}");
            std::process::exit(1);
        }
    };
    let median = median_of(runs, context, |context| {
        facts_of(&context);
    });
    println!("  {:<20} {:>9.3} s", "entity facts", median.as_secs_f64());
    let facts = facts_of(&base);
    for table in TABLES.iter().filter(|table| wanted(table.name)) {
        let mut rows = 0;
        // A fresh run each time, so the CLV fits are timed with the tables that need them.
        let median = median_of(
            runs,
            || Run::new(&base, &facts),
            |run| {
                rows = compute_table(&run, table).map(|table| table.frame.height()).unwrap_or(0);
            },
        );
        println!("  {:<20} {:>9.3} s  {rows} rows", table.name, median.as_secs_f64());
    }
    println!("kpi_monthly families over the merged facts, median of {runs} runs:");
    for family in FAMILIES.iter().filter(|family| wanted(family.name)) {
        let median = median_of(
            runs,
            || (),
            |()| {
                if let Err(error) = (family.rows)(&base, &facts).and_then(LazyFrame::collect) {
                    eprintln!("{}: {error}", family.name);
                }
            },
        );
        println!("  {:<20} {:>9.3} s", family.name, median.as_secs_f64());
    }
    let median = median_of(runs, context, |context| {
        let facts = facts_of(&context);
        let run = Run::new(&context, &facts);
        for table in TABLES {
            if let Err(error) = compute_table(&run, table) {
                eprintln!("{}: {error}", table.name);
            }
        }
    });
    println!("all {} tables, as one compute runs them:", TABLES.len());
    println!("  {:<20} {:>9.3} s", "total", median.as_secs_f64());
}

//! Per-table compute time: each table's plan collected from the lake, median of
//! `CRMKPI_BENCH_RUNS` (default 3) runs.

use crmkpi_benches::{bench_config, bench_lake, median_of};
use crmkpi_compute::{Context, TABLES, scan_lake};

fn main() {
    let lake = bench_lake();
    let runs: usize = std::env::var("CRMKPI_BENCH_RUNS").ok().and_then(|text| text.parse().ok()).unwrap_or(3);
    let files = lake.event_files().unwrap_or_default();
    let context = match scan_lake(&files).and_then(|scan| Context::new(scan, bench_config(), None)) {
        Ok(context) => context,
        Err(error) => {
            eprintln!("cannot open the benchmark lake {}: {error}", lake.root().display());
            std::process::exit(1);
        }
    };
    println!("table plans on {} ({} files), median of {runs} runs:", lake.root().display(), files.len());
    for table in TABLES {
        let mut rows = 0;
        let median = median_of(runs, || {
            rows = (table.plan)(&context).and_then(|plan| plan.collect()).map(|frame| frame.height()).unwrap_or(0);
        });
        println!("  {:<20} {:>9.3} s  {rows} rows", table.name, median.as_secs_f64());
    }
}

//! Shared setup of crmkpi's benchmarks: the lake to run on and the median of repeated runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crmkpi_ingest::generator::{GenerateOptions, generate};
use crmkpi_ingest::source::{Compression, Format};
use crmkpi_ingest::{Lake, NoProgress, ingest};
use crmkpi_schema::Config;

/// The lake named by `CRMKPI_BENCH_LAKE`, or a lake built from a generated dump of
/// `CRMKPI_BENCH_EVENTS` events (default 200,000) under `target/bench-lake`.
pub fn bench_lake() -> Lake {
    if let Ok(dir) = std::env::var("CRMKPI_BENCH_LAKE") {
        return Lake::new(dir);
    }
    let events: u64 = std::env::var("CRMKPI_BENCH_EVENTS").ok().and_then(|text| text.parse().ok()).unwrap_or(200_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/bench-lake-{events}"));
    let lake = Lake::new(root.join("lake"));
    if lake.runs().map(|runs| runs.is_empty()).unwrap_or(true) {
        let options = GenerateOptions {
            events,
            seed: 1,
            out: root.join("dump"),
            formats: vec![Format::Ndjson],
            compressions: vec![Compression::None],
            dirty_rate: 0.0,
            events_per_file: 1_000_000,
        };
        if let Err(error) = generate(&options)
            .and_then(|_| ingest(&lake, &[options.out.to_string_lossy().into_owned()], &bench_config(), &NoProgress))
        {
            eprintln!("cannot build the benchmark lake: {error}");
            std::process::exit(1);
        }
    }
    lake
}

/// The benchmark configuration, as `scripts/bench.sh` writes it: defaults, reporting days in
/// Europe/Berlin, and the generator's USD rate.
pub fn bench_config() -> Config {
    let mut config = Config { timezone: chrono_tz::Europe::Berlin, ..Config::default() };
    config.fx.insert("USD".to_owned(), 0.92);
    config
}

/// Runs `prepare` then `work` on its result `runs` times and returns the median duration of
/// `work` alone.
pub fn median_of<T>(runs: usize, mut prepare: impl FnMut() -> T, mut work: impl FnMut(T)) -> Duration {
    let mut durations: Vec<Duration> = (0..runs.max(1))
        .map(|_| {
            let input = prepare();
            let started = Instant::now();
            work(input);
            started.elapsed()
        })
        .collect();
    durations.sort();
    durations[durations.len() / 2]
}

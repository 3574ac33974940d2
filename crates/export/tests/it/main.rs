//! Integration tests of the export crate: round trip of every column type through Parquet and
//! CSV, atomic replacement of the output directory, the manifest's contents, the split of a
//! lake by bucket, and the distributed run of the Spark job played in process.

mod distributed;
mod round_trip;
mod split;

use std::path::{Path, PathBuf};

use crmkpi_ingest::generator::{GenerateOptions, generate};
use crmkpi_ingest::source::{Compression, Format};
use crmkpi_ingest::{Lake, NoProgress, ingest};
use crmkpi_schema::Config;

/// A dump of `events` generated events (seed `seed`, no dirty records) ingested into
/// `<dir>/lake`; returns the lake.
fn ingested_lake(dir: &Path, events: u64, seed: u64, config: &Config) -> PathBuf {
    let options = GenerateOptions {
        events,
        seed,
        out: dir.join("dump"),
        formats: vec![Format::Ndjson],
        compressions: vec![Compression::None],
        dirty_rate: 0.0,
        events_per_file: events,
    };
    generate(&options).expect("generate");
    let lake = dir.join("lake");
    ingest(&Lake::new(&lake), &[options.out.to_string_lossy().into_owned()], config, &NoProgress).expect("ingest");
    lake
}

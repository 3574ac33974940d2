//! Nothing is silently dropped: on generated dirty dumps over many seeds, every record read is
//! accepted, a plain duplicate or rejected, per file and in total, and the lake holds exactly
//! the accepted events and rejected records. Every reject reason occurs.

use std::collections::BTreeSet;
use std::io::BufRead;

use crmkpi_ingest::generator::{GenerateOptions, generate};
use crmkpi_ingest::source::{Compression, Format};

use crate::common::{config_with, ingest_into, lake_events, lake_rejects};

/// Non-blank lines of a generated dump, minus the CSV header: generated records are one line
/// each, so this counts the records written.
fn records_in(path: &std::path::Path) -> u64 {
    let file = std::fs::File::open(path).expect("open");
    let name = path.to_string_lossy();
    let reader: Box<dyn std::io::Read> = if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(file).expect("zstd"))
    } else {
        Box::new(file)
    };
    let lines = std::io::BufReader::new(reader)
        .lines()
        .map(|line| line.expect("line"))
        .filter(|line| !line.trim().is_empty())
        .count();
    lines as u64 - u64::from(name.contains(".csv"))
}

#[test]
fn read_equals_accepted_plus_duplicates_plus_rejected() {
    let mut reasons_seen = BTreeSet::new();
    for seed in 1..=6u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = GenerateOptions {
            events: 3_000 + seed * 500,
            seed,
            out: dir.path().join("dump"),
            formats: vec![Format::Ndjson, Format::Csv],
            compressions: vec![Compression::None, Compression::Gzip, Compression::Zstd],
            dirty_rate: 0.05,
            events_per_file: 900,
        };
        let files = generate(&options).expect("generate");
        let lake = dir.path().join("lake");
        let report = ingest_into(&lake, &[options.out.to_string_lossy().into_owned()], &config_with(1.0));
        let summary = &report.summary;
        assert_eq!(summary.read, options.events, "seed {seed}");
        assert_eq!(summary.read, summary.accepted + summary.duplicates + summary.rejected_total(), "seed {seed}");
        assert_eq!(summary.files.len(), files.len());
        for (stats, path) in summary.files.iter().zip(&files) {
            assert_eq!(stats.read, records_in(path), "{}", path.display());
            assert_eq!(stats.read, stats.accepted + stats.duplicates + stats.rejected_total(), "{}", path.display());
        }
        assert!(summary.duplicates > 0, "seed {seed}: the generator mixes in plain duplicates");
        assert_eq!(lake_events(&lake).height() as u64, summary.accepted);
        let rejects = lake_rejects(&lake);
        assert_eq!(rejects.len() as u64, summary.rejected_total());
        reasons_seen
            .extend(rejects.into_iter().map(|(_, _, reason)| reason.split(':').next().unwrap_or_default().to_owned()));
    }
    let all_reasons: BTreeSet<String> = [
        "malformed_record",
        "missing_field",
        "unknown_event_type",
        "invalid_timestamp",
        "invalid_amount",
        "invalid_score",
        "invalid_category",
        "unknown_currency",
        "conflicting_duplicate",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(reasons_seen, all_reasons);
}

#[test]
fn generation_is_deterministic_per_seed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = |out: &str| GenerateOptions {
        events: 2_000,
        seed: 9,
        out: dir.path().join(out),
        formats: vec![Format::Ndjson, Format::Csv],
        compressions: vec![Compression::None],
        dirty_rate: 0.02,
        events_per_file: 700,
    };
    let first = generate(&options("a")).expect("generate");
    let second = generate(&options("b")).expect("generate");
    assert_eq!(first.len(), 3);
    for (left, right) in first.iter().zip(&second) {
        assert_eq!(std::fs::read(left).expect("read"), std::fs::read(right).expect("read"));
    }
}

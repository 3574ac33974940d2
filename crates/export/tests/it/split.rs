//! The split of a lake by entity bucket holds the same events whether it keeps them in memory or
//! in per-bucket files, and the files are removed with the split.

use crmkpi_compute::{Context, open_lake};
use crmkpi_export::bucket_spill::{BucketSpill, SplitStore};
use crmkpi_schema::Config;

use crate::ingested_lake;

/// A lake of a generated dump of `events` events, and the context of a run of `buckets` buckets
/// over it.
fn lake_context(dir: &std::path::Path, events: u64, buckets: u32) -> Context {
    let mut config = Config::default();
    config.fx.insert("USD".to_owned(), 0.92);
    let lake = open_lake(&ingested_lake(dir, events, 7, &config)).expect("open lake");
    Context::new(lake.files, config, None).expect("context").with_buckets(buckets)
}

fn entries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).expect("read scratch").count()
}

#[test]
fn memory_and_files_hold_the_same_events_per_bucket() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Chunks of 400 events: each bucket gathers parts from several chunks. 512 buckets for
    // about a thousand entities: some buckets get no event at all.
    let context = lake_context(dir.path(), 3_000, 512).with_chunk_events(400).expect("chunks");
    assert!(context.lake_chunks().len() > 1, "several chunks");
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).expect("scratch");
    // A small lake fits the default memory limit.
    assert_eq!(SplitStore::for_run(&context), SplitStore::Memory);

    let in_memory = BucketSpill::write(&context, SplitStore::Memory, &scratch).expect("split in memory");
    assert_eq!(entries(&scratch), 0, "a split in memory writes no files");
    let in_files = BucketSpill::write(&context, SplitStore::Files, &scratch).expect("split into files");
    assert_eq!(entries(&scratch), 1, "one directory of bucket files");

    let (mut total, mut empty) = (0, 0);
    for bucket in 0..context.buckets {
        let held = in_memory.events(bucket).expect("events in memory");
        let read = in_files.events(bucket).expect("events from the file");
        assert!(held.equals_missing(&read), "bucket {bucket}: {held} != {read}");
        total += held.height();
        empty += usize::from(held.height() == 0);
    }
    assert!(empty > 0 && empty < 512, "{empty} empty buckets");
    let entity_events = context.lake_stats().events - context.global_events().expect("global events").height() as u64;
    assert_eq!(total as u64, entity_events, "every entity event is in exactly one bucket");

    // A bucket held in memory is handed over once.
    assert!(in_memory.events(0).is_err());
    drop(in_files);
    assert_eq!(entries(&scratch), 0, "the bucket files are removed with the split");
}

//! Integration tests of the export crate: round trip of every column type through Parquet and
//! CSV, atomic replacement of the output directory, the manifest's contents, and the split of
//! a lake by bucket.

mod round_trip;
mod split;

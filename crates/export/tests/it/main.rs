//! Integration tests of the export crate: round trip of every column type through Parquet and
//! CSV, atomic replacement of the output directory, and the manifest's contents.

mod round_trip;

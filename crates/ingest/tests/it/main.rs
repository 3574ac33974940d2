//! Integration tests of the ingest crate: one binary (uv's `tests/it` layout).

mod common;
mod compact;
mod conservation;
mod fuzz;
mod incremental;
mod parsing;
mod rejects;
mod timestamps;

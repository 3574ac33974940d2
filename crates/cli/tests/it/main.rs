//! End-to-end tests of the `crmkpi` binary: one integration binary (uv's `tests/it` layout).

mod buckets;
mod commands;
mod common;
mod crash;
mod golden;
mod ownership;
mod readers;
mod report;
mod terminal;

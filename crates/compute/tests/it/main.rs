//! Integration tests of the compute crate: hand-computed fixtures and differential tests
//! against row-by-row reference implementations, one binary (uv's `tests/it` layout).

mod clv;
mod cohorts;
mod common;
mod customers;
mod leads;
mod marketing;
mod revenue;
mod sales;
mod service;

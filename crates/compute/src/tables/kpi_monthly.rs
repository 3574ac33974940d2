//! Table `kpi_monthly` (outputs.md): one row per month, metric and segment, the rows of every
//! family of [`crate::metrics::FAMILIES`].

use polars::prelude::*;

use crate::facts::{Bucket, Part};
use crate::metrics::FAMILIES;
use crate::tables::Run;

/// Every family's parts of a bucket.
pub fn parts(bucket: &Bucket) -> PolarsResult<Vec<Part>> {
    let mut parts = Vec::new();
    for family in FAMILIES {
        parts.extend((family.parts)(bucket)?);
    }
    Ok(parts)
}

/// The rows of every family, sorted by `period`, `metric`, `segment`.
pub fn plan(run: &Run) -> PolarsResult<LazyFrame> {
    let families = FAMILIES
        .iter()
        .map(|family| {
            (family.rows)(run.context, run.facts)
                .map_err(|error| polars_err!(ComputeError: "family `{}`: {error}", family.name))
        })
        .collect::<PolarsResult<Vec<_>>>()?;
    Ok(concat(families, UnionArgs::default())?.sort(["period", "metric", "segment"], SortMultipleOptions::default()))
}

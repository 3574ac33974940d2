//! A compute run whose buckets and per-entity tables are computed elsewhere: the engine's side
//! of the Spark job (`python -m crmkpi.spark`).
//!
//! The driver prepares the run as `crmkpi compute` does ([`DistributedRun::prepare`]: the
//! lake's committed snapshot, `as_of`, the calendar, the number of buckets) and hands Spark the
//! snapshot's event files and a [`TaskSpec`]. Then two stages of tasks, between which Spark
//! moves [`Shipment`]s (frames addressed to a destination):
//!
//! 1. Spark routes each event to its bucket with `pmod(xxhash64(key), buckets)`, the engine's
//!    own bucket function (the events of no entity to one more task), and each task calls
//!    [`bucket_task`]: the same [`bucket_facts`] as a single-node run, shipped on by table
//!    [`Placement`]. The facts of a per-entity table go to the bucket of their value of the
//!    table's partition column (a deal's row to the bucket of its customer, whose lead channel
//!    it needs; a ticket's open state to its customer's); the facts and additive parts of an
//!    aggregated table to that table's task; to the driver only each bucket's customers
//!    grouped by RFM summary (identical summaries counted once) and its count of tickets
//!    without `ticket_opened`.
//! 2. The driver merges the RFM groups and fits the CLV models once
//!    ([`DistributedRun::fit`]); the fits travel in the task specification. Spark groups the
//!    shipments by destination and each task calls [`stage_two_task`]: a bucket's task computes
//!    its rows of the per-entity tables (predicting with the driver's fits) and writes them as
//!    part files into the output's staging directory; an aggregated table's task merges the
//!    facts and parts of every bucket and computes the table.
//!
//! The driver receives the aggregated tables and the part files' names, sizes and hashes
//! ([`DistributedRun::add_result`]), computes `clv_model` from its fits, and
//! [`DistributedRun::finish`] writes the aggregated tables and `manifest.json` beside the parts
//! and puts the staging directory in the place of `--out`. No per-entity row passes through
//! the driver.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crmkpi_compute::clv::fits::{ClvFits, rfm_rows};
use crmkpi_compute::clv::{BgNbd, Fit, GammaGamma, Rfm, RfmGroup};
use crmkpi_compute::context::{bucket_of, bucket_schema};
use crmkpi_compute::facts::customers::CUSTOMERS;
use crmkpi_compute::facts::tickets::UNOPENED_TICKETS;
use crmkpi_compute::facts::{Bucket, Facts, FactsBuilder, Layout, Owner};
use crmkpi_compute::{
    ComputeError, Context, FitSource, Placement, Run, TABLES, TableSpec, bucket_facts, checks_unopened_tickets,
    compute_table, reads_fits, select_tables, unopened_tickets_warning,
};
use crmkpi_schema::Config;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::compute_run::{ComputeRequest, ComputedRun, PreparedRun, Progress, prepare};
use crate::{ExportError, Manifest, OutputTable, Staging, TablePart, table_of_parts};

/// The destination of the shipments for the driver.
pub const TO_DRIVER: i32 = -1;
/// The bucket number Spark gives the events of no entity (spend and CRM-user activity).
pub const GLOBAL_BUCKET: i32 = -1;

/// Shipment names: the driver's RFM groups and unopened ticket counts, the events of no entity.
const RFM_GROUPS: &str = "rfm_groups";
const UNOPENED_TICKETS_COUNT: &str = "unopened_tickets_count";
const GLOBAL_EVENTS: &str = "global_events";
/// Prefixes of the results of the second stage: the description of a part of a per-entity
/// table, an aggregated table.
const TABLE_PART_RESULT: &str = "table-part/";
const TABLE_RESULT: &str = "table/";

/// Why a distributed run or one of its tasks failed.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    /// The engine's own work failed.
    #[error(transparent)]
    Compute(#[from] ComputeError),
    /// Writing the outputs failed.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// A frame could not be encoded for shipping.
    #[error("encoding `{name}` for destination {dest}: {source}")]
    Encode {
        /// The shipment.
        name: String,
        /// Its destination.
        dest: i32,
        /// The cause.
        source: PolarsError,
    },
    /// A task's shipments could not be made.
    #[error("shipping {what} of destination {dest}: {source}")]
    Ship {
        /// What was being shipped.
        what: &'static str,
        /// The task's destination.
        dest: i32,
        /// The cause.
        source: PolarsError,
    },
    /// A shipped frame could not be read.
    #[error("reading the shipped `{name}`: {source}")]
    Decode {
        /// The shipment.
        name: String,
        /// The cause.
        source: PolarsError,
    },
    /// A shipment or result that this version does not send.
    #[error("unexpected shipment `{name}` for destination {dest}")]
    Unexpected {
        /// Its name.
        name: String,
        /// Its destination.
        dest: i32,
    },
    /// A table part's description could not be written or read.
    #[error("the description of a part of `{table}`: {source}")]
    Part {
        /// The table.
        table: String,
        /// serde's error.
        source: serde_json::Error,
    },
    /// The run was finished before its output directory was begun.
    #[error("the run's output directory was not begun (call begin_output before the second stage)")]
    OutputNotBegun,
    /// The tasks' parts of a per-entity table do not add up to its entities.
    #[error("the parts of table `{table}` hold {rows} rows, but the run has {expected} of its entities")]
    PartRows {
        /// The table.
        table: &'static str,
        /// Rows in its parts.
        rows: u64,
        /// Entities the run counted.
        expected: u64,
    },
    /// The CLV fits were needed before the driver made them.
    #[error("the CLV fits are needed by `{table}` but were not made (call fit() after the first stage)")]
    NoFits {
        /// The table.
        table: &'static str,
    },
    /// The task specification is not one this version writes.
    #[error("the task specification cannot be read (does the executor run the driver's crmkpi version?): {source}")]
    TaskSpec {
        /// serde's error.
        source: serde_json::Error,
    },
}

/// What every task needs: everything the driver's context resolved, and (in the second stage)
/// the CLV fits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The crmkpi version of the driver; a task of another version refuses to run.
    pub crmkpi_version: String,
    /// The resolved configuration.
    pub config: Config,
    /// The run's `as_of`, UTC microseconds.
    pub as_of: i64,
    /// The earliest event up to `as_of`, UTC microseconds.
    pub earliest_event: i64,
    /// The events up to `as_of`.
    pub events: u64,
    /// The number of buckets.
    pub buckets: u32,
    /// The selected tables.
    pub tables: Vec<String>,
    /// The driver's CLV fits, once made.
    pub fits: Option<ShippedFits>,
}

impl TaskSpec {
    /// The specification as JSON, to ship to the tasks.
    pub fn to_json(&self) -> Result<String, DistributedError> {
        serde_json::to_string(self).map_err(|source| DistributedError::TaskSpec { source })
    }

    /// Reads a specification shipped by the driver.
    pub fn from_json(text: &str) -> Result<TaskSpec, DistributedError> {
        let spec: TaskSpec = serde_json::from_str(text).map_err(|source| DistributedError::TaskSpec { source })?;
        if spec.crmkpi_version != env!("CARGO_PKG_VERSION") {
            return Err(DistributedError::TaskSpec {
                source: serde::de::Error::custom(format!(
                    "the driver runs crmkpi {}, this executor {}",
                    spec.crmkpi_version,
                    env!("CARGO_PKG_VERSION")
                )),
            });
        }
        Ok(spec)
    }

    fn context(&self) -> Context {
        Context::for_task(self.config.clone(), self.as_of, self.earliest_event, self.events, self.buckets)
    }

    fn tables(&self) -> Result<Vec<TableSpec>, DistributedError> {
        Ok(select_tables(&self.tables)?)
    }

    /// Where `table`'s plan gets its fits from in a task.
    fn fit_source(&self, table: &TableSpec) -> Result<FitSource, DistributedError> {
        fit_source(table, self.fits.as_ref().map(ShippedFits::to_fits))
    }
}

/// Where `table`'s plan gets its fits from: the driver's, when it reads them.
fn fit_source(table: &TableSpec, fits: Option<ClvFits>) -> Result<FitSource, DistributedError> {
    if !reads_fits(std::slice::from_ref(table)) {
        return Ok(FitSource::Unavailable);
    }
    Ok(FitSource::Given(fits.ok_or(DistributedError::NoFits { table: table.name })?))
}

/// The CLV fits as the task specification carries them: every number by its bits, so that the
/// tasks predict with exactly the driver's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShippedFits {
    bg_nbd: Option<ShippedFit<ShippedBgNbd>>,
    gamma_gamma: Option<ShippedFit<ShippedGammaGamma>>,
    bg_nbd_customers: u64,
    gamma_gamma_customers: u64,
}

/// One fit: its parameters' and log-likelihood's bits, iterations and convergence.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShippedFit<P> {
    params: P,
    log_likelihood_bits: u64,
    iterations: u64,
    converged: bool,
}

/// BG/NBD parameters by their bits.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShippedBgNbd {
    r_bits: u64,
    alpha_bits: u64,
    a_bits: u64,
    b_bits: u64,
}

/// Gamma-Gamma parameters by their bits.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShippedGammaGamma {
    p_bits: u64,
    q_bits: u64,
    v_bits: u64,
}

impl<P> ShippedFit<P> {
    fn of<Q>(fit: &Fit<Q>, params: impl FnOnce(&Q) -> P) -> ShippedFit<P> {
        ShippedFit {
            params: params(&fit.params),
            log_likelihood_bits: fit.log_likelihood.to_bits(),
            iterations: fit.iterations,
            converged: fit.converged,
        }
    }

    fn fit<Q>(&self, params: impl FnOnce(&P) -> Q) -> Fit<Q> {
        Fit {
            params: params(&self.params),
            log_likelihood: f64::from_bits(self.log_likelihood_bits),
            iterations: self.iterations,
            converged: self.converged,
        }
    }
}

impl ShippedFits {
    fn of(fits: &ClvFits) -> ShippedFits {
        ShippedFits {
            bg_nbd: fits.bg_nbd.as_ref().map(|fit| {
                ShippedFit::of(fit, |p: &BgNbd| ShippedBgNbd {
                    r_bits: p.r.to_bits(),
                    alpha_bits: p.alpha.to_bits(),
                    a_bits: p.a.to_bits(),
                    b_bits: p.b.to_bits(),
                })
            }),
            gamma_gamma: fits.gamma_gamma.as_ref().map(|fit| {
                ShippedFit::of(fit, |p: &GammaGamma| ShippedGammaGamma {
                    p_bits: p.p.to_bits(),
                    q_bits: p.q.to_bits(),
                    v_bits: p.v.to_bits(),
                })
            }),
            bg_nbd_customers: fits.bg_nbd_customers,
            gamma_gamma_customers: fits.gamma_gamma_customers,
        }
    }

    fn to_fits(&self) -> ClvFits {
        ClvFits {
            bg_nbd: self.bg_nbd.as_ref().map(|fit| {
                fit.fit(|p| BgNbd {
                    r: f64::from_bits(p.r_bits),
                    alpha: f64::from_bits(p.alpha_bits),
                    a: f64::from_bits(p.a_bits),
                    b: f64::from_bits(p.b_bits),
                })
            }),
            gamma_gamma: self.gamma_gamma.as_ref().map(|fit| {
                fit.fit(|p| GammaGamma {
                    p: f64::from_bits(p.p_bits),
                    q: f64::from_bits(p.q_bits),
                    v: f64::from_bits(p.v_bits),
                })
            }),
            bg_nbd_customers: self.bg_nbd_customers,
            gamma_gamma_customers: self.gamma_gamma_customers,
        }
    }
}

/// A frame on its way to a destination: a bucket's task (0 and up), an aggregated table's task
/// ([`merged_destination`]) or the driver ([`TO_DRIVER`]).
#[derive(Debug)]
pub struct Shipment {
    /// Where it goes.
    pub dest: i32,
    /// What it is: `<table>/<fact>` for a per-entity table's facts, the name of a fact or
    /// part (names are unique in a run) or `global_events` for an aggregated table, `rfm_groups` or `unopened_tickets_count` for
    /// the driver.
    pub name: String,
    /// The rows.
    pub frame: DataFrame,
}

impl Shipment {
    /// The frame as bytes (Parquet, LZ4), what Spark moves.
    pub fn encode(mut self) -> Result<(i32, String, Vec<u8>), DistributedError> {
        let bytes = encode_frame(&mut self.frame).map_err(|source| DistributedError::Encode {
            name: self.name.clone(),
            dest: self.dest,
            source,
        })?;
        Ok((self.dest, self.name, bytes))
    }
}

fn encode_frame(frame: &mut DataFrame) -> PolarsResult<Vec<u8>> {
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes).with_compression(ParquetCompression::Lz4Raw).finish(frame)?;
    Ok(bytes)
}

/// The shipments of a frame with columns `name` (text) and `payload` (the bytes
/// [`Shipment::encode`] made), as Spark hands a destination's shipments to its task.
pub fn decode_shipments(shipments: &DataFrame) -> Result<Vec<(String, DataFrame)>, DistributedError> {
    let read_error = |source| DistributedError::Decode { name: "the shipments".to_owned(), source };
    let names = shipments.column("name").and_then(Column::str).map_err(read_error)?;
    let payloads = shipments.column("payload").and_then(Column::binary).map_err(read_error)?;
    names
        .iter()
        .zip(payloads.iter())
        .map(|(name, payload)| match (name, payload) {
            (Some(name), Some(payload)) => Ok((name.to_owned(), decode_frame(name, payload)?)),
            _ => Err(read_error(polars_err!(ComputeError: "a shipment without its name or payload"))),
        })
        .collect()
}

/// A shipped frame, from the bytes [`Shipment::encode`] made.
pub fn decode_frame(name: &str, bytes: &[u8]) -> Result<DataFrame, DistributedError> {
    ParquetReader::new(Cursor::new(bytes))
        .finish()
        .map_err(|source| DistributedError::Decode { name: name.to_owned(), source })
}

/// The destination of an aggregated table's task: -2 for the first table of
/// [`crmkpi_compute::TABLES`], -3 for the second, and so on.
pub fn merged_destination(table: &TableSpec) -> i32 {
    // Every TableSpec comes from TABLES (`select_tables`); one that did not would get a
    // destination past them, which no second-stage task accepts.
    let index = TABLES.iter().position(|known| known.name == table.name).unwrap_or(TABLES.len());
    -2 - index as i32
}

/// The first stage's task of bucket `bucket`: its facts, from its events (the lake's compute
/// columns, as Spark read them), shipped on to where they are needed. With
/// [`GLOBAL_BUCKET`], the events of no entity, shipped to the aggregated tables' tasks.
pub fn bucket_task(spec: &TaskSpec, bucket: i32, events: DataFrame) -> Result<Vec<Shipment>, DistributedError> {
    let tables = spec.tables()?;
    let context = spec.context();
    let Ok(number) = u32::try_from(bucket) else {
        let events = context.received_bucket_events(0, events)?;
        return Ok(merged_tables(&tables)
            .map(|table| Shipment {
                dest: merged_destination(table),
                name: GLOBAL_EVENTS.to_owned(),
                frame: events.clone(),
            })
            .collect());
    };
    let events = context.received_bucket_events(number, events)?;
    let facts = bucket_facts(&Bucket::new(&context, number, events), &tables)?;
    let mut shipments = Vec::new();
    for (name, layout, owner, frame) in facts.into_frames() {
        if frame.height() == 0 {
            continue;
        }
        if let Layout::Part(_) = layout {
            // A table's parts go to its task; the parts every run computes (monthly order
            // sums) to every aggregated table's.
            let reads = |table: &&TableSpec| !matches!(owner, Owner::Table(owner) if owner != table.name);
            shipments.extend(merged_tables(&tables).filter(reads).map(|table| Shipment {
                dest: merged_destination(table),
                name: name.to_owned(),
                frame: frame.clone(),
            }));
            continue;
        }
        for table in tables.iter().filter(|table| table.facts.contains(&name)) {
            match table.placement {
                Placement::PerEntity(column) => {
                    let routed = route(&frame, column, spec.buckets, number)
                        .map_err(|source| DistributedError::Ship { what: "per-entity facts", dest: bucket, source })?;
                    for (dest, rows) in routed {
                        shipments.push(Shipment { dest, name: format!("{}/{name}", table.name), frame: rows });
                    }
                }
                Placement::Merged => shipments.push(Shipment {
                    dest: merged_destination(table),
                    name: name.to_owned(),
                    frame: frame.clone(),
                }),
                Placement::Fits => {}
            }
        }
        // Facts are computed only for tables that read them: customers' for the tables of the
        // fits, unopened tickets' for those that count them.
        if name == CUSTOMERS {
            let groups = rfm_rows(&frame).and_then(|rows| groups_frame(&RfmGroup::of_customers(&rows)));
            let groups =
                groups.map_err(|source| DistributedError::Ship { what: "RFM groups", dest: bucket, source })?;
            shipments.push(Shipment { dest: TO_DRIVER, name: RFM_GROUPS.to_owned(), frame: groups });
        }
        if name == UNOPENED_TICKETS {
            let count = df!("tickets" => [frame.height() as u64]).map_err(|source| DistributedError::Ship {
                what: "unopened tickets",
                dest: bucket,
                source,
            })?;
            shipments.push(Shipment { dest: TO_DRIVER, name: UNOPENED_TICKETS_COUNT.to_owned(), frame: count });
        }
    }
    Ok(shipments)
}

fn merged_tables(tables: &[TableSpec]) -> impl Iterator<Item = &TableSpec> {
    tables.iter().filter(|table| table.placement == Placement::Merged)
}

/// The rows of `frame` by the bucket of their value of `column` (rows without one stay in
/// bucket `own`).
fn route(frame: &DataFrame, column: &str, buckets: u32, own: u32) -> PolarsResult<Vec<(i32, DataFrame)>> {
    let keys = frame.column(column)?.str()?;
    let mut rows_of: BTreeMap<u32, Vec<IdxSize>> = BTreeMap::new();
    for (row, key) in keys.iter().enumerate() {
        let bucket = key.map_or(own, |key| bucket_of(key, buckets));
        rows_of.entry(bucket).or_default().push(row as IdxSize);
    }
    rows_of
        .into_iter()
        .map(|(bucket, rows)| {
            let rows = IdxCa::from_vec("rows".into(), rows);
            let bucket = i32::try_from(bucket)
                .map_err(|_| polars_err!(ComputeError: "bucket {bucket} beyond the destinations Spark can address"))?;
            Ok((bucket, frame.take(&rows)?))
        })
        .collect()
}

/// RFM groups as a frame (`frequency`, `recency`, `t`, `monetary_value`, `customers`).
fn groups_frame(groups: &[RfmGroup]) -> PolarsResult<DataFrame> {
    let column = |value: fn(&RfmGroup) -> f64| groups.iter().map(value).collect::<Vec<f64>>();
    df!(
        "frequency" => column(|group| group.rfm.frequency),
        "recency" => column(|group| group.rfm.recency),
        "t" => column(|group| group.rfm.t),
        "monetary_value" => column(|group| group.rfm.monetary_value),
        "customers" => groups.iter().map(|group| group.customers).collect::<Vec<u64>>(),
    )
}

/// The RFM groups of a frame [`groups_frame`] made (which has no nulls).
fn groups_of(frame: &DataFrame) -> PolarsResult<Vec<RfmGroup>> {
    let no_null = |name: &str| polars_err!(ComputeError: "a null `{name}` in shipped RFM groups");
    let number = |name: &str| -> PolarsResult<Vec<f64>> {
        frame.column(name)?.f64()?.iter().map(|value| value.ok_or_else(|| no_null(name))).collect()
    };
    let (frequency, recency, t, monetary) =
        (number("frequency")?, number("recency")?, number("t")?, number("monetary_value")?);
    let customers: Vec<u64> = frame
        .column("customers")?
        .u64()?
        .iter()
        .map(|value| value.ok_or_else(|| no_null("customers")))
        .collect::<PolarsResult<_>>()?;
    Ok((0..frame.height())
        .map(|row| RfmGroup {
            rfm: Rfm { frequency: frequency[row], recency: recency[row], t: t[row], monetary_value: monetary[row] },
            customers: customers[row],
        })
        .collect())
}

/// The second stage's task of destination `dest`, from the shipments Spark grouped there: a
/// bucket's per-entity table parts ([`table_parts_task`]) or an aggregated table
/// ([`merged_table_task`]).
pub fn stage_two_task(
    spec: &TaskSpec,
    dest: i32,
    shipments: Vec<(String, DataFrame)>,
    staging: &Path,
) -> Result<Vec<(String, Vec<u8>)>, DistributedError> {
    match u32::try_from(dest) {
        Ok(bucket) => table_parts_task(spec, bucket, shipments, staging),
        Err(_) => merged_table_task(spec, dest, shipments),
    }
}

/// Bucket `bucket`'s rows of each per-entity table it received facts for, written as part
/// files into the staging directory `staging`; results `table-part/<table>`, the part's
/// description as JSON.
fn table_parts_task(
    spec: &TaskSpec,
    bucket: u32,
    shipments: Vec<(String, DataFrame)>,
    staging: &Path,
) -> Result<Vec<(String, Vec<u8>)>, DistributedError> {
    let (context, tables) = (spec.context(), spec.tables()?);
    let dest = bucket as i32;
    let mut by_table: BTreeMap<String, Vec<(String, DataFrame)>> = BTreeMap::new();
    for (name, frame) in shipments {
        let Some((table, fact)) = name.split_once('/') else {
            return Err(DistributedError::Unexpected { name, dest });
        };
        by_table.entry(table.to_owned()).or_default().push((fact.to_owned(), frame));
    }
    let mut results = Vec::new();
    for (name, frames) in by_table {
        let table = tables
            .iter()
            .find(|table| table.name == name && matches!(table.placement, Placement::PerEntity(_)))
            .ok_or_else(|| DistributedError::Unexpected { name: name.clone(), dest })?;
        let facts = received_facts(&context, table, bucket, frames, empty_events())?;
        let computed = compute_table(&Run::with_fits(&context, &facts, spec.fit_source(table)?), table)?;
        let output = OutputTable { name: table.name.to_owned(), frame: computed.frame };
        let part = crate::write_table_part(staging, &output, bucket)?;
        let json = serde_json::to_vec(&part)
            .map_err(|source| DistributedError::Part { table: table.name.to_owned(), source })?;
        results.push((format!("{TABLE_PART_RESULT}{}", table.name), json));
    }
    Ok(results)
}

/// The aggregated table of destination `dest`, from the facts and parts every bucket shipped
/// it and the events of no entity; result `table/<table>`, the table as bytes.
fn merged_table_task(
    spec: &TaskSpec,
    dest: i32,
    shipments: Vec<(String, DataFrame)>,
) -> Result<Vec<(String, Vec<u8>)>, DistributedError> {
    let (context, tables) = (spec.context(), spec.tables()?);
    let table = tables
        .iter()
        .find(|table| table.placement == Placement::Merged && merged_destination(table) == dest)
        .ok_or_else(|| DistributedError::Unexpected { name: format!("{} shipments", shipments.len()), dest })?;
    let (global_events, frames): (Vec<_>, Vec<_>) = shipments.into_iter().partition(|(name, _)| name == GLOBAL_EVENTS);
    let global_events = global_events.into_iter().try_fold(empty_events(), |mut all, (_, frame)| {
        all.vstack_mut_owned(frame)?;
        Ok(all)
    });
    let global_events =
        global_events.map_err(|source| DistributedError::Ship { what: "events of no entity", dest, source })?;
    let facts = received_facts(&context, table, 0, frames, global_events)?;
    let computed = compute_table(&Run::with_fits(&context, &facts, FitSource::Unavailable), table)?;
    let mut frame = computed.frame;
    let bytes = encode_frame(&mut frame).map_err(|source| DistributedError::Encode {
        name: table.name.to_owned(),
        dest: TO_DRIVER,
        source,
    })?;
    Ok(vec![(format!("{TABLE_RESULT}{}", table.name), bytes)])
}

/// Events of no type, with the compute columns.
fn empty_events() -> DataFrame {
    DataFrame::empty_with_schema(&bucket_schema())
}

/// The facts of `table` from frames received for it: the per-entity facts concatenated and
/// sorted, the parts summed. The facts of an empty bucket come first, so that every fact and
/// part has its columns even when nothing was received for it.
fn received_facts(
    context: &Context,
    table: &TableSpec,
    bucket: u32,
    frames: Vec<(String, DataFrame)>,
    global_events: DataFrame,
) -> Result<Facts, DistributedError> {
    let no_events = context.received_bucket_events(bucket, empty_events())?;
    let mut builder = FactsBuilder::default();
    builder.add(bucket_facts(&Bucket::new(context, bucket, no_events), std::slice::from_ref(table))?);
    for (name, frame) in frames {
        builder.add_received(bucket, &name, frame)?;
    }
    Ok(builder.finish(global_events)?)
}

/// A compute run on the driver of a Spark job.
pub struct DistributedRun {
    prepared: PreparedRun,
    rfm_groups: Vec<RfmGroup>,
    unopened_tickets: u64,
    fits: Option<ClvFits>,
    staging: Option<Staging>,
    parts: BTreeMap<String, Vec<TablePart>>,
    merged: BTreeMap<String, DataFrame>,
    /// When the first stage started (the run was prepared), and when the second did.
    facts_started: Instant,
    tables_started: Instant,
}

impl DistributedRun {
    /// Opens the lake and resolves the run as `crmkpi compute` does.
    pub fn prepare(request: ComputeRequest<'_>, progress: &dyn Progress) -> Result<DistributedRun, DistributedError> {
        Ok(DistributedRun {
            prepared: prepare(request, progress)?,
            rfm_groups: Vec::new(),
            unopened_tickets: 0,
            fits: None,
            staging: None,
            parts: BTreeMap::new(),
            merged: BTreeMap::new(),
            facts_started: Instant::now(),
            tables_started: Instant::now(),
        })
    }

    /// The same run with at least `buckets` buckets (for as many tasks as the cluster runs at
    /// once; the tables are the same for every number).
    pub fn with_min_buckets(mut self, buckets: u32) -> DistributedRun {
        if buckets > self.prepared.context.buckets {
            self.prepared.context = self.prepared.context.with_buckets(buckets);
        }
        self
    }

    /// The committed event files of the snapshot the run reads.
    pub fn event_files(&self) -> &[PathBuf] {
        self.prepared.context.lake_files()
    }

    /// The number of buckets.
    pub fn buckets(&self) -> u32 {
        self.prepared.context.buckets
    }

    /// The number of selected aggregated tables, each computed by a task of its own.
    pub fn merged_tables(&self) -> usize {
        merged_tables(&self.prepared.tables).count()
    }

    /// What the tasks need (with the fits, once [`DistributedRun::fit`] made them).
    pub fn task_spec(&self) -> TaskSpec {
        let context = &self.prepared.context;
        TaskSpec {
            crmkpi_version: env!("CARGO_PKG_VERSION").to_owned(),
            config: context.config.clone(),
            as_of: context.as_of,
            earliest_event: context.earliest_event,
            events: context.events,
            buckets: context.buckets,
            tables: self.prepared.tables.iter().map(|table| table.name.to_owned()).collect(),
            fits: self.fits.as_ref().map(ShippedFits::of),
        }
    }

    /// Adds a shipment of the first stage addressed to the driver.
    pub fn add_driver_shipment(&mut self, name: &str, frame: &DataFrame) -> Result<(), DistributedError> {
        let read_error = |source| DistributedError::Decode { name: name.to_owned(), source };
        match name {
            RFM_GROUPS => self.rfm_groups.extend(groups_of(frame).map_err(read_error)?),
            UNOPENED_TICKETS_COUNT => {
                let counts = frame.column("tickets").and_then(Column::u64).map_err(read_error)?;
                if counts.null_count() > 0 {
                    return Err(read_error(polars_err!(ComputeError: "a null count of tickets")));
                }
                self.unopened_tickets += counts.iter().flatten().sum::<u64>();
            }
            _ => return Err(DistributedError::Unexpected { name: name.to_owned(), dest: TO_DRIVER }),
        }
        Ok(())
    }

    /// Fits the CLV models to the customers' RFM groups of every bucket, merged, when a
    /// selected table reads them. Records the first stage's seconds (`facts`) and the fits'
    /// (`data_checks`); [`DistributedRun::finish`] records the second stage's (`tables`) and
    /// the driver's writing (`export`).
    pub fn fit(&mut self) {
        let groups = RfmGroup::merge(std::mem::take(&mut self.rfm_groups));
        let stage_seconds = &mut self.prepared.stage_seconds;
        stage_seconds.insert("facts".to_owned(), self.facts_started.elapsed().as_secs_f64());
        if reads_fits(&self.prepared.tables) {
            let clock = Instant::now();
            self.fits = Some(ClvFits::fit(&groups));
            stage_seconds.insert("data_checks".to_owned(), clock.elapsed().as_secs_f64());
        }
    }

    /// Creates the staging directory of `out` that the tasks of the second stage write the
    /// per-entity tables' parts into (`out` must be on storage the executors share).
    pub fn begin_output(&mut self, out: &Path) -> Result<PathBuf, DistributedError> {
        let staging = Staging::create(out, &self.prepared.run_id)?;
        for table in &self.prepared.tables {
            if let Placement::PerEntity(_) = table.placement {
                staging.create_part_dirs(table.name)?;
            }
        }
        let dir = staging.dir().to_owned();
        self.staging = Some(staging);
        self.tables_started = Instant::now();
        Ok(dir)
    }

    /// Adds a result of the second stage.
    pub fn add_result(&mut self, name: &str, bytes: &[u8]) -> Result<(), DistributedError> {
        if let Some(table) = name.strip_prefix(TABLE_PART_RESULT) {
            let part: TablePart = serde_json::from_slice(bytes)
                .map_err(|source| DistributedError::Part { table: table.to_owned(), source })?;
            self.parts.entry(table.to_owned()).or_default().push(part);
        } else if let Some(table) = name.strip_prefix(TABLE_RESULT) {
            self.merged.insert(table.to_owned(), decode_frame(name, bytes)?);
        } else {
            return Err(DistributedError::Unexpected { name: name.to_owned(), dest: TO_DRIVER });
        }
        Ok(())
    }

    /// Computes `clv_model` from the fits, writes the aggregated tables and `manifest.json`
    /// (and with `report`, `report.html`) beside the parts, and puts the staging directory in
    /// the place of `out`. Returns the run (with the tables computed or received on the
    /// driver: the aggregated ones) and the manifest.
    pub fn finish(self, report: bool) -> Result<(ComputedRun, Manifest), DistributedError> {
        let DistributedRun {
            mut prepared, unopened_tickets, fits, staging, mut parts, mut merged, tables_started, ..
        } = self;
        // The second stage's tasks, as the driver waited for them.
        prepared.stage_seconds.insert("tables".to_owned(), tables_started.elapsed().as_secs_f64());
        let staging = staging.ok_or(DistributedError::OutputNotBegun)?;
        let tables = prepared.tables.clone();
        let context = &prepared.context;
        let mut warnings = Vec::new();
        if checks_unopened_tickets(&tables) {
            warnings.extend(unopened_tickets_warning(unopened_tickets));
        }
        if let Some(fits) = &fits {
            warnings.extend(crmkpi_compute::clv::fits::warnings(fits));
        }
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
        let clock = Instant::now();
        let mut infos = Vec::with_capacity(tables.len());
        let mut outputs = Vec::new();
        for table in &tables {
            let fits_of_table = fit_source(table, fits.clone())?;
            // A table's plan over no entities: the columns of a per-entity table, `clv_model`
            // (the fits only), or an aggregated table that no bucket shipped anything to (so
            // that no task ran for it).
            let over_nothing = || -> Result<DataFrame, DistributedError> {
                let facts = received_facts(context, table, 0, Vec::new(), empty_events())?;
                Ok(compute_table(&Run::with_fits(context, &facts, fits_of_table.clone()), table)?.frame)
            };
            if let Placement::PerEntity(_) = table.placement {
                let mut table_parts = parts.remove(table.name).unwrap_or_default();
                let empty = over_nothing()?;
                // A table without rows gets one empty part with its columns.
                if table_parts.is_empty() {
                    let output = OutputTable { name: table.name.to_owned(), frame: empty.clone() };
                    table_parts.push(crate::write_table_part(staging.dir(), &output, 0)?);
                }
                let info = table_of_parts(table.name, empty.schema(), &table_parts);
                // The customers' rows against the customers the fits counted (a part lost
                // between the tasks and the driver).
                if let FitSource::Given(fits) = &fits_of_table
                    && info.rows != fits.bg_nbd_customers
                {
                    return Err(DistributedError::PartRows {
                        table: table.name,
                        rows: info.rows,
                        expected: fits.bg_nbd_customers,
                    });
                }
                staging.check_parts(&info)?;
                infos.push(info);
                continue;
            }
            let frame = match (table.placement, merged.remove(table.name)) {
                (Placement::Merged, Some(frame)) => frame,
                _ => over_nothing()?,
            };
            let output = OutputTable { name: table.name.to_owned(), frame };
            infos.push(crate::write_table(staging.dir(), &output)?);
            outputs.push(output);
        }
        prepared.stage_seconds.insert("export".to_owned(), clock.elapsed().as_secs_f64());
        let computed = prepared.computed(outputs, warnings);
        let manifest = staging.commit(computed.manifest_input.clone(), infos, computed.report_choice(report))?;
        Ok((computed, manifest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_travel_bit_for_bit() {
        let fits = ClvFits {
            bg_nbd: Some(Fit {
                params: BgNbd { r: 0.1 + 0.2, alpha: 1.0 / 3.0, a: 7e-300, b: 1e300 },
                log_likelihood: -12_345.678_901_234_5,
                iterations: 41,
                converged: true,
            }),
            gamma_gamma: None,
            bg_nbd_customers: 12,
            gamma_gamma_customers: 1,
        };
        let spec_fits = ShippedFits::of(&fits);
        let json = serde_json::to_string(&spec_fits).expect("serialised");
        let back: ShippedFits = serde_json::from_str(&json).expect("read back");
        assert_eq!(back.to_fits(), fits);
    }

    #[test]
    fn rows_are_routed_by_the_bucket_of_their_key_and_keyless_rows_stay() {
        let frame = df!(
            "customer_id" => [Some("c-1"), None, Some("c-2"), Some("c-1"), Some("c-3")],
            "n" => [0i64, 1, 2, 3, 4],
        )
        .expect("a frame");
        let routed = route(&frame, "customer_id", 4, 3).expect("routed");
        let mut seen = 0;
        for (dest, rows) in &routed {
            for row in 0..rows.height() {
                let key = rows.column("customer_id").expect("column").str().expect("text").get(row);
                let expected = key.map_or(3, |key| bucket_of(key, 4));
                assert_eq!(*dest, expected as i32, "{key:?}");
                seen += 1;
            }
        }
        assert_eq!(seen, frame.height());
    }

    #[test]
    fn rfm_groups_survive_their_frame() {
        let groups = RfmGroup::of_customers(&[
            Rfm { frequency: 2.0, recency: 1.5, t: 9.0, monetary_value: 12.25 },
            Rfm { frequency: 0.0, recency: 0.0, t: 3.0, monetary_value: 0.0 },
            Rfm { frequency: 2.0, recency: 1.5, t: 9.0, monetary_value: 12.25 },
        ]);
        let frame = groups_frame(&groups).expect("a frame");
        let mut bytes = frame.clone();
        let decoded = decode_frame("rfm", &encode_frame(&mut bytes).expect("encoded")).expect("decoded");
        assert_eq!(groups_of(&decoded).expect("groups"), groups);
    }
}

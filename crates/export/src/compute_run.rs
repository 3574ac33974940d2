//! One compute run, as `crmkpi compute` and the Python package's `crmkpi.compute` do it: open
//! the lake's committed snapshot, scan its events, check the data (fitting the CLV models when
//! they are needed), compute every selected table with its timing, and gather what the manifest
//! says about the run. [`compute`] does the work and returns a [`ComputedRun`]; its
//! [`ComputedRun::write`] writes the tables, manifest and report with [`crate::write_outputs`].
//!
//! The run keeps its lake snapshot (a shared lock on the snapshot's `_readers` file) until the
//! [`ComputedRun`] is dropped, so an ingest or compaction that commits meanwhile leaves the
//! files it read alone until its outputs are written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crmkpi_compute::facts::Facts;
use crmkpi_compute::{ComputeError, Context, LakeStats, Run, TableSpec, parse_as_of, select_tables};
use crmkpi_ingest::{RunRecord, Snapshot};
use crmkpi_schema::Config;

use crate::bucket_spill::{BucketSpill, SplitStore};
use crate::manifest::LakeInfo;
use crate::{ExportError, LatestIngest, Manifest, ManifestInput, OutputTable, ReportChoice};

/// What a front end shows of a compute run while it works (the binary's bar or log lines).
/// Every method does nothing unless implemented.
pub trait Progress {
    /// The lake holds ingested events and `tables` tables are about to be computed.
    fn run_started(&self, _tables: usize) {}
    /// A step before the tables begins (`scanning the lake`, `entity facts, bucket 3/8`,
    /// `checking the data`).
    fn step(&self, _message: &str) {}
    /// Table `name` is being computed.
    fn table_started(&self, _name: &str) {}
    /// The table last started is computed.
    fn table_finished(&self) {}
}

/// Progress that is not shown.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// What to compute: the lake, the resolved configuration, the tables and `as_of`.
#[derive(Debug, Clone, Copy)]
pub struct ComputeRequest<'a> {
    /// The lake directory.
    pub lake: &'a Path,
    /// The resolved configuration.
    pub config: &'a Config,
    /// Table names to compute; empty: every table, in output order.
    pub tables: &'a [String],
    /// `as_of` as the user wrote it (RFC 3339, local timestamp or date); none: the latest
    /// event in the lake.
    pub as_of: Option<&'a str>,
    /// The memory the entity buckets are planned for (`4GiB`), over the configuration's
    /// `[compute] memory_limit`.
    pub memory_limit: Option<&'a str>,
    /// The number of entity buckets, over the one the memory limit gives (the tables are the
    /// same for every number).
    pub buckets: Option<u32>,
}

/// A finished compute run: its tables in output order and what the manifest records about it.
#[derive(Debug)]
pub struct ComputedRun {
    /// The computed tables, in output order.
    pub tables: Vec<OutputTable>,
    /// The run's facts for `manifest.json`: id, `as_of`, configuration, lake counts, warnings
    /// and seconds per stage.
    pub manifest_input: ManifestInput,
    /// The lake's latest ingest run, shown by the report.
    pub latest_ingest: Option<LatestIngest>,
    /// The snapshot the tables were computed from, held until the run is dropped.
    _snapshot: Snapshot,
}

impl ComputedRun {
    /// Writes the tables, `manifest.json` and (with `report`) `report.html` into `out`,
    /// replacing its previous contents atomically (see [`crate::write_outputs`]).
    pub fn write(&self, out: &Path, report: bool) -> Result<Manifest, ExportError> {
        crate::write_outputs(out, &self.tables, self.manifest_input.clone(), self.report_choice(report))
    }

    /// Whether the outputs get `report.html`, showing the lake's latest ingest.
    pub fn report_choice(&self, report: bool) -> ReportChoice<'_> {
        if report { ReportChoice::Render(self.latest_ingest.as_ref()) } else { ReportChoice::Skip }
    }
}

/// From this many buckets on, a run splits the lake by bucket in one pass ([`BucketSpill`])
/// instead of reading and hashing the lake once per bucket.
const SPILL_FROM_BUCKETS: u32 = 2;

/// Computes the requested tables from the lake's committed snapshot.
pub fn compute(request: ComputeRequest<'_>, progress: &dyn Progress) -> Result<ComputedRun, ComputeError> {
    let mut prepared = prepare(request, progress)?;
    let facts = merged_facts(&prepared.context, &prepared.tables, progress, &mut prepared.stage_seconds)?;
    prepared.finish(&facts, progress)
}

/// The merged facts of every bucket of a run. With more than one bucket the lake is first split
/// by bucket ([`BucketSpill`]: held in memory when the buckets fit in the memory limit, else
/// written to per-bucket files under the system's temporary directory), and each bucket then
/// reads only its own events. Records the `split` and `facts` seconds.
pub fn merged_facts(
    context: &Context,
    tables: &[TableSpec],
    progress: &dyn Progress,
    stage_seconds: &mut BTreeMap<String, f64>,
) -> Result<Facts, ComputeError> {
    let mut clock = Instant::now();
    let on_bucket = |done, buckets| progress.step(&format!("entity facts, bucket {done}/{buckets}"));
    let facts = if context.buckets >= SPILL_FROM_BUCKETS {
        progress.step(&format!("splitting the lake into {} buckets", context.buckets));
        let store = SplitStore::for_run(context);
        let spill = BucketSpill::write(context, store, &std::env::temp_dir())?;
        let seconds = clock.elapsed().as_secs_f64();
        stage_seconds.insert("split".to_owned(), seconds);
        tracing::info!(buckets = context.buckets, ?store, seconds, "lake split into buckets");
        clock = Instant::now();
        crmkpi_compute::compute_facts_from(context, tables, &|bucket| spill.events(bucket), &on_bucket)?
    } else {
        progress.step(&format!("entity facts, {} buckets", context.buckets));
        crmkpi_compute::compute_facts(context, tables, &on_bucket)?
    };
    tracing::info!(buckets = context.buckets, seconds = clock.elapsed().as_secs_f64(), "entity facts");
    stage_seconds.insert("facts".to_owned(), clock.elapsed().as_secs_f64());
    Ok(facts)
}

/// A compute run with its lake open and its context resolved (`as_of`, calendar, buckets),
/// waiting for the merged facts of its buckets: computed here by [`compute`], or by Spark tasks
/// for [`crate::distributed`].
pub struct PreparedRun {
    /// The selected tables, in output order.
    pub tables: Vec<TableSpec>,
    /// The run's context.
    pub context: Context,
    /// The committed snapshot being read and its run records.
    pub lake: OpenedSnapshot,
    /// Seconds per stage so far (`scan`; then `split` and `facts`).
    pub stage_seconds: BTreeMap<String, f64>,
    /// The run's id (its start and the process id), as `manifest.json` gives it.
    pub run_id: String,
    lake_dir: PathBuf,
    lake_stats: LakeStats,
    started_at: chrono::DateTime<chrono::Utc>,
}

/// The snapshot a run reads (held until the run is dropped) and its ingest run records.
pub struct OpenedSnapshot {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Its ingest run records, oldest first.
    pub runs: Vec<RunRecord>,
}

/// Opens the lake, resolves the configuration, `as_of` and the buckets, and counts the events.
pub fn prepare(request: ComputeRequest<'_>, progress: &dyn Progress) -> Result<PreparedRun, ComputeError> {
    let ComputeRequest { lake: lake_dir, config, tables, as_of, memory_limit, buckets } = request;
    let started_at = chrono::Utc::now();
    let mut stage_seconds = BTreeMap::new();
    let tables = select_tables(tables)?;
    let mut config = config.clone();
    if let Some(limit) = memory_limit {
        if crmkpi_schema::parse_bytes(limit).is_none_or(|bytes| bytes < 64 << 20) {
            return Err(ComputeError::MemoryLimit { text: limit.to_owned() });
        }
        config.compute.memory_limit = limit.to_owned();
    }
    let as_of = as_of.map(|text| parse_as_of(text, config.timezone)).transpose()?;
    let lake = crmkpi_compute::open_lake(lake_dir)?;
    progress.run_started(tables.len());
    progress.step("scanning the lake");
    let clock = Instant::now();
    let context = Context::new(lake.files, config, as_of)?;
    let context = match buckets {
        Some(buckets) => context.with_buckets(buckets),
        None => context,
    };
    let lake_stats = context.lake_stats().clone();
    stage_seconds.insert("scan".to_owned(), clock.elapsed().as_secs_f64());
    let run_id = format!("{}-{:08x}", started_at.format("%Y%m%dT%H%M%S%.3fZ"), std::process::id());
    Ok(PreparedRun {
        tables,
        context,
        lake: OpenedSnapshot { snapshot: lake.snapshot, runs: lake.runs },
        stage_seconds,
        run_id,
        lake_dir: lake_dir.to_owned(),
        lake_stats,
        started_at,
    })
}

impl PreparedRun {
    /// Checks the data (fitting the CLV models when they are needed), computes every selected
    /// table over the merged facts, and gathers what the manifest says about the run.
    pub fn finish(mut self, facts: &Facts, progress: &dyn Progress) -> Result<ComputedRun, ComputeError> {
        let run = Run::new(&self.context, facts);
        // The data checks fit the CLV models when customers or clv_model are selected; the
        // tables then reuse the fits.
        progress.step("checking the data");
        let clock = Instant::now();
        let warnings = crmkpi_compute::data_warnings(&run, &self.tables)?;
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
        self.stage_seconds.insert("data_checks".to_owned(), clock.elapsed().as_secs_f64());
        let outputs = compute_each(&run, &self.tables, &mut self.stage_seconds, progress)?;
        Ok(self.computed(outputs, warnings))
    }

    /// The finished run: its tables, and what the manifest says about it.
    pub fn computed(self, tables: Vec<OutputTable>, warnings: Vec<String>) -> ComputedRun {
        let PreparedRun { context, lake, stage_seconds, run_id, lake_dir, lake_stats, started_at, .. } = self;
        let config = &context.config;
        let manifest_input = ManifestInput {
            crmkpi_version: env!("CARGO_PKG_VERSION").to_owned(),
            run_id,
            as_of: crmkpi_compute::context::format_instant(context.as_of),
            started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            config: serde_json::to_value(config).unwrap_or_default(),
            config_hash: config.hash(),
            lake: LakeInfo {
                path: lake_dir.display().to_string(),
                events: lake_stats.events,
                per_event_type: lake_stats.per_event_type,
            },
            warnings,
            stage_seconds,
        };
        ComputedRun {
            tables,
            manifest_input,
            latest_ingest: lake.runs.last().map(LatestIngest::from_run),
            _snapshot: lake.snapshot,
        }
    }
}

/// Computes the tables one at a time, recording each one's seconds as `table:<name>`.
fn compute_each(
    run: &Run,
    tables: &[TableSpec],
    stage_seconds: &mut BTreeMap<String, f64>,
    progress: &dyn Progress,
) -> Result<Vec<OutputTable>, ComputeError> {
    let mut outputs = Vec::with_capacity(tables.len());
    for table in tables {
        progress.table_started(table.name);
        let clock = Instant::now();
        let computed = crmkpi_compute::compute_table(run, table)?;
        let seconds = clock.elapsed().as_secs_f64();
        stage_seconds.insert(format!("table:{}", table.name), seconds);
        tracing::info!(table = computed.name, rows = computed.frame.height(), seconds, "computed");
        outputs.push(OutputTable { name: computed.name.to_owned(), frame: computed.frame });
        progress.table_finished();
    }
    Ok(outputs)
}

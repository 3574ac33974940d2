//! Per-entity facts, computed one entity bucket at a time, and the run's merged facts.
//!
//! A [`Bucket`] holds the events of some customers, deals and tickets (all events of each, see
//! [`crate::context`]). From it come the per-entity frames of [`ENTITY_FACTS`] (a customer's
//! RFM summary, a lead's origin, a deal's summary and stage visits, a ticket's times), which
//! need only the entity's own events, and the additive [`Part`]s the metric families and
//! tables declare (counts and exact sums per month or per campaign). [`Facts`] is what a run
//! keeps of all buckets: the per-entity frames concatenated (sorted by their keys, so the
//! order of buckets does not matter) and the parts summed.

pub mod customers;
pub mod deals;
pub mod leads;
pub mod orders;
pub mod tickets;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::context::{Context, is_type};
use crate::error::ComputeError;

/// The events of one entity bucket and the frames computed from them.
pub struct Bucket<'a> {
    /// The run's context.
    pub context: &'a Context,
    /// The bucket's number.
    pub number: u32,
    events: DataFrame,
    cache: Mutex<HashMap<&'static str, LazyFrame>>,
}

impl<'a> Bucket<'a> {
    /// A bucket of the given (collected) events.
    pub fn new(context: &'a Context, number: u32, events: DataFrame) -> Bucket<'a> {
        Bucket { context, number, events, cache: Mutex::default() }
    }

    /// The bucket's events.
    pub fn events(&self) -> LazyFrame {
        self.events.clone().lazy()
    }

    /// The bucket's events of one type.
    pub fn events_of(&self, event_type: EventType) -> LazyFrame {
        self.events().filter(is_type(event_type))
    }

    /// The frame `name` built by `plan`, shared by every plan of the bucket that reads it
    /// (orders with their local days, lead origins, deal timelines are read by several): the
    /// first call builds the plan and marks it cached, so that the bucket's plans, collected
    /// together, compute it once (see [`BucketPlans::collect`]).
    pub fn cached(
        &self,
        name: &'static str,
        plan: impl FnOnce() -> PolarsResult<LazyFrame>,
    ) -> PolarsResult<LazyFrame> {
        let cached = self.lock()?.get(name).cloned();
        if let Some(frame) = cached {
            return Ok(frame);
        }
        // Built without holding the lock: a cached frame's plan may use other cached frames.
        let frame = plan()?.cache();
        Ok(self.lock()?.entry(name).or_insert(frame).clone())
    }

    fn lock(&self) -> PolarsResult<std::sync::MutexGuard<'_, HashMap<&'static str, LazyFrame>>> {
        self.cache.lock().map_err(|_| polars_err!(ComputeError: "a bucket frame's plan panicked"))
    }
}

/// A per-entity fact: one row per entity (or per entity and something), from its own events.
#[derive(Debug, Clone, Copy)]
pub struct EntityFact {
    /// The fact's name, e.g. `deals`.
    pub name: &'static str,
    /// The columns its rows are sorted by once merged (a unique key).
    pub sort: &'static [&'static str],
    /// Builds the fact's rows of one bucket.
    pub plan: fn(&Bucket) -> PolarsResult<LazyFrame>,
}

/// The per-entity facts every run computes.
pub const ENTITY_FACTS: &[EntityFact] = &[
    EntityFact { name: customers::CUSTOMERS, sort: &["customer_id"], plan: customers::rfm },
    EntityFact { name: customers::LATEST_NPS, sort: &["customer_id"], plan: customers::latest_nps },
    EntityFact { name: leads::LEAD_ORIGINS, sort: &["customer_id"], plan: leads::lead_origins },
    EntityFact { name: leads::LEADS, sort: &["customer_id"], plan: leads::lead_facts },
    EntityFact { name: deals::DEALS, sort: &["deal_id"], plan: deals::deal_summaries },
    EntityFact { name: deals::STAGE_VISITS, sort: &["deal_id", "visit"], plan: deals::stage_visits },
    EntityFact { name: tickets::TICKETS, sort: &["ticket_id"], plan: tickets::tickets },
    EntityFact { name: tickets::UNOPENED_TICKETS, sort: &["ticket_id"], plan: tickets::unopened_tickets },
];

/// An additive part of a metric family or a table from one bucket: rows keyed by `keys`
/// (e.g. `month_index`), every other column an `i64` count or exact sum that adds up over
/// buckets.
pub struct Part {
    /// The part's name, unique in the run (e.g. `revenue`).
    pub name: &'static str,
    /// Its key columns.
    pub keys: &'static [&'static str],
    /// Its rows in this bucket.
    pub frame: LazyFrame,
}

/// What a run keeps of all buckets.
pub struct Facts {
    entity: BTreeMap<&'static str, DataFrame>,
    parts: BTreeMap<&'static str, DataFrame>,
    /// The events of no entity (spend and CRM-user activity).
    pub global_events: DataFrame,
}

impl Facts {
    /// The merged frame of a per-entity fact.
    pub fn entity(&self, name: &str) -> PolarsResult<LazyFrame> {
        Ok(self.entity_frame(name)?.clone().lazy())
    }

    /// The merged frame of a per-entity fact, as collected.
    pub fn entity_frame(&self, name: &str) -> PolarsResult<&DataFrame> {
        self.entity.get(name).ok_or_else(|| polars_err!(ComputeError: "no entity fact `{name}` was computed"))
    }

    /// The summed rows of a part, sorted by its keys.
    pub fn part(&self, name: &str) -> PolarsResult<LazyFrame> {
        self.parts
            .get(name)
            .map(|frame| frame.clone().lazy())
            .ok_or_else(|| polars_err!(ComputeError: "no part `{name}` was computed"))
    }

    /// The global events of one type.
    pub fn global_events_of(&self, event_type: EventType) -> LazyFrame {
        self.global_events.clone().lazy().filter(is_type(event_type))
    }
}

/// Who declared a plan of a bucket: a per-entity fact, or a table (or the monthly order sums
/// every run computes) with its parts. An error names it.
#[derive(Debug, Clone, Copy)]
pub enum Owner {
    /// A per-entity fact, or the parts of a fact every run computes.
    Fact(&'static str),
    /// A table's parts.
    Table(&'static str),
}

/// A bucket's plans, to be collected together: the per-entity facts first, then the parts.
pub struct BucketPlans<'b, 'a> {
    bucket: &'b Bucket<'a>,
    /// Each plan's name, how its frame merges, who declared it, and the plan.
    plans: Vec<(&'static str, Layout, Owner, LazyFrame)>,
}

impl<'b, 'a> BucketPlans<'b, 'a> {
    /// The plans of the per-entity facts of a bucket that are `needed` (by name). The frames
    /// that several plans share are cached plans, computed once when the plans are collected
    /// (see [`Bucket::cached`]).
    pub fn entity_facts(bucket: &'b Bucket<'a>, needed: impl Fn(&str) -> bool) -> Result<Self, ComputeError> {
        let mut plans = Vec::new();
        for fact in ENTITY_FACTS.iter().filter(|fact| needed(fact.name)) {
            let plan = (fact.plan)(bucket).map_err(|source| ComputeError::Fact {
                fact: fact.name,
                bucket: bucket.number,
                source,
            })?;
            plans.push((fact.name, Layout::Entity(fact.sort), Owner::Fact(fact.name), plan));
        }
        Ok(BucketPlans { bucket, plans })
    }

    /// Adds the parts that `owner` declared.
    pub fn add_parts(&mut self, owner: Owner, parts: Vec<Part>) {
        self.plans.extend(parts.into_iter().map(|part| (part.name, Layout::Part(part.keys), owner, part.frame)));
    }

    /// Collects every plan (see [`collect_together`]).
    pub fn collect(self) -> Result<BucketFacts, ComputeError> {
        let started = std::time::Instant::now();
        let (described, plans): (Vec<_>, Vec<_>) =
            self.plans.into_iter().map(|(name, layout, owner, plan)| ((name, layout, owner), (owner, plan))).unzip();
        let frames = collect_together(self.bucket.number, plans)?;
        tracing::debug!(bucket = self.bucket.number, seconds = started.elapsed().as_secs_f64(), "bucket facts");
        let frames = described
            .into_iter()
            .zip(frames)
            .map(|((name, layout, owner), frame)| (name, layout, owner, frame))
            .collect();
        Ok(BucketFacts { frames })
    }
}

/// Collects the plans of bucket `bucket`, one frame per plan in their order. polars runs them in
/// parallel: one plan alone leaves a core idle a quarter of the time. When that fails, each plan
/// is collected alone, so that the error names the fact or table whose plan failed.
fn collect_together(bucket: u32, plans: Vec<(Owner, LazyFrame)>) -> Result<Vec<DataFrame>, ComputeError> {
    let logical: Vec<DslPlan> = plans.iter().map(|(_, plan)| plan.clone().logical_plan).collect();
    // The plans' own flags are polars' defaults: crmkpi sets none.
    match LazyFrame::collect_all_with_engine(logical, Engine::InMemory, OptFlags::default()) {
        Ok(frames) if frames.len() == plans.len() => Ok(frames),
        Ok(frames) => Err(ComputeError::BucketFacts {
            bucket,
            source: polars_err!(ComputeError: "{} frames for {} plans", frames.len(), plans.len()),
        }),
        Err(together) => {
            for (owner, plan) in plans {
                plan.collect().map_err(|source| match owner {
                    Owner::Fact(fact) => ComputeError::Fact { fact, bucket, source },
                    Owner::Table(table) => ComputeError::Table { table, source },
                })?;
            }
            Err(ComputeError::BucketFacts { bucket, source: together })
        }
    }
}

/// The facts of one bucket: its per-entity frames and additive parts, collected.
pub struct BucketFacts {
    /// Each per-entity fact's and each part's name, how it merges, who declared it, and rows,
    /// in computing order.
    frames: Vec<(&'static str, Layout, Owner, DataFrame)>,
}

/// How the frames of a fact or part merge over buckets.
#[derive(Debug, Clone, Copy)]
pub enum Layout {
    /// Per-entity rows: concatenated and sorted by these columns.
    Entity(&'static [&'static str]),
    /// Additive rows: summed by these key columns.
    Part(&'static [&'static str]),
}

impl BucketFacts {
    /// Each per-entity fact's and each part's name, how it merges, who declared it, and rows,
    /// in computing order.
    pub fn into_frames(self) -> impl Iterator<Item = (&'static str, Layout, Owner, DataFrame)> {
        self.frames.into_iter()
    }
}

/// Collects the facts and parts of buckets and merges them.
#[derive(Default)]
pub struct FactsBuilder {
    entity: BTreeMap<&'static str, (Vec<DataFrame>, &'static [&'static str])>,
    parts: BTreeMap<&'static str, (Vec<DataFrame>, &'static [&'static str])>,
}

impl FactsBuilder {
    /// Keeps the facts of a bucket.
    pub fn add(&mut self, facts: BucketFacts) {
        for (name, layout, _, frame) in facts.frames {
            let (merged, columns) = match layout {
                Layout::Entity(sort) => (&mut self.entity, sort),
                Layout::Part(keys) => (&mut self.parts, keys),
            };
            merged.entry(name).or_insert_with(|| (Vec::new(), columns)).0.push(frame);
        }
    }

    /// Keeps a frame of fact or part `name` computed elsewhere (a Spark task) for bucket
    /// `bucket`; the fact must be known from a bucket added before (an empty one will do).
    pub fn add_received(&mut self, bucket: u32, name: &str, frame: DataFrame) -> Result<(), ComputeError> {
        if self.entity.contains_key(name) && self.parts.contains_key(name) {
            return Err(ComputeError::AmbiguousFact { name: name.to_owned() });
        }
        let known = self.entity.get_mut(name).or_else(|| self.parts.get_mut(name));
        let Some((frames, _)) = known else {
            return Err(ComputeError::UnknownFact { name: name.to_owned(), bucket });
        };
        if let Some(expected) = frames.first().map(DataFrame::schema)
            && expected != frame.schema()
        {
            return Err(ComputeError::ReceivedSchema {
                name: name.to_owned(),
                bucket,
                expected: format!("{expected:?}"),
                received: format!("{:?}", frame.schema()),
            });
        }
        frames.push(frame);
        Ok(())
    }

    /// The merged facts: entity frames concatenated and sorted, parts summed by their keys.
    pub fn finish(self, global_events: DataFrame) -> Result<Facts, ComputeError> {
        let merge_error = |what: &str| {
            let what = what.to_owned();
            move |source| ComputeError::Merge { what, source }
        };
        let mut entity = BTreeMap::new();
        for (name, (frames, sort)) in self.entity {
            let merged = concat_frames(frames)
                .and_then(|frame| frame.sort(sort.to_vec(), SortMultipleOptions::default()).collect())
                .map_err(merge_error(name))?;
            tracing::debug!(fact = name, rows = merged.height(), bytes = merged.estimated_size(), "merged");
            entity.insert(name, merged);
        }
        let mut parts = BTreeMap::new();
        for (name, (frames, keys)) in self.parts {
            let merged = sum_parts(frames, keys).map_err(merge_error(name))?;
            parts.insert(name, merged);
        }
        Ok(Facts { entity, parts, global_events })
    }
}

fn concat_frames(frames: Vec<DataFrame>) -> PolarsResult<LazyFrame> {
    concat(frames.into_iter().map(DataFrame::lazy).collect::<Vec<_>>(), UnionArgs::default())
}

/// The rows of a part over all buckets: summed per key, sorted by the keys.
fn sum_parts(frames: Vec<DataFrame>, keys: &[&str]) -> PolarsResult<DataFrame> {
    let values: Vec<Expr> = frames
        .first()
        .map(|frame| {
            frame
                .get_column_names()
                .into_iter()
                .filter(|name| !keys.contains(&name.as_str()))
                .map(|name| col(name.clone()).sum())
                .collect()
        })
        .unwrap_or_default();
    let key_columns: Vec<Expr> = keys.iter().map(|key| col(*key)).collect();
    concat_frames(frames)?
        .group_by(key_columns)
        .agg(values)
        .sort(keys.to_vec(), SortMultipleOptions::default())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers() -> LazyFrame {
        df!("n" => [1i64, 2, 3]).expect("a frame").lazy()
    }

    #[test]
    fn plans_collected_together_keep_their_order() {
        let odd = numbers().filter((col("n") % lit(2i64)).eq(lit(1i64)));
        let plans = vec![(Owner::Fact("all"), numbers()), (Owner::Table("odd"), odd)];
        let frames = collect_together(3, plans).expect("collected");
        let heights: Vec<usize> = frames.iter().map(DataFrame::height).collect();
        assert_eq!(heights, [3, 2]);
    }

    #[test]
    fn a_failing_plan_is_named_with_its_table_or_fact() {
        let broken = || numbers().select([col("missing")]);
        let plans = vec![(Owner::Fact("fine"), numbers()), (Owner::Table("broken"), broken())];
        match collect_together(3, plans) {
            Err(ComputeError::Table { table: "broken", source }) => assert!(source.to_string().contains("missing")),
            other => panic!("expected table `broken` to fail: {other:?}"),
        }
        let plans = vec![(Owner::Fact("broken fact"), broken()), (Owner::Table("fine"), numbers())];
        match collect_together(5, plans) {
            Err(error @ ComputeError::Fact { fact: "broken fact", bucket: 5, .. }) => {
                assert!(error.to_string().contains("bucket 5"), "{error}");
            }
            other => panic!("expected fact `broken fact` to fail: {other:?}"),
        }
    }
}

//! Surveys (kpis.md), rows of `kpi_monthly` for segment `all` by the local month of the
//! answer: `nps` (`(promoters 9-10 - detractors 0-6) / responses * 100`), `nps_responses`,
//! `csat` (share of answers >= 4, times 100), `csat_mean`, `ces_mean`. Every part is a count or
//! a sum of integer scores, so it adds up over buckets exactly.

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::context::Context;
use crate::expr::{count_where, mean_or_null};
use crate::facts::{Bucket, Facts, Part};
use crate::metrics::rows::{MetricValue, all_months, metric_rows, plain};
use crate::time::calendar::local_month;

/// Per local month of a bucket: answer counts and score sums per survey.
pub fn parts(bucket: &Bucket) -> PolarsResult<Vec<Part>> {
    let survey = |name: &str| col("survey").eq(lit(name));
    let score = col("score");
    let scores_of = |name: &str| score.clone().filter(survey(name));
    let per_month = bucket
        .events_of(EventType::SurveyAnswered)
        .with_column(local_month(col("occurred_at"), bucket.context.config.timezone).alias("month_index"))
        .group_by([col("month_index")])
        .agg([
            count_where(survey("nps")).alias("nps_responses"),
            (survey("nps").and(score.clone().gt_eq(lit(9i64))).cast(DataType::Int64)
                - survey("nps").and(score.clone().lt_eq(lit(6i64))).cast(DataType::Int64))
            .sum()
            .alias("nps_net"),
            count_where(survey("csat")).alias("csat_responses"),
            count_where(survey("csat").and(score.clone().gt_eq(lit(4i64)))).alias("csat_satisfied"),
            scores_of("csat").sum().cast(DataType::Int64).alias("csat_score_sum"),
            scores_of("csat").count().cast(DataType::Int64).alias("csat_scores"),
            scores_of("ces").sum().cast(DataType::Int64).alias("ces_score_sum"),
            scores_of("ces").count().cast(DataType::Int64).alias("ces_scores"),
        ]);
    Ok(vec![Part { name: "surveys", keys: &["month_index"], frame: per_month }])
}

/// The survey rows of `kpi_monthly` (segment `all`).
pub fn rows(context: &Context, facts: &Facts) -> PolarsResult<LazyFrame> {
    let wide = all_months(
        context,
        [facts.part("surveys")?],
        &["nps_responses", "nps_net", "csat_responses", "csat_satisfied"],
    );
    let rows = vec![
        metric_rows(
            &wide,
            "nps",
            MetricValue::Ratio { numerator: col("nps_net"), denominator: col("nps_responses"), scale: 100.0 },
        ),
        plain(&wide, "nps_responses"),
        metric_rows(
            &wide,
            "csat",
            MetricValue::Ratio { numerator: col("csat_satisfied"), denominator: col("csat_responses"), scale: 100.0 },
        ),
        metric_rows(&wide, "csat_mean", MetricValue::Plain(mean_or_null(col("csat_score_sum"), col("csat_scores")))),
        metric_rows(&wide, "ces_mean", MetricValue::Plain(mean_or_null(col("ces_score_sum"), col("ces_scores")))),
    ];
    concat(rows, UnionArgs::default())
}

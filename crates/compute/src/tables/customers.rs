//! Table `customers` (outputs.md, kpis.md "Customer value"): per customer, the RFM summary, the
//! model predictions, `is_alive` and `health_score`, from the per-customer facts and the fits.

use polars::prelude::*;

use crate::clv::fits::{Prediction, predict_all};
use crate::expr::days;
use crate::facts::customers::{CUSTOMERS, LATEST_NPS};
use crate::facts::leads::LEAD_ORIGINS;
use crate::facts::tickets::TICKETS;
use crate::tables::Run;

/// Per customer with an order, the RFM summary, historical CLV, BG/NBD
/// `expected_purchases` (next `clv.horizon_units`) and `p_alive`, Gamma-Gamma
/// `expected_avg_order_value`, `predicted_clv` (discounted monthly sum over
/// `clv.horizon_months`), `is_alive` and `health_score`.
pub fn plan(run: &Run) -> PolarsResult<LazyFrame> {
    let context = run.context;
    let models = run.models()?;
    let summaries = run.facts.entity_frame(CUSTOMERS)?;
    let (rfm_rows, fits) = (&models.rfm_rows, &models.fits);
    let predictions: Vec<Prediction> = predict_all(rfm_rows, fits, &context.config.clv);
    let predictions = DataFrame::new(
        summaries.height(),
        vec![
            summaries.column("customer_id")?.clone(),
            Column::new(
                "expected_purchases".into(),
                predictions.iter().map(|p| p.expected_purchases).collect::<Vec<_>>(),
            ),
            Column::new("p_alive".into(), predictions.iter().map(|p| p.p_alive).collect::<Vec<_>>()),
            Column::new(
                "expected_avg_order_value".into(),
                predictions.iter().map(|p| p.expected_avg_order_value).collect::<Vec<_>>(),
            ),
            Column::new("predicted_clv".into(), predictions.iter().map(|p| p.predicted_clv).collect::<Vec<_>>()),
        ],
    )?;
    let churn = f64::from(context.config.churn_after_days);
    let as_of_day = context.calendar.as_of_day;
    let weights = &context.config.health;
    let latest_nps = run.facts.entity(LATEST_NPS)?;
    let open_tickets = run
        .facts
        .entity(TICKETS)?
        .filter(col("resolved").not())
        .group_by([col("customer_id")])
        .agg([len().cast(DataType::Int64).alias("open_tickets")]);
    let days_since_last = (lit(as_of_day) - days(col("last_order_day"))).cast(DataType::Float64);
    let recency_part = (lit(1.0) - days_since_last.clone() / lit(churn)).clip_min(lit(0.0));
    let frequency_part = (col("recent_order_days").cast(DataType::Float64) / lit(12.0)).clip_max(lit(1.0));
    let sentiment_part = (col("latest_nps").cast(DataType::Float64) / lit(10.0)).fill_null(lit(0.5));
    let support_part =
        lit(1.0) - (col("open_tickets").fill_null(lit(0i64)).cast(DataType::Float64) / lit(3.0)).clip_max(lit(1.0));
    let health = lit(100.0)
        * (lit(weights.w_recency) * recency_part
            + lit(weights.w_frequency) * frequency_part
            + lit(weights.w_sentiment) * sentiment_part
            + lit(weights.w_support) * support_part);
    let channels = run.facts.entity(LEAD_ORIGINS)?.select([col("customer_id"), col("channel")]);
    Ok(summaries
        .clone()
        .lazy()
        .left_join(predictions.lazy(), col("customer_id"), col("customer_id"))
        .left_join(channels, col("customer_id"), col("customer_id"))
        .left_join(latest_nps, col("customer_id"), col("customer_id"))
        .left_join(open_tickets, col("customer_id"), col("customer_id"))
        .select([
            col("customer_id"),
            col("channel").fill_null(lit("unknown")).alias("acquisition_channel"),
            col("first_order_at"),
            col("last_order_at"),
            col("orders"),
            col("revenue"),
            col("frequency"),
            col("recency"),
            col("t"),
            col("monetary_value"),
            col("revenue").alias("historical_clv"),
            col("expected_purchases"),
            col("p_alive"),
            col("expected_avg_order_value"),
            col("predicted_clv"),
            days_since_last.lt(lit(churn)).alias("is_alive"),
            health.alias("health_score"),
        ])
        .sort(["customer_id"], SortMultipleOptions::default()))
}

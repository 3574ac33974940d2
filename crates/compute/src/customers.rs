//! Customers, activity and churn (kpis.md): a customer is a `customer_id` with an
//! `order_placed`; `alive(c, d)` holds when c has an order on a local day in
//! `(d - churn_after_days, d]`. For month m with days `F..L`: `S(m)` (alive on `F - 1`), `E(m)`
//! (alive on `L`), `new(m)` (first order day in m). Rows of `kpi_monthly`: `customers_start`,
//! `customers_end`, `churned_customers`, `reactivated_customers`, `churn_rate`,
//! `retention_rate`, `retention_cost_per_customer` and `engagement_rate`.

use crmkpi_schema::EventType;
use polars::prelude::*;
use rayon::prelude::*;

use crate::aggregate::{MONEY, exact_sum};
use crate::calendar::{local_month, month_of_day};
use crate::context::Context;
use crate::kpi_monthly::{MetricValue, all_months, mean_or_null, metric_rows};
use crate::revenue::{first_order_days, orders};

fn days(date: Expr) -> Expr {
    date.cast(DataType::Int32)
}

/// Per customer and reported month in which the customer is alive at the start or the end:
/// `alive_start` (member of `S(m)`), `alive_end` (of `E(m)`), `is_new` (of `new(m)`).
///
/// An order day `d` keeps its customer alive on the days `d ..= d + churn_after_days - 1`, so
/// it can only matter for the few months from the month of `d` to the month of
/// `d + churn_after_days`: each distinct order day is paired with those months only.
pub fn alive_months(context: &Context) -> PolarsResult<LazyFrame> {
    context.shared("alive_months", || alive_months_plan(context))
}

fn alive_months_plan(context: &Context) -> PolarsResult<LazyFrame> {
    let churn_days = i32::try_from(context.config.churn_after_days).unwrap_or(i32::MAX / 2);
    let churn = lit(churn_days);
    let order_rows = orders(context)?;
    let order_days = order_rows
        .clone()
        .select([col("customer_id"), col("day"), col("month_index")])
        .unique(None, UniqueKeepStrategy::Any);
    let new_months = first_order_days(order_rows)
        .select([col("customer_id"), month_of_day(col("first_order_day")).alias("month_index")])
        .with_column(lit(true).alias("is_new"));
    let month_span = churn_days / 28 + 2;
    let offsets = DataFrame::new(
        usize::try_from(month_span).unwrap_or(0),
        vec![Column::new("month_offset".into(), (0..month_span).collect::<Vec<i32>>())],
    )
    .unwrap_or_default()
    .lazy()
    .with_column(lit(1i32).alias("join_key"));
    let day = days(col("day"));
    let start_of_month = days(col("period"));
    let end_of_month = days(col("last_day"));
    let alive_start = day.clone().gt_eq(start_of_month.clone() - churn.clone()).and(day.clone().lt(start_of_month));
    let alive_end = day.clone().gt(end_of_month.clone() - churn).and(day.lt_eq(end_of_month));
    Ok(order_days
        .with_column(lit(1i32).alias("join_key"))
        .inner_join(offsets, col("join_key"), col("join_key"))
        .select([col("customer_id"), col("day"), (col("month_index") + col("month_offset")).alias("month_index")])
        .inner_join(context.calendar.month_grid(), col("month_index"), col("month_index"))
        .with_columns([alive_start.alias("alive_start"), alive_end.alias("alive_end")])
        .filter(col("alive_start").or(col("alive_end")))
        .group_by([col("customer_id"), col("month_index")])
        .agg([col("alive_start").any(true), col("alive_end").any(true)])
        .join(
            new_months,
            [col("customer_id"), col("month_index")],
            [col("customer_id"), col("month_index")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(col("is_new").fill_null(lit(false))))
}

/// The churn and engagement rows of `kpi_monthly` (segment `all`).
pub fn monthly(context: &Context) -> PolarsResult<LazyFrame> {
    let engaging = Series::new(
        "engaging_types".into(),
        [
            EventType::CampaignResponded.name(),
            EventType::SiteVisited.name(),
            EventType::SurveyAnswered.name(),
            EventType::EmailSubscribed.name(),
        ],
    );
    let engaged = context
        .events()
        .filter(col("event_type").is_in(lit(engaging).implode(false), false))
        .select([col("customer_id"), local_month(col("occurred_at"), context.config.timezone).alias("month_index")])
        .unique(None, UniqueKeepStrategy::Any)
        .with_column(lit(true).alias("engaged"));
    let counted = |flag: Expr| flag.cast(DataType::Int64).sum();
    let (start, end, new) = (col("alive_start"), col("alive_end"), col("is_new"));
    let per_month = alive_months(context)?
        .join(
            engaged,
            [col("customer_id"), col("month_index")],
            [col("customer_id"), col("month_index")],
            JoinArgs::new(JoinType::Left),
        )
        .group_by([col("month_index")])
        .agg([
            counted(start.clone()).alias("customers_start"),
            counted(end.clone()).alias("customers_end"),
            counted(start.clone().and(end.clone().not())).alias("churned_customers"),
            counted(start.clone().and(end.clone())).alias("retained_customers"),
            counted(end.and(start.clone().not()).and(new.not())).alias("reactivated_customers"),
            counted(start.and(col("engaged").fill_null(lit(false)))).alias("engaged_customers"),
        ]);
    let retention_spend = context
        .events_of(EventType::SpendRecorded)
        .filter(col("category").eq(lit("retention")))
        .with_column(local_month(col("occurred_at"), context.config.timezone).alias("month_index"))
        .group_by([col("month_index")])
        .agg([exact_sum(col("amount"), MONEY).alias("retention_spend")]);
    let wide = all_months(
        context,
        [per_month, retention_spend],
        &[
            "customers_start",
            "customers_end",
            "churned_customers",
            "retained_customers",
            "reactivated_customers",
            "engaged_customers",
            "retention_spend",
        ],
    );
    let share = |numerator: &str| MetricValue::Ratio {
        numerator: col(numerator),
        denominator: col("customers_start"),
        scale: 1.0,
    };
    let rows = vec![
        metric_rows(&wide, "customers_start", MetricValue::Plain(col("customers_start"))),
        metric_rows(&wide, "customers_end", MetricValue::Plain(col("customers_end"))),
        metric_rows(&wide, "churned_customers", MetricValue::Plain(col("churned_customers"))),
        metric_rows(&wide, "reactivated_customers", MetricValue::Plain(col("reactivated_customers"))),
        metric_rows(&wide, "churn_rate", share("churned_customers")),
        metric_rows(&wide, "retention_rate", share("retained_customers")),
        metric_rows(
            &wide,
            "retention_cost_per_customer",
            MetricValue::Plain(mean_or_null(col("retention_spend"), col("customers_start"))),
        ),
        metric_rows(&wide, "engagement_rate", share("engaged_customers")),
    ];
    concat(rows, UnionArgs::default())
}

/// Per reported month m: `customers`, the distinct customers with an order in the 12 months
/// ending with m. Each customer-month o with an order covers the windows o..=o+11; of those,
/// the ones not already covered by the customer's previous order month p start at
/// max(o, p + 12). So every customer adds +1 at each such start and -1 at o + 12, and a
/// running sum over the months counts each customer once per window it is in, without
/// pairing every order month with its 12 windows.
fn ordering_customers_per_window(order_rows: LazyFrame, month_grid: LazyFrame) -> PolarsResult<LazyFrame> {
    let previous = col("month_index").shift(lit(1)).over([col("customer_id")])?;
    // With no previous order month the comparison is null and the window starts at o.
    let previous_end = col("previous_month") + lit(12);
    let coverage = order_rows
        .select([col("customer_id"), col("month_index")])
        .unique(None, UniqueKeepStrategy::Any)
        .sort(["customer_id", "month_index"], SortMultipleOptions::default())
        .with_column(previous.alias("previous_month"))
        .select([
            when(previous_end.clone().gt(col("month_index")))
                .then(previous_end)
                .otherwise(col("month_index"))
                .alias("covered_from"),
            (col("month_index") + lit(12)).alias("covered_until"),
        ]);
    let changes = |at: &str, name: &str| {
        coverage.clone().group_by([col(at).alias("month_index")]).agg([len().cast(DataType::Int64).alias(name)])
    };
    Ok(month_grid
        .select([col("month_index")])
        .left_join(changes("covered_from", "starting"), col("month_index"), col("month_index"))
        .left_join(changes("covered_until", "ending"), col("month_index"), col("month_index"))
        .sort(["month_index"], SortMultipleOptions::default())
        .select([
            col("month_index"),
            (col("starting").fill_null(lit(0i64)) - col("ending").fill_null(lit(0i64)))
                .cum_sum(false)
                .alias("customers"),
        ]))
}

/// The `clv_formula` rows of `kpi_monthly` (segment `all`), the textbook recipe over the 12
/// months W ending with month m: `apv = revenue / orders` in W, `purchase_frequency = orders /
/// distinct ordering customers` in W, `lifespan_years = 1 / annual_churn` with `annual_churn =
/// |S12 \ E12| / |S12|` (S12 alive on the day before W starts, that is `S(m - 11)`; E12 alive
/// on L, that is `E(m)`), and `clv_formula = apv * purchase_frequency * lifespan_years` (null
/// when any part is null).
pub fn clv_formula(context: &Context) -> PolarsResult<LazyFrame> {
    let key = || lit(1i32).alias("join_key");
    let order_rows = orders(context)?;
    // A month's orders belong to the windows ending in that month and the 11 after it.
    let offsets = DataFrame::new(12, vec![Column::new("month_offset".into(), (0..12).collect::<Vec<i32>>())])?
        .lazy()
        .with_column(key());
    let window_orders = order_rows
        .clone()
        .group_by([col("month_index")])
        .agg([exact_sum(col("amount"), MONEY).alias("revenue"), len().cast(DataType::Int64).alias("orders")])
        .with_column(key())
        .inner_join(offsets, col("join_key"), col("join_key"))
        .with_column((col("month_index") + col("month_offset")).alias("window_month"))
        .group_by([col("window_month")])
        .agg([exact_sum(col("revenue"), MONEY).alias("revenue"), col("orders").sum().alias("orders")]);
    let window_customers = ordering_customers_per_window(order_rows, context.calendar.month_grid())?;
    let alive = alive_months(context)?;
    let alive_before = alive
        .clone()
        .filter(col("alive_start"))
        .select([col("customer_id"), (col("month_index") + lit(11)).alias("window_month")]);
    let alive_after = alive.filter(col("alive_end")).select([
        col("customer_id"),
        col("month_index").alias("window_month"),
        lit(true).alias("still_alive"),
    ]);
    let churn = alive_before
        .join(
            alive_after,
            [col("customer_id"), col("window_month")],
            [col("customer_id"), col("window_month")],
            JoinArgs::new(JoinType::Left),
        )
        .group_by([col("window_month")])
        .agg([
            len().cast(DataType::Int64).alias("alive_before"),
            col("still_alive").fill_null(lit(false)).cast(DataType::Int64).sum().alias("still_alive"),
        ]);
    let apv = mean_or_null(col("revenue"), col("orders"));
    let purchase_frequency = mean_or_null(col("orders"), col("customers"));
    let annual_churn = mean_or_null(col("alive_before") - col("still_alive"), col("alive_before"));
    let lifespan_years = when(annual_churn.clone().gt(lit(0.0)))
        .then(lit(1.0) / annual_churn)
        .otherwise(lit(NULL).cast(DataType::Float64));
    let wide = context
        .calendar
        .month_grid()
        .left_join(window_orders, col("month_index"), col("window_month"))
        .left_join(window_customers, col("month_index"), col("month_index"))
        .left_join(churn, col("month_index"), col("window_month"))
        .with_column(lit("all").alias("segment"));
    Ok(metric_rows(&wide, "clv_formula", MetricValue::Plain(apv * purchase_frequency * lifespan_years)))
}

/// Per customer: the RFM summary at `as_of` with the conventions of the BG/NBD literature and
/// `lifetimes` (orders of one local day are one purchase, amounts summed): `first_order_at`,
/// `last_order_at`, `orders`, `revenue`, `frequency` (order days - 1), `recency` and `t` in
/// `clv.unit_days` units, `monetary_value` (mean of the repeat days' totals, 0 without repeat),
/// `last_order_day`, and `recent_order_days` (order days in `(day(as_of) - 365, day(as_of)]`).
fn rfm(context: &Context) -> PolarsResult<LazyFrame> {
    let unit = f64::from(context.config.clv.unit_days);
    let as_of_day = context.calendar.as_of_day;
    let order_events = orders(context)?.select([col("customer_id"), col("occurred_at"), col("amount"), col("day")]);
    let day_totals =
        order_events
            .clone()
            .group_by([col("customer_id"), col("day")])
            .agg([exact_sum(col("amount"), MONEY).alias("day_total")]);
    let per_customer_days = day_totals
        .group_by([col("customer_id")])
        .agg([
            len().cast(DataType::Int64).alias("order_days"),
            col("day").min().alias("first_order_day"),
            col("day").max().alias("last_order_day"),
            days(col("day")).gt(lit(as_of_day - 365)).cast(DataType::Int64).sum().alias("recent_order_days"),
            exact_sum(col("day_total"), MONEY).alias("days_revenue"),
            exact_sum(col("day_total").filter(col("day").neq(col("day").min())), MONEY).alias("repeat_revenue"),
        ])
        .with_columns([
            (col("order_days") - lit(1i64)).alias("frequency"),
            ((days(col("last_order_day")) - days(col("first_order_day"))).cast(DataType::Float64) / lit(unit))
                .alias("recency"),
            ((lit(as_of_day) - days(col("first_order_day"))).cast(DataType::Float64) / lit(unit)).alias("t"),
        ])
        .with_column(mean_or_null(col("repeat_revenue"), col("frequency")).fill_null(lit(0.0)).alias("monetary_value"));
    let per_customer_orders = order_events.group_by([col("customer_id")]).agg([
        col("occurred_at").min().alias("first_order_at"),
        col("occurred_at").max().alias("last_order_at"),
        len().cast(DataType::Int64).alias("orders"),
        exact_sum(col("amount"), MONEY).alias("revenue"),
    ]);
    Ok(per_customer_orders.left_join(per_customer_days, col("customer_id"), col("customer_id")))
}

/// The fitted models of a run, with the number of customers each was fitted on.
pub struct ClvFits {
    /// BG/NBD over all customers (None: fewer than 2 customers).
    pub bg_nbd: Option<crate::clv_model::Fit<crate::clv_model::BgNbd>>,
    /// Gamma-Gamma over customers with repeat purchases (None: fewer than 2).
    pub gamma_gamma: Option<crate::clv_model::Fit<crate::clv_model::GammaGamma>>,
    /// Customers of the BG/NBD fit.
    pub bg_nbd_customers: usize,
    /// Customers of the Gamma-Gamma fit.
    pub gamma_gamma_customers: usize,
}

/// The customer summaries (sorted by `customer_id`), their model inputs and the fits.
pub struct FittedModels {
    summaries: DataFrame,
    rfm_rows: Vec<crate::clv_model::Rfm>,
    fits: ClvFits,
}

/// The fitted models of the run, computed on first use and kept in the context.
fn fitted_models(context: &Context) -> PolarsResult<std::sync::Arc<FittedModels>> {
    if let Some(fitted) = context.clv_fits.get() {
        return Ok(fitted.clone());
    }
    let (summaries, rfm_rows, fits) = fit_models(context)?;
    let fitted = std::sync::Arc::new(FittedModels { summaries, rfm_rows, fits });
    Ok(context.clv_fits.get_or_init(|| fitted).clone())
}

/// Collects the RFM summaries and fits both models (a global step on top of the per-customer
/// summaries). Returns the summaries (sorted by `customer_id`) and the fits.
fn fit_models(context: &Context) -> PolarsResult<(DataFrame, Vec<crate::clv_model::Rfm>, ClvFits)> {
    let summaries = rfm(context)?.sort(["customer_id"], SortMultipleOptions::default()).collect()?;
    let column = |name: &str| -> PolarsResult<Vec<f64>> {
        Ok(summaries.column(name)?.cast(&DataType::Float64)?.f64()?.iter().map(|value| value.unwrap_or(0.0)).collect())
    };
    let (frequency, recency, t, monetary) =
        (column("frequency")?, column("recency")?, column("t")?, column("monetary_value")?);
    let customers: Vec<crate::clv_model::Rfm> = (0..summaries.height())
        .map(|row| crate::clv_model::Rfm {
            frequency: frequency[row],
            recency: recency[row],
            t: t[row],
            monetary_value: monetary[row],
        })
        .collect();
    let spenders =
        customers.iter().filter(|customer| customer.frequency > 0.0 && customer.monetary_value > 0.0).count();
    let started = std::time::Instant::now();
    let bg_nbd = crate::clv_model::fit_bg_nbd(&customers);
    tracing::debug!(fit = ?bg_nbd, seconds = started.elapsed().as_secs_f64(), "BG/NBD fit");
    let started = std::time::Instant::now();
    let gamma_gamma = crate::clv_model::fit_gamma_gamma(&customers);
    tracing::debug!(fit = ?gamma_gamma, seconds = started.elapsed().as_secs_f64(), "Gamma-Gamma fit");
    let fits = ClvFits { bg_nbd, gamma_gamma, bg_nbd_customers: customers.len(), gamma_gamma_customers: spenders };
    Ok((summaries, customers, fits))
}

/// One month in model units: 4.345 for weekly units, 30 for daily units, else `30 / unit_days`.
fn month_in_units(unit_days: u32) -> f64 {
    match unit_days {
        7 => 4.345,
        1 => 30.0,
        other => 30.0 / f64::from(other),
    }
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// One customer's model predictions; null where a model is missing or a value not finite.
struct Prediction {
    expected_purchases: Option<f64>,
    p_alive: Option<f64>,
    expected_avg_order_value: Option<f64>,
    predicted_clv: Option<f64>,
}

/// BG/NBD `expected_purchases` (next `horizon_units`) and `p_alive`, Gamma-Gamma
/// `expected_avg_order_value`, and `predicted_clv` = Σ_{i=1..horizon_months}
/// `expected_avg_order_value * (E[X(i u)] - E[X((i - 1) u)]) / (1 + monthly_discount_rate)^i`.
fn predict(customer: &crate::clv_model::Rfm, fits: &ClvFits, clv: &crmkpi_schema::ClvConfig) -> Prediction {
    let bg = fits.bg_nbd.as_ref().map(|fit| &fit.params);
    let expected_avg_order_value = fits
        .gamma_gamma
        .as_ref()
        .and_then(|fit| fit.params.expected_average_value(customer.frequency, customer.monetary_value))
        .and_then(finite);
    let predicted_clv = match (bg, expected_avg_order_value) {
        (Some(model), Some(value)) => {
            let month = month_in_units(clv.unit_days);
            let (mut previous, mut total) = (0.0, 0.0);
            for i in 1..=clv.horizon_months {
                let upto = model.conditional_expected_purchases(f64::from(i) * month, customer);
                let discount = (1.0 + clv.monthly_discount_rate).powi(i32::try_from(i).unwrap_or(i32::MAX));
                total += value * (upto - previous) / discount;
                previous = upto;
            }
            finite(total)
        }
        _ => None,
    };
    Prediction {
        expected_purchases: bg
            .and_then(|model| finite(model.conditional_expected_purchases(f64::from(clv.horizon_units), customer))),
        p_alive: bg.and_then(|model| finite(model.p_alive(customer))),
        expected_avg_order_value,
        predicted_clv,
    }
}

/// Table `customers`: per customer with an order, the RFM summary, historical CLV, BG/NBD
/// `expected_purchases` (next `clv.horizon_units`) and `p_alive`, Gamma-Gamma
/// `expected_avg_order_value`, `predicted_clv` (discounted monthly sum over
/// `clv.horizon_months`), `is_alive` and `health_score`.
pub fn customers(context: &Context) -> PolarsResult<LazyFrame> {
    let fitted = fitted_models(context)?;
    let (summaries, rfm_rows, fits) = (&fitted.summaries, &fitted.rfm_rows, &fitted.fits);
    let predictions: Vec<Prediction> =
        rfm_rows.par_iter().map(|customer| predict(customer, fits, &context.config.clv)).collect();
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
    let latest_nps = context
        .events_of(EventType::SurveyAnswered)
        .filter(col("survey").eq(lit("nps")))
        .sort(["customer_id", "occurred_at", "event_id"], SortMultipleOptions::default())
        .group_by([col("customer_id")])
        .agg([col("score").last().alias("latest_nps")]);
    let open_tickets = crate::service::tickets(context)?
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
    let channels = crate::leads::lead_origins(context)?.select([col("customer_id"), col("channel")]);
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

/// Table `clv_model`: the maximum-likelihood fits of BG/NBD (`r`, `alpha`, `a`, `b`) and
/// Gamma-Gamma (`p`, `q`, `v`) with `log_likelihood`, `customers`, `iterations` and `converged`
/// (1 or 0). A model with fewer than 2 customers to fit has null parameters and converged 0.
pub fn clv_model(context: &Context) -> PolarsResult<LazyFrame> {
    let fitted = fitted_models(context)?;
    let fits = &fitted.fits;
    let mut rows: Vec<(&str, &str, Option<f64>)> = Vec::new();
    let bg = fits.bg_nbd.as_ref();
    for (name, value) in [
        ("r", bg.map(|fit| fit.params.r)),
        ("alpha", bg.map(|fit| fit.params.alpha)),
        ("a", bg.map(|fit| fit.params.a)),
        ("b", bg.map(|fit| fit.params.b)),
        ("log_likelihood", bg.map(|fit| fit.log_likelihood)),
        ("customers", Some(fits.bg_nbd_customers as f64)),
        ("iterations", Some(bg.map_or(0.0, |fit| fit.iterations as f64))),
        ("converged", Some(bg.map_or(0.0, |fit| f64::from(u8::from(fit.converged))))),
    ] {
        rows.push(("bg_nbd", name, value));
    }
    let gg = fits.gamma_gamma.as_ref();
    for (name, value) in [
        ("p", gg.map(|fit| fit.params.p)),
        ("q", gg.map(|fit| fit.params.q)),
        ("v", gg.map(|fit| fit.params.v)),
        ("log_likelihood", gg.map(|fit| fit.log_likelihood)),
        ("customers", Some(fits.gamma_gamma_customers as f64)),
        ("iterations", Some(gg.map_or(0.0, |fit| fit.iterations as f64))),
        ("converged", Some(gg.map_or(0.0, |fit| f64::from(u8::from(fit.converged))))),
    ] {
        rows.push(("gamma_gamma", name, value));
    }
    let frame = DataFrame::new(
        rows.len(),
        vec![
            Column::new("model".into(), rows.iter().map(|row| row.0).collect::<Vec<_>>()),
            Column::new("parameter".into(), rows.iter().map(|row| row.1).collect::<Vec<_>>()),
            Column::new("value".into(), rows.iter().map(|row| row.2.and_then(finite)).collect::<Vec<_>>()),
        ],
    )?;
    Ok(frame.lazy().sort(["model", "parameter"], SortMultipleOptions::default()))
}

/// Above this a + b, the fitted Beta distribution of BG/NBD dropout probabilities has a
/// standard deviation below 0.05% (the likelihood's supremum is at a + b -> infinity).
const DEGENERATE_CONCENTRATION: f64 = 1e6;

/// Warnings about the model fits: a model not fitted or not converged, and a BG/NBD fit at
/// the boundary where the dropout probability is the same for every customer.
pub fn clv_warnings(context: &Context) -> PolarsResult<Vec<String>> {
    let fitted = fitted_models(context)?;
    let fits = &fitted.fits;
    let mut warnings = Vec::new();
    match &fits.bg_nbd {
        None => warnings.push(format!("BG/NBD not fitted: {} customers, at least 2 needed", fits.bg_nbd_customers)),
        Some(fit) if !fit.converged => {
            warnings.push(format!("BG/NBD fit did not converge after {} iterations", fit.iterations))
        }
        Some(fit) if fit.params.a + fit.params.b > DEGENERATE_CONCENTRATION => warnings.push(format!(
            "BG/NBD: dropout probabilities do not vary across customers (a + b = {:.3e}); the fit is the limit \
             of a Beta distribution concentrated at p = a / (a + b) = {:.4}, a and b are not meaningful on their own",
            fit.params.a + fit.params.b,
            fit.params.a / (fit.params.a + fit.params.b)
        )),
        Some(_) => {}
    }
    match &fits.gamma_gamma {
        None => warnings.push(format!(
            "Gamma-Gamma not fitted: {} customers with repeat purchases, at least 2 needed",
            fits.gamma_gamma_customers
        )),
        Some(fit) if !fit.converged => {
            warnings.push(format!("Gamma-Gamma fit did not converge after {} iterations", fit.iterations))
        }
        Some(_) => {}
    }
    Ok(warnings)
}

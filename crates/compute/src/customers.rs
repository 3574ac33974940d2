//! Customers, activity and churn (kpis.md): a customer is a `customer_id` with an
//! `order_placed`; `alive(c, d)` holds when c has an order on a local day in
//! `(d - churn_after_days, d]`. For month m with days `F..L`: `S(m)` (alive on `F - 1`), `E(m)`
//! (alive on `L`), `new(m)` (first order day in m). Rows of `kpi_monthly`: `customers_start`,
//! `customers_end`, `churned_customers`, `reactivated_customers`, `churn_rate`,
//! `retention_rate`, `retention_cost_per_customer` and `engagement_rate`.

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::aggregate::{MONEY, exact_sum};
use crate::calendar::{local_month, month_of_day};
use crate::context::Context;
use crate::kpi_monthly::{MetricValue, mean_or_null, metric_rows};
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
pub fn alive_months(context: &Context) -> LazyFrame {
    let churn_days = i32::try_from(context.config.churn_after_days).unwrap_or(i32::MAX / 2);
    let churn = lit(churn_days);
    let order_rows = orders(context);
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
    order_days
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
        .with_column(col("is_new").fill_null(lit(false)))
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
    let per_month = alive_months(context)
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
    let counts = [
        "customers_start",
        "customers_end",
        "churned_customers",
        "retained_customers",
        "reactivated_customers",
        "engaged_customers",
    ];
    let wide = context
        .calendar
        .month_grid()
        .left_join(per_month, col("month_index"), col("month_index"))
        .left_join(retention_spend, col("month_index"), col("month_index"))
        .with_columns(counts.map(|name| col(name).fill_null(lit(0i64))))
        .with_columns([col("retention_spend").fill_null(lit(0.0)), lit("all").alias("segment")]);
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

/// The `clv_formula` rows of `kpi_monthly` (segment `all`), the textbook recipe over the 12
/// months W ending with month m: `apv = revenue / orders` in W, `purchase_frequency = orders /
/// distinct ordering customers` in W, `lifespan_years = 1 / annual_churn` with `annual_churn =
/// |S12 \ E12| / |S12|` (S12 alive on the day before W starts, that is `S(m - 11)`; E12 alive
/// on L, that is `E(m)`), and `clv_formula = apv * purchase_frequency * lifespan_years` (null
/// when any part is null).
pub fn clv_formula(context: &Context) -> PolarsResult<LazyFrame> {
    let key = || lit(1i32).alias("join_key");
    let customer_months = orders(context)
        .group_by([col("customer_id"), col("month_index")])
        .agg([exact_sum(col("amount"), MONEY).alias("revenue"), len().cast(DataType::Int64).alias("orders")]);
    // A month's orders belong to the windows ending in that month and the 11 after it.
    let offsets = DataFrame::new(12, vec![Column::new("month_offset".into(), (0..12).collect::<Vec<i32>>())])?
        .lazy()
        .with_column(key());
    let window_orders = customer_months
        .with_column(key())
        .inner_join(offsets, col("join_key"), col("join_key"))
        .with_column((col("month_index") + col("month_offset")).alias("window_month"))
        .filter(col("window_month").lt_eq(lit(context.calendar.last_month)))
        .group_by([col("window_month")])
        .agg([
            exact_sum(col("revenue"), MONEY).alias("revenue"),
            col("orders").sum().alias("orders"),
            col("customer_id").n_unique().cast(DataType::Int64).alias("customers"),
        ]);
    let alive = alive_months(context);
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
        .left_join(churn, col("month_index"), col("window_month"))
        .with_column(lit("all").alias("segment"));
    Ok(metric_rows(&wide, "clv_formula", MetricValue::Plain(apv * purchase_frequency * lifespan_years)))
}

//! Revenue KPIs of kpis.md ("Revenue and marketing", by month): `revenue` and `orders` (sum
//! and count of `order_placed`), `apv` (`revenue / orders`), `new_customers` (customers whose
//! first order day falls in the month), `net_new_revenue` (orders fewer than
//! `new_revenue_window_days` days after the customer's first order day), `upsell_rate` and
//! `cross_sell_rate` (distinct customers with such an order over distinct ordering customers).
//! Months and days are cut in the reporting time zone. Every count adds up over buckets (a
//! customer's orders are in one bucket).

use polars::prelude::*;

use crate::context::Context;
use crate::expr::{MONEY, exact_units, from_units, mean_or_null};
use crate::facts::orders::{MONTHLY_NEW_CUSTOMERS, MONTHLY_ORDERS, first_order_days, orders};
use crate::facts::{Bucket, Facts, Part};
use crate::metrics::rows::{MetricValue, all_months, metric_rows, plain, share};

/// Per month of a bucket: the net new revenue and the distinct ordering, upselling and
/// cross-selling customers (the order sums and new customers are the shared monthly order
/// parts).
pub fn parts(bucket: &Bucket) -> PolarsResult<Vec<Part>> {
    let orders = orders(bucket)?;
    let window = i32::try_from(bucket.context.config.new_revenue_window_days).unwrap_or(i32::MAX);
    let customers_with =
        |kind: &str| col("customer_id").filter(col("kind").eq(lit(kind))).n_unique().cast(DataType::Int64);
    let days_since_first = col("day").cast(DataType::Int32) - col("first_order_day").cast(DataType::Int32);
    let per_month = orders
        .clone()
        .join(first_order_days(bucket)?, [col("customer_id")], [col("customer_id")], JoinArgs::new(JoinType::Left))
        .group_by([col("month_index")])
        .agg([
            exact_units(col("amount").filter(days_since_first.lt(lit(window))), MONEY).alias("net_new_revenue_units"),
            col("customer_id").n_unique().cast(DataType::Int64).alias("ordering_customers"),
            customers_with("upsell").alias("upsell_customers"),
            customers_with("cross_sell").alias("cross_sell_customers"),
        ]);
    Ok(vec![Part { name: "revenue", keys: &["month_index"], frame: per_month }])
}

/// The revenue rows of `kpi_monthly` for segment `all`, one per reported month and metric.
pub fn rows(context: &Context, facts: &Facts) -> PolarsResult<LazyFrame> {
    let wide = all_months(
        context,
        [facts.part(MONTHLY_ORDERS)?, facts.part(MONTHLY_NEW_CUSTOMERS)?, facts.part("revenue")?],
        &[
            "revenue_units",
            "orders",
            "new_customers",
            "net_new_revenue_units",
            "ordering_customers",
            "upsell_customers",
            "cross_sell_customers",
        ],
    )
    .with_columns([
        from_units(col("revenue_units"), MONEY).alias("revenue"),
        from_units(col("net_new_revenue_units"), MONEY).alias("net_new_revenue"),
    ]);
    let rows = [
        plain(&wide, "revenue"),
        plain(&wide, "orders"),
        metric_rows(&wide, "apv", MetricValue::Plain(mean_or_null(col("revenue"), col("orders")))),
        plain(&wide, "new_customers"),
        plain(&wide, "net_new_revenue"),
        share(&wide, "upsell_rate", "upsell_customers", "ordering_customers"),
        share(&wide, "cross_sell_rate", "cross_sell_customers", "ordering_customers"),
    ];
    concat(rows, UnionArgs::default())
}

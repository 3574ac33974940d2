//! Revenue KPIs of kpis.md ("Revenue and marketing", by month): `revenue` and `orders` (sum
//! and count of `order_placed`), `apv` (`revenue / orders`), `new_customers` (customers whose
//! first order day falls in the month), `net_new_revenue` (orders fewer than
//! `new_revenue_window_days` days after the customer's first order day), `upsell_rate` and
//! `cross_sell_rate` (distinct customers with such an order over distinct ordering customers).
//! Months and days are cut in the reporting time zone.

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::aggregate::{MONEY, exact_sum};

use crate::calendar::{local_day, local_month, month_of_day};
use crate::context::Context;
use crate::kpi_monthly::{MetricValue, all_months, mean_or_null, metric_rows};

/// Orders up to `as_of` with their local month and day: `customer_id`, `occurred_at`,
/// `amount`, `kind`, `month_index`, `day` (collected once per run).
pub fn orders(context: &Context) -> PolarsResult<LazyFrame> {
    let zone = context.config.timezone;
    context.shared("orders", || {
        Ok(context.events_of(EventType::OrderPlaced).select([
            col("customer_id"),
            col("occurred_at"),
            col("amount"),
            col("kind"),
            local_month(col("occurred_at"), zone).alias("month_index"),
            local_day(col("occurred_at"), zone).alias("day"),
        ]))
    })
}

/// Per customer with an order: `first_order_day`.
pub fn first_order_days(orders: LazyFrame) -> LazyFrame {
    orders.group_by([col("customer_id")]).agg([col("day").min().alias("first_order_day")])
}

/// The revenue rows of `kpi_monthly` for segment `all`: `revenue`, `orders`, `apv`,
/// `new_customers`, `net_new_revenue`, `upsell_rate`, `cross_sell_rate`, one row per reported
/// month and metric.
pub fn monthly(context: &Context) -> PolarsResult<LazyFrame> {
    let orders = orders(context)?;
    let window = i32::try_from(context.config.new_revenue_window_days).unwrap_or(i32::MAX);
    let customers_with =
        |kind: &str| col("customer_id").filter(col("kind").eq(lit(kind))).n_unique().cast(DataType::Int64);
    let days_since_first = col("day").cast(DataType::Int32) - col("first_order_day").cast(DataType::Int32);
    let per_month = orders
        .clone()
        .join(
            first_order_days(orders.clone()),
            [col("customer_id")],
            [col("customer_id")],
            JoinArgs::new(JoinType::Left),
        )
        .group_by([col("month_index")])
        .agg([
            exact_sum(col("amount"), MONEY).alias("revenue"),
            len().cast(DataType::Int64).alias("orders"),
            exact_sum(col("amount").filter(days_since_first.lt(lit(window))), MONEY).alias("net_new_revenue"),
            col("customer_id").n_unique().cast(DataType::Int64).alias("ordering_customers"),
            customers_with("upsell").alias("upsell_customers"),
            customers_with("cross_sell").alias("cross_sell_customers"),
        ]);
    let new_customers = first_order_days(orders)
        .select([month_of_day(col("first_order_day")).alias("month_index")])
        .group_by([col("month_index")])
        .agg([len().cast(DataType::Int64).alias("new_customers")]);
    let wide = all_months(
        context,
        [per_month, new_customers],
        &[
            "revenue",
            "orders",
            "new_customers",
            "net_new_revenue",
            "ordering_customers",
            "upsell_customers",
            "cross_sell_customers",
        ],
    );
    let share = |numerator: &str| MetricValue::Ratio {
        numerator: col(numerator),
        denominator: col("ordering_customers"),
        scale: 1.0,
    };
    let rows = [
        metric_rows(&wide, "revenue", MetricValue::Plain(col("revenue"))),
        metric_rows(&wide, "orders", MetricValue::Plain(col("orders"))),
        metric_rows(&wide, "apv", MetricValue::Plain(mean_or_null(col("revenue"), col("orders")))),
        metric_rows(&wide, "new_customers", MetricValue::Plain(col("new_customers"))),
        metric_rows(&wide, "net_new_revenue", MetricValue::Plain(col("net_new_revenue"))),
        metric_rows(&wide, "upsell_rate", share("upsell_customers")),
        metric_rows(&wide, "cross_sell_rate", share("cross_sell_customers")),
    ];
    concat(rows, UnionArgs::default())
}

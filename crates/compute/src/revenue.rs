//! Revenue KPIs of kpis.md ("Revenue and marketing", by month): `revenue` and `orders` (sum
//! and count of `order_placed`), `apv` (`revenue / orders`) and `new_customers` (customers
//! whose first order day falls in the month). Months and days are cut in the reporting time
//! zone.

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::aggregate::{MONEY, exact_sum};

use crate::calendar::{local_day, local_month, month_of_day};
use crate::context::Context;
use crate::kpi_monthly::{MetricValue, mean_or_null, metric_rows};

/// Orders up to `as_of` with their local month and day: `customer_id`, `amount`,
/// `month_index`, `day`.
pub fn orders(context: &Context) -> LazyFrame {
    let zone = context.config.timezone;
    context.events_of(EventType::OrderPlaced).select([
        col("customer_id"),
        col("amount"),
        local_month(col("occurred_at"), zone).alias("month_index"),
        local_day(col("occurred_at"), zone).alias("day"),
    ])
}

/// Per customer with an order: `first_order_day`.
pub fn first_order_days(orders: LazyFrame) -> LazyFrame {
    orders.group_by([col("customer_id")]).agg([col("day").min().alias("first_order_day")])
}

/// The revenue rows of `kpi_monthly` for segment `all`: `revenue`, `orders`, `apv`,
/// `new_customers`, one row per reported month and metric.
pub fn monthly(context: &Context) -> PolarsResult<LazyFrame> {
    let orders = orders(context);
    let per_month = orders
        .clone()
        .group_by([col("month_index")])
        .agg([exact_sum(col("amount"), MONEY).alias("revenue"), len().cast(DataType::Int64).alias("orders")]);
    let new_customers = first_order_days(orders)
        .select([month_of_day(col("first_order_day")).alias("month_index")])
        .group_by([col("month_index")])
        .agg([len().cast(DataType::Int64).alias("new_customers")]);
    let wide = context
        .calendar
        .month_grid()
        .left_join(per_month, col("month_index"), col("month_index"))
        .left_join(new_customers, col("month_index"), col("month_index"))
        .with_columns([
            col("revenue").fill_null(lit(0.0)),
            col("orders").fill_null(lit(0i64)),
            col("new_customers").fill_null(lit(0i64)),
            lit("all").alias("segment"),
        ]);
    let rows = [
        metric_rows(&wide, "revenue", MetricValue::Plain(col("revenue"))),
        metric_rows(&wide, "orders", MetricValue::Plain(col("orders"))),
        metric_rows(&wide, "apv", MetricValue::Plain(mean_or_null(col("revenue"), col("orders")))),
        metric_rows(&wide, "new_customers", MetricValue::Plain(col("new_customers"))),
    ];
    concat(rows, UnionArgs::default())
}

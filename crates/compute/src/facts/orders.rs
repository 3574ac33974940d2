//! A bucket's orders with their local month and day (kpis.md: months and days are cut in the
//! reporting time zone), and each customer's first order day.

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::facts::Bucket;
use crate::time::calendar::{local_day, local_month};

/// The bucket's orders up to `as_of`: `event_id`, `customer_id`, `occurred_at`, `amount`,
/// `kind`, `month_index`, `day`.
pub fn orders(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    let zone = bucket.context.config.timezone;
    bucket.cached("orders", || {
        Ok(bucket.events_of(EventType::OrderPlaced).select([
            col("event_id"),
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

/// The distinct (customer, month) pairs with an order: `customer_id`, `month_index`.
pub fn customer_months(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    Ok(orders(bucket)?.select([col("customer_id"), col("month_index")]).unique(None, UniqueKeepStrategy::Any))
}

/// Per month of a bucket's orders: `revenue_units` (exact, see [`crate::expr::exact_units`])
/// and `orders`.
pub fn revenue_per_month(orders: LazyFrame) -> LazyFrame {
    orders.group_by([col("month_index")]).agg([
        crate::expr::exact_units(col("amount"), crate::expr::MONEY).alias("revenue_units"),
        len().cast(DataType::Int64).alias("orders"),
    ])
}

/// Per month: `new_customers`, the customers whose first order day falls in it.
pub fn new_customers_per_month(orders: LazyFrame) -> LazyFrame {
    first_order_days(orders)
        .select([crate::time::calendar::month_of_day(col("first_order_day")).alias("month_index")])
        .group_by([col("month_index")])
        .agg([len().cast(DataType::Int64).alias("new_customers")])
}

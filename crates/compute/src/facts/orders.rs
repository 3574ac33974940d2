//! A bucket's orders with their local month and day (kpis.md: months and days are cut in the
//! reporting time zone), and each customer's first order day.

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::expr::{MONEY, exact_units};
use crate::facts::{Bucket, Part};
use crate::time::calendar::{local_day, local_month, month_of_day};

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

/// Name of the part with each month's `revenue_units` (exact, see [`exact_units`]) and
/// `orders`, which the revenue, `clv_formula` and marketing families read.
pub const MONTHLY_ORDERS: &str = "monthly_orders";
/// Name of the part with each month's `new_customers`, the customers whose first order day
/// falls in it (revenue and marketing families).
pub const MONTHLY_NEW_CUSTOMERS: &str = "monthly_new_customers";

/// A bucket's monthly order parts, [`MONTHLY_ORDERS`] and [`MONTHLY_NEW_CUSTOMERS`]: computed
/// once for every family that reads them.
pub fn monthly_order_parts(bucket: &Bucket) -> PolarsResult<Vec<Part>> {
    let orders = orders(bucket)?;
    let per_month = orders
        .clone()
        .group_by([col("month_index")])
        .agg([exact_units(col("amount"), MONEY).alias("revenue_units"), len().cast(DataType::Int64).alias("orders")]);
    let new_customers = first_order_days(orders)
        .select([month_of_day(col("first_order_day")).alias("month_index")])
        .group_by([col("month_index")])
        .agg([len().cast(DataType::Int64).alias("new_customers")]);
    Ok(vec![
        Part { name: MONTHLY_ORDERS, keys: &["month_index"], frame: per_month },
        Part { name: MONTHLY_NEW_CUSTOMERS, keys: &["month_index"], frame: new_customers },
    ])
}

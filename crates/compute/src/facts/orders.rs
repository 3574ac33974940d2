//! A bucket's orders with their local month and day (kpis.md: months and days are cut in the
//! reporting time zone), and each customer's first order day.

use crmkpi_schema::EventType;
use polars::prelude::*;

use crate::expr::{MONEY, cum_sum_in_run, exact_units, run_ends, run_starts, runs_of};
use crate::facts::{Bucket, Part};
use crate::time::calendar::{local_day, local_month, month_of_day};

/// The bucket's orders up to `as_of`, sorted by `customer_id`, local `day` and `occurred_at`:
/// `event_id`, `customer_id`, `occurred_at`, `amount`, `kind`, `month_index`, `day`; and, from
/// the order, `customer_run` (a number per customer, see [`runs_of`]), `first_of_customer` and
/// `last_of_customer` (the customer's orders of its first and last local day), `first_of_day`
/// and `first_of_month` (the customer's first order of its local day and month),
/// `on_first_day` (an order of the customer's first order day). Sorted by the local day, not
/// only by time: where clocks go back across midnight (America/St_Johns until 2011), a later
/// order can fall on an earlier local day. Computed once per bucket.
pub fn orders(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    let zone = bucket.context.config.timezone;
    bucket.cached("orders", || {
        let first_of_customer = run_starts("customer_run");
        Ok(bucket
            .events_of(EventType::OrderPlaced)
            .select([
                col("event_id"),
                col("customer_id"),
                col("occurred_at"),
                col("amount"),
                col("kind"),
                local_month(col("occurred_at"), zone).alias("month_index"),
                local_day(col("occurred_at"), zone).alias("day"),
            ])
            .sort(["customer_id", "day", "occurred_at"], SortMultipleOptions::default())
            .with_column(runs_of("customer_id").alias("customer_run"))
            .with_columns([
                first_of_customer.clone().alias("first_of_customer"),
                run_ends("customer_run").alias("last_of_customer"),
                first_of_customer.clone().or(run_starts("day")).alias("first_of_day"),
                first_of_customer.or(run_starts("month_index")).alias("first_of_month"),
            ])
            .with_column(
                cum_sum_in_run(col("first_of_day").cast(DataType::Int64), "customer_run")
                    .eq(lit(1i64))
                    .alias("on_first_day"),
            ))
    })
}

/// Per customer with an order: `customer_id`, `first_order_day` (its earliest local day).
pub fn first_order_days(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    Ok(orders(bucket)?
        .filter(col("first_of_customer"))
        .select([col("customer_id"), col("day").alias("first_order_day")]))
}

/// Per customer with an order: `customer_id`, `first_order_at` (its earliest order instant,
/// which is not always on its earliest local day, see [`orders`]).
pub fn first_order_instants(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    Ok(orders(bucket)?
        .group_by([col("customer_run")])
        .agg([col("customer_id").first(), col("occurred_at").min().alias("first_order_at")])
        .select([col("customer_id"), col("first_order_at")]))
}

/// The distinct (customer, month) pairs with an order: `customer_run`, `customer_id`,
/// `month_index`.
pub fn customer_months(bucket: &Bucket) -> PolarsResult<LazyFrame> {
    Ok(orders(bucket)?.filter(col("first_of_month")).select([
        col("customer_run"),
        col("customer_id"),
        col("month_index"),
    ]))
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
    let per_month = orders(bucket)?
        .group_by([col("month_index")])
        .agg([exact_units(col("amount"), MONEY).alias("revenue_units"), len().cast(DataType::Int64).alias("orders")]);
    let new_customers = first_order_days(bucket)?
        .select([month_of_day(col("first_order_day")).alias("month_index")])
        .group_by([col("month_index")])
        .agg([len().cast(DataType::Int64).alias("new_customers")]);
    Ok(vec![
        Part { name: MONTHLY_ORDERS, keys: &["month_index"], frame: per_month },
        Part { name: MONTHLY_NEW_CUSTOMERS, keys: &["month_index"], frame: new_customers },
    ])
}

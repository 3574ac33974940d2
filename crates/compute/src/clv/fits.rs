//! The run's CLV model fits (a global step on top of the per-customer RFM facts) and each
//! customer's predictions from them.

use std::time::Instant;

use polars::prelude::*;

use crate::clv::{BgNbd, Fit, GammaGamma, Rfm, fit_bg_nbd, fit_gamma_gamma};
use crate::facts::Facts;
use crate::facts::customers::CUSTOMERS;

/// The fitted models of a run, with the number of customers each was fitted on.
pub struct ClvFits {
    /// BG/NBD over all customers (None: fewer than 2 customers).
    pub bg_nbd: Option<Fit<BgNbd>>,
    /// Gamma-Gamma over customers with repeat purchases (None: fewer than 2).
    pub gamma_gamma: Option<Fit<GammaGamma>>,
    /// Customers of the BG/NBD fit.
    pub bg_nbd_customers: usize,
    /// Customers of the Gamma-Gamma fit.
    pub gamma_gamma_customers: usize,
}

/// The model inputs of every customer (in the order of the merged customer facts, by
/// `customer_id`) and the fits.
pub struct CustomerModels {
    /// One RFM row per customer.
    pub rfm_rows: Vec<Rfm>,
    /// The fits.
    pub fits: ClvFits,
}

impl CustomerModels {
    /// Reads the customers' RFM rows from the merged facts and fits both models.
    pub fn fit(facts: &Facts) -> PolarsResult<CustomerModels> {
        let summaries = facts.entity_frame(CUSTOMERS)?;
        let column = |name: &str| -> PolarsResult<Vec<f64>> {
            Ok(summaries
                .column(name)?
                .cast(&DataType::Float64)?
                .f64()?
                .iter()
                .map(|value| value.unwrap_or(0.0))
                .collect())
        };
        let (frequency, recency, t, monetary) =
            (column("frequency")?, column("recency")?, column("t")?, column("monetary_value")?);
        let rfm_rows: Vec<Rfm> = (0..summaries.height())
            .map(|row| Rfm {
                frequency: frequency[row],
                recency: recency[row],
                t: t[row],
                monetary_value: monetary[row],
            })
            .collect();
        let spenders =
            rfm_rows.iter().filter(|customer| customer.frequency > 0.0 && customer.monetary_value > 0.0).count();
        let started = Instant::now();
        let bg_nbd = fit_bg_nbd(&rfm_rows);
        tracing::debug!(fit = ?bg_nbd, seconds = started.elapsed().as_secs_f64(), "BG/NBD fit");
        let started = Instant::now();
        let gamma_gamma = fit_gamma_gamma(&rfm_rows);
        tracing::debug!(fit = ?gamma_gamma, seconds = started.elapsed().as_secs_f64(), "Gamma-Gamma fit");
        let fits = ClvFits { bg_nbd, gamma_gamma, bg_nbd_customers: rfm_rows.len(), gamma_gamma_customers: spenders };
        Ok(CustomerModels { rfm_rows, fits })
    }
}

/// One month in model units: 4.345 for weekly units, 30 for daily units, else `30 / unit_days`.
fn month_in_units(unit_days: u32) -> f64 {
    match unit_days {
        7 => 4.345,
        1 => 30.0,
        other => 30.0 / f64::from(other),
    }
}

/// The value when it is finite.
pub fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// One customer's model predictions; null where a model is missing or a value not finite.
pub struct Prediction {
    /// BG/NBD expected purchases over the next `clv.horizon_units`.
    pub expected_purchases: Option<f64>,
    /// BG/NBD probability of being alive.
    pub p_alive: Option<f64>,
    /// Gamma-Gamma expected average order value.
    pub expected_avg_order_value: Option<f64>,
    /// Discounted CLV over `clv.horizon_months`.
    pub predicted_clv: Option<f64>,
}

/// BG/NBD `expected_purchases` (next `horizon_units`) and `p_alive`, Gamma-Gamma
/// `expected_avg_order_value`, and `predicted_clv` = Σ_{i=1..horizon_months}
/// `expected_avg_order_value * (E[X(i u)] - E[X((i - 1) u)]) / (1 + monthly_discount_rate)^i`.
pub fn predict(customer: &Rfm, fits: &ClvFits, clv: &crmkpi_schema::ClvConfig) -> Prediction {
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

/// Above this a + b, the fitted Beta distribution of BG/NBD dropout probabilities has a
/// standard deviation below 0.05% (the likelihood's supremum is at a + b -> infinity).
const DEGENERATE_CONCENTRATION: f64 = 1e6;

/// Warnings about the model fits: a model not fitted or not converged, and a BG/NBD fit at
/// the boundary where the dropout probability is the same for every customer.
pub fn warnings(fits: &ClvFits) -> Vec<String> {
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
    warnings
}

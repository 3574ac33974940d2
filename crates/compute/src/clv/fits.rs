//! The run's CLV model fits (a global step on top of the per-customer RFM facts) and each
//! customer's predictions from them.

use std::collections::HashMap;
use std::time::Instant;

use polars::prelude::*;
use rayon::prelude::*;

use crate::clv::{BgNbd, Fit, GammaGamma, PurchasesIfAlive, Rfm, RfmGroup, customers_of, fit_bg_nbd, fit_gamma_gamma};
use crate::facts::Facts;
use crate::facts::customers::CUSTOMERS;

/// The fitted models of a run, with the number of customers each was fitted on.
#[derive(Debug, Clone, PartialEq)]
pub struct ClvFits {
    /// BG/NBD over all customers (None: fewer than 2 customers).
    pub bg_nbd: Option<Fit<BgNbd>>,
    /// Gamma-Gamma over customers with repeat purchases (None: fewer than 2).
    pub gamma_gamma: Option<Fit<GammaGamma>>,
    /// Customers of the BG/NBD fit.
    pub bg_nbd_customers: u64,
    /// Customers of the Gamma-Gamma fit.
    pub gamma_gamma_customers: u64,
}

impl ClvFits {
    /// Fits both models to the run's customers, grouped (see [`RfmGroup`]).
    pub fn fit(customers: &[RfmGroup]) -> ClvFits {
        let spenders: u64 = customers
            .iter()
            .filter(|group| group.rfm.frequency > 0.0 && group.rfm.monetary_value > 0.0)
            .map(|group| group.customers)
            .sum();
        let started = Instant::now();
        let bg_nbd = fit_bg_nbd(customers);
        tracing::debug!(fit = ?bg_nbd, seconds = started.elapsed().as_secs_f64(), "BG/NBD fit");
        let started = Instant::now();
        let gamma_gamma = fit_gamma_gamma(customers);
        tracing::debug!(fit = ?gamma_gamma, seconds = started.elapsed().as_secs_f64(), "Gamma-Gamma fit");
        ClvFits { bg_nbd, gamma_gamma, bg_nbd_customers: customers_of(customers), gamma_gamma_customers: spenders }
    }
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
        let rfm_rows = rfm_rows(facts.entity_frame(CUSTOMERS)?)?;
        let fits = ClvFits::fit(&RfmGroup::of_customers(&rfm_rows));
        Ok(CustomerModels { rfm_rows, fits })
    }

    /// The customers' RFM rows from the (merged or partial) facts, with fits made elsewhere:
    /// what a Spark task predicts with, the fits made once on the driver.
    pub fn with_fits(facts: &Facts, fits: ClvFits) -> PolarsResult<CustomerModels> {
        Ok(CustomerModels { rfm_rows: rfm_rows(facts.entity_frame(CUSTOMERS)?)?, fits })
    }
}

/// One RFM row per customer of a frame of per-customer facts, in its order.
pub fn rfm_rows(summaries: &DataFrame) -> PolarsResult<Vec<Rfm>> {
    let column = |name: &str| -> PolarsResult<Vec<f64>> {
        Ok(summaries.column(name)?.cast(&DataType::Float64)?.f64()?.iter().map(|value| value.unwrap_or(0.0)).collect())
    };
    let (frequency, recency, t, monetary) =
        (column("frequency")?, column("recency")?, column("t")?, column("monetary_value")?);
    Ok((0..summaries.height())
        .map(|row| Rfm { frequency: frequency[row], recency: recency[row], t: t[row], monetary_value: monetary[row] })
        .collect())
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

/// Every customer's predictions (in the order of `customers`): BG/NBD `expected_purchases`
/// (next `horizon_units`) and `p_alive`, Gamma-Gamma `expected_avg_order_value`, and
/// `predicted_clv` = Σ_{i=1..horizon_months}
/// `expected_avg_order_value * (E[X(i u)] - E[X((i - 1) u)]) / (1 + monthly_discount_rate)^i`.
///
/// E[X(t)]'s factors before P(alive) depend on the frequency and the age `T` only (whole days
/// in units), so customers alike in both share them: they are computed once per such group (on
/// the 10-million-event benchmark lake, 7,330 groups of 526,834 customers), with the same
/// values as customer by customer, and held for one group at a time.
pub fn predict_all(customers: &[Rfm], fits: &ClvFits, clv: &crmkpi_schema::ClvConfig) -> Vec<Prediction> {
    let bg = fits.bg_nbd.as_ref().map(|fit| &fit.params);
    let month = month_in_units(clv.unit_days);
    // The horizons: `horizon_units`, then month 1..=horizon_months.
    let horizons: Vec<f64> = std::iter::once(f64::from(clv.horizon_units))
        .chain((1..=clv.horizon_months).map(|i| f64::from(i) * month))
        .collect();
    let mut alike: Vec<Vec<usize>> = Vec::new();
    let mut group_of: HashMap<(u64, u64), usize> = HashMap::new();
    for (index, customer) in customers.iter().enumerate() {
        let next = alike.len();
        let group = *group_of.entry((customer.frequency.to_bits(), customer.t.to_bits())).or_insert(next);
        if group == next {
            alike.push(Vec::new());
        }
        alike[group].push(index);
    }
    let mut predictions: Vec<(usize, Prediction)> = alike
        .par_iter()
        .flat_map_iter(|group| {
            // Every customer of the group has this frequency and age, bit for bit.
            let first = &customers[group[0]];
            let if_alive: Option<(&BgNbd, Vec<PurchasesIfAlive>)> = bg.map(|model| {
                (model, horizons.iter().map(|&t| model.purchases_if_alive(t, first.frequency, first.t)).collect())
            });
            let model = if_alive.as_ref().map(|(model, if_alive)| (*model, if_alive.as_slice()));
            group.iter().map(|&index| (index, predict(&customers[index], model, fits, clv))).collect::<Vec<_>>()
        })
        .collect();
    predictions.sort_unstable_by_key(|&(index, _)| index);
    predictions.into_iter().map(|(_, prediction)| prediction).collect()
}

/// One customer's predictions, with the BG/NBD model and E[X(t)]'s factors before P(alive) at
/// the horizons of [`predict_all`].
fn predict(
    customer: &Rfm,
    bg: Option<(&BgNbd, &[PurchasesIfAlive])>,
    fits: &ClvFits,
    clv: &crmkpi_schema::ClvConfig,
) -> Prediction {
    let expected_avg_order_value = fits
        .gamma_gamma
        .as_ref()
        .and_then(|fit| fit.params.expected_average_value(customer.frequency, customer.monetary_value))
        .and_then(finite);
    let Some((model, if_alive)) = bg else {
        return Prediction { expected_purchases: None, p_alive: None, expected_avg_order_value, predicted_clv: None };
    };
    let p_alive = model.p_alive(customer);
    let predicted_clv = expected_avg_order_value.and_then(|value| {
        let (mut previous, mut total) = (0.0, 0.0);
        for (i, month_if_alive) in (1..=clv.horizon_months).zip(&if_alive[1..]) {
            let upto = model.conditional_expected_purchases_from(month_if_alive, p_alive, customer);
            let discount = (1.0 + clv.monthly_discount_rate).powi(i32::try_from(i).unwrap_or(i32::MAX));
            total += value * (upto - previous) / discount;
            previous = upto;
        }
        finite(total)
    });
    Prediction {
        expected_purchases: finite(model.conditional_expected_purchases_from(&if_alive[0], p_alive, customer)),
        p_alive: finite(p_alive),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fit<P>(params: P) -> Option<Fit<P>> {
        Some(Fit { params, log_likelihood: 0.0, iterations: 1, converged: true })
    }

    /// The predictions customer by customer, as `predict_all` made them before it shared the
    /// factors of alike customers.
    fn one_by_one(customer: &Rfm, fits: &ClvFits, clv: &crmkpi_schema::ClvConfig) -> [Option<f64>; 4] {
        let model = fits.bg_nbd.as_ref().map(|fit| fit.params).expect("a BG/NBD fit");
        let value = fits
            .gamma_gamma
            .as_ref()
            .and_then(|fit| fit.params.expected_average_value(customer.frequency, customer.monetary_value))
            .and_then(finite);
        let predicted_clv = value.and_then(|value| {
            let (mut previous, mut total) = (0.0, 0.0);
            for i in 1..=clv.horizon_months {
                let upto = model.conditional_expected_purchases(f64::from(i) * month_in_units(clv.unit_days), customer);
                total += value * (upto - previous) / (1.0 + clv.monthly_discount_rate).powi(i as i32);
                previous = upto;
            }
            finite(total)
        });
        [
            finite(model.conditional_expected_purchases(f64::from(clv.horizon_units), customer)),
            finite(model.p_alive(customer)),
            value,
            predicted_clv,
        ]
    }

    #[test]
    fn customers_alike_in_frequency_and_age_share_factors_with_the_same_values() {
        let clv = crmkpi_schema::ClvConfig::default();
        // Customers that share (frequency, T) with different recencies and values, and some
        // that share nothing; the paper's parameters and a fit without dropout heterogeneity
        // (a + b = 5e8), where E[X(t)] falls back to the direct form.
        let mut customers = Vec::new();
        for frequency in [0.0, 1.0, 2.0, 7.0] {
            for t in [3.0, 10.0, 52.0 + 1.0 / 7.0] {
                for recency in [0.0_f64, 1.0, 2.5, t] {
                    let recency = if frequency == 0.0 { 0.0 } else { recency.min(t) };
                    customers.push(Rfm { frequency, recency, t, monetary_value: 10.0 + recency });
                }
            }
        }
        for params in
            [BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 }, BgNbd { r: 0.5, alpha: 3.0, a: 1.03e8, b: 3.97e8 }]
        {
            let degenerate = params.a > 1e6;
            let if_alive = params.purchases_if_alive(52.0, 2.0, 10.0);
            assert!(
                matches!(if_alive, PurchasesIfAlive::Factors { direct, .. } if direct.is_some() == degenerate),
                "{params:?}: {if_alive:?}"
            );
            let fits = ClvFits {
                bg_nbd: fit(params),
                gamma_gamma: fit(GammaGamma { p: 6.25, q: 3.74, v: 15.44 }),
                bg_nbd_customers: customers.len() as u64,
                gamma_gamma_customers: customers.len() as u64,
            };
            let shared = predict_all(&customers, &fits, &clv);
            assert_eq!(shared.len(), customers.len());
            for (customer, prediction) in customers.iter().zip(&shared) {
                let got = [
                    prediction.expected_purchases,
                    prediction.p_alive,
                    prediction.expected_avg_order_value,
                    prediction.predicted_clv,
                ];
                let expected = one_by_one(customer, &fits, &clv);
                assert!(expected.iter().all(Option::is_some), "{customer:?} {params:?}: {expected:?}");
                assert_eq!(got.map(|v| v.map(f64::to_bits)), expected.map(|v| v.map(f64::to_bits)), "{customer:?}");
            }
        }
    }

    #[test]
    fn no_bg_nbd_fit_predicts_only_the_order_value() {
        let customers = [Rfm { frequency: 2.0, recency: 3.0, t: 5.0, monetary_value: 20.0 }];
        let fits = ClvFits {
            bg_nbd: None,
            gamma_gamma: fit(GammaGamma { p: 6.25, q: 3.74, v: 15.44 }),
            bg_nbd_customers: 1,
            gamma_gamma_customers: 1,
        };
        let [prediction] = predict_all(&customers, &fits, &crmkpi_schema::ClvConfig::default())
            .try_into()
            .unwrap_or_else(|_| panic!("one prediction"));
        assert_eq!((prediction.expected_purchases, prediction.p_alive, prediction.predicted_clv), (None, None, None));
        assert!(prediction.expected_avg_order_value.is_some_and(f64::is_finite));
    }
}

//! Customer-lifetime-value models: the BG/NBD purchase model (Fader, Hardie & Lee 2005,
//! "Counting your customers the easy way") and the Gamma-Gamma spend model (Fader, Hardie &
//! Lee 2005, "RFM and CLV"), with the same formulas as the Python `lifetimes` package
//! (`BetaGeoFitter` and `GammaGammaFitter`).
//!
//! Likelihoods are evaluated in log-space: the BG/NBD `ln(A3 + d·A4)` term by log-sum-exp, so
//! customers with very large frequencies neither overflow nor lose precision. The BG/NBD
//! likelihood is taken once per group of customers with equal (x, t_x, T); its parts that
//! depend on the frequency only (ratios of Γ and B functions) once per distinct frequency, as
//! running sums that stay exact when a and b are huge. The Gamma-Gamma ln Γ and ψ values are
//! likewise taken once per distinct frequency (ln Γ from `libm`, ψ in `special`).
//!
//! Maximum-likelihood fits use a self-contained BFGS optimiser (analytic gradients,
//! backtracking Armijo line search, several starting points, and a final Newton polish with a
//! finite-difference Hessian of the analytic gradient). BG/NBD is fitted over (ln r, ln alpha,
//! logit of the mean dropout probability a/(a+b), ln of the concentration a+b), in which the
//! boundary optimum of data without dropout heterogeneity is reached along one axis;
//! Gamma-Gamma over ln(p, q, v). Sums over customers run in parallel with `rayon` for large
//! inputs, in fixed chunks so results are deterministic. The Gauss hypergeometric function
//! [`hyp2f1`] of the conditional expectation is implemented in `special` by series summation with
//! Pfaff/Euler transformations (and the `1 - z` connection formula very close to `z = 1`).
//!
//! Layout: `special` (ln Γ, ψ, 2F1), `optimise` (BFGS, Newton polish, multistart), one module
//! per model (`bg_nbd`, `gamma_gamma`); the shared RFM input, fit result and deterministic
//! parallel sum are here.

use rayon::prelude::*;

mod bg_nbd;
pub mod fits;
mod gamma_gamma;
mod optimise;
mod special;
#[cfg(test)]
pub(crate) mod test_support;

pub use bg_nbd::{BgNbd, PurchasesIfAlive, fit_bg_nbd};
pub use gamma_gamma::{GammaGamma, fit_gamma_gamma};
pub use special::hyp2f1;

/// One customer's RFM summary in model time units.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rfm {
    /// Number of repeat purchases `x` (purchases after the first one).
    pub frequency: f64,
    /// Time of the last repeat purchase `t_x`, measured from the first purchase (0 when `x = 0`).
    pub recency: f64,
    /// Length of the observation period `T`, measured from the first purchase.
    pub t: f64,
    /// Mean value of the repeat purchases (only used by the Gamma-Gamma model).
    pub monetary_value: f64,
}

/// Customers with the same RFM summary, counted: what the fits read.
///
/// [`RfmGroup::merge`] sorts groups by (frequency, recency, T, monetary value) and adds up
/// equal ones, so the fits see the same input however the customers were split: one run over
/// all of them, or Spark tasks whose groups the driver merges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RfmGroup {
    /// The customers' RFM summary.
    pub rfm: Rfm,
    /// How many customers have it.
    pub customers: u64,
}

impl RfmGroup {
    /// The groups of some customers, merged.
    pub fn of_customers(customers: &[Rfm]) -> Vec<RfmGroup> {
        RfmGroup::merge(customers.iter().map(|rfm| RfmGroup { rfm: *rfm, customers: 1 }))
    }

    /// Groups sorted by their summary, equal summaries (bit for bit) added up.
    pub fn merge(groups: impl IntoIterator<Item = RfmGroup>) -> Vec<RfmGroup> {
        let mut groups: Vec<RfmGroup> = groups.into_iter().collect();
        groups.sort_by(|u, v| u.key_cmp(v));
        let mut merged: Vec<RfmGroup> = Vec::with_capacity(groups.len());
        for group in groups {
            match merged.last_mut() {
                Some(last) if last.key_cmp(&group).is_eq() => last.customers += group.customers,
                _ => merged.push(group),
            }
        }
        merged
    }

    fn key_cmp(&self, other: &RfmGroup) -> std::cmp::Ordering {
        let (u, v) = (&self.rfm, &other.rfm);
        u.frequency
            .total_cmp(&v.frequency)
            .then(u.recency.total_cmp(&v.recency))
            .then(u.t.total_cmp(&v.t))
            .then(u.monetary_value.total_cmp(&v.monetary_value))
    }
}

/// The number of customers of some groups.
pub fn customers_of(groups: &[RfmGroup]) -> u64 {
    groups.iter().map(|group| group.customers).sum()
}

/// Result of a maximum-likelihood fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit<P> {
    /// The fitted parameters.
    pub params: P,
    /// Total log-likelihood (sum over the customers used) at `params`.
    pub log_likelihood: f64,
    /// Optimiser iterations (BFGS steps plus Newton polish steps) of the selected run.
    pub iterations: u64,
    /// Whether the optimiser's stopping criterion (max-norm of the gradient of the mean negative
    /// log-likelihood in the optimiser's coordinates below `1e-8`) was met within budget.
    pub converged: bool,
}

/// Inputs at least this long are summed in parallel.
const PARALLEL_THRESHOLD: usize = 4096;
/// Fixed chunk length for the parallel sum (keeps the summation order deterministic).
const CHUNK_LEN: usize = 1024;

/// Σ f(item) component-wise, in parallel over fixed chunks when the input is large.
fn sum_terms<T: Sync, const K: usize>(items: &[T], f: impl Fn(&T) -> [f64; K] + Sync) -> [f64; K] {
    let chunk_sum = |chunk: &[T]| -> [f64; K] {
        let mut acc = [0.0; K];
        for item in chunk {
            let v = f(item);
            for (a, x) in acc.iter_mut().zip(v) {
                *a += x;
            }
        }
        acc
    };
    if items.len() < PARALLEL_THRESHOLD {
        return chunk_sum(items);
    }
    let partials: Vec<[f64; K]> = items.par_chunks(CHUNK_LEN).map(chunk_sum).collect();
    let mut acc = [0.0; K];
    for p in partials {
        for (a, x) in acc.iter_mut().zip(p) {
            *a += x;
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_reject_too_little_data() {
        let one = [Rfm { frequency: 1.0, recency: 1.0, t: 2.0, monetary_value: 3.0 }];
        assert!(fit_bg_nbd(&RfmGroup::of_customers(&one)).is_none());
        assert!(fit_bg_nbd(&[]).is_none());
        assert!(fit_gamma_gamma(&RfmGroup::of_customers(&one)).is_none());
        let with_zero = [one[0], Rfm { frequency: 0.0, recency: 0.0, t: 2.0, monetary_value: 0.0 }];
        assert!(fit_gamma_gamma(&RfmGroup::of_customers(&with_zero)).is_none());
        let bad = [one[0], Rfm { frequency: 1.0, recency: 3.0, t: 2.0, monetary_value: 1.0 }];
        assert!(fit_bg_nbd(&RfmGroup::of_customers(&bad)).is_none());
    }

    #[test]
    fn groups_merge_equal_summaries_in_any_order() {
        let rfm = |frequency: f64, monetary_value: f64| Rfm { frequency, recency: frequency, t: 9.0, monetary_value };
        let customers = [rfm(2.0, 5.0), rfm(0.0, 0.0), rfm(2.0, 5.0), rfm(2.0, 4.0), rfm(0.0, 0.0), rfm(2.0, 5.0)];
        let groups = RfmGroup::of_customers(&customers);
        let expected = [
            RfmGroup { rfm: rfm(0.0, 0.0), customers: 2 },
            RfmGroup { rfm: rfm(2.0, 4.0), customers: 1 },
            RfmGroup { rfm: rfm(2.0, 5.0), customers: 3 },
        ];
        assert_eq!(groups, expected);
        // Split in two (as two Spark tasks would), grouped apart and merged: the same groups.
        let (first, second) = customers.split_at(2);
        let merged = RfmGroup::merge(RfmGroup::of_customers(second).into_iter().chain(RfmGroup::of_customers(first)));
        assert_eq!(merged, expected);
        assert_eq!(customers_of(&merged), 6);
    }

    #[test]
    fn grouped_customers_fit_as_the_same_customers_one_by_one() {
        // Customers repeated (as many are in a real lake): a fit of their groups equals a fit of
        // the same groups of weight 1 listed once per customer (the likelihood is a sum over
        // customers either way).
        let mut customers = Vec::new();
        for (index, frequency) in [0.0, 1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 5.0, 8.0].into_iter().enumerate() {
            let t = 20.0 + index as f64;
            let recency = if frequency == 0.0 { 0.0 } else { t - 3.0 };
            let value = Rfm { frequency, recency, t, monetary_value: 10.0 + 2.0 * frequency };
            customers.extend([value, value]);
        }
        let grouped = RfmGroup::of_customers(&customers);
        let one_by_one: Vec<RfmGroup> = customers.iter().map(|rfm| RfmGroup { rfm: *rfm, customers: 1 }).collect();
        assert!(grouped.len() < one_by_one.len());
        let (bg, bg_each) = (fit_bg_nbd(&grouped).expect("fit"), fit_bg_nbd(&one_by_one).expect("fit"));
        let (gg, gg_each) = (fit_gamma_gamma(&grouped).expect("fit"), fit_gamma_gamma(&one_by_one).expect("fit"));
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
        for (a, b) in [
            (bg.params.r, bg_each.params.r),
            (bg.params.alpha, bg_each.params.alpha),
            (bg.params.a, bg_each.params.a),
            (bg.params.b, bg_each.params.b),
            (bg.log_likelihood, bg_each.log_likelihood),
            (gg.params.p, gg_each.params.p),
            (gg.params.q, gg_each.params.q),
            (gg.params.v, gg_each.params.v),
            (gg.log_likelihood, gg_each.log_likelihood),
        ] {
            assert!(close(a, b), "{a} against {b}");
        }
    }
}

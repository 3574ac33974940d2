//! The BG/NBD purchase model (Fader, Hardie & Lee 2005, "Counting your customers the easy way"),
//! as lifetimes' `BetaGeoFitter`: parameters, likelihood, predictions and fit.

use super::optimise::minimize_multistart;
use super::special::hyp2f1;
use super::{Fit, Rfm, RfmGroup, customers_of, sum_terms};

/// The factors of E[X(t) | x, t_x, T] before P(alive | x, t_x, T), for one `t`, frequency and
/// age (see [`BgNbd::purchases_if_alive`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PurchasesIfAlive {
    /// The expectation whatever P(alive): 0 for `t = 0`, NaN for a negative or NaN `t`.
    Fixed(f64),
    /// The transformed form's factors, and the direct form's when those overflow.
    Factors {
        /// The horizon.
        t: f64,
        /// (a + b + x - 1) / (a - 1) (1 - (1 - z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)).
        transformed: f64,
        /// The direct form's factors, when `transformed` is not finite.
        direct: Option<f64>,
    },
}

/// BG/NBD parameters: purchase rate λ ~ Gamma(shape `r`, rate `alpha`), dropout probability
/// p ~ Beta(`a`, `b`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbd {
    /// Shape of the Gamma distribution of purchase rates.
    pub r: f64,
    /// Rate (inverse scale) of the Gamma distribution of purchase rates, in 1 / time unit.
    pub alpha: f64,
    /// First shape parameter of the Beta distribution of dropout probabilities.
    pub a: f64,
    /// Second shape parameter of the Beta distribution of dropout probabilities.
    pub b: f64,
}

/// Customers with the same (frequency, recency, T), counted: the BG/NBD likelihood is evaluated
/// once per group.
#[derive(Debug, Clone, Copy)]
struct BgGroup {
    /// Index of the group's frequency in [`BgData::frequencies`].
    frequency_index: usize,
    /// Indices of the group's recency and T in [`BgData::times`].
    recency_index: usize,
    t_index: usize,
    frequency: f64,
    recency: f64,
    t: f64,
    customers: f64,
}

/// The BG/NBD input as the likelihood reads it.
struct BgData {
    /// The distinct frequencies, ascending (whole numbers).
    frequencies: Vec<f64>,
    /// The distinct recencies and ages T, ascending: far fewer than the groups (whole days in
    /// `unit_days` units), so ln(alpha + time) is taken once per time, not per group.
    times: Vec<f64>,
    groups: Vec<BgGroup>,
}

impl BgData {
    /// Groups the customers by (frequency, recency, T); None when a record is invalid (see
    /// [`valid_bg_record`]).
    fn new(customers: &[RfmGroup]) -> Option<BgData> {
        if !customers.iter().all(|group| valid_bg_record(&group.rfm)) {
            return None;
        }
        let mut keys: Vec<(f64, f64, f64, f64)> = customers
            .iter()
            .map(|group| (group.rfm.frequency, group.rfm.recency, group.rfm.t, group.customers as f64))
            .collect();
        keys.sort_by(|u, v| u.0.total_cmp(&v.0).then(u.1.total_cmp(&v.1)).then(u.2.total_cmp(&v.2)));
        let mut frequencies: Vec<f64> = Vec::new();
        let mut groups: Vec<BgGroup> = Vec::new();
        for (frequency, recency, t, customers) in keys {
            match groups.last_mut() {
                Some(last) if last.frequency == frequency && last.recency == recency && last.t == t => {
                    last.customers += customers;
                }
                _ => {
                    if frequencies.last() != Some(&frequency) {
                        frequencies.push(frequency);
                    }
                    groups.push(BgGroup {
                        frequency_index: frequencies.len() - 1,
                        recency_index: 0,
                        t_index: 0,
                        frequency,
                        recency,
                        t,
                        customers,
                    });
                }
            }
        }
        let mut times: Vec<f64> = groups.iter().flat_map(|group| [group.recency, group.t]).collect();
        times.sort_by(f64::total_cmp);
        times.dedup_by(|u, v| u.total_cmp(v).is_eq());
        let index_of = |time: f64| times.binary_search_by(|probe| probe.total_cmp(&time)).ok();
        for group in &mut groups {
            group.recency_index = index_of(group.recency)?;
            group.t_index = index_of(group.t)?;
        }
        Some(BgData { frequencies, times, groups })
    }
}

/// The parts of a customer's log-likelihood that depend on the frequency x and the parameters
/// only, with their derivatives with respect to ln r, ln a and ln b.
#[derive(Debug, Clone, Copy, Default)]
struct FrequencyTerms {
    /// ln Γ(r + x) - ln Γ(r) = Σ_{k<x} ln(r + k).
    ln_gamma_ratio: f64,
    /// r ∂/∂r of `ln_gamma_ratio`.
    d_ln_r: f64,
    /// ln B(a, b + x) - ln B(a, b) = -Σ_{k<x} ln(1 + a / (b + k)).
    ln_beta_ratio: f64,
    /// a ∂/∂a of `ln_beta_ratio`.
    d_ln_a: f64,
    /// b ∂/∂b of `ln_beta_ratio`.
    d_ln_b: f64,
    /// ln(b + x - 1) (the dropout term's denominator; only read when x > 0).
    ln_b_x1: f64,
    /// b / (b + x - 1), its derivative with respect to ln b.
    d_ln_b_x1: f64,
}

/// [`FrequencyTerms`] for each of the ascending whole-number `frequencies`, by running sums over
/// k = 0, 1, … (no differences of large ln Γ values, so they stay exact when a and b are huge).
fn frequency_terms(p: &BgNbd, frequencies: &[f64]) -> Vec<FrequencyTerms> {
    let BgNbd { r, a, b, .. } = *p;
    let mut sums = FrequencyTerms::default();
    let mut k = 0.0;
    frequencies
        .iter()
        .map(|&x| {
            while k < x {
                sums.ln_gamma_ratio += (r + k).ln();
                sums.d_ln_r += r / (r + k);
                sums.ln_beta_ratio -= (a / (b + k)).ln_1p();
                sums.d_ln_a -= a / (a + b + k);
                sums.d_ln_b += a * b / ((b + k) * (a + b + k));
                k += 1.0;
            }
            let b_x1 = b + x.max(1.0) - 1.0;
            FrequencyTerms { ln_b_x1: b_x1.ln(), d_ln_b_x1: b / b_x1, ..sums }
        })
        .collect()
}

impl BgNbd {
    /// Σ over groups of customers × [log-likelihood, and its derivatives with respect to
    /// ln r, ln alpha, ln a, ln b] (lifetimes' `BetaGeoFitter._negative_log_likelihood`,
    /// negated, unweighted). ln(A3 + [x > 0] A4) is taken by log-sum-exp.
    fn log_likelihood_terms(&self, data: &BgData) -> [f64; 5] {
        let BgNbd { r, alpha, a, .. } = *self;
        let terms = frequency_terms(self, &data.frequencies);
        let (ln_alpha, ln_a) = (alpha.ln(), a.ln());
        let ln_alpha_plus: Vec<f64> = data.times.iter().map(|time| (alpha + time).ln()).collect();
        sum_terms(&data.groups, |group| {
            let ft = &terms[group.frequency_index];
            let x = group.frequency;
            let ln_at = ln_alpha_plus[group.t_index];
            let a3 = -(r + x) * ln_at;
            let (lse, w4, ln_atx, inv_atx) = if x > 0.0 {
                let ln_atx = ln_alpha_plus[group.recency_index];
                let a4 = ln_a - ft.ln_b_x1 - (r + x) * ln_atx;
                let m = a3.max(a4);
                let (e3, e4) = ((a3 - m).exp(), (a4 - m).exp());
                (m + (e3 + e4).ln(), e4 / (e3 + e4), ln_atx, 1.0 / (alpha + group.recency))
            } else {
                (a3, 0.0, 0.0, 0.0)
            };
            let w3 = 1.0 - w4;
            let ll = ft.ln_gamma_ratio + r * ln_alpha + ft.ln_beta_ratio + lse;
            let d_r = ft.d_ln_r + r * (ln_alpha - w3 * ln_at - w4 * ln_atx);
            let d_alpha = r - (r + x) * alpha * (w3 / (alpha + group.t) + w4 * inv_atx);
            let d_a = ft.d_ln_a + w4;
            let d_b = ft.d_ln_b - w4 * ft.d_ln_b_x1;
            [ll, d_r, d_alpha, d_a, d_b].map(|value| value * group.customers)
        })
    }

    /// Total log-likelihood (sum over customers) at these parameters; NaN when a record is
    /// invalid (see [`fit_bg_nbd`]).
    pub fn log_likelihood(&self, customers: &[Rfm]) -> f64 {
        BgData::new(&RfmGroup::of_customers(customers)).map_or(f64::NAN, |data| self.log_likelihood_terms(&data)[0])
    }

    /// E[X(t) | x, t_x, T]: expected purchases in the next `t` units (lifetimes'
    /// conditional_expected_number_of_purchases_up_to_time).
    ///
    /// Uses the Euler-transformed form (1 - z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z)
    /// = (1 - z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), z = t / (alpha + T + t), which is what
    /// lifetimes falls back to when the direct form overflows; when the transformed form
    /// overflows in turn (very large a and b), the direct one. Returns 0 for `t = 0` and NaN for
    /// negative `t` (and, as in lifetimes, for `a = 1` exactly).
    pub fn conditional_expected_purchases(&self, t: f64, c: &Rfm) -> f64 {
        self.conditional_expected_purchases_from(&self.purchases_if_alive(t, c.frequency, c.t), self.p_alive(c), c)
    }

    /// The factors of [`Self::conditional_expected_purchases`] before P(alive): they depend on
    /// `t`, the frequency and the age `T` only, so customers alike in those share them.
    pub fn purchases_if_alive(&self, t: f64, frequency: f64, age: f64) -> PurchasesIfAlive {
        if t == 0.0 {
            return PurchasesIfAlive::Fixed(0.0);
        }
        if t.is_nan() || t < 0.0 {
            return PurchasesIfAlive::Fixed(f64::NAN);
        }
        let BgNbd { r, alpha, a, b } = *self;
        let z = t / (alpha + age + t);
        let ln_1mz = -(t / (alpha + age)).ln_1p(); // ln((alpha + T) / (alpha + T + t))
        let cc = a + b + frequency - 1.0;
        let f = hyp2f1(a + b - 1.0 - r, a - 1.0, cc, z);
        let transformed = cc / (a - 1.0) * -((a - 1.0) * ln_1mz + f.ln()).exp_m1();
        let direct = (!transformed.is_finite()).then(|| self.direct_purchases_if_alive(t, frequency, age));
        PurchasesIfAlive::Factors { t, transformed, direct }
    }

    /// [`Self::conditional_expected_purchases`] of customer `c` from its factors before P(alive)
    /// (from [`Self::purchases_if_alive`] with the customer's frequency and age) and its
    /// `p_alive` ([`Self::p_alive`]).
    pub fn conditional_expected_purchases_from(&self, if_alive: &PurchasesIfAlive, p_alive: f64, c: &Rfm) -> f64 {
        let (t, transformed, direct) = match *if_alive {
            PurchasesIfAlive::Fixed(value) => return value,
            PurchasesIfAlive::Factors { t, transformed, direct } => (t, transformed, direct),
        };
        // lifetimes divides by 1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x),
        // which is exactly 1 / p_alive.
        let with_p_alive = transformed * p_alive;
        if with_p_alive.is_finite() {
            return with_p_alive;
        }
        direct.unwrap_or_else(|| self.direct_purchases_if_alive(t, c.frequency, c.t)) * p_alive
    }

    /// The direct form's factors before P(alive), for very large a and b (data without dropout
    /// heterogeneity), where the transformed series overflows while the direct one, whose terms
    /// shrink like (b / (a + b) z)^k, converges: 1 - (1 - z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z).
    fn direct_purchases_if_alive(&self, t: f64, frequency: f64, age: f64) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let x = frequency;
        let z = t / (alpha + age + t);
        let ln_1mz = -(t / (alpha + age)).ln_1p();
        let cc = a + b + x - 1.0;
        let direct = hyp2f1(r + x, b + x, cc, z);
        cc / (a - 1.0) * -((r + x) * ln_1mz + direct.ln()).exp_m1()
    }

    /// P(alive | x, t_x, T) (lifetimes' conditional_probability_alive); 1 when frequency = 0.
    pub fn p_alive(&self, c: &Rfm) -> f64 {
        let x = c.frequency;
        if x == 0.0 {
            return 1.0;
        }
        let BgNbd { r, alpha, a, b } = *self;
        let log_div = (r + x) * ((alpha + c.t) / (alpha + c.recency)).ln() + (a / (b + x.max(1.0) - 1.0)).ln();
        1.0 / (1.0 + log_div.exp())
    }
}

fn valid_bg_record(c: &Rfm) -> bool {
    c.frequency.is_finite()
        && c.recency.is_finite()
        && c.t.is_finite()
        && c.frequency >= 0.0
        && c.frequency.fract() == 0.0
        && c.recency >= 0.0
        && c.recency <= c.t
}

/// ln(1 + e^s) without overflow.
fn softplus(s: f64) -> f64 {
    s.max(0.0) + (-s.abs()).exp().ln_1p()
}

/// BG/NBD parameters from the optimiser's coordinates (ln r, ln alpha, logit μ, ln κ), where
/// μ = a / (a + b) is the mean dropout probability and κ = a + b the Beta's concentration.
/// Data whose dropout probabilities do not vary across customers push κ to infinity with μ
/// fixed; in these coordinates that is one axis with a vanishing gradient, which the optimiser
/// follows to convergence instead of crawling along the a/b ridge.
fn bg_params(theta: &[f64; 4]) -> BgNbd {
    let [ln_r, ln_alpha, logit_mean, ln_concentration] = *theta;
    BgNbd {
        r: ln_r.exp(),
        alpha: ln_alpha.exp(),
        a: (ln_concentration - softplus(-logit_mean)).exp(),
        b: (ln_concentration - softplus(logit_mean)).exp(),
    }
}

/// Optimiser coordinates of BG/NBD parameters (inverse of [`bg_params`]).
fn bg_coordinates(p: &BgNbd) -> [f64; 4] {
    [p.r.ln(), p.alpha.ln(), p.a.ln() - p.b.ln(), (p.a + p.b).ln()]
}

/// The fit's objective at optimiser coordinates `theta` (see [`bg_params`]): the negative mean
/// log-likelihood and its gradient.
fn bg_objective(data: &BgData, theta: &[f64; 4]) -> (f64, [f64; 4]) {
    let p = bg_params(theta);
    let n: f64 = data.groups.iter().map(|group| group.customers).sum();
    let [ll, d_r, d_alpha, d_a, d_b] = p.log_likelihood_terms(data);
    let mean = p.a / (p.a + p.b);
    // ln a = ln κ + ln μ and ln b = ln κ + ln(1 - μ): chain rule to logit μ and ln κ.
    let d_logit_mean = (1.0 - mean) * d_a - mean * d_b;
    (-ll / n, [-d_r / n, -d_alpha / n, -d_logit_mean / n, -(d_a + d_b) / n])
}

/// Maximum-likelihood fit over all customers (each weight 1). None when fewer than 2 customers.
///
/// Also None when a record is invalid (non-finite field, negative or fractional frequency,
/// negative recency, or recency > T) or no starting point has a finite likelihood. The negative
/// mean log-likelihood is minimised over (ln r, ln alpha, logit a / (a + b), ln(a + b)) from
/// several starting points; the best run is returned.
pub fn fit_bg_nbd(customers: &[RfmGroup]) -> Option<Fit<BgNbd>> {
    if customers_of(customers) < 2 {
        return None;
    }
    let data = BgData::new(customers)?;
    let n = customers_of(customers) as f64;
    let objective = |theta: &[f64; 4]| bg_objective(&data, theta);
    let mean_x = customers.iter().map(|group| group.customers as f64 * group.rfm.frequency).sum::<f64>() / n;
    let mean_t = customers.iter().map(|group| group.customers as f64 * group.rfm.t).sum::<f64>() / n;
    // E[λ] = r / alpha ≈ purchases per unit time.
    let rate = (mean_x.max(1e-3) / mean_t.max(1e-9)).clamp(1e-9, 1e9);
    let starts = [
        BgNbd { r: 1.0, alpha: 1.0, a: 1.0, b: 1.0 },
        BgNbd { r: 1.0, alpha: 1.0 / rate, a: 1.0, b: 1.0 },
        BgNbd { r: 0.25, alpha: 0.25 / rate, a: 0.8, b: 2.5 },
    ]
    .map(|start| bg_coordinates(&start));
    let best = minimize_multistart(&objective, &starts)?;
    Some(Fit {
        params: bg_params(&best.x),
        log_likelihood: -best.f * n,
        iterations: best.iterations,
        converged: best.converged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clv::gamma_gamma::{GammaGamma, SpendData};
    use crate::clv::special::lgamma;
    use crate::clv::test_support::{assert_close, simulate_bg_nbd};

    /// Fader-Hardie-Lee (2005) eq. (6), evaluated directly (not in log space).
    fn bg_likelihood_direct(p: &BgNbd, x: f64, tx: f64, big_t: f64) -> f64 {
        let g = libm::tgamma;
        let beta = |u: f64, v: f64| g(u) * g(v) / g(u + v);
        let gamma_part = |tt: f64| g(p.r + x) * p.alpha.powf(p.r) / (g(p.r) * (p.alpha + tt).powf(p.r + x));
        let mut l = beta(p.a, p.b + x) / beta(p.a, p.b) * gamma_part(big_t);
        if x > 0.0 {
            l += beta(p.a + 1.0, p.b + x - 1.0) / beta(p.a, p.b) * gamma_part(tx);
        }
        l
    }

    fn tiny_data() -> Vec<Rfm> {
        [(0.0, 0.0, 10.0), (1.0, 5.0, 10.0), (3.0, 8.5, 12.0), (7.0, 20.0, 25.0), (2.0, 30.43, 38.86)]
            .iter()
            .map(|&(x, tx, t)| Rfm { frequency: x, recency: tx, t, monetary_value: 0.0 })
            .collect()
    }

    #[test]
    fn bg_nbd_log_likelihood_matches_closed_form() {
        let data = tiny_data();
        for p in [
            BgNbd { r: 0.5, alpha: 3.0, a: 0.8, b: 2.5 },
            BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 },
            BgNbd { r: 2.0, alpha: 0.7, a: 3.0, b: 0.6 },
        ] {
            let want: f64 = data.iter().map(|c| bg_likelihood_direct(&p, c.frequency, c.recency, c.t).ln()).sum();
            assert_close(p.log_likelihood(&data), want, 1e-12, "BG/NBD log-likelihood");
        }
    }

    #[test]
    fn analytic_gradients_match_finite_differences() {
        let data = BgData::new(&RfmGroup::of_customers(&tiny_data())).expect("valid data");
        let h = 1e-6;
        // Derivatives with respect to the log-parameters.
        let p = BgNbd { r: 0.5, alpha: 3.0, a: 0.8, b: 2.5 };
        let grad = p.log_likelihood_terms(&data);
        let ln_p = [p.r.ln(), p.alpha.ln(), p.a.ln(), p.b.ln()];
        let at = |q: [f64; 4]| BgNbd { r: q[0].exp(), alpha: q[1].exp(), a: q[2].exp(), b: q[3].exp() };
        for k in 0..4 {
            let (mut up, mut down) = (ln_p, ln_p);
            up[k] += h;
            down[k] -= h;
            let fd = (at(up).log_likelihood_terms(&data)[0] - at(down).log_likelihood_terms(&data)[0]) / (2.0 * h);
            assert_close(grad[k + 1], fd, 1e-6, "BG/NBD gradient");
        }
        // The optimiser's objective in (ln r, ln alpha, logit mean, ln concentration).
        for theta in [bg_coordinates(&p), [0.1, -0.3, 1.5, 12.0], [-1.0, 2.0, -2.0, 0.5]] {
            let (_, grad) = bg_objective(&data, &theta);
            for k in 0..4 {
                let (mut up, mut down) = (theta, theta);
                up[k] += h;
                down[k] -= h;
                let fd = (bg_objective(&data, &up).0 - bg_objective(&data, &down).0) / (2.0 * h);
                assert!((grad[k] - fd).abs() <= 1e-6 * fd.abs() + 2e-9, "objective gradient {k}: {} vs {fd}", grad[k]);
            }
        }
        let gg = GammaGamma { p: 6.25, q: 3.74, v: 15.44 };
        let spends: Vec<Rfm> = [(1.0, 20.0), (3.0, 35.5), (6.0, 12.25), (3.0, 8.0)]
            .iter()
            .map(|&(x, m)| Rfm { frequency: x, recency: 0.0, t: 1.0, monetary_value: m })
            .collect();
        let spend_data = SpendData::new(&RfmGroup::of_customers(&spends));
        let grad = gg.log_likelihood_terms(&spend_data);
        let ll = |q: [f64; 3]| {
            GammaGamma { p: q[0].exp(), q: q[1].exp(), v: q[2].exp() }.log_likelihood_terms(&spend_data)[0]
        };
        let ln_gg = [gg.p.ln(), gg.q.ln(), gg.v.ln()];
        for k in 0..3 {
            let (mut up, mut down) = (ln_gg, ln_gg);
            up[k] += h;
            down[k] -= h;
            assert_close(grad[k + 1], (ll(up) - ll(down)) / (2.0 * h), 1e-6, "Gamma-Gamma gradient");
        }
    }

    /// Max relative change of the log-likelihood sum under ±1% moves of each parameter must be a
    /// decrease (the fit is a local maximum), and the fit beats the generating parameters.
    #[test]
    fn bg_nbd_parameter_recovery() {
        let truth = BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
        let data = simulate_bg_nbd(20_000, truth, 39.0, 20_240_601);
        let fit = fit_bg_nbd(&RfmGroup::of_customers(&data)).expect("fit");
        println!("BG/NBD fit: {:?}", fit);
        assert!(fit.converged, "not converged: {fit:?}");
        let p = fit.params;
        for (got, want, name) in
            [(p.r, truth.r, "r"), (p.alpha, truth.alpha, "alpha"), (p.a, truth.a, "a"), (p.b, truth.b, "b")]
        {
            assert!((got / want - 1.0).abs() < 0.15, "{name}: fitted {got}, true {want}");
        }
        assert_close(p.log_likelihood(&data), fit.log_likelihood, 1e-12, "reported log-likelihood");
        assert!(fit.log_likelihood >= truth.log_likelihood(&data));
        for k in 0..4 {
            for s in [0.99, 1.01] {
                let mut q = [p.r, p.alpha, p.a, p.b];
                q[k] *= s;
                let moved = BgNbd { r: q[0], alpha: q[1], a: q[2], b: q[3] };
                assert!(moved.log_likelihood(&data) < fit.log_likelihood);
            }
        }
    }

    /// Data without dropout heterogeneity (every customer drops out with probability 0.2
    /// after each purchase): the likelihood's supremum is at a + b -> infinity with
    /// a / (a + b) = 0.2. The fit must converge there and find the mean.
    #[test]
    fn homogeneous_dropout_converges_to_the_boundary() {
        let truth = BgNbd { r: 1.5, alpha: 20.0, a: 2.0e7, b: 8.0e7 };
        let data = simulate_bg_nbd(20_000, truth, 52.0, 99);
        let fit = fit_bg_nbd(&RfmGroup::of_customers(&data)).expect("fit");
        assert!(fit.converged, "{fit:?}");
        let p = fit.params;
        assert!(p.a + p.b > 1e3, "{p:?}");
        assert!((p.a / (p.a + p.b) - 0.2).abs() < 0.02, "{p:?}");
        assert!((p.r / truth.r - 1.0).abs() < 0.15 && (p.alpha / truth.alpha - 1.0).abs() < 0.15, "{p:?}");
        assert!(fit.log_likelihood >= truth.log_likelihood(&data) - 1e-6);
    }

    /// Composite Simpson on [0, 1] with `n` (even) intervals.
    fn simpson01(f: impl Fn(f64) -> f64, n: usize) -> f64 {
        let h = 1.0 / n as f64;
        let mut s = f(0.0) + f(1.0);
        for k in 1..n {
            s += f(k as f64 * h) * if k % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0
    }

    /// E[X(t) | data] and P(alive | data) from the model's definition, by integrating over the
    /// posterior of (λ, p): given λ, p and alive at T, E[X(t)] = (1 - exp(-λ p t)) / p. The λ
    /// integrals are done analytically, the p integral numerically (p = u^(1/a)).
    fn expectation_by_quadrature(p: &BgNbd, t: f64, c: &Rfm) -> (f64, f64) {
        let (x, tx, big_t) = (c.frequency, c.recency, c.t);
        let k = p.r + x;
        let at = p.alpha + big_t;
        // p = u^m with integer m: p^(a-1) dp = m u^(m a - 1) du, smooth for m a >= 4.
        let m = (4.0 / p.a).ceil();
        let pp = |u: f64| u.powi(m as i32);
        let weight = |u: f64| m * u.powf(m * p.a - 1.0);
        let alive = |u: f64| weight(u) * (1.0 - pp(u)).powf(p.b - 1.0 + x);
        let dead = |u: f64| {
            if x > 0.0 {
                let q = pp(u);
                weight(u) * q * (1.0 - q).powf(p.b - 1.0 + x - 1.0) * (at / (p.alpha + tx)).powf(k)
            } else {
                0.0
            }
        };
        let purchases = |u: f64| {
            let q = pp(u);
            if q == 0.0 {
                return weight(u) * k * t / at; // limit p -> 0
            }
            weight(u) * (1.0 - q).powf(p.b - 1.0 + x) * -(-k * (q * t / at).ln_1p()).exp_m1() / q
        };
        let n = 100_000;
        let d = simpson01(|u| alive(u) + dead(u), n);
        (simpson01(purchases, n) / d, simpson01(alive, n) / d)
    }

    #[test]
    #[allow(clippy::excessive_precision)] // reference digits kept as printed by mpmath
    fn conditional_expectation_and_p_alive() {
        let p = BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
        // Fader, Hardie & Lee (2005), section 5: x = 2, t_x = 30.43, T = 38.86 -> 1.226 in 39 weeks.
        let paper = Rfm { frequency: 2.0, recency: 30.43, t: 38.86, monetary_value: 0.0 };
        let e = p.conditional_expected_purchases(39.0, &paper);
        assert!((e - 1.226).abs() < 5e-4, "paper example: {e}");
        let customers = [
            paper,
            Rfm { frequency: 0.0, recency: 0.0, t: 20.0, monetary_value: 0.0 },
            Rfm { frequency: 1.0, recency: 2.0, t: 38.0, monetary_value: 0.0 },
            Rfm { frequency: 9.0, recency: 35.0, t: 39.0, monetary_value: 0.0 },
        ];
        for c in &customers {
            for t in [1.0, 10.0, 39.0, 200.0] {
                let (e_num, alive_num) = expectation_by_quadrature(&p, t, c);
                assert_close(p.conditional_expected_purchases(t, c), e_num, 1e-7, "E[X(t)] vs quadrature");
                assert_close(p.p_alive(c), alive_num, 1e-7, "P(alive) vs quadrature");
            }
            // lifetimes' direct form (1 - z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z) agrees with ours.
            let t = 39.0;
            let z = t / (p.alpha + c.t + t);
            let x = c.frequency;
            let lifetimes_form = (p.a + p.b + x - 1.0) / (p.a - 1.0)
                * (1.0
                    - hyp2f1(p.r + x, p.b + x, p.a + p.b + x - 1.0, z)
                        * ((p.alpha + c.t) / (p.alpha + t + c.t)).powf(p.r + x))
                / (1.0
                    + if x > 0.0 {
                        p.a / (p.b + x - 1.0) * ((p.alpha + c.t) / (p.alpha + c.recency)).powf(p.r + x)
                    } else {
                        0.0
                    });
            assert_close(p.conditional_expected_purchases(t, c), lifetimes_form, 1e-10, "lifetimes form");
            // increasing in t
            let mut prev = 0.0;
            for k in 1..=60 {
                let e = p.conditional_expected_purchases(k as f64 * 2.0, c);
                assert!(e > prev, "E[X(t)] not increasing: {e} <= {prev}");
                prev = e;
            }
        }
        assert_eq!(p.p_alive(&customers[1]), 1.0);
        assert_eq!(p.conditional_expected_purchases(0.0, &paper), 0.0);
        // a > 1 branch too, also against lifetimes' formula evaluated with mpmath (40 digits).
        let p2 = BgNbd { r: 1.2, alpha: 2.0, a: 2.5, b: 4.0 };
        let mpmath =
            [0.695_626_853_950_070_64, 0.938_285_653_958_627_15, 0.010_358_473_928_207_732, 2.497_799_141_023_332_1];
        for (c, want) in customers.iter().zip(mpmath) {
            let (e_num, alive_num) = expectation_by_quadrature(&p2, 25.0, c);
            let e = p2.conditional_expected_purchases(25.0, c);
            assert_close(e, e_num, 1e-7, "E[X(t)] (a > 1)");
            assert_close(e, want, 1e-12, "E[X(t)] (a > 1) vs mpmath");
            assert_close(p2.p_alive(c), alive_num, 1e-7, "P(alive) (a > 1)");
        }
    }

    #[test]
    fn large_frequency_is_finite() {
        let c = Rfm { frequency: 200.0, recency: 38.0, t: 39.0, monetary_value: 25.0 };
        let c_early = Rfm { frequency: 200.0, recency: 1.0, t: 39.0, monetary_value: 25.0 };
        let p = BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
        for cust in [c, c_early] {
            let ll = p.log_likelihood(&[cust]);
            assert!(ll.is_finite(), "ll = {ll}");
            let data = BgData::new(&RfmGroup::of_customers(&[cust])).expect("valid data");
            assert!(p.log_likelihood_terms(&data).iter().all(|v| v.is_finite()));
            let e = p.conditional_expected_purchases(39.0, &cust);
            let e_long = p.conditional_expected_purchases(1e5, &cust);
            assert!(e.is_finite() && e >= 0.0 && e_long.is_finite() && e_long >= e, "{e} {e_long}");
            let pa = p.p_alive(&cust);
            assert!((0.0..=1.0).contains(&pa));
        }
        // The naive (non-log-space) likelihood overflows here; ours matches its log-space value.
        let want = {
            let (x, r, alpha, a, b) = (200.0, p.r, p.alpha, p.a, p.b);
            let base = lgamma(r + x) - lgamma(r) + r * alpha.ln() + lgamma(a + b) + lgamma(b + x)
                - lgamma(b)
                - lgamma(a + b + x);
            let a3 = -(r + x) * (alpha + 39.0f64).ln();
            let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + 38.0f64).ln();
            base + a4 + (a3 - a4).exp().ln_1p()
        };
        assert_close(p.log_likelihood(&[c]), want, 1e-13, "frequency 200");
        let gg = GammaGamma { p: 6.25, q: 3.74, v: 15.44 };
        assert!(gg.log_likelihood(&[c]).is_finite());
        let mut data = simulate_bg_nbd(500, p, 39.0, 3);
        data.push(c);
        data.push(c_early);
        let fit = fit_bg_nbd(&RfmGroup::of_customers(&data)).expect("fit");
        assert!(fit.log_likelihood.is_finite() && fit.converged, "{fit:?}");
    }

    #[test]
    fn expected_purchases_stay_finite_for_huge_a_and_b() {
        let customer = Rfm { frequency: 3.0, recency: 30.857, t: 55.857, monetary_value: 0.0 };
        // Moderate parameters: the fallback's direct form agrees with the transformed one.
        let moderate = BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
        let (r, alpha, a, b, x) = (moderate.r, moderate.alpha, moderate.a, moderate.b, customer.frequency);
        let t = 52.0;
        let z = t / (alpha + customer.t + t);
        let ln_1mz = -(t / (alpha + customer.t)).ln_1p();
        let direct = (a + b + x - 1.0) / (a - 1.0)
            * -((r + x) * ln_1mz + hyp2f1(r + x, b + x, a + b + x - 1.0, z).ln()).exp_m1()
            * moderate.p_alive(&customer);
        let transformed = moderate.conditional_expected_purchases(t, &customer);
        assert!((direct - transformed).abs() < 1e-9 * transformed.abs().max(1.0), "{direct} vs {transformed}");
        // Huge a and b, as fitted on data without dropout heterogeneity: finite and positive,
        // and close to the constant-dropout limit's value of a nearby moderate-variance model.
        let huge = BgNbd { r: 1.717, alpha: 28.64, a: 1_274_564.6, b: 6_436_506.0 };
        let value = huge.conditional_expected_purchases(52.0, &customer);
        assert!(value.is_finite() && value > 0.0, "{value}");
        let large = BgNbd { r: 1.717, alpha: 28.64, a: 1_274.564_6, b: 6_436.506 };
        let nearby = large.conditional_expected_purchases(52.0, &customer);
        assert!((value - nearby).abs() < 0.01 * nearby, "{value} vs {nearby}");
    }
}

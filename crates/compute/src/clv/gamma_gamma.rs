//! The Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"), as lifetimes'
//! `GammaGammaFitter`: parameters, likelihood, expected average value and fit.

use super::optimise::minimize_multistart;
use super::special::{digamma, lgamma};
use super::{Fit, Rfm, RfmGroup, sum_terms};

/// Gamma-Gamma parameters: spend per transaction z ~ Gamma(shape `p`, rate ν),
/// ν ~ Gamma(shape `q`, rate `v`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGamma {
    /// Shape of the per-transaction spend distribution.
    pub p: f64,
    /// Shape of the Gamma distribution of the spend rate ν across customers.
    pub q: f64,
    /// Rate of the Gamma distribution of the spend rate ν across customers.
    pub v: f64,
}

/// A customer the Gamma-Gamma model uses (frequency x > 0, monetary value m > 0).
#[derive(Debug, Clone, Copy)]
struct Spender {
    /// Index of x in [`SpendData::frequencies`].
    frequency_index: usize,
    frequency: f64,
    monetary_value: f64,
    ln_m: f64,
    ln_x: f64,
    /// How many customers have this frequency and monetary value.
    customers: f64,
}

/// The Gamma-Gamma input as the likelihood reads it.
pub(super) struct SpendData {
    /// The distinct frequencies, ascending.
    frequencies: Vec<f64>,
    spenders: Vec<Spender>,
}

impl SpendData {
    /// The spenders of some groups of customers, one per (frequency, monetary value).
    pub(super) fn new(customers: &[RfmGroup]) -> SpendData {
        let mut pairs: Vec<(f64, f64, u64)> = customers
            .iter()
            .filter(|group| {
                let c = &group.rfm;
                c.frequency > 0.0 && c.monetary_value > 0.0 && c.frequency.is_finite() && c.monetary_value.is_finite()
            })
            .map(|group| (group.rfm.frequency, group.rfm.monetary_value, group.customers))
            .collect();
        pairs.sort_by(|u, v| u.0.total_cmp(&v.0).then(u.1.total_cmp(&v.1)));
        let mut frequencies: Vec<f64> = Vec::new();
        let mut spenders: Vec<Spender> = Vec::with_capacity(pairs.len());
        for (frequency, monetary_value, customers) in pairs {
            if let Some(last) = spenders.last_mut()
                && last.frequency == frequency
                && last.monetary_value == monetary_value
            {
                last.customers += customers as f64;
                continue;
            }
            if frequencies.last() != Some(&frequency) {
                frequencies.push(frequency);
            }
            spenders.push(Spender {
                frequency_index: frequencies.len() - 1,
                frequency,
                monetary_value,
                ln_m: monetary_value.ln(),
                ln_x: frequency.ln(),
                customers: customers as f64,
            });
        }
        SpendData { frequencies, spenders }
    }

    /// The number of spenders.
    fn customers(&self) -> f64 {
        self.spenders.iter().map(|spender| spender.customers).sum()
    }
}

impl GammaGamma {
    /// Σ over spenders of [log-likelihood, and its derivatives with respect to ln p, ln q,
    /// ln v] (lifetimes' `GammaGammaFitter._negative_log_likelihood`, negated, unweighted;
    /// spenders alike in frequency and monetary value taken once, times their number).
    /// The ln Γ and ψ values depend on x only and are taken once per distinct frequency.
    pub(super) fn log_likelihood_terms(&self, data: &SpendData) -> [f64; 4] {
        let GammaGamma { p, q, v } = *self;
        let (ln_v, lgamma_q, psi_q) = (v.ln(), lgamma(q), digamma(q));
        let per_frequency: Vec<(f64, f64, f64)> = data
            .frequencies
            .iter()
            .map(|&x| {
                let px = p * x;
                let psi_pxq = digamma(px + q);
                (lgamma(px + q) - lgamma(px) - lgamma_q, psi_pxq - digamma(px), psi_pxq - psi_q)
            })
            .collect();
        sum_terms(&data.spenders, |spender| {
            let (ln_gamma_part, d_p_psi, d_q_psi) = per_frequency[spender.frequency_index];
            let x = spender.frequency;
            let px = p * x;
            let total = x * spender.monetary_value + v;
            let ln_total = total.ln();
            let ll = ln_gamma_part + q * ln_v + (px - 1.0) * spender.ln_m + px * spender.ln_x - (px + q) * ln_total;
            let d_p = px * (d_p_psi + spender.ln_m + spender.ln_x - ln_total);
            let d_q = q * (d_q_psi + ln_v - ln_total);
            let d_v = q - (px + q) * v / total;
            [ll, d_p, d_q, d_v].map(|value| value * spender.customers)
        })
    }

    /// Total log-likelihood at these parameters, summed over the customers with frequency > 0
    /// and monetary_value > 0 (the others are skipped, as in the fit).
    pub fn log_likelihood(&self, customers: &[Rfm]) -> f64 {
        self.log_likelihood_terms(&SpendData::new(&RfmGroup::of_customers(customers)))[0]
    }

    /// p (v + x m) / (p x + q - 1); for x = 0 the population mean p v / (q - 1). None when q <= 1.
    ///
    /// Equal to lifetimes' conditional_expected_average_profit,
    /// (1 - w) p v / (q - 1) + w m with w = p x / (p x + q - 1).
    pub fn expected_average_value(&self, frequency: f64, monetary_value: f64) -> Option<f64> {
        let GammaGamma { p, q, v } = *self;
        if q.is_nan() || q <= 1.0 {
            return None;
        }
        if frequency == 0.0 {
            return Some(p * v / (q - 1.0));
        }
        Some(p * (v + frequency * monetary_value) / (p * frequency + q - 1.0))
    }
}

/// Fit on customers with frequency > 0 and monetary_value > 0 only. None when fewer than 2 such customers.
///
/// Also None when no starting point has a finite likelihood. The negative mean log-likelihood is
/// minimised over ln(p, q, v) from several starting points; the best run is returned.
pub fn fit_gamma_gamma(customers: &[RfmGroup]) -> Option<Fit<GammaGamma>> {
    let data = SpendData::new(customers);
    let n = data.customers();
    if n < 2.0 {
        return None;
    }
    let params = |th: &[f64; 3]| GammaGamma { p: th[0].exp(), q: th[1].exp(), v: th[2].exp() };
    let objective = |th: &[f64; 3]| -> (f64, [f64; 3]) {
        let [ll, d_p, d_q, d_v] = params(th).log_likelihood_terms(&data);
        (-ll / n, [-d_p / n, -d_q / n, -d_v / n])
    };
    let mean_m = (data.spenders.iter().map(|spender| spender.customers * spender.monetary_value).sum::<f64>() / n)
        .clamp(1e-12, 1e12);
    let ln_m = mean_m.ln();
    // Population mean p v / (q - 1) ≈ mean monetary value.
    let starts = [
        [0.0, 0.0, 0.0],
        [0.0, 2.0f64.ln(), ln_m],
        [4.0f64.ln(), 4.0f64.ln(), ln_m + 0.75f64.ln()],
        [10.0f64.ln(), 10.0f64.ln(), ln_m + 0.9f64.ln()],
    ];
    let best = minimize_multistart(&objective, &starts)?;
    Some(Fit {
        params: params(&best.x),
        log_likelihood: -best.f * n,
        iterations: best.iterations,
        converged: best.converged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clv::test_support::{assert_close, simulate_gamma_gamma};

    #[test]
    fn gamma_gamma_log_likelihood_matches_closed_form() {
        let data: Vec<Rfm> = [(1.0, 20.0), (3.0, 35.5), (6.0, 12.25), (0.0, 10.0), (2.0, 0.0)]
            .iter()
            .map(|&(x, m)| Rfm { frequency: x, recency: 0.0, t: 1.0, monetary_value: m })
            .collect();
        let gg = GammaGamma { p: 6.25, q: 3.74, v: 15.44 };
        let g = libm::tgamma;
        // Density of the mean of x Gamma(p, nu) draws integrated over nu ~ Gamma(q, v).
        let want: f64 = data
            .iter()
            .filter(|c| c.frequency > 0.0 && c.monetary_value > 0.0)
            .map(|c| {
                let (x, m) = (c.frequency, c.monetary_value);
                let px = gg.p * x;
                (g(px + gg.q) / (g(px) * g(gg.q)) * gg.v.powf(gg.q) * m.powf(px - 1.0) * x.powf(px)
                    / (gg.v + m * x).powf(px + gg.q))
                .ln()
            })
            .sum();
        assert_close(gg.log_likelihood(&data), want, 1e-12, "Gamma-Gamma log-likelihood");
    }

    #[test]
    fn gamma_gamma_parameter_recovery() {
        let truth = GammaGamma { p: 6.25, q: 3.74, v: 15.44 };
        let data = simulate_gamma_gamma(20_000, truth, 7_777);
        let fit = fit_gamma_gamma(&RfmGroup::of_customers(&data)).expect("fit");
        println!("Gamma-Gamma fit: {:?}", fit);
        assert!(fit.converged, "not converged: {fit:?}");
        let p = fit.params;
        for (got, want, name) in [(p.p, truth.p, "p"), (p.q, truth.q, "q"), (p.v, truth.v, "v")] {
            assert!((got / want - 1.0).abs() < 0.15, "{name}: fitted {got}, true {want}");
        }
        assert!(fit.log_likelihood >= truth.log_likelihood(&data));
        for k in 0..3 {
            for s in [0.99, 1.01] {
                let mut q = [p.p, p.q, p.v];
                q[k] *= s;
                let moved = GammaGamma { p: q[0], q: q[1], v: q[2] };
                assert!(moved.log_likelihood(&data) < fit.log_likelihood);
            }
        }
    }

    #[test]
    fn expected_average_value() {
        let gg = GammaGamma { p: 6.25, q: 3.74, v: 15.44 };
        let pop = gg.p * gg.v / (gg.q - 1.0);
        assert_eq!(gg.expected_average_value(0.0, 123.0), Some(pop));
        let (x, m) = (4.0, 50.0);
        let w = gg.p * x / (gg.p * x + gg.q - 1.0);
        let got = gg.expected_average_value(x, m).expect("q > 1");
        assert_close(got, (1.0 - w) * pop + w * m, 1e-14, "lifetimes form");
        assert_eq!(GammaGamma { q: 1.0, ..gg }.expected_average_value(2.0, 3.0), None);
    }
}

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
        assert!(fit_bg_nbd(&one).is_none());
        assert!(fit_bg_nbd(&[]).is_none());
        assert!(fit_gamma_gamma(&one).is_none());
        let with_zero = [one[0], Rfm { frequency: 0.0, recency: 0.0, t: 2.0, monetary_value: 0.0 }];
        assert!(fit_gamma_gamma(&with_zero).is_none());
        let bad = [one[0], Rfm { frequency: 1.0, recency: 3.0, t: 2.0, monetary_value: 1.0 }];
        assert!(fit_bg_nbd(&bad).is_none());
    }
}

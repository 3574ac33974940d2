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
//! likewise taken once per distinct frequency (ln Γ from `libm`, ψ here).
//!
//! Maximum-likelihood fits use a self-contained BFGS optimiser (analytic gradients,
//! backtracking Armijo line search, several starting points, and a final Newton polish with a
//! finite-difference Hessian of the analytic gradient). BG/NBD is fitted over (ln r, ln alpha,
//! logit of the mean dropout probability a/(a+b), ln of the concentration a+b), in which the
//! boundary optimum of data without dropout heterogeneity is reached along one axis;
//! Gamma-Gamma over ln(p, q, v). Sums over customers run in parallel with `rayon` for large
//! inputs, in fixed chunks so results are deterministic. The Gauss hypergeometric function
//! [`hyp2f1`] of the conditional expectation is implemented here by series summation with
//! Pfaff/Euler transformations (and the `1 - z` connection formula very close to `z = 1`).

use rayon::prelude::*;

pub mod fits;

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

// ---------------------------------------------------------------------------------------------
// Special functions
// ---------------------------------------------------------------------------------------------

/// ln |Γ(x)|.
fn lgamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// (ln |Γ(x)|, sign of Γ(x)).
fn lgamma_signed(x: f64) -> (f64, f64) {
    let (l, s) = libm::lgamma_r(x);
    (l, if s < 0 { -1.0 } else { 1.0 })
}

/// Digamma function ψ(x) (recurrence up to x ≥ 10, then the asymptotic series).
fn digamma(x: f64) -> f64 {
    if x.is_nan() || x == f64::NEG_INFINITY {
        return f64::NAN;
    }
    if x == f64::INFINITY {
        return f64::INFINITY;
    }
    if x <= 0.0 {
        if x == x.floor() {
            return f64::NAN;
        }
        // Reflection: ψ(x) = ψ(1 - x) - π / tan(π x).
        return digamma(1.0 - x) - std::f64::consts::PI / (std::f64::consts::PI * x).tan();
    }
    let mut x = x;
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    let tail = inv2
        * (1.0 / 12.0
            - inv2
                * (1.0 / 120.0
                    - inv2
                        * (1.0 / 252.0
                            - inv2 * (1.0 / 240.0 - inv2 * (1.0 / 132.0 - inv2 * (691.0 / 32760.0 - inv2 / 12.0))))));
    acc + x.ln() - 0.5 * inv - tail
}

fn is_nonpositive_integer(x: f64) -> bool {
    x <= 0.0 && x == x.floor()
}

/// Distance from `x` to the nearest integer.
fn distance_to_integer(x: f64) -> f64 {
    (x - x.round()).abs()
}

/// Most terms the direct series may use before giving up (reached only for z extremely close to 1).
const SERIES_MAX_TERMS: u64 = 20_000_000;
/// Relative size of the estimated remaining tail at which the series stops.
const SERIES_EPS: f64 = 1e-16;

/// Direct Gauss series Σ (a)_n (b)_n / ((c)_n n!) z^n with a tail-bound convergence test.
/// Returns (sum, largest |term| / |sum|), the latter measuring cancellation; `None` if it did
/// not converge within `max_terms` or produced NaN.
fn hyp2f1_series(a: f64, b: f64, c: f64, z: f64, max_terms: u64) -> Option<(f64, f64)> {
    let mut sum = 1.0f64;
    let mut comp = 0.0f64; // Neumaier compensation
    let mut term = 1.0f64;
    let mut largest = 1.0f64;
    // Past this index every Pochhammer factor is positive and the term ratio tends to z.
    let n_monotone = (-a).max(-b).max(-c).max(0.0);
    let mut n = 0.0f64;
    let finish = |sum: f64, largest: f64| Some((sum, largest / sum.abs()));
    for _ in 0..max_terms {
        term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        let t = sum + term;
        if sum.abs() >= term.abs() {
            comp += (sum - t) + term;
        } else {
            comp += (term - t) + sum;
        }
        sum = t;
        largest = largest.max(term.abs());
        n += 1.0;
        if term == 0.0 {
            return finish(sum + comp, largest);
        }
        if !sum.is_finite() {
            return if sum.is_nan() { None } else { Some((sum, 1.0)) };
        }
        if n > n_monotone {
            let next = ((a + n) * (b + n) / ((c + n) * (n + 1.0)) * z).abs();
            let rho = next.max(z.abs());
            if rho < 1.0 && term.abs() * rho / (1.0 - rho) <= SERIES_EPS * (sum + comp).abs() {
                return finish(sum + comp, largest);
            }
        }
    }
    None
}

/// Just the value of [`hyp2f1_series`].
fn hyp2f1_series_value(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    hyp2f1_series(a, b, c, z, SERIES_MAX_TERMS).map(|(v, _)| v)
}

/// `factor * exp(ln_scale)` without intermediate overflow/underflow when `factor` is large or tiny.
fn scale_by_exp(factor: f64, ln_scale: f64) -> f64 {
    if factor == 0.0 || !factor.is_finite() {
        return factor * ln_scale.exp();
    }
    factor.signum() * (factor.abs().ln() + ln_scale).exp()
}

/// 2F1 for 0 < z < 1 via the `1 - z` connection formula (c - a - b not an integer):
/// F = A F(a, b; 1 - s; 1 - z) + B (1 - z)^s F(c - a, c - b; 1 + s; 1 - z), s = c - a - b.
/// `w` is 1 - z, passed separately because callers may know it more precisely.
fn hyp2f1_one_minus_z(a: f64, b: f64, c: f64, w: f64) -> Option<f64> {
    let s = c - a - b;
    let (lc, sc) = lgamma_signed(c);
    let first = if is_nonpositive_integer(c - a) || is_nonpositive_integer(c - b) {
        0.0
    } else {
        let (ls, ss) = lgamma_signed(s);
        let (lca, sca) = lgamma_signed(c - a);
        let (lcb, scb) = lgamma_signed(c - b);
        let f1 = hyp2f1_series_value(a, b, 1.0 - s, w)?;
        sc * ss * sca * scb * scale_by_exp(f1, lc + ls - lca - lcb)
    };
    let (lms, sms) = lgamma_signed(-s);
    let (la, sa) = lgamma_signed(a);
    let (lb, sb) = lgamma_signed(b);
    let f2 = hyp2f1_series_value(c - a, c - b, 1.0 + s, w)?;
    let second = sc * sms * sa * sb * scale_by_exp(f2, lc + lms - la - lb + s * w.ln());
    let v = first + second;
    v.is_finite().then_some(v)
}

/// Series results with more cancellation than this (largest term / |sum|) try the other form.
const CANCELLATION_LIMIT: f64 = 1e4;

/// 2F1 for 0 < z < 1 (c not a non-positive integer); `w` = 1 - z, accurate to full relative
/// precision (after the Pfaff transformation it is 1 / (1 - z_original), more accurate than 1 - z).
fn hyp2f1_unit(a: f64, b: f64, c: f64, z: f64, w: f64) -> f64 {
    if is_nonpositive_integer(a) || is_nonpositive_integer(b) {
        return hyp2f1_series_value(a, b, c, z).unwrap_or(f64::NAN);
    }
    let s = c - a - b;
    // Very close to 1 the direct series needs ~1/(1-z) terms: use the connection formula when it
    // is well conditioned (s away from an integer, moderate parameters).
    if z > 0.999
        && distance_to_integer(s) > 0.05
        && a.abs().max(b.abs()).max(c.abs()) <= 50.0
        && let Some(v) = hyp2f1_one_minus_z(a, b, c, w)
    {
        return v;
    }
    // Direct summation of F itself or of its Euler transform F = (1 - z)^s F(c-a, c-b; c; z).
    // The form whose function stays bounded as z -> 1 (plain for s >= 0, Euler for s < 0) is
    // tried first; the other is tried when the first fails or cancels badly. Skipped when the
    // series cannot converge within the term budget anyway.
    let mut best = None;
    if 50.0 / w < SERIES_MAX_TERMS as f64 {
        let ln_1mz = w.ln();
        let plain = || hyp2f1_series(a, b, c, z, SERIES_MAX_TERMS);
        let euler =
            || hyp2f1_series(c - a, c - b, c, z, SERIES_MAX_TERMS).map(|(f, k)| (scale_by_exp(f, s * ln_1mz), k));
        // An infinite value is a genuine overflow of the result (the series themselves are finite).
        let usable = |r: Option<(f64, f64)>| r.filter(|(v, k)| !v.is_nan() && k.is_finite());
        type Attempt<'a> = &'a dyn Fn() -> Option<(f64, f64)>;
        let (primary, alternate): (Attempt, Attempt) = if s < 0.0 { (&euler, &plain) } else { (&plain, &euler) };
        let first = usable(primary());
        if let Some((v, k)) = first
            && k <= CANCELLATION_LIMIT
        {
            return v;
        }
        best = match (first, usable(alternate())) {
            (Some(f), Some(o)) => Some(if o.1 < f.1 { o } else { f }),
            (f, o) => f.or(o),
        };
        if let Some((v, k)) = best
            && k <= CANCELLATION_LIMIT
        {
            return v;
        }
    }
    // Last resort for z near 1: the connection formula, interpolated in c when c - a - b is
    // (nearly) an integer, where the formula itself is singular.
    if z > 0.9 {
        let v = if distance_to_integer(s) > 0.5 * DELTA_NEAR_INTEGER {
            hyp2f1_one_minus_z(a, b, c, w)
        } else {
            hyp2f1_one_minus_z_near_integer(a, b, c, w)
        };
        if let Some(v) = v {
            return v;
        }
    }
    best.map_or(f64::NAN, |(v, _)| v)
}

/// Node spacing in `a` for [`hyp2f1_one_minus_z_near_integer`].
const DELTA_NEAR_INTEGER: f64 = 1e-3;

/// The `1 - z` connection formula when s = c - a - b is within δ/2 of an integer k, where the
/// formula itself is singular. 2F1 is an entire function of `a`, so it is evaluated at the eight
/// points a0 + jδ (j = ±1..±4, δ = 1e-3) around the a0 with c - a0 - b = k, where the formula is
/// well defined, and interpolated with the degree-7 Lagrange polynomial.
fn hyp2f1_one_minus_z_near_integer(a: f64, b: f64, c: f64, w: f64) -> Option<f64> {
    const NODES: [f64; 8] = [-4.0, -3.0, -2.0, -1.0, 1.0, 2.0, 3.0, 4.0];
    let s = c - a - b;
    let a0 = a + (s - s.round()); // c - a0 - b is exactly the integer k
    let tau = (a - a0) / DELTA_NEAR_INTEGER; // |tau| <= 0.5
    let mut v = 0.0;
    for (i, ti) in NODES.iter().enumerate() {
        let mut weight = 1.0;
        for (j, tj) in NODES.iter().enumerate() {
            if i != j {
                weight *= (tau - tj) / (ti - tj);
            }
        }
        v += weight * hyp2f1_one_minus_z(a0 + ti * DELTA_NEAR_INTEGER, b, c, w)?;
    }
    v.is_finite().then_some(v)
}

/// Gauss hypergeometric function 2F1(a, b; c; z) for real z < 1 (and z = 1 by Gauss's formula).
///
/// Summed as a power series with a tail-bound convergence test. For z < 0 the Pfaff
/// transformation 2F1(a, b; c; z) = (1 - z)^(-a) 2F1(a, c - b; c; z / (z - 1)) maps the argument
/// into (0, 1); in (0, 1) the Euler transformation (1 - z)^(c-a-b) 2F1(c - a, c - b; c; z) is used
/// when it avoids growth or cancellation. For z > 0.999 (after Pfaff: z < -1000) with
/// c - a - b away from an integer, and as a fallback when the series cannot converge within its
/// term budget, the `1 - z` connection formula is used (interpolated in `a` when c - a - b is
/// within 5e-4 of an integer). Terminating (polynomial) cases are summed exactly for any finite z.
/// Checked against mpmath on ~7,900 points, BG/NBD-shaped and random (a, b in [-3, 6],
/// c in [-3, 9], z from -1e9 to 1 - 1e-9, including integer c - a - b and a - b): worst relative
/// error 2.4e-11 (1.2e-13 on the BG/NBD-shaped points). Returns NaN for z > 1 (non-polynomial),
/// for c a non-positive integer, or for non-finite input; +∞ at z = 1 when c - a - b ≤ 0, and
/// ±∞ when the value overflows f64.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    if !(a.is_finite() && b.is_finite() && c.is_finite() && z.is_finite()) {
        return f64::NAN;
    }
    if is_nonpositive_integer(c) {
        return f64::NAN;
    }
    if z == 0.0 || a == 0.0 || b == 0.0 {
        return 1.0;
    }
    if is_nonpositive_integer(a) || is_nonpositive_integer(b) {
        return hyp2f1_series_value(a, b, c, z).unwrap_or(f64::NAN);
    }
    if z > 1.0 {
        return f64::NAN;
    }
    if z == 1.0 {
        let s = c - a - b;
        if s <= 0.0 {
            return f64::INFINITY;
        }
        if is_nonpositive_integer(c - a) || is_nonpositive_integer(c - b) {
            return 0.0;
        }
        let (lc, sc) = lgamma_signed(c);
        let (ls, ss) = lgamma_signed(s);
        let (lca, sca) = lgamma_signed(c - a);
        let (lcb, scb) = lgamma_signed(c - b);
        return sc * ss * sca * scb * (lc + ls - lca - lcb).exp();
    }
    if z < 0.0 {
        let w = z / (z - 1.0);
        let ln_1mz = (-z).ln_1p();
        // Pfaff; pick the variant that terminates when one does.
        return if is_nonpositive_integer(c - a) {
            scale_by_exp(hyp2f1_series_value(c - a, b, c, w).unwrap_or(f64::NAN), -b * ln_1mz)
        } else {
            scale_by_exp(hyp2f1_unit(a, c - b, c, w, 1.0 / (1.0 - z)), -a * ln_1mz)
        };
    }
    hyp2f1_unit(a, b, c, z, 1.0 - z)
}

// ---------------------------------------------------------------------------------------------
// Parallel deterministic summation
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// BG/NBD
// ---------------------------------------------------------------------------------------------

/// Customers with the same (frequency, recency, T), counted: the BG/NBD likelihood is evaluated
/// once per group.
#[derive(Debug, Clone, Copy)]
struct BgGroup {
    /// Index of the group's frequency in [`BgData::frequencies`].
    frequency_index: usize,
    frequency: f64,
    recency: f64,
    t: f64,
    customers: f64,
}

/// The BG/NBD input as the likelihood reads it.
struct BgData {
    /// The distinct frequencies, ascending (whole numbers).
    frequencies: Vec<f64>,
    groups: Vec<BgGroup>,
}

impl BgData {
    /// Groups the customers; None when a record is invalid (see [`valid_bg_record`]).
    fn new(customers: &[Rfm]) -> Option<BgData> {
        if !customers.iter().all(valid_bg_record) {
            return None;
        }
        let mut keys: Vec<(f64, f64, f64)> = customers.iter().map(|c| (c.frequency, c.recency, c.t)).collect();
        keys.sort_by(|u, v| u.0.total_cmp(&v.0).then(u.1.total_cmp(&v.1)).then(u.2.total_cmp(&v.2)));
        let mut frequencies: Vec<f64> = Vec::new();
        let mut groups: Vec<BgGroup> = Vec::new();
        for (frequency, recency, t) in keys {
            match groups.last_mut() {
                Some(last) if last.frequency == frequency && last.recency == recency && last.t == t => {
                    last.customers += 1.0;
                }
                _ => {
                    if frequencies.last() != Some(&frequency) {
                        frequencies.push(frequency);
                    }
                    groups.push(BgGroup {
                        frequency_index: frequencies.len() - 1,
                        frequency,
                        recency,
                        t,
                        customers: 1.0,
                    });
                }
            }
        }
        Some(BgData { frequencies, groups })
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
        sum_terms(&data.groups, |group| {
            let ft = &terms[group.frequency_index];
            let x = group.frequency;
            let ln_at = (alpha + group.t).ln();
            let a3 = -(r + x) * ln_at;
            let (lse, w4, ln_atx, inv_atx) = if x > 0.0 {
                let ln_atx = (alpha + group.recency).ln();
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
        BgData::new(customers).map_or(f64::NAN, |data| self.log_likelihood_terms(&data)[0])
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
        if t == 0.0 {
            return 0.0;
        }
        if t.is_nan() || t < 0.0 {
            return f64::NAN;
        }
        let BgNbd { r, alpha, a, b } = *self;
        let x = c.frequency;
        let at = alpha + c.t;
        let z = t / (at + t);
        let ln_1mz = -(t / at).ln_1p(); // ln((alpha + T) / (alpha + T + t))
        let cc = a + b + x - 1.0;
        let f = hyp2f1(a + b - 1.0 - r, a - 1.0, cc, z);
        let first = cc / (a - 1.0);
        let second = -((a - 1.0) * ln_1mz + f.ln()).exp_m1();
        // lifetimes divides by 1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x),
        // which is exactly 1 / p_alive.
        let transformed = first * second * self.p_alive(c);
        if transformed.is_finite() {
            return transformed;
        }
        // With very large a and b (data without dropout heterogeneity) the transformed
        // series overflows while the direct one, whose terms shrink like (b / (a + b) z)^k,
        // converges: 1 - (1 - z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z).
        let direct = hyp2f1(r + x, b + x, cc, z);
        first * -((r + x) * ln_1mz + direct.ln()).exp_m1() * self.p_alive(c)
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
pub fn fit_bg_nbd(customers: &[Rfm]) -> Option<Fit<BgNbd>> {
    if customers.len() < 2 {
        return None;
    }
    let data = BgData::new(customers)?;
    let n = customers.len() as f64;
    let objective = |theta: &[f64; 4]| bg_objective(&data, theta);
    let mean_x = customers.iter().map(|c| c.frequency).sum::<f64>() / n;
    let mean_t = customers.iter().map(|c| c.t).sum::<f64>() / n;
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

// ---------------------------------------------------------------------------------------------
// Gamma-Gamma
// ---------------------------------------------------------------------------------------------

/// A customer the Gamma-Gamma model uses (frequency x > 0, monetary value m > 0).
#[derive(Debug, Clone, Copy)]
struct Spender {
    /// Index of x in [`SpendData::frequencies`].
    frequency_index: usize,
    frequency: f64,
    monetary_value: f64,
    ln_m: f64,
    ln_x: f64,
}

/// The Gamma-Gamma input as the likelihood reads it.
struct SpendData {
    /// The distinct frequencies, ascending.
    frequencies: Vec<f64>,
    spenders: Vec<Spender>,
}

impl SpendData {
    fn new(customers: &[Rfm]) -> SpendData {
        let mut pairs: Vec<(f64, f64)> = customers
            .iter()
            .filter(|c| {
                c.frequency > 0.0 && c.monetary_value > 0.0 && c.frequency.is_finite() && c.monetary_value.is_finite()
            })
            .map(|c| (c.frequency, c.monetary_value))
            .collect();
        pairs.sort_by(|u, v| u.0.total_cmp(&v.0).then(u.1.total_cmp(&v.1)));
        let mut frequencies: Vec<f64> = Vec::new();
        let spenders = pairs
            .into_iter()
            .map(|(frequency, monetary_value)| {
                if frequencies.last() != Some(&frequency) {
                    frequencies.push(frequency);
                }
                let ln_m = monetary_value.ln();
                Spender {
                    frequency_index: frequencies.len() - 1,
                    frequency,
                    monetary_value,
                    ln_m,
                    ln_x: frequency.ln(),
                }
            })
            .collect();
        SpendData { frequencies, spenders }
    }
}

impl GammaGamma {
    /// Σ over spenders of [log-likelihood, and its derivatives with respect to ln p, ln q,
    /// ln v] (lifetimes' `GammaGammaFitter._negative_log_likelihood`, negated, unweighted).
    /// The ln Γ and ψ values depend on x only and are taken once per distinct frequency.
    fn log_likelihood_terms(&self, data: &SpendData) -> [f64; 4] {
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
            [ll, d_p, d_q, d_v]
        })
    }

    /// Total log-likelihood at these parameters, summed over the customers with frequency > 0
    /// and monetary_value > 0 (the others are skipped, as in the fit).
    pub fn log_likelihood(&self, customers: &[Rfm]) -> f64 {
        self.log_likelihood_terms(&SpendData::new(customers))[0]
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
pub fn fit_gamma_gamma(customers: &[Rfm]) -> Option<Fit<GammaGamma>> {
    let data = SpendData::new(customers);
    if data.spenders.len() < 2 {
        return None;
    }
    let n = data.spenders.len() as f64;
    let params = |th: &[f64; 3]| GammaGamma { p: th[0].exp(), q: th[1].exp(), v: th[2].exp() };
    let objective = |th: &[f64; 3]| -> (f64, [f64; 3]) {
        let [ll, d_p, d_q, d_v] = params(th).log_likelihood_terms(&data);
        (-ll / n, [-d_p / n, -d_q / n, -d_v / n])
    };
    let mean_m = (data.spenders.iter().map(|spender| spender.monetary_value).sum::<f64>() / n).clamp(1e-12, 1e12);
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

// ---------------------------------------------------------------------------------------------
// Optimiser: BFGS over log-parameters + Newton polish
// ---------------------------------------------------------------------------------------------

/// Stopping tolerance on the max-norm of the gradient of the mean negative log-likelihood.
const GRADIENT_TOLERANCE: f64 = 1e-8;
/// BFGS hands over to the Newton polish once the gradient max-norm is below this.
const BFGS_TOLERANCE: f64 = 1e-6;
/// BFGS iteration budget per starting point.
const MAX_ITERATIONS: u64 = 2000;
/// Largest step (max-norm, in log-parameter space) tried by one line search.
const MAX_STEP: f64 = 2.0;
/// Most Newton polish steps after BFGS.
const MAX_POLISH: u64 = 20;
/// Most objective evaluations in the BFGS phase of one run (normal fits use well under 200).
const MAX_EVALUATIONS: u64 = 2000;
/// Most inverse-Hessian resets after failed line searches in one run.
const MAX_RESETS: u32 = 10;

struct Outcome<const N: usize> {
    x: [f64; N],
    f: f64,
    iterations: u64,
    converged: bool,
}

fn dot<const N: usize>(u: &[f64; N], v: &[f64; N]) -> f64 {
    u.iter().zip(v).map(|(a, b)| a * b).sum()
}

fn norm_inf<const N: usize>(u: &[f64; N]) -> f64 {
    u.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn identity<const N: usize>() -> [[f64; N]; N] {
    let mut h = [[0.0; N]; N];
    for (i, row) in h.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    h
}

/// Objective value and gradient, or None when not finite.
fn evaluate<const N: usize>(obj: &impl Fn(&[f64; N]) -> (f64, [f64; N]), x: &[f64; N]) -> Option<(f64, [f64; N])> {
    if !x.iter().all(|v| v.is_finite()) {
        return None;
    }
    let (f, g) = obj(x);
    (f.is_finite() && g.iter().all(|v| v.is_finite())).then_some((f, g))
}

/// Solve H p = g for symmetric positive-definite H by Cholesky; None if not positive definite.
#[allow(clippy::needless_range_loop)]
fn cholesky_solve<const N: usize>(h: &[[f64; N]; N], g: &[f64; N]) -> Option<[f64; N]> {
    let mut l = [[0.0; N]; N];
    for i in 0..N {
        for j in 0..=i {
            let mut s = h[i][j];
            for k in 0..j {
                s -= l[i][k] * l[j][k];
            }
            if i == j {
                if s.is_nan() || s <= 0.0 || s.is_infinite() {
                    return None;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    let mut y = [0.0; N];
    for i in 0..N {
        let mut s = g[i];
        for k in 0..i {
            s -= l[i][k] * y[k];
        }
        y[i] = s / l[i][i];
    }
    let mut p = [0.0; N];
    for i in (0..N).rev() {
        let mut s = y[i];
        for k in i + 1..N {
            s -= l[k][i] * p[k];
        }
        p[i] = s / l[i][i];
    }
    p.iter().all(|v| v.is_finite()).then_some(p)
}

/// Hessian by central differences of the analytic gradient, symmetrised.
#[allow(clippy::needless_range_loop)]
fn fd_hessian<const N: usize>(obj: &impl Fn(&[f64; N]) -> (f64, [f64; N]), x: &[f64; N]) -> Option<[[f64; N]; N]> {
    const H: f64 = 1e-5;
    let mut hess = [[0.0; N]; N];
    for j in 0..N {
        let mut xp = *x;
        let mut xm = *x;
        xp[j] += H;
        xm[j] -= H;
        let (_, gp) = evaluate(obj, &xp)?;
        let (_, gm) = evaluate(obj, &xm)?;
        for i in 0..N {
            hess[i][j] = (gp[i] - gm[i]) / (2.0 * H);
        }
    }
    for i in 0..N {
        for j in 0..i {
            let s = 0.5 * (hess[i][j] + hess[j][i]);
            hess[i][j] = s;
            hess[j][i] = s;
        }
    }
    Some(hess)
}

/// BFGS (inverse-Hessian form, Armijo backtracking, resets on failure) followed by Newton polish.
fn minimize<const N: usize>(obj: &impl Fn(&[f64; N]) -> (f64, [f64; N]), x0: [f64; N]) -> Option<Outcome<N>> {
    let (mut f, mut g) = evaluate(obj, &x0)?;
    let mut x = x0;
    let mut h = identity::<N>();
    let mut fresh = true; // h carries no curvature information yet
    let mut iterations = 0u64;
    let mut evaluations = 1u64;
    let mut resets = 0u32;
    while iterations < MAX_ITERATIONS && evaluations < MAX_EVALUATIONS && norm_inf(&g) > BFGS_TOLERANCE {
        iterations += 1;
        let mut d = [0.0; N];
        for i in 0..N {
            d[i] = -dot(&h[i], &g);
        }
        let mut slope = dot(&g, &d);
        if slope.is_nan() || slope >= 0.0 {
            h = identity();
            fresh = true;
            d = g.map(|v| -v);
            slope = -dot(&g, &g);
        }
        let dmax = norm_inf(&d);
        if dmax > MAX_STEP {
            let scale = MAX_STEP / dmax;
            d = d.map(|v| v * scale);
            slope *= scale;
        }
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..40 {
            let mut xn = x;
            for i in 0..N {
                xn[i] += step * d[i];
            }
            evaluations += 1;
            if let Some((fnew, gnew)) = evaluate(obj, &xn)
                && fnew <= f + 1e-4 * step * slope
            {
                accepted = Some((xn, fnew, gnew));
                break;
            }
            step *= 0.5;
        }
        let Some((xn, fnew, gnew)) = accepted else {
            // No decrease found: either steepest descent fails too, or we are already in the
            // region where f differences drown in rounding. Leave the rest to the Newton polish.
            // Repeated resets mean the same (degenerate data, optimum at infinity).
            if fresh || norm_inf(&g) < 1e-4 || resets >= MAX_RESETS {
                break;
            }
            resets += 1;
            h = identity();
            fresh = true;
            continue;
        };
        let mut s = [0.0; N];
        let mut y = [0.0; N];
        for i in 0..N {
            s[i] = xn[i] - x[i];
            y[i] = gnew[i] - g[i];
        }
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() {
            if fresh {
                let scale = sy / dot(&y, &y);
                h = identity();
                for (i, row) in h.iter_mut().enumerate() {
                    row[i] = scale;
                }
                fresh = false;
            }
            let rho = 1.0 / sy;
            let mut hy = [0.0; N];
            for i in 0..N {
                hy[i] = dot(&h[i], &y);
            }
            let yhy = dot(&y, &hy);
            let coef = rho * rho * yhy + rho;
            for i in 0..N {
                for j in 0..N {
                    h[i][j] += -rho * (s[i] * hy[j] + hy[i] * s[j]) + coef * s[i] * s[j];
                }
            }
        }
        x = xn;
        f = fnew;
        g = gnew;
    }
    // Newton polish: quadratic convergence of the gradient, independent of rounding in f.
    for _ in 0..MAX_POLISH {
        let gn = norm_inf(&g);
        if gn <= GRADIENT_TOLERANCE * 1e-3 {
            break;
        }
        let Some(hess) = fd_hessian(obj, &x) else {
            break;
        };
        let Some(mut p) = cholesky_solve(&hess, &g) else {
            break;
        };
        let pmax = norm_inf(&p);
        if pmax > MAX_STEP {
            p = p.map(|v| v * MAX_STEP / pmax);
        }
        let mut xn = x;
        for i in 0..N {
            xn[i] -= p[i];
        }
        let Some((fnew, gnew)) = evaluate(obj, &xn) else {
            break;
        };
        if fnew <= f + 1e-12 * f.abs().max(1.0) && norm_inf(&gnew) < gn {
            x = xn;
            f = fnew;
            g = gnew;
            iterations += 1;
        } else {
            break;
        }
    }
    Some(Outcome { x, f, iterations, converged: norm_inf(&g) <= GRADIENT_TOLERANCE })
}

/// Run [`minimize`] from each start and keep the lowest objective (converged runs win ties).
fn minimize_multistart<const N: usize>(
    obj: &impl Fn(&[f64; N]) -> (f64, [f64; N]),
    starts: &[[f64; N]],
) -> Option<Outcome<N>> {
    let mut best: Option<Outcome<N>> = None;
    for start in starts {
        let Some(run) = minimize(obj, *start) else {
            continue;
        };
        best = match best {
            None => Some(run),
            Some(b) => {
                let tie = (run.f - b.f).abs() <= 1e-12 * b.f.abs().max(1.0);
                let better = if tie { run.converged && !b.converged } else { run.f < b.f };
                Some(if better { run } else { b })
            }
        };
    }
    best
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(got: f64, want: f64, rel: f64, what: &str) {
        let err = (got - want).abs() / want.abs().max(1e-300);
        assert!(err <= rel, "{what}: got {got:.17e}, want {want:.17e}, rel err {err:.3e} > {rel:.1e}");
    }

    /// Small deterministic RNG (SplitMix64) with Gamma / Beta / exponential samplers.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        /// Uniform in (0, 1).
        fn uniform(&mut self) -> f64 {
            ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / 9_007_199_254_740_992.0)
        }
        fn normal(&mut self) -> f64 {
            let u1 = self.uniform();
            let u2 = self.uniform();
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
        /// Gamma(shape, rate) by Marsaglia & Tsang (with the U^(1/shape) boost for shape < 1).
        fn gamma(&mut self, shape: f64, rate: f64) -> f64 {
            if shape < 1.0 {
                let u = self.uniform();
                return self.gamma(shape + 1.0, rate) * u.powf(1.0 / shape);
            }
            let d = shape - 1.0 / 3.0;
            let c = 1.0 / (9.0 * d).sqrt();
            loop {
                let x = self.normal();
                let v = 1.0 + c * x;
                if v <= 0.0 {
                    continue;
                }
                let v = v * v * v;
                let u = self.uniform();
                if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                    return d * v / rate;
                }
            }
        }
        fn beta(&mut self, a: f64, b: f64) -> f64 {
            let x = self.gamma(a, 1.0);
            let y = self.gamma(b, 1.0);
            x / (x + y)
        }
        fn exponential(&mut self, rate: f64) -> f64 {
            -self.uniform().ln() / rate
        }
    }

    fn simulate_bg_nbd(n: usize, truth: BgNbd, big_t: f64, seed: u64) -> Vec<Rfm> {
        let mut rng = Rng(seed);
        (0..n)
            .map(|_| {
                let lambda = rng.gamma(truth.r, truth.alpha);
                let p = rng.beta(truth.a, truth.b);
                let (mut t, mut x, mut tx) = (0.0, 0u32, 0.0);
                loop {
                    t += rng.exponential(lambda);
                    if t.is_nan() || t > big_t {
                        break;
                    }
                    x += 1;
                    tx = t;
                    if rng.uniform() < p {
                        break; // dies after this purchase
                    }
                }
                Rfm { frequency: f64::from(x), recency: tx, t: big_t, monetary_value: 0.0 }
            })
            .collect()
    }

    fn simulate_gamma_gamma(n: usize, truth: GammaGamma, seed: u64) -> Vec<Rfm> {
        let mut rng = Rng(seed);
        (0..n)
            .map(|_| {
                let nu = rng.gamma(truth.q, truth.v);
                let x = 1 + rng.next_u64() % 10;
                let total: f64 = (0..x).map(|_| rng.gamma(truth.p, nu)).sum();
                let xf = x as f64;
                Rfm { frequency: xf, recency: 0.0, t: 0.0, monetary_value: total / xf }
            })
            .collect()
    }

    /// ∫_0^1 f(t, 1 - t) dt by tanh-sinh (double-exponential) quadrature, which is insensitive
    /// to integrable endpoint singularities; `1 - t` is passed separately to avoid cancellation.
    fn integrate01(f: impl Fn(f64, f64) -> f64) -> f64 {
        let h = 1.0 / 256.0;
        let half_pi = std::f64::consts::FRAC_PI_2;
        let mut sum = 0.0;
        for k in -1152i32..=1152 {
            let s = f64::from(k) * h;
            let u = half_pi * s.sinh();
            // t = 1 / (1 + e^(-2u)), 1 - t = 1 / (1 + e^(2u)), dt/ds = (π/4) cosh(s) / cosh²(u).
            let t = 1.0 / (1.0 + (-2.0 * u).exp());
            let omt = 1.0 / (1.0 + (2.0 * u).exp());
            let w = 0.5 * half_pi * s.cosh() / u.cosh().powi(2);
            if t > 0.0 && omt > 0.0 && w > 0.0 {
                sum += w * f(t, omt);
            }
        }
        sum * h
    }

    /// 2F1 by Euler's integral Γ(c)/(Γ(b)Γ(c-b)) ∫ t^(b-1) (1-t)^(c-b-1) (1-zt)^(-a) dt (c > b > 0).
    fn hyp2f1_by_integral(a: f64, b: f64, c: f64, z: f64) -> f64 {
        let coef = libm::tgamma(c) / (libm::tgamma(b) * libm::tgamma(c - b));
        coef * integrate01(|t, omt| t.powf(b - 1.0) * omt.powf(c - b - 1.0) * (omt + (1.0 - z) * t).powf(-a))
    }

    #[test]
    fn hyp2f1_known_values() {
        let ln2 = std::f64::consts::LN_2;
        assert_close(hyp2f1(1.0, 1.0, 2.0, 0.5), 2.0 * ln2, 1e-14, "2F1(1,1;2;1/2)");
        assert_close(hyp2f1(1.0, 1.0, 2.0, -1.0), ln2, 1e-14, "2F1(1,1;2;-1)");
        for (a, b, c) in [(0.3, 2.0, 1.7), (5.0, -2.5, 3.0), (200.2, 202.4, 401.2)] {
            assert_eq!(hyp2f1(a, b, c, 0.0), 1.0);
        }
        // asin(z)/z and asinh(x)/x.
        for z in [0.1f64, 0.6, 0.95] {
            assert_close(hyp2f1(0.5, 0.5, 1.5, z * z), z.asin() / z, 1e-13, "asin");
        }
        let x = 50f64.sqrt();
        assert_close(hyp2f1(0.5, 0.5, 1.5, -50.0), x.asinh() / x, 1e-13, "asinh at z = -50");
        // Close to 1: -ln(1-z)/z, and (1-z)^(-a).
        assert_close(hyp2f1(1.0, 1.0, 2.0, 0.999), -(0.001f64).ln() / 0.999, 1e-12, "-ln(1-z)/z at 0.999");
        assert_close(hyp2f1(0.7, 1.3, 1.3, 0.9999), 1e-4f64.powf(-0.7), 1e-12, "(1-z)^-a");
        assert_close(hyp2f1(0.7, 1.3, 1.3, -50.0), 51f64.powf(-0.7), 1e-13, "(1-z)^-a at -50");
        // A&S 15.1.15: 2F1(a, 1-a; 3/2; sin²y) = sin((2a-1)y) / ((2a-1) sin y); y = 1.57 takes the
        // 1 - z connection-formula path (z = 1 - 6e-7), y = 1.5 the direct series.
        for y in [0.4f64, 1.5, 1.57] {
            let a = 0.3;
            let want = ((2.0 * a - 1.0) * y).sin() / ((2.0 * a - 1.0) * y.sin());
            assert_close(hyp2f1(a, 1.0 - a, 1.5, y.sin().powi(2)), want, 1e-12, "sin formula");
        }
        // ... and with y imaginary: 2F1(a, 1-a; 3/2; -sinh²y) = sinh((2a-1)y) / ((2a-1) sinh y),
        // y = 8 gives z ≈ -2.2e6.
        for y in [1.0f64, 8.0] {
            let a = 0.3;
            let want = ((2.0 * a - 1.0) * y).sinh() / ((2.0 * a - 1.0) * y.sinh());
            assert_close(hyp2f1(a, 1.0 - a, 1.5, -y.sinh().powi(2)), want, 1e-12, "sinh formula");
        }
        // Gauss's theorem at z = 1.
        let (a, b, c) = (0.3, 0.4, 1.9);
        let want = libm::tgamma(c) * libm::tgamma(c - a - b) / (libm::tgamma(c - a) * libm::tgamma(c - b));
        assert_close(hyp2f1(a, b, c, 1.0), want, 1e-13, "Gauss");
        // Polynomial case: 2F1(-2, b; c; z) = 1 - 2bz/c + b(b+1)z²/(c(c+1)).
        let (b, c, z) = (1.5, 2.5, -3.0);
        let want = 1.0 - 2.0 * b * z / c + b * (b + 1.0) * z * z / (c * (c + 1.0));
        assert_close(hyp2f1(-2.0, b, c, z), want, 1e-14, "polynomial");
        assert!(hyp2f1(1.0, 1.0, 2.0, 1.5).is_nan());
        assert!(hyp2f1(1.0, 1.0, -2.0, 0.5).is_nan());
    }

    #[test]
    fn hyp2f1_against_euler_integral() {
        // General parameters, and the Euler-form parameters the BG/NBD expectation uses,
        // (a + b - 1 - r, a - 1; a + b + x - 1), for the CDNOW fit and x = 2 (a < 1).
        let cases = [(1.3, 2.2, 4.7), (-0.207, 1.976, 4.219), (2.5, 0.6, 1.9)];
        for (a, b, c) in cases {
            for z in [-50.0, -3.0, -0.5, 0.3, 0.9, 0.999] {
                let want = hyp2f1_by_integral(a, b, c, z);
                assert_close(hyp2f1(a, b, c, z), want, 1e-9, &format!("2F1({a},{b};{c};{z})"));
                // symmetry in a, b
                assert_close(hyp2f1(b, a, c, z), want, 1e-9, &format!("2F1({b},{a};{c};{z})"));
            }
        }
    }

    #[test]
    #[allow(clippy::excessive_precision)] // reference digits kept as printed by mpmath
    fn hyp2f1_against_mpmath() {
        // Reference values from mpmath 1.3 (hyp2f1 at 40 significant digits).
        let cases = [
            (1.3, 2.2, 4.7, -1e6, 7.956_153_501_585_010_2e-8),
            (2.5, 0.6, 1.9, -1e6, 1.947_520_888_256_456_4e-4),
            (2.5, 0.6, 1.9, 0.999, 1_781.366_939_480_825_6),
            (0.5, 1.5, 2.25, -1e8, 1.391_044_635_365_110_6e-4),
            (3.7, -2.4, 1.3, 0.99, 1.732_899_526_807_239_8e-3),
            // BG/NBD with x = 200: lifetimes' direct form, and the Euler form used here.
            (200.243, 202.426, 202.219, 0.9, 2.813_225_119_569_518_9e200),
            (1.976, -0.207, 202.219, 0.99999, 0.997_965_418_650_205_07),
            (1.976, -0.207, 4.219, 0.5, 0.944_645_275_983_189_84),
        ];
        for (a, b, c, z, want) in cases {
            assert_close(hyp2f1(a, b, c, z), want, 1e-12, &format!("2F1({a},{b};{c};{z})"));
        }
    }

    #[test]
    fn digamma_values() {
        let euler_gamma = 0.577_215_664_901_532_9;
        assert_close(digamma(1.0), -euler_gamma, 1e-14, "psi(1)");
        assert_close(digamma(0.5), -euler_gamma - 2.0 * std::f64::consts::LN_2, 1e-14, "psi(1/2)");
        for x in [0.01, 0.3, 2.7, 13.0, 250.0] {
            let h = 1e-5 * x;
            let fd = (lgamma(x + h) - lgamma(x - h)) / (2.0 * h);
            assert_close(digamma(x), fd, 1e-8, "psi vs d lgamma");
        }
    }

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
    fn analytic_gradients_match_finite_differences() {
        let data = BgData::new(&tiny_data()).expect("valid data");
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
        let spend_data = SpendData::new(&spends);
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
        let fit = fit_bg_nbd(&data).expect("fit");
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

    #[test]
    fn gamma_gamma_parameter_recovery() {
        let truth = GammaGamma { p: 6.25, q: 3.74, v: 15.44 };
        let data = simulate_gamma_gamma(20_000, truth, 7_777);
        let fit = fit_gamma_gamma(&data).expect("fit");
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

    /// Data without dropout heterogeneity (every customer drops out with probability 0.2
    /// after each purchase): the likelihood's supremum is at a + b -> infinity with
    /// a / (a + b) = 0.2. The fit must converge there and find the mean.
    #[test]
    fn homogeneous_dropout_converges_to_the_boundary() {
        let truth = BgNbd { r: 1.5, alpha: 20.0, a: 2.0e7, b: 8.0e7 };
        let data = simulate_bg_nbd(20_000, truth, 52.0, 99);
        let fit = fit_bg_nbd(&data).expect("fit");
        assert!(fit.converged, "{fit:?}");
        let p = fit.params;
        assert!(p.a + p.b > 1e3, "{p:?}");
        assert!((p.a / (p.a + p.b) - 0.2).abs() < 0.02, "{p:?}");
        assert!((p.r / truth.r - 1.0).abs() < 0.15 && (p.alpha / truth.alpha - 1.0).abs() < 0.15, "{p:?}");
        assert!(fit.log_likelihood >= truth.log_likelihood(&data) - 1e-6);
    }

    #[test]
    fn degenerate_data_terminates() {
        // No repeat purchases at all (optimum on the boundary r -> 0), and identical spends
        // (Gamma-Gamma degenerates): the fits must stop quickly and stay finite.
        let zeros: Vec<Rfm> = (0..5_000)
            .map(|i| Rfm { frequency: 0.0, recency: 0.0, t: 10.0 + f64::from(i % 30), monetary_value: 0.0 })
            .collect();
        let fit = fit_bg_nbd(&zeros).expect("fit");
        assert!(fit.log_likelihood.is_finite() && fit.log_likelihood <= 0.0, "{fit:?}");
        let same: Vec<Rfm> = (1..=5_000)
            .map(|i| Rfm { frequency: f64::from(i % 7 + 1), recency: 1.0, t: 2.0, monetary_value: 10.0 })
            .collect();
        let fit = fit_gamma_gamma(&same).expect("fit");
        assert!(fit.log_likelihood.is_finite(), "{fit:?}");
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

    #[test]
    fn large_frequency_is_finite() {
        let c = Rfm { frequency: 200.0, recency: 38.0, t: 39.0, monetary_value: 25.0 };
        let c_early = Rfm { frequency: 200.0, recency: 1.0, t: 39.0, monetary_value: 25.0 };
        let p = BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
        for cust in [c, c_early] {
            let ll = p.log_likelihood(&[cust]);
            assert!(ll.is_finite(), "ll = {ll}");
            let data = BgData::new(&[cust]).expect("valid data");
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
        let fit = fit_bg_nbd(&data).expect("fit");
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

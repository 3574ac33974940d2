//! The maximum-likelihood optimiser: BFGS (analytic gradients, backtracking Armijo line search)
//! from several starting points, each run finished by a Newton polish with a finite-difference
//! Hessian of the analytic gradient.

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

pub(super) struct Outcome<const N: usize> {
    pub(super) x: [f64; N],
    pub(super) f: f64,
    pub(super) iterations: u64,
    pub(super) converged: bool,
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
pub(super) fn minimize_multistart<const N: usize>(
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

#[cfg(test)]
mod tests {
    use crate::clv::{Rfm, RfmGroup, fit_bg_nbd, fit_gamma_gamma};

    #[test]
    fn degenerate_data_terminates() {
        // No repeat purchases at all (optimum on the boundary r -> 0), and identical spends
        // (Gamma-Gamma degenerates): the fits must stop quickly and stay finite.
        let zeros: Vec<Rfm> = (0..5_000)
            .map(|i| Rfm { frequency: 0.0, recency: 0.0, t: 10.0 + f64::from(i % 30), monetary_value: 0.0 })
            .collect();
        let fit = fit_bg_nbd(&RfmGroup::of_customers(&zeros)).expect("fit");
        assert!(fit.log_likelihood.is_finite() && fit.log_likelihood <= 0.0, "{fit:?}");
        let same: Vec<Rfm> = (1..=5_000)
            .map(|i| Rfm { frequency: f64::from(i % 7 + 1), recency: 1.0, t: 2.0, monetary_value: 10.0 })
            .collect();
        let fit = fit_gamma_gamma(&RfmGroup::of_customers(&same)).expect("fit");
        assert!(fit.log_likelihood.is_finite(), "{fit:?}");
    }
}

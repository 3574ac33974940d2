//! Table `clv_model` (outputs.md): the fitted BG/NBD and Gamma-Gamma parameters.

use polars::prelude::*;

use crate::clv::fits::finite;
use crate::tables::Run;

/// The maximum-likelihood fits of BG/NBD (`r`, `alpha`, `a`, `b`) and
/// Gamma-Gamma (`p`, `q`, `v`) with `log_likelihood`, `customers`, `iterations` and `converged`
/// (1 or 0). A model with fewer than 2 customers to fit has null parameters and converged 0.
pub fn plan(run: &Run) -> PolarsResult<LazyFrame> {
    let models = run.models()?;
    let fits = &models.fits;
    let mut rows: Vec<(&str, &str, Option<f64>)> = Vec::new();
    let bg = fits.bg_nbd.as_ref();
    for (name, value) in [
        ("r", bg.map(|fit| fit.params.r)),
        ("alpha", bg.map(|fit| fit.params.alpha)),
        ("a", bg.map(|fit| fit.params.a)),
        ("b", bg.map(|fit| fit.params.b)),
        ("log_likelihood", bg.map(|fit| fit.log_likelihood)),
        ("customers", Some(fits.bg_nbd_customers as f64)),
        ("iterations", Some(bg.map_or(0.0, |fit| fit.iterations as f64))),
        ("converged", Some(bg.map_or(0.0, |fit| f64::from(u8::from(fit.converged))))),
    ] {
        rows.push(("bg_nbd", name, value));
    }
    let gg = fits.gamma_gamma.as_ref();
    for (name, value) in [
        ("p", gg.map(|fit| fit.params.p)),
        ("q", gg.map(|fit| fit.params.q)),
        ("v", gg.map(|fit| fit.params.v)),
        ("log_likelihood", gg.map(|fit| fit.log_likelihood)),
        ("customers", Some(fits.gamma_gamma_customers as f64)),
        ("iterations", Some(gg.map_or(0.0, |fit| fit.iterations as f64))),
        ("converged", Some(gg.map_or(0.0, |fit| f64::from(u8::from(fit.converged))))),
    ] {
        rows.push(("gamma_gamma", name, value));
    }
    let frame = DataFrame::new(
        rows.len(),
        vec![
            Column::new("model".into(), rows.iter().map(|row| row.0).collect::<Vec<_>>()),
            Column::new("parameter".into(), rows.iter().map(|row| row.1).collect::<Vec<_>>()),
            Column::new("value".into(), rows.iter().map(|row| row.2.and_then(finite)).collect::<Vec<_>>()),
        ],
    )?;
    Ok(frame.lazy().sort(["model", "parameter"], SortMultipleOptions::default()))
}

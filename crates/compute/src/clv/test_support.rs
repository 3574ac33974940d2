//! Helpers shared by the CLV models' unit tests: a relative-error assertion and simulators of
//! BG/NBD and Gamma-Gamma data.

use super::{BgNbd, GammaGamma, Rfm};

pub(crate) fn assert_close(got: f64, want: f64, rel: f64, what: &str) {
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

pub(crate) fn simulate_bg_nbd(n: usize, truth: BgNbd, big_t: f64, seed: u64) -> Vec<Rfm> {
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

pub(crate) fn simulate_gamma_gamma(n: usize, truth: GammaGamma, seed: u64) -> Vec<Rfm> {
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

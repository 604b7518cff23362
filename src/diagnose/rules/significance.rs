//! Whether an observed request split differs from the intended weights beyond chance:
//! Pearson's chi-square goodness-of-fit test, with its p-value from the regularized upper
//! incomplete gamma function.

/// Below this many expected requests in some destination the chi-square approximation does
/// not hold, so no verdict is given.
pub const MIN_EXPECTED: f64 = 5.0;

/// The outcome of a goodness-of-fit test.
#[derive(Debug, Clone, Copy)]
pub struct FitTest {
    /// Pearson's statistic.
    pub statistic: f64,
    /// Degrees of freedom.
    pub df: usize,
    /// Probability of a split at least this uneven if the weights were honoured.
    pub p_value: f64,
}

/// Tests `observed` counts against `weights` (relative). `None` when the sample is too small:
/// fewer than two destinations, or an expected count under [`MIN_EXPECTED`].
pub fn chi_square(observed: &[u64], weights: &[f64]) -> Option<FitTest> {
    let n = observed.iter().fold(0u64, |sum, o| sum.saturating_add(*o));
    let total: f64 = weights.iter().sum();
    if observed.len() != weights.len() || observed.len() < 2 || total <= 0.0 {
        return None;
    }
    let expected: Vec<f64> = weights.iter().map(|w| n as f64 * w / total).collect();
    if expected.iter().any(|e| *e < MIN_EXPECTED) {
        return None;
    }
    let statistic: f64 = observed.iter().zip(&expected).map(|(o, e)| (*o as f64 - e).powi(2) / e).sum();
    let df = observed.len() - 1;
    Some(FitTest { statistic, df, p_value: upper_gamma_q(df as f64 / 2.0, statistic / 2.0) })
}

/// Q(a, x) = Γ(a, x) / Γ(a): a series below `a + 1`, a continued fraction above.
fn upper_gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let prefix = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..500 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        return (1.0 - sum * prefix).clamp(0.0, 1.0);
    }
    // Lentz's method for the continued fraction.
    let tiny = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / tiny;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..500 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        d = if d.abs() < tiny { tiny } else { d };
        c = b + an / c;
        c = if c.abs() < tiny { tiny } else { c };
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-15 {
            break;
        }
    }
    (prefix * h).clamp(0.0, 1.0)
}

/// ln Γ(x) by the Lanczos approximation (g = 7, 9 terms).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let series: f64 = G[0] + G.iter().enumerate().skip(1).map(|(i, g)| g / (x + i as f64)).sum::<f64>();
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_match_chi_square_tables() {
        // Critical values at p = 0.01: 6.635 (df 1), 9.210 (df 2), 11.345 (df 3).
        for (x, df) in [(6.635, 1.0), (9.210, 2.0), (11.345, 3.0)] {
            let p = upper_gamma_q(df / 2.0, x / 2.0);
            assert!((p - 0.01).abs() < 2e-4, "df {df}: p = {p}");
        }
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn a_half_half_split_is_not_ninety_ten() {
        let t = chi_square(&[500, 500], &[90.0, 10.0]).unwrap();
        assert!(t.p_value < 1e-10);
        let close = chi_square(&[440, 60], &[90.0, 10.0]).unwrap();
        assert!(close.p_value > 0.01, "{close:?}");
        assert!(chi_square(&[20, 0], &[90.0, 10.0]).is_none(), "2 expected requests in v2 is too few to judge");
    }
}

//! Statistics of one element property over the elements of a composition.
//!
//! `values[i]` is the property of element i and `amounts[i]` its amount in the formula (not
//! normalised). The matminer statistics reproduce `matminer.featurizers.utils.stats.PropertyStats`
//! operation by operation (same summation order), so results agree to the last few ulps.

/// A statistic over the elements of a composition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// matminer `minimum`: NaN if any value is NaN.
    Minimum,
    /// matminer `maximum`: NaN if any value is NaN.
    Maximum,
    /// matminer `range` = maximum - minimum.
    Range,
    /// matminer `mean`: `sum(a_i x_i) / sum(a_i)`; XenonPy `ave` is the same quantity.
    Mean,
    /// matminer `avg_dev`: `sum(a_i |x_i - mean|) / sum(a_i)`.
    AvgDev,
    /// matminer `mode`: the value of the most abundant element; ties (np.isclose) -> smallest value.
    Mode,
    /// XenonPy `sum`: `sum(a_i x_i)` with raw amounts.
    WeightedSum,
    /// XenonPy `var`: `sum(f_i (x_i - mean)^2)` with fractions `f_i = a_i / sum(a)`.
    WeightedVariance,
    /// XenonPy `gmean`: `exp(sum(f_i ln x_i))`; 0 if any x_i = 0; NaN if any x_i < 0.
    GeometricMean,
    /// XenonPy `hmean`: `1 / sum(f_i / x_i)` (IEEE: a zero value gives 0).
    HarmonicMean,
}

impl Stat {
    /// Name used in matminer feature labels.
    pub fn matminer_name(self) -> &'static str {
        match self {
            Stat::Minimum => "minimum",
            Stat::Maximum => "maximum",
            Stat::Range => "range",
            Stat::Mean => "mean",
            Stat::AvgDev => "avg_dev",
            Stat::Mode => "mode",
            Stat::WeightedSum => "sum",
            Stat::WeightedVariance => "var",
            Stat::GeometricMean => "gmean",
            Stat::HarmonicMean => "hmean",
        }
    }

    /// Name used in XenonPy-style labels (`ave:atomic_number`).
    pub fn xenonpy_name(self) -> &'static str {
        match self {
            Stat::Mean => "ave",
            Stat::Maximum => "max",
            Stat::Minimum => "min",
            other => other.matminer_name(),
        }
    }

    /// Parse either naming (`mean`/`ave`, `minimum`/`min`, ...).
    pub fn from_name(name: &str) -> Option<Stat> {
        Some(match name {
            "minimum" | "min" => Stat::Minimum,
            "maximum" | "max" => Stat::Maximum,
            "range" => Stat::Range,
            "mean" | "ave" | "average" => Stat::Mean,
            "avg_dev" => Stat::AvgDev,
            "mode" => Stat::Mode,
            "sum" => Stat::WeightedSum,
            "var" | "variance" => Stat::WeightedVariance,
            "gmean" => Stat::GeometricMean,
            "hmean" => Stat::HarmonicMean,
            _ => return None,
        })
    }
}

/// The seven XenonPy statistics in XenonPy's order.
pub const XENONPY_STATS: [Stat; 7] = [
    Stat::Mean,
    Stat::WeightedSum,
    Stat::WeightedVariance,
    Stat::GeometricMean,
    Stat::HarmonicMean,
    Stat::Maximum,
    Stat::Minimum,
];

/// The six Magpie statistics in matminer's order.
pub const MAGPIE_STATS: [Stat; 6] = [Stat::Minimum, Stat::Maximum, Stat::Range, Stat::Mean, Stat::AvgDev, Stat::Mode];

#[inline]
fn any_nan(values: &[f64]) -> bool {
    values.iter().any(|v| v.is_nan())
}

/// Python's `min()` over a list without NaN (first of equal values, which does not matter here).
#[inline]
fn py_min(values: &[f64]) -> f64 {
    let mut m = values[0];
    for &v in &values[1..] {
        if v < m {
            m = v;
        }
    }
    m
}

#[inline]
fn py_max(values: &[f64]) -> f64 {
    let mut m = values[0];
    for &v in &values[1..] {
        if v > m {
            m = v;
        }
    }
    m
}

/// numpy's sum of a short contiguous float64 vector. numpy adds sequentially below 8 items and
/// uses 8 interleaved accumulators from 8 on (pairwise_sum); both are mirrored here.
#[inline]
pub(crate) fn np_sum(n: usize, item: impl Fn(usize) -> f64) -> f64 {
    if n < 8 {
        let mut s = 0.0;
        for i in 0..n {
            s += item(i);
        }
        s
    } else {
        pairwise(0, n, &item)
    }
}

fn pairwise(start: usize, n: usize, item: &dyn Fn(usize) -> f64) -> f64 {
    if n < 8 {
        let mut s = 0.0;
        for i in start..start + n {
            s += item(i);
        }
        s
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        for (k, slot) in r.iter_mut().enumerate() {
            *slot = item(start + k);
        }
        let mut i = 8;
        while i + 8 <= n {
            for (k, slot) in r.iter_mut().enumerate() {
                *slot += item(start + i + k);
            }
            i += 8;
        }
        let mut s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            s += item(start + i);
            i += 1;
        }
        s
    } else {
        let half = (n / 2) - (n / 2) % 8;
        pairwise(start, half, item) + pairwise(start + half, n - half, item)
    }
}

/// `np.average(values, weights=amounts)`.
#[inline]
pub(crate) fn np_average(values: &[f64], amounts: &[f64], amount_sum: f64) -> f64 {
    np_sum(values.len(), |i| values[i] * amounts[i]) / amount_sum
}

/// Compute one statistic. `amount_sum` is `np.sum(amounts)` (passed in to compute it once).
pub fn compute(stat: Stat, values: &[f64], amounts: &[f64], amount_sum: f64) -> f64 {
    match stat {
        Stat::Minimum => {
            if any_nan(values) {
                f64::NAN
            } else {
                py_min(values)
            }
        }
        Stat::Maximum => {
            if any_nan(values) {
                f64::NAN
            } else {
                py_max(values)
            }
        }
        Stat::Range => {
            if any_nan(values) {
                f64::NAN
            } else {
                py_max(values) - py_min(values)
            }
        }
        Stat::Mean => np_average(values, amounts, amount_sum),
        Stat::AvgDev => {
            let mean = np_average(values, amounts, amount_sum);
            np_sum(values.len(), |i| (values[i] - mean).abs() * amounts[i]) / amount_sum
        }
        Stat::Mode => {
            // np.isclose(w, w.max()): |w - max| <= 1e-8 + 1e-5 * |max|
            let w_max = amounts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let tol = 1e-8 + 1e-5 * w_max.abs();
            let mut best = f64::INFINITY;
            for (&v, &w) in values.iter().zip(amounts) {
                if (w - w_max).abs() <= tol {
                    if v.is_nan() {
                        return f64::NAN;
                    }
                    if v < best {
                        best = v;
                    }
                }
            }
            best
        }
        Stat::WeightedSum => np_sum(values.len(), |i| values[i] * amounts[i]),
        Stat::WeightedVariance => {
            let mean = np_average(values, amounts, amount_sum);
            np_sum(values.len(), |i| {
                let d = values[i] - mean;
                (amounts[i] / amount_sum) * (d * d)
            })
        }
        Stat::GeometricMean => {
            if values.iter().any(|&v| v < 0.0) || any_nan(values) {
                f64::NAN
            } else if values.contains(&0.0) {
                0.0
            } else {
                np_sum(values.len(), |i| (amounts[i] / amount_sum) * values[i].ln()).exp()
            }
        }
        Stat::HarmonicMean => 1.0 / np_sum(values.len(), |i| (amounts[i] / amount_sum) / values[i]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matminer_semantics() {
        let v = [1.0, 3.0, 2.0];
        let a = [1.0, 2.0, 2.0];
        let s = 5.0;
        assert_eq!(compute(Stat::Minimum, &v, &a, s), 1.0);
        assert_eq!(compute(Stat::Maximum, &v, &a, s), 3.0);
        assert_eq!(compute(Stat::Range, &v, &a, s), 2.0);
        assert_eq!(compute(Stat::Mean, &v, &a, s), 11.0 / 5.0);
        // ties in amount -> smallest value
        assert_eq!(compute(Stat::Mode, &v, &a, s), 2.0);
        let mean = 11.0 / 5.0;
        let dev = ((1.0f64 - mean).abs() + 2.0 * (3.0f64 - mean).abs() + 2.0 * (2.0f64 - mean).abs()) / 5.0;
        assert!((compute(Stat::AvgDev, &v, &a, s) - dev).abs() < 1e-15);
        assert!(compute(Stat::Minimum, &[1.0, f64::NAN], &[1.0, 1.0], 2.0).is_nan());
    }

    #[test]
    fn xenonpy_semantics() {
        let v = [2.0, 8.0];
        let a = [1.0, 1.0];
        assert_eq!(compute(Stat::WeightedSum, &v, &a, 2.0), 10.0);
        assert!((compute(Stat::GeometricMean, &v, &a, 2.0) - 4.0).abs() < 1e-12);
        assert!((compute(Stat::HarmonicMean, &v, &a, 2.0) - 3.2).abs() < 1e-12);
        assert_eq!(compute(Stat::WeightedVariance, &v, &a, 2.0), 9.0);
        assert!(compute(Stat::GeometricMean, &[-1.0, 2.0], &a, 2.0).is_nan());
        assert_eq!(compute(Stat::GeometricMean, &[0.0, 2.0], &a, 2.0), 0.0);
    }

    #[test]
    fn np_sum_orders() {
        let xs: Vec<f64> = (0..300).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        let direct: f64 = xs.iter().sum();
        assert!((np_sum(xs.len(), |i| xs[i]) - direct).abs() < 1e-12);
    }
}

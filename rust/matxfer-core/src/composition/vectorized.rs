//! Fast path of the table statistics: all columns of a table at once.
//!
//! The scalar path in `stats.rs` computes one (column, statistic) pair at a time. Here each
//! statistic is accumulated for every column together, walking the element rows of the table
//! (contiguous, so the inner loops vectorise). The arithmetic of every value is the same sequence
//! of operations as the scalar path, so both give identical bits; the fast path is used only where
//! that holds: fewer than 8 elements (numpy sums sequentially there) and no NaN in the rows used.

use super::stats::Stat;

/// Reusable accumulators, one slot per table column.
#[derive(Debug, Default)]
pub(crate) struct Accumulators {
    min: Vec<f64>,
    max: Vec<f64>,
    weighted_sum: Vec<f64>,
    mean: Vec<f64>,
    extra: Vec<f64>,
}

fn reset(v: &mut Vec<f64>, n: usize, value: f64) {
    v.clear();
    v.resize(n, value);
}

/// `rows[i]` is the table row of element i, `amounts[i]` its amount. `put(stat_index, column,
/// value)` receives every result. Returns `false` (and does nothing) if the fast path does not
/// apply; the caller then uses the scalar path.
pub(crate) fn table_stats<'a>(
    rows: impl Fn(usize) -> &'a [f64],
    n_elements: usize,
    n_cols: usize,
    amounts: &[f64],
    amount_sum: f64,
    stats: &[Stat],
    acc: &mut Accumulators,
    mut put: impl FnMut(usize, usize, f64),
) -> bool {
    if n_elements == 0 || n_elements >= 8 {
        return false;
    }
    let needs_mean = stats.iter().any(|s| matches!(s, Stat::Mean | Stat::AvgDev | Stat::WeightedVariance));
    let needs_minmax = stats.iter().any(|s| matches!(s, Stat::Minimum | Stat::Maximum | Stat::Range));
    let needs_sum = needs_mean || stats.contains(&Stat::WeightedSum);

    if needs_minmax {
        acc.min.clear();
        acc.min.extend_from_slice(rows(0));
        acc.max.clear();
        acc.max.extend_from_slice(rows(0));
        for i in 1..n_elements {
            let row = rows(i);
            for ((mn, mx), &v) in acc.min.iter_mut().zip(acc.max.iter_mut()).zip(row) {
                // Python's min()/max(): keep the earlier value unless strictly smaller/larger.
                if v < *mn {
                    *mn = v;
                }
                if v > *mx {
                    *mx = v;
                }
            }
        }
    }
    if needs_sum {
        // numpy below 8 items: s = 0; s += v_i * a_i in order.
        reset(&mut acc.weighted_sum, n_cols, 0.0);
        for i in 0..n_elements {
            let a = amounts[i];
            for (s, &v) in acc.weighted_sum.iter_mut().zip(rows(i)) {
                *s += v * a;
            }
        }
        acc.mean.clear();
        acc.mean.extend(acc.weighted_sum.iter().map(|&s| s / amount_sum));
    }
    for (k, &stat) in stats.iter().enumerate() {
        match stat {
            Stat::Minimum => acc.min.iter().enumerate().for_each(|(c, &v)| put(k, c, v)),
            Stat::Maximum => acc.max.iter().enumerate().for_each(|(c, &v)| put(k, c, v)),
            Stat::Range => {
                for c in 0..n_cols {
                    put(k, c, acc.max[c] - acc.min[c]);
                }
            }
            Stat::Mean => acc.mean.iter().enumerate().for_each(|(c, &v)| put(k, c, v)),
            Stat::WeightedSum => acc.weighted_sum.iter().enumerate().for_each(|(c, &v)| put(k, c, v)),
            Stat::AvgDev => {
                reset(&mut acc.extra, n_cols, 0.0);
                for i in 0..n_elements {
                    let a = amounts[i];
                    for ((d, &v), &m) in acc.extra.iter_mut().zip(rows(i)).zip(&acc.mean) {
                        *d += (v - m).abs() * a;
                    }
                }
                acc.extra.iter().enumerate().for_each(|(c, &d)| put(k, c, d / amount_sum));
            }
            Stat::WeightedVariance => {
                reset(&mut acc.extra, n_cols, 0.0);
                for i in 0..n_elements {
                    let f = amounts[i] / amount_sum;
                    for ((d, &v), &m) in acc.extra.iter_mut().zip(rows(i)).zip(&acc.mean) {
                        let dv = v - m;
                        *d += f * (dv * dv);
                    }
                }
                acc.extra.iter().enumerate().for_each(|(c, &d)| put(k, c, d));
            }
            Stat::Mode => {
                // Elements whose amount is np.isclose to the largest; the smallest value among them.
                let w_max = amounts[..n_elements].iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let tol = 1e-8 + 1e-5 * w_max.abs();
                reset(&mut acc.extra, n_cols, f64::INFINITY);
                for i in 0..n_elements {
                    if (amounts[i] - w_max).abs() <= tol {
                        for (m, &v) in acc.extra.iter_mut().zip(rows(i)) {
                            if v < *m {
                                *m = v;
                            }
                        }
                    }
                }
                acc.extra.iter().enumerate().for_each(|(c, &v)| put(k, c, v));
            }
            Stat::GeometricMean | Stat::HarmonicMean => {
                // Rare in hot loops and with special cases per value: use the scalar definition.
                let mut values = [0.0f64; 8];
                for c in 0..n_cols {
                    for (i, slot) in values.iter_mut().enumerate().take(n_elements) {
                        *slot = rows(i)[c];
                    }
                    put(k, c, super::stats::compute(stat, &values[..n_elements], amounts, amount_sum));
                }
            }
        }
    }
    true
}

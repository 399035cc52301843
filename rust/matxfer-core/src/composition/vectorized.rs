//! Fast path of the table statistics: all columns of a table at once.
//!
//! The scalar path in `stats.rs` computes one (column, statistic) pair at a time. Here every
//! statistic is accumulated for all columns together while walking the element rows of the table
//! once (rows are contiguous, so the inner loops vectorise). Each value is produced by the same
//! sequence of floating-point operations as in the scalar path, so both give identical bits
//! (checked by `fast_path_gives_the_scalar_bits`), NaN included: missing values are tracked with
//! per-column flags instead of sending the row to the scalar path. The fast path applies to
//! formulas with fewer than 8 elements, where numpy sums sequentially; larger ones use `stats.rs`.

use super::stats::Stat;

/// Reusable accumulators, one slot per table column.
#[derive(Debug, Default)]
pub(crate) struct Accumulators {
    min: Vec<f64>,
    max: Vec<f64>,
    any_nan: Vec<bool>,
    weighted_sum: Vec<f64>,
    mean: Vec<f64>,
    avg_dev: Vec<f64>,
    variance: Vec<f64>,
    mode: Vec<f64>,
    mode_nan: Vec<bool>,
    log_sum: Vec<f64>,
    any_negative: Vec<bool>,
    any_zero: Vec<bool>,
    inverse_sum: Vec<f64>,
}

fn reset<T: Copy>(v: &mut Vec<T>, n: usize, value: T) {
    v.clear();
    v.resize(n, value);
}

#[derive(Clone, Copy)]
struct Needs {
    min_max: bool,
    sum: bool,
    avg_dev: bool,
    variance: bool,
    mode: bool,
    gmean: bool,
    hmean: bool,
}

impl Needs {
    fn of(stats: &[Stat]) -> Self {
        let has = |s: Stat| stats.contains(&s);
        let avg_dev = has(Stat::AvgDev);
        let variance = has(Stat::WeightedVariance);
        Needs {
            min_max: has(Stat::Minimum) || has(Stat::Maximum) || has(Stat::Range),
            sum: has(Stat::Mean) || has(Stat::WeightedSum) || avg_dev || variance,
            avg_dev,
            variance,
            mode: has(Stat::Mode),
            gmean: has(Stat::GeometricMean),
            hmean: has(Stat::HarmonicMean),
        }
    }
}

/// `rows(i)` is the table row of element i and `amounts[i]` its amount; `amount_sum` is numpy's
/// sum of the amounts. Results go to `out` through `slot(stat_index, column)`. Returns `false` (and
/// writes nothing) if the fast path does not apply; the caller then uses the scalar path.
#[allow(clippy::too_many_arguments)]
pub(crate) fn table_stats<'a>(
    rows: impl Fn(usize) -> &'a [f64],
    n_elements: usize,
    n_cols: usize,
    amounts: &[f64],
    amount_sum: f64,
    stats: &[Stat],
    acc: &mut Accumulators,
    out: &mut [f64],
    slot: impl Fn(usize, usize) -> usize,
) -> bool {
    if n_elements == 0 || n_elements >= 8 {
        return false;
    }
    let needs = Needs::of(stats);
    let mut fractions = [0.0f64; 8];
    for (f, &a) in fractions.iter_mut().zip(&amounts[..n_elements]) {
        *f = a / amount_sum;
    }
    // np.isclose(w, w.max()): the elements that count for the mode.
    let w_max = amounts[..n_elements].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tol = 1e-8 + 1e-5 * w_max.abs();

    if needs.min_max {
        acc.min.clear();
        acc.min.extend_from_slice(rows(0));
        acc.max.clear();
        acc.max.extend_from_slice(rows(0));
        reset(&mut acc.any_nan, n_cols, false);
    }
    if needs.sum {
        reset(&mut acc.weighted_sum, n_cols, 0.0);
    }
    if needs.mode {
        reset(&mut acc.mode, n_cols, f64::INFINITY);
        reset(&mut acc.mode_nan, n_cols, false);
    }
    if needs.gmean {
        reset(&mut acc.log_sum, n_cols, 0.0);
        reset(&mut acc.any_negative, n_cols, false);
        reset(&mut acc.any_zero, n_cols, false);
    }
    if needs.hmean {
        reset(&mut acc.inverse_sum, n_cols, 0.0);
    }

    // One pass over the elements for everything that does not need the mean.
    for i in 0..n_elements {
        let row = &rows(i)[..n_cols];
        let (a, f) = (amounts[i], fractions[i]);
        if needs.min_max {
            for (((mn, mx), nan), &v) in acc.min.iter_mut().zip(acc.max.iter_mut()).zip(acc.any_nan.iter_mut()).zip(row)
            {
                // Python's min()/max(): keep the earlier value unless strictly smaller/larger.
                if v < *mn {
                    *mn = v;
                }
                if v > *mx {
                    *mx = v;
                }
                *nan |= v.is_nan();
            }
        }
        if needs.sum {
            // numpy below 8 items: s = 0; s += v_i * a_i in order.
            for (s, &v) in acc.weighted_sum.iter_mut().zip(row) {
                *s += v * a;
            }
        }
        if needs.mode && (a - w_max).abs() <= tol {
            for ((m, nan), &v) in acc.mode.iter_mut().zip(acc.mode_nan.iter_mut()).zip(row) {
                *nan |= v.is_nan();
                if v < *m {
                    *m = v;
                }
            }
        }
        if needs.gmean {
            let flags = acc.any_negative.iter_mut().zip(acc.any_zero.iter_mut());
            for ((log_sum, (negative, zero)), &v) in acc.log_sum.iter_mut().zip(flags).zip(row) {
                *negative |= v < 0.0 || v.is_nan();
                *zero |= v == 0.0;
                *log_sum += f * v.ln();
            }
        }
        if needs.hmean {
            for (s, &v) in acc.inverse_sum.iter_mut().zip(row) {
                *s += f / v;
            }
        }
    }

    // Second pass for the statistics around the mean.
    if needs.sum {
        acc.mean.clear();
        acc.mean.extend(acc.weighted_sum.iter().map(|&s| s / amount_sum));
        if needs.avg_dev {
            reset(&mut acc.avg_dev, n_cols, 0.0);
        }
        if needs.variance {
            reset(&mut acc.variance, n_cols, 0.0);
        }
        if needs.avg_dev || needs.variance {
            for i in 0..n_elements {
                let row = &rows(i)[..n_cols];
                let (a, f) = (amounts[i], fractions[i]);
                if needs.avg_dev {
                    for ((d, &v), &m) in acc.avg_dev.iter_mut().zip(row).zip(&acc.mean) {
                        *d += (v - m).abs() * a;
                    }
                }
                if needs.variance {
                    for ((d, &v), &m) in acc.variance.iter_mut().zip(row).zip(&acc.mean) {
                        let dv = v - m;
                        *d += f * (dv * dv);
                    }
                }
            }
        }
    }

    // A macro rather than a closure so each statistic's loop is monomorphised (no dynamic dispatch).
    macro_rules! put {
        ($k:expr, $values:expr) => {
            for (c, v) in $values.enumerate() {
                out[slot($k, c)] = v;
            }
        };
    }
    for (k, &stat) in stats.iter().enumerate() {
        let nan_if = |flag: bool, v: f64| if flag { f64::NAN } else { v };
        match stat {
            Stat::Minimum => put!(k, acc.min.iter().zip(&acc.any_nan).map(|(&v, &n)| nan_if(n, v))),
            Stat::Maximum => put!(k, acc.max.iter().zip(&acc.any_nan).map(|(&v, &n)| nan_if(n, v))),
            Stat::Range => {
                put!(k, acc.max.iter().zip(&acc.min).zip(&acc.any_nan).map(|((&hi, &lo), &n)| nan_if(n, hi - lo)))
            }
            Stat::Mean => put!(k, acc.mean.iter().copied()),
            Stat::WeightedSum => put!(k, acc.weighted_sum.iter().copied()),
            Stat::AvgDev => put!(k, acc.avg_dev.iter().map(|&d| d / amount_sum)),
            Stat::WeightedVariance => put!(k, acc.variance.iter().copied()),
            Stat::Mode => put!(k, acc.mode.iter().zip(&acc.mode_nan).map(|(&v, &n)| nan_if(n, v))),
            Stat::GeometricMean => {
                put!(
                    k,
                    acc.log_sum.iter().zip(&acc.any_negative).zip(&acc.any_zero).map(|((&l, &neg), &zero)| {
                        if neg {
                            f64::NAN
                        } else if zero {
                            0.0
                        } else {
                            l.exp()
                        }
                    })
                )
            }
            Stat::HarmonicMean => put!(k, acc.inverse_sum.iter().map(|&s| 1.0 / s)),
        }
    }
    true
}

//! matminer's `CrystalNNFingerprint.from_preset("ops")` (matminer 0.10.1) for every site: for each
//! coordination number `n = 1..=24`, the CrystalNN probability `wt` of `n` ("wt CN_n"), then for
//! each order parameter matminer lists at `n` ([`crate::order_params::CRYSTALNN_OPS`]) `wt` times
//! the parameter of the center and its first `n` CrystalNN neighbors (0 where `wt` is 0 or
//! pymatgen's parameter is `None`), named `"{label} CN_{n}"`.

use rayon::prelude::*;

use crate::crystal_nn::{crystal_nn_structure, CrystalNNOptions};
use crate::error::CoreError;
use crate::order_params::{crystalnn_ops, order_parameters_with, OrderParameter, Workspace, CRYSTALNN_OPS};
use crate::parallel::with_threads;
use crate::structure::linalg::{frac_to_cart, Vec3};
use crate::structure::Structure;

/// Largest coordination number of the preset.
pub const MAX_CN: usize = 24;

/// Order parameters per coordination number `1..=MAX_CN` (index `n - 1`), in matminer's order.
fn ops_by_cn() -> Vec<Vec<OrderParameter>> {
    let all = crystalnn_ops();
    let mut by_cn = vec![Vec::new(); MAX_CN];
    for (k, (cn, ..)) in CRYSTALNN_OPS.iter().enumerate() {
        by_cn[cn - 1].push(all[k]);
    }
    by_cn
}

/// matminer's feature names, in its order.
pub fn ops_feature_labels() -> Vec<String> {
    let mut out = Vec::new();
    for cn in 1..=MAX_CN {
        out.push(format!("wt CN_{cn}"));
        for (c, label, ..) in CRYSTALNN_OPS {
            if *c == cn {
                out.push(format!("{label} CN_{cn}"));
            }
        }
    }
    out
}

fn fingerprint_structure(
    s: &Structure,
    index: usize,
    opts: &CrystalNNOptions,
    by_cn: &[Vec<OrderParameter>],
    n_features: usize,
) -> Result<Vec<f64>, CoreError> {
    let sites = crystal_nn_structure(s, index, opts, true)?;
    let mut out = vec![0.0; sites.len() * n_features];
    let mut work = Workspace::default();
    let mut values: Vec<Option<f64>> = Vec::new();
    let mut vectors: Vec<Vec3> = Vec::new();
    for (i, t) in sites.iter().enumerate() {
        let center = frac_to_cart(&s.frac_coords[i], &s.lattice);
        vectors.clear();
        for (k, &j) in t.j.iter().enumerate() {
            let f = s.frac_coords[j as usize];
            let sh = t.shifts[k];
            let p = frac_to_cart(&[f[0] + sh[0] as f64, f[1] + sh[1] as f64, f[2] + sh[2] as f64], &s.lattice);
            vectors.push([p[0] - center[0], p[1] - center[1], p[2] - center[2]]);
        }
        let row = &mut out[i * n_features..(i + 1) * n_features];
        let mut col = 0;
        for (c, ops) in by_cn.iter().enumerate() {
            let cn = c + 1;
            let wt = t.cn_values.iter().position(|&v| v as usize == cn).map_or(0.0, |p| t.cn_probs[p]);
            row[col] = wt;
            col += 1;
            if wt != 0.0 && !ops.is_empty() {
                values.clear();
                values.resize(ops.len(), None);
                order_parameters_with(&vectors[..cn], ops, &mut work, &mut values).map_err(|e| {
                    CoreError::Structure {
                        index,
                        name: s.id.clone(),
                        reason: format!("order parameters of site {i} at CN {cn}: {e}"),
                    }
                })?;
                for (k, v) in values.iter().enumerate() {
                    row[col + k] = wt * v.unwrap_or(0.0);
                }
            }
            col += ops.len();
        }
    }
    Ok(out)
}

/// `(N, F)` row-major fingerprints of every site of every structure (sites in order, structures
/// in order), `F = ops_feature_labels().len()`. Structures are checked first (the lowest bad
/// index is reported), the output held to the memory budget; the result does not depend on the
/// thread count.
pub fn crystal_nn_fingerprint_batch(
    structures: &[Structure],
    opts: &CrystalNNOptions,
    n_threads: Option<usize>,
) -> Result<Vec<f64>, CoreError> {
    crate::parallel::effective_threads(n_threads)?;
    opts.validate()?;
    let n_features = ops_feature_labels().len();
    let n_sites: usize = structures.iter().map(|s| s.n_sites()).sum();
    crate::limits::check_output_bytes(n_sites as f64 * n_features as f64 * 8.0, || {
        format!("the CrystalNN fingerprints of {n_sites} sites")
    })?;
    // Every structure first, so the lowest bad index is the one reported.
    for (index, s) in structures.iter().enumerate() {
        crate::crystal_nn::check_structure(s, index, opts)?;
    }
    let by_cn = ops_by_cn();
    let parts: Vec<Result<Vec<f64>, CoreError>> = with_threads(n_threads, || {
        structures
            .par_iter()
            .enumerate()
            .map(|(index, s)| {
                crate::parallel::check_cancelled()?;
                fingerprint_structure(s, index, opts, &by_cn, n_features)
            })
            .collect()
    })?;
    let mut out = Vec::with_capacity(n_sites * n_features);
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_matminer() {
        let labels = ops_feature_labels();
        assert_eq!(labels.len(), 61);
        assert_eq!(&labels[..3], &["wt CN_1", "sgl_bd CN_1", "wt CN_2"]);
        assert_eq!(labels.last().unwrap(), "wt CN_24");
    }

    #[test]
    fn rocksalt_sites_are_octahedral() {
        let a = 5.64;
        let s = Structure::new(
            [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]],
            vec![
                [0.0, 0.0, 0.0],
                [0.5, 0.5, 0.0],
                [0.5, 0.0, 0.5],
                [0.0, 0.5, 0.5],
                [0.5, 0.0, 0.0],
                [0.0, 0.5, 0.0],
                [0.0, 0.0, 0.5],
                [0.5, 0.5, 0.5],
            ],
            vec![11, 11, 11, 11, 17, 17, 17, 17],
            [true; 3],
        );
        let out = crystal_nn_fingerprint_batch(&[s], &CrystalNNOptions::default(), Some(1)).unwrap();
        let labels = ops_feature_labels();
        let oct = labels.iter().position(|l| l == "octahedral CN_6").unwrap();
        let wt6 = labels.iter().position(|l| l == "wt CN_6").unwrap();
        for i in 0..8 {
            let row = &out[i * 61..(i + 1) * 61];
            assert_eq!(row[wt6], 1.0);
            assert!((row[oct] - 1.0).abs() < 1e-12, "{}", row[oct]);
            for (k, l) in labels.iter().enumerate() {
                if l.starts_with("wt ") && k != wt6 {
                    assert_eq!(row[k], 0.0, "{l}");
                }
            }
        }
    }
}

//! The Ward et al. 2017 structure features (PRB 96, 024104), computed from the periodic Voronoi
//! tessellation ([`crate::voronoi`]) exactly as matminer 0.10.1 defines them, plus matminer's
//! `GlobalSymmetryFeatures` (found by moyo, [`crate::structure_descriptors::global_symmetry`]).
//!
//! Every neighbor of a site is a face of its Voronoi cell, weighted by `w = area / largest area
//! of the cell` (pymatgen's `VoronoiNN(weight="area")`). Per structure, in this order:
//!
//! 1. `SiteStatsFingerprint.from_preset("CoordinationNumber_ward-prb-2017")`: minimum, maximum,
//!    range, mean and mean absolute deviation over sites of the effective coordination number
//!    `(sum w)^2 / sum w^2` (5 features).
//! 2. `SiteStatsFingerprint.from_preset("LocalPropertyDifference_ward-prb-2017")`: for each of the
//!    22 Magpie properties [`LPD_PROPERTIES`], the same five statistics over sites of
//!    `sum w |p_n - p_i| / sum w` (110 features). Properties come from the embedded `magpie`
//!    table (the same values as matminer's `magpie_elementdata` files), a missing value replaced
//!    by the property's mean over the elements that have it (`MagpieData(impute_nan=True)`).
//! 3. `StructuralHeterogeneity()`: with `l_i = sum w d / sum w` the mean bond length of a site
//!    (`d` the neighbor distance) and `v_i = (sum w |d - l_i| / sum w) / l_i` its neighbor distance
//!    variation: mean absolute deviation, maximum and minimum of `l_i / mean(l)`; the five
//!    statistics of `v_i`; the mean absolute deviation of the Voronoi volumes divided by their
//!    mean (9 features).
//! 4. `ChemicalOrdering()`: for shells 1, 2, 3, the mean over sites and element types `t` of
//!    `|1 - sum_{n of type t} W_n / (x_t sum_n W_n)|`, where the neighbors `n` of shell `k` are
//!    the ends of the non-backtracking paths of `k` Voronoi steps (no site image visited twice,
//!    the start included) and `W_n` is the product of the step weights, summed over paths
//!    (pymatgen's `NearNeighbors._get_nn_shell_info`); `x_t` is the atomic fraction of `t`. A
//!    structure of one element gives 0 (3 features).
//! 5. `MaximumPackingEfficiency()`: `4/3 pi sum_i (d_i / 2)^3 / V` with `d_i` the distance to the
//!    nearest neighbor (the nearest Voronoi face) (1 feature).
//! 6. `GlobalSymmetryFeatures()`: space group number, crystal system code, centrosymmetry (0/1)
//!    and number of symmetry operations (4 numeric features; matminer's `crystal_system` name is
//!    a string and is left out of the matrix, its integer code is kept).
//!
//! Each structure is computed on one thread from its own tessellation (the tessellation of a large
//! structure is split over threads by sites, with the same result), so the output is bitwise the
//! same for every thread count.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::elements::{embedded_table, ElementTable};
use crate::error::CoreError;
use crate::parallel::with_threads;
use crate::structure::Structure;
use crate::structure_descriptors::{check_symprec, global_symmetry};
use crate::voronoi::{check_structure, voronoi_structure, SiteCell};

/// The Magpie properties of matminer's `LocalPropertyDifference.from_preset("ward-prb-2017")`,
/// in its order.
pub const LPD_PROPERTIES: [&str; 22] = [
    "Number",
    "MendeleevNumber",
    "AtomicWeight",
    "MeltingT",
    "Column",
    "Row",
    "CovalentRadius",
    "Electronegativity",
    "NsValence",
    "NpValence",
    "NdValence",
    "NfValence",
    "NValence",
    "NsUnfilled",
    "NpUnfilled",
    "NdUnfilled",
    "NfUnfilled",
    "NUnfilled",
    "GSvolume_pa",
    "GSbandgap",
    "GSmagmom",
    "SpaceGroupNumber",
];

/// The statistics of matminer's Ward-2017 `SiteStatsFingerprint` presets and of
/// `StructuralHeterogeneity`, in order.
pub const STATS: [&str; 5] = ["minimum", "maximum", "range", "mean", "avg_dev"];

/// The neighbor shells of `ChemicalOrdering()`.
pub const SHELLS: usize = 3;

/// Features computed from the tessellation: 5 + 110 + 9 + 3 + 1.
pub const N_VORONOI_FEATURES: usize = 5 + 5 * LPD_PROPERTIES.len() + 9 + SHELLS + 1;

/// The numeric `GlobalSymmetryFeatures` columns.
pub const SYMMETRY_FEATURES: [&str; 4] =
    ["spacegroup_num", "crystal_system_int", "is_centrosymmetric", "n_symmetry_ops"];

/// Width of a `ward2017` row.
pub const N_FEATURES: usize = N_VORONOI_FEATURES + SYMMETRY_FEATURES.len();

/// Feature names of the `ward2017` preset, matminer's labels in matminer's order.
pub fn feature_names() -> Vec<String> {
    let mut names = Vec::with_capacity(N_FEATURES);
    for stat in STATS {
        names.push(format!("{stat} CN_VoronoiNN"));
    }
    for p in LPD_PROPERTIES {
        for stat in STATS {
            names.push(format!("{stat} local difference in {p}"));
        }
    }
    names.push("mean absolute deviation in relative bond length".into());
    names.push("max relative bond length".into());
    names.push("min relative bond length".into());
    for stat in STATS {
        names.push(format!("{stat} neighbor distance variation"));
    }
    names.push("mean absolute deviation in relative cell size".into());
    for shell in 1..=SHELLS {
        names.push(format!("mean ordering parameter shell {shell}"));
    }
    names.push("max packing efficiency".into());
    names.extend(SYMMETRY_FEATURES.iter().map(|s| s.to_string()));
    names
}

/// The 22 LPD properties, NaN replaced by the property's mean over the 118 elements.
fn lpd_table() -> Result<&'static ElementTable, CoreError> {
    static TABLE: OnceLock<Result<ElementTable, CoreError>> = OnceLock::new();
    TABLE
        .get_or_init(|| Ok(embedded_table("magpie")?.select("ward2017-lpd", &LPD_PROPERTIES)?.impute_column_means()))
        .as_ref()
        .map_err(Clone::clone)
}

/// `np.mean`.
fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// matminer `PropertyStats.avg_dev` without weights.
fn avg_dev(x: &[f64]) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m).abs()).sum::<f64>() / x.len() as f64
}

/// minimum, maximum, range, mean, avg_dev (NaN if any value is NaN, as matminer).
fn five_stats(x: &[f64], out: &mut Vec<f64>) {
    if x.iter().any(|v| v.is_nan()) {
        out.extend([f64::NAN; 5]);
        return;
    }
    let lo = x.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    out.extend([lo, hi, hi - lo, mean(x), avg_dev(x)]);
}

/// Face weights `area / largest area` of one cell.
fn weights(c: &SiteCell) -> Vec<f64> {
    let largest = c.areas.iter().copied().fold(0.0, f64::max);
    c.areas.iter().map(|a| a / largest).collect()
}

/// Walk the non-backtracking paths of up to [`SHELLS`] steps from a site, adding each path's
/// weight product to `acc[depth][type of the end]` and `total[depth]`.
struct Walk<'a> {
    cells: &'a [SiteCell],
    w: &'a [Vec<f64>],
    slot: &'a [usize],
    n_types: usize,
    path: Vec<(u32, [i32; 3])>,
    acc: Vec<f64>,
    total: [f64; SHELLS],
}

impl Walk<'_> {
    fn go(&mut self, site: usize, image: [i32; 3], depth: usize, weight: f64) {
        let cell = &self.cells[site];
        for f in 0..cell.j.len() {
            let j = cell.j[f];
            let s = cell.shifts[f];
            let key = (j, [image[0] + s[0], image[1] + s[1], image[2] + s[2]]);
            if self.path.contains(&key) {
                continue;
            }
            let w = weight * self.w[site][f];
            self.acc[depth * self.n_types + self.slot[j as usize]] += w;
            self.total[depth] += w;
            if depth + 1 < SHELLS {
                self.path.push(key);
                self.go(j as usize, key.1, depth + 1, w);
                self.path.pop();
            }
        }
    }
}

/// The [`N_VORONOI_FEATURES`] tessellation features of one structure from its cells.
fn features_from_cells(s: &Structure, cells: &[SiteCell]) -> Result<Vec<f64>, CoreError> {
    let n = s.n_sites();
    let table = lpd_table()?;
    let w: Vec<Vec<f64>> = cells.iter().map(weights).collect();
    let mut out = Vec::with_capacity(N_FEATURES);

    // 1. Effective coordination numbers.
    let cn: Vec<f64> = w
        .iter()
        .map(|w| {
            let sum: f64 = w.iter().sum();
            let squares: f64 = w.iter().map(|x| x * x).sum();
            sum * sum / squares
        })
        .collect();
    five_stats(&cn, &mut out);

    // 2. Local property differences, sites x properties.
    let n_p = LPD_PROPERTIES.len();
    let mut lpd = vec![0.0; n * n_p];
    for (i, c) in cells.iter().enumerate() {
        let own = table.row(s.numbers[i]);
        let total: f64 = w[i].iter().sum();
        for (p, slot) in lpd[i * n_p..(i + 1) * n_p].iter_mut().enumerate() {
            let mut sum = 0.0;
            for (f, &j) in c.j.iter().enumerate() {
                sum += w[i][f] * (table.get(s.numbers[j as usize], p) - own[p]).abs();
            }
            *slot = sum / total;
        }
    }
    let mut column = vec![0.0; n];
    for p in 0..n_p {
        for i in 0..n {
            column[i] = lpd[i * n_p + p];
        }
        five_stats(&column, &mut out);
    }

    // 3. Structural heterogeneity.
    let mut bond = vec![0.0; n];
    let mut variation = vec![0.0; n];
    for (i, c) in cells.iter().enumerate() {
        let total: f64 = w[i].iter().sum();
        let l = c.distances.iter().zip(&w[i]).map(|(d, w)| d * w).sum::<f64>() / total;
        let dev = c.distances.iter().zip(&w[i]).map(|(d, w)| (d - l).abs() * w).sum::<f64>() / total;
        bond[i] = l;
        variation[i] = dev / l;
    }
    let mean_bond = mean(&bond);
    for b in bond.iter_mut() {
        *b /= mean_bond;
    }
    out.push(avg_dev(&bond));
    out.push(bond.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    out.push(bond.iter().copied().fold(f64::INFINITY, f64::min));
    five_stats(&variation, &mut out);
    let volumes: Vec<f64> = cells.iter().map(|c| c.volume).collect();
    out.push(avg_dev(&volumes) / mean(&volumes));

    // 4. Chemical ordering.
    let mut types: Vec<u8> = s.numbers.clone();
    types.sort_unstable();
    types.dedup();
    if types.len() == 1 {
        out.extend([0.0; SHELLS]);
    } else {
        let n_types = types.len();
        let slot: Vec<usize> = s.numbers.iter().map(|z| types.binary_search(z).unwrap_or(0)).collect();
        let mut fraction = vec![0.0; n_types];
        for &t in &slot {
            fraction[t] += 1.0;
        }
        for x in fraction.iter_mut() {
            *x /= n as f64;
        }
        let mut sum_abs = [0.0; SHELLS];
        let mut walk = Walk {
            cells,
            w: &w,
            slot: &slot,
            n_types,
            path: Vec::with_capacity(SHELLS),
            acc: vec![0.0; SHELLS * n_types],
            total: [0.0; SHELLS],
        };
        for i in 0..n {
            walk.acc.iter_mut().for_each(|x| *x = 0.0);
            walk.total = [0.0; SHELLS];
            walk.path.clear();
            walk.path.push((i as u32, [0, 0, 0]));
            walk.go(i, [0, 0, 0], 0, 1.0);
            for (shell, sum) in sum_abs.iter_mut().enumerate() {
                let acc = &walk.acc[shell * n_types..(shell + 1) * n_types];
                for (a, x) in acc.iter().zip(&fraction) {
                    *sum += (1.0 - a / walk.total[shell] / x).abs();
                }
            }
            if i % 64 == 63 {
                crate::parallel::check_cancelled()?;
            }
        }
        out.extend(sum_abs.iter().map(|x| x / (n * n_types) as f64));
    }

    // 5. Maximum packing efficiency.
    let packed: f64 = cells
        .iter()
        .map(|c| {
            let r = c.distances.iter().copied().fold(f64::INFINITY, f64::min) / 2.0;
            r * r * r
        })
        .sum();
    out.push(4.0 / 3.0 * std::f64::consts::PI * packed / s.volume());
    Ok(out)
}

/// The [`N_VORONOI_FEATURES`] tessellation features of one structure (`index` names it in
/// errors). `parallel`: split its tessellation over the current rayon pool (same result).
pub fn voronoi_features(s: &Structure, index: usize, parallel: bool) -> Result<Vec<f64>, CoreError> {
    let cells = voronoi_structure(s, index, parallel)?;
    features_from_cells(s, &cells)
}

/// One `ward2017` row ([`N_FEATURES`] values).
pub fn ward2017_row(s: &Structure, index: usize, symprec: f64, parallel: bool) -> Result<Vec<f64>, CoreError> {
    let mut row = voronoi_features(s, index, parallel)?;
    let g = global_symmetry(s, index, symprec)?;
    row.extend([
        g.spacegroup_num as f64,
        g.crystal_system_int as f64,
        if g.is_centrosymmetric { 1.0 } else { 0.0 },
        g.n_symmetry_ops as f64,
    ]);
    Ok(row)
}

/// `ward2017` rows of a whole batch, flat row-major `S x N_FEATURES`, with one result per
/// structure: `Err` holds the error naming it (a failed row is NaN in the matrix). Arguments,
/// every structure's geometry checks and the output size are validated before any work.
/// Structures run in parallel on `n_threads` threads; the result does not depend on the count.
pub fn ward2017_batch(
    structures: &[Structure],
    symprec: f64,
    n_threads: Option<usize>,
) -> Result<(Vec<f64>, Vec<Option<CoreError>>), CoreError> {
    check_symprec(symprec)?;
    crate::parallel::effective_threads(n_threads)?;
    lpd_table()?;
    let n = structures.len();
    crate::limits::check_output_bytes(n as f64 * N_FEATURES as f64 * 8.0, || {
        format!("a {n} x {N_FEATURES} ward2017 feature matrix")
    })?;
    let checked: Vec<Option<CoreError>> =
        structures.iter().enumerate().map(|(k, s)| check_structure(s, k).err()).collect();
    let rows: Vec<Result<Vec<f64>, CoreError>> = with_threads(n_threads, || {
        structures
            .par_iter()
            .zip(checked.into_par_iter())
            .enumerate()
            .map(|(k, (s, bad))| {
                if let Some(e) = bad {
                    return Err(e);
                }
                crate::parallel::check_cancelled()?;
                ward2017_row(s, k, symprec, true)
            })
            .collect()
    })?;
    crate::parallel::check_cancelled()?;
    let mut values = Vec::with_capacity(n * N_FEATURES);
    let mut errors = Vec::with_capacity(n);
    for r in rows {
        match r {
            Ok(row) => {
                values.extend_from_slice(&row);
                errors.push(None);
            }
            Err(CoreError::Interrupted) => return Err(CoreError::Interrupted),
            Err(e) => {
                values.extend([f64::NAN; N_FEATURES]);
                errors.push(Some(e));
            }
        }
    }
    Ok((values, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rocksalt() -> Structure {
        // NaCl conventional cell, a = 5.64 A.
        let a = 5.64;
        let mut frac = Vec::new();
        let mut numbers = Vec::new();
        for f in [[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]] {
            frac.push(f);
            numbers.push(11);
            frac.push([f[0] + 0.5, f[1], f[2]]);
            numbers.push(17);
        }
        Structure::new([[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]], frac, numbers, [true; 3])
    }

    #[test]
    fn names_match_the_row_width() {
        let names = feature_names();
        assert_eq!(names.len(), N_FEATURES);
        let row = ward2017_row(&rocksalt(), 0, 0.01, false).unwrap();
        assert_eq!(row.len(), N_FEATURES);
    }

    #[test]
    fn rocksalt_has_the_textbook_values() {
        let row = ward2017_row(&rocksalt(), 0, 0.01, false).unwrap();
        // Six equal faces: CN 6 everywhere.
        for (k, value) in row.iter().take(4).enumerate() {
            assert!((value - if k == 2 { 0.0 } else { 6.0 }).abs() < 1e-12, "{k}: {value}");
        }
        // Every neighbor is of the other type: |dZ| = 6 at every site.
        assert!((row[5 + 3] - 6.0).abs() < 1e-12);
        // Shell 1: only the other type (alpha = 1 - 0 / 0.5 = 1 and 1 - 1 / 0.5 = -1).
        let co = 5 + 110 + 9;
        assert!((row[co] - 1.0).abs() < 1e-12);
        // Spheres of radius a / 4 on 8 sites: 8 * 4/3 pi (a/4)^3 / a^3 = pi / 6.
        assert!((row[co + 3] - std::f64::consts::PI / 6.0).abs() < 1e-12);
        assert_eq!(row[co + 4], 225.0);
        assert_eq!(row[co + 7], 192.0);
    }

    #[test]
    fn bad_structures_are_named_and_the_rest_computed() {
        let mut bad = rocksalt();
        bad.pbc = [true, true, false];
        bad.id = Some("slab".into());
        let (values, errors) = ward2017_batch(&[rocksalt(), bad, rocksalt()], 0.01, Some(1)).unwrap();
        assert!(errors[0].is_none() && errors[2].is_none());
        let message = errors[1].as_ref().unwrap().to_string();
        assert!(message.starts_with("structure 1 (slab)"), "{message}");
        assert!(values[N_FEATURES..2 * N_FEATURES].iter().all(|v| v.is_nan()));
        assert_eq!(values[..N_FEATURES], values[2 * N_FEATURES..]);
    }
}

//! Orbital field matrix (Pham et al., Sci. Technol. Adv. Mater. 18, 756 (2017)) as matminer's
//! `OrbitalFieldMatrix` computes it, on the core's exact periodic Voronoi cells.
//!
//! Each element `Z` (1..=94) has a one-hot valence vector `o_Z` of 32 slots
//! (`s^1 s^2 p^1..p^6 d^1..d^10 f^1..f^14`, see `data/elements/ofm_valence.csv` and
//! `tools/build_ofm_table.py`), or 39 with the period tag (7 more slots, period 1..7). The matrix
//! of site `i` sums over the faces `f` of its Voronoi cell (neighbor `j` at distance `d_f`, solid
//! angle `Omega_f`):
//!
//! `X_i[a][b] = sum_f o_{Z_j}[a] o_{Z_i}[b] (Omega_f / max_f Omega_f) / (d_f * ANG_TO_BOHR)`
//!
//! (matminer: `VoronoiNN` solid-angle weights, `1 / r` in bohr). The structure's matrix is the
//! mean over sites. matminer evaluates one site per symmetry orbit (pymatgen's
//! `SymmetrizedStructure` at `symprec = 0.01` A) and weights it by the orbit size;
//! [`SiteAverage::Symmetry`] does the same with moyo's orbits, [`SiteAverage::AllSites`] averages
//! every site (the same number when symmetry-equivalent sites have identical environments; the
//! symmetry search is skipped when all sites of each element have the same matrix to 1e-12).
//! matminer builds a 3x3x3 supercell first so that pymatgen's minimum-image distance is the
//! neighbor's own distance; the Voronoi faces here carry that distance directly.
//!
//! [`Flavour::XenonPy`] is XenonPy's `OrbitalFieldMatrix(including_d=True)`: the same sum with
//! XenonPy's element vectors (`data/elements/ofm_xenonpy.csv`: the subshells after the noble-gas
//! core of pymatgen's `electronic_structure`, Z = 1..104), `1 / d` in angstrom, the mean over
//! every site, and labels `"s1_s1"`, ... (no period tag).

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::error::CoreError;
use crate::parallel::{check_cancelled, with_threads};
use crate::structure::Structure;
use crate::structure_descriptors::symmetry_dataset;
use crate::voronoi::voronoi_structure;

/// matminer's `ANG_TO_BOHR` (scipy CODATA 2018: angstrom star / bohr radius).
pub const ANG_TO_BOHR: f64 = 1.889_754_377_313_364_7;
/// Elements with a valence vector (matminer's table stops at plutonium).
pub const MAX_Z: u8 = 94;

/// Whose definition is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// matminer's `OrbitalFieldMatrix`: matminer's valence vectors, `1 / r` in bohr.
    Matminer,
    /// XenonPy's `OrbitalFieldMatrix(including_d=True)` with its intended vectors, `1 / r` in
    /// angstrom, every site averaged.
    XenonPy,
}

/// Elements with a XenonPy vector (pymatgen has no electronic structure beyond rutherfordium).
pub const XENONPY_MAX_Z: u8 = 104;

fn xenonpy_table() -> &'static Vec<[u8; 32]> {
    static TABLE: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let text = include_str!("../data/elements/ofm_xenonpy.csv");
        let mut v = Vec::new();
        for (k, line) in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).skip(1).enumerate() {
            let cells: Vec<&str> = line.split(',').collect();
            assert!(cells.len() == 3 && cells[0] == (k + 1).to_string(), "ofm_xenonpy.csv row {}", k + 1);
            let mut bits = [0u8; 32];
            for (slot, c) in bits.iter_mut().zip(cells[2].bytes()) {
                *slot = c - b'0';
            }
            v.push(bits);
        }
        assert_eq!(v.len(), XENONPY_MAX_Z as usize);
        v
    })
}

/// XenonPy's vector of `z` (32 entries).
pub fn xenonpy_vector(z: u8) -> Vec<f64> {
    xenonpy_table()[z as usize - 1].iter().map(|&b| b as f64).collect()
}

/// XenonPy's feature names: `"{a}_{b}"` over `s1 s2 p1..p6 d1..d10 f1..f14`, row-major (the
/// environment's slot first).
pub fn xenonpy_feature_names() -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for (orbital, n) in [("s", 2), ("p", 6), ("d", 10), ("f", 14)] {
        labels.extend((1..=n).map(|k| format!("{orbital}{k}")));
    }
    labels.iter().flat_map(|a| labels.iter().map(move |b| format!("{a}_{b}"))).collect()
}

/// How site matrices are averaged into the structure's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SiteAverage {
    /// One representative (lowest index) per symmetry orbit, weighted by the orbit size, as
    /// matminer does; `symprec` in angstrom.
    Symmetry { symprec: f64 },
    /// Every site.
    AllSites,
}

struct Valence {
    onehot: Vec<[u8; 32]>,
    period: Vec<u8>,
}

fn valence() -> &'static Valence {
    static TABLE: OnceLock<Valence> = OnceLock::new();
    TABLE.get_or_init(|| {
        let text = include_str!("../data/elements/ofm_valence.csv");
        let mut v = Valence { onehot: Vec::new(), period: Vec::new() };
        for (k, line) in text.lines().skip(1).filter(|l| !l.is_empty()).enumerate() {
            let cells: Vec<&str> = line.split(',').collect();
            assert!(cells.len() == 4 && cells[0] == (k + 1).to_string(), "ofm_valence.csv line {}", k + 2);
            let mut bits = [0u8; 32];
            for (slot, c) in bits.iter_mut().zip(cells[2].bytes()) {
                *slot = c - b'0';
            }
            v.onehot.push(bits);
            v.period.push(cells[3].parse().expect("period"));
        }
        assert_eq!(v.onehot.len(), MAX_Z as usize);
        v
    })
}

/// The valence vector of `z` (32 or 39 entries).
pub fn valence_vector(z: u8, period_tag: bool) -> Vec<f64> {
    let t = valence();
    let mut out: Vec<f64> = t.onehot[z as usize - 1].iter().map(|&b| b as f64).collect();
    if period_tag {
        let mut tag = [0.0; 7];
        tag[t.period[z as usize - 1] as usize - 1] = 1.0;
        out.extend(tag);
    }
    out
}

/// matminer's feature names: `"OFM: {a} - {b}"` over the slot labels, row-major.
pub fn feature_names(period_tag: bool) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for (orbital, n) in [("s", 2), ("p", 6), ("d", 10), ("f", 14)] {
        labels.extend((1..=n).map(|k| format!("{orbital}^{k}")));
    }
    if period_tag {
        labels.extend((1..=7).map(|k| format!("period {k}")));
    }
    let mut names = Vec::with_capacity(labels.len() * labels.len());
    for a in &labels {
        for b in &labels {
            names.push(format!("OFM: {a} - {b}"));
        }
    }
    names
}

fn err(index: usize, s: &Structure, reason: String) -> CoreError {
    CoreError::Structure { index, name: s.id.clone(), reason }
}

/// The flattened (`size x size`, row-major) orbital field matrix of one structure. With
/// [`Flavour::XenonPy`], `period_tag` must be false and `average` is ignored (every site).
pub fn orbital_field_matrix(
    s: &Structure,
    index: usize,
    period_tag: bool,
    average: SiteAverage,
    flavour: Flavour,
) -> Result<Vec<f64>, CoreError> {
    s.validate(index)?;
    let (max_z, unit, average) = match flavour {
        Flavour::Matminer => (MAX_Z, ANG_TO_BOHR, average),
        Flavour::XenonPy => {
            if period_tag {
                return Err(CoreError::InvalidArgument(XENONPY_PERIOD_TAG.into()));
            }
            (XENONPY_MAX_Z, 1.0, SiteAverage::AllSites)
        }
    };
    if let Some(k) = s.numbers.iter().position(|&z| z > max_z) {
        let reason = match flavour {
            Flavour::Matminer => {
                format!("site {k}: no orbital-field valence vector for Z = {} (only 1..94)", s.numbers[k])
            }
            Flavour::XenonPy => format!(
                "site {k}: no XenonPy orbital-field vector for Z = {} (pymatgen has electronic structures \
                 for Z = 1..104 only)",
                s.numbers[k]
            ),
        };
        return Err(err(index, s, reason));
    }
    let n = s.n_sites();
    if n == 0 {
        return Err(err(index, s, "a structure without sites has no orbital field matrix".into()));
    }
    let size = if period_tag { 39 } else { 32 };
    let width = size * size;
    let vectors: Vec<Vec<f64>> = match flavour {
        Flavour::Matminer => (1..=MAX_Z).map(|z| valence_vector(z, period_tag)).collect(),
        Flavour::XenonPy => (1..=XENONPY_MAX_Z).map(xenonpy_vector).collect(),
    };
    let cells = voronoi_structure(s, index, false)?;
    let site_matrix = |i: usize, out: &mut [f64]| {
        out.fill(0.0);
        let cell = &cells[i];
        let max_angle = cell.solid_angles.iter().copied().fold(0.0, f64::max);
        let center = &vectors[s.numbers[i] as usize - 1];
        for f in 0..cell.j.len() {
            let w = cell.solid_angles[f] / max_angle;
            if w <= 0.0 {
                continue;
            }
            let scale = w / cell.distances[f] / unit;
            let other = &vectors[s.numbers[cell.j[f] as usize] as usize - 1];
            for (a, &oa) in other.iter().enumerate() {
                if oa == 0.0 {
                    continue;
                }
                for (b, &cb) in center.iter().enumerate() {
                    if cb != 0.0 {
                        out[a * size + b] += oa * cb * scale;
                    }
                }
            }
        }
    };
    // The plain average, and whether all sites of each element have the same matrix (to
    // SAME_SITE_TOLERANCE of the largest entry): orbits only join sites of one element, so then
    // matminer's one-site-per-orbit average is the plain average and no symmetry search is
    // needed. Memory: one matrix per element.
    let mut total = vec![0.0; width];
    let mut site = vec![0.0; width];
    let mut first: Vec<(u8, Vec<f64>)> = Vec::new();
    let mut same = true;
    for i in 0..n {
        site_matrix(i, &mut site);
        for (t, &x) in total.iter_mut().zip(&site) {
            *t += x;
        }
        if average == SiteAverage::AllSites || !same {
            continue;
        }
        match first.iter().find(|(z, _)| *z == s.numbers[i]) {
            None => first.push((s.numbers[i], site.clone())),
            Some((_, m)) => {
                let scale = m.iter().chain(&site).fold(0.0f64, |acc, x| acc.max(x.abs()));
                same = m.iter().zip(&site).all(|(x, y)| (x - y).abs() <= SAME_SITE_TOLERANCE * scale);
            }
        }
    }
    if let (SiteAverage::Symmetry { symprec }, false) = (average, same) {
        let orbits = symmetry_dataset(s, index, symprec)?.orbits;
        let mut rep = vec![0.0; width];
        total.fill(0.0);
        let mut counts = vec![0usize; n];
        for &r in &orbits {
            counts[r] += 1;
        }
        for (r, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            site_matrix(r, &mut rep);
            for (t, &x) in total.iter_mut().zip(&rep) {
                *t += x * c as f64;
            }
        }
    }
    for t in &mut total {
        *t /= n as f64;
    }
    Ok(total)
}

const XENONPY_PERIOD_TAG: &str =
    "period_tag is matminer's option: XenonPy's orbital field matrix has no period tag (use flavour='matminer')";

/// Relative tolerance under which two site matrices count as the same (rounding of the Voronoi
/// geometry is about 1e-15 relative; sites equivalent only within a symmetry tolerance differ by
/// 1e-6 or more).
const SAME_SITE_TOLERANCE: f64 = 1e-12;

/// [`orbital_field_matrix`] of every structure in parallel, rows in input order.
pub fn orbital_field_matrix_batch(
    structures: &[Structure],
    period_tag: bool,
    average: SiteAverage,
    flavour: Flavour,
    n_threads: Option<usize>,
) -> Result<Vec<Vec<f64>>, CoreError> {
    match (flavour, average) {
        (Flavour::XenonPy, _) if period_tag => return Err(CoreError::InvalidArgument(XENONPY_PERIOD_TAG.into())),
        (Flavour::Matminer, SiteAverage::Symmetry { symprec }) => crate::structure_descriptors::check_symprec(symprec)?,
        _ => {}
    }
    with_threads(n_threads, || {
        structures
            .par_iter()
            .enumerate()
            .map(|(k, s)| {
                check_cancelled()?;
                let row = orbital_field_matrix(s, k, period_tag, average, flavour)?;
                check_cancelled()?;
                Ok(row)
            })
            .collect::<Result<Vec<_>, CoreError>>()
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_names() {
        assert_eq!(valence_vector(1, false)[0], 1.0); // H: s^1
        assert_eq!(valence_vector(8, false)[1], 1.0); // O: s^2 ...
        assert_eq!(valence_vector(8, false)[2 + 3], 1.0); // ... p^4
        assert_eq!(valence_vector(8, true)[32 + 1], 1.0); // period 2
        let names = feature_names(false);
        assert_eq!(names.len(), 1024);
        assert_eq!(names[0], "OFM: s^1 - s^1");
        assert_eq!(names[1023], "OFM: f^14 - f^14");
        assert_eq!(feature_names(true).len(), 1521);
    }

    #[test]
    fn rocksalt_matrix() {
        // NaCl primitive cell: every site has 6 neighbors of the other kind at a / 2, equal
        // solid angles, so X = 6 / (a/2 bohr) o_other^T o_self, averaged over Na and Cl.
        let a = 5.64;
        let l = [[0.0, a / 2.0, a / 2.0], [a / 2.0, 0.0, a / 2.0], [a / 2.0, a / 2.0, 0.0]];
        let s = Structure::new(l, vec![[0.0; 3], [0.5; 3]], vec![11, 17], [true; 3]);
        for average in [SiteAverage::AllSites, SiteAverage::Symmetry { symprec: 0.01 }] {
            let x = orbital_field_matrix(&s, 0, false, average, Flavour::Matminer).unwrap();
            let na_s1 = 0; // Na: 3s^1
            let cl_s2 = 1; // Cl: 3s^2 3p^5
            let cl_p5 = 2 + 4;
            let v = 6.0 / (a / 2.0 * ANG_TO_BOHR) / 2.0;
            assert!((x[cl_s2 * 32 + na_s1] - v).abs() < 1e-12);
            assert!((x[cl_p5 * 32 + na_s1] - v).abs() < 1e-12);
            assert!((x[na_s1 * 32 + cl_p5] - v).abs() < 1e-12);
            assert_eq!(x[na_s1 * 32 + na_s1], 0.0);
        }
    }

    #[test]
    fn xenonpy_flavour() {
        // XenonPy's vectors: Sc [Ar].3d1.4s2 -> d1, s2 (no p6); Fe -> d6, s2; H s1.
        let sc = xenonpy_vector(21);
        assert_eq!(sc.iter().sum::<f64>(), 2.0);
        assert_eq!((sc[1], sc[8]), (1.0, 1.0));
        assert_eq!((xenonpy_vector(26)[1], xenonpy_vector(26)[8 + 5]), (1.0, 1.0));
        assert_eq!(xenonpy_vector(1)[0], 1.0);
        let names = xenonpy_feature_names();
        assert_eq!((names.len(), names[1].as_str(), names[1023].as_str()), (1024, "s1_s2", "f14_f14"));
        // NaCl rocksalt: 6 neighbors at a / 2 angstrom, mean over the two sites.
        let a = 5.64;
        let l = [[0.0, a / 2.0, a / 2.0], [a / 2.0, 0.0, a / 2.0], [a / 2.0, a / 2.0, 0.0]];
        let s = Structure::new(l, vec![[0.0; 3], [0.5; 3]], vec![11, 17], [true; 3]);
        let x = orbital_field_matrix(&s, 0, false, SiteAverage::Symmetry { symprec: 0.01 }, Flavour::XenonPy).unwrap();
        let v = 6.0 / (a / 2.0) / 2.0;
        let (na_s1, cl_s2, cl_p5) = (0, 1, 2 + 4);
        assert!((x[cl_s2 * 32 + na_s1] - v).abs() < 1e-12);
        assert!((x[na_s1 * 32 + cl_p5] - v).abs() < 1e-12);
        assert!(orbital_field_matrix(&s, 0, true, SiteAverage::AllSites, Flavour::XenonPy).is_err());
        let db = Structure::new(l, vec![[0.0; 3], [0.5; 3]], vec![105, 17], [true; 3]);
        let e = orbital_field_matrix(&db, 0, false, SiteAverage::AllSites, Flavour::XenonPy).unwrap_err();
        assert!(e.to_string().contains("Z = 105"), "{e}");
        assert!(orbital_field_matrix(&db, 0, false, SiteAverage::AllSites, Flavour::Matminer).is_err());
        let am = Structure::new(l, vec![[0.0; 3], [0.5; 3]], vec![95, 8], [true; 3]);
        assert!(orbital_field_matrix(&am, 0, false, SiteAverage::AllSites, Flavour::XenonPy).is_ok());
    }
}

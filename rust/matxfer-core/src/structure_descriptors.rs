//! Structure-level descriptors, computed as matminer does so results can be compared directly.
//!
//! - [`density_features`]: density (g/cm^3), volume per atom (A^3), packing fraction
//!   (sum of `4/3 pi r^3` over sites with the element's atomic radius, divided by the volume;
//!   NaN when a radius is unknown). Masses and radii come from the embedded Magpie table.
//! - [`radial_distribution`]: histogram of all neighbor distances (every site as a center) over
//!   the given bin edges, divided by the shell volume and the number density `N / V`
//!   (matminer `RadialDistributionFunction`, which does not divide by `N` again).
//! - [`partial_radial_distribution`]: per ordered element pair `(a, b)`, distances from sites of
//!   `a` to sites of `b`, divided by the shell volume and by the count of `a`
//!   (matminer `PartialRadialDistributionFunction`); pairs are `(e_k, e_l)` with `k <= l` in the
//!   given element order, each `n_bins` long.
//! - [`sine_coulomb_eigenvalues`]: eigenvalues of the sine Coulomb matrix
//!   `M_ii = Z_i^2.4 / 2`, `M_ij = Z_i Z_j / |sin^2(pi (f_i - f_j)) @ lattice|` (distance in
//!   bohr), sorted in decreasing order (matminer `SineCoulombMatrix`; its eigenvalue order is
//!   numpy's, compare sorted).
//! - [`global_symmetry`]: matminer `GlobalSymmetryFeatures` (space group number, crystal system
//!   name and matminer's integer code, centrosymmetry, number of symmetry operations in the input
//!   cell), found by the `moyo` crate at pymatgen's `SpacegroupAnalyzer` symprec.
//!
//! Histogram bins follow numpy: `[e_k, e_k+1)`, the last bin closed on the right.

use std::panic::AssertUnwindSafe;

use moyo::base::{AngleTolerance, Cell, Lattice};
use moyo::data::Setting;
use moyo::MoyoDataset;
use nalgebra::{Matrix3, Vector3};
use rayon::prelude::*;

use crate::elements::embedded_table;
use crate::error::CoreError;
use crate::limits::{MAX_RDF_BINS, MAX_SINE_COULOMB_SITES};
use crate::neighbors::cell_list::{rough_pair_estimate, CellList, NeighborOptions};
use crate::neighbors::PairSink;
use crate::parallel::with_threads;
use crate::structure::linalg::frac_to_cart;
use crate::structure::Structure;

/// g/cm^3 per amu/A^3.
const AMU_PER_A3_TO_G_PER_CM3: f64 = 1.660_539_066_60;
/// Angstrom star / bohr radius (CODATA 2018), as matminer uses.
const ANG_TO_BOHR: f64 = 1.000_014_95e-10 / 5.291_772_109_03e-11;

fn err(index: usize, s: &Structure, reason: String) -> CoreError {
    CoreError::Structure { index, name: s.id.clone(), reason }
}

/// `[density, volume per atom, packing fraction]` of one structure.
pub fn density_features(s: &Structure, index: usize) -> Result<[f64; 3], CoreError> {
    s.validate(index)?;
    let table = embedded_table("magpie")?;
    let (mass_col, radius_col) = match (table.column_index("AtomicWeight"), table.column_index("AtomicRadius")) {
        (Some(m), Some(r)) => (m, r),
        _ => return Err(CoreError::InvalidArgument("magpie table lacks AtomicWeight/AtomicRadius".into())),
    };
    let v = s.volume();
    let mut mass = 0.0;
    let mut packed = 0.0;
    for &z in &s.numbers {
        let m = table.get(z, mass_col);
        if !m.is_finite() {
            return Err(err(index, s, format!("no atomic mass for Z = {z}")));
        }
        mass += m;
        let r = table.get(z, radius_col);
        packed += 4.0 / 3.0 * std::f64::consts::PI * r * r * r;
    }
    let n = s.n_sites().max(1) as f64;
    Ok([mass / v * AMU_PER_A3_TO_G_PER_CM3, v / n, packed / v])
}

fn bin_of(edges: &[f64], x: f64) -> Option<usize> {
    let m = edges.len() - 1;
    if x < edges[0] || x > edges[m] {
        return None;
    }
    if x == edges[m] {
        return Some(m - 1);
    }
    Some(edges.partition_point(|&e| e <= x) - 1)
}

/// Bin edges: 2 to `MAX_RDF_BINS + 1` finite values, `>= 0`, strictly increasing, the last a valid
/// cutoff.
pub fn check_edges(edges: &[f64]) -> Result<(), CoreError> {
    if edges.len() < 2 || edges.len() > MAX_RDF_BINS + 1 {
        return Err(CoreError::InvalidArgument(format!(
            "radial distributions need between 1 and {MAX_RDF_BINS} bins, got {}",
            edges.len().saturating_sub(1)
        )));
    }
    if edges.iter().any(|e| !e.is_finite()) || edges.windows(2).any(|w| w[1] <= w[0]) || edges[0] < 0.0 {
        return Err(CoreError::InvalidArgument("bin edges must be finite, >= 0 and strictly increasing".into()));
    }
    crate::limits::check_cutoff("cutoff (last bin edge)", edges[edges.len() - 1])?;
    Ok(())
}

/// The bin edges matminer uses, `numpy.arange(0, cutoff + bin_size, bin_size)`: `k * bin_size`
/// for `k < ceil((cutoff + bin_size) / bin_size)`, after checking both lengths.
pub fn rdf_edges(cutoff: f64, bin_size: f64) -> Result<Vec<f64>, CoreError> {
    crate::limits::check_cutoff("cutoff", cutoff)?;
    if !(bin_size.is_finite() && bin_size > 0.0) {
        return Err(CoreError::InvalidArgument(format!("bin_size must be a positive finite length, got {bin_size}")));
    }
    let n = ((cutoff + bin_size) / bin_size).ceil();
    if !crate::limits::at_most(n, (MAX_RDF_BINS + 1) as f64) {
        return Err(CoreError::InvalidArgument(format!(
            "cutoff {cutoff} A / bin_size {bin_size} A gives {n:.0} bins, above the limit of {MAX_RDF_BINS}"
        )));
    }
    let edges: Vec<f64> = (0..n as usize).map(|k| k as f64 * bin_size).collect();
    check_edges(&edges)?;
    Ok(edges)
}

/// Stream every pair within `cutoff` of structure `s` into `sink` without storing the list
/// (descriptors only histogram the distances, so memory does not grow with the pair count).
/// The pair estimate and the running count are held to the default pair ceiling, which bounds
/// the time; Ctrl-C is polled every few atoms.
fn stream_pairs<S: PairSink + Counted>(
    s: &Structure,
    index: usize,
    cutoff: f64,
    sink: &mut S,
) -> Result<(), CoreError> {
    let limit = NeighborOptions::new(cutoff).validate()?;
    s.validate_for_cutoff(index, cutoff)?;
    let refuse = |r: String| err(index, s, format!("{r} at cutoff {cutoff} A"));
    limit.check_estimate(rough_pair_estimate(s, cutoff)).map_err(refuse)?;
    let cl = CellList::new(s, cutoff).map_err(|r| err(index, s, r))?;
    for i in 0..s.n_sites() {
        cl.query(i, sink, false);
        if i % 16 == 15 {
            crate::parallel::check_cancelled()?;
            if sink.count() > limit.max {
                return Err(refuse(format!("more than {} neighbor pairs", limit.describe())));
            }
        }
    }
    crate::parallel::check_cancelled()
}

/// A pair sink that knows how many pairs it has seen.
trait Counted {
    fn count(&self) -> usize;
}

/// Histogram of pair distances over `edges` (numpy bins).
struct DistanceHistogram<'a> {
    edges: &'a [f64],
    hist: Vec<f64>,
    seen: usize,
}

impl PairSink for DistanceHistogram<'_> {
    #[inline]
    fn push_pair(&mut self, _i: i64, _j: i64, _shift: [i32; 3], distance: f64, _vector: [f64; 3], _want: bool) {
        self.seen += 1;
        if let Some(b) = bin_of(self.edges, distance) {
            self.hist[b] += 1.0;
        }
    }
}

impl Counted for DistanceHistogram<'_> {
    fn count(&self) -> usize {
        self.seen
    }
}

/// Histograms per ordered element pair `(a, b)` (slots of `slot_of_site`).
struct PairHistogram<'a> {
    edges: &'a [f64],
    slot_of_site: Vec<Option<usize>>,
    n_el: usize,
    hist: Vec<f64>,
    seen: usize,
}

impl PairSink for PairHistogram<'_> {
    #[inline]
    fn push_pair(&mut self, i: i64, j: i64, _shift: [i32; 3], distance: f64, _vector: [f64; 3], _want: bool) {
        self.seen += 1;
        let n_bins = self.edges.len() - 1;
        if let (Some(x), Some(y), Some(bin)) =
            (self.slot_of_site[i as usize], self.slot_of_site[j as usize], bin_of(self.edges, distance))
        {
            self.hist[(x * self.n_el + y) * n_bins + bin] += 1.0;
        }
    }
}

impl Counted for PairHistogram<'_> {
    fn count(&self) -> usize {
        self.seen
    }
}

fn shell_volumes(edges: &[f64]) -> Vec<f64> {
    edges.windows(2).map(|w| 4.0 / 3.0 * std::f64::consts::PI * (w[1].powi(3) - w[0].powi(3))).collect()
}

/// Radial distribution function of one structure over `edges` (angstrom).
pub fn radial_distribution(s: &Structure, index: usize, edges: &[f64]) -> Result<Vec<f64>, CoreError> {
    check_edges(edges)?;
    let mut sink = DistanceHistogram { edges, hist: vec![0.0; edges.len() - 1], seen: 0 };
    stream_pairs(s, index, edges[edges.len() - 1], &mut sink)?;
    let mut hist = sink.hist;
    let density = s.n_sites() as f64 / s.volume();
    for (h, v) in hist.iter_mut().zip(shell_volumes(edges)) {
        *h = *h / v / density;
    }
    Ok(hist)
}

/// Partial RDFs of one structure for the element pairs of `elements` (see module docs).
pub fn partial_radial_distribution(
    s: &Structure,
    index: usize,
    edges: &[f64],
    elements: &[u8],
) -> Result<Vec<f64>, CoreError> {
    check_edges(edges)?;
    let n_bins = edges.len() - 1;
    let n_el = elements.len();
    crate::limits::check_output_bytes((n_el * n_el * n_bins) as f64 * 8.0, || {
        format!("{n_el} x {n_el} element-pair histograms of {n_bins} bins")
    })?;
    let slot = |z: u8| elements.iter().position(|&e| e == z);
    // Ordered-pair histograms (a, b).
    let mut sink = PairHistogram {
        edges,
        slot_of_site: s.numbers.iter().map(|&z| slot(z)).collect(),
        n_el,
        hist: vec![0.0; n_el * n_el * n_bins],
        seen: 0,
    };
    stream_pairs(s, index, edges[n_bins], &mut sink)?;
    let hist = sink.hist;
    let shells = shell_volumes(edges);
    let mut out = Vec::with_capacity(n_el * (n_el + 1) / 2 * n_bins);
    for x in 0..n_el {
        let count = s.numbers.iter().filter(|&&z| z == elements[x]).count() as f64;
        for y in x..n_el {
            for bin in 0..n_bins {
                let h = hist[(x * n_el + y) * n_bins + bin];
                out.push(if count > 0.0 { h / shells[bin] / count } else { 0.0 });
            }
        }
    }
    Ok(out)
}

/// Eigenvalues of a symmetric matrix (row-major `n x n`) by cyclic Jacobi rotations.
pub fn symmetric_eigenvalues(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    for _sweep in 0..100 {
        if crate::parallel::cancelled() {
            break;
        }
        let off: f64 = (0..n)
            .flat_map(|p| (0..n).filter(move |&q| q != p).map(move |q| (p, q)))
            .map(|(p, q)| a[p * n + q].powi(2))
            .sum();
        let scale: f64 = (0..n).map(|p| a[p * n + p].powi(2)).sum::<f64>() + off;
        if off <= 1e-30 * scale.max(1e-300) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let sn = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - sn * akq;
                    a[k * n + q] = sn * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - sn * aqk;
                    a[q * n + k] = sn * apk + c * aqk;
                }
            }
        }
    }
    let mut eig: Vec<f64> = (0..n).map(|k| a[k * n + k]).collect();
    eig.sort_by(|x, y| y.total_cmp(x));
    eig
}

/// Sine Coulomb matrix eigenvalues of one structure, decreasing.
pub fn sine_coulomb_eigenvalues(s: &Structure, index: usize) -> Result<Vec<f64>, CoreError> {
    s.validate(index)?;
    let n = s.n_sites();
    if n > MAX_SINE_COULOMB_SITES {
        return Err(err(
            index,
            s,
            format!("{n} sites, above the limit of {MAX_SINE_COULOMB_SITES} for the (dense) sine Coulomb matrix"),
        ));
    }
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        let zi = s.numbers[i] as f64;
        m[i * n + i] = 0.5 * zi.powf(2.4);
        for j in i + 1..n {
            let f: [f64; 3] = std::array::from_fn(|k| {
                let x = (std::f64::consts::PI * (s.frac_coords[i][k] - s.frac_coords[j][k])).sin();
                x * x
            });
            let v = frac_to_cart(&f, &s.lattice);
            let d = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt() * ANG_TO_BOHR;
            let value = zi * s.numbers[j] as f64 / d;
            if !value.is_finite() {
                return Err(err(index, s, format!("sites {i} and {j} coincide (modulo the lattice)")));
            }
            m[i * n + j] = value;
            m[j * n + i] = value;
        }
    }
    Ok(symmetric_eigenvalues(m, n))
}

/// matminer `GlobalSymmetryFeatures` feature names, in matminer's order.
pub const GLOBAL_SYMMETRY_FEATURES: [&str; 5] =
    ["spacegroup_num", "crystal_system", "crystal_system_int", "is_centrosymmetric", "n_symmetry_ops"];

/// The symmetry of one structure, as matminer's `GlobalSymmetryFeatures` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalSymmetry {
    /// International Tables space-group number, 1..=230.
    pub spacegroup_num: i32,
    /// Crystal system name, as pymatgen's `SpacegroupAnalyzer.get_crystal_system()`.
    pub crystal_system: &'static str,
    /// matminer's code: cubic 1, hexagonal 2, trigonal 3, tetragonal 4, orthorhombic 5,
    /// monoclinic 6, triclinic 7.
    pub crystal_system_int: i32,
    /// The point group contains the inversion (matminer uses pymatgen's `is_laue()`, which is
    /// the same thing: the eleven Laue groups are the centrosymmetric point groups).
    pub is_centrosymmetric: bool,
    /// Symmetry operations of the input cell, pure translations of a supercell or centred cell
    /// included (spglib's and moyo's operation list for the cell as given).
    pub n_symmetry_ops: usize,
}

/// Crystal system of a space-group number (International Tables ranges) and matminer's code.
pub fn crystal_system(number: i32) -> (&'static str, i32) {
    match number {
        ..=2 => ("triclinic", 7),
        3..=15 => ("monoclinic", 6),
        16..=74 => ("orthorhombic", 5),
        75..=142 => ("tetragonal", 4),
        143..=167 => ("trigonal", 3),
        168..=194 => ("hexagonal", 2),
        _ => ("cubic", 1),
    }
}

/// moyo's symmetry dataset of one structure at `symprec` (angstrom), with moyo's default angle
/// tolerance (see [`global_symmetry`]); errors and panics of moyo name the structure.
pub fn symmetry_dataset(s: &Structure, index: usize, symprec: f64) -> Result<MoyoDataset, CoreError> {
    s.validate(index)?;
    if s.numbers.is_empty() {
        return Err(err(index, s, "a structure without sites has no space group".into()));
    }
    let l = &s.lattice;
    let basis = Matrix3::new(l[0][0], l[0][1], l[0][2], l[1][0], l[1][1], l[1][2], l[2][0], l[2][1], l[2][2]);
    let positions: Vec<Vector3<f64>> = s.frac_coords.iter().map(|p| Vector3::new(p[0], p[1], p[2])).collect();
    let numbers: Vec<i32> = s.numbers.iter().map(|&z| z as i32).collect();
    let cell = Cell::new(Lattice::new(basis), positions, numbers);
    // moyo reports failures as errors, but a panic inside it must not take the batch (or the
    // Python process) down: it becomes an error naming the structure.
    let found = std::panic::catch_unwind(AssertUnwindSafe(|| {
        MoyoDataset::new(&cell, symprec, AngleTolerance::Default, Setting::Spglib, false)
    }));
    match found {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(err(index, s, format!("moyo found no space group at symprec={symprec}: {e}"))),
        Err(_) => Err(err(index, s, "moyo failed (internal panic) on this structure".into())),
    }
}

/// [`GlobalSymmetry`] of one structure. `symprec` is in angstrom (pymatgen's default 0.01).
/// The angle tolerance is moyo's default (spglib's default, which checks angles through
/// `symprec`), not pymatgen's 5 degrees: moyo 0.22 with an explicit 5 degrees never returns on
/// some real structures (carbon_24 row 51 of the shared set). Every structure is treated as
/// periodic in three dimensions, as pymatgen does.
pub fn global_symmetry(s: &Structure, index: usize, symprec: f64) -> Result<GlobalSymmetry, CoreError> {
    let dataset = symmetry_dataset(s, index, symprec)?;
    let (name, code) = crystal_system(dataset.number);
    let inversion = dataset.operations.iter().any(|op| op.rotation == -Matrix3::<i32>::identity());
    Ok(GlobalSymmetry {
        spacegroup_num: dataset.number,
        crystal_system: name,
        crystal_system_int: code,
        is_centrosymmetric: inversion,
        n_symmetry_ops: dataset.operations.len(),
    })
}

/// Check the tolerance of [`global_symmetry`].
pub fn check_symprec(symprec: f64) -> Result<(), CoreError> {
    if !(symprec.is_finite() && symprec > 0.0 && symprec < 1.0) {
        return Err(CoreError::InvalidArgument(format!("symprec must be in (0, 1) angstrom, got {symprec}")));
    }
    Ok(())
}

/// Apply `f` to every structure in parallel; rows in input order.
pub fn batch<T: Send>(
    structures: &[Structure],
    n_threads: Option<usize>,
    f: impl Fn(&Structure, usize) -> Result<T, CoreError> + Sync + Send,
) -> Result<Vec<T>, CoreError> {
    with_threads(n_threads, || {
        structures
            .par_iter()
            .enumerate()
            .map(|(k, s)| {
                crate::parallel::check_cancelled()?;
                let row = f(s, k)?;
                // A structure's result may be cut short by a cancellation: never return it.
                crate::parallel::check_cancelled()?;
                Ok(row)
            })
            .collect::<Result<Vec<T>, CoreError>>()
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_matches_known_spectrum() {
        // [[2, 1], [1, 2]] has eigenvalues 3 and 1.
        let e = symmetric_eigenvalues(vec![2.0, 1.0, 1.0, 2.0], 2);
        assert!((e[0] - 3.0).abs() < 1e-12 && (e[1] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn histogram_bins_follow_numpy() {
        let edges = [0.0, 1.0, 2.0];
        assert_eq!(bin_of(&edges, 0.0), Some(0));
        assert_eq!(bin_of(&edges, 1.0), Some(1));
        assert_eq!(bin_of(&edges, 2.0), Some(1));
        assert_eq!(bin_of(&edges, 2.5), None);
    }
}

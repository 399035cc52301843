//! Oxidation states of ordered crystal structures by the bond-valence method, with the answers of
//! pymatgen's `BVAnalyzer().get_valences(structure)` (a maximum a posteriori estimate):
//!
//! 1. Sites are grouped into symmetry orbits (moyo at `symprec` angstrom; pymatgen uses spglib's
//!    `equivalent_atoms` through `SpacegroupAnalyzer(structure, symprec)`); `symprec = 0` makes
//!    every site its own orbit. Orbits are ordered by their lowest site index, which is their
//!    representative, then stably by decreasing Pauling electronegativity of their element.
//! 2. The bond-valence sum of each representative is `sum_j s_j exp((R_ij - f d_j) / 0.31)` over
//!    every periodic neighbor `j` within `max_radius` (`d_j` its distance, `f` the
//!    `distance_scale_factor`), counting only pairs of different elements of which at least one
//!    is an anion former of O'Keeffe & Brese (H B C Si N P As Sb O S Se Te F Cl Br I). `R_ij` is
//!    their combining rule `r_i + r_j - r_i r_j (sqrt(c_i) - sqrt(c_j))^2 / (c_i r_i + c_j r_j)`
//!    and the sign `s_j` is +1 when the site is less electronegative than `j`, else -1.
//! 3. Each non-zero oxidation state `v` of the element with ICSD statistics (`std > 0`) gets the
//!    posterior `exp(-(B - mean_v)^2 / (2 std_v^2)) / std_v * occurrence_v`, normalised over the
//!    element's states (all zero when they sum to zero). The candidates are the states sorted by
//!    decreasing posterior (ties in the table's order) and kept when above 1/100 of the best.
//! 4. A depth-first search over one candidate per orbit (in the sorted orbit order, candidates in
//!    order) prunes a branch when even the largest (smallest) states of the orbits still open
//!    cannot make the cell's charge (states times orbit sizes) reach zero. Every pruned branch
//!    and every complete assignment counts as one permutation; the search stops once the count
//!    exceeds `max_permutations`. A charge-neutral assignment in which the states of one element
//!    differ by at most 1 scores the product of its posteriors (multiplied in orbit order); the
//!    first assignment with the strictly highest score wins.
//!
//! The floating-point operations are pymatgen's, in its order, so the scores are the same bits
//! when the bond-valence sums are; these are sums over the neighbors in the order the neighbor
//! search meets them, which may differ from pymatgen's in the last bits. Where pymatgen raises a
//! `ValueError` (an element without bond-valence parameters, no state with a non-zero posterior,
//! no assignment found) the structure is refused with an error naming it and the reason.
//! Neighbors at zero distance are handled as pymatgen does: a coincident atom of the same element
//! in the same cell image, or coincident site 0, is not a neighbor.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::bond_valence_table::{BV_PARAMS, ICSD_BV};
use crate::crystal_nn_tables::PAULING_X;
use crate::elements::{symbol, N_ELEMENTS};
use crate::error::CoreError;
use crate::limits::{at_most, MAX_CUTOFF};
use crate::neighbors::cell_list::{rough_pair_estimate, CellList};
use crate::neighbors::PairSink;
use crate::parallel::{check_cancelled, with_threads};
use crate::structure::Structure;
use crate::structure_descriptors::{check_symprec, symmetry_dataset};

/// Anion formers of O'Keeffe & Brese (1991): a pair counts in a bond-valence sum only when one
/// of its elements is one of these (H B C Si N P As Sb O S Se Te F Cl Br I).
const ANION_FORMERS: [u8; 16] = [1, 5, 6, 14, 7, 15, 33, 51, 8, 16, 34, 52, 9, 17, 35, 53];
/// Softness parameter `b` of the bond-valence exponential, angstrom.
const BV_B: f64 = 0.31;
/// Neighbors closer than this (angstrom) are coincident (pymatgen's `numerical_tol`).
const COINCIDENT: f64 = 1e-8;
/// Work units (neighbor visits + search nodes) allowed for one structure: some tens of seconds.
pub const MAX_BV_WORK: f64 = 2.0e10;

/// Options of [`bond_valence_states`] (pymatgen `BVAnalyzer` arguments and defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BondValenceOptions {
    /// Symmetry tolerance in angstrom; 0 makes every site its own orbit (pymatgen `symm_tol`).
    pub symprec: f64,
    /// Neighbor cutoff in angstrom (pymatgen `max_radius`).
    pub max_radius: f64,
    /// Factor applied to every distance (pymatgen `distance_scale_factor`; 1.015 suits GGA).
    pub distance_scale_factor: f64,
    /// Permutations (pruned branches + complete assignments) after which the search stops.
    pub max_permutations: u64,
}

impl Default for BondValenceOptions {
    fn default() -> Self {
        Self { symprec: 0.1, max_radius: 4.0, distance_scale_factor: 1.015, max_permutations: 100_000 }
    }
}

impl BondValenceOptions {
    /// Refuse options outside their documented bounds, naming the option.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.symprec != 0.0 {
            check_symprec(self.symprec).map_err(|_| {
                CoreError::InvalidArgument(format!("symprec must be 0 or in (0, 1) angstrom, got {}", self.symprec))
            })?;
        }
        if !(self.max_radius.is_finite() && self.max_radius > 0.0 && self.max_radius <= MAX_CUTOFF) {
            return Err(CoreError::InvalidArgument(format!(
                "max_radius must be positive, finite and at most {MAX_CUTOFF} angstrom, got {}",
                self.max_radius
            )));
        }
        if !(self.distance_scale_factor.is_finite() && self.distance_scale_factor > 0.0) {
            return Err(CoreError::InvalidArgument(format!(
                "distance_scale_factor must be positive and finite, got {}",
                self.distance_scale_factor
            )));
        }
        Ok(())
    }
}

/// One candidate oxidation state of an element: state, mean and std of the ICSD bond-valence
/// sums, occurrence count.
#[derive(Debug, Clone, Copy)]
struct SpeciesStats {
    state: i8,
    mean: f64,
    std: f64,
    prior: f64,
}

struct Tables {
    /// `(r, c)` per Z (index Z), `None` without parameters.
    params: Vec<Option<(f64, f64)>>,
    /// The states pymatgen considers per Z: non-zero, `std > 0`, in the table's order.
    states: Vec<Vec<SpeciesStats>>,
    anion_former: Vec<bool>,
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut params = vec![None; N_ELEMENTS + 1];
        for &(z, r, c) in &BV_PARAMS {
            params[z as usize] = Some((r, c));
        }
        let mut states: Vec<Vec<SpeciesStats>> = vec![Vec::new(); N_ELEMENTS + 1];
        for &(z, state, mean, std, prior) in &ICSD_BV {
            if state != 0 && std > 0.0 {
                let list = &mut states[z as usize];
                // A repeated state keeps its first place and takes the later values (a dict).
                let stats = SpeciesStats { state, mean, std, prior };
                match list.iter_mut().find(|s| s.state == state) {
                    Some(s) => *s = stats,
                    None => list.push(stats),
                }
            }
        }
        let mut anion_former = vec![false; N_ELEMENTS + 1];
        for &z in &ANION_FORMERS {
            anion_former[z as usize] = true;
        }
        Tables { params, states, anion_former }
    })
}

/// Pauling electronegativity of `z` as pymatgen has it (NaN where it has none).
fn electronegativity(z: u8) -> f64 {
    PAULING_X[z as usize - 1]
}

fn err(index: usize, s: &Structure, reason: String) -> CoreError {
    CoreError::Structure { index, name: s.id.clone(), reason }
}

/// Accumulates the bond-valence sum of one center over the pairs the cell list reports.
struct BvSink<'a> {
    numbers: &'a [u8],
    tables: &'a Tables,
    z: u8,
    r: f64,
    c: f64,
    x: f64,
    anion_former: bool,
    scale: f64,
    sum: f64,
}

impl PairSink for BvSink<'_> {
    #[inline]
    fn push_pair(&mut self, _i: i64, j: i64, shift: [i32; 3], distance: f64, _vector: [f64; 3], _want_vectors: bool) {
        let zj = self.numbers[j as usize];
        // pymatgen drops a coincident neighbor when it is site 0 (its self-pair test compares
        // the neighbor's index with the center's position in its one-site query) or when it is
        // an atom of the same element at the same stored position.
        if distance <= COINCIDENT && (j == 0 || (zj == self.z && shift == [0, 0, 0])) {
            return;
        }
        if zj == self.z || !(self.anion_former || self.tables.anion_former[zj as usize]) {
            return;
        }
        let Some((rj, cj)) = self.tables.params[zj as usize] else {
            return; // unreachable: every element was checked before the search
        };
        let (ri, ci) = (self.r, self.c);
        let d = ci.sqrt() - cj.sqrt();
        let big_r = ri + rj - ri * rj * (d * d) / (ci * ri + cj * rj);
        let v = ((big_r - distance * self.scale) / BV_B).exp();
        if self.x < electronegativity(zj) {
            self.sum += v;
        } else {
            self.sum += -v;
        }
    }
}

/// One orbit after sorting: its element, size, lowest site and candidate states.
struct Orbit {
    /// Index of the element among the structure's distinct elements.
    element: usize,
    size: i64,
    /// `(state, normalised posterior)`, by decreasing posterior.
    candidates: Vec<(i64, f64)>,
}

/// Symmetry orbits as lists of site indices, ordered by their lowest index (sites ascending).
fn orbits(s: &Structure, index: usize, symprec: f64) -> Result<Vec<Vec<usize>>, CoreError> {
    let n = s.n_sites();
    if symprec == 0.0 {
        return Ok((0..n).map(|i| vec![i]).collect());
    }
    let labels = symmetry_dataset(s, index, symprec)?.orbits;
    if labels.len() != n || labels.iter().any(|&l| l >= n) {
        return Err(err(index, s, "moyo returned orbits that do not match the sites".into()));
    }
    let mut slot = vec![usize::MAX; n];
    let mut out: Vec<Vec<usize>> = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        if slot[l] == usize::MAX {
            slot[l] = out.len();
            out.push(Vec::new());
        }
        out[slot[l]].push(i);
    }
    Ok(out)
}

/// The normalised posteriors of the states of `z` at bond-valence sum `bv`, sorted as pymatgen
/// sorts them and cut at 1/100 of the best.
fn candidates(z: u8, bv: f64) -> Vec<(i64, f64)> {
    let states = &tables().states[z as usize];
    let mut prob: Vec<(i64, f64)> = states
        .iter()
        .map(|s| {
            let d = bv - s.mean;
            (s.state as i64, (-(d * d) / 2.0 / (s.std * s.std)).exp() / s.std * s.prior)
        })
        .collect();
    let total = prob.iter().fold(0.0, |acc, p| acc + p.1);
    for p in &mut prob {
        p.1 = if total == 0.0 { 0.0 } else { p.1 / total };
    }
    // Stable: equal posteriors keep the table's order.
    prob.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    let Some(&(_, top)) = prob.first() else { return prob };
    prob.retain(|p| p.1 > 0.01 * top);
    prob
}

/// Oxidation state of every site of one structure, in site order (`index` names it in errors).
pub fn bond_valence_states(s: &Structure, index: usize, opts: &BondValenceOptions) -> Result<Vec<i32>, CoreError> {
    s.validate_for_cutoff(index, opts.max_radius)?;
    let n = s.n_sites();
    if n == 0 {
        return Err(err(index, s, "a structure without sites has no oxidation states".into()));
    }
    let t = tables();
    let mut missing: Vec<String> = Vec::new();
    for (k, &z) in s.numbers.iter().enumerate() {
        if t.params[z as usize].is_none() {
            let sym = symbol(z).unwrap_or("?");
            if !missing.iter().any(|m| m.starts_with(&format!("{sym} "))) {
                missing.push(format!("{sym} (site {k})"));
            }
        }
    }
    if !missing.is_empty() {
        return Err(err(
            index,
            s,
            format!("no bond-valence parameters (O'Keeffe & Brese 1991) for {}", missing.join(", ")),
        ));
    }
    let groups = orbits(s, index, opts.symprec)?;
    let m = groups.len();
    // Neighbor visits of the representatives, from the mean density, before any search.
    let visits = rough_pair_estimate(s, opts.max_radius) / n as f64 * m as f64 + m as f64;
    if !at_most(visits, MAX_BV_WORK) {
        return Err(err(
            index,
            s,
            format!(
                "bond-valence sums of {m} sites within {} A need about {visits:.3e} neighbor visits, above the limit of {MAX_BV_WORK:e}",
                opts.max_radius
            ),
        ));
    }
    // Stable sort by decreasing electronegativity of the representative's element (Python's
    // `sorted` with key `-X`; no element with parameters lacks X).
    let mut order: Vec<usize> = (0..m).collect();
    let x_of = |g: usize| electronegativity(s.numbers[groups[g][0]]);
    order.sort_by(|&a, &b| x_of(b).partial_cmp(&x_of(a)).unwrap_or(std::cmp::Ordering::Equal));

    let cells = CellList::new(s, opts.max_radius).map_err(|e| err(index, s, e))?;
    let mut elements: Vec<u8> = Vec::new();
    let mut sorted: Vec<Orbit> = Vec::with_capacity(m);
    for &g in &order {
        let rep = groups[g][0];
        let z = s.numbers[rep];
        let (r, c) = t.params[z as usize].unwrap_or((f64::NAN, f64::NAN));
        let mut sink = BvSink {
            numbers: &s.numbers,
            tables: t,
            z,
            r,
            c,
            x: electronegativity(z),
            anion_former: t.anion_former[z as usize],
            scale: opts.distance_scale_factor,
            sum: 0.0,
        };
        cells.query(rep, &mut sink, false);
        let candidates = candidates(z, sink.sum);
        if candidates.is_empty() {
            let sym = symbol(z).unwrap_or("?");
            return Err(err(
                index,
                s,
                format!(
                    "no oxidation state of {sym} (site {rep}) is probable at its bond-valence sum {:.6} (pymatgen fails here with 'min() arg is an empty sequence')",
                    sink.sum
                ),
            ));
        }
        let element = match elements.iter().position(|&e| e == z) {
            Some(e) => e,
            None => {
                elements.push(z);
                elements.len() - 1
            }
        };
        sorted.push(Orbit { element, size: groups[g].len() as i64, candidates });
    }
    check_cancelled()?;

    // Bound the search before running it: tree nodes, or the permutation budget times the depth.
    let (mut nodes, mut width) = (1.0f64, 1.0f64);
    for o in &sorted {
        width *= o.candidates.len() as f64;
        nodes += width;
    }
    let budget = opts.max_permutations as f64 + 2.0;
    let search = nodes.min(budget * (m as f64 + 1.0)) + width.min(budget) * m as f64;
    if !at_most(search, MAX_BV_WORK) {
        return Err(err(
            index,
            s,
            format!("the search over {m} orbits needs about {search:.3e} steps, above the limit of {MAX_BV_WORK:e}"),
        ));
    }

    let best = search_assignment(&sorted, elements.len(), opts.max_permutations);
    let Some(best) = best.assignment else {
        let why = if best.exhausted {
            format!("after {} permutations (max_permutations)", best.permutations)
        } else {
            format!("among {} permutations", best.permutations)
        };
        return Err(err(
            index,
            s,
            format!(
                "no charge-neutral assignment of oxidation states with each element's states within 1 {why} (pymatgen: 'Valences cannot be assigned!')"
            ),
        ));
    };
    let mut out = vec![0i32; n];
    for (k, &g) in order.iter().enumerate() {
        let state = sorted[k].candidates[best[k]].0 as i32;
        for &site in &groups[g] {
            out[site] = state;
        }
    }
    Ok(out)
}

struct SearchResult {
    /// Candidate index per sorted orbit of the best assignment.
    assignment: Option<Vec<usize>>,
    permutations: u64,
    /// The search stopped on the permutation budget.
    exhausted: bool,
}

/// pymatgen's depth-first search, iteratively (no recursion depth limit) with the charge bounds
/// kept as prefix sums and the scores as prefix products (the same products, in the same order,
/// as multiplying the whole assignment left to right).
fn search_assignment(orbits: &[Orbit], n_elements: usize, max_permutations: u64) -> SearchResult {
    let m = orbits.len();
    let mut suffix_max = vec![0i64; m + 1];
    let mut suffix_min = vec![0i64; m + 1];
    for k in (0..m).rev() {
        let c = &orbits[k].candidates;
        let hi = c.iter().map(|p| p.0).max().unwrap_or(0);
        let lo = c.iter().map(|p| p.0).min().unwrap_or(0);
        suffix_max[k] = suffix_max[k + 1] + hi * orbits[k].size;
        suffix_min[k] = suffix_min[k + 1] + lo * orbits[k].size;
    }
    let mut choice = vec![0usize; m];
    let mut charge = vec![0i64; m + 1];
    let mut score = vec![0.0f64; m + 1];
    let mut lo_el = vec![0i64; n_elements];
    let mut hi_el = vec![0i64; n_elements];
    let mut count: u64 = 0;
    let mut best_score = 0.0f64;
    let mut best: Option<Vec<usize>> = None;
    let mut exhausted = false;
    let set = |level: usize, k: usize, charge: &mut [i64], score: &mut [f64]| {
        let (v, p) = orbits[level].candidates[k];
        charge[level + 1] = charge[level] + v * orbits[level].size;
        score[level + 1] = if level == 0 { p } else { score[level] * p };
    };
    let mut level = 0usize;
    'call: loop {
        // A call with `choice[..level]` assigned.
        if count > max_permutations {
            exhausted = true;
            break;
        }
        let highest = charge[level] + suffix_max[level];
        let lowest = charge[level] + suffix_min[level];
        if highest < 0 || lowest > 0 {
            count += 1;
        } else if level == m {
            lo_el.fill(i64::MAX);
            hi_el.fill(i64::MIN);
            for (o, &k) in orbits.iter().zip(&choice) {
                let v = o.candidates[k].0;
                lo_el[o.element] = lo_el[o.element].min(v);
                hi_el[o.element] = hi_el[o.element].max(v);
            }
            let spread = lo_el.iter().zip(&hi_el).map(|(lo, hi)| hi - lo).max().unwrap_or(0);
            if spread <= 1 && score[m] > best_score {
                best_score = score[m];
                best = Some(choice.clone());
            }
            count += 1;
        } else {
            choice[level] = 0;
            set(level, 0, &mut charge, &mut score);
            level += 1;
            continue 'call;
        }
        // Return from the call at `level`: advance the caller's loop.
        loop {
            if level == 0 {
                break 'call;
            }
            level -= 1;
            choice[level] += 1;
            if choice[level] < orbits[level].candidates.len() {
                set(level, choice[level], &mut charge, &mut score);
                level += 1;
                continue 'call;
            }
        }
    }
    SearchResult { assignment: best, permutations: count, exhausted }
}

/// [`bond_valence_states`] of every structure in parallel: one result per structure, in input
/// order (a structure's error names it). Fails as a whole only for invalid options, an
/// oversized output or an interruption. The states do not depend on the thread count.
pub fn bond_valence_batch(
    structures: &[Structure],
    opts: &BondValenceOptions,
    n_threads: Option<usize>,
) -> Result<Vec<Result<Vec<i32>, CoreError>>, CoreError> {
    opts.validate()?;
    crate::parallel::effective_threads(n_threads)?;
    let sites: f64 = structures.iter().map(|s| s.n_sites() as f64).sum();
    crate::limits::check_output_bytes(sites * 4.0, || format!("oxidation states of {sites} sites"))?;
    let rows: Vec<Result<Vec<i32>, CoreError>> = with_threads(n_threads, || {
        structures
            .par_iter()
            .enumerate()
            .map(|(k, s)| {
                check_cancelled()?;
                let row = bond_valence_states(s, k, opts);
                check_cancelled()?;
                row
            })
            .collect()
    })?;
    if rows.iter().any(|r| matches!(r, Err(CoreError::Interrupted))) {
        return Err(CoreError::Interrupted);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rocksalt(a: f64, z1: u8, z2: u8) -> Structure {
        let l = [[0.0, a / 2.0, a / 2.0], [a / 2.0, 0.0, a / 2.0], [a / 2.0, a / 2.0, 0.0]];
        Structure::new(l, vec![[0.0; 3], [0.5; 3]], vec![z1, z2], [true; 3])
    }

    /// Rutile TiO2 (P4_2/mnm, a = 4.594, c = 2.959, u = 0.3048).
    fn rutile() -> Structure {
        let (a, c, u) = (4.594, 2.959, 0.3048);
        let l = [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, c]];
        let f = vec![
            [0.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [u, u, 0.0],
            [1.0 - u, 1.0 - u, 0.0],
            [0.5 + u, 0.5 - u, 0.5],
            [0.5 - u, 0.5 + u, 0.5],
        ];
        Structure::new(l, f, vec![22, 22, 8, 8, 8, 8], [true; 3])
    }

    #[test]
    fn tables_are_consistent() {
        let t = tables();
        // Every element with parameters has states, and every considered state a prior.
        for &(z, r, c) in &BV_PARAMS {
            assert!(r > 0.0 && c > 0.0);
            assert!(!t.states[z as usize].is_empty(), "Z={z}");
            assert!(electronegativity(z).is_finite(), "Z={z}");
            for s in &t.states[z as usize] {
                assert!(s.prior.is_finite() && s.prior > 0.0, "Z={z} state {}", s.state);
            }
        }
        assert_eq!(t.params[8], Some((0.63, 3.15)));
        assert!(t.params[54].is_none()); // Xe
    }

    #[test]
    fn rocksalt_nacl_is_plus_one_minus_one() {
        let s = rocksalt(5.64, 11, 17);
        for symprec in [0.0, 0.1] {
            let opts = BondValenceOptions { symprec, ..Default::default() };
            assert_eq!(bond_valence_states(&s, 0, &opts).unwrap(), vec![1, -1]);
        }
        // MgO: +2 / -2.
        let s = rocksalt(4.21, 12, 8);
        assert_eq!(bond_valence_states(&s, 0, &BondValenceOptions::default()).unwrap(), vec![2, -2]);
    }

    #[test]
    fn symmetry_does_not_change_rutile() {
        let s = rutile();
        let with = bond_valence_states(&s, 0, &BondValenceOptions::default()).unwrap();
        let without = bond_valence_states(&s, 0, &BondValenceOptions { symprec: 0.0, ..Default::default() }).unwrap();
        assert_eq!(with, vec![4, 4, -2, -2, -2, -2]);
        assert_eq!(with, without);
    }

    #[test]
    fn elements_without_parameters_are_refused_by_name() {
        // XeO (rock salt): xenon has no O'Keeffe-Brese parameters.
        let mut s = rocksalt(5.0, 8, 54);
        s.id = Some("xeo".into());
        let e = bond_valence_states(&s, 7, &BondValenceOptions::default()).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("structure 7 (xeo)") || text.starts_with("structure 7"), "{text}");
        assert!(text.contains("Xe (site 1)"), "{text}");
        assert!(!text.contains("O ("), "{text}");
    }

    #[test]
    fn unassignable_structures_are_refused() {
        // Two sodium atoms and nothing to bond with: no charge-neutral assignment.
        let s = rocksalt(5.64, 11, 11);
        let e = bond_valence_states(&s, 3, &BondValenceOptions::default()).unwrap_err().to_string();
        assert!(e.starts_with("structure 3") && e.contains("Valences cannot be assigned"), "{e}");
        // Squeezed NaCl: the sums are far from every ICSD mean, every posterior underflows.
        let s = rocksalt(1.0, 11, 17);
        let opts = BondValenceOptions { max_radius: 1.0, ..Default::default() };
        let e = bond_valence_states(&s, 0, &opts).unwrap_err().to_string();
        assert!(e.contains("no oxidation state of"), "{e}");
    }

    #[test]
    fn search_counts_permutations_as_pymatgen() {
        // Orbit 0: +1 (0.6) or +2 (0.4); orbit 1: -2. The root is open (charges -1..0), [+1] is
        // pruned (count 1), [+2, -2] is the only neutral leaf (count 2).
        let orbits = vec![
            Orbit { element: 0, size: 1, candidates: vec![(1, 0.6), (2, 0.4)] },
            Orbit { element: 1, size: 1, candidates: vec![(-2, 1.0)] },
        ];
        let r = search_assignment(&orbits, 2, 1);
        assert_eq!((r.assignment, r.permutations, r.exhausted), (Some(vec![1, 0]), 2, false));
        // With a budget of 0 the search stops after the pruned branch.
        let r = search_assignment(&orbits, 2, 0);
        assert_eq!((r.assignment, r.permutations, r.exhausted), (None, 1, true));
        // States of one element more than 1 apart are never assigned together.
        let orbits = vec![
            Orbit { element: 0, size: 1, candidates: vec![(1, 0.9)] },
            Orbit { element: 0, size: 1, candidates: vec![(3, 0.9)] },
            Orbit { element: 1, size: 2, candidates: vec![(-2, 1.0)] },
        ];
        let r = search_assignment(&orbits, 2, 100);
        assert_eq!((r.assignment, r.permutations), (None, 1));
        // Equal best scores: the first assignment found wins.
        let orbits = vec![
            Orbit { element: 0, size: 1, candidates: vec![(2, 0.5), (1, 0.5)] },
            Orbit { element: 0, size: 1, candidates: vec![(1, 0.5), (2, 0.5)] },
            Orbit { element: 1, size: 1, candidates: vec![(-3, 1.0)] },
        ];
        let r = search_assignment(&orbits, 2, 100);
        assert_eq!(r.assignment, Some(vec![0, 0, 0]));
    }

    #[test]
    fn options_are_checked() {
        let bad = [
            BondValenceOptions { symprec: -0.1, ..Default::default() },
            BondValenceOptions { symprec: f64::NAN, ..Default::default() },
            BondValenceOptions { max_radius: 0.0, ..Default::default() },
            BondValenceOptions { max_radius: f64::INFINITY, ..Default::default() },
            BondValenceOptions { distance_scale_factor: -1.0, ..Default::default() },
        ];
        for o in bad {
            assert!(matches!(bond_valence_batch(&[], &o, None), Err(CoreError::InvalidArgument(_))), "{o:?}");
        }
        let e = bond_valence_batch(&[], &BondValenceOptions { max_radius: -1.0, ..Default::default() }, None);
        assert!(e.unwrap_err().to_string().contains("max_radius"));
    }

    #[test]
    fn batch_is_ordered_and_thread_independent() {
        let mut structures = Vec::new();
        for k in 0..40 {
            let a = 5.5 + 0.01 * k as f64;
            structures.push(match k % 4 {
                0 => rocksalt(a, 11, 17),
                1 => rutile(),
                2 => rocksalt(a, 54, 8),
                _ => rocksalt(a - 1.3, 12, 8),
            });
        }
        let opts = BondValenceOptions::default();
        let one = bond_valence_batch(&structures, &opts, Some(1)).unwrap();
        let three = bond_valence_batch(&structures, &opts, Some(3)).unwrap();
        assert_eq!(one, three);
        for (k, r) in one.iter().enumerate() {
            match k % 4 {
                0 => assert_eq!(r.as_ref().unwrap(), &vec![1, -1]),
                1 => assert_eq!(r.as_ref().unwrap(), &vec![4, 4, -2, -2, -2, -2]),
                2 => assert!(r.as_ref().unwrap_err().to_string().starts_with(&format!("structure {k}"))),
                _ => assert_eq!(r.as_ref().unwrap(), &vec![2, -2]),
            }
        }
    }
}

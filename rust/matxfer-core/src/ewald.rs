//! Ewald summation of the Coulomb energy of point charges in a periodic crystal, as pymatgen's
//! `EwaldSummation(structure, acc_factor=...)` computes it (matminer `EwaldEnergy`).
//!
//! With `N` sites, cell volume `V` (A^3), charges `q_i` (elementary charges) and pymatgen's
//! parameter choices
//! - screening `eta = (N w / V^2)^(1/3) pi`, `w = 1 / sqrt(2)` (or the caller's `eta`),
//! - `accf = sqrt(ln(10^accuracy))`,
//! - real-space cutoff `r_max = accf / sqrt(eta)` and reciprocal cutoff `g_max = 2 sqrt(eta) accf`
//!   (or the caller's cutoffs),
//!
//! the energy in eV is `E = E_real + E_recip + E_point + E_charged` with
//! - `E_real = C/2 sum_i sum_{(j,S): 1e-8 < r_ij <= r_max} q_i q_j erfc(sqrt(eta) r_ij) / r_ij`,
//! - `E_recip = C 2 pi / V sum_{0 < |G| <= g_max} exp(-G^2 / (4 eta)) / G^2 |S(G)|^2`,
//!   `S(G) = sum_j q_j exp(i G . r_j)` (pymatgen sums the same quantity as an `N x N` matrix),
//! - `E_point = -C sqrt(eta / pi) sum_i q_i^2`,
//! - `E_charged = -C pi Q^2 / (2 V eta)` when the net charge `Q = sum_i q_i` exceeds 1e-8 in
//!   magnitude (pymatgen's neutralising background),
//!
//! and `C = 1e10 e / (4 pi eps_0)` = 14.399645468667815 eV A (pymatgen's `CONV_FACT` with scipy's
//! CODATA 2018 constants). `G` runs over the reciprocal lattice `2 pi inv(L)^T`; `G` and `-G`
//! contribute equally, so only one of each pair is visited.
//!
//! Every structure is summed by one thread in a fixed order (the real-space terms per site, in
//! neighbor-list order, then over sites; the reciprocal terms in `(h, k, l)` order), so results
//! are bitwise identical for any thread count. The work of a structure (pairs within `r_max`
//! plus reciprocal vectors times sites) is estimated and checked against [`MAX_EWALD_WORK`]
//! before anything is allocated.

use libm::erfc;
use rayon::prelude::*;

use crate::error::CoreError;
use crate::formula::Composition;
use crate::neighbors::cell_list::{rough_pair_estimate, CellList};
use crate::neighbors::PairSink;
use crate::oxidation::{guess_composition, GuessOptions, GuessScratch};
use crate::parallel::{check_cancelled, with_threads};
use crate::structure::linalg::{inv3, Mat3};
use crate::structure::Structure;

/// pymatgen's `EwaldSummation.CONV_FACT`: `1e10 e / (4 pi eps_0)`, eV A per e^2.
pub const CONV_FACT: f64 = 14.399_645_468_667_815;
/// Work units (pair visits + reciprocal vectors x sites) allowed for one structure: some tens of
/// seconds; pymatgen would need hours and `N x N x G` memory for such a structure.
pub const MAX_EWALD_WORK: f64 = 2.0e10;
/// Net charges below this (in e) count as neutral, as in pymatgen.
const CHARGE_TOLERANCE: f64 = 1e-8;
/// Pairs closer than this (angstrom) are skipped, as pymatgen skips its self term.
const MIN_PAIR_DISTANCE: f64 = 1e-8;

/// Parameters of the summation; `None` takes pymatgen's choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EwaldOptions {
    /// pymatgen `acc_factor`: decimal places of accuracy (matminer's `EwaldEnergy` uses 4,
    /// pymatgen's `EwaldSummation` default is 12).
    pub accuracy: f64,
    pub eta: Option<f64>,
    pub real_space_cut: Option<f64>,
    pub recip_space_cut: Option<f64>,
}

impl Default for EwaldOptions {
    fn default() -> Self {
        Self { accuracy: 4.0, eta: None, real_space_cut: None, recip_space_cut: None }
    }
}

impl EwaldOptions {
    /// Check the parameters (before any structure is touched).
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |what: &str, v: f64| CoreError::InvalidArgument(format!("{what} must be finite and > 0, got {v}"));
        if !(self.accuracy.is_finite() && self.accuracy > 0.0 && self.accuracy <= 300.0) {
            return Err(CoreError::InvalidArgument(format!(
                "accuracy (decimal places) must be in (0, 300], got {}",
                self.accuracy
            )));
        }
        for (what, v) in
            [("eta", self.eta), ("real_space_cut", self.real_space_cut), ("recip_space_cut", self.recip_space_cut)]
        {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return Err(bad(what, v));
                }
            }
        }
        Ok(())
    }
}

/// The terms of one structure, eV.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EwaldTerms {
    pub real: f64,
    pub reciprocal: f64,
    pub point: f64,
    pub charged: f64,
}

impl EwaldTerms {
    /// pymatgen's `total_energy`.
    pub fn total(&self) -> f64 {
        self.reciprocal + self.real + self.point + self.charged
    }
}

fn err(index: usize, s: &Structure, reason: String) -> CoreError {
    CoreError::Structure { index, name: s.id.clone(), reason }
}

/// Sum of `q_j erfc(sqrt(eta) r) / r` over the neighbors of one site.
struct RealSink<'a> {
    charges: &'a [f64],
    sqrt_eta: f64,
    sum: f64,
}

impl PairSink for RealSink<'_> {
    #[inline]
    fn push_pair(&mut self, _i: i64, j: i64, _shift: [i32; 3], distance: f64, _vector: [f64; 3], _want: bool) {
        if distance > MIN_PAIR_DISTANCE {
            self.sum += erfc(self.sqrt_eta * distance) * self.charges[j as usize] / distance;
        }
    }
}

/// Reciprocal lattice `2 pi inv(L)^T` (rows `b_k`, `a_i . b_k = 2 pi delta_ik`).
fn reciprocal(l: &Mat3) -> Option<Mat3> {
    let inv = inv3(l)?;
    let mut b = [[0.0; 3]; 3];
    for (k, row) in b.iter_mut().enumerate() {
        for (c, x) in row.iter_mut().enumerate() {
            *x = 2.0 * std::f64::consts::PI * inv[c][k];
        }
    }
    Some(b)
}

/// The Ewald terms of one structure with per-site charges `charges` (e).
pub fn ewald_structure(
    s: &Structure,
    index: usize,
    charges: &[f64],
    opts: &EwaldOptions,
) -> Result<EwaldTerms, CoreError> {
    s.validate(index)?;
    if !s.pbc.iter().all(|&p| p) {
        return Err(err(index, s, format!("Ewald summation needs a 3D periodic lattice, got pbc={:?}", s.pbc)));
    }
    let n = s.n_sites();
    if charges.len() != n {
        return Err(err(index, s, format!("{} charges for {n} sites", charges.len())));
    }
    if let Some(k) = charges.iter().position(|q| !q.is_finite()) {
        return Err(err(index, s, format!("site {k} has a non-finite charge {}", charges[k])));
    }
    if n == 0 {
        return Ok(EwaldTerms::default());
    }
    let volume = s.volume();
    let w = 1.0 / 2f64.sqrt();
    let eta = opts.eta.unwrap_or_else(|| (n as f64 * w / (volume * volume)).powf(1.0 / 3.0) * std::f64::consts::PI);
    let sqrt_eta = eta.sqrt();
    let accf = (10f64.powf(opts.accuracy)).ln().sqrt();
    let accf = if accf.is_finite() { accf } else { (opts.accuracy * std::f64::consts::LN_10).sqrt() };
    let r_max = opts.real_space_cut.unwrap_or(accf / sqrt_eta);
    let g_max = opts.recip_space_cut.unwrap_or(2.0 * sqrt_eta * accf);
    if !(r_max.is_finite() && r_max > 0.0 && g_max.is_finite() && g_max > 0.0) {
        return Err(err(index, s, format!("Ewald cutoffs r_max={r_max} A, g_max={g_max} 1/A are not usable")));
    }
    s.validate_for_cutoff(index, r_max)?;
    let b = reciprocal(&s.lattice).ok_or_else(|| err(index, s, "singular lattice".into()))?;
    // |h| <= g_max |a_1| / (2 pi), since h = G . a_1 / (2 pi).
    let bound = |k: usize| {
        let a = s.lattice[k];
        (g_max * (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt() / (2.0 * std::f64::consts::PI)).floor()
    };
    let hkl = [bound(0), bound(1), bound(2)];
    let box_count = hkl.iter().map(|h| 2.0 * h + 1.0).product::<f64>();
    let work = rough_pair_estimate(s, r_max) + box_count * 0.5 * n as f64 + box_count;
    if !crate::limits::at_most(work, MAX_EWALD_WORK) {
        return Err(err(
            index,
            s,
            format!(
                "Ewald summation at r_max={r_max:.4} A, g_max={g_max:.4} 1/A needs about {work:.3e} steps (reciprocal box {}x{}x{}), above the limit of {MAX_EWALD_WORK:e}",
                2.0 * hkl[0] + 1.0,
                2.0 * hkl[1] + 1.0,
                2.0 * hkl[2] + 1.0
            ),
        ));
    }

    // Real space.
    let cells = CellList::new(s, r_max).map_err(|e| err(index, s, e))?;
    let mut real = 0.0;
    for i in 0..n {
        if charges[i] == 0.0 {
            continue;
        }
        let mut sink = RealSink { charges, sqrt_eta, sum: 0.0 };
        cells.query(i, &mut sink, false);
        real += charges[i] * sink.sum;
    }
    let real = 0.5 * CONV_FACT * real;

    // Reciprocal space: phase tables exp(i h b_k . r_j) for every h in -H_k..=H_k.
    let cart = s.cart_coords();
    let hk = [hkl[0] as i64, hkl[1] as i64, hkl[2] as i64];
    let mut tables: [Vec<(f64, f64)>; 3] = Default::default();
    for k in 0..3 {
        let len = (2 * hk[k] + 1) as usize;
        let mut t = Vec::with_capacity(len * n);
        for h in -hk[k]..=hk[k] {
            for r in &cart {
                let phase = h as f64 * (b[k][0] * r[0] + b[k][1] * r[1] + b[k][2] * r[2]);
                t.push((phase.cos(), phase.sin()));
            }
        }
        tables[k] = t;
    }
    let g_max2 = g_max * g_max;
    let mut recip = 0.0;
    let mut partial = vec![(0.0f64, 0.0f64); n];
    for h in 0..=hk[0] {
        let k_lo = if h == 0 { 0 } else { -hk[1] };
        for k in k_lo..=hk[1] {
            let l_lo = if h == 0 && k == 0 { 1 } else { -hk[2] };
            // exp(i (h b1 + k b2) . r_j) q_j, shared by every l.
            let (th, tk) = (&tables[0][((h + hk[0]) as usize) * n..], &tables[1][((k + hk[1]) as usize) * n..]);
            let mut any = false;
            for l in l_lo..=hk[2] {
                let g = [
                    h as f64 * b[0][0] + k as f64 * b[1][0] + l as f64 * b[2][0],
                    h as f64 * b[0][1] + k as f64 * b[1][1] + l as f64 * b[2][1],
                    h as f64 * b[0][2] + k as f64 * b[1][2] + l as f64 * b[2][2],
                ];
                let g2 = g[0] * g[0] + g[1] * g[1] + g[2] * g[2];
                if g2 > g_max2 || g2 == 0.0 {
                    continue;
                }
                if !any {
                    for j in 0..n {
                        let (a, bb) = (th[j], tk[j]);
                        partial[j] = (charges[j] * (a.0 * bb.0 - a.1 * bb.1), charges[j] * (a.0 * bb.1 + a.1 * bb.0));
                    }
                    any = true;
                }
                let tl = &tables[2][((l + hk[2]) as usize) * n..];
                let (mut re, mut im) = (0.0, 0.0);
                for j in 0..n {
                    let (p, c) = (partial[j], tl[j]);
                    re += p.0 * c.0 - p.1 * c.1;
                    im += p.0 * c.1 + p.1 * c.0;
                }
                // G and -G: twice.
                recip += 2.0 * (-g2 / (4.0 * eta)).exp() / g2 * (re * re + im * im);
            }
        }
    }
    let reciprocal = 2.0 * std::f64::consts::PI / volume * CONV_FACT * recip;

    let q2: f64 = charges.iter().map(|q| q * q).sum();
    let point = -CONV_FACT * (eta / std::f64::consts::PI).sqrt() * q2;
    let total_charge: f64 = charges.iter().sum();
    let charged = if total_charge.abs() > CHARGE_TOLERANCE {
        -CONV_FACT / 2.0 * std::f64::consts::PI / volume / eta * total_charge * total_charge
    } else {
        0.0
    };
    Ok(EwaldTerms { real, reciprocal, point, charged })
}

/// Composition of a structure as pymatgen's `Structure.composition`: elements in the order of
/// their first site, amounts = site counts.
pub fn structure_composition(s: &Structure) -> Composition {
    let mut elements: Vec<(u8, f64)> = Vec::new();
    for &z in &s.numbers {
        match elements.iter_mut().find(|(e, _)| *e == z) {
            Some(e) => e.1 += 1.0,
            None => elements.push((z, 1.0)),
        }
    }
    Composition { elements }
}

/// Per-site oxidation states as pymatgen's `Structure.add_oxidation_state_by_guess()` assigns
/// them: the first (best) guess of `structure.composition.oxi_state_guesses()` (the cell's site
/// counts, not the reduced formula), each element's average state `total / count` on every site
/// of it; all zeros when no guess balances (pymatgen's fallback), or an error with
/// `no_guess_is_error`.
pub fn guessed_charges(
    s: &Structure,
    index: usize,
    max_work: u64,
    no_guess_is_error: bool,
    scratch: &mut GuessScratch,
) -> Result<Vec<f64>, CoreError> {
    s.validate(index)?;
    let comp = structure_composition(s);
    if comp.elements.is_empty() {
        return Ok(Vec::new());
    }
    let options = GuessOptions { max_work, ..GuessOptions::default() };
    let g = guess_composition(&comp, &options, scratch)
        .map_err(|(code, message)| err(index, s, format!("oxidation-state guess failed ({code}): {message}")))?;
    if g.n_guesses() == 0 {
        if no_guess_is_error {
            return Err(err(index, s, "no charge-balanced oxidation-state guess for this composition".into()));
        }
        return Ok(vec![0.0; s.n_sites()]);
    }
    let states: Vec<(u8, f64)> = g.guess(0).collect();
    Ok(s.numbers.iter().map(|z| states.iter().find(|(e, _)| e == z).map_or(0.0, |&(_, q)| q)).collect())
}

/// Where the charges of [`ewald_batch`] come from.
#[derive(Debug, Clone, Copy)]
pub enum ChargeSource<'a> {
    /// Per-site charges of every structure, flat in site order.
    Explicit(&'a [f64]),
    /// [`guessed_charges`] with this work bound; `true`: no guess is an error (else zeros).
    Guess { max_work: u64, no_guess_is_error: bool },
}

/// [`ewald_structure`] of every structure, in parallel over structures; also returns the
/// charges used (flat, per site).
pub fn ewald_batch(
    structures: &[Structure],
    charges: ChargeSource<'_>,
    opts: &EwaldOptions,
    n_threads: Option<usize>,
) -> Result<(Vec<EwaldTerms>, Vec<f64>), CoreError> {
    opts.validate()?;
    let mut offsets = Vec::with_capacity(structures.len() + 1);
    offsets.push(0usize);
    for s in structures {
        offsets.push(offsets.last().unwrap() + s.n_sites());
    }
    if let ChargeSource::Explicit(q) = charges {
        if q.len() != *offsets.last().unwrap() {
            return Err(CoreError::InvalidArgument(format!(
                "{} oxidation states for {} sites in {} structures",
                q.len(),
                offsets.last().unwrap(),
                structures.len()
            )));
        }
    }
    let rows = with_threads(n_threads, || {
        structures
            .par_iter()
            .enumerate()
            .map_init(GuessScratch::default, |scratch, (k, s)| {
                check_cancelled()?;
                let q = match charges {
                    ChargeSource::Explicit(q) => q[offsets[k]..offsets[k + 1]].to_vec(),
                    ChargeSource::Guess { max_work, no_guess_is_error } => {
                        guessed_charges(s, k, max_work, no_guess_is_error, scratch)?
                    }
                };
                let terms = ewald_structure(s, k, &q, opts)?;
                check_cancelled()?;
                Ok((terms, q))
            })
            .collect::<Result<Vec<_>, CoreError>>()
    })??;
    let mut terms = Vec::with_capacity(rows.len());
    let mut q = Vec::with_capacity(*offsets.last().unwrap());
    for (t, c) in rows {
        terms.push(t);
        q.extend(c);
    }
    Ok((terms, q))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rocksalt(a: f64) -> Structure {
        // Conventional NaCl cell, 8 sites.
        let mut f = Vec::new();
        let mut z = Vec::new();
        for (x, y, w) in [(0.0, 0.0, 0.0), (0.5, 0.5, 0.0), (0.5, 0.0, 0.5), (0.0, 0.5, 0.5)] {
            f.push([x, y, w]);
            z.push(11);
            f.push([x + 0.5, y, w]);
            z.push(17);
        }
        Structure::new([[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]], f, z, [true; 3])
    }

    #[test]
    fn rocksalt_madelung_constant() {
        // E per ion pair = -M C / r0 with M = 1.747565 (NaCl), r0 = a / 2.
        let s = rocksalt(5.64);
        let q: Vec<f64> = s.numbers.iter().map(|&z| if z == 11 { 1.0 } else { -1.0 }).collect();
        let opts = EwaldOptions { accuracy: 12.0, ..Default::default() };
        let e = ewald_structure(&s, 0, &q, &opts).unwrap().total();
        let madelung = -e / 4.0 * (5.64 / 2.0) / CONV_FACT;
        assert!((madelung - 1.747_564_594_6).abs() < 1e-8, "{madelung}");
    }

    #[test]
    fn guessed_charges_follow_the_composition() {
        let s = rocksalt(5.64);
        let q = guessed_charges(&s, 0, 1_000_000, false, &mut GuessScratch::default()).unwrap();
        assert_eq!(q, [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0]);
    }

    #[test]
    fn thread_count_does_not_change_bits() {
        let list: Vec<Structure> = (0..40).map(|k| rocksalt(5.0 + 0.03 * k as f64)).collect();
        let src = ChargeSource::Guess { max_work: 1_000_000, no_guess_is_error: false };
        let (a, _) = ewald_batch(&list, src, &EwaldOptions::default(), Some(1)).unwrap();
        let (b, _) = ewald_batch(&list, src, &EwaldOptions::default(), Some(3)).unwrap();
        assert!(a.iter().zip(&b).all(|(x, y)| x.total().to_bits() == y.total().to_bits()));
    }

    #[test]
    fn bad_inputs_name_the_structure() {
        let mut s = rocksalt(5.64);
        s.pbc = [true, true, false];
        let e = ewald_structure(&s, 7, &[0.0; 8], &EwaldOptions::default()).unwrap_err();
        assert!(e.to_string().contains('7'), "{e}");
        let s = rocksalt(5.64);
        let e = ewald_structure(&s, 3, &[0.0; 7], &EwaldOptions::default()).unwrap_err();
        assert!(e.to_string().contains("7 charges"), "{e}");
        let opts = EwaldOptions { real_space_cut: Some(5000.0), ..Default::default() };
        assert!(ewald_structure(&s, 0, &[0.0; 8], &opts).is_err());
    }
}

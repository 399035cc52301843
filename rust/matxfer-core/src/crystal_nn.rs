//! CrystalNN: pymatgen's default local-environment algorithm (Zimmermann and Jain 2020), computed
//! as `pymatgen.analysis.local_env.CrystalNN` (pymatgen 2026.10.24) does for structures without
//! oxidation states (the default options; `weighted_cn=False`, `cation_anion=False`).
//!
//! For site `i`:
//! 1. Its Voronoi cell as pymatgen's `VoronoiNN(cutoff=search_cutoff)` builds it: clipped by the
//!    neighbors within `search_cutoff` only (a site whose cell those leave unbounded is redone
//!    with the cutoff doubled, at most up to the longest cell diagonal + 0.011 A, as pymatgen
//!    does). Cells that fit within `search_cutoff / 2` (nearly all) are the exact periodic cells
//!    of [`crate::voronoi`].
//! 2. Face weight `w = omega / max omega` (solid angle), times `omega / area` when
//!    `porous_adjustment`, times `1 + x_diff_weight sqrt(|X_i - X_j| / 3.3)` (Pauling
//!    electronegativities; 1 where one is missing), divided by the largest; times a distance
//!    weight: 1 up to `r_i + r_j + distance_cutoffs.0`, 0 from `r_i + r_j + distance_cutoffs.1`,
//!    a half cosine between (`r` the radius of [`DEFAULT_RADIUS`]: covalent, else atomic);
//!    rounded to 3 decimals exactly as Python's `round(w, 3)`; zero weights dropped.
//! 3. With the distinct weights `1 >= b_1 > b_2 > ... > b_k > b_{k+1} = 0`, coordination number
//!    `n(b_m)` (the neighbors with weight `>= b_m`) has probability
//!    `(F(b_m) - F(b_{m+1})) / (pi / 4)`, `F` the area under the unit quarter circle up to `x`;
//!    the rest, if positive, goes to CN 0. The chosen CN is the most probable (the first in that
//!    order on a tie, as pymatgen's `max` over its dict).
//!
//! The same operations in the same order as pymatgen, so results match it to rounding of the
//! Voronoi geometry (qhull's vertices carry about 1e-9 relative error, which moves a weight
//! across a rounding boundary of step 2 very rarely).

use rayon::prelude::*;

use crate::crystal_nn_tables::{DEFAULT_RADIUS, PAULING_X};
use crate::error::CoreError;
use crate::neighbors::cell_list::{rough_pair_estimate, CellList, NeighborOptions};
use crate::neighbors::NeighborList;
use crate::parallel::with_threads;
use crate::structure::linalg::{frac_to_cart, norm};
use crate::structure::Structure;
use crate::voronoi::{polygon_area_solid_angle, Polyhedron, BOX, MIN_FACE_AREA, MIN_SEPARATION, PLANE_TOLERANCE};

/// Options of `CrystalNN` (pymatgen's names; defaults are pymatgen's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrystalNNOptions {
    /// `(low, high)`, angstrom beyond the sum of radii; `None` disables the distance weight.
    pub distance_cutoffs: Option<(f64, f64)>,
    /// Electronegativity-difference weight (0 disables it).
    pub x_diff_weight: f64,
    /// Scale solid angles by solid angle / face area (for porous and layered structures).
    pub porous_adjustment: bool,
    /// First Voronoi neighbor cutoff, angstrom.
    pub search_cutoff: f64,
}

impl Default for CrystalNNOptions {
    fn default() -> Self {
        CrystalNNOptions {
            distance_cutoffs: Some((0.5, 1.0)),
            x_diff_weight: 3.0,
            porous_adjustment: true,
            search_cutoff: 7.0,
        }
    }
}

impl CrystalNNOptions {
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |m: String| Err(CoreError::InvalidArgument(m));
        if !(self.search_cutoff.is_finite()
            && self.search_cutoff > 0.0
            && self.search_cutoff <= crate::limits::MAX_CUTOFF)
        {
            return bad(format!(
                "search_cutoff must be positive, finite and at most {} A, got {}",
                crate::limits::MAX_CUTOFF,
                self.search_cutoff
            ));
        }
        if !(self.x_diff_weight.is_finite() && self.x_diff_weight >= 0.0) {
            return bad(format!("x_diff_weight must be finite and >= 0, got {}", self.x_diff_weight));
        }
        if let Some((lo, hi)) = self.distance_cutoffs {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return bad(format!("distance_cutoffs must be finite with low < high, got ({lo}, {hi})"));
            }
        }
        Ok(())
    }
}

/// CrystalNN of one site. Neighbors are sorted by decreasing weight; the neighbors of
/// coordination number `n` are the first `n`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SiteNN {
    pub j: Vec<u32>,
    pub shifts: Vec<[i32; 3]>,
    /// Weights rounded to 3 decimals, in (0, 1].
    pub weights: Vec<f64>,
    pub distances: Vec<f64>,
    /// Coordination numbers with their probabilities, in pymatgen's order (increasing CN, then
    /// CN 0 if it has weight).
    pub cn_values: Vec<u32>,
    pub cn_probs: Vec<f64>,
    /// The most probable coordination number.
    pub cn: u32,
}

/// CrystalNN of a batch, flat: site `t` (sites in order, structures in order) has neighbors
/// `nbr_ptr[t]..nbr_ptr[t + 1]` (sorted by decreasing weight; the chosen ones are the first
/// `cn[t]`) and CN probabilities `cnw_ptr[t]..cnw_ptr[t + 1]`; structure `s` has sites
/// `site_ptr[s]..site_ptr[s + 1]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CrystalNNBatch {
    pub cn: Vec<i64>,
    pub nbr_ptr: Vec<usize>,
    pub j: Vec<i64>,
    pub shifts: Vec<[i32; 3]>,
    pub weights: Vec<f64>,
    pub distances: Vec<f64>,
    pub cnw_ptr: Vec<usize>,
    pub cn_values: Vec<i64>,
    pub cn_probs: Vec<f64>,
    pub site_ptr: Vec<usize>,
}

/// Bytes stored per neighbor (j, shift, weight, distance) and per CN entry.
const BYTES_PER_NEIGHBOR: usize = 8 + 12 + 8 + 8;
const BYTES_PER_CN: usize = 16;
/// Neighbors (and CN entries) per site assumed when the output is sized before the work.
const NEIGHBORS_PER_SITE_ESTIMATE: f64 = 24.0;
/// First neighbor-list cutoff, in mean site spacings (see [`crate::voronoi`]); the sites whose
/// cells reach farther are redone with the list at `search_cutoff`.
const FIRST_CUTOFF_SPACINGS: f64 = 2.0;
const PARALLEL_MIN_SITES: usize = 64;
const SITES_PER_TASK: usize = 16;

fn structure_error(index: usize, s: &Structure, reason: String) -> CoreError {
    CoreError::Structure { index, name: s.id.clone(), reason }
}

struct Setup {
    spacing: f64,
    /// Half-width of a cube that contains the exact Voronoi cell (Wigner-Seitz bound).
    ws_half_width: f64,
    /// pymatgen's largest VoronoiNN cutoff: longest of four cell diagonals + 0.01 A.
    max_cutoff: f64,
    /// The largest cutoff a site can need.
    largest: f64,
}

/// Check one structure for CrystalNN (valid, periodic along a, b and c, non-empty, radii known
/// when the distance weight is on, every neighbor search within the ceilings).
pub fn check_structure(s: &Structure, index: usize, opts: &CrystalNNOptions) -> Result<(), CoreError> {
    setup(s, index, opts).map(|_| ())
}

fn setup(s: &Structure, index: usize, opts: &CrystalNNOptions) -> Result<Setup, CoreError> {
    s.validate(index)?;
    if s.pbc != [true, true, true] {
        return Err(structure_error(
            index,
            s,
            format!("CrystalNN needs a structure periodic along a, b and c, got pbc = {:?}", s.pbc),
        ));
    }
    let n = s.n_sites();
    if n == 0 {
        return Err(structure_error(index, s, "the structure has no sites".into()));
    }
    if opts.distance_cutoffs.is_some() {
        for (i, &z) in s.numbers.iter().enumerate() {
            if !DEFAULT_RADIUS[z as usize - 1].is_finite() {
                return Err(structure_error(
                    index,
                    s,
                    format!(
                        "site {i} is {}, which has no covalent or atomic radius in pymatgen (CrystalNN's distance weight needs one; pass distance_cutoffs=None)",
                        crate::elements::symbol(z).unwrap_or("?")
                    ),
                ));
            }
        }
    }
    let mut diagonal: f64 = 0.0;
    for (b, c) in [(1.0, 1.0), (-1.0, 1.0), (1.0, -1.0), (-1.0, -1.0)] {
        diagonal = diagonal.max(norm(&frac_to_cart(&[1.0, b, c], &s.lattice)));
    }
    let ws_half_width = 0.5 * diagonal * (1.0 + 1e-6);
    let mut corners: f64 = 0.0;
    for c in [[1.0, 1.0, 1.0], [-1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, -1.0]] {
        corners = corners.max(norm(&frac_to_cart(&c, &s.lattice)));
    }
    let max_cutoff = corners + 0.01;
    let largest = if opts.search_cutoff >= max_cutoff { opts.search_cutoff } else { max_cutoff + 0.001 };
    s.validate_for_cutoff(index, largest)?;
    let limit = NeighborOptions::new(largest.min(crate::limits::MAX_CUTOFF)).validate()?;
    let per_site = rough_pair_estimate(s, largest) / n as f64;
    limit
        .check_estimate(per_site)
        .map_err(|r| structure_error(index, s, format!("{r} for one site at cutoff {largest:.3} A")))?;
    Ok(Setup { spacing: (s.volume() / n as f64).cbrt(), ws_half_width, max_cutoff, largest })
}

/// Python's `round(x, 3)` for `0 <= x <= 1`: the nearest multiple of 1e-3 (ties to even on the
/// exact binary value), as the nearest double.
pub fn round3(x: f64) -> f64 {
    let y = x * 1000.0;
    if (y - y.floor() - 0.5).abs() > 1e-6 {
        // Far from a tie: the rounding of the product cannot change the nearest integer, and
        // `k / 1000.0` (one correctly rounded division) is the double nearest to k/1000, as
        // Python's float(str) gives.
        return y.round() / 1000.0;
    }
    // Near a tie: decide on the exact decimal expansion (Rust formats it rounding half to even).
    format!("{x:.3}").parse().unwrap_or(x)
}

/// `CrystalNN._semicircle_integral`, with pymatgen's operations (`x ** 2` is `pow`).
fn semicircle_integral(bins: &[f64], idx: usize) -> f64 {
    let two = std::hint::black_box(2.0f64);
    let f = |x: f64| {
        let root = (1.0 - x.powf(two)).sqrt();
        0.5 * ((x * root) + (x / root).atan())
    };
    let x1 = bins[idx];
    let x2 = bins[idx + 1];
    let area1 = if x1 == 1.0 { 0.25 * std::f64::consts::PI } else { f(x1) };
    let area2 = f(x2);
    (area1 - area2) / (0.25 * std::f64::consts::PI)
}

/// One Voronoi face of the site: neighbor, image, distance, area and solid angle.
struct Face {
    j: u32,
    shift: [i32; 3],
    distance: f64,
    area: f64,
    omega: f64,
}

/// CrystalNN weights and CN distribution of site `i` from its Voronoi faces.
fn site_from_faces(s: &Structure, i: usize, faces: &[Face], opts: &CrystalNNOptions) -> SiteNN {
    let cn0 = || SiteNN { cn_values: vec![0], cn_probs: vec![1.0], ..Default::default() };
    if faces.is_empty() {
        return cn0();
    }
    let max_omega = faces.iter().map(|f| f.omega).fold(f64::NEG_INFINITY, f64::max);
    let zi = s.numbers[i] as usize - 1;
    let mut w: Vec<f64> = faces
        .iter()
        .map(|f| {
            let mut w = f.omega / max_omega;
            if opts.porous_adjustment {
                w *= f.omega / f.area;
            }
            if opts.x_diff_weight > 0.0 {
                let x1 = PAULING_X[zi];
                let x2 = PAULING_X[s.numbers[f.j as usize] as usize - 1];
                let chemical = if x1.is_nan() || x2.is_nan() {
                    1.0
                } else {
                    1.0 + opts.x_diff_weight * ((x1 - x2).abs() / 3.3).sqrt()
                };
                w *= chemical;
            }
            w
        })
        .collect();
    // Stable sorts by decreasing weight, as Python's sorted(reverse=True).
    let mut order: Vec<usize> = (0..faces.len()).collect();
    order.sort_by(|&a, &b| w[b].total_cmp(&w[a]));
    let highest = w[order[0]];
    if highest == 0.0 {
        return cn0();
    }
    for x in w.iter_mut() {
        *x /= highest;
    }
    if let Some((lo, hi)) = opts.distance_cutoffs {
        let r1 = DEFAULT_RADIUS[zi];
        for (k, f) in faces.iter().enumerate() {
            let diameter = r1 + DEFAULT_RADIUS[s.numbers[f.j as usize] as usize - 1];
            let low = diameter + lo;
            let high = diameter + hi;
            let d = f.distance;
            let dw = if d <= low {
                1.0
            } else if d < high {
                (((d - low) / (high - low) * std::f64::consts::PI).cos() + 1.0) * 0.5
            } else {
                0.0
            };
            w[k] *= dw;
        }
    }
    order.sort_by(|&a, &b| w[b].total_cmp(&w[a]));
    if w[order[0]] == 0.0 {
        return cn0();
    }
    let mut out = SiteNN::default();
    for &k in &order {
        let r = round3(w[k]);
        if r > 0.0 {
            out.j.push(faces[k].j);
            out.shifts.push(faces[k].shift);
            out.weights.push(r);
            out.distances.push(faces[k].distance);
        }
    }
    let mut bins: Vec<f64> = Vec::new();
    for &x in &out.weights {
        if bins.last() != Some(&x) {
            bins.push(x);
        }
    }
    bins.push(0.0);
    let mut n_at_least = 0usize;
    for idx in 0..bins.len() - 1 {
        let val = bins[idx];
        while n_at_least < out.weights.len() && out.weights[n_at_least] >= val {
            n_at_least += 1;
        }
        out.cn_values.push(n_at_least as u32);
        out.cn_probs.push(semicircle_integral(&bins, idx));
    }
    let total = out.cn_probs.iter().fold(0.0, |a, &b| a + b);
    let rest = 1.0 - total;
    if rest > 0.0 {
        out.cn_values.push(0);
        out.cn_probs.push(rest);
    }
    let mut best = 0usize;
    for k in 1..out.cn_probs.len() {
        if out.cn_probs[k] > out.cn_probs[best] {
            best = k;
        }
    }
    out.cn = out.cn_values[best];
    out
}

#[derive(Default)]
struct Scratch {
    pairs: NeighborList,
    order: Vec<usize>,
    poly: Polyhedron,
    faces: Vec<Face>,
}

/// What one site needs: done, or a longer neighbor list / a larger VoronoiNN cutoff.
enum Outcome {
    Done(SiteNN),
    /// (new VoronoiNN cutoff of the site, list cutoff it needs).
    Again(f64),
}

/// Site `i` with the neighbor list `cell_list` (cutoff `list_cutoff`) and pymatgen's VoronoiNN
/// cutoff `truncation` for this site.
#[allow(clippy::too_many_arguments)]
fn site_pass(
    s: &Structure,
    index: usize,
    i: usize,
    setup: &Setup,
    cell_list: &CellList,
    list_cutoff: f64,
    truncation: f64,
    opts: &CrystalNNOptions,
    scratch: &mut Scratch,
) -> Result<Outcome, CoreError> {
    let tol = PLANE_TOLERANCE * setup.spacing;
    let min_area = MIN_FACE_AREA * setup.spacing * setup.spacing;
    let p = &mut scratch.pairs;
    p.i.clear();
    p.j.clear();
    p.shifts.clear();
    p.distances.clear();
    p.vectors.clear();
    cell_list.query(i, p, true);
    scratch.order.clear();
    for t in 0..p.len() {
        if p.distances[t] < MIN_SEPARATION {
            return Err(structure_error(
                index,
                s,
                format!(
                    "sites {i} and {} (image {:?}) are {:.3e} A apart (overlapping atoms)",
                    p.j[t], p.shifts[t], p.distances[t]
                ),
            ));
        }
        if p.distances[t] <= truncation {
            scratch.order.push(t);
        }
    }
    scratch.order.sort_unstable_by(|&a, &b| {
        p.distances[a].total_cmp(&p.distances[b]).then(p.j[a].cmp(&p.j[b])).then(p.shifts[a].cmp(&p.shifts[b]))
    });
    let poly = &mut scratch.poly;
    poly.reset_cube(setup.ws_half_width.max(4.0 * truncation));
    let mut radius = poly.radius();
    let mut complete = false;
    for (k, &t) in scratch.order.iter().enumerate() {
        if 0.5 * p.distances[t] >= radius {
            complete = true;
            break;
        }
        if poly.clip(&p.vectors[t], k as u32, tol) {
            radius = poly.radius();
        }
    }
    let list_covers = list_cutoff >= truncation;
    if !complete && !list_covers && 2.0 * radius > list_cutoff {
        // Farther neighbors within the truncation may cut the cell: list them.
        return Ok(Outcome::Again(truncation));
    }
    scratch.faces.clear();
    for f in 0..poly.generator.len() {
        let polygon = &poly.verts[poly.face_start[f]..poly.face_start[f + 1]];
        let (area, omega) = polygon_area_solid_angle(polygon);
        if area.is_nan() || area <= min_area {
            continue;
        }
        if poly.generator[f] == BOX {
            // The neighbors within the truncation leave the cell open: pymatgen's VoronoiNN
            // doubles its cutoff, up to the longest cell diagonal.
            if truncation >= setup.max_cutoff {
                return Err(structure_error(
                    index,
                    s,
                    format!(
                        "the Voronoi cell of site {i} is open within {truncation:.3} A, the largest cutoff pymatgen's VoronoiNN allows"
                    ),
                ));
            }
            return Ok(Outcome::Again((2.0 * truncation).min(setup.max_cutoff + 0.001)));
        }
        let t = scratch.order[poly.generator[f] as usize];
        scratch.faces.push(Face { j: p.j[t] as u32, shift: p.shifts[t], distance: p.distances[t], area, omega });
    }
    // Faces in candidate order (distance, j, image): the order before the stable weight sorts.
    scratch
        .faces
        .sort_unstable_by(|a, b| a.distance.total_cmp(&b.distance).then(a.j.cmp(&b.j)).then(a.shift.cmp(&b.shift)));
    Ok(Outcome::Done(site_from_faces(s, i, &scratch.faces, opts)))
}

fn run_pass(
    s: &Structure,
    index: usize,
    setup: &Setup,
    list_cutoff: f64,
    todo: &[(usize, f64)],
    opts: &CrystalNNOptions,
    parallel: bool,
) -> Result<Vec<Outcome>, CoreError> {
    let cell_list = CellList::new(s, list_cutoff).map_err(|r| {
        if crate::parallel::cancelled() {
            CoreError::Interrupted
        } else {
            structure_error(index, s, r)
        }
    })?;
    let reach = list_cutoff + crate::neighbors::CUTOFF_TOLERANCE;
    let work = |chunk: &[(usize, f64)], scratch: &mut Scratch| -> Result<Vec<Outcome>, CoreError> {
        let mut out = Vec::with_capacity(chunk.len());
        for (k, &(i, truncation)) in chunk.iter().enumerate() {
            if k % 8 == 7 {
                crate::parallel::check_cancelled()?;
            }
            out.push(site_pass(s, index, i, setup, &cell_list, reach, truncation, opts, scratch)?);
        }
        Ok(out)
    };
    if parallel && todo.len() >= PARALLEL_MIN_SITES && rayon::current_num_threads() > 1 {
        let parts: Vec<Result<Vec<Outcome>, CoreError>> =
            todo.par_chunks(SITES_PER_TASK).map_init(Scratch::default, |scratch, chunk| work(chunk, scratch)).collect();
        let mut out = Vec::with_capacity(todo.len());
        for p in parts {
            out.extend(p?);
        }
        Ok(out)
    } else {
        work(todo, &mut Scratch::default())
    }
}

/// CrystalNN of every site of one structure (`index` names it in errors); split over the current
/// rayon pool by sites when `parallel` (the result is the same either way).
pub fn crystal_nn_structure(
    s: &Structure,
    index: usize,
    opts: &CrystalNNOptions,
    parallel: bool,
) -> Result<Vec<SiteNN>, CoreError> {
    opts.validate()?;
    let setup = setup(s, index, opts)?;
    let n = s.n_sites();
    let mut out: Vec<Option<SiteNN>> = vec![None; n];
    let mut todo: Vec<(usize, f64)> = (0..n).map(|i| (i, opts.search_cutoff)).collect();
    let mut list_cutoff = (FIRST_CUTOFF_SPACINGS * setup.spacing).min(opts.search_cutoff);
    // Each pass: the list cutoff only grows, and a site's VoronoiNN cutoff only doubles up to
    // `largest`, so the loop ends (bounded for safety).
    for _pass in 0..64 {
        let results = run_pass(s, index, &setup, list_cutoff, &todo, opts, parallel)?;
        let mut again = Vec::new();
        let mut need: f64 = 0.0;
        for (&(i, _), r) in todo.iter().zip(results) {
            match r {
                Outcome::Done(site) => out[i] = Some(site),
                Outcome::Again(t) => {
                    again.push((i, t));
                    need = need.max(t);
                }
            }
        }
        if again.is_empty() {
            break;
        }
        todo = again;
        list_cutoff = need.max(list_cutoff).min(setup.largest);
    }
    let mut sites = Vec::with_capacity(n);
    for (i, site) in out.into_iter().enumerate() {
        sites.push(site.ok_or_else(|| structure_error(index, s, format!("the CrystalNN of site {i} did not settle")))?);
    }
    Ok(sites)
}

/// CrystalNN of every site of every structure, in flat arrays. Every structure is checked first
/// (the lowest bad index is reported) and the output size is held to the memory budget before
/// any work; structures run in parallel on `n_threads` threads, large ones split by sites. The
/// result does not depend on the thread count.
pub fn crystal_nn_batch(
    structures: &[Structure],
    opts: &CrystalNNOptions,
    n_threads: Option<usize>,
) -> Result<CrystalNNBatch, CoreError> {
    crate::parallel::effective_threads(n_threads)?;
    opts.validate()?;
    let mut n_sites = 0usize;
    for (index, s) in structures.iter().enumerate() {
        setup(s, index, opts)?;
        n_sites += s.n_sites();
    }
    let estimate = n_sites as f64 * NEIGHBORS_PER_SITE_ESTIMATE * (BYTES_PER_NEIGHBOR + BYTES_PER_CN) as f64;
    crate::limits::check_output_bytes(estimate, || format!("the CrystalNN neighbors of {n_sites} sites"))?;
    let per_structure: Vec<Result<Vec<SiteNN>, CoreError>> = with_threads(n_threads, || {
        structures
            .par_iter()
            .enumerate()
            .map(|(index, s)| {
                crate::parallel::check_cancelled()?;
                crystal_nn_structure(s, index, opts, true)
            })
            .collect()
    })?;
    let mut all = Vec::with_capacity(structures.len());
    for r in per_structure {
        all.push(r?);
    }
    crate::parallel::check_cancelled()?;
    let n_nbrs: usize = all.iter().flatten().map(|t| t.j.len()).sum();
    let n_cn: usize = all.iter().flatten().map(|t| t.cn_values.len()).sum();
    crate::limits::check_output_bytes((n_nbrs * BYTES_PER_NEIGHBOR + n_cn * BYTES_PER_CN) as f64, || {
        format!("the {n_nbrs} CrystalNN neighbors of {n_sites} sites")
    })?;
    let mut out = CrystalNNBatch {
        cn: Vec::with_capacity(n_sites),
        nbr_ptr: Vec::with_capacity(n_sites + 1),
        j: Vec::with_capacity(n_nbrs),
        shifts: Vec::with_capacity(n_nbrs),
        weights: Vec::with_capacity(n_nbrs),
        distances: Vec::with_capacity(n_nbrs),
        cnw_ptr: Vec::with_capacity(n_sites + 1),
        cn_values: Vec::with_capacity(n_cn),
        cn_probs: Vec::with_capacity(n_cn),
        site_ptr: Vec::with_capacity(structures.len() + 1),
    };
    out.nbr_ptr.push(0);
    out.cnw_ptr.push(0);
    out.site_ptr.push(0);
    for structure in all {
        for t in structure {
            out.cn.push(t.cn as i64);
            out.j.extend(t.j.iter().map(|&j| j as i64));
            out.shifts.extend_from_slice(&t.shifts);
            out.weights.extend_from_slice(&t.weights);
            out.distances.extend_from_slice(&t.distances);
            out.nbr_ptr.push(out.j.len());
            out.cn_values.extend(t.cn_values.iter().map(|&c| c as i64));
            out.cn_probs.extend_from_slice(&t.cn_probs);
            out.cnw_ptr.push(out.cn_values.len());
        }
        out.site_ptr.push(out.cn.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structure::linalg::Vec3;

    fn cubic(a: f64, frac: Vec<Vec3>, numbers: Vec<u8>) -> Structure {
        Structure::new([[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]], frac, numbers, [true; 3])
    }

    #[test]
    fn round3_matches_python() {
        // Python: round(0.0625, 3) == 0.062 (exact tie, to even), round(0.0635, 3) == 0.064
        // (0.0635 is stored above the tie), round(0.1235, 3) == 0.123 (stored below), round(1.0, 3).
        assert_eq!(round3(0.0625), 0.062);
        assert_eq!(round3(0.0635), 0.064);
        assert_eq!(round3(0.1235), 0.123);
        assert_eq!(round3(0.9996), 1.0);
        assert_eq!(round3(1.0), 1.0);
        assert_eq!(round3(0.00049), 0.0);
        assert_eq!(round3(0.3333333), 0.333);
    }

    #[test]
    fn rocksalt_is_octahedral() {
        // NaCl: the sites form a simple cubic lattice, so each cell is a cube with the six
        // opposite ions on its faces, all at 2.82 A < 1.66 + 1.02 + 0.5 A (weight 1).
        let s = cubic(
            5.64,
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
        );
        let sites = crystal_nn_structure(&s, 0, &CrystalNNOptions::default(), false).unwrap();
        for (i, t) in sites.iter().enumerate() {
            assert_eq!(t.cn, 6, "site {i}");
            assert_eq!(t.cn_values, vec![6]);
            assert_eq!(t.cn_probs, vec![1.0]);
            assert!(t.weights.iter().all(|&w| w == 1.0));
            let other = if i < 4 { 17 } else { 11 };
            assert!(t.j.iter().all(|&j| s.numbers[j as usize] == other));
        }
    }

    #[test]
    fn bad_structures_are_named() {
        let mut s = cubic(3.0, vec![[0.0; 3]], vec![97]);
        s.id = Some("bk".into());
        let e = crystal_nn_batch(&[cubic(3.0, vec![[0.0; 3]], vec![29]), s], &CrystalNNOptions::default(), Some(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("structure 1 (bk)") && e.contains("Bk"), "{e}");
        let opts = CrystalNNOptions { search_cutoff: f64::NAN, ..Default::default() };
        assert!(crystal_nn_batch(&[], &opts, Some(1)).is_err());
    }
}

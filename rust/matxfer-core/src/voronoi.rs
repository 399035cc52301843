//! Periodic Voronoi tessellation: the Voronoi cell of every site of a crystal (any triclinic
//! cell, periodic along a, b and c).
//!
//! The cell of site `i` is the set of points closer to `r_i` than to any other site or periodic
//! image, i.e. the intersection of the half-spaces `x . r_ij <= |r_ij|^2 / 2` (positions relative
//! to `r_i`, `r_ij = r_j - r_i + S @ lattice` in angstrom, as in [`crate::neighbors`]). It is built
//! as voro++ does, cell by cell, by half-space clipping: start from a cube that contains the
//! Wigner-Seitz cell of the lattice (hence the Voronoi cell), clip it by the bisector planes of
//! the neighbors from the exact neighbor list, nearest first, and stop once the farthest vertex
//! `R` of the polyhedron is closer than half the distance of the next neighbor (a plane at
//! distance `d / 2 >= R` cannot cut it). If the neighbor list runs out first (`2 R` beyond its
//! cutoff), the site is redone with the cutoff `2 R`; so every cell is provably complete.
//!
//! Per face (one per neighbor `(j, S)` whose bisector plane bounds the cell with non-zero area):
//! - `area`: the face polygon's area, A^2;
//! - `solid_angle`: the solid angle the face subtends at `r_i`, steradian (the faces of a cell
//!   sum to `4 pi`);
//! - `distance`: `|r_ij|`, angstrom (the face lies at `|r_ij| / 2` from `r_i`).
//!
//! Per site: `volume`, A^3 (the volumes of a structure sum to the cell volume).
//!
//! Faces are listed per site in order of increasing distance, ties by `j` then `S`. Neighbors
//! whose plane only touches the cell at a vertex or an edge (zero area, common in high-symmetry
//! crystals) are not faces, nor are faces below [`MIN_FACE_AREA`] `(V / N)^(2/3)` (the same
//! neighbors, cut by rounding); qhull-based tools (pymatgen's `VoronoiNN`) may report some of
//! them with areas of rounding size.

use rayon::prelude::*;

use crate::error::CoreError;
use crate::neighbors::cell_list::{rough_pair_estimate, CellList, NeighborOptions};
use crate::neighbors::NeighborList;
use crate::parallel::with_threads;
use crate::structure::linalg::{cross, dot, frac_to_cart, norm, Vec3};
use crate::structure::Structure;

/// Bytes stored per face: i, j (int64), shift (3 x int32), area, solid angle, distance (f64).
pub const BYTES_PER_FACE: usize = 8 + 8 + 12 + 8 + 8 + 8;
/// Faces per site assumed when the output is sized before the work (cells of crystals have
/// 4 to about 30 faces).
const FACES_PER_SITE_ESTIMATE: f64 = 24.0;
/// Two sites closer than this (angstrom) have no bisector plane: the structure is refused.
pub const MIN_SEPARATION: f64 = 1e-6;
/// First neighbor cutoff, in units of the mean site spacing `(V / N)^(1/3)`: enough to complete
/// the cells of close-packed and most other crystals in one pass (fcc needs 1.59, simple cubic
/// 1.73); the other sites are redone at the cutoff they need.
const FIRST_CUTOFF_SPACINGS: f64 = 2.0;
/// Vertices within this distance of a plane, in units of the mean site spacing, are on it (well
/// above the rounding of vertex coordinates, about 1e-15, and below the slivers that crystals
/// stored to 1e-6 A have, faces about 1e-9 A wide).
pub(crate) const PLANE_TOLERANCE: f64 = 1e-12;
/// Faces smaller than this, in units of the squared mean site spacing, are planes that touch the
/// cell at a vertex or an edge, cut off by rounding (of the computation or of the input
/// coordinates: a crystal stored to 1e-8 A has such slivers of about 1e-17 A^2).
pub const MIN_FACE_AREA: f64 = 1e-12;
/// Structures with at least this many sites are split over threads by sites.
const PARALLEL_MIN_SITES: usize = 64;
/// Sites per task when a structure is split.
const SITES_PER_TASK: usize = 16;

/// The Voronoi faces of one site.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteCell {
    /// Neighbor index (local to the structure) per face.
    pub j: Vec<u32>,
    pub shifts: Vec<[i32; 3]>,
    pub areas: Vec<f64>,
    pub solid_angles: Vec<f64>,
    pub distances: Vec<f64>,
    pub volume: f64,
}

/// The tessellation of a batch: faces of every site in flat arrays (sites in order, structures
/// in order), `face_ptr[s]..face_ptr[s + 1]` the faces of structure `s`, one volume per site.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VoronoiBatch {
    pub i: Vec<i64>,
    pub j: Vec<i64>,
    pub shifts: Vec<[i32; 3]>,
    pub areas: Vec<f64>,
    pub solid_angles: Vec<f64>,
    pub distances: Vec<f64>,
    pub volumes: Vec<f64>,
    pub face_ptr: Vec<usize>,
}

/// A convex polyhedron as a list of faces, each an ordered polygon of vertices (relative to the
/// site) and the plane that made it (`generator`: index of the neighbor, or `BOX` for the
/// starting cube). Vertices are stored once per face; copies of one vertex are bitwise equal,
/// because an intersection point is always computed from the same (inside, outside) endpoints.
#[derive(Default)]
pub(crate) struct Polyhedron {
    pub(crate) verts: Vec<Vec3>,
    pub(crate) face_start: Vec<usize>,
    pub(crate) generator: Vec<u32>,
    // Scratch buffers of a clip, swapped in when it succeeds.
    new_verts: Vec<Vec3>,
    new_start: Vec<usize>,
    new_generator: Vec<u32>,
    on_plane: Vec<Vec3>,
    signed: Vec<f64>,
}

pub(crate) const BOX: u32 = u32::MAX;

impl Polyhedron {
    /// The cube `[-w, w]^3`, faces counter-clockwise seen from outside.
    pub(crate) fn reset_cube(&mut self, w: f64) {
        self.verts.clear();
        self.face_start.clear();
        self.generator.clear();
        let c = |x: f64, y: f64, z: f64| [x * w, y * w, z * w];
        let faces: [[Vec3; 4]; 6] = [
            [c(1., -1., -1.), c(1., 1., -1.), c(1., 1., 1.), c(1., -1., 1.)],
            [c(-1., -1., -1.), c(-1., -1., 1.), c(-1., 1., 1.), c(-1., 1., -1.)],
            [c(-1., 1., -1.), c(-1., 1., 1.), c(1., 1., 1.), c(1., 1., -1.)],
            [c(-1., -1., -1.), c(1., -1., -1.), c(1., -1., 1.), c(-1., -1., 1.)],
            [c(-1., -1., 1.), c(1., -1., 1.), c(1., 1., 1.), c(-1., 1., 1.)],
            [c(-1., -1., -1.), c(-1., 1., -1.), c(1., 1., -1.), c(1., -1., -1.)],
        ];
        self.face_start.push(0);
        for f in faces {
            self.verts.extend_from_slice(&f);
            self.face_start.push(self.verts.len());
            self.generator.push(BOX);
        }
    }

    /// Farthest vertex from the site.
    pub(crate) fn radius(&self) -> f64 {
        self.verts.iter().map(|v| dot(v, v)).fold(0.0, f64::max).sqrt()
    }

    /// Intersect with `x . v <= |v|^2 / 2` (the bisector plane of neighbor `generator` at `v`).
    /// Vertices within `tol` (angstrom) of the plane count as on it. Returns whether the plane
    /// cut the polyhedron (with a face of at least three distinct vertices).
    pub(crate) fn clip(&mut self, v: &Vec3, generator: u32, tol: f64) -> bool {
        let length = norm(v);
        let half = 0.5 * length;
        // Signed distance of each vertex to the plane, angstrom.
        self.signed.clear();
        let mut cut = false;
        for p in &self.verts {
            let s = dot(p, v) / length - half;
            cut |= s > tol;
            self.signed.push(s);
        }
        if !cut {
            return false;
        }
        self.new_verts.clear();
        self.new_start.clear();
        self.new_generator.clear();
        self.on_plane.clear();
        self.new_start.push(0);
        for f in 0..self.generator.len() {
            let (a, b) = (self.face_start[f], self.face_start[f + 1]);
            let begin = self.new_verts.len();
            for k in a..b {
                let next = if k + 1 == b { a } else { k + 1 };
                let (p, sp) = (self.verts[k], self.signed[k]);
                let (q, sq) = (self.verts[next], self.signed[next]);
                if sp <= tol {
                    self.new_verts.push(p);
                    if sp >= -tol {
                        self.on_plane.push(p);
                    }
                }
                let crossing = (sp < -tol && sq > tol) || (sp > tol && sq < -tol);
                if crossing {
                    // Always from the inside endpoint to the outside one, so that the two faces
                    // sharing this edge compute the same point.
                    let (inside, s_in, outside, s_out) = if sp < 0.0 { (p, sp, q, sq) } else { (q, sq, p, sp) };
                    let t = s_in / (s_in - s_out);
                    let x = [
                        inside[0] + t * (outside[0] - inside[0]),
                        inside[1] + t * (outside[1] - inside[1]),
                        inside[2] + t * (outside[2] - inside[2]),
                    ];
                    self.new_verts.push(x);
                    self.on_plane.push(x);
                }
            }
            if self.new_verts.len() - begin >= 3 {
                self.new_start.push(self.new_verts.len());
                self.new_generator.push(self.generator[f]);
            } else {
                self.new_verts.truncate(begin);
            }
        }
        // The new face: the distinct points on the plane, in angular order around their centroid.
        // Copies of one vertex are bitwise equal; the tolerance only merges near-coincident ones.
        let merge2 = tol * tol;
        let mut distinct: Vec<Vec3> = Vec::with_capacity(self.on_plane.len());
        for p in &self.on_plane {
            if !distinct.iter().any(|q| {
                let d = [p[0] - q[0], p[1] - q[1], p[2] - q[2]];
                dot(&d, &d) <= merge2
            }) {
                distinct.push(*p);
            }
        }
        if distinct.len() >= 3 {
            let n = distinct.len() as f64;
            let centroid = distinct.iter().fold([0.0; 3], |c, p| [c[0] + p[0] / n, c[1] + p[1] / n, c[2] + p[2] / n]);
            let normal = [v[0] / length, v[1] / length, v[2] / length];
            // Any unit vector in the plane, then its partner.
            let helper = if normal[0].abs() < 0.9 { [1.0, 0.0, 0.0] } else { [0.0, 1.0, 0.0] };
            let u = cross(&normal, &helper);
            let u_len = norm(&u);
            let u = [u[0] / u_len, u[1] / u_len, u[2] / u_len];
            let w = cross(&normal, &u);
            let mut keyed: Vec<(f64, Vec3)> = distinct
                .iter()
                .map(|p| {
                    let d = [p[0] - centroid[0], p[1] - centroid[1], p[2] - centroid[2]];
                    (dot(&d, &w).atan2(dot(&d, &u)), *p)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            self.new_verts.extend(keyed.iter().map(|k| k.1));
            self.new_start.push(self.new_verts.len());
            self.new_generator.push(generator);
        }
        std::mem::swap(&mut self.verts, &mut self.new_verts);
        std::mem::swap(&mut self.face_start, &mut self.new_start);
        std::mem::swap(&mut self.generator, &mut self.new_generator);
        true
    }
}

/// Area (A^2) and solid angle at the origin (sr) of a convex polygon, by a fan of triangles
/// from its first vertex (the solid angle of each triangle by Van Oosterom and Strackee).
pub(crate) fn polygon_area_solid_angle(p: &[Vec3]) -> (f64, f64) {
    let mut twice_area = [0.0; 3];
    let mut omega = 0.0;
    let a = p[0];
    let na = norm(&a);
    for k in 1..p.len() - 1 {
        let (b, c) = (p[k], p[k + 1]);
        let e1 = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
        let e2 = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
        let x = cross(&e1, &e2);
        twice_area = [twice_area[0] + x[0], twice_area[1] + x[1], twice_area[2] + x[2]];
        let (nb, nc) = (norm(&b), norm(&c));
        let triple = dot(&a, &cross(&b, &c)).abs();
        let denominator = na * nb * nc + dot(&a, &b) * nc + dot(&a, &c) * nb + dot(&b, &c) * na;
        omega += 2.0 * triple.atan2(denominator);
    }
    (0.5 * norm(&twice_area), omega)
}

/// One candidate neighbor: position relative to the site, distance, index and image.
#[derive(Clone, Copy)]
struct Candidate {
    vector: Vec3,
    distance: f64,
    j: u32,
    shift: [i32; 3],
}

/// Per-thread work buffers.
#[derive(Default)]
struct Scratch {
    pairs: NeighborList,
    candidates: Vec<Candidate>,
    poly: Polyhedron,
}

/// The geometry of one structure's tessellation.
struct Setup {
    /// Half-width of the starting cube, angstrom (contains the Wigner-Seitz cell).
    box_half_width: f64,
    /// Mean site spacing `(V / N)^(1/3)`, angstrom.
    spacing: f64,
}

fn structure_error(index: usize, s: &Structure, reason: String) -> CoreError {
    CoreError::Structure { index, name: s.id.clone(), reason }
}

/// The largest cutoff any site can need: twice the half-width of the starting cube.
fn max_cutoff(box_half_width: f64) -> f64 {
    2.0 * box_half_width * (1.0 + 1e-9)
}

/// Check one structure (valid, periodic along a, b, c, non-empty, every neighbor search it can
/// need within the image and pair ceilings) and size its tessellation.
fn setup(s: &Structure, index: usize) -> Result<Setup, CoreError> {
    s.validate(index)?;
    if s.pbc != [true, true, true] {
        return Err(structure_error(
            index,
            s,
            format!(
                "a Voronoi tessellation needs a structure periodic along a, b and c, got pbc = {:?} (its outer cells would be unbounded)",
                s.pbc
            ),
        ));
    }
    let n = s.n_sites();
    if n == 0 {
        return Err(structure_error(index, s, "the structure has no sites".into()));
    }
    // Every point is within half the longest cell diagonal of some lattice point, so the
    // Wigner-Seitz cell of the lattice (and the Voronoi cell inside it) lies within that radius.
    let mut diagonal: f64 = 0.0;
    for (b, c) in [(1.0, 1.0), (-1.0, 1.0), (1.0, -1.0), (-1.0, -1.0)] {
        diagonal = diagonal.max(norm(&frac_to_cart(&[1.0, b, c], &s.lattice)));
    }
    let box_half_width = 0.5 * diagonal * (1.0 + 1e-6);
    let cutoff = max_cutoff(box_half_width);
    s.validate_for_cutoff(index, cutoff)?;
    let limit = NeighborOptions::new(cutoff.min(crate::limits::MAX_CUTOFF)).validate()?;
    // Pairs of one site at the largest cutoff (the neighbor buffer of one site).
    let per_site = rough_pair_estimate(s, cutoff) / n as f64;
    limit
        .check_estimate(per_site)
        .map_err(|r| structure_error(index, s, format!("{r} for one site at cutoff {cutoff:.3} A")))?;
    Ok(Setup { box_half_width, spacing: (s.volume() / n as f64).cbrt() })
}

/// The checks [`voronoi_structure`] makes before any work (periodic along a, b and c, at least
/// one site, valid cell and coordinates, the neighbor buffer of one site within the pair
/// ceiling), for callers that validate a whole batch before allocating.
pub fn check_structure(s: &Structure, index: usize) -> Result<(), CoreError> {
    setup(s, index).map(|_| ())
}

/// Sites of `s` in `sites`, tessellated with neighbors of `cell_list` (cutoff `cutoff`): the
/// complete cells, or for a site whose cell needs a longer list, the cutoff it needs.
fn tessellate_sites(
    s: &Structure,
    index: usize,
    setup: &Setup,
    cell_list: &CellList,
    cutoff: f64,
    sites: &[usize],
    scratch: &mut Scratch,
) -> Result<Vec<Result<SiteCell, f64>>, CoreError> {
    let tol = PLANE_TOLERANCE * setup.spacing;
    let min_area = MIN_FACE_AREA * setup.spacing * setup.spacing;
    let mut out = Vec::with_capacity(sites.len());
    for (k, &i) in sites.iter().enumerate() {
        if k % 8 == 7 {
            crate::parallel::check_cancelled()?;
        }
        scratch.pairs.i.clear();
        scratch.pairs.j.clear();
        scratch.pairs.shifts.clear();
        scratch.pairs.distances.clear();
        scratch.pairs.vectors.clear();
        cell_list.query(i, &mut scratch.pairs, true);
        let p = &scratch.pairs;
        scratch.candidates.clear();
        for t in 0..p.len() {
            if p.distances[t] < MIN_SEPARATION {
                return Err(structure_error(
                    index,
                    s,
                    format!(
                        "sites {i} and {} (image {:?}) are {:.3e} A apart: they have no Voronoi face (overlapping atoms)",
                        p.j[t], p.shifts[t], p.distances[t]
                    ),
                ));
            }
            scratch.candidates.push(Candidate {
                vector: p.vectors[t],
                distance: p.distances[t],
                j: p.j[t] as u32,
                shift: p.shifts[t],
            });
        }
        scratch
            .candidates
            .sort_unstable_by(|a, b| a.distance.total_cmp(&b.distance).then(a.j.cmp(&b.j)).then(a.shift.cmp(&b.shift)));
        out.push(tessellate_one(s, index, i, setup, &scratch.candidates, cutoff, (tol, min_area), &mut scratch.poly)?);
    }
    Ok(out)
}

/// The cell of site `i` from its candidates (sorted by distance, all within `cutoff`).
#[allow(clippy::too_many_arguments)]
fn tessellate_one(
    s: &Structure,
    index: usize,
    i: usize,
    setup: &Setup,
    candidates: &[Candidate],
    cutoff: f64,
    (tol, min_area): (f64, f64),
    poly: &mut Polyhedron,
) -> Result<Result<SiteCell, f64>, CoreError> {
    poly.reset_cube(setup.box_half_width);
    let mut radius = poly.radius();
    let mut complete = false;
    for (k, c) in candidates.iter().enumerate() {
        // Every vertex x has x . r_ij / |r_ij| <= |x| <= radius <= |r_ij| / 2: no cut, neither
        // here nor by any farther neighbor.
        if 0.5 * c.distance >= radius {
            complete = true;
            break;
        }
        if poly.clip(&c.vector, k as u32, tol) {
            radius = poly.radius();
        }
    }
    if !complete && 2.0 * radius > cutoff {
        return Ok(Err(2.0 * radius * (1.0 + 1e-9) + 1e-9));
    }
    let n_faces = poly.generator.len();
    let mut cell = SiteCell {
        j: Vec::with_capacity(n_faces),
        shifts: Vec::with_capacity(n_faces),
        areas: Vec::with_capacity(n_faces),
        solid_angles: Vec::with_capacity(n_faces),
        distances: Vec::with_capacity(n_faces),
        volume: 0.0,
    };
    let mut faces: Vec<(u32, f64, f64)> = Vec::with_capacity(n_faces);
    for f in 0..n_faces {
        let polygon = &poly.verts[poly.face_start[f]..poly.face_start[f + 1]];
        let (area, omega) = polygon_area_solid_angle(polygon);
        if area.is_nan() || area <= min_area {
            continue;
        }
        if poly.generator[f] == BOX {
            // The cube contains the cell, so a cube face that survives means broken geometry.
            return Err(structure_error(
                index,
                s,
                format!("internal error: the Voronoi cell of site {i} reaches its bounding box"),
            ));
        }
        faces.push((poly.generator[f], area, omega));
    }
    faces.sort_unstable_by_key(|f| f.0);
    for (g, area, omega) in faces {
        let c = &candidates[g as usize];
        cell.j.push(c.j);
        cell.shifts.push(c.shift);
        cell.areas.push(area);
        cell.solid_angles.push(omega);
        cell.distances.push(c.distance);
        cell.volume += area * c.distance / 6.0;
    }
    Ok(Ok(cell))
}

/// Cells of the sites `sites` of `s`, in order, on the current pool when `parallel`.
fn tessellate_pass(
    s: &Structure,
    index: usize,
    setup: &Setup,
    cutoff: f64,
    sites: &[usize],
    parallel: bool,
) -> Result<Vec<Result<SiteCell, f64>>, CoreError> {
    let cell_list = CellList::new(s, cutoff).map_err(|r| {
        if crate::parallel::cancelled() {
            CoreError::Interrupted
        } else {
            structure_error(index, s, r)
        }
    })?;
    // The list holds every pair up to the cutoff plus its tolerance.
    let reach = cutoff + crate::neighbors::CUTOFF_TOLERANCE;
    if parallel && sites.len() >= PARALLEL_MIN_SITES && rayon::current_num_threads() > 1 {
        let parts: Vec<Result<Vec<Result<SiteCell, f64>>, CoreError>> = sites
            .par_chunks(SITES_PER_TASK)
            .map_init(Scratch::default, |scratch, chunk| {
                tessellate_sites(s, index, setup, &cell_list, reach, chunk, scratch)
            })
            .collect();
        let mut out = Vec::with_capacity(sites.len());
        for p in parts {
            out.extend(p?);
        }
        Ok(out)
    } else {
        tessellate_sites(s, index, setup, &cell_list, reach, sites, &mut Scratch::default())
    }
}

/// The Voronoi cells of every site of one structure (`index` names it in errors); split over
/// the current rayon pool by sites when `parallel` (the result is the same either way).
pub fn voronoi_structure(s: &Structure, index: usize, parallel: bool) -> Result<Vec<SiteCell>, CoreError> {
    let setup = setup(s, index)?;
    let n = s.n_sites();
    let largest = max_cutoff(setup.box_half_width);
    let mut cutoff = (FIRST_CUTOFF_SPACINGS * setup.spacing).min(largest);
    let mut cells: Vec<Option<SiteCell>> = vec![None; n];
    let mut todo: Vec<usize> = (0..n).collect();
    // Each pass uses the longest cutoff the remaining sites asked for; a site that asks again
    // had its cell shrink by rounding only, and the last pass at the largest cutoff (which
    // always suffices) settles it.
    for _pass in 0..4 {
        let results = tessellate_pass(s, index, &setup, cutoff, &todo, parallel)?;
        let mut again = Vec::new();
        let mut need: f64 = 0.0;
        for (&i, r) in todo.iter().zip(results) {
            match r {
                Ok(cell) => cells[i] = Some(cell),
                Err(c) => {
                    again.push(i);
                    need = need.max(c);
                }
            }
        }
        if again.is_empty() {
            break;
        }
        todo = again;
        cutoff = if need > cutoff { need.min(largest) } else { largest };
    }
    let mut out = Vec::with_capacity(n);
    for (i, c) in cells.into_iter().enumerate() {
        out.push(c.ok_or_else(|| {
            structure_error(
                index,
                s,
                format!("the Voronoi cell of site {i} did not close within cutoff {largest:.3} A"),
            )
        })?);
    }
    Ok(out)
}

/// The Voronoi cells of every site of every structure, in flat arrays. Every structure is
/// checked first (the lowest bad index is reported) and the output size is held to the memory
/// budget before any work; structures run in parallel on `n_threads` threads, large ones split
/// by sites. The result does not depend on the thread count.
pub fn voronoi_batch(structures: &[Structure], n_threads: Option<usize>) -> Result<VoronoiBatch, CoreError> {
    crate::parallel::effective_threads(n_threads)?;
    let mut n_sites = 0usize;
    for (index, s) in structures.iter().enumerate() {
        setup(s, index)?;
        n_sites += s.n_sites();
    }
    let estimate = n_sites as f64 * (FACES_PER_SITE_ESTIMATE * BYTES_PER_FACE as f64 + 8.0);
    crate::limits::check_output_bytes(estimate, || format!("the Voronoi faces of {n_sites} sites"))?;
    let per_structure: Vec<Result<Vec<SiteCell>, CoreError>> = with_threads(n_threads, || {
        structures
            .par_iter()
            .enumerate()
            .map(|(index, s)| {
                crate::parallel::check_cancelled()?;
                voronoi_structure(s, index, true)
            })
            .collect()
    })?;
    let mut cells = Vec::with_capacity(structures.len());
    for r in per_structure {
        cells.push(r?);
    }
    crate::parallel::check_cancelled()?;
    let n_faces: usize = cells.iter().flatten().map(|c| c.j.len()).sum();
    crate::limits::check_output_bytes(n_faces as f64 * BYTES_PER_FACE as f64, || {
        format!("the {n_faces} Voronoi faces of {n_sites} sites")
    })?;
    let mut out = VoronoiBatch {
        i: Vec::with_capacity(n_faces),
        j: Vec::with_capacity(n_faces),
        shifts: Vec::with_capacity(n_faces),
        areas: Vec::with_capacity(n_faces),
        solid_angles: Vec::with_capacity(n_faces),
        distances: Vec::with_capacity(n_faces),
        volumes: Vec::with_capacity(n_sites),
        face_ptr: Vec::with_capacity(structures.len() + 1),
    };
    out.face_ptr.push(0);
    for structure in cells {
        for (i, c) in structure.into_iter().enumerate() {
            out.i.extend(std::iter::repeat_n(i as i64, c.j.len()));
            out.j.extend(c.j.iter().map(|&j| j as i64));
            out.shifts.extend_from_slice(&c.shifts);
            out.areas.extend_from_slice(&c.areas);
            out.solid_angles.extend_from_slice(&c.solid_angles);
            out.distances.extend_from_slice(&c.distances);
            out.volumes.push(c.volume);
        }
        out.face_ptr.push(out.i.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structure::linalg::Mat3;

    fn cubic(a: f64, frac: Vec<Vec3>) -> Structure {
        let n = frac.len();
        Structure::new([[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]], frac, vec![14; n], [true; 3])
    }

    #[test]
    fn simple_cubic_cell_is_the_cube() {
        let a = 3.7;
        let cells = voronoi_structure(&cubic(a, vec![[0.1, 0.2, 0.3]]), 0, false).unwrap();
        let c = &cells[0];
        assert_eq!(c.j.len(), 6, "only the six face neighbors, not the 12 + 8 that touch an edge or vertex");
        assert!((c.volume - a * a * a).abs() < 1e-12 * a * a * a);
        for k in 0..6 {
            assert!((c.areas[k] - a * a).abs() < 1e-12);
            assert!((c.solid_angles[k] - 4.0 * std::f64::consts::PI / 6.0).abs() < 1e-12);
            assert!((c.distances[k] - a).abs() < 1e-12);
            assert_eq!(c.shifts[k].iter().map(|x| x.abs()).sum::<i32>(), 1);
        }
    }

    #[test]
    fn bcc_cell_is_the_truncated_octahedron() {
        let a = 2.87;
        let cells = voronoi_structure(&cubic(a, vec![[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]), 0, false).unwrap();
        for c in &cells {
            assert_eq!(c.j.len(), 14);
            assert!((c.volume - a * a * a / 2.0).abs() < 1e-12);
            // 8 hexagons (edge a sqrt(2) / 4) towards the body diagonals, 6 squares (edge the same)
            // towards the cube axes.
            let edge = a * 2f64.sqrt() / 4.0;
            let hexagon = 1.5 * 3f64.sqrt() * edge * edge;
            let square = edge * edge;
            let n_hex = c.areas.iter().filter(|&&x| (x - hexagon).abs() < 1e-12).count();
            let n_sq = c.areas.iter().filter(|&&x| (x - square).abs() < 1e-12).count();
            assert_eq!((n_hex, n_sq), (8, 6));
            let total: f64 = c.solid_angles.iter().sum();
            assert!((total - 4.0 * std::f64::consts::PI).abs() < 1e-12);
        }
    }

    #[test]
    fn fcc_cell_is_the_rhombic_dodecahedron() {
        let a = 4.05;
        let frac = vec![[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]];
        let cells = voronoi_structure(&cubic(a, frac), 0, false).unwrap();
        for c in &cells {
            // 12 rhombi of area a^2 sqrt(2) / 8; the 6 second neighbors touch at vertices only.
            assert_eq!(c.j.len(), 12);
            for &x in &c.areas {
                assert!((x - a * a * 2f64.sqrt() / 8.0).abs() < 1e-12);
            }
            assert!((c.volume - a * a * a / 4.0).abs() < 1e-12);
        }
    }

    #[test]
    fn rounded_zincblende_has_no_sliver_faces() {
        // AgI (mp-22925) as stored in the shared set, coordinates rounded to 1e-8 A: the third
        // neighbors touch the cell at its vertices, cut off by slivers of about 1e-17 A^2.
        let lattice = [[4.06672416, 0.0, 2.34792429], [1.35557472, 3.8341443, 2.34792429], [0.0, 0.0, 4.69584857]];
        let s = Structure::new(lattice, vec![[0.0; 3], [0.25; 3]], vec![47, 53], [true; 3]);
        for c in voronoi_structure(&s, 0, false).unwrap() {
            assert_eq!(c.j.len(), 16, "4 hexagons and 12 triangles");
            assert!(c.areas.iter().all(|&a| a > 0.9));
        }
    }

    #[test]
    fn non_periodic_and_overlapping_structures_are_refused_by_name() {
        let mut s = cubic(3.0, vec![[0.0; 3]]);
        s.pbc = [true, true, false];
        s.id = Some("slab-1".into());
        let e = voronoi_batch(&[cubic(3.0, vec![[0.0; 3]]), s], Some(1)).unwrap_err().to_string();
        assert!(e.contains("structure 1 (slab-1)") && e.contains("periodic"), "{e}");
        let e = voronoi_batch(&[cubic(3.0, vec![[0.0; 3], [0.0, 0.0, 1e-9]])], Some(1)).unwrap_err().to_string();
        assert!(e.contains("structure 0") && e.contains("overlapping"), "{e}");
    }

    #[test]
    fn triclinic_volumes_sum_to_the_cell() {
        let lattice: Mat3 = [[4.1, 0.3, -0.2], [1.7, 3.9, 0.4], [-0.8, 1.1, 5.3]];
        let frac = vec![[0.1, 0.2, 0.3], [0.55, 0.45, 0.9], [0.8, 0.1, 0.6], [0.3, 0.7, 0.05], [0.95, 0.9, 0.4]];
        let s = Structure::new(lattice, frac, vec![8; 5], [true; 3]);
        let cells = voronoi_structure(&s, 0, false).unwrap();
        let total: f64 = cells.iter().map(|c| c.volume).sum();
        assert!((total - s.volume()).abs() < 1e-9 * s.volume(), "{total} vs {}", s.volume());
    }
}

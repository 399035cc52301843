//! Cell-list neighbor search for any triclinic cell.
//!
//! Atoms are binned in fractional space: along axis k the cell (or, for a non-periodic axis, the
//! extent of the atoms) is cut into `n_k` slabs whose thickness is about the cutoff. Two atoms
//! within `r_c` differ in fractional coordinate k by at most `r_c / d_k` (`d_k` the distance
//! between the cell faces normal to the reciprocal vector k), so it is enough to visit the bins
//! within `m_k = ceil(r_c / (d_k h_k))` slabs, `h_k` the fractional slab width. Periodic axes wrap
//! bin indices and record the image shift, so cutoffs larger than the cell simply visit several
//! images of the same bins. Bin images whose bounding sphere is out of reach are skipped.

use rayon::prelude::*;

use super::{push_candidates, BatchNeighborList, NeighborList, PairSink};
use crate::error::CoreError;
use crate::limits::MAX_ABS_FRAC;
use crate::parallel::with_threads;
use crate::structure::linalg::{face_distances, frac_to_cart, norm, Mat3, Vec3};
use crate::structure::Structure;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Cap on the number of bins relative to the atom count (sparse boxes would otherwise allocate
/// many empty bins).
const MAX_BINS_PER_ATOM: usize = 4;
/// Structures with at least this many atoms choose their bin width from the atom density.
const ADAPTIVE_MIN_ATOMS: usize = 256;
/// Atoms per bin aimed at in large periodic structures.
const TARGET_ATOMS_PER_BIN: f64 = 4.0;

/// Binned atoms of one structure, ready for queries at a fixed cutoff.
pub struct CellList<'a> {
    structure: &'a Structure,
    cutoff: f64,
    n_bins: [usize; 3],
    search: [i64; 3],
    /// Fractional origin and slab width per axis.
    lo: Vec3,
    h: Vec3,
    /// Bin radius (half the longest bin diagonal), angstrom.
    bin_radius: f64,
    bin_start: Vec<u32>,
    /// Per binned slot: wrapped Cartesian position, original index, integer wrap of the atom.
    sorted_pos: Vec<Vec3>,
    sorted_index: Vec<u32>,
    /// Per atom: bin coordinates, wrapped position and wrap.
    atom_bin: Vec<[i64; 3]>,
    atom_pos: Vec<Vec3>,
    atom_wrap: Vec<[i32; 3]>,
    /// Wrap of the atom in each binned slot (saves an indirection in the hot loop).
    sorted_wrap: Vec<[i32; 3]>,
    /// Bin offsets that can hold a neighbor, with the Cartesian offset between bin centers.
    offsets: Vec<([i64; 3], Vec3)>,
    /// Per axis, for bin coordinate `x + search[k]`: (image, stored bin), or `None` off a
    /// non-periodic edge.
    wrap_table: [Vec<Option<(i32, u32)>>; 3],
}

impl<'a> CellList<'a> {
    /// Build the bins. `s` must be valid (see [`Structure::validate`]); `cutoff` > 0 and finite.
    ///
    /// Small structures get bins about one cutoff wide (3^3 bins visited). For large ones the bin
    /// width `r_c / k` follows the atom density so that a bin holds about
    /// [`TARGET_ATOMS_PER_BIN`] atoms: thinner, emptier bins cost more in bin visits than they
    /// save in candidates (measured on perovskite supercells at 4-8 A). `k` depends only on the
    /// structure and the cutoff, so the output is deterministic.
    pub fn new(s: &'a Structure, cutoff: f64) -> Result<Self, String> {
        if !(cutoff.is_finite() && cutoff > 0.0) {
            return Err(format!("cutoff must be positive and finite, got {cutoff}"));
        }
        let n = s.n_sites();
        let mut divisor = 1.0;
        let volume = s.volume();
        if n >= ADAPTIVE_MIN_ATOMS && s.pbc.iter().all(|&p| p) && volume.is_finite() && volume > 0.0 {
            let density = n as f64 / volume;
            let ideal = cutoff * (density / TARGET_ATOMS_PER_BIN).cbrt();
            divisor = ((ideal * 2.0).round() / 2.0).clamp(1.0, 3.0);
        }
        Self::with_bin_divisor(s, cutoff, divisor)
    }

    /// Bins with `r_c / divisor` as the target width.
    fn with_bin_divisor(s: &'a Structure, cutoff: f64, divisor: f64) -> Result<Self, String> {
        let cutoff = cutoff + super::CUTOFF_TOLERANCE;
        let n = s.n_sites();
        if n >= u32::MAX as usize {
            return Err("too many atoms".into());
        }
        let d = face_distances(&s.lattice);
        let mut lo = [0.0; 3];
        let mut span = [1.0; 3];
        for k in 0..3 {
            if !s.pbc[k] {
                let (mut a, mut b) = (f64::INFINITY, f64::NEG_INFINITY);
                for f in &s.frac_coords {
                    a = a.min(f[k]);
                    b = b.max(f[k]);
                }
                if n == 0 {
                    (a, b) = (0.0, 0.0);
                }
                lo[k] = a;
                span[k] = b - a;
            }
        }
        let bin_width = cutoff / divisor;
        let mut n_bins = [1usize; 3];
        for k in 0..3 {
            let width = span[k] * d[k];
            n_bins[k] = ((width / bin_width).floor() as usize).clamp(1, 1 << 20);
        }
        let cap = (MAX_BINS_PER_ATOM * n).max(1);
        while n_bins.iter().product::<usize>() > cap {
            let k = (0..3).max_by_key(|&k| n_bins[k]).unwrap_or(0);
            n_bins[k] = n_bins[k].div_ceil(2);
        }
        let mut h = [1.0; 3];
        let mut search = [0i64; 3];
        for k in 0..3 {
            h[k] = if span[k] > 0.0 { span[k] / n_bins[k] as f64 } else { 1.0 };
            let reach = (cutoff / (d[k] * h[k])).ceil();
            search[k] = if s.pbc[k] {
                if reach > 1e6 {
                    return Err(format!("cutoff {cutoff} needs too many periodic images"));
                }
                reach as i64
            } else {
                (reach as i64).min(n_bins[k] as i64 - 1)
            };
        }
        let mut bin_radius: f64 = 0.0;
        for sa in [-1.0, 1.0] {
            for sb in [-1.0, 1.0] {
                let diag = frac_to_cart(&[h[0], sa * h[1], sb * h[2]], &s.lattice);
                bin_radius = bin_radius.max(0.5 * norm(&diag));
            }
        }
        let n_total = n_bins[0] * n_bins[1] * n_bins[2];
        let mut atom_bin = Vec::with_capacity(n);
        let mut atom_pos = Vec::with_capacity(n);
        let mut atom_wrap = Vec::with_capacity(n);
        let mut atom_flat = Vec::with_capacity(n);
        let mut counts = vec![0u32; n_total + 1];
        for f in &s.frac_coords {
            let mut u = *f;
            let mut w = [0i32; 3];
            let mut b = [0i64; 3];
            for k in 0..3 {
                if f[k].abs() > MAX_ABS_FRAC {
                    return Err(format!("fractional coordinate {} is out of range", f[k]));
                }
                if s.pbc[k] {
                    let fl = f[k].floor();
                    u[k] = f[k] - fl;
                    w[k] = fl as i32;
                    if u[k] >= 1.0 {
                        u[k] = 0.0;
                        w[k] += 1;
                    }
                }
                let x = ((u[k] - lo[k]) / h[k]).floor() as i64;
                b[k] = x.clamp(0, n_bins[k] as i64 - 1);
            }
            let flat = (b[0] as usize * n_bins[1] + b[1] as usize) * n_bins[2] + b[2] as usize;
            counts[flat + 1] += 1;
            atom_bin.push(b);
            atom_pos.push(frac_to_cart(&u, &s.lattice));
            atom_wrap.push(w);
            atom_flat.push(flat);
        }
        for k in 0..n_total {
            counts[k + 1] += counts[k];
        }
        let bin_start = counts.clone();
        let mut fill = counts;
        let mut sorted_pos = vec![[0.0; 3]; n];
        let mut sorted_index = vec![0u32; n];
        for (a, &flat) in atom_flat.iter().enumerate() {
            let slot = fill[flat] as usize;
            fill[flat] += 1;
            sorted_pos[slot] = atom_pos[a];
            sorted_index[slot] = a as u32;
        }
        let mut sorted_wrap = vec![[0i32; 3]; n];
        for (slot, &a) in sorted_index.iter().enumerate() {
            sorted_wrap[slot] = atom_wrap[a as usize];
        }
        // Bin pairs whose centers are farther apart than cutoff + 2 bin radii cannot hold a pair.
        let reach = cutoff + 2.0 * bin_radius;
        let mut offsets = Vec::new();
        for dx in -search[0]..=search[0] {
            if crate::parallel::cancelled() {
                return Err("interrupted".into());
            }
            for dy in -search[1]..=search[1] {
                for dz in -search[2]..=search[2] {
                    let f = [dx as f64 * h[0], dy as f64 * h[1], dz as f64 * h[2]];
                    let dcart = frac_to_cart(&f, &s.lattice);
                    if norm(&dcart) <= reach {
                        offsets.push(([dx, dy, dz], dcart));
                    }
                }
            }
        }
        let wrap_table: [Vec<Option<(i32, u32)>>; 3] = std::array::from_fn(|k| {
            let nk = n_bins[k] as i64;
            (-search[k]..nk + search[k])
                .map(|x| {
                    if s.pbc[k] {
                        Some((x.div_euclid(nk) as i32, x.rem_euclid(nk) as u32))
                    } else if (0..nk).contains(&x) {
                        Some((0, x as u32))
                    } else {
                        None
                    }
                })
                .collect()
        });
        Ok(Self {
            sorted_wrap,
            offsets,
            wrap_table,
            structure: s,
            cutoff,
            n_bins,
            search,
            lo,
            h,
            bin_radius,
            bin_start,
            sorted_pos,
            sorted_index,
            atom_bin,
            atom_pos,
            atom_wrap,
        })
    }

    /// Call `visit(image, start, end)` for every non-empty bin image that can hold a neighbor of
    /// atom `i`: `image` is the periodic image of the bin, `start..end` its binned slots.
    #[inline(always)]
    fn for_each_bin(&self, i: usize, mut visit: impl FnMut([i32; 3], usize, usize)) {
        let lat: &Mat3 = &self.structure.lattice;
        let reach = self.cutoff + self.bin_radius;
        let reach2 = reach * reach;
        let p = self.atom_pos[i];
        let b = self.atom_bin[i];
        let nb = self.n_bins;
        // Position of atom i relative to the center of its bin.
        let center_f = [
            self.lo[0] + (b[0] as f64 + 0.5) * self.h[0],
            self.lo[1] + (b[1] as f64 + 0.5) * self.h[1],
            self.lo[2] + (b[2] as f64 + 0.5) * self.h[2],
        ];
        let cb = frac_to_cart(&center_f, lat);
        let e = [p[0] - cb[0], p[1] - cb[1], p[2] - cb[2]];
        for (delta, dcart) in &self.offsets {
            // Skip bins whose bounding sphere cannot reach atom i.
            let dc = [dcart[0] - e[0], dcart[1] - e[1], dcart[2] - e[2]];
            if dc[0] * dc[0] + dc[1] * dc[1] + dc[2] * dc[2] > reach2 {
                continue;
            }
            let mut img = [0i32; 3];
            let mut wb = [0usize; 3];
            let mut inside = true;
            for k in 0..3 {
                match self.wrap_table[k][(b[k] + delta[k] + self.search[k]) as usize] {
                    Some((im, w)) => {
                        img[k] = im;
                        wb[k] = w as usize;
                    }
                    None => inside = false,
                }
            }
            if !inside {
                continue;
            }
            let flat = (wb[0] * nb[1] + wb[1]) * nb[2] + wb[2];
            let (start, end) = (self.bin_start[flat] as usize, self.bin_start[flat + 1] as usize);
            if start == end {
                continue;
            }
            visit(img, start, end);
        }
    }

    /// Append the neighbors of atom `i` to `out`, in bin order.
    #[inline]
    pub fn query<S: PairSink>(&self, i: usize, out: &mut S, want_vectors: bool) {
        let lat: &Mat3 = &self.structure.lattice;
        let c2 = self.cutoff * self.cutoff;
        let p = self.atom_pos[i];
        let wi = self.atom_wrap[i];
        self.for_each_bin(i, |img, start, end| {
            let t = frac_to_cart(&[img[0] as f64, img[1] as f64, img[2] as f64], lat);
            let q = [t[0] - p[0], t[1] - p[1], t[2] - p[2]];
            let zero_image = img == [0, 0, 0];
            let shift_base = [img[0] + wi[0], img[1] + wi[1], img[2] + wi[2]];
            push_candidates(
                out,
                i,
                &self.sorted_pos[start..end],
                &self.sorted_index[start..end],
                &self.sorted_wrap[start..end],
                q,
                shift_base,
                c2,
                zero_image,
                want_vectors,
            );
        });
    }
}

/// A single structure is split over threads when it has at least this many expected pairs
/// (below, waking a second thread, tens of microseconds on a VM, is not repaid)...
const PARALLEL_MIN_PAIRS: f64 = 16384.0;
/// ... into about this many tasks per thread (for balance), of at least this many atoms each.
const TASKS_PER_THREAD: usize = 4;
const MIN_ATOMS_PER_TASK: usize = 16;

fn too_many(index: usize, s: &Structure, what: String) -> CoreError {
    CoreError::Structure { index, name: s.id.clone(), reason: what }
}

/// Bytes stored per pair: i, j (int64), shift (3 x int32), distance (f64), optional vector.
pub fn bytes_per_pair(want_vectors: bool) -> usize {
    8 + 8 + 12 + 8 + if want_vectors { 24 } else { 0 }
}

/// What a neighbor search computes and the limits it runs under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NeighborOptions {
    /// Radius, angstrom (`0 < cutoff <= limits::MAX_CUTOFF`).
    pub cutoff: f64,
    /// Also return `r_ij` vectors.
    pub vectors: bool,
    /// Ceiling on the pairs of any structure and of the batch; `None`: the memory budget
    /// ([`crate::limits::memory_budget`]) divided by the bytes per pair.
    pub max_pairs: Option<usize>,
    /// Refuse structures with two atoms closer than this, angstrom (0 disables).
    pub min_distance: f64,
    /// Bytes the caller stores per pair beyond the list itself (graph edge index, RBF features),
    /// counted in the default ceiling.
    pub extra_bytes_per_pair: usize,
    /// The caller's name of `max_pairs`, used in errors (`max_pairs`, `max_edges`).
    pub limit_name: &'static str,
}

impl NeighborOptions {
    pub fn new(cutoff: f64) -> Self {
        Self {
            cutoff,
            vectors: false,
            max_pairs: None,
            min_distance: 0.0,
            extra_bytes_per_pair: 0,
            limit_name: "max_pairs",
        }
    }

    /// Check every option; returns the effective pair ceiling.
    pub fn validate(&self) -> Result<PairLimit, CoreError> {
        crate::limits::check_cutoff("cutoff", self.cutoff)?;
        crate::limits::check_non_negative("min_distance", self.min_distance)?;
        PairLimit::new(self.max_pairs, bytes_per_pair(self.vectors) + self.extra_bytes_per_pair, self.limit_name)
    }
}

/// The pair ceiling of one call and whether the caller chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairLimit {
    pub max: usize,
    pub explicit: bool,
    pub name: &'static str,
}

impl PairLimit {
    /// `max` as given, else the default ceiling from the memory budget.
    pub fn new(max: Option<usize>, bytes_per_item: usize, name: &'static str) -> Result<Self, CoreError> {
        Ok(match max {
            Some(m) => Self { max: m, explicit: true, name },
            None => Self { max: crate::limits::default_max_items(bytes_per_item)?, explicit: false, name },
        })
    }

    pub fn describe(&self) -> String {
        if self.explicit {
            format!("the limit of {} ({})", self.max, self.name)
        } else {
            format!(
                "the default ceiling of {} (half the available memory; pass {} or set MATXFER_MAX_MEMORY)",
                self.max, self.name
            )
        }
    }

    /// Refuse an estimate far above the ceiling before anything is allocated.
    pub fn check_estimate(&self, estimate: f64) -> Result<(), String> {
        if !crate::limits::at_most(estimate, 1.5 * self.max as f64 + 1000.0) {
            return Err(format!("about {estimate:.0} neighbor pairs expected, above {}", self.describe()));
        }
        Ok(())
    }
}

/// Running pair counts of one structure and of the whole batch, checked as they grow.
struct Tally<'a> {
    limit: PairLimit,
    structure: AtomicUsize,
    batch: &'a AtomicUsize,
}

/// Atoms between two updates of the shared counts (and cancellation checks).
const TALLY_ATOMS: usize = 32;

impl Tally<'_> {
    /// Add `n` pairs; `Err(true)` when the structure, `Err(false)` when the batch is over.
    fn charge(&self, n: usize) -> Result<(), Option<bool>> {
        let s = self.structure.fetch_add(n, Ordering::Relaxed) + n;
        if s > self.limit.max {
            return Err(Some(true));
        }
        let b = self.batch.fetch_add(n, Ordering::Relaxed) + n;
        if b > self.limit.max {
            return Err(Some(false));
        }
        if crate::parallel::cancelled() {
            return Err(None);
        }
        Ok(())
    }
}

/// Why a range of atoms stopped early.
#[derive(Clone, Copy)]
enum Stop {
    /// The structure's pairs are over the ceiling.
    StructureOver,
    /// The batch's pairs are over the ceiling.
    BatchOver,
    Cancelled,
    /// Pair `k` of the list is closer than `min_distance`.
    Overlap(usize),
}

impl From<Option<bool>> for Stop {
    fn from(which: Option<bool>) -> Self {
        match which {
            Some(true) => Stop::StructureOver,
            Some(false) => Stop::BatchOver,
            None => Stop::Cancelled,
        }
    }
}

/// Query atoms `a..b` into `out`, charging the tally as it grows; stops at the first pair closer
/// than `min_distance` (so an overlapping or collapsed cell is refused after one atom, not after
/// its whole list).
fn query_range(
    cl: &CellList,
    a: usize,
    b: usize,
    out: &mut NeighborList,
    want_vectors: bool,
    min_distance: f64,
    tally: &Tally,
) -> Result<(), Stop> {
    let mut last = out.len();
    for i in a..b {
        let start = out.len();
        cl.query(i, out, want_vectors);
        if min_distance > 0.0 {
            if let Some(k) = (start..out.len()).find(|&k| out.distances[k] < min_distance) {
                return Err(Stop::Overlap(k));
            }
        }
        // The ceiling is checked after every atom; the shared counts every few atoms.
        if out.len() - last > tally.limit.max {
            return Err(Stop::StructureOver);
        }
        if (i - a) % TALLY_ATOMS == TALLY_ATOMS - 1 || i + 1 == b {
            tally.charge(out.len() - last).map_err(Stop::from)?;
            last = out.len();
        }
    }
    Ok(())
}

/// Append the neighbor list of one structure to `out` (pairs grouped by `i`, atoms in order).
/// `s` must have passed [`Structure::validate_for_cutoff`]; `estimate` is its pair estimate.
/// Refuses the structure, naming it, when its pairs exceed the ceiling or two atoms are closer
/// than `min_distance`. Parallel over atoms for large structures when `parallel` (same output
/// either way). Returns the number of pairs appended.
#[allow(clippy::too_many_arguments)]
fn append_pairs(
    s: &Structure,
    index: usize,
    opts: &NeighborOptions,
    estimate: f64,
    limit: PairLimit,
    batch_count: &AtomicUsize,
    parallel: bool,
    out: &mut NeighborList,
) -> Result<usize, CoreError> {
    let cutoff = opts.cutoff;
    let want_vectors = opts.vectors;
    limit.check_estimate(estimate).map_err(|r| too_many(index, s, format!("{r} at cutoff {cutoff} A")))?;
    let cl = CellList::new(s, cutoff).map_err(|r| {
        if crate::parallel::cancelled() {
            CoreError::Interrupted
        } else {
            too_many(index, s, r)
        }
    })?;
    let tally = Tally { limit, structure: AtomicUsize::new(0), batch: batch_count };
    let min_distance = opts.min_distance;
    let overlap = |list: &NeighborList, k: usize| {
        too_many(
            index,
            s,
            format!(
                "atoms {} and {} (image {:?}) are {:.4} A apart, closer than min_distance = {min_distance} A (overlapping atoms)",
                list.i[k], list.j[k], list.shifts[k], list.distances[k]
            ),
        )
    };
    let over = |stop: Stop, list: &NeighborList| match stop {
        Stop::StructureOver => {
            too_many(index, s, format!("more than {} neighbor pairs at cutoff {cutoff} A", limit.describe()))
        }
        Stop::BatchOver => batch_over(limit, cutoff),
        Stop::Cancelled => CoreError::Interrupted,
        Stop::Overlap(k) => overlap(list, k),
    };
    let n = s.n_sites();
    let before = out.len();
    let threads = rayon::current_num_threads();
    let room = |e: f64| (e * 1.1).min(limit.max as f64) as usize + 16;
    if parallel && threads > 1 && n >= 2 * MIN_ATOMS_PER_TASK && estimate >= PARALLEL_MIN_PAIRS {
        // Contiguous atom ranges, concatenated in order: the output does not depend on how
        // many tasks there are. This thread writes the first 1/threads of the atoms straight
        // into `out`; the rest is split into smaller tasks (for balance) whose lists are copied
        // in behind it in parallel.
        let head = n / threads;
        let rest = n - head;
        let n_tasks = (TASKS_PER_THREAD * (threads - 1)).min(rest / MIN_ATOMS_PER_TASK).max(1);
        let per_task = rest.div_ceil(n_tasks);
        let share = |atoms: usize| room(estimate * atoms as f64 / n as f64);
        let (first, parts) = rayon::join(
            || {
                out.reserve(share(head), want_vectors);
                query_range(&cl, 0, head, out, want_vectors, min_distance, &tally)
            },
            || -> Vec<(NeighborList, Result<(), Stop>)> {
                (0..rest.div_ceil(per_task))
                    .into_par_iter()
                    .map(|t| {
                        let a = head + t * per_task;
                        let b = (a + per_task).min(n);
                        let mut part = NeighborList::with_capacity(share(b - a), want_vectors);
                        let r = query_range(&cl, a, b, &mut part, want_vectors, min_distance, &tally);
                        (part, r)
                    })
                    .collect()
            },
        );
        // The first problem in atom order is reported (the same for any thread count when it
        // is an overlap).
        first.map_err(|e| over(e, out))?;
        for (part, r) in &parts {
            r.map_err(|e| over(e, part))?;
        }
        let parts: Vec<NeighborList> = parts.into_iter().map(|p| p.0).collect();
        out.append_parallel(&parts, want_vectors);
    } else {
        out.reserve(room(estimate), want_vectors);
        query_range(&cl, 0, n, out, want_vectors, min_distance, &tally).map_err(|e| over(e, out))?;
    }
    Ok(out.len() - before)
}

fn batch_over(limit: PairLimit, cutoff: f64) -> CoreError {
    CoreError::LimitExceeded(format!(
        "the batch has more than {} neighbor pairs at cutoff {cutoff} A",
        limit.describe()
    ))
}

/// Validate a batch for a search at `opts`: every structure (in index order, so the lowest bad
/// one is reported), the per-structure and whole-batch pair estimates against the ceiling.
/// O(sites) in all, nothing allocated but the estimates. Returns them.
pub fn validate_batch(structures: &[Structure], opts: &NeighborOptions) -> Result<(Vec<f64>, PairLimit), CoreError> {
    let limit = opts.validate()?;
    let mut estimates = Vec::with_capacity(structures.len());
    let mut total = 0.0;
    for (index, s) in structures.iter().enumerate() {
        s.validate_for_cutoff(index, opts.cutoff)?;
        let e = rough_pair_estimate(s, opts.cutoff);
        limit.check_estimate(e).map_err(|r| too_many(index, s, format!("{r} at cutoff {} A", opts.cutoff)))?;
        total += e;
        estimates.push(e);
    }
    if !crate::limits::at_most(total, 1.5 * limit.max as f64 + 1000.0) {
        return Err(CoreError::LimitExceeded(format!(
            "the batch would have about {total:.0} neighbor pairs at cutoff {} A, above {}",
            opts.cutoff,
            limit.describe()
        )));
    }
    Ok((estimates, limit))
}

/// Neighbor list of one structure (index `index` in error messages); validates it first.
pub fn neighbor_list_one_with(
    s: &Structure,
    index: usize,
    opts: &NeighborOptions,
    parallel: bool,
) -> Result<NeighborList, CoreError> {
    let limit = opts.validate()?;
    s.validate_for_cutoff(index, opts.cutoff)?;
    let estimate = rough_pair_estimate(s, opts.cutoff);
    let count = AtomicUsize::new(0);
    let mut out = NeighborList::default();
    append_pairs(s, index, opts, estimate, limit, &count, parallel, &mut out)?;
    Ok(out)
}

/// Neighbor list of one structure, on `n_threads` threads (default ceiling, no overlap check).
pub fn neighbor_list(
    s: &Structure,
    cutoff: f64,
    want_vectors: bool,
    n_threads: Option<usize>,
) -> Result<NeighborList, CoreError> {
    let opts = NeighborOptions { vectors: want_vectors, ..NeighborOptions::new(cutoff) };
    with_threads(n_threads, || neighbor_list_one_with(s, 0, &opts, true))?
}

/// Neighbor lists of many structures (see [`neighbor_list_batch_with`]).
pub fn neighbor_list_batch(
    structures: &[Structure],
    cutoff: f64,
    want_vectors: bool,
    max_pairs: Option<usize>,
    n_threads: Option<usize>,
) -> Result<BatchNeighborList, CoreError> {
    let opts = NeighborOptions { vectors: want_vectors, max_pairs, ..NeighborOptions::new(cutoff) };
    neighbor_list_batch_with(structures, &opts, n_threads)
}

/// Neighbor lists of many structures, concatenated in input order with local atom indices.
/// Everything is validated first (options, every structure, the pair estimates against the
/// ceiling); then consecutive structures are grouped into tasks (no per-structure scheduling cost
/// for small cells) and the groups are joined with a parallel copy into one buffer per array.
/// The result does not depend on the thread count. The ceiling bounds the pairs of each
/// structure and of the whole batch, and is checked while the lists grow.
pub fn neighbor_list_batch_with(
    structures: &[Structure],
    opts: &NeighborOptions,
    n_threads: Option<usize>,
) -> Result<BatchNeighborList, CoreError> {
    let threads = crate::parallel::effective_threads(n_threads)?;
    let (estimates, limit) = validate_batch(structures, opts)?;
    let batch_estimate: f64 = estimates.iter().sum();
    let batch_count = AtomicUsize::new(0);
    let group = |c: usize, chunk: usize, group: &[Structure], parallel: bool| {
        // Reserve for the whole group up front from the density estimate (virtual memory only
        // until written, and never beyond the ceiling), so the buffers are not regrown pair after
        // pair. The first group's buffers are reserved for the whole batch and become the output.
        let first = c * chunk;
        let estimate: f64 = if c == 0 { batch_estimate } else { estimates[first..first + group.len()].iter().sum() };
        let room = (estimate * 1.25).min(limit.max as f64) as usize + 64;
        let mut acc = NeighborList::with_capacity(room, opts.vectors);
        let mut counts = Vec::with_capacity(group.len());
        for (k, s) in group.iter().enumerate() {
            crate::parallel::check_cancelled()?;
            let e = estimates[first + k];
            counts.push(append_pairs(s, first + k, opts, e, limit, &batch_count, parallel, &mut acc)?);
        }
        Ok::<_, CoreError>((acc, counts))
    };
    // One thread, or too little work to share: run on the calling thread, without waking a pool
    // (its wake-up costs tens of microseconds, the whole job for a small cell).
    if threads == 1 || batch_estimate < PARALLEL_MIN_PAIRS {
        let (pairs, counts) = group(0, structures.len().max(1), structures, false)?;
        return finish_batch(vec![(pairs, counts)], opts.vectors);
    }
    with_threads(n_threads, || {
        // One group per thread; only the groups after the first are copied in behind it.
        let chunk = structures.len().div_ceil(rayon::current_num_threads()).max(1);
        let parts: Vec<Result<(NeighborList, Vec<usize>), CoreError>> =
            structures.par_chunks(chunk).enumerate().map(|(c, g)| group(c, chunk, g, true)).collect();
        let mut oks = Vec::with_capacity(parts.len());
        for p in parts {
            oks.push(p?);
        }
        finish_batch(oks, opts.vectors)
    })?
}

/// Join the groups of a batch (the first group's buffers become the output).
fn finish_batch(groups: Vec<(NeighborList, Vec<usize>)>, want_vectors: bool) -> Result<BatchNeighborList, CoreError> {
    let mut edge_ptr = Vec::with_capacity(groups.iter().map(|g| g.1.len()).sum::<usize>() + 1);
    edge_ptr.push(0);
    for (_, counts) in &groups {
        for c in counts {
            let last = *edge_ptr.last().unwrap_or(&0);
            edge_ptr.push(last + c);
        }
    }
    let mut parts = groups.into_iter().map(|p| p.0);
    let mut pairs = parts.next().unwrap_or_default();
    let rest: Vec<NeighborList> = parts.collect();
    if !rest.is_empty() {
        pairs.append_parallel(&rest, want_vectors);
    }
    Ok(BatchNeighborList { pairs, edge_ptr })
}

/// Expected pair count of a valid structure from the mean density, without binning.
pub fn rough_pair_estimate(s: &Structure, cutoff: f64) -> f64 {
    let v = s.volume();
    let n = s.n_sites() as f64;
    // A cutoff sphere at the crystal's mean density; for boxes that are not periodic along all
    // axes, at most every pair within the images the cutoff spans.
    let est = n * n / v * 4.0 / 3.0 * std::f64::consts::PI * cutoff.powi(3);
    if s.pbc.iter().all(|&p| p) {
        est
    } else {
        est.min(n * n * s.periodic_images(cutoff))
    }
}

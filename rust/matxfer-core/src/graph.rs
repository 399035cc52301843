//! Batched crystal graphs for message-passing models.
//!
//! Each structure becomes a directed graph: node = site, edge `(i -> j, S)` for a neighbor `j`
//! of center `i` at image shift `S` (see [`crate::neighbors`]). Edge selection:
//! - [`EdgeSelection::Radius`]: every neighbor within `cutoff` (radius graph).
//! - [`EdgeSelection::MaxNeighbors`]: the `k` nearest within `cutoff` (CGCNN: 12 within 8 A).
//!   Ties at the k-th distance are broken by (j, S) so the result is deterministic.
//! - [`EdgeSelection::Knn`]: the `k` nearest plus every neighbor tied with the k-th within
//!   `tie_tolerance` (ALIGNN keeps ties). The search radius starts at `cutoff` and grows by
//!   `cutoff_step` until every atom has k neighbors or `max_cutoff` is reached.
//!
//! When an atom ends with fewer than `k` neighbors, [`FewNeighbors::Keep`] keeps the ones found
//! (no padding: models see a smaller neighborhood) and [`FewNeighbors::Error`] refuses the
//! structure, naming it and the atom.
//!
//! Within one center, edges are sorted by distance for the capped selections and kept in search
//! order for radius graphs. Batches are built per structure in parallel and concatenated in input
//! order, so the arrays do not depend on the thread count.

use rayon::prelude::*;

use crate::error::CoreError;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::limits::{check_cutoff, check_non_negative, MAX_K, MAX_RBF};
use crate::neighbors::cell_list::{
    bytes_per_pair, neighbor_list_batch_with, neighbor_list_one_with, rough_pair_estimate, NeighborOptions, PairLimit,
};
use crate::neighbors::NeighborList;
use crate::parallel::with_threads;
use crate::structure::Structure;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EdgeSelection {
    Radius,
    MaxNeighbors { k: usize },
    Knn { k: usize, tie_tolerance: f64, cutoff_step: f64, max_cutoff: f64 },
}

/// The name of an edge selection (`radius`, `max_neighbors`, `knn`), parsed with `FromStr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionKind {
    Radius,
    MaxNeighbors,
    Knn,
}

impl std::str::FromStr for SelectionKind {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        match s {
            "radius" => Ok(Self::Radius),
            "max_neighbors" => Ok(Self::MaxNeighbors),
            "knn" => Ok(Self::Knn),
            o => Err(CoreError::InvalidArgument(format!(
                "selection must be 'radius', 'max_neighbors' or 'knn', got {o:?}"
            ))),
        }
    }
}

impl SelectionKind {
    /// The selection with its parameters (`k` and the k-NN radius schedule).
    pub fn with(self, k: usize, tie_tolerance: f64, cutoff_step: f64, max_cutoff: f64) -> EdgeSelection {
        match self {
            Self::Radius => EdgeSelection::Radius,
            Self::MaxNeighbors => EdgeSelection::MaxNeighbors { k },
            Self::Knn => EdgeSelection::Knn { k, tie_tolerance, cutoff_step, max_cutoff },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FewNeighbors {
    #[default]
    Keep,
    Error,
}

impl std::str::FromStr for FewNeighbors {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        match s {
            "keep" => Ok(Self::Keep),
            "error" => Ok(Self::Error),
            o => Err(CoreError::InvalidArgument(format!("few_neighbors must be 'keep' or 'error', got {o:?}"))),
        }
    }
}

/// Gaussian radial basis: `exp(-((d - mu_k) / width)^2)` for `n` centers `mu_k` evenly spaced
/// from `start` to `stop` (angstrom); `width` defaults to the spacing (as in CGCNN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rbf {
    pub start: f64,
    pub stop: f64,
    pub n: usize,
    pub width: Option<f64>,
}

impl Rbf {
    pub fn centers(&self) -> Vec<f64> {
        if self.n == 1 {
            return vec![self.start];
        }
        let step = (self.stop - self.start) / (self.n - 1) as f64;
        (0..self.n).map(|k| self.start + step * k as f64).collect()
    }

    pub fn width(&self) -> f64 {
        self.width.unwrap_or(if self.n > 1 { (self.stop - self.start) / (self.n - 1) as f64 } else { 1.0 })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphOptions {
    /// Radius in angstrom.
    pub cutoff: f64,
    pub selection: EdgeSelection,
    pub few_neighbors: FewNeighbors,
    pub rbf: Option<Rbf>,
    /// Bond-angle triplets between edges of the same center that are both within this radius.
    pub three_body_cutoff: Option<f64>,
    pub want_vectors: bool,
    /// Ceiling on edges per structure and per batch.
    pub max_edges: Option<usize>,
    /// Store RBF features as f32 (`rbf_f32`) instead of f64 (`rbf`): half the memory, the dtype
    /// models train in.
    pub rbf_float32: bool,
    /// Refuse structures with two atoms closer than this, angstrom (0 disables).
    pub min_distance: f64,
}

impl Default for GraphOptions {
    fn default() -> Self {
        Self {
            cutoff: 5.0,
            selection: EdgeSelection::Radius,
            few_neighbors: FewNeighbors::Keep,
            rbf: None,
            three_body_cutoff: None,
            want_vectors: false,
            max_edges: None,
            rbf_float32: false,
            min_distance: 0.0,
        }
    }
}

/// Largest number of radius steps of a k-nearest-neighbor search (`(max_cutoff - cutoff) / cutoff_step`).
pub const MAX_CUTOFF_STEPS: f64 = 10_000.0;

impl GraphOptions {
    /// Check every option against its documented bounds (before anything is computed).
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |m: String| Err(CoreError::InvalidArgument(m));
        check_cutoff("cutoff", self.cutoff)?;
        check_non_negative("min_distance", self.min_distance)?;
        if let Some(r3) = self.three_body_cutoff {
            check_cutoff("three_body_cutoff", r3)?;
        }
        if let Some(rbf) = &self.rbf {
            if rbf.n == 0 || rbf.n > MAX_RBF {
                return bad(format!("rbf needs between 1 and {MAX_RBF} basis functions, got {}", rbf.n));
            }
            if !(rbf.start.is_finite() && rbf.stop.is_finite() && rbf.start.abs() <= 1e6 && rbf.stop.abs() <= 1e6) {
                return bad(format!("rbf start and stop must be finite, got {} and {}", rbf.start, rbf.stop));
            }
            let w = rbf.width();
            if !(w.is_finite() && w > 0.0) {
                return bad(format!("rbf width must be positive and finite (stop > start when n > 1), got {w}"));
            }
        }
        match self.selection {
            EdgeSelection::Radius => {}
            EdgeSelection::MaxNeighbors { k } => {
                if k == 0 || k > MAX_K {
                    return bad(format!("k must be between 1 and {MAX_K}, got {k}"));
                }
            }
            EdgeSelection::Knn { k, tie_tolerance, cutoff_step, max_cutoff } => {
                if k == 0 || k > MAX_K {
                    return bad(format!("k must be between 1 and {MAX_K}, got {k}"));
                }
                check_non_negative("tie_tolerance", tie_tolerance)?;
                check_non_negative("cutoff_step", cutoff_step)?;
                check_cutoff("max_cutoff", max_cutoff)?;
                if cutoff_step > 0.0 && (max_cutoff - self.cutoff) / cutoff_step > MAX_CUTOFF_STEPS {
                    return bad(format!(
                        "cutoff_step {cutoff_step} A would take more than {MAX_CUTOFF_STEPS} steps from {} to {max_cutoff} A",
                        self.cutoff
                    ));
                }
            }
        }
        Ok(())
    }

    /// The largest radius any search of these options uses.
    fn search_radius(&self) -> f64 {
        match self.selection {
            EdgeSelection::Knn { max_cutoff, .. } => self.cutoff.max(max_cutoff),
            _ => self.cutoff,
        }
    }

    /// Bytes per edge of the output beyond the pair list (edge index, RBF features).
    fn extra_bytes_per_edge(&self) -> usize {
        16 + self.rbf.map_or(0, |r| r.n * if self.rbf_float32 { 4 } else { 8 })
    }
}

/// Graphs of many structures in contiguous arrays (indices global to the batch).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchedGraph {
    /// Atomic number per node.
    pub numbers: Vec<i64>,
    /// `2 x E` row-major: centers `i` (first E), then neighbors `j` (next E).
    pub edge_index: Vec<i64>,
    /// `E x 3` image shifts of `j`.
    pub shifts: Vec<i32>,
    pub distances: Vec<f64>,
    /// `E x 3`, `r_ij = r_j - r_i + S @ lattice` (empty unless requested or needed).
    pub vectors: Vec<f64>,
    /// `E x n_rbf` Gaussian features (empty without RBF).
    pub rbf: Vec<f64>,
    /// `E x n_rbf` Gaussian features in f32 (with `rbf_float32`).
    pub rbf_f32: Vec<f32>,
    pub n_rbf: usize,
    /// Graph of each node.
    pub node_graph: Vec<i64>,
    /// `G + 1` offsets into nodes and edges.
    pub graph_ptr: Vec<i64>,
    pub edge_ptr: Vec<i64>,
    /// `2 x T` row-major: edge `i->j` then edge `i->k`, global edge indices.
    pub triplet_index: Vec<i64>,
    /// Cosine of the angle between `r_ij` and `r_ik`.
    pub triplet_cos: Vec<f64>,
    pub triplet_ptr: Vec<i64>,
}

struct OneGraph {
    edges: NeighborList,
    triplets: Vec<[i64; 2]>,
    cos: Vec<f64>,
}

fn structure_error(index: usize, s: &Structure, reason: String) -> CoreError {
    CoreError::Structure { index, name: s.id.clone(), reason }
}

/// Ranges of edges per center (the neighbor list groups pairs by center).
fn center_ranges(nl: &NeighborList, n: usize) -> Vec<(usize, usize)> {
    let mut r = vec![(0usize, 0usize); n];
    let mut k = 0;
    while k < nl.len() {
        let i = nl.i[k] as usize;
        let s = k;
        while k < nl.len() && nl.i[k] as usize == i {
            k += 1;
        }
        r[i] = (s, k);
    }
    r
}

fn select(nl: &NeighborList, n: usize, k: usize, ties: Option<f64>) -> (NeighborList, Vec<usize>) {
    let want_vectors = !nl.vectors.is_empty();
    let mut out = NeighborList::with_capacity(n * k + n, want_vectors);
    let mut counts = vec![0usize; n];
    let mut order: Vec<usize> = Vec::new();
    for (i, (a, b)) in center_ranges(nl, n).into_iter().enumerate() {
        order.clear();
        order.extend(a..b);
        order.sort_by(|&x, &y| {
            nl.distances[x]
                .total_cmp(&nl.distances[y])
                .then(nl.j[x].cmp(&nl.j[y]))
                .then(nl.shifts[x].cmp(&nl.shifts[y]))
        });
        let mut keep = order.len().min(k);
        if let (Some(tol), true) = (ties, keep > 0) {
            let dk = nl.distances[order[keep - 1]];
            while keep < order.len() && nl.distances[order[keep]] <= dk + tol {
                keep += 1;
            }
        }
        counts[i] = keep;
        for &e in &order[..keep] {
            out.i.push(nl.i[e]);
            out.j.push(nl.j[e]);
            out.shifts.push(nl.shifts[e]);
            out.distances.push(nl.distances[e]);
            if want_vectors {
                out.vectors.push(nl.vectors[e]);
            }
        }
    }
    (out, counts)
}

fn build_one(
    s: &Structure,
    index: usize,
    opts: &GraphOptions,
    limit: PairLimit,
    used: &AtomicUsize,
) -> Result<OneGraph, CoreError> {
    crate::parallel::check_cancelled()?;
    let n = s.n_sites();
    let need_vectors = opts.want_vectors || opts.three_body_cutoff.is_some();
    let search = |r: f64, max_pairs: Option<usize>| {
        let nopts = NeighborOptions {
            cutoff: r,
            vectors: need_vectors,
            max_pairs: max_pairs.or(Some(limit.max)),
            min_distance: opts.min_distance,
            extra_bytes_per_pair: 0,
            limit_name: "max_edges",
        };
        neighbor_list_one_with(s, index, &nopts, true)
    };
    let few = |i: usize, got: usize, k: usize, r: f64| {
        structure_error(
            index,
            s,
            format!(
                "atom {i} has {got} neighbors within {r} A, fewer than the {k} requested (few_neighbors=\"error\")"
            ),
        )
    };
    let edges = match opts.selection {
        EdgeSelection::Radius => search(opts.cutoff, opts.max_edges)?,
        EdgeSelection::MaxNeighbors { k } => {
            let nl = search(opts.cutoff, None)?;
            let (sel, counts) = select(&nl, n, k, None);
            if opts.few_neighbors == FewNeighbors::Error {
                if let Some((i, &c)) = counts.iter().enumerate().find(|(_, &c)| c < k) {
                    return Err(few(i, c, k, opts.cutoff));
                }
            }
            sel
        }
        EdgeSelection::Knn { k, tie_tolerance, cutoff_step, max_cutoff } => {
            let mut r = opts.cutoff;
            loop {
                let nl = search(r, None)?;
                let (sel, counts) = select(&nl, n, k, Some(tie_tolerance));
                let short = counts.iter().enumerate().find(|(_, &c)| c < k).map(|(i, &c)| (i, c));
                match short {
                    None => break sel,
                    Some(_) if r < max_cutoff && cutoff_step > 0.0 && n > 0 => {
                        r = (r + cutoff_step).min(max_cutoff);
                    }
                    Some((i, c)) => {
                        if opts.few_neighbors == FewNeighbors::Error {
                            return Err(few(i, c, k, r));
                        }
                        break sel;
                    }
                }
            }
        }
    };
    if let Some(maxe) = opts.max_edges {
        if edges.len() > maxe {
            return Err(structure_error(
                index,
                s,
                format!("{} edges, above the limit of {maxe} (max_edges)", edges.len()),
            ));
        }
    }
    let charge = |items: usize, what: &str| -> Result<(), CoreError> {
        let total = used.fetch_add(items, Ordering::Relaxed) + items;
        if total > limit.max {
            return Err(CoreError::LimitExceeded(format!("the batch has more than {} {what}", limit.describe())));
        }
        Ok(())
    };
    charge(edges.len(), "edges")?;
    let mut triplets = Vec::new();
    let mut cos = Vec::new();
    if let Some(r3) = opts.three_body_cutoff {
        let ranges = center_ranges(&edges, n);
        // Count before allocating: every ordered pair of short edges of a center.
        let n_triplets: usize = ranges
            .iter()
            .map(|&(a, b)| {
                let m = (a..b).filter(|&e| edges.distances[e] <= r3).count();
                m * m.saturating_sub(1)
            })
            .sum();
        if n_triplets > limit.max {
            return Err(structure_error(
                index,
                s,
                format!("{n_triplets} bond-angle triplets, above {}", limit.describe()),
            ));
        }
        charge(n_triplets, "edges and triplets")?;
        triplets.reserve_exact(n_triplets);
        cos.reserve_exact(n_triplets);
        for (a, b) in ranges {
            for e1 in a..b {
                if edges.distances[e1] > r3 {
                    continue;
                }
                for e2 in a..b {
                    if e1 == e2 || edges.distances[e2] > r3 {
                        continue;
                    }
                    let (u, v) = (&edges.vectors[e1], &edges.vectors[e2]);
                    let c = (u[0] * v[0] + u[1] * v[1] + u[2] * v[2]) / (edges.distances[e1] * edges.distances[e2]);
                    triplets.push([e1 as i64, e2 as i64]);
                    cos.push(c.clamp(-1.0, 1.0));
                }
            }
        }
    }
    Ok(OneGraph { edges, triplets, cos })
}

/// Build the graphs of all structures and pack them into one batch.
pub fn build_graphs(
    structures: &[Structure],
    opts: &GraphOptions,
    n_threads: Option<usize>,
) -> Result<BatchedGraph, CoreError> {
    opts.validate()?;
    crate::parallel::effective_threads(n_threads)?;
    if opts.selection == EdgeSelection::Radius && opts.three_body_cutoff.is_none() {
        return build_radius_graphs(structures, opts, n_threads);
    }
    // Every structure is checked at the largest search radius before any work (O(sites)).
    let radius = opts.search_radius();
    let per_edge = bytes_per_pair(opts.want_vectors || opts.three_body_cutoff.is_some()) + opts.extra_bytes_per_edge();
    let limit = PairLimit::new(opts.max_edges, per_edge, "max_edges")?;
    for (index, s) in structures.iter().enumerate() {
        s.validate_for_cutoff(index, radius)?;
        let e = rough_pair_estimate(s, radius);
        if !crate::limits::at_most(e, 1.5 * limit.max as f64 + 1000.0) {
            return Err(structure_error(
                index,
                s,
                format!("about {e:.0} neighbor pairs expected within {radius} A, above {}", limit.describe()),
            ));
        }
    }
    let used = AtomicUsize::new(0);
    with_threads(n_threads, || {
        let parts: Vec<Result<OneGraph, CoreError>> = structures
            .par_iter()
            .with_min_len(16)
            .enumerate()
            .map(|(k, s)| build_one(s, k, opts, limit, &used))
            .collect();
        let mut graphs = Vec::with_capacity(parts.len());
        for p in parts {
            graphs.push(p?);
        }
        pack(structures, graphs, opts)
    })?
}

/// Radius graphs straight from the batch neighbor list: the pair arrays become the edge arrays
/// (shifts and distances move without a copy), only the global `edge_index` is written anew.
fn build_radius_graphs(
    structures: &[Structure],
    opts: &GraphOptions,
    n_threads: Option<usize>,
) -> Result<BatchedGraph, CoreError> {
    let nopts = NeighborOptions {
        cutoff: opts.cutoff,
        vectors: opts.want_vectors,
        max_pairs: opts.max_edges,
        min_distance: opts.min_distance,
        extra_bytes_per_pair: opts.extra_bytes_per_edge(),
        limit_name: "max_edges",
    };
    let batch = neighbor_list_batch_with(structures, &nopts, n_threads)?;
    check_rbf_bytes(batch.pairs.len(), opts)?;
    with_threads(n_threads, || {
        let mut pairs = batch.pairs;
        let n_edges = pairs.len();
        let mut node_ptr = Vec::with_capacity(structures.len() + 1);
        node_ptr.push(0i64);
        for s in structures {
            node_ptr.push(node_ptr[node_ptr.len() - 1] + s.n_sites() as i64);
        }
        let edge_ptr: Vec<i64> = batch.edge_ptr.iter().map(|&e| e as i64).collect();
        let mut edge_index = vec![0i64; 2 * n_edges];
        crate::parallel::advise_huge_pages(&mut edge_index);
        {
            let (rows_i, rows_j) = edge_index.split_at_mut(n_edges);
            // Split both rows at structure boundaries so structures are filled in parallel.
            let mut tasks = Vec::with_capacity(structures.len());
            let (mut ri, mut rj) = (rows_i, rows_j);
            for s in 0..structures.len() {
                let len = (edge_ptr[s + 1] - edge_ptr[s]) as usize;
                let (a, rest_i) = ri.split_at_mut(len);
                let (b, rest_j) = rj.split_at_mut(len);
                tasks.push((s, a, b));
                ri = rest_i;
                rj = rest_j;
            }
            let (pi, pj) = (&pairs.i, &pairs.j);
            tasks.into_par_iter().with_min_len(64).for_each(|(s, a, b)| {
                let (start, off) = (edge_ptr[s] as usize, node_ptr[s]);
                for (k, (x, y)) in a.iter_mut().zip(b.iter_mut()).enumerate() {
                    *x = pi[start + k] + off;
                    *y = pj[start + k] + off;
                }
            });
        }
        let mut g = BatchedGraph {
            numbers: structures.iter().flat_map(|s| s.numbers.iter().map(|&z| z as i64)).collect(),
            edge_index,
            shifts: pairs.take_flat_shifts(),
            distances: std::mem::take(&mut pairs.distances),
            vectors: if opts.want_vectors { pairs.take_flat_vectors() } else { Vec::new() },
            node_graph: structures
                .iter()
                .enumerate()
                .flat_map(|(k, s)| std::iter::repeat_n(k as i64, s.n_sites()))
                .collect(),
            graph_ptr: node_ptr,
            edge_ptr,
            triplet_ptr: vec![0; structures.len() + 1],
            ..Default::default()
        };
        attach_rbf(&mut g, opts);
        g
    })
}

fn pack(structures: &[Structure], graphs: Vec<OneGraph>, opts: &GraphOptions) -> Result<BatchedGraph, CoreError> {
    let n_edges: usize = graphs.iter().map(|g| g.edges.len()).sum();
    let n_trip: usize = graphs.iter().map(|g| g.triplets.len()).sum();
    let n_nodes: usize = structures.iter().map(|s| s.n_sites()).sum();
    if let Some(maxe) = opts.max_edges {
        if n_edges > maxe {
            return Err(CoreError::LimitExceeded(format!(
                "the batch has {n_edges} edges, above the limit of {maxe} (max_edges)"
            )));
        }
    }
    check_rbf_bytes(n_edges, opts)?;
    let keep_vectors = opts.want_vectors;
    let mut g = BatchedGraph {
        numbers: Vec::with_capacity(n_nodes),
        edge_index: vec![0; 2 * n_edges],
        shifts: Vec::with_capacity(3 * n_edges),
        distances: Vec::with_capacity(n_edges),
        vectors: Vec::with_capacity(if keep_vectors { 3 * n_edges } else { 0 }),
        node_graph: Vec::with_capacity(n_nodes),
        graph_ptr: vec![0],
        edge_ptr: vec![0],
        triplet_index: vec![0; 2 * n_trip],
        triplet_cos: Vec::with_capacity(n_trip),
        triplet_ptr: vec![0],
        ..Default::default()
    };
    {
        use crate::parallel::advise_huge_pages as advise;
        advise(&mut g.edge_index);
        advise(g.shifts.spare_capacity_mut());
        advise(g.distances.spare_capacity_mut());
        advise(g.vectors.spare_capacity_mut());
        advise(&mut g.triplet_index);
    }
    let (mut node_off, mut edge_off, mut trip_off) = (0usize, 0usize, 0usize);
    for (k, (s, one)) in structures.iter().zip(&graphs).enumerate() {
        g.numbers.extend(s.numbers.iter().map(|&z| z as i64));
        g.node_graph.extend(std::iter::repeat_n(k as i64, s.n_sites()));
        let e = &one.edges;
        for t in 0..e.len() {
            g.edge_index[edge_off + t] = e.i[t] + node_off as i64;
            g.edge_index[n_edges + edge_off + t] = e.j[t] + node_off as i64;
        }
        for sh in &e.shifts {
            g.shifts.extend_from_slice(sh);
        }
        g.distances.extend_from_slice(&e.distances);
        if keep_vectors {
            for v in &e.vectors {
                g.vectors.extend_from_slice(v);
            }
        }
        for (t, tr) in one.triplets.iter().enumerate() {
            g.triplet_index[trip_off + t] = tr[0] + edge_off as i64;
            g.triplet_index[n_trip + trip_off + t] = tr[1] + edge_off as i64;
        }
        g.triplet_cos.extend_from_slice(&one.cos);
        node_off += s.n_sites();
        edge_off += e.len();
        trip_off += one.triplets.len();
        g.graph_ptr.push(node_off as i64);
        g.edge_ptr.push(edge_off as i64);
        g.triplet_ptr.push(trip_off as i64);
    }
    attach_rbf(&mut g, opts);
    Ok(g)
}

/// Refuse RBF features that would not fit the memory budget (before they are allocated).
fn check_rbf_bytes(n_edges: usize, opts: &GraphOptions) -> Result<(), CoreError> {
    if let Some(rbf) = &opts.rbf {
        let size = if opts.rbf_float32 { 4.0 } else { 8.0 };
        crate::limits::check_output_bytes(n_edges as f64 * rbf.n as f64 * size, || {
            format!("{n_edges} edges x {} Gaussian features", rbf.n)
        })?;
    }
    Ok(())
}

/// The Gaussian edge features of `opts.rbf` (if any) from the batch's distances, in the dtype asked.
fn attach_rbf(g: &mut BatchedGraph, opts: &GraphOptions) {
    if let Some(rbf) = &opts.rbf {
        g.n_rbf = rbf.n;
        if opts.rbf_float32 {
            g.rbf_f32 = gaussian_rbf_generic(&g.distances, rbf, |x| x as f32);
        } else {
            g.rbf = gaussian_rbf(&g.distances, rbf);
        }
    }
}

/// Gaussian features of `distances` (row-major `len x n`), computed in parallel.
pub fn gaussian_rbf(distances: &[f64], rbf: &Rbf) -> Vec<f64> {
    gaussian_rbf_generic(distances, rbf, |x| x)
}

/// [`gaussian_rbf`] stored through `store` (e.g. as f32); computed in f64 either way.
///
/// On an even grid with spacing `s`, write `t_k = (d - mu_k) / w = t0 - m h` with `m = k - k0`
/// (`k0` the center nearest to `d`, so `|t0| <= h / 2`) and `h = s / w`. Then
/// `exp(-t_k^2) = exp(-t0^2) * r^m * P[|m|]` with `r = exp(2 t0 h)` and `P[m] = exp(-h^2 m^2)`
/// tabulated once: three `exp` of small, bounded arguments per distance instead of `n`
/// (evaluated for a block of distances at a time by a branch-free kernel that vectorizes), and
/// the powers of `r` run as four interleaved products so the loop has no long dependency chain.
/// Relative error ~ n ulp. Distances off the grid (below `start - s/2`, above `stop + s/2`, or
/// not finite) and coarse grids (`h > 2`, where `r^m` could overflow) are computed directly.
///
/// On x86-64 CPUs with AVX2 the same code is compiled a second time for AVX2 and chosen at run
/// time. Rust never contracts `a * b + c` into a fused multiply-add, so both builds perform the
/// same IEEE operations in the same order and give bitwise-identical output.
pub fn gaussian_rbf_generic<T: Copy + Default + Send + Sync>(
    distances: &[f64],
    rbf: &Rbf,
    store: impl Fn(f64) -> T + Sync,
) -> Vec<T> {
    let grid = RbfGrid::new(rbf);
    let mut out = vec![T::default(); distances.len() * grid.n];
    crate::parallel::advise_huge_pages(&mut out);
    let simd = RbfKernel::detect();
    out.par_chunks_mut(grid.n * RBF_BLOCK).zip(distances.par_chunks(RBF_BLOCK)).for_each(|(o, d)| {
        simd.run(&grid, d, o, &store);
    });
    out
}

/// Distances per block of the RBF kernel (the per-distance scratch stays in L1).
const RBF_BLOCK: usize = 256;

struct RbfGrid {
    centers: Vec<f64>,
    n: usize,
    width: f64,
    step: f64,
    /// `step / width`.
    h: f64,
    /// `P[m] = exp(-(h m)^2)`.
    table: Vec<f64>,
    /// Every value through `exp` (single center or coarse grid).
    direct: bool,
}

impl RbfGrid {
    fn new(rbf: &Rbf) -> Self {
        let centers = rbf.centers();
        let n = rbf.n;
        let width = rbf.width();
        let step = if n > 1 { centers[1] - centers[0] } else { 0.0 };
        let h = step / width;
        let table = (0..n).map(|m| (-(h * m as f64).powi(2)).exp()).collect();
        let direct = n == 1 || !(h > 0.0 && h <= 2.0);
        Self { centers, n, width, step, h, table, direct }
    }

    #[inline(always)]
    fn direct_row<T>(&self, x: f64, row: &mut [T], store: &impl Fn(f64) -> T) {
        for (v, &mu) in row.iter_mut().zip(&self.centers) {
            let t = (x - mu) / self.width;
            *v = store((-t * t).exp());
        }
    }
}

#[derive(Clone, Copy)]
enum RbfKernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl RbfKernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                return Self::Avx2;
            }
        }
        Self::Portable
    }

    #[inline]
    fn run<T>(self, grid: &RbfGrid, d: &[f64], o: &mut [T], store: &impl Fn(f64) -> T) {
        match self {
            Self::Portable => rbf_block(grid, d, o, store),
            // SAFETY: `Avx2` is only chosen after `is_x86_feature_detected!("avx2")`.
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => unsafe { rbf_block_avx2(grid, d, o, store) },
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn rbf_block_avx2<T>(grid: &RbfGrid, d: &[f64], o: &mut [T], store: &impl Fn(f64) -> T) {
    rbf_block(grid, d, o, store)
}

/// RBF rows of up to [`RBF_BLOCK`] distances into `o` (`d.len() x n`).
#[inline(always)]
fn rbf_block<T>(grid: &RbfGrid, d: &[f64], o: &mut [T], store: &impl Fn(f64) -> T) {
    let n = grid.n;
    if grid.direct {
        for (row, &x) in o.chunks_exact_mut(n).zip(d) {
            grid.direct_row(x, row, store);
        }
        return;
    }
    let len = d.len();
    let mut k0s = [0usize; RBF_BLOCK];
    let mut on_grid = [true; RBF_BLOCK];
    // exp arguments: -t0^2, 2 t0 h and -2 t0 h (all within [-4, 4] on the grid).
    let mut e0 = [0f64; RBF_BLOCK];
    let mut up = [0f64; RBF_BLOCK];
    let mut down = [0f64; RBF_BLOCK];
    let half = 0.5 * grid.h * (1.0 + 1e-9);
    for (e, &x) in d.iter().enumerate() {
        let k = ((x - grid.centers[0]) / grid.step).round();
        let k0 = if k >= 0.0 && k <= (n - 1) as f64 { k as usize } else { 0 };
        let t0 = (x - grid.centers[k0]) / grid.width;
        let ok = t0.abs() <= half; // false for NaN and off-grid distances
        k0s[e] = k0;
        on_grid[e] = ok;
        let t0 = if ok { t0 } else { 0.0 };
        e0[e] = -t0 * t0;
        up[e] = 2.0 * t0 * grid.h;
        down[e] = -up[e];
    }
    for v in e0[..len].iter_mut().chain(up[..len].iter_mut()).chain(down[..len].iter_mut()) {
        *v = exp_small(*v);
    }
    for (e, row) in o.chunks_exact_mut(n).enumerate() {
        if !on_grid[e] {
            grid.direct_row(d[e], row, store);
            continue;
        }
        let (below, above) = row.split_at_mut(k0s[e]);
        powers_times_table(e0[e], up[e], &grid.table, above, store);
        powers_times_table_reversed(e0[e], down[e], &grid.table[1..], below, store);
    }
}

/// `exp(x)` for `|x| <= 700` without branches (the RBF kernel calls it on `|x| <= 4`): Cody-Waite
/// reduction by ln 2 and a degree-13 Taylor polynomial on `|r| <= ln(2) / 2` (truncation error
/// below 1e-17 relative, about 1 ulp in all).
#[inline(always)]
fn exp_small(x: f64) -> f64 {
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52: adding it rounds to an integer
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000); // ln 2, upper bits (fdlibm split)
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76); // ln 2 - LN2_HI
    let k = x * std::f64::consts::LOG2_E + ROUND;
    let m = k - ROUND;
    let r = (x - m * LN2_HI) - m * LN2_LO;
    const INV_FACT: [f64; 14] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5_040.0,
        1.0 / 40_320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
        1.0 / 479_001_600.0,
        1.0 / 6_227_020_800.0,
    ];
    let mut p = INV_FACT[13];
    for c in INV_FACT[..13].iter().rev() {
        p = p * r + c;
    }
    // The low bits of `k` hold the integer m: 2^m has the biased exponent m + 1023.
    p * f64::from_bits(k.to_bits().wrapping_add(1023) << 52)
}

/// `out[m] = e0 * r^m * table[m]` for `m < out.len()`, with four interleaved running powers.
#[inline(always)]
fn powers_times_table<T>(e0: f64, r: f64, table: &[f64], out: &mut [T], store: &impl Fn(f64) -> T) {
    let r2 = r * r;
    let r4 = r2 * r2;
    let mut acc = [e0, e0 * r, e0 * r2, e0 * r2 * r];
    let table = &table[..out.len()];
    let mut quads = out.chunks_exact_mut(4);
    let mut t_quads = table.chunks_exact(4);
    for (o4, t4) in (&mut quads).zip(&mut t_quads) {
        for q in 0..4 {
            o4[q] = store(acc[q] * t4[q]);
            acc[q] *= r4;
        }
    }
    for ((o, &t), a) in quads.into_remainder().iter_mut().zip(t_quads.remainder()).zip(acc) {
        *o = store(a * t);
    }
}

/// `out[len - 1 - m] = e0 * r^(m + 1) * table[m]` for `m < len = out.len()` (the centers below
/// the nearest one, walking down; `table` starts at `P[1]`).
#[inline(always)]
fn powers_times_table_reversed<T>(e0: f64, r: f64, table: &[f64], out: &mut [T], store: &impl Fn(f64) -> T) {
    let r2 = r * r;
    let r4 = r2 * r2;
    let mut acc = [e0 * r, e0 * r2, e0 * r2 * r, e0 * r4];
    let table = &table[..out.len()];
    let mut quads = out.rchunks_exact_mut(4);
    let mut t_quads = table.chunks_exact(4);
    for (o4, t4) in (&mut quads).zip(&mut t_quads) {
        for q in 0..4 {
            o4[3 - q] = store(acc[q] * t4[q]);
            acc[q] *= r4;
        }
    }
    for ((o, &t), a) in quads.into_remainder().iter_mut().rev().zip(t_quads.remainder()).zip(acc) {
        *o = store(a * t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbf_matches_direct_formula() {
        let rbf = Rbf { start: 0.0, stop: 8.0, n: 41, width: Some(0.35) };
        let d: Vec<f64> = (0..2000).map(|k| -1.0 + k as f64 * 0.0061).collect();
        let fast = gaussian_rbf(&d, &rbf);
        let centers = rbf.centers();
        for (e, &x) in d.iter().enumerate() {
            for (k, &mu) in centers.iter().enumerate() {
                let t = (x - mu) / 0.35;
                let exact = (-t * t).exp();
                let got = fast[e * 41 + k];
                assert!((got - exact).abs() <= 1e-12 * exact.max(1e-300) + 1e-300, "{x} {mu} {got} {exact}");
            }
        }
    }

    fn direct(d: &[f64], rbf: &Rbf) -> Vec<f64> {
        let (c, w) = (rbf.centers(), rbf.width());
        d.iter().flat_map(|&x| c.iter().map(move |&mu| (-((x - mu) / w).powi(2)).exp())).collect()
    }

    #[test]
    fn exp_small_is_within_two_ulp_of_std_exp() {
        let mut worst = 0.0f64;
        for k in -700_000..=700_000 {
            let x = k as f64 * 1e-3 + 1.37e-7;
            let (a, b) = (exp_small(x), x.exp());
            worst = worst.max((a - b).abs() / (b * f64::EPSILON));
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
    }

    #[test]
    fn rbf_handles_off_grid_and_non_finite_distances() {
        let rbf = Rbf { start: 1.0, stop: 4.0, n: 64, width: Some(0.5) };
        let d = [0.0, 0.2, 0.97, 1.0, 2.5, 4.0, 4.03, 9.0, 1e300, f64::INFINITY, f64::NAN, -3.0];
        let fast = gaussian_rbf(&d, &rbf);
        let exact = direct(&d, &rbf);
        for (k, (a, b)) in fast.iter().zip(&exact).enumerate() {
            if b.is_nan() {
                assert!(a.is_nan(), "row {}", k / 64);
            } else {
                assert!((a - b).abs() <= 1e-12 * b + 1e-300, "row {} col {}: {a} vs {b}", k / 64, k % 64);
            }
        }
    }

    #[test]
    fn rbf_single_center_and_coarse_grids_are_exact() {
        let d: Vec<f64> = (0..500).map(|k| k as f64 * 0.017).collect();
        for rbf in [
            Rbf { start: 2.0, stop: 2.0, n: 1, width: Some(0.3) },
            Rbf { start: 0.0, stop: 8.0, n: 5, width: Some(0.5) }, // h = 4 > 2: direct
        ] {
            assert_eq!(gaussian_rbf(&d, &rbf), direct(&d, &rbf));
        }
    }

    #[test]
    fn rbf_float32_is_the_rounded_float64_and_kernels_agree_bitwise() {
        let rbf = Rbf { start: 0.0, stop: 6.0, n: 50, width: None };
        // Block boundaries and a ragged last block.
        let d: Vec<f64> = (0..3 * RBF_BLOCK + 37).map(|k| 0.2 + (k as f64 * 0.618_034).fract() * 6.5).collect();
        let f64s = gaussian_rbf(&d, &rbf);
        let f32s = gaussian_rbf_generic(&d, &rbf, |x| x as f32);
        assert!(f64s.iter().zip(&f32s).all(|(&a, &b)| a as f32 == b));
        let grid = RbfGrid::new(&rbf);
        let mut portable = vec![0.0; f64s.len()];
        for (o, dd) in portable.chunks_mut(rbf.n * RBF_BLOCK).zip(d.chunks(RBF_BLOCK)) {
            RbfKernel::Portable.run(&grid, dd, o, &|x| x);
        }
        assert!(portable.iter().zip(&f64s).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

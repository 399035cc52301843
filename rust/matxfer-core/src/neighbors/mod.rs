//! Exact periodic neighbor lists.
//!
//! For a cutoff `r_c` (angstrom) the list holds every ordered pair `(i, j, S)` with
//! `|r_ij| <= r_c + CUTOFF_TOLERANCE` (1e-8 angstrom, so pairs exactly at the cutoff are kept
//! despite rounding, as in pymatgen), where `r_ij = r_j - r_i + S @ lattice` and `S` is an integer image shift
//! (zero along non-periodic axes). Periodic self-images `(i, i, S != 0)` are included, the
//! zero-shift self pair is not. Both `(i, j, S)` and `(j, i, -S)` appear (a full list).
//!
//! [`cell_list`] is the production algorithm (binning in fractional space, any triclinic cell,
//! cutoffs larger than the cell); [`brute_force`] is the O(N^2 x images) oracle used in tests.

/// Absolute tolerance added to every cutoff, angstrom.
pub const CUTOFF_TOLERANCE: f64 = 1e-8;

pub mod brute_force;
pub mod cell_list;

pub use cell_list::{neighbor_list, neighbor_list_batch, neighbor_list_batch_with, CellList, NeighborOptions};

/// A flat neighbor list. `vectors` is empty unless requested.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NeighborList {
    /// Center atom index (local to its structure).
    pub i: Vec<i64>,
    /// Neighbor atom index (local to its structure).
    pub j: Vec<i64>,
    /// Integer image shift `S` of `j`.
    pub shifts: Vec<[i32; 3]>,
    /// `|r_ij|`, angstrom.
    pub distances: Vec<f64>,
    /// `r_ij = r_j - r_i + S @ lattice`, angstrom (only when requested).
    pub vectors: Vec<[f64; 3]>,
}

impl NeighborList {
    pub fn len(&self) -> usize {
        self.i.len()
    }

    pub fn is_empty(&self) -> bool {
        self.i.is_empty()
    }

    /// Empty lists with room for `n` pairs; large buffers are advised to use huge pages (the
    /// room is only virtual until written, so generous estimates cost little).
    pub fn with_capacity(n: usize, vectors: bool) -> Self {
        let mut out = Self {
            i: Vec::with_capacity(n),
            j: Vec::with_capacity(n),
            shifts: Vec::with_capacity(n),
            distances: Vec::with_capacity(n),
            vectors: if vectors { Vec::with_capacity(n) } else { Vec::new() },
        };
        use crate::parallel::advise_huge_pages as advise;
        advise(out.i.spare_capacity_mut());
        advise(out.j.spare_capacity_mut());
        advise(out.shifts.spare_capacity_mut());
        advise(out.distances.spare_capacity_mut());
        advise(out.vectors.spare_capacity_mut());
        out
    }

    /// Reserve room for `n` more pairs.
    pub fn reserve(&mut self, n: usize, vectors: bool) {
        self.i.reserve(n);
        self.j.reserve(n);
        self.shifts.reserve(n);
        self.distances.reserve(n);
        if vectors {
            self.vectors.reserve(n);
        }
    }

    /// Shifts as a flat `E x 3` buffer, without copying.
    pub fn take_flat_shifts(&mut self) -> Vec<i32> {
        flatten3(std::mem::take(&mut self.shifts))
    }

    /// Vectors as a flat `E x 3` buffer, without copying.
    pub fn take_flat_vectors(&mut self) -> Vec<f64> {
        flatten3(std::mem::take(&mut self.vectors))
    }

    /// Append every list of `parts` in order, copying in parallel on the current rayon pool
    /// (the output is the same as appending them one after the other).
    pub fn append_parallel(&mut self, parts: &[NeighborList], want_vectors: bool) {
        append_slices_parallel(&mut self.i, parts.iter().map(|p| p.i.as_slice()));
        append_slices_parallel(&mut self.j, parts.iter().map(|p| p.j.as_slice()));
        append_slices_parallel(&mut self.shifts, parts.iter().map(|p| p.shifts.as_slice()));
        append_slices_parallel(&mut self.distances, parts.iter().map(|p| p.distances.as_slice()));
        if want_vectors {
            append_slices_parallel(&mut self.vectors, parts.iter().map(|p| p.vectors.as_slice()));
        }
    }
}

/// Elements per copy task of [`append_slices_parallel`] (large enough to amortise scheduling).
const COPY_CHUNK: usize = 1 << 15;

/// Append the slices to `dst` in order; the copies run as parallel tasks of up to
/// [`COPY_CHUNK`] elements into disjoint parts of `dst`'s spare capacity.
fn append_slices_parallel<'a, T: Copy + Send + Sync + 'a>(dst: &mut Vec<T>, srcs: impl Iterator<Item = &'a [T]>) {
    use rayon::prelude::*;
    let srcs: Vec<&[T]> = srcs.filter(|s| !s.is_empty()).collect();
    let total: usize = srcs.iter().map(|s| s.len()).sum();
    if total == 0 {
        return;
    }
    dst.reserve(total);
    let mut tasks = Vec::with_capacity(total / COPY_CHUNK + srcs.len());
    let mut spare = &mut dst.spare_capacity_mut()[..total];
    for src in srcs {
        let (head, tail) = spare.split_at_mut(src.len());
        tasks.extend(head.chunks_mut(COPY_CHUNK).zip(src.chunks(COPY_CHUNK)));
        spare = tail;
    }
    tasks.into_par_iter().for_each(|(to, from)| {
        // SAFETY: `to` and `from` have the same length (chunks of equal-length slices), `to` is
        // spare capacity of `dst` (uninitialised, not aliased by the sources) and T is Copy.
        unsafe { std::ptr::copy_nonoverlapping(from.as_ptr(), to.as_mut_ptr() as *mut T, from.len()) };
    });
    // SAFETY: the first `total` spare elements were all written above.
    unsafe { dst.set_len(dst.len() + total) };
}

/// A neighbor list of many structures: indices local to each structure, `edge_ptr[s]..edge_ptr[s+1]`
/// are the pairs of structure `s`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchNeighborList {
    pub pairs: NeighborList,
    pub edge_ptr: Vec<usize>,
}

/// Reinterpret `Vec<[T; 3]>` as `Vec<T>` (same allocation, three times the length).
pub fn flatten3<T: Copy>(v: Vec<[T; 3]>) -> Vec<T> {
    let mut v = std::mem::ManuallyDrop::new(v);
    let (ptr, len, cap) = (v.as_mut_ptr(), v.len(), v.capacity());
    // SAFETY: [T; 3] has the size of three T and the alignment of T, so the allocation made for
    // `cap` arrays is exactly the allocation for `3 * cap` elements of T with the same layout;
    // ownership moves from the ManuallyDrop'd vector to the new one.
    unsafe { Vec::from_raw_parts(ptr as *mut T, len * 3, cap * 3) }
}

/// Where a neighbor search writes its pairs (growable lists today; the seam for other sinks such
/// as counters or preallocated slices).
pub trait PairSink {
    fn push_pair(&mut self, i: i64, j: i64, shift: [i32; 3], distance: f64, vector: [f64; 3], want_vectors: bool);
}

impl PairSink for NeighborList {
    #[inline(always)]
    fn push_pair(&mut self, i: i64, j: i64, shift: [i32; 3], distance: f64, vector: [f64; 3], want_vectors: bool) {
        self.i.push(i);
        self.j.push(j);
        self.shifts.push(shift);
        self.distances.push(distance);
        if want_vectors {
            self.vectors.push(vector);
        }
    }
}

/// Test candidates `j` (positions `pos`, wrapped cells `wrap`) against center `i`:
/// `v = pos_j + q` with `q = T - p_i`; keep `|v|^2 <= c2` except `j == i` when `zero_image`.
/// The shift stored is `shift_base - wrap_j`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn push_candidates<S: PairSink>(
    out: &mut S,
    i: usize,
    pos: &[[f64; 3]],
    index: &[u32],
    wrap: &[[i32; 3]],
    q: [f64; 3],
    shift_base: [i32; 3],
    c2: f64,
    zero_image: bool,
    want_vectors: bool,
) {
    for t in 0..pos.len() {
        let r = &pos[t];
        let v = [r[0] + q[0], r[1] + q[1], r[2] + q[2]];
        let d2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
        if d2 <= c2 {
            let j = index[t] as usize;
            if zero_image && j == i {
                continue;
            }
            let w = &wrap[t];
            out.push_pair(
                i as i64,
                j as i64,
                [shift_base[0] - w[0], shift_base[1] - w[1], shift_base[2] - w[2]],
                d2.sqrt(),
                v,
                want_vectors,
            );
        }
    }
}

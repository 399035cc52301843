//! Brute-force oracle: every pair of atoms against every image shift that can reach the cutoff.
//! O(N^2 x images); for tests only.

use super::NeighborList;
use crate::structure::linalg::{face_distances, frac_to_cart};
use crate::structure::Structure;

/// All pairs within `cutoff`, sorted by (i, j, shift).
pub fn neighbor_list_brute_force(s: &Structure, cutoff: f64) -> NeighborList {
    let d = face_distances(&s.lattice);
    let n = s.n_sites();
    let mut out = NeighborList::default();
    let cutoff = cutoff + super::CUTOFF_TOLERANCE;
    let c2 = cutoff * cutoff;
    for i in 0..n {
        for j in 0..n {
            let df: [f64; 3] = std::array::from_fn(|k| s.frac_coords[j][k] - s.frac_coords[i][k]);
            // |df_k + S_k| <= cutoff / d_k is necessary for |r_ij| <= cutoff.
            let range = |k: usize| -> (i64, i64) {
                if !s.pbc[k] {
                    return (0, 0);
                }
                let r = cutoff / d[k];
                ((-df[k] - r).floor() as i64 - 1, (-df[k] + r).ceil() as i64 + 1)
            };
            let (r0, r1, r2) = (range(0), range(1), range(2));
            for a in r0.0..=r0.1 {
                for b in r1.0..=r1.1 {
                    for c in r2.0..=r2.1 {
                        if i == j && a == 0 && b == 0 && c == 0 {
                            continue;
                        }
                        let f = [df[0] + a as f64, df[1] + b as f64, df[2] + c as f64];
                        let v = frac_to_cart(&f, &s.lattice);
                        let d2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
                        if d2 <= c2 {
                            out.i.push(i as i64);
                            out.j.push(j as i64);
                            out.shifts.push([a as i32, b as i32, c as i32]);
                            out.distances.push(d2.sqrt());
                            out.vectors.push(v);
                        }
                    }
                }
            }
        }
    }
    out
}

//! Molecular graphs in the batched layout of [`crate::graph`], so crystal-graph models run on
//! molecules unchanged.
//!
//! Input: atoms and bonds of many molecules (as RDKit reports them) in flat CSR arrays. Output:
//! one directed edge per bond direction (`i -> j` and `j -> i`), edges grouped by molecule and, within
//! a molecule, ordered by centre atom then bond index; image shifts are all zero (no periodicity).
//!
//! Edge lengths `d_ij` (angstrom): `|r_j - r_i|` when conformer positions are given; otherwise a
//! topological estimate from covalent radii and Pauling's bond-order relation
//! `d(n) = r_i + r_j - 0.60 * log10(n)` with n = 1, 2, 3 and 1.5 for aromatic bonds
//! (L. Pauling, J. Am. Chem. Soc. 69, 542 (1947)), so distance-based models see bond orders.

use rayon::prelude::*;

use crate::error::CoreError;
use crate::parallel::with_threads;

/// Bond type codes, as RDKit's `BondType` is mapped by the Python layer.
pub const BOND_SINGLE: u8 = 1;
pub const BOND_DOUBLE: u8 = 2;
pub const BOND_TRIPLE: u8 = 3;
pub const BOND_AROMATIC: u8 = 4;
/// Any other RDKit bond type (dative, zero-order, ...); bond order taken as 1 for the length estimate.
pub const BOND_OTHER: u8 = 0;

/// `bond_flags` bits.
pub const FLAG_CONJUGATED: u8 = 1;
pub const FLAG_IN_RING: u8 = 2;

/// Edge attribute columns, in order.
pub const EDGE_FEATURES: [&str; 7] =
    ["bond_single", "bond_double", "bond_triple", "bond_aromatic", "bond_other", "conjugated", "in_ring"];

/// Flat description of a batch of molecules. Atom indices in `bonds` are local to their molecule.
pub struct MoleculeBatch<'a> {
    /// `(G + 1,)` atom offsets: molecule g owns atoms `atom_ptr[g]..atom_ptr[g + 1]`.
    pub atom_ptr: &'a [i64],
    /// `(N,)` atomic numbers, 0 for a dummy (`*`) atom.
    pub numbers: &'a [i64],
    /// `(N,)` covalent radii in angstrom (used when `positions` is `None`).
    pub radii: &'a [f64],
    /// `(G + 1,)` bond offsets.
    pub bond_ptr: &'a [i64],
    /// `(B, 2)` row-major begin/end atom of each bond (local indices).
    pub bonds: &'a [i64],
    /// `(B,)` bond type codes (`BOND_*`).
    pub bond_types: &'a [u8],
    /// `(B,)` `FLAG_*` bits.
    pub bond_flags: &'a [u8],
    /// `(N, 3)` row-major conformer positions in angstrom, or `None`.
    pub positions: Option<&'a [f64]>,
}

/// Batched molecular graphs; the field meanings match [`crate::graph::BatchedGraphs`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MoleculeGraphs {
    pub numbers: Vec<i64>,
    /// `(2, E)` row-major: the first E entries are centres, the next E neighbours (global indices).
    pub edge_index: Vec<i64>,
    /// `(E, 3)`, all zero.
    pub shifts: Vec<i32>,
    pub distances: Vec<f64>,
    /// `(E, EDGE_FEATURES.len())` row-major one-hot bond type + flags.
    pub edge_attr: Vec<f32>,
    /// `(E,)` index of the bond each edge comes from (global over the batch).
    pub edge_bond: Vec<i64>,
    pub node_graph: Vec<i64>,
    pub graph_ptr: Vec<i64>,
    pub edge_ptr: Vec<i64>,
}

fn bond_order(code: u8) -> f64 {
    match code {
        BOND_DOUBLE => 2.0,
        BOND_TRIPLE => 3.0,
        BOND_AROMATIC => 1.5,
        _ => 1.0,
    }
}

fn check_ptr(name: &str, ptr: &[i64], total: usize) -> Result<(), CoreError> {
    let ok = ptr.first() == Some(&0)
        && ptr.last().map(|&x| x as usize) == Some(total)
        && ptr.windows(2).all(|w| w[0] <= w[1]);
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidArgument(format!("{name} must start at 0, be non-decreasing and end at {total}")))
    }
}

fn invalid(index: usize, reason: String) -> CoreError {
    CoreError::Structure { index, name: None, reason }
}

struct Part {
    centre: Vec<i64>,
    neighbour: Vec<i64>,
    distances: Vec<f64>,
    attr: Vec<f32>,
    bond: Vec<i64>,
}

fn one_molecule(b: &MoleculeBatch<'_>, g: usize) -> Result<Part, CoreError> {
    let (a0, a1) = (b.atom_ptr[g] as usize, b.atom_ptr[g + 1] as usize);
    let (b0, b1) = (b.bond_ptr[g] as usize, b.bond_ptr[g + 1] as usize);
    let n_atoms = a1 - a0;
    for &z in &b.numbers[a0..a1] {
        if !(0..=118).contains(&z) {
            return Err(invalid(g, format!("atomic number {z} outside 0..=118")));
        }
    }
    // (centre, bond, neighbour) for both directions, then ordered by centre and bond.
    let mut edges: Vec<(usize, usize, usize)> = Vec::with_capacity(2 * (b1 - b0));
    for k in b0..b1 {
        let (i, j) = (b.bonds[2 * k], b.bonds[2 * k + 1]);
        if i < 0 || j < 0 || i as usize >= n_atoms || j as usize >= n_atoms {
            return Err(invalid(g, format!("bond {} joins atoms {i} and {j}, outside 0..{n_atoms}", k - b0)));
        }
        if i == j {
            return Err(invalid(g, format!("bond {} joins atom {i} to itself", k - b0)));
        }
        if b.bond_types[k] > BOND_AROMATIC {
            return Err(invalid(g, format!("bond type code {} is not 0..=4", b.bond_types[k])));
        }
        edges.push((i as usize, k, j as usize));
        edges.push((j as usize, k, i as usize));
    }
    edges.sort_unstable();
    let n_feat = EDGE_FEATURES.len();
    let mut part = Part {
        centre: Vec::with_capacity(edges.len()),
        neighbour: Vec::with_capacity(edges.len()),
        distances: Vec::with_capacity(edges.len()),
        attr: vec![0.0; edges.len() * n_feat],
        bond: Vec::with_capacity(edges.len()),
    };
    for (e, &(i, k, j)) in edges.iter().enumerate() {
        let (gi, gj) = (a0 + i, a0 + j);
        let d = match b.positions {
            Some(p) => {
                let dx = p[3 * gj] - p[3 * gi];
                let dy = p[3 * gj + 1] - p[3 * gi + 1];
                let dz = p[3 * gj + 2] - p[3 * gi + 2];
                (dx * dx + dy * dy + dz * dz).sqrt()
            }
            None => b.radii[gi] + b.radii[gj] - 0.60 * bond_order(b.bond_types[k]).log10(),
        };
        if !d.is_finite() {
            return Err(invalid(g, format!("bond {} has a non-finite length", k - b0)));
        }
        let row = &mut part.attr[e * n_feat..(e + 1) * n_feat];
        let slot = match b.bond_types[k] {
            BOND_SINGLE => 0,
            BOND_DOUBLE => 1,
            BOND_TRIPLE => 2,
            BOND_AROMATIC => 3,
            _ => 4,
        };
        row[slot] = 1.0;
        row[5] = f32::from(b.bond_flags[k] & FLAG_CONJUGATED != 0);
        row[6] = f32::from(b.bond_flags[k] & FLAG_IN_RING != 0);
        part.centre.push(gi as i64);
        part.neighbour.push(gj as i64);
        part.distances.push(d);
        part.bond.push(k as i64);
    }
    Ok(part)
}

/// Build the graphs of a batch of molecules, in parallel over molecules. The first invalid
/// molecule (lowest index) is reported, whatever the thread count.
pub fn build_molecule_graphs(b: &MoleculeBatch<'_>, n_threads: Option<usize>) -> Result<MoleculeGraphs, CoreError> {
    let n_atoms = b.numbers.len();
    let n_bonds = b.bond_types.len();
    check_ptr("atom_ptr", b.atom_ptr, n_atoms)?;
    check_ptr("bond_ptr", b.bond_ptr, n_bonds)?;
    if b.atom_ptr.len() != b.bond_ptr.len() {
        return Err(CoreError::InvalidArgument("atom_ptr and bond_ptr must have the same length".into()));
    }
    if b.radii.len() != n_atoms || b.bonds.len() != 2 * n_bonds || b.bond_flags.len() != n_bonds {
        return Err(CoreError::InvalidArgument(
            "radii, bonds and bond_flags disagree with numbers / bond_types".into(),
        ));
    }
    if let Some(p) = b.positions {
        if p.len() != 3 * n_atoms {
            return Err(CoreError::InvalidArgument("positions must have shape (N, 3)".into()));
        }
    }
    let n_graphs = b.atom_ptr.len() - 1;
    let parts: Vec<Result<Part, CoreError>> =
        with_threads(n_threads, || (0..n_graphs).into_par_iter().map(|g| one_molecule(b, g)).collect())?;
    let n_edges = 2 * n_bonds;
    let mut out = MoleculeGraphs {
        numbers: b.numbers.to_vec(),
        edge_index: Vec::with_capacity(2 * n_edges),
        shifts: vec![0; 3 * n_edges],
        distances: Vec::with_capacity(n_edges),
        edge_attr: Vec::with_capacity(n_edges * EDGE_FEATURES.len()),
        edge_bond: Vec::with_capacity(n_edges),
        node_graph: Vec::with_capacity(n_atoms),
        graph_ptr: b.atom_ptr.to_vec(),
        edge_ptr: Vec::with_capacity(n_graphs + 1),
    };
    out.edge_ptr.push(0);
    let mut neighbours = Vec::with_capacity(n_edges);
    for (g, part) in parts.into_iter().enumerate() {
        let part = part?;
        out.edge_index.extend_from_slice(&part.centre);
        neighbours.extend_from_slice(&part.neighbour);
        out.distances.extend_from_slice(&part.distances);
        out.edge_attr.extend_from_slice(&part.attr);
        out.edge_bond.extend_from_slice(&part.bond);
        out.edge_ptr.push(out.distances.len() as i64);
        let n = (b.atom_ptr[g + 1] - b.atom_ptr[g]) as usize;
        out.node_graph.extend(std::iter::repeat_n(g as i64, n));
    }
    out.edge_index.extend_from_slice(&neighbours);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Ethanol heavy atoms C-C-O, then benzene as a 6-ring of aromatic bonds.
    /// atom_ptr, numbers, radii, bond_ptr, bonds, bond types, bond flags
    type Arrays = (Vec<i64>, Vec<i64>, Vec<f64>, Vec<i64>, Vec<i64>, Vec<u8>, Vec<u8>);

    fn batch_arrays() -> Arrays {
        let atom_ptr = vec![0, 3, 9];
        let numbers = vec![6, 6, 8, 6, 6, 6, 6, 6, 6];
        let radii = vec![0.76, 0.76, 0.66, 0.76, 0.76, 0.76, 0.76, 0.76, 0.76];
        let bond_ptr = vec![0, 2, 8];
        let mut bonds = vec![0, 1, 1, 2];
        for k in 0..6 {
            bonds.extend_from_slice(&[k, (k + 1) % 6]);
        }
        let types = vec![1, 1, 4, 4, 4, 4, 4, 4];
        let flags = vec![0, 0, 3, 3, 3, 3, 3, 3];
        (atom_ptr, numbers, radii, bond_ptr, bonds, types, flags)
    }

    #[test]
    fn both_directions_grouped_by_molecule_and_centre() {
        let (ap, z, r, bp, bonds, t, f) = batch_arrays();
        let batch = MoleculeBatch {
            atom_ptr: &ap,
            numbers: &z,
            radii: &r,
            bond_ptr: &bp,
            bonds: &bonds,
            bond_types: &t,
            bond_flags: &f,
            positions: None,
        };
        let g = build_molecule_graphs(&batch, Some(2)).unwrap();
        assert_eq!(g.distances.len(), 16);
        assert_eq!(g.edge_ptr, vec![0, 4, 16]);
        let (centre, neighbour) = g.edge_index.split_at(16);
        assert_eq!(&centre[..4], &[0, 1, 1, 2]);
        assert_eq!(&neighbour[..4], &[1, 0, 2, 1]);
        assert!(centre[4..].iter().all(|&c| (3..9).contains(&c)));
        assert!(centre.windows(2).all(|w| w[0] <= w[1]));
        // C-C single bond estimate = 2 * 0.76; aromatic is shorter by 0.60 log10(1.5).
        assert!((g.distances[0] - 1.52).abs() < 1e-12);
        assert!((g.distances[4] - (1.52 - 0.60 * 1.5f64.log10())).abs() < 1e-12);
        assert_eq!(&g.edge_attr[4 * 7..5 * 7], &[0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0]);
        assert_eq!(g.node_graph, vec![0, 0, 0, 1, 1, 1, 1, 1, 1]);
        assert!(g.shifts.iter().all(|&s| s == 0));
        let one = build_molecule_graphs(&batch, Some(1)).unwrap();
        assert_eq!(one, g);
    }

    #[test]
    fn positions_give_euclidean_lengths_and_bad_bonds_name_the_molecule() {
        let (ap, z, r, bp, mut bonds, t, f) = batch_arrays();
        let pos: Vec<f64> = (0..9).flat_map(|i| [i as f64, 0.0, 0.0]).collect();
        let batch = MoleculeBatch {
            atom_ptr: &ap,
            numbers: &z,
            radii: &r,
            bond_ptr: &bp,
            bonds: &bonds,
            bond_types: &t,
            bond_flags: &f,
            positions: Some(&pos),
        };
        let g = build_molecule_graphs(&batch, None).unwrap();
        assert_eq!(g.distances[0], 1.0);
        bonds[5] = 7; // second molecule, bond 0 now points past its 6 atoms
        let batch = MoleculeBatch {
            atom_ptr: &ap,
            numbers: &z,
            radii: &r,
            bond_ptr: &bp,
            bonds: &bonds,
            bond_types: &t,
            bond_flags: &f,
            positions: None,
        };
        match build_molecule_graphs(&batch, Some(2)) {
            Err(CoreError::Structure { index, reason, .. }) => {
                assert_eq!(index, 1);
                assert!(reason.contains("outside 0..6"), "{reason}");
            }
            other => panic!("expected a structure error, got {other:?}"),
        }
    }
}

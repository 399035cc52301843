//! Cell-list neighbor lists against the brute-force oracle: real structures from the shared
//! datasets and random (very skewed) triclinic cells.

use matxfer_core::neighbors::brute_force::neighbor_list_brute_force;
use matxfer_core::neighbors::cell_list::neighbor_list_batch;
use matxfer_core::neighbors::{neighbor_list, NeighborList};
use matxfer_core::structure::jsonl::parse_jsonl;
use matxfer_core::structure::Structure;
use proptest::prelude::*;

type Key = (i64, i64, [i32; 3]);

fn keyed(nl: &NeighborList) -> Vec<(Key, f64)> {
    let mut v: Vec<(Key, f64)> = (0..nl.len()).map(|k| ((nl.i[k], nl.j[k], nl.shifts[k]), nl.distances[k])).collect();
    v.sort_by_key(|a| a.0);
    v
}

/// Same pairs, distances within 1e-9; pairs within 1e-9 of the cutoff may differ by rounding.
fn assert_same(s: &Structure, cutoff: f64) {
    let fast = neighbor_list(s, cutoff, true, Some(1)).expect("cell list");
    let slow = neighbor_list_brute_force(s, cutoff);
    let (a, b) = (keyed(&fast), keyed(&slow));
    let strip =
        |v: &[(Key, f64)]| -> Vec<Key> { v.iter().filter(|x| (x.1 - cutoff).abs() > 1e-9).map(|x| x.0).collect() };
    assert_eq!(strip(&a), strip(&b), "pair sets differ for {:?} at {cutoff}", s.id);
    for (x, y) in a.iter().zip(&b) {
        if x.0 == y.0 {
            assert!((x.1 - y.1).abs() < 1e-9);
        }
    }
    // r_ij = r_j - r_i + S @ lattice, and |r_ij| = distance.
    let cart = s.cart_coords();
    #[allow(clippy::needless_range_loop)]
    for k in 0..fast.len() {
        let (i, j, sh) = (fast.i[k] as usize, fast.j[k] as usize, fast.shifts[k]);
        for d in 0..3 {
            let t: f64 = (0..3).map(|c| sh[c] as f64 * s.lattice[c][d]).sum();
            assert!((cart[j][d] - cart[i][d] + t - fast.vectors[k][d]).abs() < 1e-9);
        }
    }
}

fn shared(name: &str) -> Vec<Structure> {
    let path = format!("{}/../../../shared/data/structures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("shared dataset present");
    parse_jsonl(&text, name).expect("parses")
}

#[test]
fn real_structures_match_oracle() {
    for name in [
        "perov5_valtest_cdvae.jsonl",
        "carbon24_valtest_cdvae.jsonl",
        "mp_bulk_moduli100_megnet.jsonl",
        "jarvis_dft_2d_matminer.jsonl",
        "pt_clusters_matdeeplearn.jsonl",
        "mp_phonon_dielectric_matminer.jsonl",
    ] {
        let all = shared(name);
        for s in all.iter().step_by(all.len() / 12 + 1) {
            for cutoff in [3.0, 5.5, 8.0] {
                assert_same(s, cutoff);
            }
        }
    }
}

#[test]
fn batch_is_thread_count_independent_and_ordered() {
    let all = shared("carbon24_valtest_cdvae.jsonl");
    let some = &all[..300];
    let one = neighbor_list_batch(some, 6.0, true, None, Some(1)).unwrap();
    for threads in [2, 3, 4] {
        assert_eq!(neighbor_list_batch(some, 6.0, true, None, Some(threads)).unwrap(), one, "{threads} threads");
    }
    for (k, s) in some.iter().enumerate().step_by(37) {
        let single = neighbor_list(s, 6.0, true, Some(1)).unwrap();
        let (a, b) = (one.edge_ptr[k], one.edge_ptr[k + 1]);
        assert_eq!(&one.pairs.i[a..b], &single.i[..]);
        assert_eq!(&one.pairs.distances[a..b], &single.distances[..]);
    }
}

#[test]
fn batch_reports_the_lowest_bad_structure_for_any_thread_count() {
    let mut some = shared("carbon24_valtest_cdvae.jsonl")[..400].to_vec();
    some[350].frac_coords[0][0] = f64::NAN; // near the end: claimed first by the back side
    some[123].frac_coords[1][2] = f64::NAN;
    for threads in [1, 2, 3, 4] {
        let err = neighbor_list_batch(&some, 5.0, false, None, Some(threads)).unwrap_err().to_string();
        assert!(err.contains("structure 123"), "{threads} threads: {err}");
    }
}

#[test]
fn supercell_scales_pair_count_exactly() {
    let s = &shared("mp_bulk_moduli100_megnet.jsonl")[3];
    let base = neighbor_list(s, 6.0, false, None).unwrap().len();
    let (na, nb, nc) = (2usize, 3usize, 1usize);
    let mut sc = s.clone();
    sc.frac_coords.clear();
    sc.numbers.clear();
    for a in 0..na {
        for b in 0..nb {
            for c in 0..nc {
                for (f, &z) in s.frac_coords.iter().zip(&s.numbers) {
                    sc.frac_coords.push([
                        (f[0] + a as f64) / na as f64,
                        (f[1] + b as f64) / nb as f64,
                        (f[2] + c as f64) / nc as f64,
                    ]);
                    sc.numbers.push(z);
                }
            }
        }
    }
    for d in 0..3 {
        sc.lattice[0][d] *= na as f64;
        sc.lattice[1][d] *= nb as f64;
        sc.lattice[2][d] *= nc as f64;
    }
    assert_eq!(neighbor_list(&sc, 6.0, false, None).unwrap().len(), base * na * nb * nc);
}

#[test]
fn one_large_structure_split_over_threads_equals_one_thread() {
    // A 3x3x3 supercell of a bulk-moduli structure: large enough for the within-structure split.
    let s = &shared("mp_bulk_moduli100_megnet.jsonl")[3];
    let mut sc = s.clone();
    sc.frac_coords.clear();
    sc.numbers.clear();
    for a in 0..3 {
        for b in 0..3 {
            for c in 0..3 {
                for (f, &z) in s.frac_coords.iter().zip(&s.numbers) {
                    sc.frac_coords.push([(f[0] + a as f64) / 3.0, (f[1] + b as f64) / 3.0, (f[2] + c as f64) / 3.0]);
                    sc.numbers.push(z);
                }
            }
        }
    }
    for row in sc.lattice.iter_mut() {
        for x in row.iter_mut() {
            *x *= 3.0;
        }
    }
    for cutoff in [7.0, 9.0] {
        let one = neighbor_list(&sc, cutoff, true, Some(1)).unwrap();
        assert!(one.len() > 20_000, "too small to be split: {} pairs", one.len());
        for threads in [2, 3, 5] {
            assert_eq!(neighbor_list(&sc, cutoff, true, Some(threads)).unwrap(), one, "{threads} threads");
            let batch = neighbor_list_batch(std::slice::from_ref(&sc), cutoff, true, None, Some(threads)).unwrap();
            assert_eq!(batch.pairs, one);
        }
    }
}

#[test]
fn errors_name_the_structure() {
    let mut s = shared("perov5_valtest_cdvae.jsonl")[0].clone();
    s.frac_coords[2][1] = f64::NAN;
    let err = neighbor_list_batch(&[s.clone()], 4.0, false, None, None).unwrap_err().to_string();
    assert!(err.contains("structure 0") && err.contains("NaN"), "{err}");
    let mut flat = s.clone();
    flat.frac_coords[2][1] = 0.1;
    flat.lattice[2] = flat.lattice[0];
    let err = neighbor_list_batch(&[flat], 4.0, false, None, None).unwrap_err().to_string();
    assert!(err.contains("volume"), "{err}");
    let ok = shared("perov5_valtest_cdvae.jsonl");
    let err = neighbor_list_batch(&ok[..3], 8.0, false, Some(100), None).unwrap_err().to_string();
    assert!(err.contains("max_pairs"), "{err}");
}

fn arb_structure() -> impl Strategy<Value = Structure> {
    (
        prop::array::uniform3(prop::array::uniform3(-6.0f64..6.0)),
        prop::collection::vec(prop::array::uniform3(-1.5f64..2.5), 1..12),
        prop::array::uniform3(any::<bool>()),
    )
        .prop_filter_map("degenerate cell", |(mut lat, coords, pbc)| {
            // Keep a dominant diagonal so the cell is right-handed, but allow strong skew.
            for (d, row) in lat.iter_mut().enumerate() {
                row[d] = row[d].abs() + 1.0;
            }
            let n = coords.len();
            let s = Structure::new(lat, coords, vec![6; n], pbc);
            (s.signed_volume() > 0.5).then_some(s)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn random_triclinic_cells_match_oracle(s in arb_structure(), cutoff in 0.5f64..7.0) {
        // A thin cell can span more periodic images than the core enumerates: that must be a
        // clear error, decided before any work, not a wrong or partial list.
        if s.periodic_images(cutoff) > matxfer_core::limits::MAX_IMAGES {
            let err = neighbor_list(&s, cutoff, true, Some(1)).unwrap_err().to_string();
            prop_assert!(err.contains("periodic images"), "{}", err);
        } else {
            assert_same(&s, cutoff);
        }
    }
}

/// Large periodic cells (where the bin width follows the atom density) over a range of densities
/// and cutoffs, so that every bin divisor is exercised.
fn arb_large_structure() -> impl Strategy<Value = Structure> {
    (
        prop::array::uniform3(prop::array::uniform3(-0.3f64..0.3)),
        prop::collection::vec(prop::array::uniform3(0.0f64..1.0), 256..420),
        4.0f64..14.0,
    )
        .prop_map(|(skew, coords, side)| {
            let mut lat = [[0.0; 3]; 3];
            for d in 0..3 {
                for e in 0..3 {
                    lat[d][e] = side * (if d == e { 1.0 } else { skew[d][e] });
                }
            }
            let n = coords.len();
            Structure::new(lat, coords, vec![8; n], [true; 3])
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn large_cells_match_oracle(s in arb_large_structure(), cutoff in 1.0f64..6.0) {
        assert_same(&s, cutoff);
        prop_assert_eq!(neighbor_list(&s, cutoff, true, Some(3)).unwrap(), neighbor_list(&s, cutoff, true, Some(1)).unwrap());
    }
}

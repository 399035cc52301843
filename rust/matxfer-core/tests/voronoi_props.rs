//! Periodic Voronoi tessellation: volume sums and reciprocal faces on the shared datasets, a
//! brute-force oracle (vertex enumeration) on random triclinic cells, and invariance under
//! translation, rotation, supercells and site permutation.

use matxfer_core::neighbors::brute_force::neighbor_list_brute_force;
use matxfer_core::structure::jsonl::parse_jsonl;
use matxfer_core::structure::linalg::{cross, dot, frac_to_cart, norm, Mat3, Vec3};
use matxfer_core::structure::Structure;
use matxfer_core::voronoi::{voronoi_batch, voronoi_structure, SiteCell, VoronoiBatch};
use proptest::prelude::*;

fn shared(name: &str) -> Vec<Structure> {
    let path = format!("{}/../../../shared/data/structures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("shared dataset present");
    parse_jsonl(&text, name).expect("parses")
}

/// Volumes sum to the cell volume (1e-9 relative) and the face of i towards (j, S) has the
/// area of j's face towards (i, -S) (1e-9 relative to the larger face of the two).
fn check_volumes_and_reciprocity(structures: &[Structure], out: &VoronoiBatch) {
    let mut site = 0;
    for (s_idx, s) in structures.iter().enumerate() {
        let n = s.n_sites();
        let total: f64 = out.volumes[site..site + n].iter().sum();
        assert!(
            (total - s.volume()).abs() <= 1e-9 * s.volume(),
            "structure {s_idx} ({:?}): volumes sum to {total}, cell {}",
            s.id,
            s.volume()
        );
        site += n;
        let (a, b) = (out.face_ptr[s_idx], out.face_ptr[s_idx + 1]);
        let mut faces: std::collections::HashMap<(i64, i64, [i32; 3]), f64> = std::collections::HashMap::new();
        for k in a..b {
            faces.insert((out.i[k], out.j[k], out.shifts[k]), out.areas[k]);
        }
        let max_area = out.areas[a..b].iter().copied().fold(0.0, f64::max);
        for k in a..b {
            let back = [-out.shifts[k][0], -out.shifts[k][1], -out.shifts[k][2]];
            let other = faces.get(&(out.j[k], out.i[k], back)).copied().unwrap_or(0.0);
            assert!(
                (other - out.areas[k]).abs() <= 1e-9 * max_area,
                "structure {s_idx}: face {} -> {} {:?} has area {} but the reverse {other}",
                out.i[k],
                out.j[k],
                out.shifts[k],
                out.areas[k]
            );
        }
    }
}

#[test]
fn shared_sets_volumes_and_reciprocal_faces() {
    for name in [
        "perov5_valtest_cdvae.jsonl",
        "carbon24_valtest_cdvae.jsonl",
        "mp_bulk_moduli100_megnet.jsonl",
        "jarvis_dft_2d_matminer.jsonl",
        "mp_phonon_dielectric_matminer.jsonl",
    ] {
        let all = shared(name);
        // Every 7th structure keeps the debug-free test run to seconds; the Python suite and the
        // benchmark check whole sets.
        let subset: Vec<Structure> = all.into_iter().step_by(7).collect();
        let out = voronoi_batch(&subset, Some(2)).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_volumes_and_reciprocity(&subset, &out);
        let one = voronoi_batch(&subset, Some(1)).unwrap();
        assert_eq!(one, out, "{name}: result depends on the thread count");
    }
}

/// The oracle: every vertex of the cell is the intersection of three bisector planes of
/// neighbors within twice the Wigner-Seitz bound that violates no other plane; a face is a plane
/// holding at least three distinct vertices. Returns (j, shift, area, solid angle) per face and
/// the volume.
/// One face of the oracle: neighbor, image, area, solid angle.
type OracleFace = (i64, [i32; 3], f64, f64);

fn oracle(s: &Structure, i: usize) -> (Vec<OracleFace>, f64) {
    let mut diagonal: f64 = 0.0;
    for (b, c) in [(1.0, 1.0), (-1.0, 1.0), (1.0, -1.0), (-1.0, -1.0)] {
        diagonal = diagonal.max(norm(&frac_to_cart(&[1.0, b, c], &s.lattice)));
    }
    let nl = neighbor_list_brute_force(s, diagonal * 1.001);
    let planes: Vec<(Vec3, f64, i64, [i32; 3])> = (0..nl.len())
        .filter(|&k| nl.i[k] == i as i64)
        .map(|k| (nl.vectors[k], 0.5 * dot(&nl.vectors[k], &nl.vectors[k]), nl.j[k], nl.shifts[k]))
        .collect();
    let m = planes.len();
    let scale = (s.volume() / s.n_sites() as f64).cbrt();
    let mut vertices: Vec<Vec3> = Vec::new();
    for a in 0..m {
        for b in a + 1..m {
            let ab = cross(&planes[a].0, &planes[b].0);
            for c in b + 1..m {
                let det = dot(&planes[c].0, &ab);
                if det.abs() < 1e-9 * norm(&planes[a].0) * norm(&planes[b].0) * norm(&planes[c].0) {
                    continue;
                }
                // Cramer's rule for x . v_a = h_a, x . v_b = h_b, x . v_c = h_c.
                let bc = cross(&planes[b].0, &planes[c].0);
                let ca = cross(&planes[c].0, &planes[a].0);
                let x: Vec3 =
                    std::array::from_fn(|d| (planes[a].1 * bc[d] + planes[b].1 * ca[d] + planes[c].1 * ab[d]) / det);
                if planes.iter().all(|p| dot(&x, &p.0) <= p.1 + 1e-9 * scale * norm(&p.0))
                    && !vertices.iter().any(|y| norm(&[x[0] - y[0], x[1] - y[1], x[2] - y[2]]) < 1e-7 * scale)
                {
                    vertices.push(x);
                }
            }
        }
    }
    let mut faces = Vec::new();
    let mut volume = 0.0;
    for p in &planes {
        let length = norm(&p.0);
        let on: Vec<Vec3> =
            vertices.iter().copied().filter(|x| (dot(x, &p.0) - p.1).abs() <= 1e-7 * scale * length).collect();
        if on.len() < 3 {
            continue;
        }
        let n = on.len() as f64;
        let centroid: Vec3 = std::array::from_fn(|d| on.iter().map(|x| x[d]).sum::<f64>() / n);
        let normal = [p.0[0] / length, p.0[1] / length, p.0[2] / length];
        let u = {
            let d = [on[0][0] - centroid[0], on[0][1] - centroid[1], on[0][2] - centroid[2]];
            let l = norm(&d);
            [d[0] / l, d[1] / l, d[2] / l]
        };
        let w = cross(&normal, &u);
        let mut ordered = on.clone();
        ordered.sort_by(|x, y| {
            let ang = |z: &Vec3| {
                let d = [z[0] - centroid[0], z[1] - centroid[1], z[2] - centroid[2]];
                dot(&d, &w).atan2(dot(&d, &u))
            };
            ang(x).total_cmp(&ang(y))
        });
        // Area and solid angle as a fan of triangles around the centroid (the module fans from
        // a vertex).
        let (mut area, mut omega) = (0.0, 0.0);
        for k in 0..ordered.len() {
            let (b, c) = (ordered[k], ordered[(k + 1) % ordered.len()]);
            let e1 = [b[0] - centroid[0], b[1] - centroid[1], b[2] - centroid[2]];
            let e2 = [c[0] - centroid[0], c[1] - centroid[1], c[2] - centroid[2]];
            area += 0.5 * norm(&cross(&e1, &e2));
            let a = centroid;
            let triple = dot(&a, &cross(&b, &c)).abs();
            let den = norm(&a) * norm(&b) * norm(&c)
                + dot(&a, &b) * norm(&c)
                + dot(&a, &c) * norm(&b)
                + dot(&b, &c) * norm(&a);
            omega += 2.0 * triple.atan2(den);
        }
        volume += area * length / 6.0;
        faces.push((p.2, p.3, area, omega));
    }
    faces.sort_by_key(|f| (f.0, f.1));
    (faces, volume)
}

fn keyed(c: &SiteCell) -> Vec<(i64, [i32; 3], f64, f64, f64)> {
    let mut v: Vec<_> =
        (0..c.j.len()).map(|k| (c.j[k] as i64, c.shifts[k], c.areas[k], c.solid_angles[k], c.distances[k])).collect();
    v.sort_by_key(|f| (f.0, f.1));
    v
}

/// A near-cubic triclinic cell (edges 3-6 A, off-diagonal terms up to 40 % of the edge) with
/// 1-3 sites at least 0.8 A apart (checked by the caller).
fn random_structure() -> impl Strategy<Value = Structure> {
    (
        prop::array::uniform3(3.0f64..6.0),
        prop::array::uniform6(-0.4f64..0.4),
        prop::collection::vec(prop::array::uniform3(0.0f64..1.0), 1..4),
    )
        .prop_map(|(edges, off, frac)| {
            let lattice: Mat3 = [
                [edges[0], off[0] * edges[0], off[1] * edges[0]],
                [off[2] * edges[1], edges[1], off[3] * edges[1]],
                [off[4] * edges[2], off[5] * edges[2], edges[2]],
            ];
            let n = frac.len();
            Structure::new(lattice, frac, (1..=n as u8).collect(), [true; 3])
        })
}

fn well_separated(s: &Structure) -> bool {
    s.validate(0).is_ok() && neighbor_list_brute_force(s, 0.8).is_empty()
}

fn rotation(angles: [f64; 3]) -> Mat3 {
    let (a, b, c) = (angles[0], angles[1], angles[2]);
    let rz = [[a.cos(), -a.sin(), 0.0], [a.sin(), a.cos(), 0.0], [0.0, 0.0, 1.0]];
    let ry = [[b.cos(), 0.0, b.sin()], [0.0, 1.0, 0.0], [-b.sin(), 0.0, b.cos()]];
    let rx = [[1.0, 0.0, 0.0], [0.0, c.cos(), -c.sin()], [0.0, c.sin(), c.cos()]];
    let mul = |p: Mat3, q: Mat3| -> Mat3 {
        std::array::from_fn(|r| std::array::from_fn(|k| (0..3).map(|t| p[r][t] * q[t][k]).sum()))
    };
    mul(mul(rz, ry), rx)
}

/// Same faces (keys) and values within `tol` relative to the cell's length scale.
fn assert_same_cells(a: &[SiteCell], b: &[SiteCell], scale: f64, what: &str) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        let (kx, ky) = (keyed(x), keyed(y));
        assert_eq!(
            kx.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>(),
            ky.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>(),
            "{what}: faces differ"
        );
        for (f, g) in kx.iter().zip(&ky) {
            assert!((f.2 - g.2).abs() < 1e-9 * scale * scale, "{what}: area {} vs {}", f.2, g.2);
            assert!((f.3 - g.3).abs() < 1e-9, "{what}: solid angle {} vs {}", f.3, g.3);
            assert!((f.4 - g.4).abs() < 1e-9 * scale, "{what}");
        }
        assert!((x.volume - y.volume).abs() < 1e-9 * scale.powi(3), "{what}: volume {} vs {}", x.volume, y.volume);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn matches_vertex_enumeration_oracle(s in random_structure()) {
        prop_assume!(well_separated(&s));
        let cells = voronoi_structure(&s, 0, false).unwrap();
        let scale = (s.volume() / s.n_sites() as f64).cbrt();
        let total: f64 = cells.iter().map(|c| c.volume).sum();
        prop_assert!((total - s.volume()).abs() <= 1e-9 * s.volume());
        for (i, cell) in cells.iter().enumerate() {
            let (faces, volume) = oracle(&s, i);
            // Faces below 1e-8 scale^2 are at the mercy of the tolerances of either method.
            let big = |a: f64| a > 1e-8 * scale * scale;
            let mine: Vec<_> = keyed(cell).into_iter().filter(|f| big(f.2)).collect();
            let theirs: Vec<_> = faces.into_iter().filter(|f| big(f.2)).collect();
            prop_assert_eq!(mine.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>(), theirs.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>());
            for (f, g) in mine.iter().zip(&theirs) {
                prop_assert!((f.2 - g.2).abs() < 1e-6 * scale * scale, "area {} vs {}", f.2, g.2);
                prop_assert!((f.3 - g.3).abs() < 1e-6, "solid angle {} vs {}", f.3, g.3);
            }
            prop_assert!((cell.volume - volume).abs() < 1e-6 * scale.powi(3));
        }
    }

    #[test]
    fn invariant_under_translation_rotation_permutation_and_supercell(
        s in random_structure(),
        t in prop::array::uniform3(-3.0f64..3.0),
        angles in prop::array::uniform3(-3.2f64..3.2),
        seed in 0usize..6,
    ) {
        prop_assume!(well_separated(&s));
        let scale = (s.volume() / s.n_sites() as f64).cbrt();
        let base = voronoi_structure(&s, 0, false).unwrap();

        let mut moved = s.clone();
        for f in &mut moved.frac_coords {
            *f = [f[0] + t[0], f[1] + t[1], f[2] + t[2]];
        }
        assert_same_cells(&base, &voronoi_structure(&moved, 0, false).unwrap(), scale, "translation");

        let r = rotation(angles);
        let mut turned = s.clone();
        for row in &mut turned.lattice {
            *row = std::array::from_fn(|d| (0..3).map(|k| r[d][k] * row[k]).sum());
        }
        assert_same_cells(&base, &voronoi_structure(&turned, 0, false).unwrap(), scale, "rotation");

        // Sites rotated by `seed` places: site i of the new structure is site (i + seed) % n.
        let n = s.n_sites();
        let old = |i: usize| (i + seed) % n;
        let mut permuted = s.clone();
        permuted.frac_coords = (0..n).map(|i| s.frac_coords[old(i)]).collect();
        permuted.numbers = (0..n).map(|i| s.numbers[old(i)]).collect();
        let new_of_old: Vec<u32> = (0..n).map(|o| ((o + n - seed % n) % n) as u32).collect();
        let relabelled: Vec<SiteCell> = (0..n)
            .map(|i| {
                let mut c = base[old(i)].clone();
                c.j = c.j.iter().map(|&j| new_of_old[j as usize]).collect();
                c
            })
            .collect();
        assert_same_cells(&relabelled, &voronoi_structure(&permuted, 0, false).unwrap(), scale, "permutation");

        // A 1 x 2 x 1 supercell: both copies of a site have its cell (faces compared by value).
        let mut big = s.clone();
        big.lattice[1] = [2.0 * s.lattice[1][0], 2.0 * s.lattice[1][1], 2.0 * s.lattice[1][2]];
        big.frac_coords = s.frac_coords.iter().map(|f| [f[0], f[1] / 2.0, f[2]])
            .chain(s.frac_coords.iter().map(|f| [f[0], (f[1] + 1.0) / 2.0, f[2]])).collect();
        big.numbers = s.numbers.iter().chain(&s.numbers).copied().collect();
        let cells = voronoi_structure(&big, 0, false).unwrap();
        for (k, c) in cells.iter().enumerate() {
            let o = &base[k % n];
            prop_assert!((c.volume - o.volume).abs() < 1e-9 * scale.powi(3));
            let values = |x: &SiteCell| {
                let mut v: Vec<(f64, f64, f64)> = (0..x.j.len()).map(|q| (x.distances[q], x.areas[q], x.solid_angles[q])).collect();
                v.sort_by(|p, q| p.0.total_cmp(&q.0).then(p.1.total_cmp(&q.1)));
                v
            };
            let (a, b) = (values(c), values(o));
            prop_assert_eq!(a.len(), b.len());
            for (p, q) in a.iter().zip(&b) {
                prop_assert!((p.0 - q.0).abs() < 1e-9 * scale && (p.1 - q.1).abs() < 1e-9 * scale * scale && (p.2 - q.2).abs() < 1e-9);
            }
        }
    }
}

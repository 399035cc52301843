//! Malformed structure files give errors naming the file and a line, never a panic or a hang.

use matxfer_core::structure::cif::{parse_cif, CifOptions};
use matxfer_core::structure::jsonl::parse_jsonl;
use matxfer_core::structure::poscar::parse_poscar;
use matxfer_core::structure::xyz::parse_xyz;
use matxfer_core::CoreError;
use proptest::prelude::*;

const CIF: &str = "data_x\n_cell_length_a 5.64(1)\n_cell_length_b 5.64\n_cell_length_c 5.64\n_cell_angle_alpha 90\n\
_cell_angle_beta 90\n_cell_angle_gamma 90\nloop_\n_symmetry_equiv_pos_as_xyz\n'x, y, z'\n'-x, y+1/2, -z+1/2'\n\
loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n\
Na1 Na+ 0 0 0\nCl1 Cl- 0.5 0.5 0.5\n";
const POSCAR: &str = "NaCl\n1.0\n5.64 0 0\n0 5.64 0\n0 0 5.64\nNa Cl\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n";
const XYZ: &str = "2\nLattice=\"5.64 0 0 0 5.64 0 0 0 5.64\" Properties=species:S:1:pos:R:3 pbc=\"T T T\"\nNa 0 0 0\nCl 2.82 2.82 2.82\n";
const JSONL: &str = "{\"id\":\"a\",\"lattice\":[[5.64,0,0],[0,5.64,0],[0,0,5.64]],\"species\":[\"Na\",\"Cl\"],\"frac_coords\":[[0,0,0],[0.5,0.5,0.5]]}\n";

fn check(result: Result<usize, CoreError>, file: &str) {
    if let Err(e) = result {
        match &e {
            CoreError::Parse { file: f, .. } => assert_eq!(f, file),
            other => panic!("parse error expected, got {other:?}"),
        }
        assert!(e.to_string().starts_with(&format!("{file}:")), "{e}");
    }
}

fn parse_all(text: &str) {
    check(parse_cif(text, "f.cif", &CifOptions::default()).map(|v| v.len()), "f.cif");
    check(parse_poscar(text, "POSCAR").map(|s| s.n_sites()), "POSCAR");
    check(parse_xyz(text, "f.xyz").map(|v| v.len()), "f.xyz");
    check(parse_jsonl(text, "f.jsonl").map(|v| v.len()), "f.jsonl");
}

#[test]
fn valid_files_parse() {
    assert_eq!(parse_cif(CIF, "f.cif", &CifOptions::default()).unwrap()[0].n_sites(), 4);
    assert_eq!(parse_poscar(POSCAR, "POSCAR").unwrap().n_sites(), 2);
    assert_eq!(parse_xyz(XYZ, "f.xyz").unwrap()[0].n_sites(), 2);
    assert_eq!(parse_jsonl(JSONL, "f.jsonl").unwrap()[0].n_sites(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Truncations, deletions and byte replacements of valid files.
    #[test]
    fn mutated_files_never_panic(which in 0usize..4, cut in 0usize..400, pos in 0usize..400, byte in any::<u8>(), del in 0usize..20) {
        let base = [CIF, POSCAR, XYZ, JSONL][which];
        let mut bytes = base.as_bytes().to_vec();
        let p = pos % bytes.len();
        bytes[p] = byte;
        let d = (p + del).min(bytes.len());
        bytes.drain(p..d);
        bytes.truncate(cut.min(bytes.len()).max(bytes.len() / 3));
        parse_all(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_text_never_panics(text in "[ -~\\n\\r;'\"_]{0,300}") {
        parse_all(&text);
        parse_all(&format!("data_a\n{text}"));
        parse_all(&format!("{POSCAR}{text}"));
    }
}

"""CIF symmetry: operations from symbols, magnetic loops, refusals, and the leniencies.

Every shared CIF is rewritten without its operation loop, keeping only (a) the H-M symbol, (b) the
Hall symbol, (c) the IT number, or (d) a magnetic rendering of its operations; each rewrite must
give the structure of the original file (oracle: pymatgen on the original file, and matxfer on it).
The Hall symbols of the test files come from spglib's database, not from matxfer's tables.
"""

import re
import warnings

import numpy as np
import pytest

from matxfer.structures import StructureBatch, StructureParseError, read_structures

from .conftest import CIFS, STRUCTURES
from .test_structures_parsing import assert_same_structure

pymatgen = pytest.importorskip("pymatgen.core")
spglib = pytest.importorskip("spglib")
from pymatgen.core import Lattice, Structure  # noqa: E402
from pymatgen.core.operations import SymmOp  # noqa: E402
from pymatgen.io.cif import CifParser  # noqa: E402

SYMBOL_TAGS = re.compile(
    r"^\s*_(symmetry_space_group_name_H-M|space_group_name_H-M_alt|symmetry_space_group_name_Hall|"
    r"space_group_name_Hall|symmetry_Int_Tables_number|space_group_IT_number|symmetry_cell_setting|"
    r"space_group_crystal_system)\s.*$",
    re.IGNORECASE,
)


def _pymatgen_structure(path_or_text, text=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parser = CifParser.from_str(path_or_text) if text else CifParser(path_or_text)
        return parser.parse_structures(primitive=False)[0]


def _split_cif(text):
    """(lines without the operation loop and the symbol tags, operation strings)."""
    lines = text.splitlines()
    out, ops, k = [], [], 0
    while k < len(lines):
        line = lines[k]
        if line.strip().lower() == "loop_":
            tags = []
            j = k + 1
            while j < len(lines) and lines[j].strip().startswith("_"):
                tags.append(lines[j].strip().lower())
                j += 1
            if any(t in ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz") for t in tags):
                col = next(i for i, t in enumerate(tags) if t.endswith("xyz"))
                while j < len(lines) and lines[j].strip() and not re.match(r"\s*(_|loop_|data_|;)", lines[j]):
                    fields = re.findall(r"'[^']*'|\"[^\"]*\"|\S+", lines[j])
                    ops.append(fields[col].strip("'\""))
                    j += 1
                k = j
                continue
        if not SYMBOL_TAGS.match(line):
            out.append(line)
        k += 1
    return out, ops


def _with_header(lines, header):
    k = next(i for i, line in enumerate(lines) if line.lower().startswith("data_"))
    return "\n".join(lines[: k + 1] + header + lines[k + 1 :]) + "\n"


def _op_set(op_strings):
    out = set()
    for s in op_strings:
        op = SymmOp.from_xyz_str(s)
        t = np.round(np.mod(op.translation_vector, 1.0) * 24).astype(int) % 24
        out.add((tuple(np.round(op.rotation_matrix).astype(int).ravel()), tuple(t)))
    return out


def _hall_symbol_of(op_strings):
    """The Hall symbol (spglib's database) whose operations are exactly these."""
    target = _op_set(op_strings)
    for hall in range(1, 531):
        d = spglib.get_symmetry_from_database(hall)
        ops = {
            (tuple(r.ravel()), tuple(np.round(np.mod(t, 1.0) * 24).astype(int) % 24))
            for r, t in zip(d["rotations"], d["translations"])
        }
        if ops == target:
            return spglib.get_spacegroup_type(hall).hall_symbol
    raise AssertionError("no Hall setting has these operations")


def _magnetic_loops(op_strings):
    """Operations split into coset representatives and centering translations, with a
    time-reversal field, as in a commensurate magnetic CIF."""
    ops = [SymmOp.from_xyz_str(s) for s in op_strings]
    centering = [o for o in ops if np.allclose(o.rotation_matrix, np.eye(3))]
    reps, seen = [], set()
    for o in ops:
        key = tuple(np.round(o.rotation_matrix).astype(int).ravel())
        if key not in seen:
            seen.add(key)
            reps.append(o)
    rows = ["loop_", "_space_group_symop_magn_operation.id", "_space_group_symop_magn_operation.xyz"]
    rows += [f"{i + 1} {o.as_xyz_str().replace(' ', '')},+1" for i, o in enumerate(reps)]
    rows += ["loop_", "_space_group_symop_magn_centering.id", "_space_group_symop_magn_centering.xyz"]
    rows += [f"{i + 1} {c.as_xyz_str().replace(' ', '')},+1" for i, c in enumerate(centering)]
    return rows


def _symbols(text):
    def tag(name):
        m = re.search(rf"^\s*{name}\s+(.+?)\s*$", text, re.MULTILINE | re.IGNORECASE)
        return m.group(1).strip("'\"") if m else None

    return (
        tag("_symmetry_space_group_name_H-M") or tag("_space_group_name_H-M_alt"),
        tag("_symmetry_Int_Tables_number") or tag("_space_group_IT_number"),
    )


@pytest.mark.parametrize("path", sorted(CIFS.glob("*.cif")), ids=lambda p: p.name)
def test_symbol_only_and_magnetic_renderings_give_the_original_structure(path, tmp_path):
    text = path.read_text()
    lines, ops = _split_cif(text)
    assert len(ops) >= 1
    hm, number = _symbols(text)
    assert hm and number
    hall = _hall_symbol_of(ops)
    variants = {
        "hm": [f"_symmetry_space_group_name_H-M '{hm}'"],
        "hm_alt": [f"_space_group_name_H-M_alt '{hm}'"],
        "hall": [f"_space_group_name_Hall '{hall}'"],
        "number": [f"_space_group_IT_number {number}"],
        "magnetic": _magnetic_loops(ops),
    }
    ref = _pymatgen_structure(path)
    mine_original = read_structures(path)
    assert_same_structure(mine_original, 0, ref)
    for name, header in variants.items():
        variant = tmp_path / f"{path.stem}_{name}.cif"
        variant.write_text(_with_header(lines, header))
        mine = read_structures(variant)
        assert_same_structure(mine, 0, ref)
        np.testing.assert_array_equal(np.sort(mine.numbers), np.sort(mine_original.numbers))
        if name == "number" or (name == "hm" and ":" not in hm):
            # pymatgen builds these from the symbol too: a second oracle. (pymatgen 2026.10 reads
            # the Hall-only files and 'I 41/a m d :1' as P1, a fraction of the cell.)
            assert_same_structure(mine, 0, _pymatgen_structure(variant))


def test_without_symmetry_a_symbol_only_file_was_a_fraction_of_the_cell(tmp_path):
    # The failure this guards against: read as P1, this Fm-3m file is a quarter of its cell.
    lines, _ = _split_cif((CIFS / "cod_1000041.cif").read_text())
    p1 = StructureBatch.from_string(_with_header(lines, []), "cif", name="p1.cif")
    full = StructureBatch.from_string(
        _with_header(lines, ["_space_group_IT_number 225"]), "cif", name="f.cif"
    )
    assert len(full.numbers) == len(_pymatgen_structure(CIFS / "cod_1000041.cif"))
    assert 4 * len(p1.numbers) == len(full.numbers)


def _rows_of_groups(numbers, n):
    """The first `n` structures of a shared dataset whose space group (spglib) is in `numbers`."""
    import json

    rows = []
    with open(STRUCTURES / "mp_phonon_dielectric_matminer.jsonl") as fh:
        for line in fh:
            row = json.loads(line)
            s = Structure(row["lattice"], row["species"], row["frac_coords"])
            cell = (s.lattice.matrix, s.frac_coords, [x.Z for x in s.species])
            ds = spglib.get_symmetry_dataset(cell, symprec=1e-3)
            if ds is not None and ds.number in numbers:
                rows.append((cell, ds.number))
                if len(rows) == n:
                    break
    assert len(rows) == n, f"no structure of space groups {numbers} in the shared phonon set"
    return rows


def _asymmetric_unit(positions, numbers, hall_number):
    d = spglib.get_symmetry_from_database(hall_number)
    reps, covered = [], []
    for f, z in zip(positions, numbers):
        if any(z == cz and np.abs((f - c) - np.round(f - c)).max() < 1e-4 for c, cz in covered):
            continue
        reps.append((f, z))
        for r, t in zip(d["rotations"], d["translations"]):
            covered.append((np.mod(r @ f + t, 1.0), z))
    return reps


@pytest.mark.parametrize("symbol", ["P 1 21/n 1", "P 21/n", "P 1 21/a 1"])
def test_non_standard_monoclinic_setting(symbol, tmp_path):
    hall_number = {"P 1 21/n 1": 82, "P 21/n": 82, "P 1 21/a 1": 83}[symbol]
    for k, (cell, _) in enumerate(_rows_of_groups({14}, 2)):
        ds = spglib.get_symmetry_dataset(cell, symprec=1e-3, hall_number=hall_number)
        assert ds.number == 14
        lat = Lattice(ds.std_lattice)
        body = [
            f"data_mono{k}",
            f"_symmetry_space_group_name_H-M '{symbol}'",
            *(f"_cell_length_{x} {v:.8f}" for x, v in zip("abc", lat.abc)),
            *(f"_cell_angle_{x} {v:.8f}" for x, v in zip(("alpha", "beta", "gamma"), lat.angles)),
            "loop_",
            "_atom_site_label",
            "_atom_site_type_symbol",
            "_atom_site_fract_x",
            "_atom_site_fract_y",
            "_atom_site_fract_z",
        ]
        species = [pymatgen.Element.from_Z(int(z)).symbol for z in ds.std_types]
        for i, (f, z) in enumerate(_asymmetric_unit(ds.std_positions, ds.std_types, hall_number)):
            body.append(
                f"{pymatgen.Element.from_Z(int(z)).symbol}{i} {pymatgen.Element.from_Z(int(z)).symbol} {f[0]:.8f} {f[1]:.8f} {f[2]:.8f}"
            )
        path = tmp_path / f"mono{k}.cif"
        path.write_text("\n".join(body) + "\n")
        ref = Structure(Lattice.from_parameters(*lat.abc, *lat.angles), species, ds.std_positions)
        mine = read_structures(path)
        assert_same_structure(mine, 0, ref)
        assert len(mine.numbers) > len(_asymmetric_unit(ds.std_positions, ds.std_types, hall_number))
        # The same file with its operation loop and the symbol of another setting of P2_1/c: the
        # operations are what the sites were written against, so they are used (as pymatgen does).
        d = spglib.get_symmetry_from_database(hall_number)
        loop = ["loop_", "_symmetry_equiv_pos_as_xyz"]
        loop += [
            "'" + SymmOp.from_rotation_and_translation(r, t).as_xyz_str() + "'"
            for r, t in zip(d["rotations"], d["translations"])
        ]
        other = "\n".join(body).replace(f"'{symbol}'", "'P 1 21/c 1'") + "\n" + "\n".join(loop) + "\n"
        assert_same_structure(StructureBatch.from_string(other, "cif", name="o.cif"), 0, ref)
        # ... and with the symbol of another group (P 2/m: same rotations, no screw or glide) it is refused.
        wrong = other.replace("'P 1 21/c 1'", "'P 1 2/m 1'")
        with pytest.raises(
            StructureParseError, match=r"w\.cif:2: .*names space group 10.*form space group 14"
        ):
            StructureBatch.from_string(wrong, "cif", name="w.cif")


def test_operations_contradicting_the_symbol_are_refused():
    text = (CIFS / "cod_1000050.cif").read_text()
    bad = re.sub(
        r"_symmetry_space_group_name_H-M\s+'P m -3 m'", "_symmetry_space_group_name_H-M 'P 4 m m'", text
    )
    assert bad != text
    with pytest.raises(
        StructureParseError, match=r'bad\.cif:\d+: .*"P 4 m m" names space group 99.*form space group 221'
    ):
        StructureBatch.from_string(bad, "cif", name="bad.cif")


def test_two_symbols_disagreeing_without_operations_are_refused():
    lines, _ = _split_cif((CIFS / "cod_1000050.cif").read_text())
    text = _with_header(lines, ["_space_group_name_H-M_alt 'P m -3 m'", "_space_group_IT_number 225"])
    with pytest.raises(StructureParseError, match="disagree"):
        StructureBatch.from_string(text, "cif", name="t.cif")


def test_origin_choice_from_multiplicities_and_refused_when_open():
    text = (CIFS / "cod_7206075.cif").read_text()  # I 41/a m d, origin choice 1
    lines, _ = _split_cif(text)
    ref = _pymatgen_structure(CIFS / "cod_7206075.cif")
    # No origin choice in the symbol: the atom-site multiplicities (4 and 8) pick origin 1.
    b = StructureBatch.from_string(
        _with_header(lines, ["_symmetry_space_group_name_H-M 'I 41/a m d'"]), "cif", name="t.cif"
    )
    assert_same_structure(b, 0, ref)
    b = StructureBatch.from_string(
        _with_header(
            lines, ["_space_group_name_H-M_alt 'I 41/a m d'", "_space_group.IT_coordinate_system_code 1"]
        ),
        "cif",
        name="t.cif",
    )
    assert_same_structure(b, 0, ref)
    # With origin choice 2 forced, the same sites give another (wrong) structure, so the choice matters.
    b2 = StructureBatch.from_string(
        _with_header(lines, ["_symmetry_space_group_name_H-M 'I 41/a m d :2'"]), "cif", name="t.cif"
    )
    assert len(b2.numbers) != len(ref)
    # Without multiplicities and without a choice, both origins are plausible: refused.
    no_mult = [line for line in lines if "_atom_site_symmetry_multiplicity" not in line]
    no_mult = [re.sub(r"^(Ti1 Ti4\+|O1 O2-) \d+ ", r"\1 ", line) for line in no_mult]
    with pytest.raises(StructureParseError, match="two origin choices"):
        StructureBatch.from_string(
            _with_header(no_mult, ["_symmetry_space_group_name_H-M 'I 41/a m d'"]), "cif", name="t.cif"
        )


def test_rhombohedral_axes_follow_the_cell():
    # The same rhombohedral structure written on hexagonal and on rhombohedral axes, IT number only:
    # the cell decides which operations apply.
    hall_of = {160: (430, 431), 161: (432, 433), 166: (458, 459), 167: (460, 461)}
    [(cell, number)] = _rows_of_groups(set(hall_of), 1)
    n_sites = []
    for hall_number in hall_of[number]:
        ds = spglib.get_symmetry_dataset(cell, symprec=1e-3, hall_number=hall_number)
        lat = Lattice(ds.std_lattice)
        body = ["data_r", f"_space_group_IT_number {number}"]
        body += [f"_cell_length_{x} {v:.8f}" for x, v in zip("abc", lat.abc)]
        body += [f"_cell_angle_{x} {v:.8f}" for x, v in zip(("alpha", "beta", "gamma"), lat.angles)]
        body += [
            "loop_",
            "_atom_site_type_symbol",
            "_atom_site_fract_x",
            "_atom_site_fract_y",
            "_atom_site_fract_z",
        ]
        for f, z in _asymmetric_unit(ds.std_positions, ds.std_types, hall_number):
            body.append(f"{pymatgen.Element.from_Z(int(z)).symbol} {f[0]:.8f} {f[1]:.8f} {f[2]:.8f}")
        species = [pymatgen.Element.from_Z(int(z)).symbol for z in ds.std_types]
        ref = Structure(Lattice.from_parameters(*lat.abc, *lat.angles), species, ds.std_positions)
        mine = StructureBatch.from_string("\n".join(body) + "\n", "cif", name="r.cif")
        assert_same_structure(mine, 0, ref)
        n_sites.append(len(mine.numbers))
    assert n_sites[0] == 3 * n_sites[1]  # hexagonal cell = 3 rhombohedral cells


SUPERSPACE = """data_incommensurate
_cell_length_a 5.0
_cell_length_b 5.0
_cell_length_c 5.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_cell_modulation_dimension 1
_parent_space_group.name_H-M_alt 'P m -3 m'
_space_group_ssg.name "P1(abg)0"
loop_
_space_group_symop_magn_ssg_operation.id
_space_group_symop_magn_ssg_operation.algebraic
1 x1,x2,x3,x4,+1
loop_
_cell_wave_vector.seq_id
_cell_wave_vector.x
_cell_wave_vector.y
_cell_wave_vector.z
1 0.1 0 0
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Fe1 Fe 0 0 0
"""


def test_superspace_and_parent_only_files_are_refused():
    with pytest.raises(StructureParseError, match=r"inc\.mcif:\d+: .*superspace"):
        StructureBatch.from_string(SUPERSPACE, "cif", name="inc.mcif")
    keep = ("data_", "_cell_length", "_cell_angle", "_parent_space_group", "loop_", "_atom_site", "Fe1")
    lines = SUPERSPACE.splitlines()
    start = lines.index("_atom_site_label") - 1
    parent_only = "\n".join(line for line in lines[:start] if line.startswith(keep[:4]))
    parent_only += "\n" + "\n".join(lines[start:]) + "\n"
    with pytest.raises(StructureParseError, match="parent space group"):
        StructureBatch.from_string(parent_only, "cif", name="p.mcif")


def test_magnetic_operation_with_superspace_field_and_missing_time_reversal():
    base = "data_m\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
    atoms = "loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nNi1 0 0 0\n"
    no_tr = base + "loop_\n_space_group_symop_magn_operation.xyz\nx,y,z\n-x,-y,-z\n" + atoms
    with pytest.raises(StructureParseError, match=r"m\.mcif:\d+: .*time-reversal"):
        StructureBatch.from_string(no_tr, "cif", name="m.mcif")
    ok = (
        base
        + "loop_\n_space_group_symop.magn_operation_xyz\nx,y,z,+1\n-x,-y,-z,-1\nloop_\n_space_group_symop.magn_centering_xyz\nx,y,z,+1\nx+1/2,y+1/2,z+1/2,-1\n"
        + atoms
    )
    b = StructureBatch.from_string(ok, "cif", name="m.mcif")
    assert len(b.numbers) == 2
    bns_only = base + "_space_group_magn.name_BNS 'P_I m -3 m'\n" + atoms
    with pytest.raises(StructureParseError, match="magnetic operation loop"):
        StructureBatch.from_string(bns_only, "cif", name="m.mcif")


def test_operation_loop_that_is_not_a_group_is_refused():
    base = "data_g\n_cell_length_a 4\n_cell_length_b 5\n_cell_length_c 6\n_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
    atoms = "loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nNa1 0.1 0.2 0.3\n"
    text = base + "loop_\n_symmetry_equiv_pos_as_xyz\nx,y,z\n-x,y+1/2,-z\n-x,-y,-z\n" + atoms
    with pytest.raises(StructureParseError, match=r"g\.cif:\d+: .*do not form a group"):
        StructureBatch.from_string(text, "cif", name="g.cif")


def test_dot_coordinate_and_multiline_quoted_value():
    path = CIFS / "cod_1000050.cif"
    text = path.read_text()
    ref = _pymatgen_structure(path)
    # "." for a zero coordinate (pymatgen reads it as 0).
    dotted = re.sub(r"(?m)^(\S+\s+\S+\s+\S+\s+\S+\s+)0(\.0+)?(\s)", r"\1.\3", text, count=1)
    # A quoted title split over two lines (not CIF 1.1, but written by some programs).
    dotted = dotted.replace(
        "\n_cell_angle_alpha", "\n_chemical_name_common 'a name\n  over two lines'\n_cell_angle_alpha", 1
    )
    assert dotted != text
    mine = StructureBatch.from_string(dotted, "cif", name="d.cif")
    assert_same_structure(mine, 0, ref)
    assert_same_structure(mine, 0, _pymatgen_structure(dotted, text=True))
    # An unclosed quote does not swallow the tags after it.
    broken = text.replace("\n_cell_angle_alpha", "\n_chemical_name_common 'unclosed\n_cell_angle_alpha", 1)
    with pytest.raises(StructureParseError, match="unterminated quoted value"):
        StructureBatch.from_string(broken, "cif", name="b.cif")


@pytest.mark.parametrize("pbc", ['pbc="T T F"', "pbc=[T, T, F]", 'pbc="True True False"', "pbc=[1,1,0]"])
def test_extxyz_pbc_spellings(pbc):
    text = f'2\nLattice="4 0 0 0 4 0 0 0 20" {pbc} Properties=species:S:1:pos:R:3\nH 0 0 0\nH 0 0 0.74\n'
    b = StructureBatch.from_string(text, "extxyz", name="p.xyz")
    assert b.pbc.tolist() == [[True, True, False]]


@pytest.mark.parametrize("count", [str(2**64 - 1), str(2**64 - 2), "3", str(2**70)])
def test_extxyz_atom_count_larger_than_the_file(count):
    text = f'{count}\nLattice="4 0 0 0 4 0 0 0 4"\nH 0 0 0\nH 0 0 0.74\n'
    with pytest.raises(StructureParseError, match=r"c\.xyz:1: "):
        StructureBatch.from_string(text, "extxyz", name="c.xyz")
    bad_pbc = '2\nLattice="4 0 0 0 4 0 0 0 4" pbc="T T maybe"\nH 0 0 0\nH 0 0 0.74\n'
    with pytest.raises(StructureParseError, match=r"c\.xyz:2: .*pbc"):
        StructureBatch.from_string(bad_pbc, "extxyz", name="c.xyz")


def test_poscar_counts_larger_than_the_file():
    text = "x\n1.0\n4 0 0\n0 4 0\n0 0 4\nH\n18446744073709551615\nDirect\n0 0 0\n"
    with pytest.raises(StructureParseError, match=r"POSCAR:7: "):
        StructureBatch.from_string(text, "poscar", name="POSCAR")
    text = "x\n1.0\n4 0 0\n0 4 0\n0 0 4\nH He\n9223372036854775808 9223372036854775808\nDirect\n0 0 0\n"
    with pytest.raises(StructureParseError, match=r"POSCAR:7: "):
        StructureBatch.from_string(text, "poscar", name="POSCAR")

"""Parsers against pymatgen on the shared real CIFs and on files written from the shared JSONL."""

import gzip
import json

import numpy as np
import pytest

from matxfer.structures import StructureBatch, StructureError, StructureParseError, read_structures

from .conftest import CIFS, STRUCTURES

pymatgen = pytest.importorskip("pymatgen.core")
from pymatgen.core import Structure  # noqa: E402


def _sorted_sites(numbers, frac):
    frac = np.mod(np.asarray(frac, dtype=float), 1.0)
    frac[np.isclose(frac, 1.0, atol=1e-9)] = 0.0
    rows = [(int(z), *np.round(f, 6)) for z, f in zip(numbers, frac)]
    return sorted(rows)


def assert_same_structure(batch, index, ref, atol=1e-5):
    a, b = batch.ptr[index], batch.ptr[index + 1]
    assert b - a == len(ref), "site count"
    np.testing.assert_allclose(batch.lattices[index], ref.lattice.matrix, atol=1e-6)
    mine = _sorted_sites(batch.numbers[a:b], batch.frac_coords[a:b])
    theirs = _sorted_sites([s.specie.Z for s in ref], ref.frac_coords)
    assert [m[0] for m in mine] == [t[0] for t in theirs], "species"
    # Match each site to the nearest reference site of the same species (periodic distance).
    ref_f = np.mod(ref.frac_coords, 1.0)
    ref_z = np.array([s.specie.Z for s in ref])
    for z, f in zip(batch.numbers[a:b], np.mod(batch.frac_coords[a:b], 1.0)):
        d = ref_f[ref_z == z] - f
        d -= np.round(d)
        assert np.abs(d).max(axis=1).min() < atol


def _cif_files():
    return sorted(CIFS.glob("*.cif"))


@pytest.mark.parametrize("path", _cif_files(), ids=lambda p: p.name)
def test_real_cif_matches_pymatgen(path):
    mine = read_structures(path)
    ref = Structure.from_file(path, primitive=False)
    assert len(mine) == 1
    assert_same_structure(mine, 0, ref)


def _jsonl_sample(name, n):
    with open(STRUCTURES / name) as fh:
        rows = [json.loads(line) for line in fh]
    step = max(1, len(rows) // n)
    return rows[::step][:n]


JSONL_FILES = [
    "perov5_valtest_cdvae.jsonl",
    "carbon24_valtest_cdvae.jsonl",
    "mp_bulk_moduli100_megnet.jsonl",
    "mp_piezoelectric_matminer.jsonl",
    "jarvis_dft_2d_matminer.jsonl",
    "mp_phonon_dielectric_matminer.jsonl",
    "jarvis_sample50_alignn.jsonl",
    "cromel_mp_examples.jsonl",
]


@pytest.mark.parametrize("name", JSONL_FILES)
def test_cif_written_by_pymatgen_roundtrips(name, tmp_path):
    from pymatgen.io.cif import CifWriter

    for k, row in enumerate(_jsonl_sample(name, 8)):
        ref = Structure(row["lattice"], row["species"], row["frac_coords"])
        # Symmetrized CIFs exercise symmetry operations and site merging.
        for symprec in (None, 0.01):
            path = tmp_path / f"{k}_{symprec}.cif"
            CifWriter(ref, symprec=symprec).write_file(path)
            mine = read_structures(path)
            theirs = Structure.from_file(path, primitive=False)
            assert_same_structure(mine, 0, theirs)


@pytest.mark.parametrize("name", JSONL_FILES[:4])
def test_poscar_and_extxyz_written_by_pymatgen_and_ase(name, tmp_path):
    from ase.io import write as ase_write
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.io.vasp import Poscar

    for k, row in enumerate(_jsonl_sample(name, 5)):
        ref = Structure(row["lattice"], row["species"], row["frac_coords"])
        path = tmp_path / f"POSCAR_{k}"
        Poscar(ref).write_file(path)
        assert_same_structure(read_structures(path, "poscar"), 0, Poscar.from_file(path).structure)
        xyz = tmp_path / f"{k}.extxyz"
        ase_write(xyz, AseAtomsAdaptor.get_atoms(ref), format="extxyz")
        mine = read_structures(xyz)
        np.testing.assert_allclose(mine.lattices[0], ref.lattice.matrix, atol=1e-6)
        np.testing.assert_allclose(mine.cart_coords(), ref.cart_coords, atol=1e-6)


def test_jsonl_reader_matches_json(shared_structures):
    batch = read_structures(shared_structures / "mp_bulk_moduli100_megnet.jsonl")
    with open(shared_structures / "mp_bulk_moduli100_megnet.jsonl") as fh:
        rows = [json.loads(line) for line in fh]
    assert len(batch) == len(rows)
    for k in (0, 17, 99):
        a, b = batch.ptr[k], batch.ptr[k + 1]
        np.testing.assert_array_equal(batch.frac_coords[a:b], rows[k]["frac_coords"])
        np.testing.assert_array_equal(batch.lattices[k], rows[k]["lattice"])
        assert batch.ids[k] == rows[k]["id"]
    gz = read_structures(shared_structures / "mlearn_elemental_alignn.jsonl.gz")
    with gzip.open(shared_structures / "mlearn_elemental_alignn.jsonl.gz", "rt") as fh:
        assert len(gz) == sum(1 for _ in fh)
    pt = read_structures(shared_structures / "pt_clusters_matdeeplearn.jsonl")
    assert not pt.pbc.any() and len(pt) == 1000


def test_inputs_from_pymatgen_ase_and_arrays_agree(shared_structures):
    from pymatgen.io.ase import AseAtomsAdaptor

    rows = _jsonl_sample("mp_piezoelectric_matminer.jsonl", 4)
    pmg = [Structure(r["lattice"], r["species"], r["frac_coords"]) for r in rows]
    a = StructureBatch.from_structures(pmg)
    b = StructureBatch.from_structures([AseAtomsAdaptor.get_atoms(s) for s in pmg])
    c = StructureBatch.from_structures(rows)
    for other in (b, c):
        np.testing.assert_allclose(a.lattices, other.lattices)
        np.testing.assert_allclose(a.frac_coords, other.frac_coords, atol=1e-12)
        np.testing.assert_array_equal(a.numbers, other.numbers)
    d = StructureBatch.from_arrays(rows[0]["lattice"], pmg[0].cart_coords, [s.specie.Z for s in pmg[0]], cartesian=True)
    np.testing.assert_allclose(d.frac_coords, a.frac_coords[: len(pmg[0])], atol=1e-12)


CIF_HEADER = "data_t\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"


def test_cif_features_uncertainty_crlf_blocks_and_symops():
    text = (
        "# comment\r\ndata_first\r\n_cell_length_a 4.000(2)\r\n_cell_length_b 4.0\r\n_cell_length_c 4.0\r\n"
        "_cell_angle_alpha 90\r\n_cell_angle_beta 90\r\n_cell_angle_gamma 90\r\n_journal_title ?\r\n"
        "loop_\r\n_space_group_symop_operation_xyz\r\n'x, y, z'\r\n'-x+1/2, -y+1/2, z'\r\n"
        "loop_\r\n_atom_site_label\r\n_atom_site_fract_x\r\n_atom_site_fract_y\r\n_atom_site_fract_z\r\n"
        "Na1 0.25 0.25 0.0(1)\r\nCl1 0.0 0.0 0.5\r\n"
        "data_second\r\n" + CIF_HEADER.split("\n", 1)[1].replace("\n", "\r\n")
        + "loop_\r\n_atom_site_type_symbol\r\n_atom_site_label\r\n_atom_site_fract_x\r\n_atom_site_fract_y\r\n_atom_site_fract_z\r\n"
        "Fe3+ X1 0 0 0\r\n"
    )
    b = StructureBatch.from_string(text, "cif", name="t.cif")
    assert len(b) == 2
    # Na at (1/4, 1/4, 0) is a fixed point of the 2-fold: one site; Cl at the origin maps to (1/2, 1/2, 1/2).
    assert sorted(b.numbers[: b.ptr[1]].tolist()) == [11, 17, 17]
    assert b.numbers[b.ptr[1] :].tolist() == [26]


@pytest.mark.parametrize(
    "body, needle",
    [
        ("loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nNa1 0 0\n", "t.cif:"),
        ("loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nNa1 0 ? 0\n", "t.cif:13"),
        ("loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nQq1 0 0 0\n", "unknown species"),
        (
            "loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n_atom_site_occupancy\nNa1 0 0 0 0.5\n",
            "partial occupancy",
        ),
        ("_symmetry_equiv_pos_as_xyz 'x,y,q'\nloop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nNa1 0 0 0\n", "symmetry"),
        ("loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nNa1 'unterminated 0 0\n", "t.cif:13"),
    ],
)
def test_malformed_cif_names_file_and_line(body, needle):
    with pytest.raises(StructureParseError, match=needle):
        StructureBatch.from_string(CIF_HEADER + body, "cif", name="t.cif")


def test_partial_occupancy_majority_policy():
    body = (
        "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
        "_atom_site_occupancy\nA1 Fe 0 0 0 0.6\nA2 Co 0 0 0 0.4\nO1 O 0.5 0.5 0.5 1\n"
    )
    with pytest.raises(StructureParseError, match="disordered"):
        StructureBatch.from_string(CIF_HEADER + body, "cif", name="t.cif")
    b = StructureBatch.from_string(CIF_HEADER + body, "cif", name="t.cif", occupancy_policy="majority")
    assert sorted(b.numbers.tolist()) == [8, 26]


POSCAR = "test\n1.0\n4 0 0\n0 4 0\n0 0 4\nNa Cl\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n"


@pytest.mark.parametrize(
    "text, needle",
    [
        (POSCAR.replace("4 0 0", "4 x 0"), "POSCAR:3"),
        (POSCAR.replace("Na Cl", "Na Xx"), "POSCAR:6"),
        (POSCAR.replace("1 1", "1 1 1"), "POSCAR:7"),
        (POSCAR.replace("Direct", "Fractional"), "POSCAR:8"),
        ("\n".join(POSCAR.split("\n")[:9]), "end of file"),
        (POSCAR.replace("Na Cl\n", ""), "POSCAR:6"),
        ("", "POSCAR:1"),
    ],
)
def test_malformed_poscar_names_file_and_line(text, needle):
    with pytest.raises(StructureParseError, match=needle):
        StructureBatch.from_string(text, "poscar", name="POSCAR")


def test_poscar_cartesian_scale_and_selective_dynamics():
    text = "t\n-64\n1 0 0\n0 1 0\n0 0 1\nNa Cl\n1 1\nSelective dynamics\nCartesian\n0 0 0 T T T\n0.5 0.5 0.5 F F F\n"
    b = StructureBatch.from_string(text, "poscar")
    np.testing.assert_allclose(b.lattices[0], 4 * np.eye(3))
    np.testing.assert_allclose(b.frac_coords, [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_invalid_structures_raise_naming_the_structure():
    from matxfer.structures import neighbor_list

    good = {"lattice": np.eye(3) * 4, "species": ["Na", "Cl"], "frac_coords": [[0, 0, 0], [0.5, 0.5, 0.5]]}
    nan = dict(good, frac_coords=[[0, 0, 0], [np.nan, 0.5, 0.5]])
    flat = dict(good, lattice=[[4, 0, 0], [0, 4, 0], [4, 4, 0]])
    lefty = dict(good, lattice=-np.eye(3) * 4)
    for bad, msg in ((nan, "NaN"), (flat, "volume"), (lefty, "negative")):
        with pytest.raises(StructureError, match=rf"structure 1 .*{msg}|structure 1: .*{msg}"):
            neighbor_list([good, bad], 3.0)
    with pytest.raises(StructureError, match="unknown species"):
        StructureBatch.from_structures([dict(good, species=["Na", "Qq"])])


def test_malformed_python_inputs_raise_matxfer_errors_naming_the_structure():
    """Found by benches/fuzz.py: the dict/array constructors let numpy's ValueError, OverflowError
    and UnicodeEncodeError through, and read the string "FFF" as periodic."""
    import matxfer

    good = {"lattice": np.eye(3) * 4, "species": ["Na", "Cl"], "frac_coords": [[0, 0, 0], [0.5, 0.5, 0.5]]}
    cases = [
        (dict(good, lattice=[[4, 0, 0], [0, 4, 0]]), "lattice is not a 3x3 array of numbers"),
        (dict(good, frac_coords=[[0, 0], [0.5, 0.5]]), "frac_coords is not a Nx3 array of numbers"),
        (dict(good, frac_coords=[[0, 0, "x"], [0.5, 0.5, 0.5]]), "frac_coords is not a Nx3 array of numbers"),
        (dict(good, species=[11, 2**70]), "an atomic number is out of range"),
        (dict(good, species=["Na", True]), "True"),
        (dict(good, pbc="FFF"), "pbc must be a bool or three bools"),
        (dict(good, pbc=(True, False)), "pbc must be a bool or three bools"),
        ({"species": ["Na"], "frac_coords": [[0, 0, 0]]}, "missing lattice"),
        (dict(good, frac_coords=None, cart_coords=[[0, 0, 0], [1, 1, 1]], lattice=np.zeros((3, 3))), "singular"),
    ]
    for bad, needle in cases:
        with pytest.raises(StructureError, match=rf"structure 1: .*{needle}") as info:
            StructureBatch.from_structures([good, bad])
        assert info.value.index == 1 and needle in info.value.reason
    with pytest.raises(matxfer.ArgumentTypeError, match="structure 0: cannot read int"):
        StructureBatch.from_structures([5])
    text = "2\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3\nNa 0 0 0\nCl\ud800 2 2 2\n"
    with pytest.raises(StructureParseError, match="mine.xyz, line 4: invalid unicode") as parse:
        StructureBatch.from_string(text, "xyz", name="mine.xyz")
    assert (parse.value.file, parse.value.line) == ("mine.xyz", 4)
    # the good structure still reads, with the periodicity it was given
    assert StructureBatch.from_structures([dict(good, pbc=(1, 0, 1))]).pbc.tolist() == [[True, False, True]]
    with pytest.raises(matxfer.InvalidArgumentError, match="StructureBatch: lattices cannot be read as float64 of shape"):
        StructureBatch(np.zeros(4), np.zeros((1, 3)), [11], [True] * 3, [0, 1])
    with pytest.raises(matxfer.InvalidArgumentError, match="StructureBatch: ptr does not match the number of sites"):
        StructureBatch(np.eye(3) * 4, np.zeros((1, 3)), [11], [True] * 3, [0, 2])

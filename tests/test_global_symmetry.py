"""GlobalSymmetryFeatures through moyo: parity with matminer (spglib through pymatgen's
SpacegroupAnalyzer, symprec 0.01, angle tolerance 5 degrees) on a fixed subset of the shared
structures (the first 25 of every shared JSON-lines set and every shared CIF). The whole sets with
timings are ``benches/global_symmetry.py``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import matxfer
from matxfer.structures import GLOBAL_SYMMETRY_FEATURES, global_symmetry_features, read_structures
from tests.conftest import CIFS, STRUCTURES

N_PER_SET = 25

#: Structures where moyo and spglib disagree at symprec 0.01: (moyo row, matminer row). Six are
#: AIRSS carbon polymorphs relaxed at 10 GPa, two are JARVIS 2D layers; their distortions from a
#: higher symmetry sit at the tolerance. The test checks that each one flips to the other tool's
#: answer when the length tolerance moves by at most a factor 2, or when spglib uses the same
#: (default) angle tolerance as moyo here instead of pymatgen's 5 degrees: the difference is the
#: tools' tolerance handling, not a wrong group.
PINNED = {
    ("carbon24_valtest_cdvae.jsonl", 2): ([2, "triclinic", 7, True, 2], [1, "triclinic", 7, False, 1]),
    ("carbon24_valtest_cdvae.jsonl", 3): ([2, "triclinic", 7, True, 2], [1, "triclinic", 7, False, 1]),
    ("carbon24_valtest_cdvae.jsonl", 11): ([2, "triclinic", 7, True, 2], [12, "monoclinic", 6, True, 4]),
    ("carbon24_valtest_cdvae.jsonl", 15): ([2, "triclinic", 7, True, 8], [11, "monoclinic", 6, True, 8]),
    ("carbon24_valtest_cdvae.jsonl", 17): ([12, "monoclinic", 6, True, 4], [5, "monoclinic", 6, False, 2]),
    ("carbon24_valtest_cdvae.jsonl", 21): ([1, "triclinic", 7, False, 1], [5, "monoclinic", 6, False, 2]),
    ("jarvis_dft_2d_matminer.jsonl", 10): ([3, "monoclinic", 6, False, 2], [25, "orthorhombic", 5, False, 4]),
    ("jarvis_dft_2d_matminer.jsonl", 24): ([12, "monoclinic", 6, True, 8], [14, "monoclinic", 6, True, 4]),
}


def _subset():
    files = sorted(STRUCTURES.glob("*.jsonl*")) + sorted(CIFS.glob("*.cif"))
    assert len(files) >= 15, "the shared structures are missing"
    for path in files:
        batch = read_structures(path)
        yield path.name, batch.select(range(min(len(batch), N_PER_SET)))


def _rows(features: dict, i: int) -> list:
    return [
        int(features["spacegroup_num"][i]),
        str(features["crystal_system"][i]),
        int(features["crystal_system_int"][i]),
        bool(features["is_centrosymmetric"][i]),
        int(features["n_symmetry_ops"][i]),
    ]


def test_parity_with_matminer_and_pinned_differences():
    pytest.importorskip("matminer")
    from matminer.featurizers.structure import GlobalSymmetryFeatures
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    reference = GlobalSymmetryFeatures()
    assert list(GLOBAL_SYMMETRY_FEATURES) == reference.feature_labels()
    differences, n = {}, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, batch in _subset():
            ours = global_symmetry_features(batch)
            assert list(ours) == reference.feature_labels()
            for i in range(len(batch)):
                n += 1
                theirs = reference.featurize(batch.to_pymatgen(i))
                mine = _rows(ours, i)
                if mine != theirs:
                    differences[(name, i)] = (mine, theirs)
                    # Explained: at a tolerance within a factor 2 of 0.01, one tool gives the
                    # other's space group.
                    structure = batch.to_pymatgen(i)
                    flips = [
                        s
                        for s in (0.005, 0.0075, 0.0125, 0.015, 0.02)
                        if SpacegroupAnalyzer(structure, symprec=s).get_space_group_number() == mine[0]
                        or int(global_symmetry_features(batch.select([i]), symprec=s)["spacegroup_num"][0]) == theirs[0]
                    ]
                    same_angle = SpacegroupAnalyzer(structure, symprec=0.01, angle_tolerance=-1)
                    if same_angle.get_space_group_number() == mine[0]:
                        flips.append("angle")
                    assert flips, (name, i, mine, theirs)
    assert n > 200
    assert differences == PINNED


def test_known_groups_and_centring():
    # BaTiO3 (mp-2998, cubic Pm-3m) and LiFePO4 (olivine, Pnma) from the shared CIFs.
    batch = read_structures(CIFS / "BaTiO3_mp-2998_computed.cif")
    f = global_symmetry_features(batch)
    assert _rows(f, 0) == [221, "cubic", 1, True, 48]
    f = global_symmetry_features(read_structures(CIFS / "LiFePO4_mp-19017_computed.cif"))
    assert _rows(f, 0) == [62, "orthorhombic", 5, True, 8]
    # Supercells: operations of the cell as given, as spglib counts them (a 2x1x1 cell keeps the
    # 16 rotations its tetragonal lattice allows, times 2 translations; 2x2x2: 48 x 8).
    cells = []
    for scale in ([2, 1, 1], [2, 2, 2]):
        s = batch.to_pymatgen(0)
        s.make_supercell(scale)
        cells.append(s)
    g = global_symmetry_features(cells)
    assert g["spacegroup_num"].tolist() == [221, 221] and g["n_symmetry_ops"].tolist() == [32, 384]


def test_thread_count_and_errors():
    batch = read_structures(STRUCTURES / "mp_piezoelectric_matminer.jsonl")
    one = global_symmetry_features(batch, n_threads=1)
    two = global_symmetry_features(batch, n_threads=2)
    for k in one:
        assert np.array_equal(one[k], two[k])
    assert not one["is_centrosymmetric"].all()  # piezoelectrics: mostly non-centrosymmetric
    with pytest.raises(matxfer.InvalidArgumentError):
        global_symmetry_features(batch, symprec=0.0)
    with pytest.raises(matxfer.InvalidArgumentError):
        global_symmetry_features(batch, symprec=float("nan"))
    # moyo 0.22 with pymatgen's explicit 5-degree angle tolerance never returns on this one;
    # with its default angle tolerance it agrees with spglib (P1).
    carbon = read_structures(STRUCTURES / "carbon24_valtest_cdvae.jsonl").select([51])
    assert int(global_symmetry_features(carbon)["spacegroup_num"][0]) == 1
    lattice = (np.eye(3) * 4.0).tolist()
    bad = matxfer.structures.StructureBatch.from_structures(
        [
            {"lattice": lattice, "frac_coords": [[0, 0, 0]], "species": ["Na"]},
            {"lattice": lattice, "frac_coords": [[0, 0, 0], [0.5, 0.5, 0.5]], "species": ["Na", "Na"]},
        ]
    )
    bad.frac_coords[2] = 0.0  # two atoms on one site: no symmetry search can work
    with pytest.raises(matxfer.StructureError, match="structure 1"):
        global_symmetry_features(bad)

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


def feature_row(features: dict, i: int) -> list:
    """Row ``i`` of :func:`global_symmetry_features` as matminer's ``featurize`` list."""
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
                mine = feature_row(ours, i)
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


#: Every row of the first 600 5-atom perovskites where moyo and spglib disagree at symprec 0.01:
#: (moyo row, matminer row). The structures are cubic perovskites with every atom shifted along
#: one axis by up to ~0.015 A, so the question is whether inversion (and the mirrors) hold within
#: 0.01 A. The tools measure that differently: for each candidate rotation moyo takes the
#: translation that is the mean over all atoms (least squares) and requires every atom's image to
#: lie within symprec of its partner; spglib takes the translation that maps one atom of the rarest
#: species exactly onto a partner and requires the same of all the others. Anchoring on one atom
#: can cost up to a factor 2, so on 13 rows moyo keeps the centrosymmetric group that spglib only
#: finds from symprec 0.015-0.02. On row 300 (CuRuNO2) the anchor (Cu) happens to fit better than
#: the mean: spglib keeps P4/mmm, moyo's inversion misses by ~2 %, its operations at 0.01 do not form
#: a group and moyo retries at 0.005 (it reports the symprec it used; matxfer does not), giving
#: Pmm2; moyo finds P4/mmm from 0.02. No row depends on how matxfer hands the cell to moyo: moyo's
#: Python package (moyopy 0.21) gives matxfer's group on every row at every symprec tried.
PEROV5_PINNED = {
    36: ([221, "cubic", 1, True, 48], [99, "tetragonal", 4, False, 8]),  # HfHgO3
    182: ([221, "cubic", 1, True, 48], [99, "tetragonal", 4, False, 8]),  # CaHgO3
    196: ([123, "tetragonal", 4, True, 16], [99, "tetragonal", 4, False, 8]),  # KInN2O
    300: ([25, "orthorhombic", 5, False, 4], [123, "tetragonal", 4, True, 16]),  # CuRuNO2
    315: ([221, "cubic", 1, True, 48], [99, "tetragonal", 4, False, 8]),  # LaVO3
    318: ([123, "tetragonal", 4, True, 16], [99, "tetragonal", 4, False, 8]),  # TlReN2O
    322: ([47, "orthorhombic", 5, True, 8], [25, "orthorhombic", 5, False, 4]),  # BeCrNOF
    426: ([123, "tetragonal", 4, True, 16], [99, "tetragonal", 4, False, 8]),  # RbWN2O
    448: ([123, "tetragonal", 4, True, 16], [25, "orthorhombic", 5, False, 4]),  # ZnCdNO2
    466: ([123, "tetragonal", 4, True, 16], [99, "tetragonal", 4, False, 8]),  # ZrRuN2O
    477: ([221, "cubic", 1, True, 48], [99, "tetragonal", 4, False, 8]),  # LaInN3
    503: ([221, "cubic", 1, True, 48], [99, "tetragonal", 4, False, 8]),  # TlVO3
    574: ([221, "cubic", 1, True, 48], [99, "tetragonal", 4, False, 8]),  # SrNiN3
    577: ([123, "tetragonal", 4, True, 16], [99, "tetragonal", 4, False, 8]),  # NaSnN2O
}

#: mlearn rows (first 600) where the tools disagree: 108-atom fcc Cu supercells sheared so that one
#: cell angle is 84.3-95.7 degrees. pymatgen asks spglib for a 5-degree angle tolerance, which
#: still admits the body-centred orthorhombic lattice (Immm, 864 operations); matxfer leaves moyo
#: at its default angle check (lattice-vector mismatch measured against symprec, as spglib does with
#: angle_tolerance=-1), which keeps the shear (C2/m, 432 operations). spglib itself with
#: angle_tolerance=-1 gives matxfer's answer on every one of them, and moyopy with 5 degrees gives
#: matminer's. matxfer does not pass 5 degrees because moyo 0.22 then never returns on one
#: carbon_24 structure (see test_thread_count_and_errors).
MLEARN_SHEARED_CU = [155, 171, 192, 195, 203, 216, 223, 234, 238, 253, 257, 292, 323]


def test_perov5_differences_are_translation_fitting():
    pytest.importorskip("matminer")
    import spglib
    from matminer.featurizers.structure import GlobalSymmetryFeatures

    reference = GlobalSymmetryFeatures()
    batch = read_structures(STRUCTURES / "perov5_valtest_cdvae.jsonl").select(range(600))
    ours = global_symmetry_features(batch)
    differences = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(len(batch)):
            theirs = reference.featurize(batch.to_pymatgen(i))
            if feature_row(ours, i) != theirs:
                differences[i] = (feature_row(ours, i), theirs)
    assert differences == PEROV5_PINNED
    looser = global_symmetry_features(batch.select(list(PEROV5_PINNED)), symprec=0.02)
    for k, (i, (mine, theirs)) in enumerate(PEROV5_PINNED.items()):
        s = batch.to_pymatgen(i)
        cell = (s.lattice.matrix, s.frac_coords, [site.specie.Z for site in s])
        spglib_02 = spglib.get_symmetry_dataset(cell, symprec=0.02, angle_tolerance=5.0).number
        if i == 300:
            # moyo's own fit reaches spglib's group at twice the tolerance.
            assert int(looser["spacegroup_num"][k]) == theirs[0]
        else:
            # spglib's one-atom anchor reaches moyo's group at twice the tolerance.
            assert spglib_02 == mine[0], (i, spglib_02)


def test_mlearn_differences_are_the_angle_tolerance():
    pytest.importorskip("matminer")
    import spglib
    from matminer.featurizers.structure import GlobalSymmetryFeatures

    reference = GlobalSymmetryFeatures()
    batch = read_structures(STRUCTURES / "mlearn_elemental_alignn.jsonl.gz").select(MLEARN_SHEARED_CU)
    ours = global_symmetry_features(batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(len(batch)):
            s = batch.to_pymatgen(k)
            assert feature_row(ours, k) == [12, "monoclinic", 6, True, 432]
            assert reference.featurize(s) == [71, "orthorhombic", 5, True, 864]
            cell = (s.lattice.matrix, s.frac_coords, [site.specie.Z for site in s])
            assert spglib.get_symmetry_dataset(cell, symprec=0.01, angle_tolerance=-1.0).number == 12
    # Row 904 (past the bench's first 600): bcc Mo 3x3x3 with one vacancy, relaxed. moyo finds R3m
    # (160) at 0.01: under its 6 operations every atom's image lies within 0.0099 A of a partner
    # (checked separately with moyopy's operations), just inside the tolerance; spglib finds P1 at
    # 0.01 and Cm at 0.02. At half the tolerance moyo gives P1 as well.
    vacancy = read_structures(STRUCTURES / "mlearn_elemental_alignn.jsonl.gz").select([904])
    assert feature_row(global_symmetry_features(vacancy), 0) == [160, "trigonal", 3, False, 6]
    assert int(global_symmetry_features(vacancy, symprec=0.005)["spacegroup_num"][0]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert reference.featurize(vacancy.to_pymatgen(0)) == [1, "triclinic", 7, False, 1]


def test_known_groups_and_centring():
    # BaTiO3 (mp-2998, cubic Pm-3m) and LiFePO4 (olivine, Pnma) from the shared CIFs.
    batch = read_structures(CIFS / "BaTiO3_mp-2998_computed.cif")
    f = global_symmetry_features(batch)
    assert feature_row(f, 0) == [221, "cubic", 1, True, 48]
    f = global_symmetry_features(read_structures(CIFS / "LiFePO4_mp-19017_computed.cif"))
    assert feature_row(f, 0) == [62, "orthorhombic", 5, True, 8]
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

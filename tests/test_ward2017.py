"""The ward2017 structure preset (Ward et al. 2017 structure features plus GlobalSymmetryFeatures)
against matminer 0.10.1 on a fixed subset of the shared structure sets; invariances, thread
count, bad structures."""

import warnings

import numpy as np
import pytest

from matxfer.exceptions import InvalidArgumentError, StructureError
from matxfer.structures import (
    StructureBatch,
    featurize_structures,
    read_structures,
    structure_feature_names,
    ward_coordination_features,
)

from .conftest import STRUCTURES

# matminer takes 1-8 s per structure for these featurizers (ChemicalOrdering's third shell
# dominates), so the suite compares a few small structures of each set; benches/ward2017.py
# compares more.
SUBSET = {
    "perov5_valtest_cdvae.jsonl": [0, 2400],  # 5-atom perovskites
    "mp_piezoelectric_matminer.jsonl": [0, 60],
    "mp_phonon_dielectric_matminer.jsonl": [0],
    "carbon24_valtest_cdvae.jsonl": [0],  # one element: ChemicalOrdering is 0
}


def _matminer_featurizers():
    from matminer.featurizers.structure import (
        ChemicalOrdering,
        GlobalSymmetryFeatures,
        MaximumPackingEfficiency,
        SiteStatsFingerprint,
        StructuralHeterogeneity,
    )

    return [
        SiteStatsFingerprint.from_preset("CoordinationNumber_ward-prb-2017"),
        SiteStatsFingerprint.from_preset("LocalPropertyDifference_ward-prb-2017"),
        StructuralHeterogeneity(),
        ChemicalOrdering(),
        MaximumPackingEfficiency(),
        GlobalSymmetryFeatures(),
    ]


def _matminer_rows(batch):
    """matminer's features of every structure, the string column crystal_system left out."""
    featurizers = _matminer_featurizers()
    labels = [name for f in featurizers for name in f.feature_labels()]
    drop = labels.index("crystal_system")
    rows = []
    for k in range(len(batch)):
        s = batch.to_pymatgen(k)
        with warnings.catch_warnings():
            # pymatgen warns that He has no Pauling electronegativity (matminer uses Magpie's)
            warnings.simplefilter("ignore", UserWarning)
            row = [value for f in featurizers for value in f.featurize(s)]
        del row[drop]
        rows.append(np.array(row, dtype=float))
    return np.array(rows)


def test_names_are_matminers_in_its_order():
    pytest.importorskip("matminer")
    labels = [name for f in _matminer_featurizers() for name in f.feature_labels()]
    labels.remove("crystal_system")
    assert structure_feature_names("ward2017") == labels
    assert len(labels) == 132


@pytest.mark.parametrize("name", sorted(SUBSET))
def test_matches_matminer(name):
    pytest.importorskip("matminer")
    batch = read_structures(STRUCTURES / name).select(SUBSET[name])
    mine = featurize_structures(batch, "ward2017")
    theirs = _matminer_rows(batch)
    # atol: statistics that are exactly 0 in one tool (range / deviation over equivalent sites)
    # are rounding-size (1e-13) in the other.
    np.testing.assert_allclose(mine.values, theirs, rtol=1e-6, atol=1e-9)
    assert np.abs(mine.values).max() > 0


def test_vacuum_layers_differ_from_matminer_only_by_its_13_angstrom_voronoi_cutoff(monkeypatch):
    """matminer's featurizers build pymatgen's VoronoiNN with its default cutoff, 13 A. Across the
    vacuum of a 2D layer a Voronoi cell reaches farther: pymatgen then refuses the structure
    ("pathological, infinite vertex") or, when qhull closes the cell, truncates it. matxfer's cells
    are complete; with the cutoff raised to 40 A matminer gives the same features."""
    pytest.importorskip("matminer")
    from pymatgen.analysis.local_env import VoronoiNN

    batch = read_structures(STRUCTURES / "jarvis_dft_2d_matminer.jsonl").select([4])  # 3 atoms, c = 27 A
    mine = featurize_structures(batch).values
    with pytest.raises(RuntimeError, match="pathological"):
        _matminer_rows(batch)
    defaults = list(VoronoiNN.__init__.__defaults__)
    assert defaults[2] == 13.0  # tol, targets, cutoff, ...
    defaults[2] = 40.0
    monkeypatch.setattr(VoronoiNN.__init__, "__defaults__", tuple(defaults))
    np.testing.assert_allclose(mine, _matminer_rows(batch), rtol=1e-6, atol=1e-9)


def test_missing_element_data_is_imputed_as_matminer_does():
    """He lacks MeltingT and Electronegativity, Rn Electronegativity and SpaceGroupNumber in the
    Magpie tables: matminer (MagpieData(impute_nan=True)) uses the mean over the elements."""
    pytest.importorskip("matminer")
    base = read_structures(STRUCTURES / "perov5_valtest_cdvae.jsonl").select([0])
    numbers = base.numbers.copy()
    numbers[0], numbers[-1] = 2, 86
    batch = StructureBatch(base.lattices, base.frac_coords, numbers, base.pbc, base.ptr, ["He/Rn perovskite"])
    mine = featurize_structures(batch).values
    # The Voronoi features only: with He and Rn on the A and X sites this distorted perovskite is
    # one of the structures where moyo and spglib disagree at symprec 0.01 (moyo P4/mmm, spglib P4mm: the
    # translation-anchor difference of docs/structures.md); the symmetry columns are compared above.
    np.testing.assert_allclose(mine[:, :128], _matminer_rows(batch)[:, :128], rtol=1e-6, atol=1e-9)


def test_coordination_part_equals_ward_coordination_features():
    batch = read_structures(STRUCTURES / "mp_bulk_moduli100_megnet.jsonl")
    np.testing.assert_allclose(featurize_structures(batch).values[:, :5], ward_coordination_features(batch), rtol=1e-12, atol=1e-12)


def test_same_bits_for_any_thread_count():
    batch = read_structures(STRUCTURES / "mp_piezoelectric_matminer.jsonl").select(range(0, 941, 8))
    one = featurize_structures(batch, n_threads=1).values
    two = featurize_structures(batch, n_threads=2).values
    assert one.tobytes() == two.tobytes()


def _supercell(batch, k, reps):
    lattice = batch.lattices[k] * np.array(reps)[:, None]
    frac = batch.frac_coords[batch.ptr[k] : batch.ptr[k + 1]]
    z = batch.numbers[batch.ptr[k] : batch.ptr[k + 1]]
    shifts = np.array([(a, b, c) for a in range(reps[0]) for b in range(reps[1]) for c in range(reps[2])])
    coords = ((frac[None, :, :] + shifts[:, None, :]) / np.array(reps)).reshape(-1, 3)
    return StructureBatch.from_arrays(lattice, coords, np.tile(z, len(shifts)))


def test_supercell_and_permutation_invariance():
    batch = read_structures(STRUCTURES / "mp_phonon_dielectric_matminer.jsonl").select([3, 40])
    reference = featurize_structures(batch).values
    sym = slice(-4, None)
    for k in range(len(batch)):
        big = featurize_structures(_supercell(batch, k, (2, 1, 2))).values[0]
        # Everything but the count of symmetry operations of the cell as given is unchanged.
        np.testing.assert_allclose(big[:-1], reference[k, :-1], rtol=1e-9, atol=1e-9)
        a, b = batch.ptr[k], batch.ptr[k + 1]
        order = np.random.default_rng(k).permutation(b - a)
        permuted = StructureBatch.from_arrays(batch.lattices[k], batch.frac_coords[a:b][order], batch.numbers[a:b][order])
        np.testing.assert_allclose(featurize_structures(permuted).values[0], reference[k], rtol=1e-9, atol=1e-9)
        assert featurize_structures(permuted).values[0, sym].tolist() == reference[k, sym].tolist()


def test_bad_structures_are_named():
    good = read_structures(STRUCTURES / "perov5_valtest_cdvae.jsonl").select([0, 1])
    slab = StructureBatch(
        good.lattices,
        good.frac_coords,
        good.numbers,
        np.array([[True, True, True], [True, True, False]]),
        good.ptr,
        ["ok", "slab-1"],
    )
    with pytest.raises(StructureError, match=r"structure 1 \(slab-1\).*periodic") as info:
        featurize_structures(slab)
    assert info.value.index == 1
    result = featurize_structures(slab, errors="nan")
    assert [r.index for r in result.rejected] == [1] and result.rejected[0].input == "slab-1"
    assert "periodic" in result.rejected[0].reason
    assert np.isnan(result.values[1]).all()
    np.testing.assert_array_equal(result.values[0], featurize_structures(good.select([0])).values[0])
    with pytest.raises(InvalidArgumentError, match="unknown structure preset"):
        featurize_structures(good, "ward2016")
    with pytest.raises(InvalidArgumentError, match="symprec"):
        featurize_structures(good, symprec=-1.0)


def test_cli_featurizes_structures_with_the_preset(tmp_path):
    import csv
    import json

    import polars as pl

    from .test_cli import run

    lines = (STRUCTURES / "perov5_valtest_cdvae.jsonl").read_text().splitlines(keepends=True)[:12]
    record = json.loads(lines[4])
    record["pbc"] = [True, True, False]
    lines[4] = json.dumps(record) + "\n"
    path = tmp_path / "s.jsonl"
    path.write_text("".join(lines))
    out = tmp_path / "s.parquet"
    done = run("featurize", str(path), "--out", str(out), "--preset", "ward2017", "--chunk-size", "5")
    assert done.returncode == 0, done.stderr
    table = pl.read_parquet(out)
    names = structure_feature_names()
    assert table.columns == ["id", "formula", *names] and table.height == 12
    good = [i for i in range(12) if i != 4]
    expected = featurize_structures(read_structures(STRUCTURES / "perov5_valtest_cdvae.jsonl").select(good)).values
    np.testing.assert_array_equal(table[good].select(names).to_numpy(), expected)
    assert table[4, names[0]] is None
    with open(f"{out}.errors.csv") as fh:
        report = list(csv.DictReader(fh))
    assert [int(r["row"]) for r in report] == [4] and "periodic" in report[0]["reason"]

"""CrystalNN and BondFractions against pymatgen's CrystalNN and matminer's BondFractions on a
fixed subset of the shared structures (the whole sets run in benches/crystalnn.py)."""

import warnings

import numpy as np
import pytest

from matxfer.exceptions import InvalidArgumentError, StructureError
from matxfer.local_env import BondFractions, crystal_nn, crystal_nn_fingerprint, site_stats_crystal_nn_ops
from matxfer.structures import StructureBatch, read_structures

from .conftest import STRUCTURES

# (file, structure indices): cubic perovskites, MP piezoelectric and phonon/dielectric crystals
# (oxides, halides, intermetallics), AIRSS carbon polymorphs, mlearn elemental bulk/surface/AIMD
# configurations. pymatgen takes about 0.05 s per site.
SUBSET = [
    ("perov5_valtest_cdvae.jsonl", [0, 1234, 5000]),
    ("mp_piezoelectric_matminer.jsonl", [0, 17, 300, 500, 811]),
    ("mp_phonon_dielectric_matminer.jsonl", [3, 250, 900]),
    ("carbon24_valtest_cdvae.jsonl", [0, 3000]),
    ("mlearn_elemental_alignn.jsonl.gz", [0, 400, 900, 1500]),
]
MAX_SITES = 4


def _concat(parts) -> StructureBatch:
    ptr = np.concatenate([[0], np.cumsum([int(n) for p in parts for n in p.n_sites])])
    return StructureBatch(
        np.concatenate([p.lattices for p in parts]),
        np.concatenate([p.frac_coords for p in parts]),
        np.concatenate([p.numbers for p in parts]),
        np.concatenate([p.pbc for p in parts]),
        ptr,
        [i for p in parts for i in p.ids],
    )


def _batch() -> StructureBatch:
    return _concat([read_structures(STRUCTURES / name).select(rows) for name, rows in SUBSET])


@pytest.fixture(scope="module")
def batch():
    return _batch()


def _sites(batch, s):
    n = int(batch.n_sites[s])
    return list(range(0, n, max(1, n // MAX_SITES)))[:MAX_SITES]


def _pymatgen_nn_data(structure, n):
    from pymatgen.analysis.local_env import CrystalNN

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = CrystalNN().get_nn_data(structure, n)
    sets = {
        cn: {(int(e["site_index"]), tuple(int(x) for x in e["image"])) for e in info}
        for cn, info in data.cn_nninfo.items()
    }
    return data.cn_weights, sets


def test_matches_pymatgen_crystalnn(batch):
    pytest.importorskip("pymatgen.analysis.local_env")
    r = crystal_nn(batch)
    compared = 0
    for s in range(len(batch)):
        pmg = batch.to_pymatgen(s)
        for n in _sites(batch, s):
            t = int(batch.ptr[s]) + n
            weights, sets = _pymatgen_nn_data(pmg, n)
            mine = r.cn_weights(t)
            assert list(mine) == list(weights), (batch.ids[s], n, mine, weights)
            for cn, p in weights.items():
                assert mine[cn] == pytest.approx(p, abs=1e-9), (batch.ids[s], n, cn)
                j, shifts, _ = r.neighbors(t, cn)
                assert {(int(a), tuple(int(x) for x in b)) for a, b in zip(j, shifts)} == sets[cn], (
                    batch.ids[s],
                    n,
                    cn,
                )
            assert int(r.cn[t]) == max(weights, key=lambda k: weights[k])
            compared += 1
    assert compared >= 50


def test_independent_of_threads_and_site_order(batch):
    one = crystal_nn(batch, n_threads=1)
    two = crystal_nn(batch, n_threads=2)
    for name in ("cn", "nbr_ptr", "j", "shifts", "weights", "distances", "cnw_ptr", "cn_values", "cn_probs"):
        assert np.array_equal(getattr(one, name), getattr(two, name)), name
    # A structure alone gives the same as within the batch.
    s = 7
    alone = crystal_nn(batch.select([s]))
    a, b = int(batch.ptr[s]), int(batch.ptr[s + 1])
    assert np.array_equal(alone.cn, one.cn[a:b])
    assert np.array_equal(alone.cn_probs, one.cn_probs[one.cnw_ptr[a] : one.cnw_ptr[b]])


def test_options_and_bad_input_are_refused_by_name(batch):
    slab = read_structures(STRUCTURES / "pt_clusters_matdeeplearn.jsonl").select([0])
    with pytest.raises(StructureError, match=r"structure 3 .*periodic"):
        crystal_nn(_concat([batch.select([0, 1, 2]), slab]))
    with pytest.raises(InvalidArgumentError, match="search_cutoff"):
        crystal_nn(batch.select([0]), search_cutoff=-1.0)
    with pytest.raises(InvalidArgumentError, match="distance_cutoffs"):
        crystal_nn(batch.select([0]), distance_cutoffs=(1.0, 0.5))
    with pytest.raises(InvalidArgumentError, match="no coordination number 99"):
        crystal_nn(batch.select([0])).neighbors(0, 99)


def test_non_default_options_match_pymatgen(batch):
    from pymatgen.analysis.local_env import CrystalNN

    sub = batch.select([4, 10])
    r = crystal_nn(sub, distance_cutoffs=None, x_diff_weight=0.0, porous_adjustment=False)
    for s in range(len(sub)):
        pmg = sub.to_pymatgen(s)
        for n in _sites(sub, s)[:3]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = CrystalNN(distance_cutoffs=None, x_diff_weight=0, porous_adjustment=False).get_nn_data(
                    pmg, n
                )
            mine = r.cn_weights(int(sub.ptr[s]) + n)
            assert list(mine) == list(ref.cn_weights)
            assert np.allclose(list(mine.values()), list(ref.cn_weights.values()), rtol=0, atol=1e-9)


@pytest.mark.parametrize("nn", ["CrystalNN", "VoronoiNN"])
def test_bond_fractions_match_matminer(batch, nn):
    pytest.importorskip("matminer")
    from matminer.featurizers.structure.bonding import BondFractions as MatminerBondFractions

    # VoronoiNN: not the zincblende-type AgI, CuCl and BAs (rows 3, 4, 8), where qhull lists the
    # third neighbors, whose planes touch the cell at its vertices, with faces of rounding size and
    # matminer counts them as bonds (docs/local_env.md). matminer takes 0.1-0.3 s per site: the
    # structures of up to 8 sites.
    rows = [0, 5, 9, 15] if nn == "VoronoiNN" else [0, 3, 5, 15]
    sub = batch.select(rows)
    structures = [sub.to_pymatgen(s) for s in range(len(sub))]
    theirs = MatminerBondFractions.from_preset(nn).fit(structures)
    mine = BondFractions(nn).fit(sub)
    assert mine.feature_labels() == theirs.feature_labels()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = np.array([theirs.featurize(x) for x in structures])
    assert np.allclose(mine.featurize(sub), expected, rtol=1e-12, atol=0)
    # Fitted on part of the set: bonds outside the fit count in the total only, impossible ones
    # take bbv.
    theirs = MatminerBondFractions.from_preset(nn, bbv=None).fit(structures[:2])
    mine = BondFractions(nn, bbv=None).fit(sub.select([0, 1]))
    assert mine.feature_labels() == theirs.feature_labels()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = np.array([theirs.featurize(x) for x in structures[:4]])
    assert np.allclose(mine.featurize(sub.select([0, 1, 2, 3])), expected, rtol=1e-12, atol=0, equal_nan=True)


def test_crystal_nn_fingerprint_matches_matminer(batch):
    pytest.importorskip("matminer")
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

    ref = CrystalNNFingerprint.from_preset("ops")
    values, labels = crystal_nn_fingerprint(batch)
    assert labels == ref.feature_labels()
    assert values.shape == (len(batch.numbers), len(labels))
    compared = 0
    for s in range(len(batch)):
        pmg = batch.to_pymatgen(s)
        for n in _sites(batch, s)[:2]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = np.array(ref.featurize(pmg, n), dtype=float)
            assert np.allclose(values[int(batch.ptr[s]) + n], expected, rtol=1e-9, atol=1e-12), (
                batch.ids[s],
                n,
            )
            compared += 1
    assert compared >= 30


def test_site_stats_crystal_nn_ops_matches_matminer(batch):
    pytest.importorskip("matminer")
    from matminer.featurizers.structure.sites import SiteStatsFingerprint

    ref = SiteStatsFingerprint.from_preset("CrystalNNFingerprint_ops")
    sub = batch.select([0, 1, 3, 15])  # perovskites, AgI, Li: up to 5 sites
    values, labels = site_stats_crystal_nn_ops(sub)
    assert labels == ref.feature_labels()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = np.array([ref.featurize(sub.to_pymatgen(s)) for s in range(len(sub))], dtype=float)
    assert np.allclose(values, expected, rtol=1e-9, atol=1e-12)

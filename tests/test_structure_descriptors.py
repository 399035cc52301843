"""Structure descriptors against matminer on real structures."""

import numpy as np
import pytest

from matxfer.structures import (
    density_features,
    radial_distribution,
    read_structures,
    sine_coulomb_eigenvalues,
)

from .conftest import STRUCTURES

pytest.importorskip("matminer")


@pytest.fixture(scope="module")
def sample():
    parts = [
        read_structures(STRUCTURES / "mp_bulk_moduli100_megnet.jsonl").select(range(0, 100, 12)),
        read_structures(STRUCTURES / "perov5_valtest_cdvae.jsonl").select(range(0, 7572, 1500)),
        read_structures(STRUCTURES / "mp_piezoelectric_matminer.jsonl").select(range(0, 941, 200)),
    ]
    pmg = [b.to_pymatgen(k) for b in parts for k in range(len(b))]
    from matxfer.structures import StructureBatch

    return StructureBatch.from_structures(pmg), pmg


def test_density_features_match_matminer(sample):
    from matminer.featurizers.structure import DensityFeatures

    batch, pmg = sample
    mine = density_features(batch)
    theirs = np.array([DensityFeatures().featurize(s) for s in pmg])
    np.testing.assert_allclose(mine, theirs, rtol=1e-6)


def test_rdf_matches_matminer(sample):
    from matminer.featurizers.structure import RadialDistributionFunction

    batch, pmg = sample
    mine = radial_distribution(batch, cutoff=10.0, bin_size=0.1)
    for k, s in enumerate(pmg):
        theirs = RadialDistributionFunction(cutoff=10.0, bin_size=0.1).featurize(s)
        np.testing.assert_allclose(mine[k], theirs, rtol=1e-9, atol=1e-12)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # matminer calls a deprecated pymatgen API
def test_partial_rdf_matches_matminer(sample):
    from matminer.featurizers.structure import PartialRadialDistributionFunction

    batch, pmg = sample
    f = PartialRadialDistributionFunction(cutoff=8.0, bin_size=0.2).fit(pmg)
    elements = list(f.elements_)
    mine = radial_distribution(batch, cutoff=8.0, bin_size=0.2, partial=True, elements=elements)
    for k, s in enumerate(pmg):
        np.testing.assert_allclose(mine[k], f.featurize(s), rtol=1e-9, atol=1e-12)


def test_sine_coulomb_matches_matminer(sample):
    from matminer.featurizers.structure import SineCoulombMatrix

    batch, pmg = sample
    f = SineCoulombMatrix().fit(pmg)
    mine = sine_coulomb_eigenvalues(batch)
    for k, s in enumerate(pmg):
        n = len(s)
        theirs = np.sort(np.real(f.featurize(s))[:n])[::-1]
        np.testing.assert_allclose(mine[k][:n], theirs, rtol=1e-8, atol=1e-8)
        assert (mine[k][n:] == 0).all()

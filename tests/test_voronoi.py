"""Periodic Voronoi tessellation against pymatgen's VoronoiNN (qhull) on real structures, and
the volume sum over whole shared datasets."""

import numpy as np
import pytest

from matxfer.exceptions import StructureError
from matxfer.structures import StructureBatch, read_structures, voronoi_cells

from .conftest import STRUCTURES

CIF = STRUCTURES.parent / "cif"


def _subset():
    """A fixed subset, with the sites compared (pymatgen takes about 0.1 s per site)."""
    parts = [
        (read_structures(CIF / "cod_1000041.cif"), [0, 4]),  # NaCl, Fm-3m
        (read_structures(CIF / "cod_1101051.cif"), [0, 2]),  # ZnS, P6_3mc
        (read_structures(CIF / "cod_7206075.cif"), [0, 4]),  # anatase TiO2
        (read_structures(CIF / "cod_1507756.cif"), None),  # BaTiO3, P4mm
        (read_structures(STRUCTURES / "mp_bulk_moduli100_megnet.jsonl").select([3, 41, 77]), None),
        (read_structures(STRUCTURES / "mp_piezoelectric_matminer.jsonl").select([0, 500]), None),
        (read_structures(STRUCTURES / "perov5_valtest_cdvae.jsonl").select([10, 5000]), None),
        (read_structures(STRUCTURES / "jarvis_dft_2d_matminer.jsonl").select([7]), [0]),  # monolayer with vacuum
    ]
    out = []
    for batch, sites in parts:
        for s in range(len(batch)):
            n = int(batch.n_sites[s])
            out.append((batch.select([s]), sites if sites is not None else list(range(min(n, 3)))))
    return out


@pytest.fixture(scope="module")
def subset():
    return _subset()


def _pymatgen_faces(structure, n):
    from pymatgen.analysis.local_env import VoronoiNN

    poly = VoronoiNN(tol=0, cutoff=13).get_voronoi_polyhedra(structure, n)
    faces = {}
    for d in poly.values():
        site = d["site"]
        j = int(site.index)
        image = tuple(int(x) for x in np.round(site.frac_coords - structure[j].frac_coords))
        faces[(j, image)] = (d["area"], d["solid_angle"], 2 * d["face_dist"], d["volume"])
    return faces


def test_faces_and_volumes_match_pymatgen_voronoinn(subset):
    pytest.importorskip("pymatgen.analysis.local_env")
    compared = 0
    for batch, sites in subset:
        cells = voronoi_cells(batch)
        pmg = batch.to_pymatgen(0)
        for n in sites:
            theirs = _pymatgen_faces(pmg, n)
            rows = np.flatnonzero(cells.i == n)
            mine = {(int(cells.j[r]), tuple(int(x) for x in cells.shifts[r])): r for r in rows}
            largest = max(a for a, *_ in theirs.values())
            # qhull also lists neighbors whose plane touches the cell at an edge or a vertex, with
            # areas of rounding size (matxfer drops them): compare the faces that have an area.
            real = {k for k, v in theirs.items() if v[0] > 1e-8 * largest}
            assert {k for k, r in mine.items() if cells.areas[r] > 1e-8 * largest} == real, (batch.ids[0], n)
            assert set(mine) <= set(theirs), (batch.ids[0], n)
            for k, r in mine.items():
                area, omega, dist, _ = theirs[k]
                assert cells.areas[r] == pytest.approx(area, rel=1e-6, abs=1e-9 * largest)
                assert cells.solid_angles[r] == pytest.approx(omega, abs=1e-6)
                assert cells.distances[r] == pytest.approx(dist, rel=1e-12)
            volume = sum(v[3] for v in theirs.values())
            assert cells.volumes[n] == pytest.approx(volume, rel=1e-7)
            compared += 1
    assert compared >= 20


@pytest.mark.parametrize(
    "name", ["perov5_valtest_cdvae.jsonl", "mp_piezoelectric_matminer.jsonl", "mp_phonon_dielectric_matminer.jsonl", "jarvis_dft_2d_matminer.jsonl"]
)
def test_volumes_sum_to_the_cell_on_a_whole_dataset(name):
    batch = read_structures(STRUCTURES / name)
    cells = voronoi_cells(batch)
    cell_volumes = np.abs(np.linalg.det(batch.lattices))
    sums = np.add.reduceat(cells.volumes, batch.ptr[:-1])
    np.testing.assert_allclose(sums, cell_volumes, rtol=1e-9)
    # Every site has a closed cell: solid angles sum to 4 pi.
    site = batch.ptr[np.repeat(np.arange(len(batch)), np.diff(cells.face_ptr))] + cells.i
    omega = np.bincount(site, weights=cells.solid_angles, minlength=len(batch.numbers))
    np.testing.assert_allclose(omega, 4 * np.pi, rtol=1e-9)


def test_same_result_for_any_thread_count():
    batch = read_structures(STRUCTURES / "mp_bulk_moduli100_megnet.jsonl")
    a, b = voronoi_cells(batch, n_threads=1), voronoi_cells(batch, n_threads=2)
    for name in ("i", "j", "shifts", "areas", "solid_angles", "distances", "volumes", "face_ptr"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    one = a.of(5)
    assert one.volumes.sum() == pytest.approx(abs(np.linalg.det(batch.lattices[5])), rel=1e-9)


def test_non_periodic_structures_are_refused_by_name():
    clusters = read_structures(STRUCTURES / "pt_clusters_matdeeplearn.jsonl").select([0])
    bulk = read_structures(STRUCTURES / "mp_bulk_moduli100_megnet.jsonl").select([0])
    both = StructureBatch(
        np.concatenate([bulk.lattices, clusters.lattices]),
        np.concatenate([bulk.frac_coords, clusters.frac_coords]),
        np.concatenate([bulk.numbers, clusters.numbers]),
        np.concatenate([bulk.pbc, clusters.pbc]),
        np.concatenate([bulk.ptr, clusters.ptr[1:] + bulk.ptr[-1]]),
        ["bulk", "cluster-0"],
    )
    with pytest.raises(StructureError, match=r"structure 1 \(cluster-0\).*periodic"):
        voronoi_cells(both)
    overlapping = StructureBatch.from_arrays(np.eye(3) * 4.0, [[0, 0, 0], [0, 0, 1e-8]], ["Na", "Cl"], id="overlap")
    with pytest.raises(StructureError, match="overlap"):
        voronoi_cells(overlapping)


def test_ward_coordination_features_match_matminer():
    pytest.importorskip("matminer")
    from matminer.featurizers.structure import SiteStatsFingerprint

    from matxfer.structures import WARD_COORDINATION_FEATURES, ward_coordination_features

    batch = StructureBatch.from_structures(
        [b.to_pymatgen(0) for b, _ in _subset() if b.n_sites[0] <= 6]
    )
    featurizer = SiteStatsFingerprint.from_preset("CoordinationNumber_ward-prb-2017")
    assert tuple(featurizer.feature_labels()) == WARD_COORDINATION_FEATURES
    theirs = np.array([featurizer.featurize(batch.to_pymatgen(k)) for k in range(len(batch))])
    mine = ward_coordination_features(batch)
    np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-9)

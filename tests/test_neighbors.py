"""Neighbor lists against pymatgen on the shared real structures, and invariances."""

import numpy as np
import pytest

from matxfer.structures import StructureBatch, StructureError, neighbor_list, read_structures

from .conftest import STRUCTURES

pytest.importorskip("pymatgen.core")
from pymatgen.core import Lattice, Structure  # noqa: E402

DATASETS = {
    "perov5_valtest_cdvae.jsonl": 40,
    "carbon24_valtest_cdvae.jsonl": 40,
    "mp_bulk_moduli100_megnet.jsonl": 20,
    "mp_piezoelectric_matminer.jsonl": 20,
    "mp_phonon_dielectric_matminer.jsonl": 20,
    "jarvis_dft_2d_matminer.jsonl": 20,
    "jarvis_sample50_alignn.jsonl": 10,
    "cromel_mp_examples.jsonl": 10,
    "pt_clusters_matdeeplearn.jsonl": 20,
    "mlearn_elemental_alignn.jsonl.gz": 6,
}


def pmg(batch, s):
    a, b = batch.ptr[s], batch.ptr[s + 1]
    lat = Lattice(batch.lattices[s], pbc=tuple(bool(x) for x in batch.pbc[s]))
    return Structure(lat, [int(z) for z in batch.numbers[a:b]], batch.frac_coords[a:b])


def pair_dict(i, j, shifts, d):
    return {(int(a), int(b), tuple(int(x) for x in s)): float(x) for a, b, s, x in zip(i, j, shifts, d)}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_pairs_match_pymatgen_get_neighbor_list(name):
    full = read_structures(STRUCTURES / name)
    idx = np.linspace(0, len(full) - 1, DATASETS[name]).astype(int)
    batch = full.select(idx)
    for cutoff in (3.0, 5.0, 8.0):
        nl = neighbor_list(batch, cutoff, vectors=True)
        assert len(nl.edge_ptr) == len(batch) + 1
        for s in range(len(batch)):
            part = nl.of(s)
            ci, pi, images, dist = pmg(batch, s).get_neighbor_list(cutoff)
            theirs = pair_dict(ci, pi, images.astype(int), dist)
            mine = pair_dict(part.i, part.j, part.shifts, part.distances)
            assert len(mine) == len(part.i), "duplicate pairs"
            assert mine.keys() == theirs.keys(), f"{name} structure {idx[s]} cutoff {cutoff}"
            for key, value in mine.items():
                assert abs(value - theirs[key]) < 1e-8
            # r_ij = r_j - r_i + S @ lattice
            a = batch.ptr[s]
            cart = batch.cart_coords()[a : batch.ptr[s + 1]]
            expect = cart[part.j] - cart[part.i] + part.shifts @ batch.lattices[s]
            np.testing.assert_allclose(part.vectors, expect, atol=1e-9)
            np.testing.assert_allclose(np.linalg.norm(part.vectors, axis=1), part.distances, atol=1e-9)


def _canon(nl, numbers):
    # Rotation/translation invariant summary: sorted (Z_i, Z_j, rounded distance).
    return sorted(zip(numbers[nl.i].tolist(), numbers[nl.j].tolist(), np.round(nl.distances, 6).tolist()))


@pytest.fixture(scope="module")
def sample():
    return read_structures(STRUCTURES / "mp_phonon_dielectric_matminer.jsonl").select(range(0, 1296, 130))


def test_translation_rotation_permutation_invariance(sample):
    rng = np.random.default_rng(0)
    for s in range(len(sample)):
        one = sample.select([s])
        base = _canon(neighbor_list(one, 6.0), one.numbers)
        # Translation (in fractional units, also pushes atoms out of [0, 1)).
        moved = StructureBatch(one.lattices, one.frac_coords + rng.uniform(-2, 2, 3), one.numbers, one.pbc, one.ptr)
        assert _canon(neighbor_list(moved, 6.0), moved.numbers) == base
        # Rotation of the lattice (fractional coordinates unchanged).
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        q *= np.sign(np.linalg.det(q))
        rotated = StructureBatch(one.lattices @ q.T, one.frac_coords, one.numbers, one.pbc, one.ptr)
        assert _canon(neighbor_list(rotated, 6.0), rotated.numbers) == base
        # Permutation of sites: pairs map through the permutation.
        perm = rng.permutation(len(one.numbers))
        permuted = StructureBatch(one.lattices, one.frac_coords[perm], one.numbers[perm], one.pbc, one.ptr)
        nl_p = neighbor_list(permuted, 6.0)
        inv = np.argsort(perm)
        mapped = {(int(perm[a]), int(perm[b]), tuple(sh)) for a, b, sh in zip(nl_p.i, nl_p.j, nl_p.shifts.tolist())}
        nl = neighbor_list(one, 6.0)
        assert mapped == {(int(a), int(b), tuple(sh)) for a, b, sh in zip(nl.i, nl.j, nl.shifts.tolist())}
        assert len(inv) == len(perm)


@pytest.mark.parametrize("reps", [(2, 1, 1), (2, 2, 3), (1, 3, 2)])
def test_supercell_scales_edge_count_exactly(sample, reps):
    for s in range(0, len(sample), 3):
        ref = pmg(sample, s)
        sc = ref.copy()
        sc.make_supercell(reps)
        one = StructureBatch.from_structures([ref])
        big = StructureBatch.from_structures([sc])
        for cutoff in (4.0, 7.0):
            assert len(neighbor_list(big, cutoff)) == np.prod(reps) * len(neighbor_list(one, cutoff))


def test_thread_count_does_not_change_output():
    batch = read_structures(STRUCTURES / "carbon24_valtest_cdvae.jsonl").select(range(500))
    a = neighbor_list(batch, 6.0, vectors=True, n_threads=1)
    b = neighbor_list(batch, 6.0, vectors=True, n_threads=2)
    for field in ("i", "j", "shifts", "distances", "vectors", "edge_ptr"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.i.dtype == np.int64 and a.shifts.dtype == np.int32 and a.distances.dtype == np.float64


def test_cutoff_much_larger_than_skewed_cell():
    lat = np.array([[2.0, 0, 0], [1.9, 0.3, 0], [1.7, 0.2, 0.4]])
    s = Structure(Lattice(lat), ["C", "O"], [[0, 0, 0], [0.3, 0.6, 0.2]])
    nl = neighbor_list(StructureBatch.from_structures([s]), 9.0)
    ci, pi, images, dist = s.get_neighbor_list(9.0)
    assert pair_dict(nl.i, nl.j, nl.shifts, nl.distances).keys() == pair_dict(ci, pi, images.astype(int), dist).keys()


def test_memory_ceiling_names_structure():
    batch = read_structures(STRUCTURES / "carbon24_valtest_cdvae.jsonl").select(range(5))
    with pytest.raises(StructureError, match=r"structure 0 \(.*max_pairs"):
        neighbor_list(batch, 8.0, max_pairs=1000)
    with pytest.raises(ValueError, match="max_pairs"):
        neighbor_list(batch, 4.0, max_pairs=1000)


def test_overlapping_atoms_are_refused():
    from matxfer.graphs import build_graphs

    good = {"lattice": np.eye(3) * 4, "species": ["Na", "Cl"], "frac_coords": [[0, 0, 0], [0.5, 0.5, 0.5]]}
    bad = dict(good, frac_coords=[[0, 0, 0], [0.999, 0.0, 0.0]], id="clash")
    with pytest.raises(StructureError, match=r"structure 1 \(clash\).*atoms 0 and 1.*overlapping"):
        neighbor_list([good, bad], 3.0)
    with pytest.raises(StructureError, match="overlapping"):
        build_graphs([good, bad], 3.0, max_neighbors=4)
    assert len(neighbor_list([good, bad], 3.0, min_distance=None).edge_ptr) == 3


def test_parquet_dataset_roundtrip(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    batch = read_structures(STRUCTURES / "mp_bulk_moduli100_megnet.jsonl")
    rows = {
        "id": [str(i) for i in batch.ids],
        "lattice": [batch.lattices[s].tolist() for s in range(len(batch))],
        "species": [[int(z) for z in batch.numbers[batch.ptr[s] : batch.ptr[s + 1]]] for s in range(len(batch))],
        "frac_coords": [batch.frac_coords[batch.ptr[s] : batch.ptr[s + 1]].tolist() for s in range(len(batch))],
    }
    pq.write_table(pa.table(rows), tmp_path / "d.parquet")
    back = read_structures(tmp_path / "d.parquet")
    np.testing.assert_array_equal(back.frac_coords, batch.frac_coords)
    np.testing.assert_array_equal(back.numbers, batch.numbers)
    assert back.ids == batch.ids

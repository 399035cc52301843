"""SOAP power spectra against dscribe's ``SOAP`` (GTO basis) on real shared structures
(perov5 and the Materials Project piezoelectric set), periodic and isolated, per site and
averaged; invariances, thread-count determinism and bad input. Timings: ``benches/soap.py``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from matxfer import structures as mst
from matxfer.exceptions import ArgumentTypeError, InvalidArgumentError, StructureError
from tests.conftest import SHARED_DATA

ase = pytest.importorskip("ase")
dscribe_soap = pytest.importorskip("dscribe.descriptors")

#: Agreement with dscribe: elementwise relative, plus an absolute floor relative to the largest
#: entry (tiny entries are differences of large ones). Measured: <= 3e-10 relative and
#: <= 3e-11 of the row maximum at n_max <= 4 (see docs/soap.md).
RTOL = 1e-8
ATOL_OF_MAX = 1e-9
SETTINGS = [(5.0, 4, 4, 0.8), (3.5, 3, 6, 1.2)]


def _atoms(path: str, picks: list[int]) -> list:
    lines = (SHARED_DATA / "structures" / path).read_text().splitlines()
    out = []
    for k in picks:
        d = json.loads(lines[k])
        out.append(
            ase.Atoms(symbols=d["species"], scaled_positions=d["frac_coords"], cell=d["lattice"], pbc=True)
        )
    return out


@pytest.fixture(scope="module")
def atoms() -> list:
    return _atoms("perov5_valtest_cdvae.jsonl", [0, 7, 300, 4000]) + _atoms(
        "mp_piezoelectric_matminer.jsonl", [0, 11, 250, 600]
    )


def _species(atoms: list) -> list[int]:
    return sorted({int(z) for a in atoms for z in a.numbers})


def _close(mine: np.ndarray, ref: np.ndarray) -> None:
    assert mine.shape == ref.shape
    assert np.abs(ref).max() > 0
    np.testing.assert_allclose(mine, ref, rtol=RTOL, atol=ATOL_OF_MAX * np.abs(ref).max())


@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("average", ["off", "inner", "outer"])
@pytest.mark.parametrize("settings", SETTINGS)
def test_parity_with_dscribe(atoms, periodic, average, settings):
    r_cut, n_max, l_max, sigma = settings
    species = _species(atoms)
    desc = dscribe_soap.SOAP(
        species=species,
        r_cut=r_cut,
        n_max=n_max,
        l_max=l_max,
        sigma=sigma,
        periodic=periodic,
        average=average,
    )
    ref = desc.create(atoms)
    ref = np.concatenate(list(ref)) if average == "off" else np.asarray(ref)
    mine, names = mst.soap(
        atoms, species, r_cut, n_max, l_max, sigma, average, periodic=periodic, n_threads=2
    )
    assert len(names) == desc.get_number_of_features() == mine.shape[1]
    assert mine.shape[0] == (sum(len(a) for a in atoms) if average == "off" else len(atoms))
    _close(mine, ref)


def test_parity_with_partial_periodicity(atoms):
    """Periodic along a and b only (a slab of the ~4 A perovskite cells, thinner than the cutoff)."""
    slabs = []
    for a in atoms[:4]:
        b = a.copy()
        b.pbc = [True, True, False]
        slabs.append(b)
    species = _species(slabs)
    desc = dscribe_soap.SOAP(species=species, r_cut=5.0, n_max=4, l_max=4, sigma=0.8, periodic=True)
    ref = desc.create(slabs)
    mine, _ = mst.soap(slabs, species, 5.0, 4, 4, 0.8)
    _close(mine, np.concatenate(list(ref)))
    full, _ = mst.soap(atoms[:4], species, 5.0, 4, 4, 0.8)
    assert np.abs(full - mine).max() > 1e-3 * np.abs(full).max()


def test_layout_matches_get_location(atoms):
    species = _species(atoms)
    desc = dscribe_soap.SOAP(species=species, r_cut=4.0, n_max=3, l_max=2, sigma=1.0, periodic=True)
    _, names = mst.soap(atoms[:1], species, 4.0, 3, 2)
    symbols = [ase.data.chemical_symbols[z] for z in species]
    for a in (0, 3, len(species) - 1):
        for b in (a, len(species) - 1):
            loc = desc.get_location((species[a], species[b]))
            block = names[loc]
            assert all(n.startswith(f"SOAP {symbols[a]}-{symbols[b]} ") for n in block), block[:3]
            assert len(block) == (3 * 4 // 2 if a == b else 9) * 3
            assert block[0].endswith("l=0 n=0 n'=0") and block[-1].endswith("l=2 n=2 n'=2")


def _rotation() -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(5).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


@pytest.mark.parametrize("periodic", [True, False])
def test_rotation_and_translation_invariance(atoms, periodic):
    species = _species(atoms)
    base, _ = mst.soap(atoms, species, 5.0, 4, 4, 0.8, periodic=periodic)
    moved = []
    for a in atoms:
        b = a.copy()
        b.set_cell(a.cell.array @ _rotation().T, scale_atoms=True)
        b.translate([0.37, -1.2, 2.05])
        moved.append(b)
    other, _ = mst.soap(moved, species, 5.0, 4, 4, 0.8, periodic=periodic)
    np.testing.assert_allclose(other, base, rtol=1e-9, atol=1e-11 * np.abs(base).max())


def test_bitwise_identical_for_thread_counts(atoms):
    species = _species(atoms)
    batch = mst.StructureBatch.from_structures(atoms * 5)
    for average in ("off", "inner", "outer"):
        one, _ = mst.soap(batch, species, 5.0, 4, 4, 0.8, average, n_threads=1)
        two, _ = mst.soap(batch, species, 5.0, 4, 4, 0.8, average, n_threads=2)
        assert one.tobytes() == two.tobytes()


def test_neighbor_memory_is_checked_before_work(atoms, monkeypatch):
    species = _species(atoms)
    monkeypatch.setenv("MATXFER_MAX_MEMORY", "200K")
    with pytest.raises(StructureError, match=r"structure 0\b.*memory ceiling"):
        mst.soap(atoms, species, 30.0, 2, 2, n_threads=1)
    monkeypatch.delenv("MATXFER_MAX_MEMORY")
    out, _ = mst.soap(atoms[:1], species, 30.0, 2, 2, n_threads=1)
    assert out.shape[0] == len(atoms[0]) and np.isfinite(out).all()


def test_bad_input(atoms):
    species = _species(atoms)
    without = [z for z in species if z != 8]
    with pytest.raises(StructureError, match=r"structure 1\b.*\bO\b"):
        mst.soap(atoms, without, 4.0, 3, 3)
    for kwargs, pattern in [
        ({"r_cut": 1.0}, "r_cut"),
        ({"r_cut": float("nan")}, "r_cut"),
        ({"sigma": 0.0}, "sigma"),
        ({"n_max": 0}, "n_max"),
        ({"l_max": 21}, "l_max"),
        ({"average": "mean"}, "average"),
    ]:
        args = {"r_cut": 4.0, "n_max": 3, "l_max": 3, **kwargs}
        with pytest.raises(InvalidArgumentError, match=pattern):
            mst.soap(atoms, species, **args)
    with pytest.raises(InvalidArgumentError, match="twice"):
        mst.soap(atoms, species + [8], 4.0, 3, 3)
    with pytest.raises(ArgumentTypeError):
        mst.soap(atoms, "O", 4.0, 3, 3)
    with pytest.raises(InvalidArgumentError, match="unknown element 'Xx'"):
        mst.soap(atoms, species + ["Xx"], 4.0, 3, 3)
    with pytest.raises(InvalidArgumentError, match="linearly dependent"):
        mst.soap(atoms, species, 1.5, 40, 3)

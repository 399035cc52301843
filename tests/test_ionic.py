"""Ionic descriptors against their references on real shared data: matminer's
``IonProperty()`` (``fast=False``, pymatgen ``oxi_state_guesses``), ``EwaldEnergy`` (pymatgen
``EwaldSummation``) with guessed and explicit oxidation states, and ``OrbitalFieldMatrix``.
Fixed quick subsets here; the whole shared sets with timings are ``benches/ionic.py``."""

from __future__ import annotations

import json
import random
import warnings
from math import comb, prod

import numpy as np
import pytest

import matxfer
from matxfer import structures as mst
from matxfer.exceptions import FeaturizationError, InvalidArgumentError, StructureError
from tests.conftest import SHARED_DATA
from tests.test_oxidation import shared_formulas

N_FORMULAS = 250
SEED = 14
#: Formulas whose pymatgen search is longer than this many Python steps are left to the bench.
MAX_PYMATGEN_COST = 100_000
STRUCTURE_SETS = ("perov5_valtest_cdvae", "mp_piezoelectric_matminer", "mp_phonon_dielectric_matminer")


def ion_property_cost(amounts: dict[str, float]) -> float:
    """Python steps of ``oxi_state_guesses`` with matminer's override (the common states)."""
    from pymatgen.core import Element

    multisets, product = 0.0, []
    for el, n in amounts.items():
        e = Element(el)
        states = e.common_oxidation_states or e.icsd_oxidation_states
        if n != int(n) or not states:
            return 0.0
        multisets += comb(int(n) + len(states) - 1, len(states) - 1) * n
        product.append(int(n) * (max(states) - min(states)) + 1)
    return multisets + prod(product)


def matminer_ion_property(formulas: list[str]) -> list:
    """matminer's rows (``None`` where matminer raises, as for non-integer amounts)."""
    from matminer.featurizers.composition import IonProperty
    from pymatgen.core import Composition

    featurizer = IonProperty()
    rows = []
    for f in formulas:
        try:
            rows.append(featurizer.featurize(Composition(f)))
        except ValueError:
            rows.append(None)
    return rows


def test_ion_property_parity_with_matminer_on_shared_formulas():
    pytest.importorskip("matminer")
    from matminer.featurizers.composition import IonProperty
    from pymatgen.core import Composition

    pool = [f for f in random.Random(SEED).sample(shared_formulas(), 2 * N_FORMULAS)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cheap = []
        for f in pool:
            try:
                c = Composition(f)
            except Exception:  # noqa: BLE001 - formulas pymatgen cannot read are compared elsewhere
                continue
            if ion_property_cost(c.get_el_amt_dict()) <= MAX_PYMATGEN_COST:
                cheap.append(f)
        sample = cheap[:N_FORMULAS]
        ref = matminer_ion_property(sample)
    ours = matxfer.featurize(sample, preset="ion_property", errors="nan")
    assert ours.feature_names == IonProperty().feature_labels()
    rejected = {r.index for r in ours.rejected}
    assert {i for i, r in enumerate(ref) if r is None} == rejected
    balanced_differently = 0
    for i, r in enumerate(ref):
        if r is None:
            continue
        got = ours.values[i]
        assert got[0] == float(r[0]), sample[i]
        np.testing.assert_allclose(got[1:], np.asarray(r[1:], dtype=float), rtol=1e-12, atol=0, err_msg=sample[i])
        balanced_differently += got[0] != float(r[0])
    assert balanced_differently == 0
    # fast=False finds the heterovalent compounds that the fast shortcut misses.
    fast = matxfer.featurize(["Fe3O4", "Mn3O4"], preset="ion_property_fast").values[:, 0]
    exact = matxfer.featurize(["Fe3O4", "Mn3O4"], preset="ion_property").values[:, 0]
    assert list(fast) == [0.0, 0.0] and list(exact) == [1.0, 1.0]


def test_ion_property_bad_rows_name_the_row():
    with pytest.raises(FeaturizationError, match="row 1"):
        matxfer.featurize(["NaCl", "Na0.5Cl0.5"], preset="ion_property")
    # A single element is always possible (matminer's rule), whatever its amount.
    assert matxfer.featurize(["Fe0.5"], preset="ion_property").values.tolist() == [[1.0, 0.0, 0.0]]


def shared_structures(name: str, n: int, seed: int = SEED) -> list:
    """A fixed seeded sample of ``n`` records of a shared structure set, as pymatgen structures."""
    from pymatgen.core import Lattice, Structure

    with open(SHARED_DATA / "structures" / f"{name}.jsonl") as f:
        records = [json.loads(line) for line in f]
    picked = sorted(random.Random(seed).sample(range(len(records)), n))
    return [
        Structure(Lattice(records[k]["lattice"]), records[k]["species"], records[k]["frac_coords"]) for k in picked
    ]


@pytest.mark.parametrize("name", STRUCTURE_SETS)
def test_ewald_energy_guessed_states_match_pymatgen(name):
    pytest.importorskip("pymatgen")
    from matminer.featurizers.structure import EwaldEnergy

    structures = shared_structures(name, 24)
    ours = mst.ewald_energy(structures)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decorated = [s.copy().add_oxidation_state_by_guess() for s in structures]
        ref = np.array([EwaldEnergy().featurize(s)[0] for s in decorated])
    states = np.concatenate([[sp.oxi_state for sp in s.species] for s in decorated])
    np.testing.assert_array_equal(ours.charges, states)
    np.testing.assert_allclose(ours.per_atom, ref, rtol=1e-9, atol=1e-12)
    assert np.count_nonzero(ref) >= 12  # most of the sample has a charge-balanced guess


def test_ewald_energy_explicit_and_charged_states_match_pymatgen():
    pytest.importorskip("pymatgen")
    from pymatgen.analysis.ewald import EwaldSummation

    structures = shared_structures("mp_piezoelectric_matminer", 12, seed=3)
    rng = np.random.default_rng(0)
    # Arbitrary per-site states, not charge balanced: exercises pymatgen's charged-cell term.
    states = [np.round(rng.normal(0, 2, len(s)), 3) for s in structures]
    ours = mst.ewald_energy(structures, states, accuracy=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = []
        for s, q in zip(structures, states):
            d = s.copy()
            d.add_site_property("charge", list(q))
            ref.append(EwaldSummation(d, acc_factor=6).total_energy)
    np.testing.assert_allclose(ours.total, ref, rtol=1e-9)
    assert np.all(ours.charged < 0)
    flat = mst.ewald_energy(structures, np.concatenate(states), accuracy=6)
    assert flat.total.tobytes() == ours.total.tobytes()


def test_ewald_energy_is_thread_independent_and_validates():
    structures = shared_structures("perov5_valtest_cdvae", 30)
    a = mst.ewald_energy(structures, n_threads=1)
    b = mst.ewald_energy(structures, n_threads=3)
    assert a.total.tobytes() == b.total.tobytes()
    with pytest.raises(InvalidArgumentError, match="structure 0 has 5 sites but 4 states"):
        mst.ewald_energy(structures[:1], [[1, 2, -1, -1]])
    with pytest.raises(InvalidArgumentError, match="accuracy"):
        mst.ewald_energy(structures[:1], accuracy=-1)
    batch = mst.StructureBatch.from_structures(structures[:3])
    batch.pbc[2] = [True, True, False]
    with pytest.raises(StructureError, match="structure 2.*3D periodic"):
        mst.ewald_energy(batch)
    with pytest.raises(StructureError, match="structure 0.*above the limit"):
        mst.ewald_energy(structures[:1], real_space_cut=2000.0)
    with pytest.raises(StructureError, match="no charge-balanced"):
        mst.ewald_energy([{"lattice": np.eye(3) * 4, "species": ["Na", "Na", "Cl"], "frac_coords": [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0]]}], no_guess="raise")


@pytest.mark.parametrize(("name", "n"), [("perov5_valtest_cdvae", 3), ("mp_piezoelectric_matminer", 3), ("mp_phonon_dielectric_matminer", 3)])
def test_orbital_field_matrix_matches_matminer(name, n):
    pytest.importorskip("matminer")
    from matminer.featurizers.structure import OrbitalFieldMatrix

    # matminer evaluates a 3x3x3 supercell (about a second per small cell): small cells only here.
    structures = [s for s in shared_structures(name, 60) if len(s) <= 6][:n]
    ours, names = mst.orbital_field_matrix(structures)
    reference = OrbitalFieldMatrix()
    assert names == reference.feature_labels()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.array([reference.featurize(s.copy()) for s in structures])
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())
    assert np.count_nonzero(ref) > 0
    # Every site instead of one per symmetry orbit: the same up to sites that are equivalent only
    # within symprec (perov5 row La1Au1O3-like cells differ by about 5e-4 relative).
    every_site, _ = mst.orbital_field_matrix(structures, site_average="all", n_threads=1)
    np.testing.assert_allclose(every_site, ref, rtol=2e-3, atol=1e-9 * np.abs(ref).max())
    tagged, tagged_names = mst.orbital_field_matrix(structures[:2], period_tag=True)
    assert tagged.shape == (2, 1521) and tagged_names == OrbitalFieldMatrix(period_tag=True).feature_labels()


def test_orbital_field_matrix_rejects_heavy_elements_and_is_thread_independent():
    structures = shared_structures("perov5_valtest_cdvae", 20)
    a, _ = mst.orbital_field_matrix(structures, n_threads=1)
    b, _ = mst.orbital_field_matrix(structures, n_threads=3)
    assert a.tobytes() == b.tobytes()
    am = {"lattice": np.eye(3) * 4, "species": ["Am", "O"], "frac_coords": [[0, 0, 0], [0.5, 0.5, 0.5]]}
    with pytest.raises(StructureError, match="structure 1.*Z = 95"):
        mst.orbital_field_matrix([structures[0], am])


XENONPY_SLOTS = {"s": 0, "p": 2, "d": 8, "f": 18}


def xenonpy_element_vector(symbol: str) -> np.ndarray:
    """XenonPy's intended vector (``OrbitalFieldMatrix.get_element_representation``): 1 at each
    subshell written after the noble-gas core of pymatgen's ``electronic_structure`` (H s1, He s2).
    XenonPy's own pattern expects ``<sup>`` tags that current pymatgen no longer writes."""
    import re

    from pymatgen.core import Element

    vec = np.zeros(32)
    if symbol in ("H", "He"):
        shells = [("s", "1" if symbol == "H" else "2")]
    else:
        shells = re.findall(r"\.\d([spdf])(\d+)", Element(symbol).electronic_structure)
    for orbital, count in shells:
        vec[XENONPY_SLOTS[orbital] + int(count) - 1] = 1.0
    return vec


def xenonpy_ofm_definition(structure) -> np.ndarray:
    """XenonPy's ``OrbitalFieldMatrix(including_d=True).featurize`` recomputed from pymatgen alone:
    per site the environment vector ``sum vec(neighbor) * weight / distance`` over
    ``VoronoiNN(cutoff=10).get_nn_info`` (angstrom), its outer product with the centre's vector
    (environment index first), averaged over every site."""
    from pymatgen.analysis.local_env import VoronoiNN

    finder = VoronoiNN(cutoff=10.0)
    rows = []
    for i, site in enumerate(structure):
        env = np.zeros(32)
        for nn in finder.get_nn_info(structure, i):
            env += xenonpy_element_vector(nn["site"].species_string) * nn["weight"] / np.linalg.norm(site.coords - nn["site"].coords)
        rows.append(np.outer(env, xenonpy_element_vector(site.species_string)).ravel())
    return np.mean(rows, axis=0)


@pytest.mark.parametrize(("name", "n"), [("perov5_valtest_cdvae", 6), ("mp_piezoelectric_matminer", 6)])
def test_orbital_field_matrix_xenonpy_flavour_matches_its_definition(name, n):
    pytest.importorskip("pymatgen")
    structures = [s for s in shared_structures(name, 40, seed=5) if len(s) <= 12][:n]
    ours, names = mst.orbital_field_matrix(structures, flavour="xenonpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.array([xenonpy_ofm_definition(s) for s in structures])
    labels = [f"{o}{k}" for o, m in (("s", 2), ("p", 6), ("d", 10), ("f", 14)) for k in range(1, m + 1)]
    assert names == [f"{a}_{b}" for a in labels for b in labels]
    assert ours.shape == (len(structures), 1024) and np.all(np.abs(ref).max(axis=1) > 0)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    # Relative to matminer's flavour: other vectors and 1/r in angstrom; the same cells and sites.
    every_site, _ = mst.orbital_field_matrix(structures, site_average="all")
    assert not np.allclose(every_site, ours)


def test_orbital_field_matrix_xenonpy_flavour_threads_and_refusals():
    structures = shared_structures("perov5_valtest_cdvae", 20)
    a, _ = mst.orbital_field_matrix(structures, flavour="xenonpy", n_threads=1)
    b, _ = mst.orbital_field_matrix(structures, flavour="xenonpy", site_average="all", n_threads=2)
    assert a.tobytes() == b.tobytes()
    matminer_default, _ = mst.orbital_field_matrix(structures[:3])
    matminer_named, _ = mst.orbital_field_matrix(structures[:3], flavour="matminer", site_average="symmetry")
    assert matminer_default.tobytes() == matminer_named.tobytes()
    with pytest.raises(InvalidArgumentError, match="flavour.*'mendeleev'"):
        mst.orbital_field_matrix(structures[:1], flavour="mendeleev")
    with pytest.raises(InvalidArgumentError, match="averages every site"):
        mst.orbital_field_matrix(structures[:1], flavour="xenonpy", site_average="symmetry")
    with pytest.raises(InvalidArgumentError, match="no period tag"):
        mst.orbital_field_matrix(structures[:1], flavour="xenonpy", period_tag=True)
    two = {"lattice": np.eye(3) * 4, "frac_coords": [[0, 0, 0], [0.5, 0.5, 0.5]]}
    # Am has an electronic structure (XenonPy vector) but no matminer vector; Db has neither.
    am = {**two, "species": ["Am", "O"]}
    assert np.count_nonzero(mst.orbital_field_matrix([am], flavour="xenonpy")[0]) > 0
    with pytest.raises(StructureError, match="structure 1.*Z = 105"):
        mst.orbital_field_matrix([structures[0], {**two, "species": ["Db", "O"]}], flavour="xenonpy")


def test_orbital_field_matrix_xenonpy_flavour_against_xenonpy_when_installed():
    """Only where XenonPy is importable (not in CI): XenonPy's featurizer with its element vectors
    read from the untagged strings equals the flavour; unpatched XenonPy gives zeros here."""
    pytest.importorskip("xenonpy")
    from xenonpy.descriptor import OrbitalFieldMatrix

    class Untagged(OrbitalFieldMatrix):
        get_element_representation = staticmethod(xenonpy_element_vector)

    structures = [s for s in shared_structures("mp_piezoelectric_matminer", 40, seed=5) if len(s) <= 12][:3]
    ours, names = mst.orbital_field_matrix(structures, flavour="xenonpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.array([Untagged(including_d=True).featurize(s) for s in structures])
        plain = np.array([OrbitalFieldMatrix(including_d=True).featurize(s) for s in structures])
    assert names == list(Untagged().feature_labels)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    assert not plain.any()  # no H or He in these structures

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

N_FORMULAS = 600
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

    pool = [f for f in random.Random(SEED).sample(shared_formulas(), 4 * N_FORMULAS)]
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

"""Parity of the magpie presets with matminer on real formulas.

In the suite: a fixed random 5,000-formula subset of mp_gap plus every expt_gap formula for
``magpie``; 1,000 of each for ``magpie_full``. The full mp_gap sweep is
``benches/parity_matminer.py`` (results in benches/RESULTS.md).
"""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest

import matxfer

RTOL = 1e-9
ATOL = 1e-12  # only for values that are zero in one tool and ~1e-17 in the other


def _matminer(preset: str):
    from matminer.featurizers.base import MultipleFeaturizer
    from matminer.featurizers.composition import ElementProperty, IonProperty, Stoichiometry, ValenceOrbital

    if preset == "magpie":
        return ElementProperty.from_preset("magpie")
    return MultipleFeaturizer([Stoichiometry(), ElementProperty.from_preset("magpie"), ValenceOrbital(), IonProperty(fast=True)])


def assert_parity(formulas: list[str], preset: str) -> None:
    from pymatgen.core import Composition

    featurizer = _matminer(preset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = np.array([featurizer.featurize(Composition(f)) for f in formulas], dtype=np.float64)
    result = matxfer.featurize(formulas, preset)
    assert result.feature_names == featurizer.feature_labels()
    assert result.values.shape == reference.shape
    got = result.values
    np.testing.assert_array_equal(np.isnan(got), np.isnan(reference))
    finite = np.isfinite(reference)
    err = np.abs(got - reference)
    bad = finite & (err > RTOL * np.abs(reference)) & (err > ATOL)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        pytest.fail(f"{bad.sum()} values differ; first: {formulas[i]!r} {result.feature_names[j]}: {got[i, j]!r} vs matminer {reference[i, j]!r}")


def test_magpie_parity_mp_gap_subset(mp_gap_formulas):
    subset = random.Random(20261122).sample(mp_gap_formulas, 5000)
    assert_parity(subset, "magpie")


def test_magpie_parity_every_expt_gap_formula(expt_gap_formulas):
    assert_parity(expt_gap_formulas, "magpie")


def test_magpie_full_parity(mp_gap_formulas, expt_gap_formulas):
    rng = random.Random(7)
    assert_parity(rng.sample(mp_gap_formulas, 1000) + rng.sample(expt_gap_formulas, 1000), "magpie_full")

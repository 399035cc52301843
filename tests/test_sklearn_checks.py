"""scikit-learn's estimator checks on the transformer.

`parametrize_with_checks` only generates checks for numeric-matrix input; a formula featurizer
declares string input (as scikit-learn's text vectorizers do), for which scikit-learn generates
no checks at all. The API checks that do not feed numeric data are run one by one here."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.utils import estimator_checks as ec  # noqa: E402

from matxfer.sklearn import CompositionFeaturizer  # noqa: E402

API_CHECKS = [
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_valid_tag_types",
    "check_estimator_tags_renamed",
]


@pytest.mark.parametrize("name", API_CHECKS)
def test_sklearn_api_check(name):
    est = CompositionFeaturizer("magpie")
    # Each scikit-learn check raises AssertionError when the estimator breaks its contract.
    getattr(ec, name)(type(est).__name__, est)


def test_clone_transform_and_names(expt_gap_formulas):
    est = clone(CompositionFeaturizer("magpie", n_threads=1)).fit(expt_gap_formulas[:20])
    X = est.transform(np.array(expt_gap_formulas[:20], dtype=object).reshape(-1, 1))
    assert X.shape == (20, 132) and np.isfinite(X).all()
    assert list(est.get_feature_names_out())[:1] == ["MagpieData minimum Number"]
    assert est.__sklearn_tags__().input_tags.string

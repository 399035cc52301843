"""scikit-learn transformer over :func:`matxfer.featurize` (needs the ``sklearn`` extra)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from matxfer.featurize import feature_names, featurize


class CompositionFeaturizer(TransformerMixin, BaseEstimator):
    """Turn a column of formulas into descriptor features inside a scikit-learn Pipeline.

    Stateless: ``fit`` only records ``n_features_in_`` and the output names. ``X`` may be a 1-d
    sequence of formulas, or a 2-d array / DataFrame with exactly one column of formulas.

    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.linear_model import Ridge
    >>> model = make_pipeline(CompositionFeaturizer("magpie"), Ridge())
    """

    def __init__(self, preset: str = "magpie", errors: str = "raise", n_threads: Optional[int] = None, dtype: Any = np.float64):
        self.preset = preset
        self.errors = errors
        self.n_threads = n_threads
        self.dtype = dtype

    @staticmethod
    def _column(X: Any):
        module = type(X).__module__.split(".")[0]
        if module in ("pandas", "polars") and hasattr(X, "columns"):
            if len(X.columns) != 1:
                raise ValueError(f"expected one column of formulas, got {len(X.columns)} columns")
            return X[X.columns[0]]
        if isinstance(X, np.ndarray) and X.ndim == 2:
            if X.shape[1] != 1:
                raise ValueError(f"expected one column of formulas, got shape {X.shape}")
            return X[:, 0]
        return X

    def __sklearn_tags__(self):
        # Like scikit-learn's text vectorizers: the input is a column of strings, not a numeric
        # 2-d array, so the numeric-matrix checks of `parametrize_with_checks` do not apply.
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = False
        return tags

    def fit(self, X: Any, y: Any = None) -> CompositionFeaturizer:
        self.feature_names_out_ = np.asarray(feature_names(self.preset), dtype=object)
        self.n_features_in_ = 1
        return self

    def transform(self, X: Any) -> np.ndarray:
        if not hasattr(self, "feature_names_out_"):
            self.fit(X)
        return featurize(self._column(X), self.preset, errors=self.errors, n_threads=self.n_threads, dtype=self.dtype).values

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(feature_names(self.preset), dtype=object)

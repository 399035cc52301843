"""No-transfer baselines a user would otherwise pick: gradient boosting and a random forest on the
same descriptors, with settings chosen by inner cross-validation on the training rows only."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from .._evaluation import check_groups, grouped_folds
from .._trees import BASELINE_GRIDS, fit_tree, one_thread, resolve_grid
from .base import TransferStrategy

__all__ = ["TreeBaseline", "BASELINE_GRIDS", "baseline_strategies"]


class TreeBaseline(TransferStrategy):
    """Gradient boosting (``model="gbm"``) or a random forest (``model="rf"``) on the descriptors alone.

    ``adapt`` runs a 3-fold inner grid search (:data:`BASELINE_GRIDS`, tree count included, or ``grid=``;
    ``n_estimators`` fixes the tree count instead of searching it; ``inner_folds=0`` with a
    one-setting grid fits that setting directly, as :func:`matxfer.transfer.auto` does) on the rows it is
    given (stratified for classification; scored by MAE for regression, log loss for classification),
    then refits the best setting on all of them; ``best_params_`` says what was chosen. The source is
    ignored, so it drops into any comparison loop. NaN descriptors are set to the training column mean
    for the forest (gradient boosting handles them itself). Scikit-learn runs with one OpenMP thread.
    """

    name = "baseline"

    def __init__(self, model: str = "gbm", grid: Optional[Dict[str, List[Any]]] = None, inner_folds: int = 3,
                 n_estimators: Optional[int] = None, **kwargs) -> None:
        if model not in BASELINE_GRIDS:
            raise ValueError(f"model must be one of {sorted(BASELINE_GRIDS)}, not {model!r}")
        super().__init__(**kwargs)
        self.model = model
        self.n_estimators = int(n_estimators) if n_estimators is not None else None
        self.grid = resolve_grid(model, grid, self.n_estimators)
        self.inner_folds = int(inner_folds)
        self.best_params_: Optional[Dict[str, Any]] = None

    def _params(self):
        return {"model": self.model, "grid": self.grid}

    def pretrain(self, X_source=None, y_source=None) -> TreeBaseline:
        return self

    def use_source(self, model=None, X_source=None, y_source=None, task=None) -> TreeBaseline:
        self.is_adapted_ = False
        return self

    def adapt(self, X, y, groups=None) -> TreeBaseline:
        """Fit on descriptors ``X`` and labels ``y``, the setting chosen by inner CV on these rows.
        ``groups`` (one label per row, e.g. the reduced composition when a material has rows at several
        temperatures): the inner folds keep each group whole (:func:`matxfer.transfer.grouped_folds`),
        so the search does not reward settings that memorise a material seen in another inner fold."""
        self._groups = None if groups is None else check_groups(groups, len(X))
        try:
            super().adapt(X, y)
            return self
        finally:
            self._groups = None

    fit = adapt

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        cv = None
        groups = getattr(self, "_groups", None)
        if groups is not None and self.inner_folds >= 2:
            cv = grouped_folds(groups, y, self.inner_folds, self.seed, self.is_classifier)
        self.target_, self.best_params_ = fit_tree(
            self.model, X, y, self.is_classifier, grid=self.grid, inner_folds=self.inner_folds, seed=self.seed,
            n_estimators=self.n_estimators, sample_weight=self._row_weight, cv=cv)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        with one_thread():
            if self.is_classifier:
                out = np.zeros((len(X), self.n_classes))
                out[:, np.asarray(self.target_.classes_, dtype=np.int64)] = self.target_.predict_proba(X)
                return out
            return np.asarray(self.target_.predict(X), dtype=np.float64)


def baseline_strategies(names=("gbm", "rf"), seed: int = 0, task: Optional[str] = None, **kwargs) -> Dict[str, TreeBaseline]:
    """``{name: TreeBaseline}`` for the requested baselines."""
    return {n: TreeBaseline(model=n, seed=seed, task=task, **kwargs) for n in names}

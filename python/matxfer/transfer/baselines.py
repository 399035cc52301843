"""No-transfer baselines a user would otherwise pick: gradient boosting and a random forest on the
same descriptors, with settings chosen by inner cross-validation on the training rows only."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from .._trees import BASELINE_GRIDS, fit_tree, one_thread
from .base import TransferStrategy

__all__ = ["TreeBaseline", "BASELINE_GRIDS", "baseline_strategies"]


class TreeBaseline(TransferStrategy):
    """Gradient boosting (``model="gbm"``) or a random forest (``model="rf"``) on the descriptors alone.

    ``adapt`` runs a 3-fold inner grid search (:data:`BASELINE_GRIDS`, or ``grid=``; ``inner_folds=0`` with a
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
        self.grid = dict(grid) if grid is not None else {k: list(v) for k, v in BASELINE_GRIDS[model].items()}
        self.inner_folds = int(inner_folds)
        self.n_estimators = int(n_estimators) if n_estimators is not None else (300 if model == "gbm" else 200)
        self.best_params_: Optional[Dict[str, Any]] = None

    def _params(self):
        return {"model": self.model, "grid": self.grid}

    def pretrain(self, X_source=None, y_source=None) -> TreeBaseline:
        return self

    def use_source(self, model=None, X_source=None, y_source=None, task=None) -> TreeBaseline:
        self.is_adapted_ = False
        return self

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        self.target_, self.best_params_ = fit_tree(
            self.model, X, y, self.is_classifier, grid=self.grid, inner_folds=self.inner_folds, seed=self.seed,
            n_estimators=self.n_estimators, sample_weight=self._row_weight)

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

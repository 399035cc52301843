"""No-transfer baselines a user would otherwise pick: gradient boosting and a random forest on the
same descriptors, with settings chosen by inner cross-validation on the training rows only."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from .base import TransferStrategy
from .heads import _threads

__all__ = ["TreeBaseline", "BASELINE_GRIDS", "baseline_strategies"]

#: The small grids searched by inner CV (3-fold, on the training rows of each fold).
BASELINE_GRIDS: Dict[str, Dict[str, List[Any]]] = {
    # HistGradientBoosting{Regressor,Classifier}: 300 trees, no early stopping (deterministic)
    "gbm": {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31]},
    # RandomForest{Regressor,Classifier}: 200 trees
    "rf": {"max_features": ["sqrt", 0.2], "min_samples_leaf": [1, 3]},
}


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

    def _estimator(self):
        from sklearn import ensemble
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline

        if self.model == "gbm":
            cls = ensemble.HistGradientBoostingClassifier if self.is_classifier else ensemble.HistGradientBoostingRegressor
            return cls(max_iter=self.n_estimators, early_stopping=False, random_state=self.seed)
        cls = ensemble.RandomForestClassifier if self.is_classifier else ensemble.RandomForestRegressor
        return make_pipeline(SimpleImputer(), cls(n_estimators=self.n_estimators, random_state=self.seed, n_jobs=1))

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

        est = self._estimator()
        prefix = "" if self.model == "gbm" else est.steps[-1][0] + "__"
        grid = {prefix + k: v for k, v in self.grid.items()}
        if self.inner_folds < 2:  # no search: the grid must name one setting, fitted directly
            if any(len(v) != 1 for v in self.grid.values()):
                raise ValueError(f"inner_folds={self.inner_folds} fits one setting: give every grid entry one value, not {self.grid}")
            est.set_params(**{k: v[0] for k, v in grid.items()})
            fit_params = {} if self._row_weight is None else {prefix + "sample_weight": self._row_weight}
            with _threads():
                est.fit(X, y.astype(np.int64) if self.is_classifier else y, **fit_params)
            self.best_params_ = {k: v[0] for k, v in self.grid.items()}
            self.target_ = est
            return
        if self.is_classifier:
            cv = StratifiedKFold(self.inner_folds, shuffle=True, random_state=self.seed)
            scoring, target = "neg_log_loss", y.astype(np.int64)
        else:
            cv = KFold(self.inner_folds, shuffle=True, random_state=self.seed)
            scoring, target = "neg_mean_absolute_error", y
        search = GridSearchCV(est, grid, cv=cv, scoring=scoring, refit=True, n_jobs=1)
        fit_params = {}
        if self._row_weight is not None:
            fit_params[prefix + "sample_weight"] = self._row_weight
        with _threads():
            search.fit(X, target, **fit_params)
        self.best_params_ = {k.removeprefix(prefix): v for k, v in search.best_params_.items()}
        self.target_ = search.best_estimator_

    def _predict(self, X: np.ndarray) -> np.ndarray:
        with _threads():
            if self.is_classifier:
                out = np.zeros((len(X), self.n_classes))
                out[:, np.asarray(self.target_.classes_, dtype=np.int64)] = self.target_.predict_proba(X)
                return out
            return np.asarray(self.target_.predict(X), dtype=np.float64)


def baseline_strategies(names=("gbm", "rf"), seed: int = 0, task: Optional[str] = None, **kwargs) -> Dict[str, TreeBaseline]:
    """``{name: TreeBaseline}`` for the requested baselines."""
    return {n: TreeBaseline(model=n, seed=seed, task=task, **kwargs) for n in names}

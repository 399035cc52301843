"""Tree baselines without torch: gradient boosting and random forests with settings chosen by inner CV.

Shared by :class:`matxfer.transfer.TreeBaseline` (needs torch for the strategy API) and by
:func:`matxfer.library.scan` (which must run from a plain ``pip install matxfer``), so both report
the same baseline a user would otherwise pick.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

#: The small grids searched by inner CV (3-fold, on the training rows of each fold).
BASELINE_GRIDS: Dict[str, Dict[str, List[Any]]] = {
    # HistGradientBoosting{Regressor,Classifier}, no early stopping (deterministic); the tree count is
    # searched with the learning rate, as the two trade off against each other
    "gbm": {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31], "max_iter": [300, 1000]},
    # RandomForest{Regressor,Classifier}: 200 trees (more trees only average more; the count is not searched)
    "rf": {"max_features": ["sqrt", 0.2], "min_samples_leaf": [1, 3]},
}

#: the parameter that holds each model's tree count
TREE_COUNT = {"gbm": "max_iter", "rf": "n_estimators"}


def resolve_grid(model: str, grid: Optional[Dict[str, List[Any]]], n_estimators: Optional[int]) -> Dict[str, List[Any]]:
    """The grid to search: ``grid``, or the default :data:`BASELINE_GRIDS` entry without its tree count
    when ``n_estimators`` fixes it. A tree count given both ways is refused rather than one ignored."""
    if model not in BASELINE_GRIDS:
        raise ValueError(f"model must be one of {sorted(BASELINE_GRIDS)}, not {model!r}")
    key = TREE_COUNT[model]
    if grid is None:
        return {k: list(v) for k, v in BASELINE_GRIDS[model].items() if not (n_estimators is not None and k == key)}
    grid = {k: list(v) for k, v in grid.items()}
    if n_estimators is not None and key in grid:
        raise ValueError(f"the tree count is given twice: n_estimators={n_estimators} and grid[{key!r}]={grid[key]}")
    return grid


def one_thread():
    """scikit-learn trees run with one OpenMP thread. Their data are small (target rows), and
    OpenMP's spin-waiting makes gradient boosting on a few hundred rows take minutes instead of
    seconds as soon as another process competes for the cores (measured: 150 rows, 1000 trees,
    2 threads on a busy 2-core machine 212 s, 1 thread 2-4 s)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def tree_estimator(model: str, classifier: bool, seed: int, n_estimators: Optional[int] = None):
    """An unfitted scikit-learn gradient-boosting (``"gbm"``) or random-forest (``"rf"``, behind a mean imputer) model."""
    from sklearn import ensemble
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    if model not in BASELINE_GRIDS:
        raise ValueError(f"model must be one of {sorted(BASELINE_GRIDS)}, not {model!r}")
    if model == "gbm":
        cls = ensemble.HistGradientBoostingClassifier if classifier else ensemble.HistGradientBoostingRegressor
        return cls(max_iter=300 if n_estimators is None else int(n_estimators), early_stopping=False, random_state=seed)
    cls = ensemble.RandomForestClassifier if classifier else ensemble.RandomForestRegressor
    n = 200 if n_estimators is None else int(n_estimators)
    return make_pipeline(SimpleImputer(), cls(n_estimators=n, random_state=seed, n_jobs=1))


def fit_tree(model: str, X: np.ndarray, y: np.ndarray, classifier: bool, grid: Optional[Dict[str, List[Any]]] = None,
             inner_folds: int = 3, seed: int = 0, n_estimators: Optional[int] = None,
             sample_weight: Optional[np.ndarray] = None, cv: Any = None) -> Tuple[Any, Dict[str, Any]]:
    """Fit ``model`` on (X, y) with its setting chosen from ``grid`` (default :data:`BASELINE_GRIDS`) by
    ``inner_folds``-fold CV on these rows only (stratified and scored by log loss for classes, MAE
    otherwise), refitted on all of them. ``inner_folds < 2`` fits a one-setting grid directly.
    ``cv``: explicit inner ``(train, test)`` index pairs instead (e.g. folds that keep a material's
    rows together). Returns ``(fitted estimator, chosen setting)``."""
    from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

    grid = resolve_grid(model, grid, n_estimators)
    est = tree_estimator(model, classifier, seed, n_estimators)
    prefix = "" if model == "gbm" else est.steps[-1][0] + "__"
    prefixed = {prefix + k: v for k, v in grid.items()}
    target = y.astype(np.int64) if classifier else y
    fit_params = {} if sample_weight is None else {prefix + "sample_weight": sample_weight}
    if inner_folds < 2:  # no search: the grid must name one setting, fitted directly
        if any(len(v) != 1 for v in grid.values()):
            raise ValueError(f"inner_folds={inner_folds} fits one setting: give every grid entry one value, not {grid}")
        est.set_params(**{k: v[0] for k, v in prefixed.items()})
        with one_thread():
            est.fit(X, target, **fit_params)
        return est, {k: v[0] for k, v in grid.items()}
    scoring = "neg_log_loss" if classifier else "neg_mean_absolute_error"
    if cv is not None:
        cv = list(cv)
    elif classifier:
        cv = StratifiedKFold(inner_folds, shuffle=True, random_state=seed)
    else:
        cv = KFold(inner_folds, shuffle=True, random_state=seed)
    search = GridSearchCV(est, prefixed, cv=cv, scoring=scoring, refit=True, n_jobs=1)
    with one_thread():
        search.fit(X, target, **fit_params)
    return search.best_estimator_, {k.removeprefix(prefix): v for k, v in search.best_params_.items()}

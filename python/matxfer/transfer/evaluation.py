"""Honest evaluation: k-fold CV, learning curves over training-set size, baselines side by side, plots.

Every fold (and every learning-curve subset) starts from ``strategy.fresh()``, an independent copy
of the pretrained strategy, so nothing learned on one fold's training rows reaches another fold.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Sequence, cast

import numpy as np

from .._evaluation import (
    CVResult,
    check_groups,
    composition_keys,
    grouped_folds,
    learning_curve_plot,
    overlap_mask,
    parity_plot,
    regression_metrics,
)
from .base import TransferStrategy

__all__ = [
    "MATBENCH_SEED",
    "matbench_kfold",
    "regression_metrics",
    "CVResult",
    "cross_validate",
    "learning_curve",
    "composition_keys",
    "grouped_folds",
    "overlap_mask",
    "parity_plot",
    "learning_curve_plot",
]

#: random_state of matbench's KFold(n_splits=5, shuffle=True)
MATBENCH_SEED = 18012019
DEFAULT_SIZES = (25, 50, 100, 200, 500, None)


def matbench_kfold(classification: bool = False):
    """The matbench protocol split: ``KFold(n_splits=5, shuffle=True, random_state=18012019)``;
    ``StratifiedKFold`` with the same settings for classification tasks (as matbench does)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if classification:
        return StratifiedKFold(n_splits=5, shuffle=True, random_state=MATBENCH_SEED)
    return KFold(n_splits=5, shuffle=True, random_state=MATBENCH_SEED)


def _task_labels(strategy: TransferStrategy, y):
    """(task, y as the strategy takes it, class index for splitting and scoring, classes)."""
    from .tasks import encode_labels

    task = strategy.resolve_task(y)
    if task == "classification":
        index, classes, _ = encode_labels(y, len(np.asarray(y)))
        return task, np.asarray(y), index.astype(np.int64), classes
    return task, np.asarray(y, dtype=np.float64), None, None


def _score(task: str, y_true, index_true, pred_or_proba, classes) -> Dict[str, float]:
    if task == "classification":
        from .tasks import classification_metrics

        proba = np.asarray(pred_or_proba)
        # a fold's model knows only the classes of its training rows: align columns to all classes
        return classification_metrics(index_true, proba)
    return regression_metrics(y_true, pred_or_proba)


def _fit_predict(strategy: TransferStrategy, X, y_fit, X_test, task: str, classes, groups=None):
    # only strategies whose adapt takes groups get them (_accepts_groups)
    model = strategy.adapt(X, y_fit) if groups is None else cast(Any, strategy).adapt(X, y_fit, groups=groups)
    if task != "classification":
        return model.predict(X_test)
    proba = model.predict_proba(X_test)
    if model.classes_ == classes:
        return proba
    out = np.zeros((len(X_test), len(classes)))
    lookup = {str(c): i for i, c in enumerate(classes)}
    for j, c in enumerate(model.classes_ or []):
        out[:, lookup[str(c)]] = proba[:, j]
    return out


def cross_validate(
    strategy: TransferStrategy,
    X,
    y,
    cv=None,
    name: Optional[str] = None,
    verbose: bool = False,
    baselines: Sequence[Any] = (),
    groups=None,
) -> CVResult:
    """K-fold CV (default: the matbench protocol, stratified for classification) of an already
    pretrained strategy. A fresh copy of the pretrained strategy is adapted in every fold.

    ``groups`` (one label per row, e.g. :func:`composition_keys` of the formulas when one material
    has rows at several temperatures): the default folds become :func:`grouped_folds` (5 folds, the
    matbench seed), a splitter given as ``cv`` gets the groups in its ``split`` call (GroupKFold and
    the like), and every strategy whose ``adapt`` takes ``groups`` (:class:`TreeBaseline`: its inner
    grid search) gets the training rows' groups, so no material is on both sides of any split.
    ``cv`` may also be a number of folds (shuffled with the matbench seed) or a list of ``(train, test)``
    index pairs.

    Regression folds report MAE, RMSE, R^2; classification folds ROC-AUC, balanced accuracy, F1,
    log loss, Brier score and accuracy (:func:`matxfer.transfer.tasks.classification_metrics`).
    ``baselines``: names ("gbm", "rf": :class:`TreeBaseline` with inner-CV settings) or strategies,
    evaluated on the same folds and returned in ``result.baselines``.
    """
    from .baselines import TreeBaseline

    X = np.asarray(X, dtype=np.float64)
    task, y, index, classes = _task_labels(strategy, y)
    classification = task == "classification"
    if groups is not None:
        groups = check_groups(groups, len(y))
    if cv is None or isinstance(cv, (int, np.integer)):
        k = 5 if cv is None else int(cv)
        if groups is not None:
            cv = grouped_folds(groups, index if classification else y, k, MATBENCH_SEED, classification)
        else:
            from sklearn.model_selection import KFold, StratifiedKFold

            cv = (StratifiedKFold if classification else KFold)(k, shuffle=True, random_state=MATBENCH_SEED)
    if hasattr(cv, "split"):
        if groups is not None:
            splits = list(cv.split(X, index if classification else y, groups))
        else:
            splits = list(cv.split(X, index) if classification else cv.split(X))
    else:
        splits = [(np.asarray(tr), np.asarray(te)) for tr, te in cv]
    _check_splits(splits, len(y), groups)
    result = _cross_validate_one(strategy, X, y, task, index, classes, splits, groups, name or strategy.name, verbose)
    for b in baselines:
        base = TreeBaseline(model=b, seed=strategy.seed, task=task) if isinstance(b, str) else b
        if base.task is None:
            base.task = task
        label = f"{b} (no transfer)" if isinstance(b, str) else base.name
        result.baselines[label] = _cross_validate_one(base, X, y, task, index, classes, splits, groups, label, verbose)
    return result


def _check_splits(splits, n: int, groups) -> None:
    """Every test row in one fold at most, indices in range, and no group on both sides of a split."""
    seen = np.zeros(n, dtype=bool)
    for k, (train, test) in enumerate(splits):
        for part in (train, test):
            if part.dtype.kind not in "iu" or (len(part) and (part.min() < 0 or part.max() >= n)):
                raise ValueError(f"cv fold {k}: indices must be integers in [0, {n})")
        if seen[test].any():
            raise ValueError(f"cv fold {k}: row {int(test[seen[test]][0])} is a test row of an earlier fold too")
        seen[test] = True
        if groups is not None:
            shared = np.intersect1d(groups[train], groups[test])
            if len(shared):
                raise ValueError(f"cv fold {k}: group {shared[0]!r} has rows on both the training and the test side")


def _accepts_groups(strategy) -> bool:
    import inspect

    return "groups" in inspect.signature(strategy.adapt).parameters


def _cross_validate_one(strategy, X, y, task, index, classes, splits, groups, name, verbose) -> CVResult:
    classification = task == "classification"
    predictions = np.full((len(y), len(classes)) if classification else len(y), np.nan)
    result = CVResult(name, predictions=predictions, task=task)
    t0 = time.perf_counter()
    pass_groups = groups is not None and _accepts_groups(strategy)
    for k, (train_idx, test_idx) in enumerate(splits):
        pred = _fit_predict(strategy.fresh(), X[train_idx], y[train_idx], X[test_idx], task, classes,
                            groups[train_idx] if pass_groups else None)
        predictions[test_idx] = pred
        metrics = _score(task, y[test_idx], None if index is None else index[test_idx], pred, classes)
        result.folds.append(metrics)
        if verbose:
            print(f"  {result.name} fold {k}: {result.primary}={metrics[result.primary]:.4f}", flush=True)
    result.seconds = time.perf_counter() - t0
    return result


def learning_curve(
    strategy: TransferStrategy,
    X,
    y,
    sizes: Sequence[Optional[int]] = DEFAULT_SIZES,
    n_repeats: int = 5,
    test_fraction: float = 0.2,
    seed: int = 0,
    name: Optional[str] = None,
    verbose: bool = False,
    baselines: Sequence[Any] = (),
    groups=None,
) -> Dict[str, Any]:
    """Test error against training-set size, averaged over ``n_repeats`` random subsets.

    One seeded split holds out ``test_fraction`` of the rows as a fixed test set; for each size
    and repeat a random training subset (``None`` = all remaining rows, evaluated once per
    repeat with a different seed) is drawn from the rest. Returns a dict with ``sizes``,
    ``mae`` (mean per size), ``mae_std``, ``runs`` (every individual result) and ``test_index``.

    Classification: the test set and every training subset are drawn stratified by class (each
    subset keeps at least one row of every class when it can), and the curve holds every
    classification metric and its ``_std`` per size (``roc_auc``, ``roc_auc_std``, ...).
    ``baselines`` (names "gbm"/"rf" or strategies) get curves on the same subsets, under ``"baselines"``.
    ``groups`` (one label per row): the test set is whole groups (about ``test_fraction`` of the rows;
    a group never has rows on both sides), and strategies whose ``adapt`` takes ``groups`` get the
    training subset's groups.
    """
    from .baselines import TreeBaseline

    X = np.asarray(X, dtype=np.float64)
    task, y, index, classes = _task_labels(strategy, y)
    if groups is not None:
        groups = check_groups(groups, len(y))
        test_idx, pool = _split_pool_grouped(groups, test_fraction, seed)
    else:
        test_idx, pool = _split_pool(len(y), test_fraction, seed, index)
    curve = _curve_one(strategy, X, y, task, index, classes, test_idx, pool, sizes, n_repeats, seed,
                       name or strategy.name, verbose, groups)
    curve["test_index"] = test_idx.tolist()  # the fixed test rows (row indices of X; a list, JSON-safe)
    curve["baselines"] = {}
    for b in baselines:
        base = TreeBaseline(model=b, seed=strategy.seed, task=task) if isinstance(b, str) else b
        if base.task is None:
            base.task = task
        label = f"{b} (no transfer)" if isinstance(b, str) else base.name
        curve["baselines"][label] = _curve_one(base, X, y, task, index, classes, test_idx, pool, sizes, n_repeats,
                                               seed, label, verbose, groups)
    return curve


def _split_pool_grouped(groups: np.ndarray, test_fraction: float, seed: int):
    """Whole groups, in a seeded random order, go to the test set until it holds ``test_fraction`` of the rows."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    _, gid = np.unique(groups, return_inverse=True)
    gid = gid.reshape(-1)
    n_groups = int(gid.max()) + 1
    if n_groups < 2:
        raise ValueError("groups: at least two groups are needed to hold some out as a test set")
    sizes = np.bincount(gid)
    order = np.random.default_rng(seed).permutation(n_groups)
    want = test_fraction * len(groups)
    cum = np.cumsum(sizes[order])
    n_test_groups = min(max(1, int(np.searchsorted(cum, want)) + 1), n_groups - 1)
    test_group = np.zeros(n_groups, dtype=bool)
    test_group[order[:n_test_groups]] = True
    in_test = test_group[gid]
    return np.flatnonzero(in_test), np.flatnonzero(~in_test)


def _split_pool(n: int, test_fraction: float, seed: int, index):
    rng = np.random.default_rng(seed)
    if index is None:
        perm = rng.permutation(n)
        n_test = int(round(test_fraction * n))
        return perm[:n_test], perm[n_test:]
    from sklearn.model_selection import StratifiedShuffleSplit

    split = StratifiedShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
    pool, test = next(split.split(np.zeros(n), index))
    return test, pool


def _draw(pool, n: int, seed: int, r: int, index):
    sub_rng = np.random.default_rng([seed, n, r])
    if index is None or n >= len(pool):
        return sub_rng.choice(pool, size=n, replace=False)
    # stratified: each class in proportion (at least one row of each class where possible)
    labels = index[pool]
    classes, counts = np.unique(labels, return_counts=True)
    want = np.maximum(np.floor(counts / len(pool) * n).astype(int), 1)
    while want.sum() > n:
        want[np.argmax(want)] -= 1
    left = n - want.sum()
    picked = [sub_rng.choice(pool[labels == c], size=min(w, cnt), replace=False) for c, w, cnt in zip(classes, want, counts)]
    chosen = np.concatenate(picked)
    if left > 0:
        rest = np.setdiff1d(pool, chosen)
        chosen = np.concatenate([chosen, sub_rng.choice(rest, size=left, replace=False)])
    return sub_rng.permutation(chosen)


def _curve_one(strategy, X, y, task, index, classes, test_idx, pool, sizes, n_repeats, seed, name, verbose, groups=None):
    runs = []
    pass_groups = groups is not None and _accepts_groups(strategy)
    resolved = []
    primary = "roc_auc" if task == "classification" else "mae"
    for size in sizes:
        n = len(pool) if size is None or size >= len(pool) else int(size)
        resolved.append(n)
        for r in range(n_repeats):
            train_idx = _draw(pool, n, seed, r, index)
            model = strategy.fresh()
            model.seed = strategy.seed + r
            pred = _fit_predict(model, X[train_idx], y[train_idx], X[test_idx], task, classes,
                                groups[train_idx] if pass_groups else None)
            metrics = _score(task, y[test_idx], None if index is None else index[test_idx], pred, classes)
            runs.append({"size": n, "repeat": r, **metrics})
            if verbose:
                print(f"  {name} n={n} repeat={r}: {primary}={metrics[primary]:.4f}", flush=True)
    curve: Dict[str, Any] = {"name": name, "task": task, "sizes": resolved, "runs": runs}
    for metric in [k for k in runs[0] if k not in ("size", "repeat")] if runs else []:
        curve[metric] = [float(np.mean([run[metric] for run in runs if run["size"] == n])) for n in resolved]
        curve[f"{metric}_std"] = [float(np.std([run[metric] for run in runs if run["size"] == n])) for n in resolved]
    return curve

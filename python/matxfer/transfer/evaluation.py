"""Honest evaluation: k-fold CV, learning curves over training-set size, baselines side by side, plots.

Every fold (and every learning-curve subset) starts from ``strategy.fresh()``, an independent copy
of the pretrained strategy, so nothing learned on one fold's training rows reaches another fold.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Sequence

import numpy as np

from .._evaluation import (
    CVResult,
    composition_keys,
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
    "overlap_mask",
    "parity_plot",
    "learning_curve_plot",
]

#: random_state of matbench's KFold(n_splits=5, shuffle=True)
MATBENCH_SEED = 18012019
DEFAULT_SIZES = (25, 50, 100, 200, 500, None)


def matbench_kfold():
    """The matbench protocol split: ``KFold(n_splits=5, shuffle=True, random_state=18012019)``."""
    from sklearn.model_selection import KFold

    return KFold(n_splits=5, shuffle=True, random_state=MATBENCH_SEED)


def cross_validate(
    strategy: TransferStrategy,
    X,
    y,
    cv=None,
    name: Optional[str] = None,
    verbose: bool = False,
) -> CVResult:
    """K-fold CV (default: the matbench protocol) of an already pretrained strategy.

    A fresh copy of the pretrained strategy is adapted in every fold.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    cv = cv or matbench_kfold()
    predictions = np.full(len(y), np.nan)
    result = CVResult(name or strategy.name, predictions=predictions)
    t0 = time.perf_counter()
    for k, (train_idx, test_idx) in enumerate(cv.split(X)):
        fold = strategy.fresh().adapt(X[train_idx], y[train_idx])
        pred = fold.predict(X[test_idx])
        predictions[test_idx] = pred
        metrics = regression_metrics(y[test_idx], pred)
        result.folds.append(metrics)
        if verbose:
            print(f"  {result.name} fold {k}: MAE={metrics['mae']:.4f}", flush=True)
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
) -> Dict[str, Any]:
    """Test error against training-set size, averaged over ``n_repeats`` random subsets.

    One seeded split holds out ``test_fraction`` of the rows as a fixed test set; for each size
    and repeat a random training subset (``None`` = all remaining rows, evaluated once per
    repeat with a different seed) is drawn from the rest. Returns a dict with ``sizes``,
    ``mae`` (mean per size), ``mae_std`` and ``runs`` (every individual result).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test_idx, pool = perm[:n_test], perm[n_test:]
    runs = []
    resolved = []
    for size in sizes:
        n = len(pool) if size is None or size >= len(pool) else int(size)
        resolved.append(n)
        for r in range(n_repeats):
            sub_rng = np.random.default_rng([seed, n, r])
            train_idx = sub_rng.choice(pool, size=n, replace=False)
            model = strategy.fresh()
            model.seed = strategy.seed + r
            model.adapt(X[train_idx], y[train_idx])
            metrics = regression_metrics(y[test_idx], model.predict(X[test_idx]))
            runs.append({"size": n, "repeat": r, **metrics})
            if verbose:
                print(f"  {name or strategy.name} n={n} repeat={r}: MAE={metrics['mae']:.4f}", flush=True)
    mae = [float(np.mean([run["mae"] for run in runs if run["size"] == n])) for n in resolved]
    mae_std = [float(np.std([run["mae"] for run in runs if run["size"] == n])) for n in resolved]
    return {"name": name or strategy.name, "sizes": resolved, "mae": mae, "mae_std": mae_std, "runs": runs}

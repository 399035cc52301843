"""Honest evaluation: k-fold CV, learning curves over training-set size, baselines side by side, plots.

Every fold (and every learning-curve subset) starts from ``strategy.fresh()``, an independent copy
of the pretrained strategy, so nothing learned on one fold's training rows reaches another fold.
"""

from __future__ import annotations

import textwrap
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

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


def _fit_predict(strategy: TransferStrategy, X, y_fit, X_test, task: str, classes):
    model = strategy.adapt(X, y_fit)
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


def regression_metrics(y_true, y_pred) -> Dict[str, float]:
    """MAE, RMSE and R^2 (1 - SS_res / SS_tot)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shape mismatch: {y_true.shape} vs {y_pred.shape}")
    err = y_pred - y_true
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "r2": 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan"),
    }


@dataclass
class CVResult:
    """Per-fold metrics and out-of-fold predictions of one strategy."""

    name: str
    folds: List[Dict[str, float]] = field(default_factory=list)
    #: out-of-fold predictions (classification: class probabilities [n, n_classes])
    predictions: Optional[np.ndarray] = None
    seconds: float = 0.0
    task: str = "regression"
    #: the no-transfer baselines on the same folds (``cross_validate(..., baselines=...)``)
    baselines: Dict[str, CVResult] = field(default_factory=dict)

    @property
    def primary(self) -> str:
        return "roc_auc" if self.task == "classification" else "mae"

    def mean(self, metric: Optional[str] = None) -> float:
        return float(np.mean([f[metric or self.primary] for f in self.folds]))

    def std(self, metric: Optional[str] = None) -> float:
        return float(np.std([f[metric or self.primary] for f in self.folds]))

    def summary(self) -> Dict[str, float]:
        out = {m: self.mean(m) for m in self.folds[0]} if self.folds else {}
        out[f"{self.primary}_std"] = self.std(self.primary)
        out["seconds"] = self.seconds
        return out

    def table(self) -> Dict[str, Dict[str, float]]:
        """``{name: summary}`` for this strategy and every baseline."""
        return {self.name: self.summary(), **{b.name: b.summary() for b in self.baselines.values()}}


def cross_validate(
    strategy: TransferStrategy,
    X,
    y,
    cv=None,
    name: Optional[str] = None,
    verbose: bool = False,
    baselines: Sequence[Any] = (),
) -> CVResult:
    """K-fold CV (default: the matbench protocol, stratified for classification) of an already
    pretrained strategy. A fresh copy of the pretrained strategy is adapted in every fold.

    Regression folds report MAE, RMSE, R^2; classification folds ROC-AUC, balanced accuracy, F1,
    log loss, Brier score and accuracy (:func:`matxfer.transfer.tasks.classification_metrics`).
    ``baselines``: names ("gbm", "rf": :class:`TreeBaseline` with inner-CV settings) or strategies,
    evaluated on the same folds and returned in ``result.baselines``.
    """
    from .baselines import TreeBaseline

    X = np.asarray(X, dtype=np.float64)
    task, y, index, classes = _task_labels(strategy, y)
    cv = cv or matbench_kfold(task == "classification")
    result = _cross_validate_one(strategy, X, y, task, index, classes, cv, name or strategy.name, verbose)
    for b in baselines:
        base = TreeBaseline(model=b, seed=strategy.seed, task=task) if isinstance(b, str) else b
        if base.task is None:
            base.task = task
        label = f"{b} (no transfer)" if isinstance(b, str) else base.name
        result.baselines[label] = _cross_validate_one(base, X, y, task, index, classes, cv, label, verbose)
    return result


def _cross_validate_one(strategy, X, y, task, index, classes, cv, name, verbose) -> CVResult:
    classification = task == "classification"
    predictions = np.full((len(y), len(classes)) if classification else len(y), np.nan)
    result = CVResult(name, predictions=predictions, task=task)
    t0 = time.perf_counter()
    split = cv.split(X, index) if classification else cv.split(X)
    for k, (train_idx, test_idx) in enumerate(split):
        pred = _fit_predict(strategy.fresh(), X[train_idx], y[train_idx], X[test_idx], task, classes)
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
) -> Dict[str, Any]:
    """Test error against training-set size, averaged over ``n_repeats`` random subsets.

    One seeded split holds out ``test_fraction`` of the rows as a fixed test set; for each size
    and repeat a random training subset (``None`` = all remaining rows, evaluated once per
    repeat with a different seed) is drawn from the rest. Returns a dict with ``sizes``,
    ``mae`` (mean per size), ``mae_std`` and ``runs`` (every individual result).

    Classification: the test set and every training subset are drawn stratified by class (each
    subset keeps at least one row of every class when it can), and the curve holds every
    classification metric and its ``_std`` per size (``roc_auc``, ``roc_auc_std``, ...).
    ``baselines`` (names "gbm"/"rf" or strategies) get curves on the same subsets, under ``"baselines"``.
    """
    from .baselines import TreeBaseline

    X = np.asarray(X, dtype=np.float64)
    task, y, index, classes = _task_labels(strategy, y)
    test_idx, pool = _split_pool(len(y), test_fraction, seed, index)
    curve = _curve_one(strategy, X, y, task, index, classes, test_idx, pool, sizes, n_repeats, seed,
                       name or strategy.name, verbose)
    curve["baselines"] = {}
    for b in baselines:
        base = TreeBaseline(model=b, seed=strategy.seed, task=task) if isinstance(b, str) else b
        if base.task is None:
            base.task = task
        label = f"{b} (no transfer)" if isinstance(b, str) else base.name
        curve["baselines"][label] = _curve_one(base, X, y, task, index, classes, test_idx, pool, sizes, n_repeats,
                                               seed, label, verbose)
    return curve


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


def _curve_one(strategy, X, y, task, index, classes, test_idx, pool, sizes, n_repeats, seed, name, verbose):
    runs = []
    resolved = []
    primary = "roc_auc" if task == "classification" else "mae"
    for size in sizes:
        n = len(pool) if size is None or size >= len(pool) else int(size)
        resolved.append(n)
        for r in range(n_repeats):
            train_idx = _draw(pool, n, seed, r, index)
            model = strategy.fresh()
            model.seed = strategy.seed + r
            pred = _fit_predict(model, X[train_idx], y[train_idx], X[test_idx], task, classes)
            metrics = _score(task, y[test_idx], None if index is None else index[test_idx], pred, classes)
            runs.append({"size": n, "repeat": r, **metrics})
            if verbose:
                print(f"  {name} n={n} repeat={r}: {primary}={metrics[primary]:.4f}", flush=True)
    curve: Dict[str, Any] = {"name": name, "task": task, "sizes": resolved, "runs": runs}
    for metric in [k for k in runs[0] if k not in ("size", "repeat")] if runs else []:
        curve[metric] = [float(np.mean([run[metric] for run in runs if run["size"] == n])) for n in resolved]
        curve[f"{metric}_std"] = [float(np.std([run[metric] for run in runs if run["size"] == n])) for n in resolved]
    return curve


def composition_keys(formulas: Sequence[str], decimals: int = 6, n_threads: Optional[int] = None) -> np.ndarray:
    """A hashable key per formula that is equal for equal reduced compositions
    (element fractions from ``matxfer.featurize(preset="fraction")``, rounded)."""
    import matxfer

    fractions, _ = matxfer.featurize(list(formulas), preset="fraction", n_threads=n_threads)
    rounded = np.round(np.asarray(fractions, dtype=np.float64), decimals) + 0.0  # -0.0 -> 0.0
    return np.array([row.tobytes() for row in rounded], dtype=object)


def overlap_mask(source_formulas: Sequence[str], target_formulas: Sequence[str]) -> np.ndarray:
    """Boolean mask over the source rows whose reduced composition also occurs in the target."""
    target = set(composition_keys(target_formulas).tolist())
    return np.array([k in target for k in composition_keys(source_formulas)], dtype=bool)


def parity_plot(y_true, y_pred, path: str, title: str = "", unit: str = "") -> str:
    """Save a parity plot (prediction vs measurement) with MAE/R^2 in the corner; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    m = regression_metrics(y_true, y_pred)
    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=120)
    lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=1)
    ax.scatter(y_true, y_pred, s=4, alpha=0.4, lw=0)
    label = f" ({unit})" if unit else ""
    ax.set_xlabel(f"measured{label}")
    ax.set_ylabel(f"predicted{label}")
    ax.set_title(textwrap.fill(title, 50), fontsize=9)  # long titles wrap instead of leaving the figure
    ax.text(0.04, 0.96, f"MAE {m['mae']:.3f}\nR$^2$ {m['r2']:.3f}", transform=ax.transAxes, va="top", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def learning_curve_plot(curves: Mapping[str, Mapping], path: str, title: str = "", unit: str = "") -> str:
    """Save MAE against training-set size (log x) for several strategies; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.0), dpi=120)
    for name, curve in curves.items():
        ax.errorbar(curve["sizes"], curve["mae"], yerr=curve["mae_std"], marker="o", ms=3, capsize=2, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("training-set size")
    ax.set_ylabel(f"test MAE{f' ({unit})' if unit else ''}")
    ax.set_title(textwrap.fill(title, 50), fontsize=9)  # long titles wrap instead of leaving the figure
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

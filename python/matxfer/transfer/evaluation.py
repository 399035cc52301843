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


def matbench_kfold():
    """The matbench protocol split: ``KFold(n_splits=5, shuffle=True, random_state=18012019)``."""
    from sklearn.model_selection import KFold

    return KFold(n_splits=5, shuffle=True, random_state=MATBENCH_SEED)


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
    predictions: Optional[np.ndarray] = None
    seconds: float = 0.0

    def mean(self, metric: str = "mae") -> float:
        return float(np.mean([f[metric] for f in self.folds]))

    def std(self, metric: str = "mae") -> float:
        return float(np.std([f[metric] for f in self.folds]))

    def summary(self) -> Dict[str, float]:
        out = {m: self.mean(m) for m in ("mae", "rmse", "r2")}
        out["mae_std"] = self.std("mae")
        out["seconds"] = self.seconds
        return out


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

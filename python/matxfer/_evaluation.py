"""Metrics, CV results, composition keys and plots without torch (used by ``matxfer.transfer``
and by the torch-free ``matxfer demo``)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np


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


def composition_keys(formulas: Sequence[str], decimals: int = 6, n_threads: Optional[int] = None) -> np.ndarray:
    """A hashable key per formula that is equal for equal reduced compositions
    (element fractions from ``matxfer.featurize(preset="fraction")``, rounded)."""
    import matxfer

    fractions, _ = matxfer.featurize(list(formulas), preset="fraction", n_threads=n_threads)
    rounded = np.round(np.asarray(fractions, dtype=np.float64), decimals) + 0.0  # -0.0 -> 0.0
    return np.array([row.tobytes() for row in rounded], dtype=object)


def check_groups(groups, n: int) -> np.ndarray:
    """``groups`` as an array of one label per row (``n`` rows), or a ValueError that says what is wrong:
    the wrong length, a row without a label (None or NaN: it would silently join every other unlabelled
    row in one group), or labels that cannot be ordered (strings mixed with numbers)."""
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups needs one label per row ({n}), got shape {groups.shape}")
    if groups.dtype.kind == "f":
        missing = np.flatnonzero(np.isnan(groups))
    elif groups.dtype.kind == "O":
        missing = np.array([i for i, g in enumerate(groups) if g is None or (isinstance(g, float) and g != g)])
    else:
        missing = np.array([], dtype=np.int64)
    if len(missing):
        raise ValueError(f"groups: row {int(missing[0])} has no label ({groups[missing[0]]})")
    try:
        np.unique(groups)
    except TypeError as err:
        raise ValueError(f"groups: labels must be of one kind (all strings or all numbers): {err}") from None
    return groups


def grouped_folds(groups, y, k: int, seed: int = 0, classification: bool = False) -> List[Tuple[np.ndarray, np.ndarray]]:
    """``k`` ``(train, test)`` index pairs that keep every group whole (one label per row in ``groups``:
    a material measured at several temperatures, a composition in several phases). Classes
    (``classification=True``, ``y`` the labels): scikit-learn's StratifiedGroupKFold; otherwise the
    groups, in a seeded random order, each go to the fold with the fewest rows so far (folds of
    near-equal size whatever the group sizes)."""
    groups = check_groups(groups, len(y))
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    _, gid = np.unique(groups, return_inverse=True)
    gid = gid.reshape(-1)
    n_groups = int(gid.max()) + 1 if len(gid) else 0
    if n_groups < k:
        raise ValueError(f"{n_groups} groups are too few for {k}-fold CV that keeps each group in one fold")
    if classification:
        from sklearn.model_selection import StratifiedGroupKFold

        return list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), np.asarray(y), gid))
    sizes = np.bincount(gid)
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    load = np.zeros(k, dtype=np.int64)
    for g in np.random.default_rng(seed).permutation(n_groups):
        f = int(np.argmin(load))
        fold_of_group[g] = f
        load[f] += sizes[g]
    fold = fold_of_group[gid]
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(k)]


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

"""Shared plumbing for strategies that train on source and target rows together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..nn import TrainConfig

__all__ = ["JointRows", "joint_rows", "default_joint_config"]


def default_joint_config(**changes) -> TrainConfig:
    """Settings for joint source + target training (warm-started from the source model)."""
    return TrainConfig(
        epochs=40, batch_size=256, lr=5e-4, weight_decay=1e-4, patience=10, val_fraction=0.1, loss="l1"
    ).replace(**changes)


@dataclass
class JointRows:
    X: np.ndarray  # [n_source_used + n_target_train, d]
    is_target: np.ndarray  # bool per row
    y_source: np.ndarray  # NaN on target rows
    y_target: np.ndarray  # NaN on source rows
    weight: np.ndarray  # per-row loss weight
    X_val: Optional[np.ndarray]  # held-out target rows for early stopping
    y_val: Optional[np.ndarray]
    target_index: Optional[np.ndarray] = None  # which target rows (of X) are training rows, in order


def joint_rows(
    X_source: np.ndarray,
    y_source: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    max_source_rows: Optional[int],
    target_share: float,
    val_fraction: float,
    seed: int,
) -> JointRows:
    """Stack a seeded random subset of the source with the target training rows.

    ``y_source`` is [n_source] or [n_source, T] (T source tasks, NaN = no label); ``y_source`` of the
    result has the same number of columns.

    Target rows are weighted so that they carry ``target_share`` of the total loss weight,
    otherwise 1e5 source rows would drown a few hundred target rows. ``val_fraction`` of the
    target rows are held out (early stopping watches the target task only).
    """
    if not 0 < target_share < 1:
        raise ValueError("target_share must be in (0, 1)")
    rng = np.random.default_rng(seed)
    n_t = len(X)
    n_val = int(round(val_fraction * n_t)) if n_t >= 10 else 0
    perm = rng.permutation(n_t)
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    n_s = len(X_source)
    src_idx = np.arange(n_s)
    if max_source_rows is not None and n_s > max_source_rows:
        src_idx = np.sort(rng.choice(n_s, size=max_source_rows, replace=False))
    Xs, ys = X_source[src_idx], y_source[src_idx]
    Xt, yt = X[train_idx], y[train_idx]
    n_src, n_tgt = len(Xs), len(Xt)
    w_target = target_share / (1 - target_share) * n_src / max(n_tgt, 1)
    nan_s, nan_t = np.full(n_src, np.nan), np.full((n_tgt, *ys.shape[1:]), np.nan)
    return JointRows(
        X=np.concatenate([Xs, Xt]),
        is_target=np.concatenate([np.zeros(n_src, bool), np.ones(n_tgt, bool)]),
        y_source=np.concatenate([ys, nan_t]),
        y_target=np.concatenate([nan_s, yt]),
        weight=np.concatenate([np.ones(n_src), np.full(n_tgt, w_target)]),
        X_val=X[val_idx] if n_val else None,
        y_val=y[val_idx] if n_val else None,
        target_index=train_idx,
    )


def n_source_tasks(strategy) -> int:
    """Source tasks of a joint strategy: columns of its source labels, else the count saved with it."""
    y = strategy._y_source
    if y is not None:
        return 1 if y.ndim == 1 else y.shape[1]
    return int(getattr(strategy, "_n_source_tasks", 1))

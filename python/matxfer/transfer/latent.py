"""Explicit latent variable: a learned embedding per task (fidelity) is an extra network input.

Hutchinson et al. (2019) found this best for related properties (e.g. activation energies):
one network sees every fidelity, and the embedding tells it which one to predict.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..nn import MLP, ArrayData, LatentMLP, TrainConfig, Trainer, predict
from .base import TransferStrategy
from .joint import default_joint_config, joint_rows, n_source_tasks

__all__ = ["LatentVariable"]


class _TaskColumns(torch.nn.Module):
    """Training wrapper: column 0 of the output (the source tasks' value) then the target block."""

    def __init__(self, net: LatentMLP, target_width: int) -> None:
        super().__init__()
        self.net, self.target_width = net, target_width
        self.y_std = net.y_std

    def forward(self, x, task):
        out = self.net(x, task)
        return torch.cat([out[:, :1], out[:, : self.target_width]], dim=1)


class LatentVariable(TransferStrategy):
    """Joint training of source rows (task 0, or tasks 0..T-1) and target rows (the last task)
    through one :class:`LatentMLP` initialised from the source model.

    Any number of tasks: with ``Y_source`` of shape [n_source, T] (NaN = no label) every labelled
    (row, task) pair becomes one training row with its own task id, and the target is task T.
    ``predict_task(X, j)`` predicts any task. The tasks share one output scaling (the source's), so
    they should be in the same units (fidelities of one property).

    Classification targets: the target task's output is a logit (binary) or the network gets one
    output per class (source tasks use output 0), trained on ``loss``.

    Parameters
    ----------
    latent_dim : size of the task embedding.
    max_source_rows, target_share, joint_config : as in :class:`MultiTask`.
    """

    supports_conditions = False  # trains on source rows, which have no conditions

    name = "latent"
    needs_source_data = True

    def __init__(
        self,
        latent_dim: int = 4,
        max_source_rows: Optional[int] = 20000,
        target_share: float = 0.5,
        joint_config: Optional[TrainConfig] = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.latent_dim = int(latent_dim)
        self.max_source_rows = max_source_rows
        self.target_share = float(target_share)
        self.joint_config = joint_config or default_joint_config()

    def _params(self):
        return {"latent_dim": self.latent_dim, "max_source_rows": self.max_source_rows,
                "target_share": self.target_share}

    @property
    def n_source_tasks(self) -> int:
        return n_source_tasks(self)

    @property
    def target_task(self) -> int:
        return self.n_source_tasks

    def build_model(self) -> LatentMLP:
        source = self._require_source()
        if not isinstance(source, MLP):
            raise TypeError(f"LatentVariable appends a task embedding to an MLP's descriptors; a {type(source).__name__} "
                            "source is not supported: use MultiTask, FineTune, Delta or FrozenFeatures")
        a = source.init_args
        torch.manual_seed(self.seed)
        n_out = self.n_logits if self.is_classifier and self.n_logits > 1 else 1
        model = LatentMLP(a["n_in"], n_tasks=self.n_source_tasks + 1, latent_dim=self.latent_dim, hidden=a["hidden"],
                          activation=a["activation"], dropout=a["dropout"], n_out=n_out)
        return model.load_source_mlp(source)

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        if self._X_source is None or self._y_source is None:  # set together by use_source()
            raise RuntimeError("LatentVariable needs the source rows: use pretrain() or use_source(model, X, y)")
        config = self.joint_config.replace(seed=self.seed)
        rows = joint_rows(self._X_source, self._y_source, X, y, self.max_source_rows, self.target_share,
                          config.val_fraction, self.seed)
        self._n_source_tasks = T = self.n_source_tasks
        model = self.build_model()
        ys = rows.y_source[:, None] if rows.y_source.ndim == 1 else rows.y_source
        src = ~rows.is_target
        # one row per labelled (source row, task) pair, then the target rows
        r_idx, t_idx = np.nonzero(~np.isnan(ys[src]))
        src_rows = np.flatnonzero(src)[r_idx]
        tgt_rows = np.flatnonzero(rows.is_target)
        # weights: the source pairs keep weight 1 in total per source row's share, as with one task
        w_src = np.full(len(src_rows), len(np.flatnonzero(src)) / max(len(src_rows), 1))
        w_tgt = rows.weight[tgt_rows].copy()
        if self._row_weight is not None and rows.target_index is not None:
            w_tgt *= self._row_weight[rows.target_index]
        Xj = np.concatenate([rows.X[src_rows], rows.X[tgt_rows]])
        task = np.concatenate([t_idx, np.full(len(tgt_rows), T)]).astype(np.int64)
        y_src = np.concatenate([ys[src_rows, t_idx], np.full(len(tgt_rows), np.nan)])
        y_tgt = np.concatenate([np.full(len(src_rows), np.nan), rows.y_target[tgt_rows]])
        weight = np.concatenate([w_src, w_tgt])
        val = None
        if self.is_classifier:
            target_kind = self.loss if self.n_logits == 1 else f"{self.loss}:{self.n_logits}"
            source_kind = "bce" if self.source_task_ == "classification" else self.joint_config.loss
            fit_model: torch.nn.Module = _TaskColumns(model, self.n_logits)
            train = ArrayData((Xj, task), np.stack([y_src, y_tgt], axis=1), weight=weight)
            if rows.X_val is not None and rows.y_val is not None:
                y_val = np.stack([np.full(len(rows.y_val), np.nan), rows.y_val], axis=1)
                val = ArrayData((rows.X_val, np.full(len(rows.X_val), T, np.int64)), y_val)
            config = config.replace(loss=[source_kind, target_kind])
        else:
            fit_model = model
            train = ArrayData((Xj, task), np.where(np.isnan(y_src), y_tgt, y_src), weight=weight)
            if rows.X_val is not None and rows.y_val is not None:  # both set, or both None
                val = ArrayData((rows.X_val, np.full(len(rows.X_val), T, np.int64)), rows.y_val)
        Trainer(config).fit(fit_model, train, val=val)
        self.target_ = model.cpu().eval()

    def predict_task(self, X, task: int) -> np.ndarray:
        """Prediction for any task id (0..T-1 = source tasks / fidelities, T = target); for a
        classification target, task T gives its logit(s)."""
        X = np.asarray(X, dtype=np.float64)
        out = predict(self.target_, ArrayData((X, np.full(len(X), task, np.int64))))
        return out if out.ndim == 1 else (out[:, 0] if task != self.target_task else out)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        out = self.predict_task(X, self.target_task)
        if self.is_classifier:
            return self.decision_scores(out)
        return out

"""Multi-task learning: one shared trunk, one head per task, loss masked where a label is missing."""

from __future__ import annotations

import copy
from typing import Optional

import numpy as np
import torch

from ..nn import MLP, ArrayData, TrainConfig, Trainer, predict
from .base import TransferStrategy
from .joint import default_joint_config, joint_rows

__all__ = ["MultiTask"]


class MultiTask(TransferStrategy):
    """Source and target as two outputs of one network, trained jointly.

    The trunk starts from the source model. Each row carries a label for its own task only;
    the other output is masked out of the loss. Residuals are divided by each task's spread so
    the two tasks weigh alike per row, and target rows get ``target_share`` of the total weight.

    Parameters
    ----------
    max_source_rows : seeded random subset of the source used in joint training (None = all).
    target_share : fraction of the loss weight carried by the target rows.
    joint_config : training settings for the joint phase (default :func:`default_joint_config`).
    """

    name = "multitask"
    needs_source_data = True

    def __init__(
        self,
        max_source_rows: Optional[int] = 20000,
        target_share: float = 0.5,
        joint_config: Optional[TrainConfig] = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.max_source_rows = max_source_rows
        self.target_share = float(target_share)
        self.joint_config = joint_config or default_joint_config()

    def _params(self):
        return {"max_source_rows": self.max_source_rows, "target_share": self.target_share}

    def build_model(self, y_target: np.ndarray) -> MLP:
        """Two-output MLP initialised from the source model (both heads start as the source head)."""
        source = self._require_source()
        a = source.init_args
        model = MLP(a["n_in"], a["hidden"], n_out=2, activation=a["activation"], dropout=a["dropout"],
                    layer_norm=a["layer_norm"])
        state = copy.deepcopy(source.state_dict())
        with torch.no_grad():
            for key in ("head.weight", "head.bias"):
                state[key] = state[key].repeat(2, *([1] * (state[key].ndim - 1)))
            tgt_mean = float(np.mean(y_target))
            tgt_std = float(np.std(y_target)) if len(y_target) > 1 and np.std(y_target) > 1e-12 else 1.0
            state["y_mean"] = torch.tensor([float(source.y_mean[0]), tgt_mean])
            state["y_std"] = torch.tensor([float(source.y_std[0]), tgt_std])
        model.load_state_dict(state)
        return model

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        if self._X_source is None or self._y_source is None:  # set together by use_source()
            raise RuntimeError("MultiTask needs the source rows: use pretrain() or use_source(model, X, y)")
        config = self.joint_config.replace(seed=self.seed)
        rows = joint_rows(self._X_source, self._y_source, X, y, self.max_source_rows, self.target_share,
                          config.val_fraction, self.seed)
        model = self.build_model(y)
        train = ArrayData(rows.X, np.stack([rows.y_source, rows.y_target], axis=1), weight=rows.weight)
        val = None
        if rows.X_val is not None and rows.y_val is not None:  # both set, or both None
            val = ArrayData(rows.X_val, np.stack([np.full(len(rows.y_val), np.nan), rows.y_val], axis=1))
        torch.manual_seed(config.seed)
        Trainer(config).fit(model, train, val=val)
        self.target_ = model.cpu().eval()

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return predict(self.target_, X)[:, 1]

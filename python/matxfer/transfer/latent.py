"""Explicit latent variable: a learned embedding per task (fidelity) is an extra network input.

Hutchinson et al. (2019) found this best for related properties (e.g. activation energies):
one network sees every fidelity, and the embedding tells it which one to predict.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..nn import ArrayData, LatentMLP, TrainConfig, Trainer, predict
from .base import TransferStrategy
from .joint import default_joint_config, joint_rows

__all__ = ["LatentVariable"]

SOURCE_TASK, TARGET_TASK = 0, 1


class LatentVariable(TransferStrategy):
    """Joint training of source (task 0) and target (task 1) rows through one :class:`LatentMLP`
    initialised from the source model.

    Parameters
    ----------
    latent_dim : size of the task embedding.
    max_source_rows, target_share, joint_config : as in :class:`MultiTask`.
    """

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

    def build_model(self) -> LatentMLP:
        source = self._require_source()
        a = source.init_args
        torch.manual_seed(self.seed)
        model = LatentMLP(a["n_in"], n_tasks=2, latent_dim=self.latent_dim, hidden=a["hidden"],
                          activation=a["activation"], dropout=a["dropout"])
        return model.load_source_mlp(source)

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        if self._X_source is None or self._y_source is None:  # set together by use_source()
            raise RuntimeError("LatentVariable needs the source rows: use pretrain() or use_source(model, X, y)")
        config = self.joint_config.replace(seed=self.seed)
        rows = joint_rows(self._X_source, self._y_source, X, y, self.max_source_rows, self.target_share,
                          config.val_fraction, self.seed)
        model = self.build_model()
        task = np.where(rows.is_target, TARGET_TASK, SOURCE_TASK).astype(np.int64)
        labels = np.where(rows.is_target, rows.y_target, rows.y_source)
        train = ArrayData((rows.X, task), labels, weight=rows.weight)
        val = None
        if rows.X_val is not None and rows.y_val is not None:  # both set, or both None
            val = ArrayData((rows.X_val, np.full(len(rows.X_val), TARGET_TASK, np.int64)), rows.y_val)
        Trainer(config).fit(model, train, val=val)
        self.target_ = model.cpu().eval()

    def predict_task(self, X, task: int) -> np.ndarray:
        """Prediction for any task id (0 = source fidelity, 1 = target)."""
        X = np.asarray(X, dtype=np.float64)
        return predict(self.target_, ArrayData((X, np.full(len(X), task, np.int64))))

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_task(X, TARGET_TASK)
